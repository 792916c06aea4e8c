"""Specs from the register: a department's TenantSpec and a system's SystemSpec, so a ticket only adds what the
register cannot know (the ticket id, the IPv4 subnet, firewall openings, exposure approval).

- The tenant's level and data class are the highest among the department's cloud systems (``gov_cloud``, not
  decommissioned); its IPv6 /64 comes from IPAM as network ``<DEPT>-CLOUD`` (allocated in the session if missing —
  the caller commits or rolls back); management prefixes are the register's prefixes whose purpose names the
  运维管理 / 堡垒机 zone.
- A system's instances are its registered hosts except bastions (those live in the management zone), one instance
  per host, flavor by role and image from the OS name; database and storage hosts get an attached data volume.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import NetSettings
from infra.cloud.specs import (
    CloudRequest,
    IngressRule,
    InstanceSpec,
    K8sSpec,
    SystemSpec,
    TenantSpec,
    VolumeSpec,
)
from inventory.ipam import Ipam
from inventory.models import Department, Prefix, System

DATA_CLASS_ORDER = ("general", "important", "core")
CLOUD_HOSTING = "gov_cloud"
MANAGEMENT_PURPOSE = re.compile(r"运维管理|堡垒机|management|bastion", re.IGNORECASE)
DEFAULT_FLAVORS = {"web": "g.2c4g", "app": "g.4c8g", "db": "g.8c32g", "cache": "g.4c16g", "mq": "g.4c8g",
                   "storage": "g.4c8g", "lab": "g.1c2g"}
DATA_VOLUME_ROLES = ("db", "storage")
SKIPPED_ROLES = ("bastion",)


def cloud_network_code(department: str) -> str:
    """The IPAM network code of a department's cloud tenant network."""
    return f"{department}-CLOUD"


def image_name(os_name: str) -> str:
    """An image name from the register's OS text: ``Kylin V10 SP3`` → ``kylin-v10-sp3``."""
    return re.sub(r"[^a-z0-9.]+", "-", os_name.lower()).strip("-") or "unknown"


def _department(session: Session, code: str) -> Department:
    dept = session.get(Department, code)
    if dept is None:
        raise ValueError(f"unknown department '{code}'")
    return dept


def _registered_prefix(session: Session, cidr: str) -> None:
    net = ipaddress.ip_network(cidr)
    v4 = [ipaddress.ip_network(p.cidr) for p in session.scalars(select(Prefix).where(Prefix.family == 4))]
    if not any(net.subnet_of(p) for p in v4 if isinstance(p, ipaddress.IPv4Network)):
        raise ValueError(f"ipv4_cidr {cidr} lies inside no IPv4 prefix of the register")


def management_prefixes(session: Session) -> list[str]:
    """Registered prefixes of the management / bastion zone."""
    rows = session.scalars(select(Prefix).order_by(Prefix.cidr)).all()
    return [p.cidr for p in rows if p.purpose and MANAGEMENT_PURPOSE.search(p.purpose)]


def _highest(session: Session, department: str, overrides: Mapping[str, Any]) -> tuple[Department, int, str]:
    dept = _department(session, department)
    systems = [s for s in dept.systems if s.status != "decommissioned"]
    cloud = [s for s in systems if s.hosting == CLOUD_HOSTING] or systems
    if not cloud and "mlps_level" not in overrides:
        raise ValueError(f"department {department} has no systems in the register; give mlps_level and data_class")
    return (dept, max((s.mlps_level for s in cloud), default=1),
            max((s.data_class for s in cloud), key=DATA_CLASS_ORDER.index, default="general"))


