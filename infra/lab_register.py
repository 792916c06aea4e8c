"""The lab in the register: a lab department (LAB) whose systems and hosts the dynamic inventory targets.

The lab is written through the register's own import (validated, audited, all-or-nothing), so automation reaches
lab hosts exactly as it reaches the city's: by department, system, level or role groups. Its IPv6 /64 is the
department LAN IPAM allocates for LAB; the router and the DNS server take ``::1`` and ``::2`` in it.
"""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from core.audit import AuditChain
from core.runtime import Runtime
from infra.lab import DNS_NAME, Lab, LabHost, lab_hosts
from inventory.ipam import Ipam
from inventory.register import ImportResult, import_file

DEPARTMENT = "LAB"
NETWORK = "NET-LAB"
WEB_SYSTEM, APP_SYSTEM, CORE_SYSTEM = "SYS-LAB-WEB", "SYS-LAB-APP", "SYS-LAB-CORE"
LAB_OS = "Debian 12 (netns lab)"

_GRADING_L2 = {"business_info": {"object": "citizen_rights", "degree": "serious"},
               "system_service": {"object": "citizen_rights", "degree": "general"}}


def _system(system_id: str, name: str) -> dict[str, Any]:
    return {"id": system_id, "name": name, "department": DEPARTMENT, "owner": "平台运维组（实验） / platform team",
            "mlps_level": 2, "grading": copy.deepcopy(_GRADING_L2), "data_class": "general", "public_data_level": "L1",
            "hosting": "gov_cloud", "network_stack": "ipv4", "network_zone": "egov_extranet", "status": "live"}


def lab_document(lab: Lab, hosts: list[LabHost], dns_ipv6: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The register records of a lab: department, network with its IPv4 prefix, systems, hosts (IPv4 only; the
    DNS server dual stack when ``dns_ipv6`` is given)."""
    systems = [_system(CORE_SYSTEM, "实验网络核心服务（DNS） / Lab network services")]
    if dns_ipv6:
        systems[0]["network_stack"] = "dual"
    if any(h.web for h in hosts):
        systems.append(_system(WEB_SYSTEM, "示例市政务网站（实验） / Lab government web site"))
    if any(not h.web for h in hosts):
        systems.append(_system(APP_SYSTEM, "实验应用主机 / Lab application hosts"))
    return {
        "departments": [{"code": DEPARTMENT, "name": "网络实验室", "name_en": "Network lab", "parent": None}],
        "networks": [{"code": NETWORK, "name": "实验网络 / Lab network", "zone": "egov_extranet",
                      "department": DEPARTMENT,
                      "prefixes": [{"cidr": str(lab.subnet), "purpose": "实验网络IPv4地址 / lab IPv4"}]}],
        "systems": systems,
        "hosts": [{"name": DNS_NAME, "system": CORE_SYSTEM, "ipv4": str(lab.dns), "ipv6": dns_ipv6, "os": LAB_OS,
                   "role": "dns"}]
        + [{"name": h.name, "system": WEB_SYSTEM if h.web else APP_SYSTEM, "ipv4": h.ipv4, "os": LAB_OS,
            "role": "web" if h.web else "app"} for h in hosts],
    }


def register_lab(session: Session, audit: AuditChain, lab: Lab, hosts: list[LabHost], ipv6_block: str,
                 actor: str = "lab") -> tuple[ImportResult, ipaddress.IPv6Network, str]:
    """Write the lab into the register (idempotent): returns the import result, the lab's IPv6 /64 (the LAB
    department LAN from IPAM) and the DNS server's IPv6 address (its IPAM host address, dual stack from the start)."""
    ipam = Ipam(session, ipaddress.IPv6Network(ipv6_block))
    lan = ipam.network(f"{DEPARTMENT}-LAN", DEPARTMENT)
    dns6 = str(ipam.host(DNS_NAME, lan))
    path = lab.dir / "register.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(lab_document(lab, hosts, dns6), allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    result = import_file(session, Path(path), audit, actor, fmt="yaml")
    session.flush()
    return result, lan, dns6


def start_registered_lab(rt: Runtime, count: int, lab_id: int = 0) -> Lab:
    """Register lab ``lab_id`` of ``count`` hosts (committed) and bring it up with its IPv6 plan on the router/DNS."""
    lab = Lab(rt.settings.home, lab_id)
    hosts = lab_hosts(count, lab_id)
    with rt.transaction() as session:
        _, lan, dns6 = register_lab(session, rt.audit, lab, hosts, rt.settings.net.ipv6_block)
    lab.up(count, lan, dns6)
    return lab
