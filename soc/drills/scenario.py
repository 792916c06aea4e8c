"""Drill scenarios as data (``soc/drills/scenarios/*.yml``): steps with ATT&CK techniques and the logs they leave."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

SCENARIOS = Path(__file__).with_name("scenarios")
SHANGHAI = ZoneInfo("Asia/Shanghai")
_TECHNIQUE = re.compile(r"T\d{4}(\.\d{3})?")
_INDEX = re.compile(r"\{i(?::([^}]*))?\}")
_TIME = re.compile(r"\{t:([^}]*)\}")
DrillType = Literal["attack_defense", "emergency"]


class ScenarioStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    technique: str
    target: str = Field(min_length=1, description="host name (or address) the step acts on")
    expected_rule: str | None = None
    offset_seconds: float = Field(0, ge=0)
    repeat: int = Field(1, ge=1, le=10_000)
    step_seconds: float = Field(1, ge=0)
    lines: list[str] = []

    @field_validator("technique")
    @classmethod
    def _attack_id(cls, value: str) -> str:
        if not _TECHNIQUE.fullmatch(value):
            raise ValueError("technique must be an ATT&CK id such as T1110 or T1110.001")
        return value

    def raw_lines(self, start: datetime) -> Iterator[tuple[datetime, str]]:
        """(time, line) for every line of the step, the drill starting at ``start``."""
        first = start + timedelta(seconds=self.offset_seconds)
        for i in range(self.repeat):
            t = (first + timedelta(seconds=i * self.step_seconds)).astimezone(SHANGHAI)
            for line in self.lines:
                line = _INDEX.sub(lambda m, i=i: format(i, m.group(1) or ""), line)
                yield t, _TIME.sub(lambda m, t=t: t.strftime(m.group(1)), line)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    title_en: str
    type: DrillType
    scenario: str
    teams: dict[str, list[str]] = {}
    attacker: str | None = None
    steps: list[ScenarioStep] = Field(min_length=1)


@cache
def scenarios(directory: Path = SCENARIOS) -> dict[str, Scenario]:
    """Every scenario file, validated (pydantic names the file and what is wrong)."""
    out: dict[str, Scenario] = {}
    for path in sorted(directory.glob("*.yml")):
        try:
            scenario = Scenario.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        out[scenario.code] = scenario
    return out
