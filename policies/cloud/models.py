"""Data shapes of the cloud policy pack: planned resources, rule metadata, violations and the report."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["low", "medium", "high", "critical"]


class PlannedResource(BaseModel):
    """One resource as a plan (or CrossGuard) sees it: Pulumi type token, name, properties (camelCase)."""

    model_config = ConfigDict(frozen=True)

    urn: str
    type: str
    name: str
    props: dict[str, Any] = {}
    id: str | None = None
    parent: str | None = None
    dependencies: list[str] = []
    custom: bool = True


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class MlpsRef(BaseModel):
    """The 等保 (GB/T 22239-2019) control the rule supports: level-3 clause number and control point."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clause: str = Field(pattern=r"^8\.[12](\.\d+){2}$")
    control: str = Field(min_length=1)


class RuleMeta(BaseModel):
    """One rule's metadata. ``check`` names the function in :mod:`policies.cloud.checks`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^YS-CLOUD-\d{3}$")
    check: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    scope: Literal["resource", "stack"]
    severity: Severity
    enforcement: Literal["mandatory", "advisory"]
    mlps: MlpsRef | None = None
    basis: str | None = None  # other policy source when the rule is not (only) a 等保 control
    title: Text
    description: Text
    params: dict[str, Any] = {}


class Violation(BaseModel):
    """A rule broken by one resource (or by the stack as a whole when ``urn`` is None)."""

    rule_id: str
    severity: Severity
    urn: str | None
    resource: str | None
    type: str | None
    message: str  # zh-CN first, English after " / "


class RuleResult(BaseModel):
    rule_id: str
    title: Text
    severity: Severity
    enforcement: Literal["mandatory", "advisory"]
    mlps: MlpsRef | None
    passed: bool
    violations: list[Violation]


class PolicyReport(BaseModel):
    """All rules over one plan. ``passed``: no mandatory rule was broken."""

    passed: bool
    checked_resources: int
    violations: int
    results: list[RuleResult]
