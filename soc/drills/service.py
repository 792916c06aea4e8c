"""Drills: records built from scenarios, alerts linked to steps, scoring (coverage, MTTD, MTTR), findings, replay.

Auto-linking joins an alert to an executed step when the alert's first event falls in the step's window (one
minute before execution to ``window_minutes`` after), the alert concerns the step's target (host name, system id
or address) and it detects what the step did (the step's ATT&CK technique, a sub-technique of it or its parent
technique is among the alert's tags, or the alert's rule is the step's expected rule). A completed drill takes no
more links or findings: its report was written to the audit chain (a finding's status still moves on).

Time to detect (MTTD) runs from a step's execution to the creation of its first linked alert (``Alert.created_at``,
when the SOC raised it), so detection and pipeline delay count; the alert's ``first_seen`` is the time of the event it
matched and says nothing about how fast the SOC reacted. Time to resolve (MTTR) runs from an alert's creation to its
resolution.

Visibility: a department-scoped viewer sees a drill when its scope holds a system of one of the viewer's departments,
and within the score only the alerts of those departments (see ``visible_drills`` and ``score``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import AuditChain
from inventory.models import System
from soc.alerts.models import Alert
from soc.alerts.service import as_utc
from soc.drills.models import Drill, DrillAlertLink, DrillFinding, DrillStep
from soc.drills.report import report_digest
from soc.drills.scenario import Scenario
from soc.pipeline import RawRecord

WINDOW_MINUTES = 30
FINDING_STATUSES = ("open", "in_progress", "closed")
FINDING_SEVERITIES = ("low", "medium", "high", "critical")


class DrillError(ValueError):
    """A drill operation that is not possible in the drill's state (the message says why)."""


class DrillInputError(DrillError):
    """What was asked is malformed rather than in conflict with the drill's state (an unknown status, a missing
    reason): the API answers 422 instead of 409."""


def create_drill(session: Session, audit: AuditChain | None, actor: str, scenario: Scenario,
                 planned_start: datetime, scope: list[str] | None = None, title: str | None = None) -> Drill:
    """A planned drill with the scenario's steps, written to the audit chain.

    ``scope`` holds system ids of the register; an unknown id is a ``DrillError`` naming it.
    """
    scope = list(dict.fromkeys(scope or []))
    if scope:
        known = set(session.scalars(select(System.id).where(System.id.in_(scope))))
        unknown = [system_id for system_id in scope if system_id not in known]
        if unknown:
            raise DrillError(f"unknown system id(s) in the drill scope: {', '.join(unknown)} / 演练范围中的系统不存在")
    drill = Drill(title=title or scenario.title, type=scenario.type, scenario_code=scenario.code,
                  scenario=scenario.scenario, scope=scope, teams=dict(scenario.teams), status="planned",
                  planned_start=planned_start, created_by=actor, created_at=datetime.now(UTC))
    drill.steps = [DrillStep(seq=i, name=s.name, technique=s.technique, target=s.target,
                             expected_rule=s.expected_rule,
                             planned_at=planned_start + timedelta(seconds=s.offset_seconds))
                   for i, s in enumerate(scenario.steps, 1)]
    session.add(drill)
    session.flush()
    if audit is not None:
        audit.append(session, actor=actor, action="drill.create", object_type="drill", object_id=str(drill.id),
                     payload={"title": drill.title, "type": drill.type, "scenario": scenario.code,
                              "steps": len(drill.steps), "scope": drill.scope})
    return drill


def replay_records(drill: Drill, scenario: Scenario, start: datetime) -> list[tuple[DrillStep, list[RawRecord]]]:
    """The raw log records of every step, timed from ``start``, with durable keys (replaying twice adds nothing)."""
    by_seq = {step.seq: step for step in drill.steps}
    out = []
    for seq, spec in enumerate(scenario.steps, 1):
        step = by_seq[seq]
        records = [RawRecord(f"drill:{drill.id}:{seq}:{n}", line.encode())
                   for n, (_, line) in enumerate(spec.raw_lines(start))]
        out.append((step, records))
    return out


