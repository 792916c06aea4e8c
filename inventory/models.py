"""ORM models of the register. Enumerated fields hold codes from ``vocabulary.yaml``."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """A stored datetime as aware UTC (we only ever store UTC; SQLite returns it naive)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Department(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str | None] = mapped_column(String(256))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"), index=True)

    systems: Mapped[list[System]] = relationship(back_populates="department")


system_dependencies = Table(
    "system_dependencies",
    Base.metadata,
    Column("system_id", String(32), ForeignKey("systems.id", ondelete="CASCADE"), primary_key=True),
    Column("depends_on_id", String(32), ForeignKey("systems.id", ondelete="CASCADE"), primary_key=True,
           index=True),
    CheckConstraint("system_id <> depends_on_id", name="not_self"),
)
"""Which systems a system needs (calls): they migrate in an earlier wave or the same one. Cycles are allowed."""


class System(Base):
    __tablename__ = "systems"
    __table_args__ = (CheckConstraint("mlps_level BETWEEN 1 AND 4", name="mlps_level_range"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    mlps_level: Mapped[int] = mapped_column(Integer, index=True)
    grading_info_object: Mapped[str] = mapped_column(String(32))
    grading_info_degree: Mapped[str] = mapped_column(String(32))
    grading_service_object: Mapped[str] = mapped_column(String(32))
    grading_service_degree: Mapped[str] = mapped_column(String(32))
    data_class: Mapped[str] = mapped_column(String(16), index=True)
    public_data_level: Mapped[str] = mapped_column(String(4))
    hosting: Mapped[str] = mapped_column(String(16), index=True)
    network_stack: Mapped[str] = mapped_column(String(8), index=True)
    network_zone: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    last_activity: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    department: Mapped[Department] = relationship(back_populates="systems")
    hosts: Mapped[list[Host]] = relationship(back_populates="system", order_by="Host.name")
    depends_on: Mapped[list[System]] = relationship(
        secondary=system_dependencies, primaryjoin=lambda: System.id == system_dependencies.c.system_id,
        secondaryjoin=lambda: System.id == system_dependencies.c.depends_on_id, back_populates="dependents",
        order_by=lambda: System.id, lazy="selectin", join_depth=1)
    """Systems this system needs (calls)."""
    dependents: Mapped[list[System]] = relationship(
        secondary=system_dependencies, primaryjoin=lambda: System.id == system_dependencies.c.depends_on_id,
        secondaryjoin=lambda: System.id == system_dependencies.c.system_id, back_populates="depends_on",
        order_by=lambda: System.id)
    """Systems that need this one (the read side of ``depends_on``)."""


class Host(Base):
    __tablename__ = "hosts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    system_id: Mapped[str] = mapped_column(ForeignKey("systems.id"), index=True)
    ipv4: Mapped[str | None] = mapped_column(String(15), unique=True)
    ipv6: Mapped[str | None] = mapped_column(String(45), unique=True)
    os: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))

    system: Mapped[System] = relationship(back_populates="hosts")


class Network(Base):
    __tablename__ = "networks"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    zone: Mapped[str] = mapped_column(String(32))
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"), index=True)

    prefixes: Mapped[list[Prefix]] = relationship(back_populates="network", order_by="Prefix.cidr")


class Prefix(Base):
    __tablename__ = "prefixes"

    cidr: Mapped[str] = mapped_column(String(49), primary_key=True)
    family: Mapped[int] = mapped_column(Integer)
    network_code: Mapped[str] = mapped_column(ForeignKey("networks.code"), index=True)
    purpose: Mapped[str | None] = mapped_column(String(256))

    network: Mapped[Network] = relationship(back_populates="prefixes")
