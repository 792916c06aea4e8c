"""The alert policy (severity scoring, SLA, dedup window, workflow) read from ``policy.yaml`` and validated."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

POLICY_FILE = Path(__file__).with_name("policy.yaml")
Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["new", "acknowledged", "investigating", "resolved", "false_positive"]
STATUSES: tuple[Status, ...] = ("new", "acknowledged", "investigating", "resolved", "false_positive")
OPEN_STATUSES: tuple[Status, ...] = ("new", "acknowledged", "investigating")
SEVERITY_ORDER: tuple[Severity, ...] = ("low", "medium", "high", "critical")


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid")
    severity: Severity
    min_score: int


class Sla(BaseModel):
    model_config = ConfigDict(extra="forbid")
    acknowledge: int = Field(gt=0)
    resolve: int = Field(gt=0)


class AlertPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level_score: dict[Literal["informational", "low", "medium", "high", "critical"], int]
    mlps_level_bonus: dict[int, int]
    data_class_bonus: dict[str, int]
    severity_bands: list[Band] = Field(min_length=1)
    sla_minutes: dict[Severity, Sla]
    dedup_window_minutes: int = Field(gt=0)
    group_fields: list[str] = Field(min_length=1)
    risk_weights: dict[Severity, int]
    transitions: dict[Status, list[Status]]

    @model_validator(mode="after")
    def _complete(self) -> AlertPolicy:
        missing = set(SEVERITY_ORDER) - set(self.sla_minutes)
        if missing:
            raise ValueError(f"sla_minutes lacks {sorted(missing)}")
        if set(self.transitions) != set(STATUSES):
            raise ValueError(f"transitions must list every status {list(STATUSES)}")
        bands = [b.min_score for b in self.severity_bands]
        if bands != sorted(bands, reverse=True) or bands[-1] > 0:
            raise ValueError("severity_bands go from the highest min_score down to one at 0 or below")
        return self

    def score(self, level: str, mlps_level: int | None, data_class: str | None) -> int:
        """Rule level weighted by the asset's 等保 level and data class."""
        return (self.level_score.get(level, self.level_score["medium"])  # type: ignore[call-overload]
                + self.mlps_level_bonus.get(mlps_level or 0, 0) + self.data_class_bonus.get(data_class or "", 0))

    def severity(self, level: str, mlps_level: int | None, data_class: str | None) -> Severity:
        score = self.score(level, mlps_level, data_class)
        return next(b.severity for b in self.severity_bands if score >= b.min_score)

    def can_move(self, current: str, target: str) -> bool:
        return target in self.transitions.get(current, [])  # type: ignore[call-overload]


@cache
def alert_policy(path: Path = POLICY_FILE) -> AlertPolicy:
    """The validated policy (pydantic names what is wrong in the file)."""
    return AlertPolicy.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
