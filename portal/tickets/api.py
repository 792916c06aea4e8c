"""Ticket routes under /api/tickets: list, submit, show, review, approve, withdraw, renew; maintenance and the
idle-systems report. Department users see and file only their own department's tickets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from core.runtime import Runtime
from portal.api_types import DB_INT_MAX
from portal.deps import DB_SESSION, Principal, require, runtime
from portal.tickets import service as svc
from portal.tickets.models import STATES, Ticket
from portal.tickets.schema import start_of_day

router = APIRouter(prefix="/api/tickets", tags=["tickets"])


class DecisionIn(BaseModel):
    approve: bool = True
    note: str | None = Field(None, max_length=10_000)


class NoteIn(BaseModel):
    note: str | None = Field(None, max_length=10_000)


class CompleteIn(BaseModel):
    evaluation_id: int = Field(ge=1, le=DB_INT_MAX,
                               description="a later evaluation of the system in which the unit is 符合")
    note: str | None = Field(None, max_length=10_000)


class RenewIn(BaseModel):
    expires: date | datetime
    note: str | None = Field(None, max_length=10_000)


def actor_of(principal: Principal, session: Session) -> svc.Actor:
    """The service's view of the caller: name, role and visible departments."""
    scope = principal.departments(session)
    return svc.Actor(principal.name, principal.user.role, frozenset(scope) if scope is not None else None)


ERRORS: dict[type[Exception], int] = {svc.TicketError: 422, svc.TicketForbidden: 403, svc.TicketConflict: 409,
                                      svc.TicketNotFound: 404}


@contextmanager
def http_errors() -> Iterator[None]:
    """Service errors as HTTP errors (422 / 403 / 409 / 404) with the service's message."""
    try:
        yield
    except tuple(ERRORS) as exc:
        raise HTTPException(ERRORS[type(exc)], str(exc)) from None


def onboarder(request: Request) -> svc.Onboarder | None:
    """The on-boarding step of this app (tests inject one; default: onboard.yml where a lab is up, its job events
    into the server's own SOC when its services run)."""
    injected = getattr(request.app.state, "ticket_onboarder", None)
    services = getattr(request.app.state, "soc", None)
    if injected is not None or services is None:
        return injected
    return partial(svc.lab_onboarder, soc=services.soc)


