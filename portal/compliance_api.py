"""等保 API for auditors: systems with their latest evaluation, run an evaluation, results, trend, auditor answers,
signed report download, remediation tickets. Auditors may evaluate, answer and download here; nothing else."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from inventory.models import System
from portal.compliance.collect import SUPPORTED_LEVELS, UnsupportedLevel, unsupported_message
from portal.compliance.models import EvaluationRun
from portal.compliance.remediation import open_remediation_ticket
from portal.compliance.reports import load_or_create_report_key, unsupported_report, write_report
from portal.compliance.store import (
    AnswerRejected,
    answer_rows,
    latest_run,
    record_answer,
    run_evaluation,
    run_report,
    summary,
    trend,
)
from portal.deps import DB_SESSION, Principal, require, runtime
from portal.rbac import policy


def permission(name: str) -> str:
    """``name`` once rbac.yaml defines it, else ``audit.read`` (auditor, admin) until the lead adds it."""
    return name if name in policy().permissions else "audit.read"


READ, ANSWER, REPORT = (permission("compliance.read"), permission("compliance.answer"),
                        permission("compliance.report"))

router = APIRouter(prefix="/api/compliance", tags=["compliance"])


class AnswerIn(BaseModel):
    unit: str = Field(description="test-unit id, e.g. L3-PSS1-01")
    result: str = Field(description="符合 / 部分符合 / 不符合 / 不适用 / 待人工")
    note: str = Field("", max_length=4000)
    mitigated: bool = False


class RemediationIn(BaseModel):
    unit: str = Field(description="test-unit id of a 不符合 / 部分符合 item of the latest evaluation")
    submit: bool = Field(False, description="submit at once (admission → security review) instead of a draft")


def system_or_404(session: Session, system_id: str) -> System:
    system = session.get(System, system_id)
    if system is None:
        raise HTTPException(404, f"system {system_id} is not in the register / 台账中无此系统")
    return system


def overview(session: Session) -> list[dict[str, Any]]:
    """Every live system with its level and latest evaluation (None when never evaluated)."""
    latest: dict[str, EvaluationRun] = {}
    for run in session.scalars(select(EvaluationRun).order_by(EvaluationRun.id)):
        latest[run.system_id] = run
    out = []
    for s in session.scalars(select(System).where(System.status != "decommissioned").order_by(System.id)):
        run = latest.get(s.id)
        out.append({"id": s.id, "name": s.name, "department": s.department_code, "level": s.mlps_level,
                    "supported": s.mlps_level in SUPPORTED_LEVELS,
                    "latest": summary(run) if run else None})
    return out


def evaluate_now(session: Session, rt: Runtime, system_id: str, actor: str) -> dict[str, Any]:
    """Run and store an evaluation. The request's session is committed first: the collectors use their own."""
    system = system_or_404(session, system_id)
    if system.mlps_level not in SUPPORTED_LEVELS:
        raise HTTPException(422, unsupported_message(system_id, system.mlps_level))
    session.commit()  # release SQLite's write lock before the collectors open their sessions
    try:
        run, _ = run_evaluation(rt, system_id, actor)
    except UnsupportedLevel as exc:
        raise HTTPException(422, str(exc)) from None
    return summary(run)


def report_zip(rt: Runtime, session: Session, system_id: str, run_id: int | None = None) -> tuple[bytes, str]:
    """The signed report of a stored run (the newest by default) as a zip of its directory; and the file name."""
    system = system_or_404(session, system_id)
    if system.mlps_level not in SUPPORTED_LEVELS:
        data = unsupported_report({"id": system.id, "name": system.name, "level": system.mlps_level,
                                   "department": system.department_code, "cloud_role": None},
                                  unsupported_message(system.id, system.mlps_level))
        name = f"mlps-{system.id}-unsupported"
    else:
        run = session.get(EvaluationRun, run_id) if run_id is not None else latest_run(session, system_id)
        if run is None or run.system_id != system_id:
            raise HTTPException(404, f"no evaluation {'#' + str(run_id) if run_id else ''} of {system_id} yet / "
                                     "尚无评估记录")
        data, name = run_report(run), f"mlps-{system.id}-{run.id}"
    key = load_or_create_report_key(rt.settings.keys_dir)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / name
        write_report(out, data, key)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(out.iterdir()):
                zf.write(path, f"{name}/{path.name}")
    return buffer.getvalue(), f"{name}.zip"


@router.get("/systems")
def list_systems(session: Session = DB_SESSION, _p: Principal = Depends(require(READ))) -> list[dict[str, Any]]:
    """Systems with their level and latest evaluation (levels other than 2 and 3 are marked unsupported)."""
    return overview(session)


