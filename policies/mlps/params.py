"""Parameters of the automatic checks, loaded from ``check_params.yaml`` (each group cites its source)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PARAMS_FILE = Path(__file__).with_name("check_params.yaml")


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str = Field(min_length=1)


class Password(_Group):
    min_length: int = Field(ge=1)
    min_classes: int = Field(ge=1, le=4)
    max_age_days: int = Field(ge=1)


class Lockout(_Group):
    max_attempts: int = Field(ge=1)
    min_unlock_seconds: int = Field(ge=0)


class Accounts(_Group):
    root_ssh_login_allowed: list[str] = Field(min_length=1)  # sshd PermitRootLogin values that pass


class Session(_Group):
    max_idle_seconds: int = Field(ge=1)


class Ports(_Group):
    high_risk: list[int]
    cleartext_admin: list[int]
    admin: list[int]
    database: list[int]


class Patching(_Group):
    max_pending_security_updates: int = Field(ge=0)


class AntiMalware(_Group):
    max_signature_age_days: int = Field(ge=0)


class Facts(_Group):
    max_age_days: int = Field(ge=1)


class Soc(_Group):
    min_retention_days: int = Field(ge=1)
    max_alerts_over_sla: int = Field(ge=0)
    min_network_rules: int = Field(ge=0)


class Backup(_Group):
    max_age_hours: int = Field(ge=1)
    restore_test_max_age_days: int = Field(ge=1)


class Assessment(_Group):
    max_age_days: dict[int, int]


class Drills(_Group):
    max_interval_days: int = Field(ge=1)


class Tls(_Group):
    allowed: list[str] = Field(min_length=1)


class Location(_Group):
    countries: list[str] = Field(min_length=1)


PodSecurityLevel = Literal["privileged", "baseline", "restricted"]


class K8s(_Group):
    """Kubernetes namespaces: accepted Pod Security levels per 等保 level, what quotas and limits must hold, which
    roles and subjects count as over-privileged."""

    pod_security: dict[int, list[PodSecurityLevel]]
    require_egress_deny: bool
    quota_keys: list[str] = Field(min_length=1)  # ResourceQuota hard limits that must be set
    limit_keys: list[Literal["default", "default_request", "max"]] = Field(min_length=1)  # LimitRange (Container)
    privileged_roles: list[str] = Field(min_length=1)  # ClusterRoles nobody is bound to outside the platform team
    broad_groups: list[str]  # groups that mean "everyone": never a binding's subject

    @field_validator("pod_security")
    @classmethod
    def _every_level(cls, value: dict[int, list[str]]) -> dict[int, list[str]]:
        missing = [level for level in (2, 3) if not value.get(level)]
        if missing:
            raise ValueError(f"accepted Pod Security levels are needed for 等保 level(s) {missing}")
        return value


class CheckParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    password: Password
    lockout: Lockout
    accounts: Accounts
    session: Session
    ports: Ports
    patching: Patching
    antimalware: AntiMalware
    facts: Facts
    soc: Soc
    backup: Backup
    assessment: Assessment
    drills: Drills
    tls: Tls
    location: Location
    k8s: K8s


def load_params(path: Path = PARAMS_FILE) -> CheckParams:
    """Read and validate the parameters file; errors name the file and the field."""
    try:
        return CheckParams.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path.name}: {problems}") from None


@cache
def default_params() -> CheckParams:
    return load_params()
