"""The register as an Ansible dynamic inventory (``--list`` / ``--host`` JSON)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inventory.models import Host


def _group(prefix: str, value: object) -> str:
    return f"{prefix}_{re.sub(r'[^a-z0-9_]', '_', str(value).lower())}"


def host_vars(host: Host) -> dict[str, Any]:
    """Variables of one host: addresses, OS, role and its system's classification (gov_*)."""
    system = host.system
    return {
        "ansible_host": host.ipv4 or host.ipv6,
        "ipv4_address": host.ipv4,
        "ipv6_address": host.ipv6,
        "host_os": host.os,
        "host_role": host.role,
        "gov_system_id": system.id,
        "gov_system_name": system.name,
        "gov_department": system.department_code,
        "gov_mlps_level": system.mlps_level,
        "gov_data_class": system.data_class,
        "gov_hosting": system.hosting,
        "gov_network_stack": system.network_stack,
        "gov_network_zone": system.network_zone,
        "gov_status": system.status,
    }


def build_inventory(session: Session, include_decommissioned: bool = False) -> dict[str, Any]:
    """Groups by department, 等保 level, hosting, IP stack, network zone and system; hostvars in _meta."""
    query = select(Host).options(selectinload(Host.system)).order_by(Host.name)
    groups: dict[str, set[str]] = {}
    hostvars: dict[str, dict[str, Any]] = {}
    for host in session.scalars(query):
        system = host.system
        if system.status == "decommissioned" and not include_decommissioned:
            continue
        hostvars[host.name] = host_vars(host)
        for group in (
            _group("dept", system.department_code),
            _group("level", system.mlps_level),
            _group("hosting", system.hosting),
            _group("network", system.network_stack),
            _group("zone", system.network_zone),
            _group("system", system.id),
            _group("role", host.role),
        ):
            groups.setdefault(group, set()).add(host.name)
    inventory: dict[str, Any] = {
        "_meta": {"hostvars": hostvars},
        "all": {"children": ["ungrouped", *sorted(groups)]},
        "ungrouped": {"hosts": []},
    }
    for name, members in sorted(groups.items()):
        inventory[name] = {"hosts": sorted(members)}
    return inventory


def host_inventory(session: Session, name: str) -> dict[str, Any]:
    """``--host NAME``: the host's variables; empty for an unknown or decommissioned host (as in ``--list``)."""
    host = session.get(Host, name)
    return host_vars(host) if host and host.system.status != "decommissioned" else {}


__all__ = ["build_inventory", "host_inventory", "host_vars"]
