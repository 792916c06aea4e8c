"""Console pages for tickets (zh-CN first): the list, the submit form, one ticket with its plan, policy results,
jobs and history, and the review / approval / withdraw / renew buttons (CSRF-checked form posts)."""

from __future__ import annotations

from datetime import date
from typing import Any

import yaml
from fastapi import APIRouter, BackgroundTasks, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core.runtime import Runtime
from inventory.queries import list_departments
from inventory.vocabulary import vocabulary
from portal.deps import DB_SESSION, Principal, require, runtime
from portal.tickets import service as svc
from portal.tickets.api import actor_of, onboarder, to_datetime
from portal.tickets.models import STATES, TICKET_TYPES
from portal.tickets.schema import ticket_policy
from portal.web import render

router = APIRouter(include_in_schema=False)
FORM_FIELDS = ("type", "title", "department", "system", "new_system_name", "new_system_description", "mlps_level",
               "grading_info_object", "grading_info_degree", "grading_service_object", "grading_service_degree",
               "data_class", "expires", "justification", "data_catalog_id", "crypto_plan", "resources")


def _types() -> list[tuple[str, Any]]:
    return [(code, ticket_policy().types[code]) for code in TICKET_TYPES]


@router.get("/tickets")
def tickets_page(request: Request, session: Session = DB_SESSION,
                 principal: Principal = Depends(require("tickets.read", web=True))) -> HTMLResponse:
    state = request.query_params.get("state", "open") or None
    type_ = request.query_params.get("type") or None
    error, rows, total = None, [], 0
    try:
        if state and state != "open" and state not in STATES:
            raise ValueError(f"state must be open or one of {', '.join(STATES)}")
        found, total = svc.list_tickets(session, actor_of(principal, session), state=state, type_=type_, limit=200)
        rows = [svc.ticket_dict(session, t) for t in found]
    except ValueError as exc:
        error = str(exc)
    return render(request, "tickets.html", {"me": principal, "rows": rows, "total": total, "state": state or "",
                                            "type": type_ or "", "states": STATES, "types": _types(),
                                            "error": error, "nav": "tickets",
                                            "can_submit": principal.can("tickets.submit")})


def _new_page(request: Request, session: Session, principal: Principal, values: dict[str, str],
              error: str | None, status_code: int = 200) -> HTMLResponse:
    departments = [d for d, _ in list_departments(session, principal.departments(session))]
    vocab = vocabulary()
    return render(request, "tickets_new.html", {
        "me": principal, "nav": "tickets", "types": _types(), "departments": departments, "v": values,
        "error": error, "objects": vocab.enums["grading_object"].codes(),
        "degrees": vocab.enums["grading_degree"].codes(), "data_classes": vocab.enums["data_class"].codes()},
        status_code=status_code)


@router.get("/tickets/new")
def new_ticket_page(request: Request, session: Session = DB_SESSION,
                    principal: Principal = Depends(require("tickets.submit", web=True))) -> HTMLResponse:
    own = principal.user.department_code or ""
    values = {"department": own, "type": "cloud_resources"}
    # a link may prefill the form (e.g. 申请撤销 from the idle-systems report)
    values.update({k: v for k, v in request.query_params.items() if k in ("type", "department", "system", "title")})
    return _new_page(request, session, principal, values, None)


@router.get("/tickets/idle")
def idle_page(request: Request, session: Session = DB_SESSION,
              principal: Principal = Depends(require("tickets.read", web=True))) -> HTMLResponse:
    """僵尸系统: systems without activity for N days (default from the ticket policy), department-scoped."""
    error, days = None, ticket_policy().idle_days
    try:
        raw = request.query_params.get("days")
        if raw:
            days = int(raw)
            if not 1 <= days <= svc.IDLE_DAYS_MAX:
                raise ValueError
    except ValueError:
        error = f"days must be a whole number from 1 to {svc.IDLE_DAYS_MAX} / 天数须为 1–{svc.IDLE_DAYS_MAX} 的整数"
        days = ticket_policy().idle_days
    rows = svc.idle_systems(session, days, departments=actor_of(principal, session).departments)
    return render(request, "tickets_idle.html", {"me": principal, "nav": "tickets", "rows": rows, "days": days,
                                                 "max_days": svc.IDLE_DAYS_MAX, "error": error,
                                                 "can_submit": principal.can("tickets.submit")})


def _form_ticket(values: dict[str, str]) -> dict[str, Any]:
    """The form's fields as the ticket-file shape (the resources textarea is YAML)."""
    data: dict[str, Any] = {k: values[k] for k in ("type", "title", "department", "justification",
                                                   "data_catalog_id") if values.get(k)}
    for key in ("system", "mlps_level", "data_class", "expires", "crypto_plan"):
        if values.get(key):
            data[key] = values[key]
    if values.get("new_system_name"):
        data["new_system"] = {"name": values["new_system_name"],
                              "description": values.get("new_system_description", "")}
    grading = [values.get(k) for k in ("grading_info_object", "grading_info_degree", "grading_service_object",
                                       "grading_service_degree")]
    if any(grading):
        data["grading"] = {"business_info": {"object": grading[0], "degree": grading[1]},
                           "system_service": {"object": grading[2], "degree": grading[3]}}
    if values.get("resources", "").strip():
        try:
            resources = yaml.safe_load(values["resources"])
        except yaml.YAMLError as exc:
            raise svc.TicketError(f"resources: not valid YAML ({exc})") from None
        if not isinstance(resources, dict):
            raise svc.TicketError("resources: must be a mapping with tenant / systems / k8s")
        data["resources"] = resources
    return data


