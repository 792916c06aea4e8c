"""Migration KPIs per department and city-wide, from the register (systems not decommissioned; every system in the
register is non-classified — classified systems are outside the government cloud and outside Yunshu):

* 上云率 (cloud adoption): systems hosted on 政务云 ÷ all systems;
* 双栈率 (dual-stack rate): systems dual stack or IPv6 only ÷ all systems;
* 专网整合率 (private-network consolidation): systems on the 电子政务外网 ÷ all systems (sector private networks
  folded into the extranet).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from inventory.models import Department, System

CITY = "_city"


@dataclass(frozen=True)
class MigrationKpi:
    """Counts and ratios of one department (or the city, ``department == "_city"``)."""

    department: str
    name: str
    systems: int
    on_gov_cloud: int
    dual_stack: int
    on_extranet: int

    @staticmethod
    def _ratio(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    @property
    def cloud_rate(self) -> float | None:
        return self._ratio(self.on_gov_cloud, self.systems)

    @property
    def dual_stack_rate(self) -> float | None:
        return self._ratio(self.dual_stack, self.systems)

    @property
    def consolidation_rate(self) -> float | None:
        return self._ratio(self.on_extranet, self.systems)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cloud_rate": self.cloud_rate, "dual_stack_rate": self.dual_stack_rate,
                "consolidation_rate": self.consolidation_rate}


def migration_kpis(session: Session, departments: set[str] | None = None) -> list[MigrationKpi]:
    """One row per department with systems (code order), then the city-wide (or scope-wide) row."""
    counted = select(
        System.department_code, Department.name, func.count(System.id),
        func.sum(case((System.hosting == "gov_cloud", 1), else_=0)),
        func.sum(case((System.network_stack.in_(("dual", "ipv6")), 1), else_=0)),
        func.sum(case((System.network_zone == "egov_extranet", 1), else_=0)),
    ).join(Department, Department.code == System.department_code).where(System.status != "decommissioned")
    if departments is not None:
        counted = counted.where(System.department_code.in_(departments))
    rows = session.execute(counted.group_by(System.department_code, Department.name)
                           .order_by(System.department_code)).all()
    kpis = [MigrationKpi(code, name, int(n), int(cloud or 0), int(dual or 0), int(extranet or 0))
            for code, name, n, cloud, dual, extranet in rows]
    total = MigrationKpi(CITY, "全市 / city-wide", *(sum(getattr(k, f) for k in kpis)
                                                   for f in ("systems", "on_gov_cloud", "dual_stack", "on_extranet")))
    return [*kpis, total]