def tenant_spec(session: Session, department: str, ticket_id: str, ipv4_cidr: str,
                net: NetSettings | None = None, **overrides: Any) -> TenantSpec:
    """The department's TenantSpec. ``ipv4_cidr`` (from the ticket) must lie inside a registered IPv4 prefix;
    ``overrides`` set any other TenantSpec field (dns_nameservers, soc_collectors, quota …)."""
    dept, level, data_class = _highest(session, department, overrides)
    net = net or NetSettings()
    _registered_prefix(session, ipv4_cidr)
    ipam = Ipam(session, ipaddress.IPv6Network(net.ipv6_block), net.department_prefix_len, net.subnet_prefix_len)
    values: dict[str, Any] = {
        "department": dept.code, "ticket_id": ticket_id,
        "mlps_level": level, "data_class": data_class,
        "description": f"{dept.name} 政务云租户 / {dept.name_en or dept.code} government-cloud tenant",
        "ipv4_cidr": ipv4_cidr, "ipv6_cidr": str(ipam.network(cloud_network_code(dept.code), dept.code)),
        "management_cidrs": management_prefixes(session),
    }
    session.flush()
    return TenantSpec.model_validate({**values, **overrides})


def k8s_spec(session: Session, department: str, ticket_id: str, **overrides: Any) -> K8sSpec:
    """The department's namespace ``ys-<dept>`` for group ``dept-<dept>``, at the level and class of its cloud
    systems; ``overrides`` from the ticket (namespace, quota, allows …)."""
    dept, level, data_class = _highest(session, department, overrides)
    code = dept.code.lower()
    values = {"department": dept.code, "ticket_id": ticket_id, "mlps_level": level, "data_class": data_class,
              "namespace": f"ys-{code}", "group": f"dept-{code}"}
    return K8sSpec.model_validate({**values, **overrides})


def system_spec(session: Session, system_id: str, ticket_id: str, ingress: Sequence[IngressRule | Mapping] = (),
                flavors: Mapping[str, str] | None = None, data_volume_gb: int = 200,
                **overrides: Any) -> SystemSpec:
    """The system's SystemSpec from its register row and hosts; ``ingress`` and ``overrides`` come from the ticket."""
    system = session.get(System, system_id)
    if system is None:
        raise ValueError(f"unknown system '{system_id}'")
    if system.status == "decommissioned":
        raise ValueError(f"system {system_id} is decommissioned; it gets no cloud resources")
    flavor_of = {**DEFAULT_FLAVORS, **(flavors or {})}
    instances, volumes = [], []
    for host in system.hosts:
        if host.role in SKIPPED_ROLES:
            continue
        if host.role not in flavor_of:
            raise ValueError(f"host {host.name}: no flavor for role '{host.role}'")
        instances.append(InstanceSpec(name=host.name, flavor=flavor_of[host.role], image=image_name(host.os),
                                      role=host.role))
        if host.role in DATA_VOLUME_ROLES:
            volumes.append(VolumeSpec(name=f"{host.name}-data", size_gb=data_volume_gb, attach_to=host.name))
    values: dict[str, Any] = {
        "system_id": system.id, "name": system.name, "department": system.department_code, "ticket_id": ticket_id,
        "mlps_level": system.mlps_level, "data_class": system.data_class, "instances": instances,
        "volumes": volumes, "ingress": list(ingress),
    }
    return SystemSpec.model_validate({**values, **overrides})


def request_for_system(session: Session, system_id: str, ticket_id: str, ipv4_cidr: str,
                       net: NetSettings | None = None, tenant: Mapping[str, Any] | None = None,
                       **system: Any) -> CloudRequest:
    """A CloudRequest with the system's department tenant and the system itself (a 系统上云迁移 ticket)."""
    spec = system_spec(session, system_id, ticket_id, **system)
    base = tenant_spec(session, spec.department, ticket_id, ipv4_cidr, net, **(tenant or {}))
    # a system moving to the cloud (e.g. from a local IDC) raises the tenant's baseline to its own level and class
    raised = base.model_copy(update={
        "mlps_level": max(base.mlps_level, spec.mlps_level),
        "data_class": max(base.data_class, spec.data_class, key=DATA_CLASS_ORDER.index)})
    return CloudRequest(tenant=TenantSpec.model_validate(raised.model_dump()), systems=[spec])
