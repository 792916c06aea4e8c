"""符合率 and the report conclusion by the rules in ``scoring.yaml`` (thresholds and weights as data)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from policies.mlps.results import Result

SCORING_FILE = Path(__file__).with_name("scoring.yaml")
Conclusion = Literal["符合", "基本符合", "不符合"]
CONCLUSION_EN = {"符合": "compliant", "基本符合": "basically compliant", "不符合": "non-compliant"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConclusionRule(_Strict):
    conclusion: Conclusion
    above: float | None = Field(None, ge=0, le=1)
    at_least: float | None = Field(None, ge=0, le=1)
    requires_no_major_hazard: bool = False
    source: str = Field(min_length=1)

    def matches(self, rate: float, major_hazards: int) -> bool:
        return (
            (self.above is None or rate > self.above)
            and (self.at_least is None or rate >= self.at_least)
            and not (self.requires_no_major_hazard and major_hazards)
        )


class MajorHazard(_Strict):
    from_high_risk: bool
    source: str


class ScoringRules(_Strict):
    template: str
    source: str
    weights: dict[Result, float]
    weights_source: str
    conclusions: list[ConclusionRule] = Field(min_length=1)
    high_risk_results: list[Result]
    major_hazard: MajorHazard

    @model_validator(mode="after")
    def _complete(self) -> ScoringRules:
        scored = {Result.COMPLIANT, Result.PARTIAL, Result.NON_COMPLIANT}
        if set(self.weights) != scored:
            raise ValueError(f"weights must be given for exactly {', '.join(sorted(scored))}")
        if any(not 0 <= w <= 1 for w in self.weights.values()):
            raise ValueError("weights must lie between 0 and 1")
        if not any(r.matches(0.0, 1) for r in self.conclusions):
            raise ValueError("no conclusion rule matches a rate of 0 — the rules leave a gap")
        return self

    def rate(self, results: Iterable[Result]) -> float | None:
        """符合率 over the scored results (None when nothing is scored yet)."""
        scored = [self.weights[r] for r in results if r in self.weights]
        return sum(scored) / len(scored) if scored else None

    def rate_from_counts(self, counts: Mapping[Result, int]) -> float | None:
        """符合率 from a count per result (same as :meth:`rate`)."""
        scored = sum(n for r, n in counts.items() if r in self.weights)
        if not scored:
            return None
        return sum(self.weights[r] * n for r, n in counts.items() if r in self.weights) / scored

    def conclude(self, rate: float, major_hazards: int) -> ConclusionRule:
        """The first conclusion rule that matches."""
        for rule in self.conclusions:
            if rule.matches(rate, major_hazards):
                return rule
        raise ValueError(f"no conclusion rule matches rate {rate:.3f}")


def load_scoring(path: Path = SCORING_FILE) -> ScoringRules:
    """Read and validate the scoring rules; errors name the file and the field."""
    try:
        return ScoringRules.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path.name}: {problems}") from None


@cache
def default_scoring() -> ScoringRules:
    return load_scoring()
