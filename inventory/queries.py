"""Read-side queries of the register used by the portal, the metrics and later the engines."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from inventory.models import Department, Host, System
from inventory.vocabulary import vocabulary

FILTER_FIELDS = ("department", "mlps_level", "data_class", "hosting", "network_stack", "network_zone", "status")


@dataclass
class SystemFilter:
    """Filters of the systems list; None means "any". ``departments`` restricts by scope."""

    department: str | None = None
    mlps_level: int | None = None
    data_class: str | None = None
    hosting: str | None = None
    network_stack: str | None = None
    network_zone: str | None = None
    status: str | None = None
    q: str | None = None
    departments: set[str] | None = None


ENUM_OF = {"data_class": "data_class", "hosting": "hosting", "network_stack": "network_stack",
           "network_zone": "network_zone", "status": "system_status"}


def normalise_filter(f: SystemFilter) -> SystemFilter:
    """Codes or labels (政务云, 双栈, …) become codes; an unknown value raises ValueError naming the choices."""
    vocab = vocabulary()
    for attr, enum in ENUM_OF.items():
        value = getattr(f, attr)
        if value not in (None, ""):
            setattr(f, attr, vocab.normalise(enum, value))
    return f


def _apply(stmt, f: SystemFilter):  # type: ignore[no-untyped-def]
    if f.departments is not None:
        stmt = stmt.where(System.department_code.in_(f.departments))
    if f.department:
        stmt = stmt.where(System.department_code == f.department)
    for attr in ("mlps_level", "data_class", "hosting", "network_stack", "network_zone", "status"):
        value = getattr(f, attr)
        if value not in (None, ""):
            stmt = stmt.where(getattr(System, attr) == value)
    if f.q:
        like = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(System.name.ilike(like, escape="\\"), System.id.ilike(like, escape="\\"),
                              System.owner.ilike(like, escape="\\")))
    return stmt


def list_systems(session: Session, f: SystemFilter, limit: int = 500, offset: int = 0) -> tuple[list[System], int]:
    """Systems matching the filter (ordered by id) and the total count."""
    total = session.scalar(_apply(select(func.count(System.id)), f)) or 0
    rows = session.scalars(_apply(select(System), f).order_by(System.id).limit(limit).offset(offset))
    return list(rows), total


def list_departments(session: Session, departments: set[str] | None = None) -> list[tuple[Department, int]]:
    """Departments (within scope) with their number of systems."""
    counts = dict(session.execute(select(System.department_code, func.count()).group_by(System.department_code)).all())
    stmt = select(Department).order_by(Department.code)
    if departments is not None:
        stmt = stmt.where(Department.code.in_(departments))
    return [(d, counts.get(d.code, 0)) for d in session.scalars(stmt)]


def list_hosts(session: Session, system_id: str | None, departments: set[str] | None) -> list[Host]:
    stmt = select(Host).join(System).order_by(Host.name)
    if system_id:
        stmt = stmt.where(Host.system_id == system_id)
    if departments is not None:
        stmt = stmt.where(System.department_code.in_(departments))
    return list(session.scalars(stmt))


def count_by(session: Session, *attrs: str, departments: set[str] | None = None) -> dict[tuple[object, ...], int]:
    """Number of non-decommissioned systems per combination of the given System attributes."""
    columns = [getattr(System, a) for a in attrs]
    stmt = select(*columns, func.count()).where(System.status != "decommissioned").group_by(*columns)
    if departments is not None:
        stmt = stmt.where(System.department_code.in_(departments))
    return {tuple(row[:-1]): row[-1] for row in session.execute(stmt)}
