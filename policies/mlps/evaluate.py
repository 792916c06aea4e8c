"""Evaluation: one system's evidence × the catalog → per-requirement results, high risks, 符合率 and conclusion.

* ``auto`` / ``evidence`` requirements run their linked checks (each check once per system) and combine them;
* ``manual`` requirements are 待人工 until an auditor answers;
* an auditor's answer overrides any requirement's result and may record compensating measures (缓解措施),
  which stop a 高风险 finding from being raised;
* 符合率 and the conclusion follow ``scoring.yaml``; while 待人工 items remain the conclusion is provisional.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from policies.mlps.catalog import Catalog, HighRisk, Requirement, default_catalog
from policies.mlps.checks import REGISTRY, CheckContext
from policies.mlps.evidence import Evidence, RegisterFacts
from policies.mlps.params import CheckParams, default_params
from policies.mlps.results import CheckResult, Result
from policies.mlps.scoring import CONCLUSION_EN, ScoringRules, default_scoring


class Answer(BaseModel):
    """An auditor's result for one requirement, named by its test-unit id (``unit`` or ``item``: ``L3-PSS1-01``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str = Field(pattern=r"^L[1-4]-[A-Z]{3}[1-5]-\d{2}$", validation_alias=AliasChoices("unit", "item"))
    result: Result
    auditor: str = Field(min_length=1)
    answered_at: datetime
    note: str = ""
    mitigated: bool = False  # compensating measures apply: no 高风险 is raised for this requirement

    @field_validator("answered_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("answered_at needs a time zone")
        return value.astimezone(UTC)


@dataclass(slots=True)  # not frozen: cheaper to build by the hundred thousand; treat as read-only
class HighRiskFinding:
    unit: str
    item_id: str
    control_point: str
    case: str
    condition_zh: str
    condition_en: str
    result: Result


@dataclass(slots=True)  # not frozen: cheaper to build by the hundred thousand; treat as read-only
class RequirementResult:
    requirement: Requirement
    result: Result
    decided_by: str  # "checks", "auditor" or "pending"
    checks: tuple[CheckResult, ...]
    advisory: tuple[CheckResult, ...]
    answer: Answer | None
    high_risk: tuple[HighRiskFinding, ...]


@dataclass(frozen=True, slots=True)
class SystemEvaluation:
    system_id: str
    system_name: str
    level: int
    cloud_role: str | None
    as_of: datetime
    results: tuple[RequirementResult, ...]
    counts: Mapping[Result, int]
    rate: float | None
    conclusion: str | None
    conclusion_source: str | None
    provisional: bool
    high_risks: tuple[HighRiskFinding, ...]
    major_hazards: tuple[HighRiskFinding, ...]

    @property
    def conclusion_en(self) -> str | None:
        return CONCLUSION_EN.get(self.conclusion) if self.conclusion else None

    def summary(self) -> dict[str, Any]:
        """Headline numbers as plain data."""
        return {
            "system_id": self.system_id,
            "level": self.level,
            "as_of": self.as_of.isoformat(),
            "items": len(self.results),
            "counts": {r.value: self.counts.get(r, 0) for r in Result},
            "rate": None if self.rate is None else round(self.rate, 4),
            "conclusion": self.conclusion,
            "conclusion_en": self.conclusion_en,
            "provisional": self.provisional,
            "high_risks": len(self.high_risks),
            "major_hazards": len(self.major_hazards),
        }


def combine(results: Iterable[Result]) -> Result:
    """Several checks' results → one requirement result.

    Not-applicable checks are ignored (all of them → 不适用); any failure → 不符合 when nothing passed, else
    部分符合; otherwise any missing evidence → 待人工; otherwise 符合.
    """
    seen = {r for r in results if r is not Result.NOT_APPLICABLE}
    if not seen:
        return Result.NOT_APPLICABLE
    decided = seen - {Result.PENDING}
    if decided == {Result.NON_COMPLIANT}:
        return Result.NON_COMPLIANT
    if decided & {Result.NON_COMPLIANT, Result.PARTIAL}:
        return Result.PARTIAL
    if Result.PENDING in seen:
        return Result.PENDING
    return Result.COMPLIANT


def _scope_applies(hr: HighRisk, level: int, system: RegisterFacts, cloud_role: str | None) -> bool:
    if level < hr.from_level:
        return False
    return {
        "general": True,
        "business_continuity": system.business_continuity_high,
        "critical_industry": system.critical_industry,
        "cloud_platform": cloud_role == "platform",
        "cloud_customer": cloud_role == "customer",
        "cloud_any": cloud_role is not None,
    }[hr.scope]


@cache
def combine_cached(results: tuple[Result, ...]) -> Result:
    """:func:`combine` memoised on the tuple of results (few distinct tuples occur)."""
    return combine(results)


@dataclass(frozen=True, slots=True)
class _Plan:
    requirements: tuple[Requirement, ...]
    check_ids: tuple[str, ...]  # every check the requirements link (scored or advisory), once
    check_sets: tuple[tuple[str, ...], ...]  # the distinct scored check lists
    unanswered: dict[str, RequirementResult]  # manual requirements without an answer: the same result everywhere
    units: frozenset[str]


class Evaluator:
    """Evaluates systems against a catalog with fixed parameters and scoring rules (reuse it for many systems)."""

    def __init__(
        self, catalog: Catalog | None = None, params: CheckParams | None = None, scoring: ScoringRules | None = None
    ) -> None:
        self.catalog = catalog or default_catalog()
        self.params = params or default_params()
        self.scoring = scoring or default_scoring()
        self._high_risk_results = frozenset(self.scoring.high_risk_results)
        self._plans: dict[tuple[int, str | None], _Plan] = {}

    def _plan(self, level: int, cloud_role: str | None) -> _Plan:
        key = (level, cloud_role)
        if key not in self._plans:
            reqs = self.catalog.for_system(level, cloud_role)
            ids = tuple(dict.fromkeys(c for r in reqs for c in (*r.checks, *r.advisory_checks)))
            unanswered = {
                r.unit: RequirementResult(r, Result.PENDING, "pending", (), (), None, ())
                for r in reqs
                if r.kind == "manual" and not r.advisory_checks
            }
            self._plans[key] = _Plan(
                reqs, ids, tuple(dict.fromkeys(r.checks for r in reqs)), unanswered, frozenset(r.unit for r in reqs)
            )
        return self._plans[key]

    def evaluate(
        self, evidence: Evidence | Mapping[str, Any], answers: Iterable[Answer] = (), as_of: datetime | None = None
    ) -> SystemEvaluation:
        """Evaluate one system. ``evidence`` may be an :class:`Evidence` or the equivalent plain mapping."""
        ev = evidence if isinstance(evidence, Evidence) else Evidence.model_validate(evidence)
        system = ev.system
        as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
        cloud_role = system.effective_cloud_role
        plan = self._plan(system.mlps_level, cloud_role)
        answered: dict[str, Answer] = {}
        for answer in answers:
            if answer.unit not in plan.units:
                raise ValueError(
                    f"answer for {answer.unit}: no such requirement for level {system.mlps_level} "
                    f"system {system.system_id}"
                )
            answered[answer.unit] = answer  # the last answer for a unit wins
        ctx = CheckContext(level=system.mlps_level, as_of=as_of, params=self.params)
        ran = {cid: REGISTRY[cid].fn(ev, ctx) for cid in plan.check_ids}  # each check once per system
        combined: dict[tuple[str, ...], tuple[tuple[CheckResult, ...], Result]] = {}
        for ids in plan.check_sets:
            got = tuple(ran[c] for c in ids)
            combined[ids] = (got, combine_cached(tuple(c.result for c in got)))
        high_risk_results = self._high_risk_results
        results: list[RequirementResult] = []
        append = results.append
        high_risks: list[HighRiskFinding] = []
        unanswered = plan.unanswered
        for req in plan.requirements:
            unit = req.unit
            if unit in unanswered and unit not in answered:
                append(unanswered[unit])
                continue
            checks, value = combined[req.checks]
            advisory = tuple(ran[c] for c in req.advisory_checks) if req.advisory_checks else ()
            answer = answered.get(unit)
            if answer is not None:
                value, decided_by = answer.result, "auditor"
            elif req.kind == "manual":
                value, decided_by = Result.PENDING, "pending"
            else:
                decided_by = "pending" if value is Result.PENDING else "checks"
            findings: tuple[HighRiskFinding, ...] = ()
            if req.high_risk and value in high_risk_results and not (answer and answer.mitigated):
                findings = tuple(
                    HighRiskFinding(
                        req.unit, req.id, req.control_point, hr.case, hr.condition.zh, hr.condition.en, value
                    )
                    for hr in req.high_risk
                    if _scope_applies(hr, system.mlps_level, system, cloud_role)
                )
                high_risks.extend(findings)
            append(RequirementResult(req, value, decided_by, checks, advisory, answer, findings))

        counts = Counter(r.result for r in results)
        rate = self.scoring.rate_from_counts(counts)
        majors = tuple(high_risks) if self.scoring.major_hazard.from_high_risk else ()
        rule = self.scoring.conclude(rate, len(majors)) if rate is not None else None
        return SystemEvaluation(
            system_id=system.system_id,
            system_name=system.name,
            level=system.mlps_level,
            cloud_role=cloud_role,
            as_of=as_of,
            results=tuple(results),
            counts=dict(counts),
            rate=rate,
            conclusion=rule.conclusion if rule else None,
            conclusion_source=rule.source if rule else None,
            provisional=counts.get(Result.PENDING, 0) > 0,
            high_risks=tuple(high_risks),
            major_hazards=majors,
        )


def evaluate(
    evidence: Evidence | Mapping[str, Any], answers: Iterable[Answer] = (), as_of: datetime | None = None
) -> SystemEvaluation:
    """Evaluate one system with the shipped catalog, parameters and scoring rules."""
    return Evaluator().evaluate(evidence, answers, as_of)
