"""Console pages for alerts: the list (filters, SLA state) and one alert with its workflow, hand-over and notes;
and the drills page. Everything is department-scoped like the API (``Principal.departments``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from portal.alerts_api import alert_detail, alert_query, assignable_users, check_assignee, visible_alert
from portal.api_types import RowId
from portal.deps import DB_SESSION, Principal, require, runtime
from portal.i18n import translator
from portal.web import language, render
from soc.alerts.models import Alert
from soc.alerts.policy import OPEN_STATUSES, SEVERITY_ORDER, STATUSES, alert_policy
from soc.alerts.service import AlertService, WorkflowError, alert_payload
from soc.alerts.situation import TACTICS
from soc.drills.scenario import scenarios
from soc.drills.service import score, visible_drills

router = APIRouter(include_in_schema=False)


@router.get("/soc/situation")
def situation_page(request: Request, principal: Principal = Depends(require("soc.read", web=True))) -> HTMLResponse:
    """The 态势感知 overview; the charts fetch /api/soc/situation and refresh themselves."""
    t = translator(language(request))
    labels = {key: t(f"situation.{key}") for key in ("events", "alerts", "updated", "failed", "no_charts")}
    labels["none"] = t("alerts.none")
    labels["severity"] = {s: t(f"alerts.sev.{s}") for s in SEVERITY_ORDER}
    labels["tactics"] = {tactic: t(f"tactic.{tactic}") for tactic in TACTICS}
    return render(request, "soc_situation.html", {"me": principal, "nav": "situation", "labels": labels})


@router.get("/soc/drills")
def drills_page(request: Request, session: Session = DB_SESSION,
                principal: Principal = Depends(require("soc.read", web=True))) -> HTMLResponse:
    """Drill records with their coverage and time to detect; each links to its printable report. A department
    user sees only the drills whose scope holds a system of its departments, with only those departments' alerts."""
    departments = principal.departments(session)
    drills = [score(session, d, departments) for d in visible_drills(session, departments, limit=200)]
    return render(request, "soc_drills.html", {"me": principal, "drills": drills, "nav": "drills",
                                               "scenarios": list(scenarios().values()),
                                               "can_manage": principal.can("soc.drills.manage")})


@router.get("/soc/alerts")
def alerts_page(request: Request, session: Session = DB_SESSION,
                principal: Principal = Depends(require("soc.read", web=True))) -> HTMLResponse:
    status = request.query_params.get("status", "open") or None
    severity = request.query_params.get("severity") or None
    error, items, total = None, [], 0
    try:
        query = alert_query(principal, session, status, severity)
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(Alert.last_seen.desc(), Alert.id.desc()).limit(200))
        items = [alert_payload(a) for a in rows]
    except HTTPException as exc:
        error = exc.detail
    return render(request, "soc_alerts.html", {
        "me": principal, "items": items, "total": total, "status": status or "", "severity": severity or "",
        "statuses": ["open", *STATUSES], "severities": SEVERITY_ORDER, "error": error, "nav": "alerts"})


# ``?done=`` values a form's redirect may carry, and the i18n key of the message the detail page then shows
DONE_NOTICES = {"unassigned": "alerts.unassigned_done"}


def _detail_page(request: Request, session: Session, principal: Principal, alert: Alert, error: str | None = None,
                 status_code: int = 200, notice: str | None = None) -> HTMLResponse:
    """One alert with the forms the viewer may use; ``notice`` is the i18n key of a message on success."""
    can_manage = principal.can("soc.alerts.manage")
    can_assign = can_manage and alert.status in OPEN_STATUSES
    return render(request, "soc_alert.html", {
        "me": principal, "a": alert_detail(session, alert), "error": error, "notice": notice, "nav": "alerts",
        "next_states": alert_policy().transitions[alert.status],  # type: ignore[index]
        "can_manage": can_manage, "can_assign": can_assign,
        "assignees": assignable_users(session) if can_manage else [],
        "can_comment": principal.can("soc.alerts.comment")},
        status_code=status_code)


@router.get("/soc/alerts/{alert_id}")
def alert_page(alert_id: RowId, request: Request, session: Session = DB_SESSION,
               principal: Principal = Depends(require("soc.read", web=True))) -> HTMLResponse:
    notice = DONE_NOTICES.get(request.query_params.get("done", ""))
    return _detail_page(request, session, principal, visible_alert(session, principal, alert_id), notice=notice)


@router.post("/soc/alerts/{alert_id}/transition")
def alert_transition(alert_id: RowId, request: Request, status: str = Form(...), note: str = Form(""),
                     assignee: str = Form(""), session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                     principal: Principal = Depends(require("soc.alerts.manage", web=True))) -> Response:
    """Move the alert along its workflow; a given assignee must be a user who may work alerts (else 422)."""
    alert = visible_alert(session, principal, alert_id)
    try:
        checked = check_assignee(session, assignee) if assignee.strip() else None
    except ValueError as exc:
        return _detail_page(request, session, principal, alert, str(exc), status_code=422)
    try:
        with session.begin_nested():
            AlertService(audit=rt.audit).transition(session, alert, status, principal.name,
                                                    assignee=checked, note=note or None)
    except WorkflowError as exc:
        return _detail_page(request, session, principal, alert, str(exc), status_code=409)
    return RedirectResponse(f"/soc/alerts/{alert_id}", status_code=303)


@router.post("/soc/alerts/{alert_id}/assign")
def alert_assign(alert_id: RowId, request: Request, assignee: str = Form(""), note: str = Form(""),
                 unassign: str = Form(""), session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                 principal: Principal = Depends(require("soc.alerts.manage", web=True))) -> Response:
    """Hand an open alert over to another analyst without changing its status (转交); audited as alert.assign.
    The form's unassign button (``unassign`` set) leaves the alert without an assignee, as the API's
    ``assignee: null`` does; the typed name is then ignored.
    An unknown, deactivated or unqualified user is 422; a closed alert or the same assignee (or none) is 409."""
    alert = visible_alert(session, principal, alert_id)
    try:
        checked = None if unassign else check_assignee(session, assignee)
    except ValueError as exc:
        return _detail_page(request, session, principal, alert, str(exc), status_code=422)
    try:
        with session.begin_nested():
            AlertService(audit=rt.audit).assign(session, alert, checked, principal.name, note=note or None)
    except WorkflowError as exc:
        return _detail_page(request, session, principal, alert, str(exc), status_code=409)
    done = "?done=unassigned" if checked is None else ""
    return RedirectResponse(f"/soc/alerts/{alert_id}{done}", status_code=303)


@router.post("/soc/alerts/{alert_id}/comments")
def alert_comment(alert_id: RowId, request: Request, body: str = Form(""), session: Session = DB_SESSION,
                  principal: Principal = Depends(require("soc.alerts.comment", web=True))) -> Response:
    alert = visible_alert(session, principal, alert_id)
    try:
        AlertService().comment(session, alert, principal.name, body)
    except WorkflowError as exc:
        return _detail_page(request, session, principal, alert, str(exc), status_code=422)
    return RedirectResponse(f"/soc/alerts/{alert_id}", status_code=303)