def _technique_matches(step_technique: str, tags: Iterable[str]) -> bool:
    wanted = step_technique.lower()
    parent = wanted.split(".")[0]
    for tag in tags:
        tech = tag.removeprefix("attack.").lower()
        if tech in (wanted, parent) or tech.startswith(wanted + "."):
            return True
    return False


def auto_link(session: Session, drill: Drill, rule_ids: dict[str, str] | None = None,
              window_minutes: int = WINDOW_MINUTES, anchors: dict[int, datetime] | None = None) -> int:
    """Link alerts to the drill's executed steps (see the module docstring); returns how many links were added.

    The window opens at the step's execution, or at ``anchors[step.seq]`` when given: a replay feeds every step at
    once, so its steps' events keep the scenario's timeline while the steps are executed when they are fed.
    """
    rule_ids = rule_ids or {}
    anchors = anchors or {}
    added = 0
    for step in drill.steps:
        if step.executed_at is None:
            continue
        at = as_utc(anchors.get(step.seq, step.executed_at))
        expected = rule_ids.get(step.expected_rule or "", step.expected_rule)
        candidates = session.scalars(select(Alert).where(
            Alert.first_seen >= at - timedelta(minutes=1), Alert.first_seen <= at + timedelta(minutes=window_minutes)))
        linked = set(session.scalars(select(DrillAlertLink.alert_id).where(DrillAlertLink.step_id == step.id)))
        for alert in candidates:
            if alert.id in linked:
                continue
            on_target = step.target in {alert.host_name, alert.system_id, alert.source_ip}
            detects = _technique_matches(step.technique, alert.attack or []) or (expected and alert.rule_id == expected)
            if on_target and detects:
                session.add(DrillAlertLink(step_id=step.id, alert_id=alert.id, method="auto", linked_by="yunshu",
                                           linked_at=datetime.now(UTC)))
                added += 1
    session.flush()
    return added


def _check_open(drill: Drill) -> None:
    """DrillError when the drill is completed (its report is in the audit chain and stays as written)."""
    if drill.status == "completed":
        raise DrillError(f"drill {drill.id} is completed / 演练已结束")


def link_by_hand(session: Session, audit: AuditChain | None, actor: str, step: DrillStep, alert: Alert) -> None:
    """An analyst's link between a step and an alert (also written to the audit chain)."""
    drill = session.get(Drill, step.drill_id)
    assert drill is not None  # a step belongs to its drill
    _check_open(drill)
    exists = session.scalar(select(DrillAlertLink.id).where(DrillAlertLink.step_id == step.id,
                                                            DrillAlertLink.alert_id == alert.id))
    if exists is not None:
        raise DrillError(f"alert {alert.id} is already linked to step {step.seq}")
    session.add(DrillAlertLink(step_id=step.id, alert_id=alert.id, method="manual", linked_by=actor,
                               linked_at=datetime.now(UTC)))
    if audit is not None:
        audit.append(session, actor=actor, action="drill.link", object_type="drill", object_id=str(step.drill_id),
                     payload={"step": step.seq, "alert": alert.id})
    session.flush()


def _department_systems(session: Session, departments: set[str]) -> set[str]:
    """The ids of the systems owned by ``departments``."""
    return set(session.scalars(select(System.id).where(System.department_code.in_(departments))))


def drill_visible(session: Session, drill: Drill, departments: set[str] | None) -> bool:
    """Whether a viewer limited to ``departments`` (None: all) may see the drill: its scope holds one of their
    systems."""
    return departments is None or not _department_systems(session, departments).isdisjoint(drill.scope or [])


