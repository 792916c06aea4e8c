"""The IPv4/IPv6 dual-stack migration as a job: ``ipv6_dualstack.yml`` on a scope, then the register updated for
every host the playbook verified (address recorded; a system becomes dual stack once all its hosts are), each
change in the audit chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from core.runtime import Runtime
from infra.ansible_run import PlaybookResult, ipv6_plan_vars
from infra.jobs import JobEventView
from infra.scoped_jobs import run_scoped
from inventory.models import Host

PLAYBOOK = "ipv6_dualstack.yml"


def host_outcomes(outcome: PlaybookResult) -> dict[str, dict[str, Any]]:
    """The playbook's per-host outcome (custom stats ``ipv6_dualstack``: ipv6, verified, rolled_back, reason)."""
    found = outcome.custom_stats.get("ipv6_dualstack")
    return found if isinstance(found, dict) else {}


def verified_hosts(outcome: PlaybookResult) -> list[str]:
    """Hosts the playbook verified over IPv6 (not rolled back, no failure or unreachability in the stats)."""
    failed = set(outcome.failed_hosts())
    return sorted(h for h, o in host_outcomes(outcome).items()
                  if o.get("verified") and not o.get("rolled_back") and h not in failed)


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
    """The dual-stack migration of ``scope`` as a job; verified hosts are recorded in the register."""

    def summarise(job_id: int, outcome: PlaybookResult) -> dict[str, Any]:
        verified = verified_hosts(outcome)
        outcomes = host_outcomes(outcome)
        summary: dict[str, Any] = {
            "verified": verified, "failed": outcome.failed_hosts(), "changed": outcome.changed,
            "rolled_back": {h: o.get("reason") for h, o in sorted(outcomes.items()) if o.get("rolled_back")}}
        if not check:
            summary.update(record_migration(rt, verified, actor, job_id))
        return summary

    return run_scoped(rt, "ipv6_migration", PLAYBOOK, scope, actor, check=check, extravars=extravars,
                      on_event=on_event, on_created=on_created, summarise=summarise)
