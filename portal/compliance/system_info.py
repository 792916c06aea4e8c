"""A plain snapshot of a register system, so that collectors can work outside one long database session
(SQLite write-locks a session for its whole duration)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from inventory.models import System


@dataclass(frozen=True)
class HostInfo:
    name: str
    role: str
    ipv4: str | None
    ipv6: str | None


@dataclass(frozen=True)
class SystemInfo:
    id: str
    name: str
    department_code: str
    mlps_level: int
    data_class: str | None
    hosting: str | None
    hosts: tuple[HostInfo, ...]


def system_info(session: Session, system_id: str) -> SystemInfo:
    """The snapshot; LookupError naming an unknown system."""
    system = session.get(System, system_id)
    if system is None:
        raise LookupError(f"system {system_id} is not in the register")
    hosts = tuple(HostInfo(h.name, h.role, h.ipv4, h.ipv6) for h in sorted(system.hosts, key=lambda h: h.name))
    return SystemInfo(system.id, system.name, system.department_code, system.mlps_level, system.data_class,
                      system.hosting, hosts)