@router.get("/systems/{system_id}")
def system_result(system_id: str, session: Session = DB_SESSION,
                  _p: Principal = Depends(require(READ))) -> dict[str, Any]:
    """The latest stored evaluation's full results (per requirement, families, high risks, evidence digests)."""
    system = system_or_404(session, system_id)
    if system.mlps_level not in SUPPORTED_LEVELS:
        raise HTTPException(422, unsupported_message(system_id, system.mlps_level))
    run = latest_run(session, system_id)
    if run is None:
        raise HTTPException(404, f"{system_id} has not been evaluated yet / 尚未评估")
    return run_report(run)


@router.post("/systems/{system_id}/evaluate")
def evaluate(system_id: str, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
             principal: Principal = Depends(require(REPORT))) -> dict[str, Any]:
    """Collect evidence, evaluate with the stored answers and store the run."""
    return evaluate_now(session, rt, system_id, principal.name)


@router.get("/systems/{system_id}/trend")
def system_trend(system_id: str, session: Session = DB_SESSION,
                 _p: Principal = Depends(require(READ))) -> list[dict[str, Any]]:
    """The system's evaluations, oldest first."""
    system_or_404(session, system_id)
    return trend(session, system_id)


@router.get("/systems/{system_id}/answers")
def list_answers(system_id: str, session: Session = DB_SESSION,
                 _p: Principal = Depends(require(READ))) -> list[dict[str, Any]]:
    system_or_404(session, system_id)
    return answer_rows(session, system_id)


@router.post("/systems/{system_id}/answers", status_code=201)
def post_answer(system_id: str, body: AnswerIn, request: Request, session: Session = DB_SESSION,
                principal: Principal = Depends(require(ANSWER))) -> dict[str, Any]:
    """Record an auditor's answer (name and time from the session); the next evaluation uses it."""
    system_or_404(session, system_id)
    rt: Runtime = request.app.state.runtime
    try:
        row = record_answer(session, rt, system_id, unit=body.unit, result=body.result, auditor=principal.name,
                            note=body.note, mitigated=body.mitigated)
    except AnswerRejected as exc:
        raise HTTPException(422, str(exc)) from None
    return {"id": row.id, "unit": row.unit, "result": row.result, "auditor": row.auditor,
            "answered_at": row.answered_at.isoformat()}


@router.get("/systems/{system_id}/report.zip")
def download_report(system_id: str, evaluation: int | None = None, session: Session = DB_SESSION,
                    rt: Runtime = Depends(runtime), _p: Principal = Depends(require(REPORT))) -> Response:
    """The signed report (HTML, JSON, CSV, manifest.json, manifest.sig, public key) of the newest or a given run."""
    body, name = report_zip(rt, session, system_id, evaluation)
    return Response(body, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def open_remediation(session: Session, rt: Runtime, principal: Principal, system_id: str, unit: str,
                     submit: bool) -> Any:
    """Open a 等保整改 ticket for a failed item of the system's latest evaluation (HTTP errors: 404 / 422 / 403)."""
    from portal.tickets.service import Actor, TicketForbidden

    system_or_404(session, system_id)
    run = latest_run(session, system_id)
    if run is None:
        raise HTTPException(404, f"{system_id} has not been evaluated yet / 尚未评估")
    scope = principal.departments(session)
    actor = Actor(principal.name, principal.user.role, None if scope is None else frozenset(scope))
    try:
        return open_remediation_ticket(session, rt.audit, actor, run_report(run), unit.strip(), submit=submit)
    except ValueError as exc:  # includes TicketError
        raise HTTPException(422, str(exc)) from None
    except TicketForbidden as exc:
        raise HTTPException(403, str(exc)) from None


@router.post("/systems/{system_id}/remediation", status_code=201)
def remediation_ticket(system_id: str, body: RemediationIn, request: Request, session: Session = DB_SESSION,
                       principal: Principal = Depends(require("tickets.submit"))) -> dict[str, Any]:
    """Open a 等保整改 ticket (draft, or submitted with ``submit``) for a 不符合 item of the latest evaluation."""
    ticket = open_remediation(session, request.app.state.runtime, principal, system_id, body.unit, body.submit)
    from portal.tickets.service import compliance_ref

    session.flush()
    return {"ticket": ticket.ref, "number": ticket.id, "state": ticket.state, "url": f"/tickets/{ticket.ref}",
            "compliance": compliance_ref(ticket)}
