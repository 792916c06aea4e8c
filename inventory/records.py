"""Pydantic models of register records as they appear in import files and the API.

Enumerated fields accept a code, a zh/en label or an alias and are normalised to the code.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from inventory.vocabulary import vocabulary


def _enum(name: str) -> AfterValidator:
    return AfterValidator(lambda v: vocabulary().normalise(name, v))


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Code = Annotated[str, Field(pattern=r"^[A-Z0-9]{2,16}$")]


class DepartmentRecord(_Record):
    code: Code
    name: str = Field(min_length=1, max_length=128)
    name_en: str | None = Field(None, max_length=256)
    parent: Code | None = None


class PrefixRecord(_Record):
    cidr: str
    network: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$")
    purpose: str | None = Field(None, max_length=256)

    @field_validator("cidr")
    @classmethod
    def _canonical_network(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_network(value, strict=True))
        except ValueError as exc:
            raise ValueError(f"'{value}' is not a network in canonical form ({exc})") from None


class NetworkRecord(_Record):
    code: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$")
    name: str = Field(min_length=1, max_length=128)
    zone: Annotated[str, _enum("network_zone")]
    department: Code | None = None


class GradingPart(_Record):
    object: Annotated[str, _enum("grading_object")]
    degree: Annotated[str, _enum("grading_degree")]

    def level(self) -> int:
        return vocabulary().grade(self.object, self.degree)


class Grading(_Record):
    """GB/T 22240-2020 grading record: 业务信息安全 and 系统服务安全, each object × degree."""

    business_info: GradingPart
    system_service: GradingPart

    def level(self) -> int:
        return max(self.business_info.level(), self.system_service.level())


def mlps_level_input(value: Any) -> Any:
    """An 等保 level as given (a number, or a label such as 三级 / 第三级) made ready for integer validation."""
    if isinstance(value, bool):
        raise ValueError("must be a level 1–4, not true/false")
    if isinstance(value, str) and not value.strip().isdigit():
        return int(vocabulary().normalise("mlps_level", value))
    return value


SystemId = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{2,31}$")]


class SystemRecord(_Record):
    id: SystemId
    name: str = Field(min_length=1, max_length=128)
    department: Code
    owner: str = Field(min_length=1, max_length=128)
    mlps_level: int = Field(ge=1, le=4)
    grading: Grading
    data_class: Annotated[str, _enum("data_class")]
    public_data_level: Annotated[str, _enum("public_data_level")]
    hosting: Annotated[str, _enum("hosting")]
    network_stack: Annotated[str, _enum("network_stack")]
    network_zone: Annotated[str, _enum("network_zone")]
    status: Annotated[str, _enum("system_status")]
    last_activity: datetime | None = None
    depends_on: list[SystemId] = Field(default_factory=list)
    """Systems this system needs (calls); they migrate in an earlier or the same wave."""

    @field_validator("mlps_level", mode="before")
    @classmethod
    def _level_label(cls, value: Any) -> Any:
        return mlps_level_input(value)

    @field_validator("last_activity")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if value > datetime.now(UTC) + timedelta(days=1):
            raise ValueError(f"{value.isoformat()} is in the future")
        return value

    @field_validator("depends_on", mode="before")
    @classmethod
    def _depends_on_list(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):  # "SYS-A;SYS-B", as in a CSV cell
            return [item.strip() for item in value.split(";") if item.strip()]
        return value

    @field_validator("depends_on")
    @classmethod
    def _depends_on_others(cls, value: list[str], info: ValidationInfo) -> list[str]:
        own = info.data.get("id")
        if own is not None and own in value:
            raise ValueError(f"system {own} cannot depend on itself")
        return list(dict.fromkeys(value))  # duplicates removed, order kept

    @model_validator(mode="after")
    def _level_matches_grading(self) -> SystemRecord:
        graded = self.grading.level()
        if graded > 4:
            raise ValueError(
                f"grading gives level {graded}; level 5 systems are outside this register (levels 1–4)"
            )
        if graded != self.mlps_level:
            raise ValueError(
                f"mlps_level {self.mlps_level} does not match the GB/T 22240 grading record "
                f"(业务信息 {self.grading.business_info.level()}, 系统服务 {self.grading.system_service.level()} "
                f"→ level {graded})"
            )
        return self


class HostRecord(_Record):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    system: str
    ipv4: str | None = None
    ipv6: str | None = None
    os: str = Field(min_length=1, max_length=64)
    role: Annotated[str, _enum("host_role")]

    @field_validator("ipv4", "ipv6")
    @classmethod
    def _address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        v4 = info.field_name == "ipv4"
        try:
            return str(ipaddress.IPv4Address(value) if v4 else ipaddress.IPv6Address(value))
        except ValueError:
            raise ValueError(f"'{value}' is not an {'IPv4' if v4 else 'IPv6'} address") from None

    @model_validator(mode="after")
    def _has_address(self) -> HostRecord:
        if self.ipv4 is None and self.ipv6 is None:
            raise ValueError("a host needs an IPv4 or an IPv6 address")
        return self


RECORD_TYPES: dict[str, type[_Record]] = {
    "department": DepartmentRecord,
    "network": NetworkRecord,
    "prefix": PrefixRecord,
    "system": SystemRecord,
    "host": HostRecord,
}
