"""The IPv4/IPv6 dual-stack migration as a job: scope → inventory with the IPAM plan → ipv6_dualstack.yml →
the register updated for every host the playbook verified (address recorded, system dual stack once all its hosts
are), each change in the audit chain."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from infra.ansible_run import PlaybookResult, ipv6_plan_vars, write_inventory
from infra.jobs import JobEventView, Jobs
from infra.lab import Lab
from inventory.models import Department, Host, System

PLAYBOOK = "ipv6_dualstack.yml"


def _group(prefix: str, value: str) -> str:
    return f"{prefix}_{re.sub(r'[^a-z0-9_]', '_', value.lower())}"


def resolve_scope(session: Session, scope: list[str]) -> tuple[str, list[str], list[str]]:
    """Department codes and system ids → (Ansible limit, departments, systems); unknown names raise ValueError."""
    if not scope:
        raise ValueError("scope is empty: name department codes or system ids")
    departments = set(session.scalars(select(Department.code).where(Department.code.in_(scope))))
    systems = set(session.scalars(select(System.id).where(System.id.in_(scope))))
    unknown = sorted(set(scope) - departments - systems)
    if unknown:
        raise ValueError(f"unknown department(s) or system(s) in scope: {', '.join(unknown)}")
    groups = [_group("dept", d) for d in sorted(departments)] + [_group("system", s) for s in sorted(systems)]
    return ":".join(groups), sorted(departments), sorted(systems)


def current_lab(rt: Runtime) -> Lab | None:
    """The lab of this control plane, when one is up (its hosts get the lab's connection variables)."""
    lab = Lab(rt.settings.home)
    return lab if lab.state_file.exists() else None


def verified_hosts(outcome: PlaybookResult) -> list[str]:
    """Hosts the playbook finished without failure (it verifies before it succeeds, rolls back when it cannot)."""
    return sorted(h for h, s in outcome.stats.items() if not s.get("failures") and not s.get("dark"))


def record_migration(rt: Runtime, hosts: list[str], actor: str, job_id: int) -> dict[str, Any]:
    """Write the planned IPv6 addresses of verified hosts into the register; systems whose hosts all have one
    become dual stack."""
    updated_hosts, dual_systems = [], []
    with rt.transaction() as session:
        rows = session.scalars(select(Host).where(Host.name.in_(hosts))).all()
        plan = ipv6_plan_vars(session, rt.settings.net.ipv6_block, {h.system.department_code for h in rows})
        for host in rows:
            address = plan[host.name]["address"]
            if host.ipv6 != address:
                rt.audit.append(session, actor=actor, action="inventory.host.ipv6_migrated", object_type="host",
                                object_id=host.name, payload={"ipv6": address, "was": host.ipv6, "job": job_id})
                host.ipv6 = address
                updated_hosts.append(host.name)
        session.flush()
        for system in {h.system for h in rows}:
            if system.network_stack == "ipv4" and all(h.ipv6 for h in system.hosts):
                rt.audit.append(session, actor=actor, action="inventory.system.dual_stack", object_type="system",
                                object_id=system.id, payload={"was": system.network_stack, "job": job_id})
                system.network_stack = "dual"
                dual_systems.append(system.id)
    return {"hosts_updated": sorted(updated_hosts), "systems_dual_stack": sorted(dual_systems)}


def migrate_ipv6(rt: Runtime, scope: list[str], actor: str, *, check: bool = False,
                 extravars: dict[str, Any] | None = None,
                 on_event: Callable[[JobEventView, dict[str, Any]], None] | None = None,
                 on_created: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run the dual-stack migration on ``scope`` (department codes / system ids) as a job; returns the job record.

    ``on_created(job_id, host_count)`` is called once the job exists (for progress bars)."""
    jobs = Jobs(rt)
    with rt.sessions() as session:
        limit, departments, systems = resolve_scope(session, scope)
        host_count = len(session.scalars(select(Host.name).join(System).where(
            (System.department_code.in_(departments)) | (System.id.in_(systems)))).all())
    job_id = jobs.create("ipv6_migration", PLAYBOOK, {"departments": departments, "systems": systems}, actor,
                         limit=limit, check=check)
    if on_created is not None:
        on_created(job_id, host_count)
    with rt.transaction() as session:
        inventory = write_inventory(session, Path(jobs.dir / str(job_id) / "inventory.yml"), lab=current_lab(rt),
                                    ipv6_block=rt.settings.net.ipv6_block)

    def summarise(outcome: PlaybookResult) -> dict[str, Any]:
        verified = verified_hosts(outcome)
        summary: dict[str, Any] = {"verified": verified, "failed": outcome.failed_hosts(), "changed": outcome.changed}
        if not check:
            summary.update(record_migration(rt, verified, actor, job_id))
        return summary

    return jobs.run(job_id, inventory, extravars=extravars, on_event=on_event, summarise=summarise)