@router.post("/tickets/new")
async def new_ticket(request: Request, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                     principal: Principal = Depends(require("tickets.submit", web=True))) -> Response:
    form = await request.form()
    values = {k: str(form.get(k) or "").strip() for k in FORM_FIELDS}

    def create() -> str:
        with session.begin_nested():
            ticket = svc.create(session, rt.audit, actor_of(principal, session), _form_ticket(values),
                                net=rt.settings.net)
        return ticket.ref

    try:
        ref = await run_in_threadpool(create)
    except (svc.TicketError, svc.TicketForbidden) as exc:
        return await run_in_threadpool(_new_page, request, session, principal, values, str(exc), 422)
    return RedirectResponse(f"/tickets/{ref}", status_code=303)


def _detail_page(request: Request, session: Session, principal: Principal, ticket_ref: str,
                 error: str | None = None, status_code: int = 200) -> HTMLResponse:
    actor = actor_of(principal, session)
    try:
        ticket = svc.visible_ticket(session, actor, ticket_ref)
    except svc.TicketNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    t = svc.ticket_dict(session, ticket, detail=True)
    mine = ticket.requester == principal.name
    can = {
        "review": ticket.state == "security_review" and principal.can("tickets.review") and not mine,
        "approve": ticket.state == "resource_approval" and principal.can("tickets.approve") and not mine
        and ticket.security_reviewer != principal.name,
        "withdraw": ticket.state in svc.WITHDRAWABLE and (mine or principal.user.role == "admin"),
        "renew": ticket.state in ("delivered", "renewed", "reclaiming") and ticket.expires_at is not None
        and principal.can("tickets.submit"),
        "complete": ticket.type == "remediation" and ticket.state == "onboarding"
        and principal.can("tickets.operate") and not mine and ticket.security_reviewer != principal.name,
    }
    return render(request, "tickets_detail.html", {"me": principal, "tk": t, "can": can, "error": error,
                                                   "nav": "tickets", "type_rule": ticket_policy().types[ticket.type],
                                                   "today": date.today().isoformat()}, status_code=status_code)


@router.get("/tickets/{ticket_ref}")
def ticket_page(ticket_ref: str, request: Request, session: Session = DB_SESSION,
                principal: Principal = Depends(require("tickets.read", web=True))) -> HTMLResponse:
    return _detail_page(request, session, principal, ticket_ref)


@router.post("/tickets/{ticket_ref}/{action}")
def ticket_action(ticket_ref: str, action: str, request: Request, background: BackgroundTasks,
                  decision: str = Form("approve"), note: str = Form(""), expires: str = Form(""),
                  evaluation_id: str = Form(""), session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                  principal: Principal = Depends(require("tickets.read", web=True))) -> Response:
    """review | approve | withdraw | renew | complete (等保整改), from the detail page's buttons."""
    if action not in ("review", "approve", "withdraw", "renew", "complete"):
        raise HTTPException(404, f"no ticket action '{action}'")
    actor = actor_of(principal, session)
    try:
        with session.begin_nested():
            ticket = svc.visible_ticket(session, actor, ticket_ref)
            yes, text = decision != "reject", note.strip() or None
            if action == "review":
                svc.review(session, rt.audit, actor, ticket, approve=yes, note=text)
            elif action == "approve":
                svc.approve(session, rt.audit, actor, ticket, approve=yes, note=text)
            elif action == "withdraw":
                svc.withdraw(session, rt.audit, actor, ticket, note=text)
            elif action == "complete":
                if not evaluation_id.strip().isdigit():
                    raise svc.TicketError(f"evaluation_id: '{evaluation_id}' is not an evaluation number")
                svc.complete_remediation(session, rt.audit, actor, ticket, evaluation_id=int(evaluation_id),
                                         note=text)
            else:
                try:
                    when = to_datetime(date.fromisoformat(expires))
                except ValueError:
                    raise svc.TicketError(f"expires: '{expires}' is not a date (YYYY-MM-DD)") from None
                svc.renew(session, rt.audit, actor, ticket, when, note=text)
    except svc.TicketNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except (svc.TicketError, svc.TicketForbidden, svc.TicketConflict) as exc:
        code = 403 if isinstance(exc, svc.TicketForbidden) else 409 if isinstance(exc, svc.TicketConflict) else 422
        return _detail_page(request, session, principal, ticket_ref, str(exc), status_code=code)
    if ticket.state == "provisioning" or (action == "review" and ticket.state == "onboarding"):
        background.add_task(svc.run_pipeline, rt, ticket.id, onboarder(request))
    return RedirectResponse(f"/tickets/{ticket.ref}", status_code=303)
