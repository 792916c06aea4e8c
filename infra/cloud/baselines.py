"""Baseline security-group profiles per 等保 level, read from ``baselines.yaml`` and validated at load time."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

BASELINES_FILE = Path(__file__).with_name("baselines.yaml")
Remote = Literal["tenant", "management", "soc", "dns", "any"]


class BaselineRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    direction: Literal["ingress", "egress"]
    protocol: Literal["tcp", "udp", "icmp", "ipv6-icmp", "any"]
    ports: tuple[int, int] | None = None
    remote: Remote

    @model_validator(mode="after")
    def _sane(self) -> BaselineRule:
        if self.direction == "ingress" and self.remote == "any":
            raise ValueError("a baseline may not open ingress from any address")
        if self.ports is not None:
            low, high = self.ports
            if not 1 <= low <= high <= 65535:
                raise ValueError(f"ports {self.ports}: need 1 ≤ low ≤ high ≤ 65535")
            if self.protocol not in ("tcp", "udp"):
                raise ValueError(f"ports given for protocol {self.protocol}")
        return self


class BaselineGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9-]+$")
    description: str
    restrict_egress: bool
    rules: list[BaselineRule]


class BaselineProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    levels: list[int]
    groups: list[BaselineGroup]


class Baselines(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profiles: list[BaselineProfile]

    @model_validator(mode="after")
    def _each_level_once(self) -> Baselines:
        levels = [lvl for p in self.profiles for lvl in p.levels]
        if sorted(levels) != [1, 2, 3, 4]:
            raise ValueError(f"profiles must cover levels 1–4 exactly once, got {sorted(levels)}")
        return self

    def for_level(self, level: int) -> BaselineProfile:
        """The profile that applies to ``level``."""
        return next(p for p in self.profiles if level in p.levels)


def load_baselines(path: Path = BASELINES_FILE) -> Baselines:
    """Read and validate a baselines file (ValueError naming the file and the problem)."""
    try:
        return Baselines.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"{path}: invalid baselines: {exc}") from exc


@cache
def default_baselines() -> Baselines:
    return load_baselines()
