"""Migration waves planned from the register: every system that is not yet on 政务云, not dual stack or still on a
sector private network, grouped so that lower-risk systems go first.

Order: 等保 level ascending (a wave never mixes levels: level-3/4 systems migrate after the lower levels have proven
the runbook), then department (a department's systems stay together, so its staff handle one wave at a time), then
system id. A wave holds at most ``wave_size`` systems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.models import System


@dataclass
class Wave:
    number: int
    mlps_level: int
    systems: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"wave": self.number, "mlps_level": self.mlps_level, "systems": self.systems,
                "departments": sorted({s["department"] for s in self.systems})}


def needed_steps(system: System) -> list[str]:
    """What a system still needs: ``cloud`` (move to 政务云), ``dual_stack``, ``extranet`` (leave the 专网)."""
    steps = []
    if system.hosting != "gov_cloud":
        steps.append("cloud")
    if system.network_stack == "ipv4":
        steps.append("dual_stack")
    if system.network_zone != "egov_extranet":
        steps.append("extranet")
    return steps


def plan_waves(session: Session, wave_size: int = 10, departments: set[str] | None = None) -> list[Wave]:
    """The waves, in order; systems already done (or decommissioned) are not in any."""
    if wave_size < 1:
        raise ValueError(f"wave size must be at least 1, not {wave_size}")
    query = select(System).where(System.status != "decommissioned").order_by(
        System.mlps_level, System.department_code, System.id)
    if departments is not None:
        query = query.where(System.department_code.in_(departments))
    waves: list[Wave] = []
    for system in session.scalars(query):
        steps = needed_steps(system)
        if not steps:
            continue
        if not waves or waves[-1].mlps_level != system.mlps_level or len(waves[-1].systems) >= wave_size:
            waves.append(Wave(len(waves) + 1, system.mlps_level))
        waves[-1].systems.append({"id": system.id, "name": system.name, "department": system.department_code,
                                  "steps": steps, "hosts": len(system.hosts)})
    return waves
