"""Drill routes: create from a scenario, replay, link alerts by hand, findings, complete, report.

Reads are department-scoped like alerts: a department user sees the drills whose scope holds a system of its
departments, and only those departments' alerts within them (``Principal.departments``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from core.runtime import Runtime
from portal.alerts_api import visible_alert
from portal.api_types import RowId, RowIdField, UtcTime
from portal.deps import DB_SESSION, Principal, require, runtime
from portal.soc_api import services
from soc.drills.models import Drill, DrillFinding, DrillStep
from soc.drills.replay import replay
from soc.drills.report import report_html, report_json
from soc.drills.scenario import Scenario, ScenarioStep, scenarios
from soc.drills.service import (
    DrillError,
    DrillInputError,
    add_finding,
    auto_link,
    complete,
    create_drill,
    drill_visible,
    link_by_hand,
    score,
    set_finding_status,
    visible_drills,
)

router = APIRouter(prefix="/api/soc/drills", tags=["drills"])
MAX_STEP_OFFSET_SECONDS = 366 * 86400  # a step is planned within a year of the drill's start


class StepIn(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    technique: str
    target: str = Field(min_length=1, max_length=255)
    expected_rule: str | None = Field(None, max_length=64)
    offset_seconds: float = Field(0, ge=0, le=MAX_STEP_OFFSET_SECONDS, allow_inf_nan=False)


class DrillIn(BaseModel):
    scenario: str | None = Field(None, description="scenario code (e.g. web-to-root), or give type and steps")
    title: str | None = Field(None, max_length=256)
    type: Literal["attack_defense", "emergency"] | None = None
    description: str = Field("", max_length=10_000)
    teams: dict[str, list[str]] = {}
    steps: list[StepIn] = []
    planned_start: UtcTime | None = None
    scope: list[str] = []


class ExecutedIn(BaseModel):
    at: UtcTime | None = Field(None, description="when the red team executed the step (default: now)")


class LinkIn(BaseModel):
    alert_id: RowIdField


class FindingIn(BaseModel):
    title: str = Field(min_length=1, max_length=256)
    remediation: str = Field(min_length=1, max_length=10_000)
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    step_seq: RowIdField | None = None
    owner: str | None = Field(None, max_length=64)
    due: UtcTime | None = None


class FindingStatusIn(BaseModel):
    status: str = Field(description="open | in_progress | closed")
    reason: str | None = Field(None, max_length=10_000, description="why; required to reopen a closed finding")


def _drill(session: Session, drill_id: int, principal: Principal | None = None) -> Drill:
    """The drill, or 404 when it does not exist or (given a principal) is outside the principal's departments."""
    drill = session.get(Drill, drill_id)
    if drill is None or (principal is not None and not drill_visible(session, drill, principal.departments(session))):
        raise HTTPException(404, f"no drill {drill_id} / 演练不存在")
    return drill


def _step(drill: Drill, seq: int, status_code: int = 404) -> DrillStep:
    """Step ``seq`` of the drill, or an HTTP error (404 for a path, 422 for a body field) naming it."""
    step = next((s for s in drill.steps if s.seq == seq), None)
    if step is None:
        raise HTTPException(status_code, f"drill {drill.id} has no step {seq}")
    return step


@router.get("/scenarios")
def list_scenarios(principal: Principal = Depends(require("soc.read"))) -> list[dict[str, Any]]:
    return [{"code": s.code, "title": s.title, "title_en": s.title_en, "type": s.type, "steps": len(s.steps)}
            for s in scenarios().values()]


@router.get("")
def list_drills(session: Session = DB_SESSION, principal: Principal = Depends(require("soc.read"))) -> list[dict]:  # type: ignore[type-arg]
    departments = principal.departments(session)
    return [score(session, d, departments)["drill"] | {"steps": len(d.steps)}
            for d in visible_drills(session, departments)]


@router.post("", status_code=201)
def new_drill(body: DrillIn, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
              principal: Principal = Depends(require("soc.drills.manage"))) -> dict[str, Any]:
    """From a scenario (replayable), or a drill of the team's own with its planned steps."""
    if body.scenario is not None:
        scenario = scenarios().get(body.scenario)
        if scenario is None:
            raise HTTPException(422, f"unknown scenario {body.scenario!r}; known: {', '.join(scenarios())}")
    else:
        if not (body.title and body.type and body.steps):
            raise HTTPException(422, "without a scenario give title, type and steps / 请提供标题、类型和步骤")
        try:
            scenario = Scenario(code="custom", title=body.title, title_en=body.title, type=body.type,
                                scenario=body.description, teams=body.teams,
                                steps=[ScenarioStep(**step.model_dump()) for step in body.steps])
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    try:
        drill = create_drill(session, rt.audit, principal.name, scenario, body.planned_start or datetime.now(UTC),
                             body.scope, body.title)
    except DrillError as exc:
        raise HTTPException(422, str(exc)) from None
    if body.scenario is None:
        drill.scenario_code = None  # nothing to replay: the steps are carried out for real
    return score(session, drill)