def visible_drills(session: Session, departments: set[str] | None, limit: int | None = None) -> list[Drill]:
    """The drills a viewer limited to ``departments`` (None: all) may see (as ``drill_visible``), newest first."""
    drills = session.scalars(select(Drill).order_by(Drill.id.desc()))
    if departments is not None:
        systems = _department_systems(session, departments)
        drills = (d for d in drills if not systems.isdisjoint(d.scope or []))
    return list(drills)[:limit] if limit is not None else list(drills)


def _iso(at: datetime | None) -> str | None:
    return as_utc(at).isoformat() if at is not None else None


def finding_record(finding: DrillFinding) -> dict[str, Any]:
    return {"id": finding.id, "step": finding.step_id, "title": finding.title, "severity": finding.severity,
            "remediation": finding.remediation, "owner": finding.owner, "status": finding.status,
            "due": _iso(finding.due), "status_by": finding.status_by, "status_at": _iso(finding.status_at),
            "status_note": finding.status_note, "closed_by": finding.status_by if finding.status == "closed" else None,
            "closed_at": _iso(finding.closed_at)}


def score(session: Session, drill: Drill, departments: set[str] | None = None) -> dict[str, Any]:
    """Coverage, time to detect per step, time to resolve the linked alerts (each alert once,
    however many steps it is linked to), and the findings.

    Coverage, MTTD and MTTR are the drill's results and count every linked alert; with ``departments`` (a
    department-scoped viewer) a step lists only the alerts of those departments and counts the others in
    ``alerts_hidden``.
    """
    steps = []
    mttds: list[float] = []
    mttrs: dict[int, float] = {}  # alert id → time to resolve
    for step in drill.steps:
        links = session.execute(select(DrillAlertLink, Alert).join(Alert, Alert.id == DrillAlertLink.alert_id)
                                .where(DrillAlertLink.step_id == step.id)
                                .order_by(Alert.created_at, Alert.id)).all()
        alerts = [alert for _, alert in links]
        mttd = None
        if step.executed_at is not None and alerts:
            # when the SOC raised its first alert, not when the matched event happened (first_seen)
            mttd = max(0.0, (as_utc(alerts[0].created_at) - as_utc(step.executed_at)).total_seconds())
            mttds.append(mttd)
        for alert in alerts:
            if alert.resolved_at is not None:
                mttrs[alert.id] = (as_utc(alert.resolved_at) - as_utc(alert.created_at)).total_seconds()
        shown = [(link, a) for link, a in links if departments is None or a.department_code in departments]
        steps.append({
            "seq": step.seq, "name": step.name, "technique": step.technique, "target": step.target,
            "expected_rule": step.expected_rule,
            "planned_at": as_utc(step.planned_at).isoformat(),
            "executed_at": _iso(step.executed_at),
            "detected": bool(alerts), "mttd_seconds": mttd,
            "alerts": [{"id": a.id, "title": a.rule_title, "severity": a.severity, "status": a.status,
                        "method": link.method} for link, a in shown],
            **({"alerts_hidden": len(links) - len(shown)} if departments is not None else {}),
        })
    executed = [s for s in steps if s["executed_at"]]
    detected = [s for s in executed if s["detected"]]
    return {
        "drill": {"id": drill.id, "title": drill.title, "type": drill.type, "status": drill.status,
                  "scenario": drill.scenario_code, "scope": drill.scope, "teams": drill.teams,
                  "planned_start": as_utc(drill.planned_start).isoformat(),
                  "actual_start": _iso(drill.actual_start), "actual_end": _iso(drill.actual_end)},
        "steps": steps,
        "coverage": round(len(detected) / len(executed), 4) if executed else None,
        "detected_steps": len(detected), "executed_steps": len(executed),
        "mttd_seconds": round(mean(mttds), 1) if mttds else None,
        "mttr_seconds": round(mean(mttrs.values()), 1) if mttrs else None,
        "findings": [finding_record(f) for f in drill.findings],
    }


