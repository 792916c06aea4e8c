"""Inputs of the cloud program as plain data (pydantic): what a ticket produces and the Pulumi program consumes.

A :class:`CloudRequest` holds at most one :class:`TenantSpec` (a department's OpenStack project and network),
any number of :class:`SystemSpec` (a system's instances, volumes and firewall openings) and :class:`K8sSpec`
(a department's Kubernetes namespace). Every spec carries the five government labels — system id, department,
等保 level, data class, ticket id — that end up on every resource.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Values must be valid as Kubernetes label values and as OpenStack tags (no '/' or ',').
LABEL_VALUE = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
DNS_LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
RESOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"

LabelValue = Annotated[str, Field(pattern=LABEL_VALUE)]
ResourceName = Annotated[str, Field(pattern=RESOURCE_NAME)]
MlpsLevel = Annotated[int, Field(ge=1, le=4)]
DataClass = Literal["general", "important", "core"]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GovLabels(_Strict):
    """The labels every resource carries (tags on OpenStack, labels on Kubernetes)."""

    system_id: LabelValue
    department: LabelValue
    mlps_level: MlpsLevel
    data_class: DataClass
    ticket_id: LabelValue


class _Labelled(_Strict):
    department: LabelValue
    ticket_id: LabelValue
    mlps_level: MlpsLevel
    data_class: DataClass

    @property
    def labels(self) -> GovLabels:
        return GovLabels(system_id=self.system_id, department=self.department,  # type: ignore[attr-defined]
                         mlps_level=self.mlps_level, data_class=self.data_class, ticket_id=self.ticket_id)


def _network(value: object, version: int, what: str) -> str:
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        raise ValueError(f"{what}: '{value}' is not a valid network prefix ({exc})") from exc
    if net.version != version:
        raise ValueError(f"{what}: '{value}' is not an IPv{version} prefix")
    return str(net)


def _any_network(value: object, what: str) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=True))
    except ValueError as exc:
        raise ValueError(f"{what}: '{value}' is not a valid network prefix ({exc})") from exc


class TenantQuota(_Strict):
    """Project quotas (compute, network, block storage). Floating IPs default to none: exposure is a ticket."""

    cores: int = Field(32, ge=0)
    ram_mb: int = Field(65536, ge=0)
    instances: int = Field(16, ge=0)
    volumes: int = Field(32, ge=0)
    gigabytes: int = Field(2048, ge=0)
    snapshots: int = Field(32, ge=0)
    networks: int = Field(4, ge=0)
    subnets: int = Field(8, ge=0)
    routers: int = Field(2, ge=0)
    ports: int = Field(64, ge=0)
    floating_ips: int = Field(0, ge=0)
    security_groups: int = Field(20, ge=0)
    security_group_rules: int = Field(200, ge=0)


class TenantSpec(_Labelled):
    """A department's tenant: project with quotas, one dual-stack network, a router, baseline security groups.

    ``mlps_level`` / ``data_class`` are the highest of the systems the tenant hosts (they pick the baseline);
    ``system_id`` is ``shared`` because the tenant serves all of the department's systems.
    """

    system_id: LabelValue = "shared"
    description: str = ""
    domain_id: str | None = None
    quota: TenantQuota = TenantQuota()
    ipv4_cidr: str
    ipv6_cidr: str  # the network's /64 from IPAM
    dns_nameservers: list[str] = []
    external_network_id: str | None = None  # router gateway; None: an internal-only router
    management_cidrs: list[str] = []  # 运维管理区 / bastions: the only sources allowed to SSH in
    soc_collectors: list[str] = []  # log collectors (level ≥ 3 egress is restricted to what is listed)

    @property
    def project_name(self) -> str:
        return f"ys-{self.department.lower()}"

    @field_validator("ipv4_cidr")
    @classmethod
    def _v4(cls, value: str) -> str:
        return _network(value, 4, "ipv4_cidr")

    @field_validator("ipv6_cidr")
    @classmethod
    def _v6(cls, value: str) -> str:
        text = _network(value, 6, "ipv6_cidr")
        if ipaddress.IPv6Network(text).prefixlen != 64:
            raise ValueError(f"ipv6_cidr: '{value}' must be a /64 (SLAAC and IPAM allocate one /64 per network)")
        return text

    @field_validator("management_cidrs", "soc_collectors")
    @classmethod
    def _prefixes(cls, values: list[str]) -> list[str]:
        return [_any_network(v, "address list") for v in values]

    @field_validator("dns_nameservers")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        out = []
        for v in values:
            try:
                out.append(str(ipaddress.ip_address(v)))
            except ValueError as exc:
                raise ValueError(f"dns_nameservers: '{v}' is not an IP address") from exc
        return out


class IngressRule(_Strict):
    """One opening requested in a ticket: protocol, port range and the source prefix."""

    protocol: Literal["tcp", "udp", "icmp", "ipv6-icmp", "any"] = "tcp"
    port_min: Port | None = None
    port_max: Port | None = None
    remote_cidr: str
    description: str = ""

    @field_validator("remote_cidr")
    @classmethod
    def _remote(cls, value: str) -> str:
        return _any_network(value, "remote_cidr")

    @model_validator(mode="after")
    def _ports(self) -> IngressRule:
        if self.protocol in ("tcp", "udp"):
            if self.port_min is None:
                raise ValueError(f"ingress {self.protocol} rule needs port_min")
            if self.port_max is not None and self.port_max < self.port_min:
                raise ValueError(f"port_max {self.port_max} is below port_min {self.port_min}")
        elif self.port_min is not None or self.port_max is not None:
            raise ValueError(f"ports make no sense for protocol '{self.protocol}'")
        return self

    @property
    def ethertype(self) -> str:
        return f"IPv{ipaddress.ip_network(self.remote_cidr).version}"


class InstanceSpec(_Strict):
    name: ResourceName
    flavor: str
    image: str
    count: int = Field(1, ge=1, le=20)
    role: str = "app"


class VolumeSpec(_Strict):
    name: ResourceName
    size_gb: int = Field(ge=1, le=16384)
    attach_to: ResourceName | None = None  # an instance name (the first of its count)


class VolumeEncryption(_Strict):
    """How encrypted volume types are requested (LUKS; SM4 where the 密码应用方案 asks for 商用密码)."""

    provider: Literal["luks", "plain"] = "luks"
    cipher: Literal["aes-xts-plain64", "sm4-xts-plain64"] = "aes-xts-plain64"
    key_size: Literal[256, 512] = 256
    control_location: Literal["front-end", "back-end"] = "front-end"


class ExposureApproval(_Strict):
    """An approved 互联网暴露申请: which instance gets a floating IP from which pool."""

    ticket_id: LabelValue
    approved: bool
    approved_by: str = Field(min_length=1)
    instance: ResourceName
    pool: str = Field(min_length=1)


class SystemSpec(_Labelled):
    """One system's resources inside its department's tenant."""

    system_id: LabelValue
    name: str = ""
    project_id: str | None = None  # existing tenant; None: wired from the TenantSpec in the same request
    network_id: str | None = None
    security_group_ids: list[str] = []  # the tenant's baseline groups when the tenant is not in the request
    instances: list[InstanceSpec] = []
    volumes: list[VolumeSpec] = []
    ingress: list[IngressRule] = []
    internet_exposure: ExposureApproval | None = None
    encryption: VolumeEncryption = VolumeEncryption()

    @model_validator(mode="after")
    def _references(self) -> SystemSpec:
        names = [i.name for i in self.instances]
        if len(set(names)) != len(names):
            raise ValueError(f"system {self.system_id}: instance names repeat")
        for vol in self.volumes:
            if vol.attach_to is not None and vol.attach_to not in names:
                raise ValueError(f"volume {vol.name}: attach_to '{vol.attach_to}' is not an instance of the system")
        exposure = self.internet_exposure
        if exposure is not None and exposure.instance not in names:
            raise ValueError(f"internet_exposure: instance '{exposure.instance}' is not an instance of the system")
        return self

    @property
    def exposure_approved(self) -> bool:
        return self.internet_exposure is not None and self.internet_exposure.approved


class K8sQuota(_Strict):
    requests_cpu: str = "4"
    requests_memory: str = "8Gi"
    limits_cpu: str = "8"
    limits_memory: str = "16Gi"
    pods: int = Field(50, ge=0)
    services: int = Field(20, ge=0)
    persistent_volume_claims: int = Field(20, ge=0)
    requests_storage: str = "200Gi"
    load_balancers: int = Field(0, ge=0)  # exposure goes through an approved ticket, not a Service
    node_ports: int = Field(0, ge=0)


class K8sLimits(_Strict):
    default_cpu: str = "500m"
    default_memory: str = "512Mi"
    default_request_cpu: str = "100m"
    default_request_memory: str = "128Mi"
    max_cpu: str = "4"
    max_memory: str = "8Gi"


class K8sPort(_Strict):
    port: Port
    protocol: Literal["TCP", "UDP"] = "TCP"


class K8sAllow(_Strict):
    """A requested NetworkPolicy allow on top of the default deny."""

    name: Annotated[str, Field(pattern=DNS_LABEL)]
    direction: Literal["ingress", "egress"] = "ingress"
    pod_selector: dict[str, str] = {}
    namespace_labels: dict[str, str] | None = None  # peers: namespaces with these labels
    pod_labels: dict[str, str] | None = None  # peers: pods with these labels
    cidrs: list[str] = []
    ports: list[K8sPort] = []

    @field_validator("cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        return [_any_network(v, "cidrs") for v in values]

    @model_validator(mode="after")
    def _has_peer(self) -> K8sAllow:
        if self.namespace_labels is None and self.pod_labels is None and not self.cidrs:
            raise ValueError(f"allow '{self.name}' names no peer (namespace_labels, pod_labels or cidrs)")
        return self


class K8sSpec(_Labelled):
    """A department's namespace: pod security, quota, limits, default deny plus allows, the group's binding."""

    system_id: LabelValue = "shared"
    namespace: Annotated[str, Field(pattern=DNS_LABEL)]
    group: str = Field(min_length=1)
    role: Literal["view", "edit", "admin"] = "edit"
    quota: K8sQuota = K8sQuota()
    limits: K8sLimits = K8sLimits()
    allows: list[K8sAllow] = []
    allow_dns: bool = True

    @property
    def pod_security(self) -> str:
        """Enforced Pod Security Standard: restricted from level 3, baseline below."""
        return "restricted" if self.mlps_level >= 3 else "baseline"


class CloudRequest(_Strict):
    """Everything one ticket asks for. Systems without a tenant in the request must name an existing one."""

    tenant: TenantSpec | None = None
    systems: list[SystemSpec] = []
    k8s: list[K8sSpec] = []

    @model_validator(mode="after")
    def _consistent(self) -> CloudRequest:
        if self.tenant is None and not self.systems and not self.k8s:
            raise ValueError("the request asks for nothing (no tenant, systems or k8s)")
        departments = {s.department for s in [*self.systems, *self.k8s]}
        if self.tenant is not None:
            departments.add(self.tenant.department)
        if len(departments) > 1:
            raise ValueError(f"one request serves one department, found: {', '.join(sorted(departments))}")
        ids = [s.system_id for s in self.systems]
        if len(set(ids)) != len(ids):
            raise ValueError("system ids repeat in the request")
        for system in self.systems:
            if self.tenant is None and (system.project_id is None or system.network_id is None):
                raise ValueError(f"system {system.system_id}: without a tenant in the request, project_id and "
                                 "network_id of the existing tenant are required")
        namespaces = [k.namespace for k in self.k8s]
        if len(set(namespaces)) != len(namespaces):
            raise ValueError("namespaces repeat in the request")
        return self

    @property
    def department(self) -> str:
        first = self.tenant or (self.systems or self.k8s)[0]
        return first.department
