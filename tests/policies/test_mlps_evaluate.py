"""Evaluation: system × catalog → results, auditor answers, high risks, 符合率 and the conclusion."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from policies.mlps.catalog import default_catalog
from policies.mlps.evaluate import Answer, Evaluator, combine, evaluate
from policies.mlps.results import Result
from policies.mlps.scoring import SCORING_FILE, default_scoring, load_scoring
from tests.policies.mlps_evidence import AS_OF, good

C, P, N, NA, PEND = Result.COMPLIANT, Result.PARTIAL, Result.NON_COMPLIANT, Result.NOT_APPLICABLE, Result.PENDING


def answer_all_manual(level: int = 3, cloud_role: str | None = "customer", value: Result = C) -> list[Answer]:
    return [
        Answer(unit=r.unit, result=value, auditor="李审计", answered_at=AS_OF, note="现场核查")
        for r in default_catalog().for_system(level, cloud_role)
        if r.kind == "manual"
    ]


def result_of(evaluation, unit: str):  # type: ignore[no-untyped-def]
    return next(r for r in evaluation.results if r.requirement.unit == unit)


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ([C, C], C),
        ([C, N], P),
        ([N, N], N),
        ([N, P], P),
        ([C, PEND], PEND),
        ([N, PEND], N),
        ([NA, C], C),
        ([NA, NA], NA),
        ([], NA),
        ([P], P),
    ],
)
def test_combine(inputs: list[Result], expected: Result) -> None:
    assert combine(inputs) is expected


def test_good_system_without_answers_is_provisional() -> None:
    ev = evaluate(good(), as_of=AS_OF)
    assert len(ev.results) == 211 + len(
        [r for r in default_catalog().for_system(3, "customer") if r.scenario == "cloud"]
    )
    manual = [r for r in ev.results if r.requirement.kind == "manual"]
    assert manual and all(r.result is PEND and r.decided_by == "pending" for r in manual)
    assert all(r.result is C for r in ev.results if r.requirement.kind != "manual")
    assert ev.provisional and ev.rate == 1.0 and ev.conclusion == "符合" and not ev.high_risks


def test_auditor_answers_complete_the_evaluation() -> None:
    ev = evaluate(good(), answers=answer_all_manual(), as_of=AS_OF)
    assert not ev.provisional and ev.counts.get(PEND, 0) == 0
    assert ev.rate == 1.0 and ev.conclusion == "符合" and ev.conclusion_en == "compliant"
    row = result_of(ev, "L3-PSS1-01")
    assert row.decided_by == "auditor" and row.answer is not None and row.answer.auditor == "李审计"


def test_weak_password_is_a_high_risk_and_a_major_hazard() -> None:
    data = good()
    data["hosts"][0]["password"]["minlen"] = 4
    ev = evaluate(data, answers=answer_all_manual(), as_of=AS_OF)
    assert result_of(ev, "L3-CES1-01").result is P
    assert [(f.unit, f.case) for f in ev.high_risks] == [("L3-CES1-01", "6.4.1.1")]
    assert ev.major_hazards == ev.high_risks
    assert ev.rate is not None and ev.rate > 0.9
    assert ev.conclusion == "基本符合"  # above 90 % but with a 重大风险隐患


def test_compensating_measures_recorded_by_the_auditor_suppress_the_high_risk() -> None:
    data = good()
    data["hosts"][0]["password"]["minlen"] = 4
    answers = [
        *answer_all_manual(),
        Answer(
            unit="L3-CES1-01",
            result=P,
            auditor="李审计",
            answered_at=AS_OF,
            note="堡垒机统一双因素登录",
            mitigated=True,
        ),
    ]
    ev = evaluate(data, answers=answers, as_of=AS_OF)
    assert result_of(ev, "L3-CES1-01").result is P and not ev.high_risks
    assert ev.conclusion == "符合"


def test_business_continuity_scope() -> None:
    data = good()
    data["infra"]["backups"]["offsite_realtime"] = False
    ev = evaluate(data, as_of=AS_OF)
    assert result_of(ev, "L3-CES1-30").result is P and not ev.high_risks
    data["register"]["business_continuity_high"] = True
    ev = evaluate(data, as_of=AS_OF)
    assert [f.case for f in ev.high_risks] == ["6.4.6.2"]


def test_cloud_platform_cases_only_for_platforms() -> None:
    data = good()
    data["infra"]["country"] = "SG"
    customer = evaluate(data, as_of=AS_OF)
    assert result_of(customer, "L3-PES2-01").result is N
    assert "7.1.1.1" not in {f.case for f in customer.high_risks}
    data["register"]["cloud_role"] = "platform"
    platform = evaluate(data, as_of=AS_OF)
    assert "7.1.1.1" in {f.case for f in platform.high_risks}


def test_level_2_system_gets_level_2_requirements() -> None:
    ev = evaluate(good(level=2), as_of=AS_OF)
    assert ev.level == 2 and all(r.requirement.level == 2 for r in ev.results)
    assert sum(r.requirement.scenario == "general" for r in ev.results) == 135
    assert "L2-CES1-01" in {r.requirement.unit for r in ev.results}


def test_not_on_cloud_means_no_cloud_extension() -> None:
    data = good(cloud_role=None)
    data["register"]["hosting"] = "local_idc"
    ev = evaluate(data, as_of=AS_OF)
    assert len(ev.results) == 211 and ev.cloud_role is None


def test_many_failures_give_non_compliant() -> None:
    data = good()
    for section in ("hosts", "infra", "soc", "crypto"):
        data[section] = None
    data["register"].update(filing_no=None, last_assessment=None, grading_info_level=None)
    answers = answer_all_manual(value=N)
    ev = evaluate(data, answers=answers, as_of=AS_OF)
    assert ev.rate is not None and ev.rate < 0.6 and ev.conclusion == "不符合"
    assert ev.provisional  # the auto items without evidence are still 待人工


def test_advisory_check_is_shown_but_not_scored() -> None:
    data = good()
    data["register"]["network_stack"] = "ipv4"
    ev = evaluate(data, as_of=AS_OF)
    row = result_of(ev, "L3-CNS1-03")
    assert row.result is C and [a.result for a in row.advisory] == [N]


def test_answer_for_unknown_requirement_is_refused() -> None:
    bad = Answer(unit="L3-CES1-16", result=C, auditor="x", answered_at=AS_OF)
    with pytest.raises(ValueError, match="L3-CES1-16"):
        evaluate(good(), answers=[bad], as_of=AS_OF)
    from_form = Answer.model_validate({"item": "L3-PSS1-01", "result": "符合", "auditor": "x", "answered_at": AS_OF})
    assert from_form.unit == "L3-PSS1-01" and from_form.result is C
    with pytest.raises(ValidationError, match="time zone"):
        Answer(unit="L3-CES1-01", result=C, auditor="x", answered_at=AS_OF.replace(tzinfo=None))


def test_invalid_evidence_is_refused() -> None:
    data = good()
    data["register"]["mlps_level"] = 7
    with pytest.raises(ValidationError, match="mlps_level"):
        evaluate(data, as_of=AS_OF)


def test_checks_run_once_per_system_and_results_are_deterministic() -> None:
    evaluator = Evaluator()
    a = evaluator.evaluate(good(), as_of=AS_OF)
    b = evaluator.evaluate(good(), as_of=AS_OF + timedelta(seconds=1))
    assert [r.result for r in a.results] == [r.result for r in b.results]
    shared = [r for r in a.results if "soc.sources_reporting" in r.requirement.checks]
    assert (
        len(shared) > 1
        and len({id(next(c for c in r.checks if c.check == "soc.sources_reporting")) for r in shared}) == 1
    )


@pytest.mark.parametrize(
    ("rate", "hazards", "expected"),
    [
        (1.0, 0, "符合"),
        (0.95, 0, "符合"),
        (0.95, 1, "基本符合"),
        (0.90, 0, "基本符合"),
        (0.60, 0, "基本符合"),
        (0.75, 3, "基本符合"),
        (0.5999, 0, "不符合"),
        (0.0, 0, "不符合"),
    ],
)
def test_conclusion_thresholds(rate: float, hazards: int, expected: str) -> None:
    assert default_scoring().conclude(rate, hazards).conclusion == expected


def test_rate_weights_partial_half() -> None:
    assert default_scoring().rate([C, P, N, NA, PEND]) == pytest.approx(0.5)
    assert default_scoring().rate([NA, PEND]) is None


def test_scoring_file_errors_name_the_field(tmp_path: Path) -> None:
    data = yaml.safe_load(SCORING_FILE.read_text(encoding="utf-8"))
    del data["weights"]["部分符合"]
    path = tmp_path / "scoring.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=r"scoring\.yaml: .*weights"):
        load_scoring(path)
    data = yaml.safe_load(SCORING_FILE.read_text(encoding="utf-8"))
    data["conclusions"] = [c for c in data["conclusions"] if c["conclusion"] != "不符合"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="gap"):
        load_scoring(path)