def add_finding(session: Session, audit: AuditChain | None, actor: str, drill: Drill, title: str, remediation: str,
                severity: str = "medium", step: DrillStep | None = None, owner: str | None = None,
                due: datetime | None = None) -> DrillFinding:
    """A finding with its remediation task (status open), written to the audit chain."""
    _check_open(drill)
    if not title.strip() or not remediation.strip():
        raise DrillInputError("a finding needs a title and a remediation task")
    if severity not in FINDING_SEVERITIES:
        raise DrillInputError(f"severity {severity!r} must be one of {', '.join(FINDING_SEVERITIES)}")
    finding = DrillFinding(drill_id=drill.id, step_id=step.id if step else None, title=title.strip(),
                           severity=severity, remediation=remediation.strip(), owner=owner, due=due, status="open",
                           status_by=actor, status_at=datetime.now(UTC))
    drill.findings.append(finding)
    session.flush()
    if audit is not None:
        audit.append(session, actor=actor, action="drill.finding.add", object_type="drill", object_id=str(drill.id),
                     payload={"finding": finding.id, "title": finding.title, "severity": severity,
                              "step": step.seq if step else None, "owner": owner, "due": _iso(due)})
    return finding


def set_finding_status(session: Session, audit: AuditChain | None, actor: str, finding: DrillFinding, status: str,
                       reason: str | None = None, now: datetime | None = None) -> DrillFinding:
    """Move a finding along open → in_progress → closed (recording who and when); reopening needs a reason."""
    if status not in FINDING_STATUSES:
        raise DrillInputError(f"unknown finding status {status!r}; use one of {', '.join(FINDING_STATUSES)}"
                              " / 整改项状态无效")
    if status == finding.status:
        raise DrillError(f"finding {finding.id} is already {status}")
    reason = (reason or "").strip() or None
    reopening = finding.status == "closed"
    if reopening and reason is None:
        raise DrillInputError(f"reopening finding {finding.id} needs a reason / 重新打开整改项须说明原因")
    now = now or datetime.now(UTC)
    previous = finding.status
    finding.status, finding.status_by, finding.status_at, finding.status_note = status, actor, now, reason
    finding.closed_at = now if status == "closed" else None
    session.flush()
    if audit is not None:
        audit.append(session, actor=actor, action="drill.finding.status", object_type="drill",
                     object_id=str(finding.drill_id),
                     payload={"finding": finding.id, "from": previous, "to": status, "reason": reason,
                              "reopened": reopening, "at": now.isoformat()})
    return finding


def complete(session: Session, audit: AuditChain | None, actor: str, drill: Drill,
             now: datetime | None = None) -> dict[str, Any]:
    """Close the drill: every executed step nobody detected becomes a finding; the score goes to the audit chain."""
    if drill.status == "completed":
        raise DrillError(f"drill {drill.id} is already completed")
    now = now or datetime.now(UTC)
    result = score(session, drill)
    gaps = {f.step_id for f in drill.findings}
    for step, row in zip(drill.steps, result["steps"], strict=True):
        if row["executed_at"] and not row["detected"] and step.id not in gaps:
            add_finding(session, audit, actor, drill, f"检测缺口 / detection gap: {step.name} ({step.technique})",
                        f"为 {step.technique} 编写或启用检测规则并用本演练回放验证 / write or enable a rule for "
                        f"{step.technique} on {step.target} and verify it by replaying this drill",
                        severity="high", step=step, due=now + timedelta(days=30))
    drill.status = "completed"
    drill.actual_end = now
    session.flush()
    result = score(session, drill)
    if audit is not None:
        audit.append(session, actor=actor, action="drill.complete", object_type="drill", object_id=str(drill.id),
                     payload={"coverage": result["coverage"], "mttd_seconds": result["mttd_seconds"],
                              "mttr_seconds": result["mttr_seconds"], "findings": len(result["findings"]),
                              "executed_steps": result["executed_steps"], "report_sha256": report_digest(result)})
    return result
