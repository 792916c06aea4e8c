"""Alert routes: list, detail, workflow transitions, hand-over (assign) and comments (department scoping enforced)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from portal.api_types import Offset, RowId
from portal.deps import DB_SESSION, Principal, require, runtime
from portal.models import User
from portal.rbac import policy
from soc.alerts.models import Alert, AlertHistory, AlertNote
from soc.alerts.policy import OPEN_STATUSES, SEVERITY_ORDER, STATUSES
from soc.alerts.service import AlertService, WorkflowError, alert_payload

router = APIRouter(prefix="/api/soc/alerts", tags=["alerts"])


class TransitionIn(BaseModel):
    status: str = Field(description="acknowledged | investigating | resolved | false_positive")
    assignee: str | None = Field(None, max_length=64)
    note: str | None = Field(None, max_length=10_000)


class AssignIn(BaseModel):
    assignee: str | None = Field(description="user name of the new assignee; null to unassign", max_length=64)
    note: str | None = Field(None, max_length=10_000)


class CommentIn(BaseModel):
    body: str = Field(min_length=1, max_length=10_000)


ALERT_WORK = "soc.alerts.manage"  # the permission an assignee's role must grant


def assignable_users(session: Session) -> list[str]:
    """User names an alert can be handed to (what ``check_assignee`` accepts): active users who may work alerts."""
    users = session.execute(select(User.username, User.role).where(User.active.is_(True)).order_by(User.username))
    return [name for name, role in users if policy().allows(role, ALERT_WORK)]


def check_assignee(session: Session, username: str) -> str:
    """The user name if it names an active user whose role may work alerts (soc.alerts.manage); otherwise a
    ValueError that says what is wrong."""
    name = username.strip()
    if not name:
        raise ValueError("assignee: give a user name / 请填写处理人")
    user = session.scalar(select(User).where(User.username == name))
    if user is None:
        raise ValueError(f"assignee: no user {name!r} / 用户 {name} 不存在")
    if not user.active:
        raise ValueError(f"assignee: user {name!r} is deactivated / 用户 {name} 已停用")
    if not policy().allows(user.role, ALERT_WORK):
        raise ValueError(f"assignee: user {name!r} (role {user.role}) cannot work alerts (needs soc.alerts.manage)"
                         f" / 用户 {name} 无告警处置权限")
    return name


def alert_query(principal: Principal, session: Session, status: str | None = None,
                severity: str | None = None) -> Select[tuple[Alert]]:
    """The alerts this principal may see, filtered; ``status=open`` means new, acknowledged or investigating."""
    query = select(Alert)
    if status == "open":
        query = query.where(Alert.status.in_(OPEN_STATUSES))
    elif status:
        if status not in STATUSES:
            raise HTTPException(422, f"status must be open or one of {', '.join(STATUSES)}")
        query = query.where(Alert.status == status)
    if severity:
        if severity not in SEVERITY_ORDER:
            raise HTTPException(422, f"severity must be one of {', '.join(SEVERITY_ORDER)}")
        query = query.where(Alert.severity == severity)
    departments = principal.departments(session)
    if departments is not None:
        query = query.where(Alert.department_code.in_(departments))
    return query


def visible_alert(session: Session, principal: Principal, alert_id: int) -> Alert:
    """The alert, or 404 when it does not exist or belongs to a department the principal cannot see."""
    alert = session.get(Alert, alert_id)
    departments = principal.departments(session)
    if alert is None or (departments is not None and alert.department_code not in departments):
        raise HTTPException(404, f"no alert {alert_id} / 告警不存在")
    return alert


def alert_detail(session: Session, alert: Alert) -> dict[str, Any]:
    notes = session.scalars(select(AlertNote).where(AlertNote.alert_id == alert.id).order_by(AlertNote.id))
    history = session.scalars(select(AlertHistory).where(AlertHistory.alert_id == alert.id).order_by(AlertHistory.id))
    return {**alert_payload(alert),
            "notes": [{"author": n.author, "body": n.body, "at": n.created_at.isoformat()} for n in notes],
            "history": [{"actor": h.actor, "from": h.from_status, "to": h.to_status, "assignee": h.assignee,
                         "at": h.at.isoformat()} for h in history]}


@router.get("")
def list_alerts(session: Session = DB_SESSION, principal: Principal = Depends(require("soc.read")),
                status: str | None = None, severity: str | None = None,
                limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> dict[str, Any]:
    """Alerts newest first (by last seen)."""
    query = alert_query(principal, session, status, severity)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(Alert.last_seen.desc(), Alert.id.desc()).limit(limit).offset(offset))
    return {"total": total, "items": [alert_payload(a) for a in rows]}


@router.get("/{alert_id}")
def get_alert(alert_id: RowId, session: Session = DB_SESSION,
              principal: Principal = Depends(require("soc.read"))) -> dict[str, Any]:
    return alert_detail(session, visible_alert(session, principal, alert_id))


@router.post("/{alert_id}/transition")
def transition(alert_id: RowId, body: TransitionIn, session: Session = DB_SESSION,
               rt: Runtime = Depends(runtime),
               principal: Principal = Depends(require("soc.alerts.manage"))) -> dict[str, Any]:
    """Acknowledge, investigate, resolve, mark as false positive or reopen; written to the audit chain."""
    alert = visible_alert(session, principal, alert_id)
    assignee = body.assignee
    if assignee:
        try:
            assignee = check_assignee(session, assignee)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    try:
        AlertService(audit=rt.audit).transition(session, alert, body.status, principal.name,
                                                assignee=assignee, note=body.note)
    except WorkflowError as exc:
        raise HTTPException(409, str(exc)) from None
    session.flush()
    return alert_detail(session, alert)


@router.post("/{alert_id}/assign")
def assign(alert_id: RowId, body: AssignIn, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
           principal: Principal = Depends(require("soc.alerts.manage"))) -> dict[str, Any]:
    """Hand an open alert over to another analyst (or unassign it) without changing its status; audited."""
    alert = visible_alert(session, principal, alert_id)
    try:
        assignee = check_assignee(session, body.assignee) if body.assignee is not None else None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        AlertService(audit=rt.audit).assign(session, alert, assignee, principal.name, note=body.note)
    except WorkflowError as exc:
        raise HTTPException(409, str(exc)) from None
    session.flush()
    return alert_detail(session, alert)


@router.post("/{alert_id}/comments", status_code=201)
def comment(alert_id: RowId, body: CommentIn, session: Session = DB_SESSION,
            principal: Principal = Depends(require("soc.alerts.comment"))) -> dict[str, Any]:
    alert = visible_alert(session, principal, alert_id)
    try:
        AlertService().comment(session, alert, principal.name, body.body)
    except WorkflowError as exc:
        raise HTTPException(422, str(exc)) from None
    session.flush()
    return alert_detail(session, alert)
