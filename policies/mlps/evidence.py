"""Evidence models: what collectors hand to the evaluation, one :class:`Evidence` per system.

Every section is optional: ``None`` means "not collected", which the checks report as 待人工 (never as a pass or a
failure). Collectors fill the sections they own — the register, Ansible ``evidence.yml`` host facts, the Pulumi
plan/state, SOC health, drill records, crypto/TLS probes, the Kubernetes API — and stamp them with :class:`Provenance`.
Field values use the register's vocabulary codes (inventory/vocabulary.yaml).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CLOUD_HOSTING = ("gov_cloud", "dept_cloud")  # register hosting codes of systems that are customers of a cloud


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Provenance(_Model):
    """Where a section of evidence came from: source, collection time and SHA-256 of the raw material."""

    source: str
    collected_at: datetime
    digest: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


# --- register -------------------------------------------------------------------------------------------------------


class RegisteredHost(_Model):
    name: str
    role: str
    ipv4: str | None = None
    ipv6: str | None = None


class RegisteredNetwork(_Model):
    code: str
    prefixes: list[str] = Field(default_factory=list)
    department: str | None = None


class RegisterFacts(_Model):
    """The system as the register (台账) knows it, plus its filing and assessment records."""

    system_id: str
    name: str = ""
    department: str = ""
    owner: str = ""
    mlps_level: int = Field(ge=1, le=4)
    grading_info_level: int | None = Field(None, ge=1, le=5)
    grading_service_level: int | None = Field(None, ge=1, le=5)
    data_class: str | None = None  # core / important / general
    public_data_level: str | None = None  # L1…L4
    hosting: str | None = None  # local_idc / dept_cloud / gov_cloud
    network_stack: str | None = None  # ipv4 / dual / ipv6
    status: str = "live"
    cloud_role: Literal["platform", "customer"] | None = None
    business_continuity_high: bool = False  # 业务连续性要求高 (high-risk guide scope)
    critical_industry: bool = False  # 关键行业 (high-risk guide scope)
    filing_no: str | None = None  # 备案证明编号
    last_assessment: date | None = None  # cover date of the latest 等级测评 report
    hosts: list[RegisteredHost] = Field(default_factory=list)
    networks: list[RegisteredNetwork] = Field(default_factory=list)

    @property
    def effective_cloud_role(self) -> str | None:
        """Systems on a cloud are its customers unless stated otherwise."""
        if self.cloud_role:
            return self.cloud_role
        return "customer" if self.hosting in CLOUD_HOSTING else None


# --- hosts (Ansible evidence.yml facts) -------------------------------------------------------------------------


class PasswordPolicy(_Model):
    minlen: int | None = None
    minclass: int | None = None  # pam_pwquality character classes required
    max_days: int | None = None  # PASS_MAX_DAYS


class Faillock(_Model):
    enabled: bool = False
    deny: int | None = None
    unlock_time: int | None = None  # seconds; 0 = until an admin unlocks


class Sshd(_Model):
    permit_root_login: str | None = None  # yes / no / prohibit-password / forced-commands-only
    permit_empty_passwords: bool | None = None
    password_authentication: bool | None = None
    authentication_methods: str | None = None  # e.g. "publickey,keyboard-interactive"
    client_alive_interval: int | None = None
    client_alive_count_max: int | None = None
    allow_users: list[str] = Field(default_factory=list)
    allow_groups: list[str] = Field(default_factory=list)
    allowed_sources: list[str] = Field(default_factory=list)  # firewall / hosts.allow sources for the ssh port


class Auditd(_Model):
    running: bool = False
    rules: int = 0
    immutable: bool = False  # -e 2


class Rsyslog(_Model):
    forwarding: bool = False
    targets: list[str] = Field(default_factory=list)


class Listener(_Model):
    proto: Literal["tcp", "udp"]
    port: int = Field(ge=0, le=65535)
    address: str = "0.0.0.0"
    process: str | None = None


class Mac(_Model):
    kind: Literal["selinux", "apparmor", "none"] = "none"
    mode: str = "disabled"  # enforcing / permissive / disabled (SELinux); enabled / disabled (AppArmor)


class AntiMalware(_Model):
    installed: bool = False
    running: bool = False
    signatures_age_days: int | None = None


class Baseline(_Model):
    playbook: str | None = None
    applied_at: datetime | None = None


class HostFacts(_Model):
    """Facts gathered on one host by the evidence playbook. A ``None`` sub-section was not gathered."""

    name: str
    collected_at: datetime
    password: PasswordPolicy | None = None
    empty_password_accounts: list[str] | None = None
    faillock: Faillock | None = None
    tmout: int | None = None  # shell TMOUT in seconds
    sshd: Sshd | None = None
    uid0_accounts: list[str] | None = None
    default_accounts_enabled: list[str] | None = None  # vendor/default accounts still usable (not root)
    stale_accounts: list[str] | None = None  # enabled accounts expired or unused beyond the limit
    shared_accounts: list[str] | None = None
    sudo_nopasswd_all: list[str] | None = None  # users/groups with NOPASSWD: ALL
    mac: Mac | None = None
    auditd: Auditd | None = None
    rsyslog: Rsyslog | None = None
    listening: list[Listener] | None = None
    pending_security_updates: int | None = None
    exploitable_vulns: list[str] | None = None  # verified exploitable (CVE ids)
    antimalware: AntiMalware | None = None
    baseline: Baseline | None = None


# --- infrastructure (Pulumi plan/state, backups) ---------------------------------------------------------------


class Volume(_Model):
    name: str
    encrypted: bool


class Instance(_Model):
    name: str
    role: str | None = None
    floating_ip: bool = False
    exposure_approved: bool = False
    in_register: bool = True  # False: exists in the cloud but not in the register / plan (drift)


class SecurityRule(_Model):
    group: str
    direction: Literal["ingress", "egress"] = "ingress"
    protocol: str | None = None  # tcp / udp / icmp / None = any
    port_min: int | None = None
    port_max: int | None = None
    remote: str | None = None  # CIDR; None = any

    @field_validator("port_max")
    @classmethod
    def _range(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 65535:
            raise ValueError("port out of range")
        return value


class Backups(_Model):
    policy: bool = False  # a schedule and retention are defined
    last_backup_at: datetime | None = None
    offsite: bool = False
    offsite_realtime: bool = False
    local_copy: bool = False  # a copy held outside the cloud (cloud customer)
    last_restore_test_at: datetime | None = None


class InfraFacts(_Model):
    region: str | None = None
    country: str | None = None  # ISO 3166 code of the infrastructure location
    ops_countries: list[str] = Field(default_factory=list)
    platform_mlps_level: int | None = Field(None, ge=1, le=4)  # the hosting cloud platform's level
    volumes: list[Volume] = Field(default_factory=list)
    instances: list[Instance] = Field(default_factory=list)
    security_rules: list[SecurityRule] = Field(default_factory=list)
    default_deny: bool | None = None  # groups and k8s namespaces deny unless allowed
    isolated_tenant_network: bool | None = None  # the system's networks are not shared with other departments
    backups: Backups | None = None


# --- SOC, drills, crypto -------------------------------------------------------------------------------------


class SocHealth(_Model):
    as_of: datetime
    hosts_reporting_24h: list[str] = Field(default_factory=list)
    retention_days: int | None = None
    network_sources_reporting: bool = False  # firewall / IDS / WAF logs for the system's boundary
    network_rules_enabled: int = 0
    alerts_total: int = 0
    alerts_over_sla: int = 0  # open longer than the acknowledgement SLA


class Drill(_Model):
    kind: Literal["emergency", "attack_defense"]
    held_on: date
    findings_total: int = 0
    findings_open: int = 0


class DrillRecords(_Model):
    drills: list[Drill] = Field(default_factory=list)


class TlsEndpoint(_Model):
    name: str
    protocols: list[str] = Field(default_factory=list)  # e.g. ["TLSv1.2", "TLSv1.3"]
    plaintext: bool = False  # also serves the same content without TLS


class CryptoFacts(_Model):
    endpoints: list[TlsEndpoint] = Field(default_factory=list)
    scheme_on_file: bool = False  # 密码应用方案 filed with the ticket
    scheme_requires_sm: bool = False  # the scheme requires GM/T algorithms (SM2/SM3/SM4)
    sm_algorithms_in_use: list[str] = Field(default_factory=list)
    certified_products: bool | None = None  # products hold 商用密码产品认证


# --- Kubernetes (the cluster's API, read per namespace) ---------------------------------------------------------


class K8sPeer(_Model):
    """One peer of a NetworkPolicy rule. Selectors are ``matchLabels`` with ``matchExpressions`` as ``key op (v…)``.

    A selector of ``None`` was not given; ``{}`` selects everything (every namespace / every pod)."""

    cidr: str | None = None
    except_cidrs: list[str] = Field(default_factory=list)
    namespace_selector: dict[str, str] | None = None
    pod_selector: dict[str, str] | None = None


class K8sRule(_Model):
    """One ingress or egress rule: no peers means any peer, no ports means every port."""

    peers: list[K8sPeer] = Field(default_factory=list)
    ports: list[str] = Field(default_factory=list)  # "TCP/8080", "UDP/53", "TCP/8000-8100", "TCP/*"


class K8sNetworkPolicy(_Model):
    """A NetworkPolicy with its policy types as Kubernetes applies them (Ingress implied; Egress when it has egress
    rules, unless policyTypes is given)."""

    name: str
    pod_selector: dict[str, str] = Field(default_factory=dict)  # {} selects every pod of the namespace
    policy_types: list[Literal["Ingress", "Egress"]] = Field(default_factory=list)
    ingress: list[K8sRule] = Field(default_factory=list)
    egress: list[K8sRule] = Field(default_factory=list)


class K8sQuota(_Model):
    name: str
    hard: dict[str, str] = Field(default_factory=dict)


class K8sLimit(_Model):
    """One item of a LimitRange (``type`` Container / Pod / PersistentVolumeClaim)."""

    type: str
    default: dict[str, str] = Field(default_factory=dict)
    default_request: dict[str, str] = Field(default_factory=dict)
    max: dict[str, str] = Field(default_factory=dict)


class K8sLimitRange(_Model):
    name: str
    limits: list[K8sLimit] = Field(default_factory=list)


class K8sSubject(_Model):
    kind: str  # User / Group / ServiceAccount
    name: str
    namespace: str | None = None


class K8sBinding(_Model):
    """A RoleBinding of the namespace, or a ClusterRoleBinding (``scope`` cluster: it grants in every namespace)."""

    name: str
    scope: Literal["namespace", "cluster"] = "namespace"
    role_kind: str  # Role / ClusterRole
    role: str
    subjects: list[K8sSubject] = Field(default_factory=list)


class K8sPolicyRule(_Model):
    api_groups: list[str] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    verbs: list[str] = Field(default_factory=list)


class K8sRole(_Model):
    """A Role of the namespace or a ClusterRole that one of its RoleBindings references."""

    name: str
    kind: Literal["Role", "ClusterRole"] = "Role"
    rules: list[K8sPolicyRule] = Field(default_factory=list)


class K8sFacts(_Model):
    """One namespace of the system as the cluster's API shows it. A ``None`` list was not read (see
    ``unreadable`` for why); an empty list was read and holds nothing."""

    namespace: str
    cluster: str = ""  # the API server read
    labels: dict[str, str] = Field(default_factory=dict)
    shared: bool = False  # the department's shared namespace (system-id label "shared"), not the system's own
    pod_security_enforce: str | None = None  # pod-security.kubernetes.io/enforce; None: label absent
    network_policies: list[K8sNetworkPolicy] | None = None
    quotas: list[K8sQuota] | None = None
    limit_ranges: list[K8sLimitRange] | None = None
    bindings: list[K8sBinding] | None = None  # the namespace's RoleBindings and the non-default ClusterRoleBindings
    roles: list[K8sRole] | None = None  # the namespace's Roles and the ClusterRoles its RoleBindings reference
    unreadable: dict[str, str] = Field(default_factory=dict)  # what could not be read → why (e.g. "403 Forbidden")


class Evidence(_Model):
    """Everything known about one system. Missing sections are ``None``.

    The register section is read from the key ``register`` (attribute ``system``).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    system: RegisterFacts = Field(alias="register")
    hosts: list[HostFacts] | None = None
    infra: InfraFacts | None = None
    soc: SocHealth | None = None
    drills: DrillRecords | None = None
    crypto: CryptoFacts | None = None
    k8s: list[K8sFacts] | None = None  # the system's Kubernetes namespaces; [] = read, none found
    provenance: dict[str, Provenance] = Field(default_factory=dict)
