"""Settings: defaults, then a YAML file, then ``YUNSHU_*`` environment variables (highest priority).

``YUNSHU_HOME`` names the var/ directory (databases, keys, spool, job artifacts) so several
instances can run side by side. The YAML file is ``$YUNSHU_HOME/config.yaml`` unless
``YUNSHU_CONFIG`` points elsewhere. Nested keys use ``__`` in the environment, e.g.
``YUNSHU_PORTAL__PORT=8081``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


class PortalSettings(BaseModel):
    """Web service and login policy (等保 8.1.4.1 身份鉴别)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    session_idle_minutes: int = Field(15, ge=1, le=24 * 60)
    session_absolute_hours: int = Field(12, ge=1, le=24 * 7)
    lockout_threshold: int = Field(5, ge=1, le=100)
    lockout_minutes: int = Field(15, ge=1, le=24 * 60)
    password_min_length: int = Field(12, ge=8, le=128)
    password_min_classes: int = Field(3, ge=1, le=4)
    password_max_age_days: int = Field(90, ge=1, le=3650)
    cookie_secure: bool = False
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_self_signed: bool = False  # create and use var/keys/portal-tls.{crt,key} when no certificate is given
    default_language: str = "zh-CN"
    mfa_required_roles: list[str] = ["admin", "auditor"]


    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_certfile or self.tls_self_signed)


class WebhookSettings(BaseModel):
    """Where alert notifications go: the URL, the HMAC secret, the lowest severity sent."""

    url: str = Field(pattern=r"^https?://")
    secret: str = Field(min_length=16)
    min_severity: Literal["low", "medium", "high", "critical"] = "high"


# 网络安全法 第二十一条: network logs kept no less than six months; longer for 重要/核心 data (our choice).
RETENTION_DEFAULTS: dict[str, int] = {"general": 180, "important": 365, "core": 1095, "unclassified": 180}


class SocSettings(BaseModel):
    """Security operations: receivers, the event store, PII masking, retention, rules and notifications."""

    syslog_host: str = "127.0.0.1"
    syslog_port: int = Field(5514, ge=1, le=65535)
    # where on-boarded hosts forward their logs ("host:port", "[v6]:port"); None: the listener's address, or for
    # lab hosts the lab's controller address when the listener is on loopback (then listen on 0.0.0.0 too)
    syslog_forward_target: str | None = None
    store_url: str | None = None  # None: the embedded SQLite store under $YUNSHU_HOME/soc/events.db
    mask_pii: bool = True
    timezone: str = "Asia/Shanghai"
    max_line_bytes: int = Field(65536, ge=1024)
    http_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # A configured mapping changes only the classes it names; the others keep these defaults.
    retention_days: dict[str, int] = Field(default_factory=lambda: dict(RETENTION_DEFAULTS))
    detection: bool = True  # run the Sigma rules on ingested events and raise alerts
    # the service's detection reader in a process of its own (an interpreter and a CPU to itself) instead of a
    # thread beside the receivers and the store writer; see soc.detection_process
    detection_process: bool = True
    rules_dirs: list[Path] = []  # extra Sigma folders (e.g. a SigmaHQ checkout), read with the ECS field mapping
    webhooks: list[WebhookSettings] = []

    @field_validator("retention_days")
    @classmethod
    def _merge_retention_defaults(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(RETENTION_DEFAULTS))
        if unknown:
            raise ValueError(f"retention_days: unknown data class {unknown}; expected one of "
                             f"{', '.join(RETENTION_DEFAULTS)}")
        return {**RETENTION_DEFAULTS, **value}

    @model_validator(mode="after")
    def _at_least_six_months(self) -> SocSettings:
        short = {k: v for k, v in self.retention_days.items() if v < 180}
        if short:
            raise ValueError(f"retention below 180 days is not allowed (网络安全法 第二十一条): {short}")
        return self


