"""Stored evaluations and auditor answers: run an evaluation (collect → evaluate with the stored answers → store),
record answers (fed into the next evaluation), list the trend per system. Every write is on the audit chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from inventory.models import System, aware
from policies.mlps.catalog import default_catalog
from policies.mlps.evaluate import Answer, Evaluator, SystemEvaluation
from policies.mlps.evidence import CLOUD_HOSTING
from policies.mlps.report import report_data
from policies.mlps.results import Result
from portal.compliance.collect import SUPPORTED_LEVELS, Collected, UnsupportedLevel, collect, unsupported_message
from portal.compliance.models import ComplianceAnswer, EvaluationRun
from portal.compliance.remediation import add_suggestions

_EVALUATOR: Evaluator | None = None


class AnswerRejected(ValueError):
    """An answer that names an unknown unit, result or system."""


def evaluator() -> Evaluator:
    global _EVALUATOR
    if _EVALUATOR is None:
        _EVALUATOR = Evaluator()
    return _EVALUATOR


def _units_for(system: System) -> set[str]:
    cloud = "customer" if system.hosting in CLOUD_HOSTING else None
    return {r.unit for r in default_catalog().for_system(system.mlps_level, cloud)}


def record_answer(session: Session, rt: Runtime, system_id: str, *, unit: str, result: str, auditor: str,
                  note: str = "", mitigated: bool = False, now: datetime | None = None) -> ComplianceAnswer:
    """Store an auditor's answer (newest per unit wins) after checking unit, result and system."""
    system = session.get(System, system_id)
    if system is None:
        raise AnswerRejected(f"system {system_id} is not in the register")
    if system.mlps_level not in SUPPORTED_LEVELS:
        raise AnswerRejected(unsupported_message(system_id, system.mlps_level))
    try:
        value = Result(result)
    except ValueError:
        raise AnswerRejected(f"result '{result}' must be one of {', '.join(r.value for r in Result)}") from None
    now = now or datetime.now(UTC)
    try:
        answer = Answer(unit=unit, result=value, auditor=auditor, answered_at=now, note=note, mitigated=mitigated)
    except ValidationError as exc:
        raise AnswerRejected(f"answer: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    if unit not in _units_for(system):
        raise AnswerRejected(f"unit {unit} is not a requirement of level {system.mlps_level} system {system_id}")
    row = ComplianceAnswer(system_id=system_id, unit=answer.unit, result=value.value, auditor=auditor,
                           answered_at=answer.answered_at, note=note, mitigated=mitigated)
    session.add(row)
    session.flush()
    rt.audit.append(session, actor=auditor, action="compliance.answer", object_type="system", object_id=system_id,
                    payload={"unit": unit, "result": value.value, "note": note, "mitigated": mitigated,
                             "answer_id": row.id})
    return row


def current_answers(session: Session, system_id: str) -> list[Answer]:
    """The newest answer per unit of the system, as the evaluation takes them."""
    newest: dict[str, ComplianceAnswer] = {}
    for row in session.scalars(select(ComplianceAnswer).where(ComplianceAnswer.system_id == system_id)
                               .order_by(ComplianceAnswer.id)):
        newest[row.unit] = row
    return [Answer(unit=r.unit, result=Result(r.result), auditor=r.auditor, answered_at=aware(r.answered_at),
                   note=r.note, mitigated=r.mitigated) for r in newest.values()]


def answer_rows(session: Session, system_id: str) -> list[dict[str, Any]]:
    """Every answer recorded for the system, newest first."""
    rows = session.scalars(select(ComplianceAnswer).where(ComplianceAnswer.system_id == system_id)
                           .order_by(ComplianceAnswer.id.desc()))
    return [{"id": r.id, "unit": r.unit, "result": r.result, "auditor": r.auditor,
             "answered_at": aware(r.answered_at).isoformat(), "note": r.note, "mitigated": r.mitigated}
            for r in rows]


def evaluate_collected(collected: Collected, answers: list[Answer], as_of: datetime | None = None) -> SystemEvaluation:
    """Evaluate evidence with answers (answers for units the system no longer has are ignored)."""
    ev = collected.evidence
    units = {r.unit for r in evaluator().catalog.for_system(ev.system.mlps_level, ev.system.effective_cloud_role)}
    return evaluator().evaluate(ev, [a for a in answers if a.unit in units], as_of)


def full_report(evaluation: SystemEvaluation, collected: Collected, department: str | None = None,
                generated_at: datetime | None = None) -> dict[str, Any]:
    """``report_data`` plus remediation suggestions, the evidence items with their digests and what was read."""
    data = add_suggestions(report_data(evaluation, generated_at=generated_at))
    data["system"]["department"] = department or collected.evidence.system.department
    data["evidence"] = {key: {"source": p.source, "collected_at": p.collected_at.isoformat(), "sha256": p.digest}
                        for key, p in sorted(collected.evidence.provenance.items())}
    data["collected"] = collected.details
    return data


def run_evaluation(rt: Runtime, system_id: str, actor: str, *, now: datetime | None = None,
                   **collect_kwargs: Any) -> tuple[EvaluationRun, dict[str, Any]]:
    """Collect, evaluate with the stored answers, store the run (audit-logged); the row and the report data."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    collected = collect(rt, system_id, now=now, **collect_kwargs)
    with rt.transaction() as session:
        answers = current_answers(session, system_id)
        evaluation = evaluate_collected(collected, answers, now)
        data = full_report(evaluation, collected, generated_at=now)
        counts = {r.value: evaluation.counts.get(r, 0) for r in Result}
        run = EvaluationRun(system_id=system_id, evaluated_at=now, actor=actor, level=evaluation.level,
                            conclusion=evaluation.conclusion, provisional=evaluation.provisional,
                            rate=evaluation.rate, counts=json.dumps(counts, ensure_ascii=False),
                            high_risks=len(evaluation.high_risks), answers_used=len(answers),
                            evidence_digests=json.dumps(collected.digests()),
                            results=json.dumps(data, ensure_ascii=False, default=str),
                            details=json.dumps(collected.details, ensure_ascii=False, default=str))
        session.add(run)
        session.flush()
        data["report"]["evaluation_id"] = run.id
        run.results = json.dumps(data, ensure_ascii=False, default=str)
        rt.audit.append(session, actor=actor, action="compliance.evaluate", object_type="system",
                        object_id=system_id, payload={"evaluation_id": run.id, **summary(run)})
        session.expunge(run)
    return run, data


def summary(run: EvaluationRun) -> dict[str, Any]:
    """One evaluation's headline numbers as plain data."""
    return {"id": run.id, "system_id": run.system_id, "evaluated_at": aware(run.evaluated_at).isoformat(),
            "actor": run.actor, "level": run.level, "conclusion": run.conclusion, "provisional": run.provisional,
            "rate_percent": None if run.rate is None else round(run.rate * 100, 2),
            "counts": json.loads(run.counts), "high_risks": run.high_risks, "answers_used": run.answers_used,
            "evidence_digests": json.loads(run.evidence_digests)}


def trend(session: Session, system_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The system's evaluations, oldest first (the newest ``limit``)."""
    rows = session.scalars(select(EvaluationRun).where(EvaluationRun.system_id == system_id)
                           .order_by(EvaluationRun.evaluated_at.desc(), EvaluationRun.id.desc()).limit(limit)).all()
    return [summary(r) for r in reversed(rows)]


def latest_run(session: Session, system_id: str) -> EvaluationRun | None:
    return session.scalars(select(EvaluationRun).where(EvaluationRun.system_id == system_id)
                           .order_by(EvaluationRun.id.desc()).limit(1)).first()


def run_report(run: EvaluationRun) -> dict[str, Any]:
    """The stored report data of one run."""
    return json.loads(run.results)


__all__ = ["AnswerRejected", "UnsupportedLevel", "answer_rows", "current_answers", "latest_run", "record_answer",
           "run_evaluation", "run_report", "summary", "trend"]
