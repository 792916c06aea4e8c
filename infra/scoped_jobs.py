"""Playbooks run as jobs on a scope of the register: department codes and system ids become an Ansible limit, the
inventory is written from the register (with the lab's connection variables when a lab is up, and the IPAM IPv6
plan per host)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from infra.ansible_run import PlaybookResult, write_inventory
from infra.jobs import JobEventView, Jobs
from infra.lab import MAX_LAB_ID, Lab
from inventory.models import Department, Host, System


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
    for lab_id in range(MAX_LAB_ID + 1):
        lab = Lab(rt.settings.home, lab_id)
        if lab.state_file.exists():
            return lab
    return None


def run_scoped(rt: Runtime, kind: str, playbook: str, scope: list[str], actor: str, *, check: bool = False,
               extravars: dict[str, Any] | None = None,
               on_event: Callable[[JobEventView, dict[str, Any]], None] | None = None,
               on_created: Callable[[int, int], None] | None = None,
               summarise: Callable[[int, PlaybookResult], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run ``playbook`` as a job on ``scope`` (department codes / system ids); returns the finished job record.

    The inventory is the register (with the lab's connection variables when a lab is up and the IPAM IPv6 plan);
    ``on_created(job_id, host_count)`` is called once the job exists (for progress bars); ``summarise(job_id,
    outcome)`` gives the job's result."""
    jobs = Jobs(rt)
    with rt.sessions() as session:
        limit, departments, systems = resolve_scope(session, scope)
        host_count = len(session.scalars(select(Host.name).join(System).where(
            (System.department_code.in_(departments)) | (System.id.in_(systems)))).all())
    job_id = jobs.create(kind, playbook, {"departments": departments, "systems": systems}, actor,
                         limit=limit, check=check)
    if on_created is not None:
        on_created(job_id, host_count)
    with rt.transaction() as session:
        inventory = write_inventory(session, Path(jobs.dir / str(job_id) / "inventory.yml"), lab=current_lab(rt),
                                    ipv6_block=rt.settings.net.ipv6_block)
    return jobs.run(job_id, inventory, extravars=extravars, on_event=on_event,
                    summarise=(lambda outcome: summarise(job_id, outcome)) if summarise else None)