@router.get("/{drill_id}")
def get_drill(drill_id: RowId, session: Session = DB_SESSION,
              principal: Principal = Depends(require("soc.read"))) -> dict[str, Any]:
    return score(session, _drill(session, drill_id, principal), principal.departments(session))


@router.post("/{drill_id}/replay")
def replay_drill(drill_id: RowId, request: Request, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                 principal: Principal = Depends(require("soc.drills.manage"))) -> dict[str, Any]:
    """Inject the scenario's attack logs into the pipeline now, then link and score (synchronous)."""
    drill = _drill(session, drill_id)
    scenario = scenarios().get(drill.scenario_code or "")
    if scenario is None:
        raise HTTPException(422, "this drill has no scenario to replay / 该演练没有可回放的场景")
    session.commit()  # the replay works in its own transactions
    try:
        return replay(rt, services(request).soc, drill_id, scenario, principal.name)
    except DrillError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/{drill_id}/steps/{seq}/links", status_code=201)
def link_alert(drill_id: RowId, seq: RowId, body: LinkIn, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
               principal: Principal = Depends(require("soc.drills.manage"))) -> dict[str, Any]:
    drill = _drill(session, drill_id)
    step = _step(drill, seq)
    try:
        link_by_hand(session, rt.audit, principal.name, step, visible_alert(session, principal, body.alert_id))
    except DrillError as exc:
        raise HTTPException(409, str(exc)) from None
    return score(session, drill)


@router.post("/{drill_id}/steps/{seq}/executed")
def step_executed(drill_id: RowId, seq: RowId, body: ExecutedIn, session: Session = DB_SESSION,
                  rt: Runtime = Depends(runtime), principal: Principal = Depends(require("soc.drills.manage"))
                  ) -> dict[str, Any]:
    """Record when a step was actually carried out (the timeline), then link the alerts that followed it."""
    drill = _drill(session, drill_id)
    if drill.status == "completed":
        raise HTTPException(409, f"drill {drill_id} is completed")
    step = _step(drill, seq)
    step.executed_at = body.at or datetime.now(UTC)
    if drill.status == "planned":
        drill.status, drill.actual_start = "running", step.executed_at
    rt.audit.append(session, actor=principal.name, action="drill.step", object_type="drill",
                    object_id=str(drill_id), payload={"step": seq, "executed_at": step.executed_at.isoformat()})
    auto_link(session, drill)
    return score(session, drill)


@router.post("/{drill_id}/findings", status_code=201)
def new_finding(drill_id: RowId, body: FindingIn, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                principal: Principal = Depends(require("soc.drills.manage"))) -> dict[str, Any]:
    drill = _drill(session, drill_id)
    step: DrillStep | None = None
    if body.step_seq is not None:
        step = _step(drill, body.step_seq, 422)
    try:
        add_finding(session, rt.audit, principal.name, drill, body.title, body.remediation, body.severity, step,
                    body.owner, body.due)
    except DrillInputError as exc:
        raise HTTPException(422, str(exc)) from None
    except DrillError as exc:
        raise HTTPException(409, str(exc)) from None
    return score(session, drill)


@router.post("/{drill_id}/findings/{finding_id}/status")
def finding_status(drill_id: RowId, finding_id: RowId, body: FindingStatusIn, session: Session = DB_SESSION,
                   rt: Runtime = Depends(runtime), principal: Principal = Depends(require("soc.drills.manage"))
                   ) -> dict[str, Any]:
    """Move a finding open → in_progress → closed (who and when are kept); reopening a closed one needs a reason."""
    drill = _drill(session, drill_id)
    finding = session.get(DrillFinding, finding_id)
    if finding is None or finding.drill_id != drill.id:
        raise HTTPException(404, f"drill {drill_id} has no finding {finding_id} / 整改项不存在")
    try:
        set_finding_status(session, rt.audit, principal.name, finding, body.status, body.reason)
    except DrillInputError as exc:
        raise HTTPException(422, str(exc)) from None
    except DrillError as exc:
        raise HTTPException(409, str(exc)) from None
    return score(session, drill)


@router.post("/{drill_id}/complete")
def complete_drill(drill_id: RowId, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                   principal: Principal = Depends(require("soc.drills.manage"))) -> dict[str, Any]:
    try:
        return complete(session, rt.audit, principal.name, _drill(session, drill_id))
    except DrillError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/{drill_id}/report", response_model=None)
def drill_report(drill_id: RowId, session: Session = DB_SESSION, principal: Principal = Depends(require("soc.read")),
                 format: Literal["json", "html"] = Query("html")) -> Response:
    result = score(session, _drill(session, drill_id, principal), principal.departments(session))
    if format == "json":
        return Response(report_json(result), media_type="application/json")
    return HTMLResponse(report_html(result))
