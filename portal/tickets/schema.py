"""What a ticket must say (the file / API shape) and the ticket policy (types, timeouts, expiry, quotas)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from inventory.records import Grading, mlps_level_input
from inventory.vocabulary import vocabulary
from portal.api_types import DB_INT_MAX
from portal.tickets.models import TICKET_TYPES

POLICY_FILE = Path(__file__).with_name("policy.yaml")
LOCAL_ZONE = ZoneInfo("Asia/Shanghai")


def start_of_day(day: date) -> datetime:
    """A date in a ticket means the start of that day in Asia/Shanghai (as a UTC datetime)."""
    return datetime.combine(day, time(0, 0), tzinfo=LOCAL_ZONE).astimezone(UTC)


class TypeRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zh: str
    en: str
    system: Literal["existing", "any", "none"]
    resources: bool
    expiry: bool
    compliance: bool = False
    crypto_plan: bool = True


class Quota(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: int = Field(ge=0)
    cores: int = Field(ge=0)
    ram_gb: int = Field(ge=0)
    volume_gb: int = Field(ge=0)
    floating_ips: int = Field(ge=0)
    namespaces: int = Field(ge=0)


class QuotaPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: Quota
    departments: dict[str, Quota] = {}

    def of(self, department: str) -> Quota:
        return self.departments.get(department, self.default)


class ExpiryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reminder_days: int = Field(ge=0)
    grace_days: int = Field(ge=0)
    max_days: int = Field(ge=1)


class TicketPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    types: dict[str, TypeRule]
    timeouts_hours: dict[str, float]
    expiry: ExpiryPolicy
    quota: QuotaPolicy
    idle_days: int = Field(ge=1)

    @model_validator(mode="after")
    def _complete(self) -> TicketPolicy:
        if set(self.types) != set(TICKET_TYPES):
            raise ValueError(f"policy types {sorted(self.types)} differ from the model's {sorted(TICKET_TYPES)}")
        if set(self.timeouts_hours) != {"security_review", "resource_approval"}:
            raise ValueError("timeouts_hours must give security_review and resource_approval")
        if any(v <= 0 for v in self.timeouts_hours.values()):
            raise ValueError("timeouts_hours must be positive")
        return self

    def type_code(self, value: str) -> str:
        """A type code from its code or its zh / en label."""
        text = value.strip()
        for code, rule in self.types.items():
            if text in (code, rule.zh, rule.en) or text.replace(" ", "") == rule.zh.replace(" ", ""):
                return code
        choices = ", ".join(f"{c} ({r.zh})" for c, r in self.types.items())
        raise ValueError(f"unknown ticket type '{value}': one of {choices}")


@cache
def ticket_policy() -> TicketPolicy:
    """The validated ticket policy (read once)."""
    return TicketPolicy.model_validate(yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8")))


def _data_class(value: str) -> str:
    return vocabulary().normalise("data_class", value)


class NewSystem(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=128)
    description: str = Field("", max_length=2000)


class ComplianceRef(BaseModel):
    """The 等保 finding a remediation ticket fixes: the evaluation, the test unit and what was found."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    evaluation_id: int = Field(ge=1, le=DB_INT_MAX)
    unit: str = Field(pattern=r"^L[1-4]-[A-Z]{3,4}\d-\d{2}$")
    clause: str = Field("", max_length=64)
    control_point: str = Field("", max_length=128)
    result: Literal["不符合", "部分符合"]
    finding: str = Field(min_length=1, max_length=4000)
    suggestion_zh: str = Field("", max_length=2000)
    suggestion_en: str = Field("", max_length=2000)
    checks: list[str] = Field(default_factory=list, max_length=64)  # the automatic checks linked to the unit


class TicketIn(BaseModel):
    """A ticket as written in a file or posted to the API (see README "工单文件 / Ticket files")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: str
    title: str = Field(min_length=1, max_length=200)
    department: str = Field(pattern=r"^[A-Z0-9]{2,16}$")
    system: str | None = Field(None, pattern=r"^[A-Z0-9][A-Z0-9-]{2,31}$")
    new_system: NewSystem | None = None
    mlps_level: int | None = Field(None, ge=1, le=4)
    grading: Grading | None = None
    data_class: Annotated[str, AfterValidator(_data_class)] | None = None
    resources: dict[str, Any] | None = None
    expires: date | datetime | None = None
    justification: str = Field(min_length=1, max_length=10_000)
    data_catalog_id: str = Field(min_length=1, max_length=64)
    crypto_plan: str | None = Field(None, max_length=128)
    compliance: ComplianceRef | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return ticket_policy().type_code(value)

    @field_validator("mlps_level", mode="before")
    @classmethod
    def _level_label(cls, value: Any) -> Any:
        return mlps_level_input(value)

    @field_validator("crypto_plan")
    @classmethod
    def _blank(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _rules(self) -> TicketIn:
        rule = ticket_policy().types[self.type]
        if self.system and self.new_system:
            raise ValueError("give either system (a register id) or new_system, not both")
        if rule.system == "existing" and not self.system:
            raise ValueError(f"a {rule.zh} ticket needs system: the register id of an existing system")
        if rule.system == "any" and not (self.system or self.new_system):
            raise ValueError(f"a {rule.zh} ticket needs system (a register id) or new_system (name, description)")
        if rule.resources and not self.resources:
            raise ValueError(f"a {rule.zh} ticket needs resources (tenant / systems / k8s)")
        if not rule.resources and self.resources:
            raise ValueError(f"a {rule.zh} ticket takes no resources")
        if rule.compliance and self.compliance is None:
            raise ValueError(f"a {rule.zh} ticket needs compliance (evaluation_id, unit, result, finding)")
        if not rule.compliance and self.compliance is not None:
            raise ValueError(f"a {rule.zh} ticket takes no compliance reference")
        if rule.compliance and self.expires is not None:
            raise ValueError(f"a {rule.zh} ticket takes no expiry")
        if rule.expiry and self.expires is None:
            raise ValueError(f"a {rule.zh} ticket needs expires (a date)")
        if self.grading is not None:
            graded = self.grading.level()
            if graded > 4:
                raise ValueError(f"grading gives level {graded}; level 5 systems are outside the register (1–4)")
            if self.mlps_level is not None and self.mlps_level != graded:
                raise ValueError(f"mlps_level {self.mlps_level} does not match the GB/T 22240 grading answers "
                                 f"(→ level {graded})")
            self.mlps_level = graded
        if self.system is None and self.mlps_level is None:
            raise ValueError("give mlps_level or the GB/T 22240 grading answers (grading)")
        if self.system is None and self.data_class is None:
            raise ValueError("give data_class (一般数据 / 重要数据 / 核心数据)")
        return self

    @property
    def expires_at(self) -> datetime | None:
        if self.expires is None:
            return None
        if isinstance(self.expires, datetime):
            value = self.expires
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return start_of_day(self.expires)
