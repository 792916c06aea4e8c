"""IPAM for the IPv6 migration: the city's block carved into a /48 per department, a /64 per network, a stable
address per host — allocated once, persisted, never overlapping, and exhaustion named clearly.

Allocation is deterministic: departments, networks and hosts are taken in code/name order and each gets the lowest
free prefix or address, so the same register always yields the same plan, and an allocation never moves once it is
stored (new departments take free space; nobody is renumbered). Inside a /64, ``::1`` is the gateway and hosts
get ``::10``, ``::11`` … in name order. IPv4 prefixes stay as the register records them and are shown alongside.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base
from inventory.models import Department, Host, Network, Prefix, System, utcnow

IPv6Net = ipaddress.IPv6Network
GATEWAY_OFFSET = 1
FIRST_HOST_OFFSET = 0x10


class IpamExhausted(Exception):
    """No free prefix or address is left where one was asked for (the message says where and how many)."""


class IpamAllocation(Base):
    """One allocation: a department's /48, a network's /64 or a host's address."""

    __tablename__ = "ipam_allocations"
    __table_args__ = (UniqueConstraint("kind", "owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # department | network | host
    owner: Mapped[str] = mapped_column(String(64))  # department code, network code or host name
    value: Mapped[str] = mapped_column(String(49), unique=True)  # prefix or address
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def lowest_free_subnet(parent: IPv6Net, prefixlen: int, taken: Iterable[IPv6Net]) -> IPv6Net:
    """The lowest /``prefixlen`` inside ``parent`` that overlaps none of ``taken``; IpamExhausted when none."""
    if prefixlen < parent.prefixlen or prefixlen > 128:
        raise ValueError(f"/{prefixlen} does not fit inside {parent}")
    size = 1 << (128 - prefixlen)
    blocked = sorted((int(n.network_address), int(n.broadcast_address)) for n in taken if n.overlaps(parent))
    candidate = int(parent.network_address)
    last = int(parent.broadcast_address)
    for start, end in blocked:
        if candidate + size - 1 < start:
            break
        if end >= candidate:  # the blocked range covers or follows the candidate: jump past it, aligned
            candidate = ((end + 1 + size - 1) // size) * size
    if candidate + size - 1 > last:
        total = 1 << (prefixlen - parent.prefixlen)
        raise IpamExhausted(f"no free /{prefixlen} left in {parent} ({total} in all, all allocated or overlapped)")
    return IPv6Net((candidate, prefixlen))


def lowest_free_address(subnet: IPv6Net, taken: set[ipaddress.IPv6Address]) -> ipaddress.IPv6Address:
    """The lowest free host address from ``::10`` on; IpamExhausted when the subnet is full."""
    base, last = int(subnet.network_address), int(subnet.broadcast_address)
    candidate = base + FIRST_HOST_OFFSET
    while candidate <= last:
        address = ipaddress.IPv6Address(candidate)
        if address not in taken:
            return address
        candidate += 1
    raise IpamExhausted(f"no free host address left in {subnet}")


@dataclass
class Ipam:
    """Allocations inside one city block, read from and written to the session (the caller commits)."""

    session: Session
    block: IPv6Net
    department_len: int = 48
    subnet_len: int = 64
    _cache: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.block.prefixlen <= self.department_len <= self.subnet_len <= 128:
            raise ValueError(f"prefix lengths must nest: block /{self.block.prefixlen} ≤ department "
                             f"/{self.department_len} ≤ subnet /{self.subnet_len}")
        for row in self.session.scalars(select(IpamAllocation)):
            self._cache[(row.kind, row.owner)] = row.value
        # IPv6 prefixes the register already records are in use: no department /48 may overlap them
        self.reserved = [IPv6Net(p.cidr) for p in self.session.scalars(select(Prefix).where(Prefix.family == 6))]

    def _taken(self, kind: str) -> list[IPv6Net]:
        return [ipaddress.ip_network(v) for (k, _), v in self._cache.items() if k == kind]  # type: ignore[misc]

    def _store(self, kind: str, owner: str, value: str) -> str:
        self.session.add(IpamAllocation(kind=kind, owner=owner, value=value))
        self._cache[(kind, owner)] = value
        return value

    def department(self, code: str) -> IPv6Net:
        """The department's /48 (allocated now if it has none)."""
        value = self._cache.get(("department", code))
        if value is None:
            value = self._store("department", code, str(lowest_free_subnet(
                self.block, self.department_len, self._taken("department") + self.reserved)))
        return IPv6Net(value)

    def network(self, code: str, department: str) -> IPv6Net:
        """The network's /64 inside its department's /48."""
        value = self._cache.get(("network", code))
        if value is None:
            parent = self.department(department)
            value = self._store("network", code, str(lowest_free_subnet(parent, self.subnet_len,
                                                                        self._taken("network"))))
        return IPv6Net(value)

    def host(self, name: str, network: IPv6Net) -> ipaddress.IPv6Address:
        """The host's stable address in the network's /64."""
        value = self._cache.get(("host", name))
        if value is None:
            taken = {ipaddress.IPv6Address(v) for (k, _), v in self._cache.items() if k == "host"}
            taken.add(network.network_address + GATEWAY_OFFSET)
            value = self._store("host", name, str(lowest_free_address(network, taken)))
        return ipaddress.IPv6Address(value)


def plan_ipv6(session: Session, block: str, scope: set[str] | None = None, department_len: int = 48,
              subnet_len: int = 64) -> list[dict[str, Any]]:
    """The address plan, allocating what is missing: per department its /48, networks with their /64 and IPv4
    prefixes, a department LAN /64 whose hosts get stable IPv6 addresses. ``scope``: department codes (None: all).
    Unknown codes in ``scope`` raise ValueError."""
    if scope is not None:
        known = set(session.scalars(select(Department.code).where(Department.code.in_(scope))))
        if scope - known:
            raise ValueError(f"unknown department(s): {', '.join(sorted(scope - known))}")
    ipam = Ipam(session, IPv6Net(block), department_len, subnet_len)
    departments = session.scalars(select(Department).order_by(Department.code)).all()
    plan = []
    for dept in departments:
        if scope is not None and dept.code not in scope:
            continue
        prefix = ipam.department(dept.code)
        networks = session.scalars(select(Network).where(Network.department_code == dept.code)
                                   .order_by(Network.code)).all()
        lan_code = f"{dept.code}-LAN"
        lan = ipam.network(lan_code, dept.code)
        hosts = session.execute(select(Host).join(System).where(System.department_code == dept.code)
                                .order_by(Host.name)).scalars().all()
        plan.append({
            "department": dept.code, "name": dept.name, "ipv6_prefix": str(prefix),
            "networks": [{"code": n.code, "ipv6_prefix": str(ipam.network(n.code, dept.code)),
                          "ipv4_prefixes": [p.cidr for p in n.prefixes if p.family == 4]} for n in networks]
            + [{"code": lan_code, "ipv6_prefix": str(lan), "gateway": str(lan.network_address + GATEWAY_OFFSET),
                "ipv4_prefixes": []}],
            "hosts": [{"name": h.name, "ipv4": h.ipv4, "ipv6": str(ipam.host(h.name, lan)), "ipv6_now": h.ipv6}
                      for h in hosts],
        })
    session.flush()
    return plan