class NetSettings(BaseModel):
    """The e-Government extranet: the city's IPv6 block and how it is carved (IPAM)."""

    ipv6_block: str = "2001:db8::/32"  # documentation range (RFC 3849) until the city's block is configured
    department_prefix_len: int = Field(48, ge=16, le=64)
    subnet_prefix_len: int = Field(64, ge=48, le=124)

    @model_validator(mode="after")
    def _nested(self) -> NetSettings:
        import ipaddress

        block = ipaddress.ip_network(self.ipv6_block)
        if block.version != 6:
            raise ValueError(f"net.ipv6_block must be an IPv6 prefix, not {self.ipv6_block}")
        if not block.prefixlen <= self.department_prefix_len <= self.subnet_prefix_len:
            raise ValueError("net: block ≤ department_prefix_len ≤ subnet_prefix_len is required")
        return self


class JobSettings(BaseModel):
    """Automation jobs (ansible-runner): how many run at once, how long one may take, parallel SSH connections."""

    max_concurrent: int = Field(4, ge=1, le=64)
    timeout_s: int = Field(3600, ge=10)
    forks: int = Field(50, ge=1, le=500)
    queue_wait_s: int = Field(600, ge=0)  # how long a job waits for a free slot before it is refused


class KubernetesSettings(BaseModel):
    """The Kubernetes cluster the 等保 evidence collector reads (namespaces, network policies, quotas, RBAC).

    Not configured by default. Then, unless ``in_use`` declares that the city runs Kubernetes tenants, the collector
    records "no cluster configured, none declared in use" and the Kubernetes checks are 不适用; with ``in_use: true``
    they stay 待人工 until a cluster is configured. Give ``kubeconfig`` (optionally ``context``) or
    ``in_cluster: true`` (the pod's service account), e.g. ``YUNSHU_KUBERNETES__KUBECONFIG=/etc/yunshu/kubeconfig``.
    The account needs only list/get on namespaces,
    networkpolicies, resourcequotas, limitranges, roles, rolebindings, clusterroles and clusterrolebindings.
    """

    kubeconfig: Path | None = None
    context: str | None = None  # None: the kubeconfig's current-context
    in_cluster: bool = False
    request_timeout_s: float = Field(10.0, gt=0, le=300)
    in_use: bool = False  # Kubernetes tenants exist even though no cluster is configured here (items → 待人工)

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesSettings:
        if self.in_cluster and self.kubeconfig is not None:
            raise ValueError("kubernetes: give either kubeconfig or in_cluster, not both")
        if self.context is not None and self.kubeconfig is None:
            raise ValueError("kubernetes.context needs kubeconfig")
        return self

    @property
    def configured(self) -> bool:
        return self.in_cluster or self.kubeconfig is not None


class Settings(BaseSettings):
    """Process-wide settings; build with :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix="YUNSHU_", env_nested_delimiter="__", extra="ignore")

    home: Path = Path("var")
    database_url: str | None = None
    admin_password: str | None = None
    portal: PortalSettings = PortalSettings()
    soc: SocSettings = SocSettings()
    net: NetSettings = NetSettings()
    jobs: JobSettings = JobSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=config_path()))

    @property
    def db_url(self) -> str:
        """The control-plane database URL: the configured one or a SQLite file under home."""
        return self.database_url or f"sqlite:///{(self.home / 'yunshu.db').resolve()}"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"


def home_dir() -> Path:
    """The var/ directory named by ``YUNSHU_HOME`` (default ``./var``)."""
    return Path(os.environ.get("YUNSHU_HOME", "var"))


def config_path() -> Path:
    """The YAML config file: ``YUNSHU_CONFIG`` or ``$YUNSHU_HOME/config.yaml``."""
    explicit = os.environ.get("YUNSHU_CONFIG")
    return Path(explicit) if explicit else home_dir() / "config.yaml"


def load_settings(*, create_home: bool = True, **overrides: Any) -> Settings:
    """Read settings from file and environment; keyword overrides win over both."""
    settings = Settings(**overrides)
    if create_home:
        settings.home.mkdir(parents=True, exist_ok=True)
    return settings
