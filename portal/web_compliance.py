"""Console pages of 等保 compliance: systems with their latest result, one system's evaluation (results per family,
high-risk items, failed items with remediation, evidence with digests, manual answers, trend) and the report."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from core.runtime import Runtime
from policies.mlps.results import Result
from portal.compliance.collect import SUPPORTED_LEVELS, unsupported_message
from portal.compliance.store import AnswerRejected, answer_rows, latest_run, record_answer, run_report, trend
from portal.compliance_api import (
    ANSWER,
    READ,
    REPORT,
    evaluate_now,
    open_remediation,
    overview,
    report_zip,
    system_or_404,
)
from portal.deps import DB_SESSION, Principal, require, runtime
from portal.web import language, render

router = APIRouter(include_in_schema=False)
RESULTS = [r.value for r in Result]


def _tr(request: Request):  # type: ignore[no-untyped-def]
    english = language(request) == "en"
    return lambda zh, en: en if english else zh


@router.get("/compliance")
def compliance_page(request: Request, session: Session = DB_SESSION,
                    principal: Principal = Depends(require(READ, web=True))) -> HTMLResponse:
    return render(request, "compliance.html", {"me": principal, "nav": "compliance", "tr": _tr(request),
                                               "systems": overview(session)})


@router.get("/compliance/{system_id}")
def compliance_system_page(system_id: str, request: Request, session: Session = DB_SESSION,
                           principal: Principal = Depends(require(READ, web=True))) -> HTMLResponse:
    system = system_or_404(session, system_id)
    run = latest_run(session, system_id) if system.mlps_level in SUPPORTED_LEVELS else None
    data = run_report(run) if run else None
    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    pending: list[dict[str, Any]] = []
    if data:
        for req in data["requirements"]:
            by_family[f"{req['family_zh']}（{req['scenario']}）"].append(req)
            if req["result"] == "待人工" or req["kind"] == "manual":
                pending.append(req)
    return render(request, "compliance_system.html", {
        "me": principal, "nav": "compliance", "tr": _tr(request), "system": system, "run": run, "d": data,
        "by_family": dict(by_family), "pending": pending, "results": RESULTS, "trend": trend(session, system_id),
        "answers": answer_rows(session, system_id)[:50],
        "unsupported": None if system.mlps_level in SUPPORTED_LEVELS
        else unsupported_message(system_id, system.mlps_level),
        "can_answer": principal.can(ANSWER), "can_report": principal.can(REPORT),
        "can_ticket": principal.can("tickets.submit"),
        "error": request.query_params.get("error")})


@router.post("/compliance/{system_id}/evaluate")
def compliance_evaluate(system_id: str, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                        principal: Principal = Depends(require(REPORT, web=True))) -> Response:
    name = principal.name
    evaluate_now(session, rt, system_id, name)
    return RedirectResponse(f"/compliance/{system_id}", status_code=303)


@router.post("/compliance/{system_id}/answers")
def compliance_answer(system_id: str, request: Request, unit: str = Form(...), result: str = Form(...),
                      note: str = Form(""), mitigated: str = Form(""), session: Session = DB_SESSION,
                      principal: Principal = Depends(require(ANSWER, web=True))) -> Response:
    """An auditor's answer from the console (CSRF-checked by the session dependency)."""
    system_or_404(session, system_id)
    try:
        with session.begin_nested():
            record_answer(session, request.app.state.runtime, system_id, unit=unit.strip(), result=result,
                          auditor=principal.name, note=note.strip(), mitigated=bool(mitigated))
    except AnswerRejected as exc:
        raise HTTPException(422, str(exc)) from None
    return RedirectResponse(f"/compliance/{system_id}#answers", status_code=303)


@router.get("/compliance/{system_id}/report.zip")
def compliance_report(system_id: str, evaluation: int | None = None, session: Session = DB_SESSION,
                      rt: Runtime = Depends(runtime),
                      _p: Principal = Depends(require(REPORT, web=True))) -> Response:
    body, name = report_zip(rt, session, system_id, evaluation)
    return Response(body, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/compliance/{system_id}/remediation")
def compliance_remediation(system_id: str, request: Request, unit: str = Form(...), submit: str = Form(""),
                           session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                           principal: Principal = Depends(require("tickets.submit", web=True))) -> Response:
    """开整改工单: a 等保整改 ticket for a failed item of the latest evaluation (CSRF-checked); on to the ticket."""
    with session.begin_nested():
        ticket = open_remediation(session, rt, principal, system_id, unit, bool(submit))
    return RedirectResponse(f"/tickets/{ticket.ref}", status_code=303)