def to_datetime(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return svc.aware(value) or value
    return start_of_day(value)


def _act(session: Session, principal: Principal, ref: str,
         action: Callable[[svc.Actor, Ticket], Any]) -> dict[str, Any]:
    with http_errors():
        actor = actor_of(principal, session)
        ticket = svc.visible_ticket(session, actor, ref)
        action(actor, ticket)
        session.flush()
        return svc.ticket_dict(session, ticket, detail=True)


@router.get("")
def list_tickets(session: Session = DB_SESSION, principal: Principal = Depends(require("tickets.read")),
                 state: str | None = None, type: str | None = None,
                 limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    """Tickets newest first; ``state`` is a state or ``open`` (not closed, rejected or withdrawn)."""
    if state and state != "open" and state not in STATES:
        raise HTTPException(422, f"state must be open or one of {', '.join(STATES)}")
    with http_errors():
        try:
            rows, total = svc.list_tickets(session, actor_of(principal, session), state=state, type_=type,
                                           limit=limit, offset=offset)
        except ValueError as exc:
            raise svc.TicketError(str(exc)) from None
        return {"total": total, "items": [svc.ticket_dict(session, t) for t in rows]}


@router.post("", status_code=201)
def submit(body: dict[str, Any], session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
           principal: Principal = Depends(require("tickets.submit")), draft: bool = False) -> dict[str, Any]:
    """File a ticket (the ticket-file fields as JSON) and submit it: admission runs at once and either moves it to
    security review or rejects it with the failed checks (policy violations included). ``draft=true`` only
    stores it."""
    with http_errors():
        ticket = svc.create(session, rt.audit, actor_of(principal, session), body, net=rt.settings.net,
                            submit=not draft)
        return svc.ticket_dict(session, ticket, detail=True)


@router.get("/idle-systems")
def idle_systems(session: Session = DB_SESSION, principal: Principal = Depends(require("tickets.read")),
                 days: int | None = Query(None, ge=1, le=svc.IDLE_DAYS_MAX)) -> dict[str, Any]:
    """僵尸系统: systems with no register activity for ``days`` (default from the ticket policy)."""
    actor = actor_of(principal, session)
    items = svc.idle_systems(session, days, departments=actor.departments)
    return {"days": days or svc.ticket_policy().idle_days, "total": len(items), "items": items}


@router.post("/maintenance")
def maintenance(session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                principal: Principal = Depends(require("tickets.operate"))) -> dict[str, list[str]]:
    """Escalate overdue approvals, remind before expiry, reclaim after the grace period (``yunshu tickets
    maintain`` does the same from a timer)."""
    return svc.maintain_in(session, rt.audit)


@router.get("/{ref}")
def show(ref: str, session: Session = DB_SESSION,
         principal: Principal = Depends(require("tickets.read"))) -> dict[str, Any]:
    """One ticket with its resources, admission checks, plan, jobs and history."""
    with http_errors():
        return svc.ticket_dict(session, svc.visible_ticket(session, actor_of(principal, session), ref), detail=True)


@router.post("/{ref}/submit")
def submit_draft(ref: str, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                 principal: Principal = Depends(require("tickets.submit"))) -> dict[str, Any]:
    """Submit a draft (admission runs at once)."""
    return _act(session, principal, ref, lambda a, t: svc.submit_ticket(session, rt.audit, a, t, net=rt.settings.net))


@router.post("/{ref}/review")
def review(ref: str, body: DecisionIn, request: Request, background: BackgroundTasks, session: Session = DB_SESSION,
           rt: Runtime = Depends(runtime), principal: Principal = Depends(require("tickets.review"))) -> dict[str, Any]:
    """Security review (not by the requester): approve → resource approval (a 等保整改 ticket: → remediation work,
    with onboard.yml queued for a host baseline item); reject (with a note) → rejected."""
    out = _act(session, principal, ref,
               lambda a, t: svc.review(session, rt.audit, a, t, approve=body.approve, note=body.note))
    if out["state"] == "onboarding" and any(j["status"] == "queued" for j in out["jobs"]):
        background.add_task(svc.run_pipeline, rt, out["number"], onboarder(request))
    return out


@router.post("/{ref}/complete")
def complete(ref: str, body: CompleteIn, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
             principal: Principal = Depends(require("tickets.operate"))) -> dict[str, Any]:
    """Mark a 等保整改 ticket done (platform engineers, neither the requester nor the reviewer), naming the later
    evaluation that shows the unit 符合: → delivered."""
    return _act(session, principal, ref, lambda a, t: svc.complete_remediation(
        session, rt.audit, a, t, evaluation_id=body.evaluation_id, note=body.note))


@router.post("/{ref}/approve")
def approve(ref: str, body: DecisionIn, request: Request, background: BackgroundTasks,
            session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
            principal: Principal = Depends(require("tickets.approve"))) -> dict[str, Any]:
    """Resource approval (neither the requester nor the security reviewer): provisioning (plan mode) and
    on-boarding follow once the approval is stored; repeating one's own approval changes nothing."""
    out = _act(session, principal, ref,
               lambda a, t: svc.approve(session, rt.audit, a, t, approve=body.approve, note=body.note))
    if out["state"] == "provisioning":
        background.add_task(svc.run_pipeline, rt, out["number"], onboarder(request))
    return out


@router.post("/{ref}/withdraw")
def withdraw(ref: str, body: NoteIn, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
             principal: Principal = Depends(require("tickets.read"))) -> dict[str, Any]:
    """The requester withdraws a ticket not yet approved."""
    return _act(session, principal, ref, lambda a, t: svc.withdraw(session, rt.audit, a, t, note=body.note))


@router.post("/{ref}/renew")
def renew(ref: str, body: RenewIn, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
          principal: Principal = Depends(require("tickets.submit"))) -> dict[str, Any]:
    """A new expiry for resources in use (also during the grace period after expiry)."""
    return _act(session, principal, ref,
                lambda a, t: svc.renew(session, rt.audit, a, t, to_datetime(body.expires), note=body.note))


@router.post("/{ref}/retry-onboarding")
def retry_onboarding(ref: str, request: Request, background: BackgroundTasks, session: Session = DB_SESSION,
                     rt: Runtime = Depends(runtime),
                     principal: Principal = Depends(require("tickets.operate"))) -> dict[str, Any]:
    """Queue a failed on-boarding again (platform engineers); it runs once the request is stored."""
    out = _act(session, principal, ref, lambda a, t: svc.retry_onboarding(session, rt.audit, a, t))
    background.add_task(svc.run_pipeline, rt, out["number"], onboarder(request))
    return out
