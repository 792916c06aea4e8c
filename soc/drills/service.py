"""Drills: records built from scenarios, alerts linked to steps, scoring (coverage, MTTD, MTTR), findings, replay.

Auto-linking joins an alert to an executed step when the alert's first event falls in the step's window (one
minute before execution to ``window_minutes`` after), the alert concerns the step's target (host name, system id
or address) and it detects what the step did (the step's ATT&CK technique or a sub-technique of it is among the
alert's tags, or the alert's rule is the step's expected rule).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import AuditChain
from soc.alerts.models import Alert
from soc.alerts.service import as_utc
from soc.drills.models import Drill, DrillAlertLink, DrillFinding, DrillStep
from soc.drills.report import report_digest
from soc.drills.scenario import Scenario
from soc.pipeline import RawRecord

WINDOW_MINUTES = 30


class DrillError(ValueError):
    """A drill operation that is not possible in the drill's state (the message says why)."""


def create_drill(session: Session, audit: AuditChain | None, actor: str, scenario: Scenario,
                 planned_start: datetime, scope: list[str] | None = None, title: str | None = None) -> Drill:
    """A planned drill with the scenario's steps, written to the audit chain."""
    drill = Drill(title=title or scenario.title, type=scenario.type, scenario_code=scenario.code,
                  scenario=scenario.scenario, scope=list(scope or []), teams=dict(scenario.teams), status="planned",
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
              window_minutes: int = WINDOW_MINUTES) -> int:
    """Link alerts to the drill's executed steps (see the module docstring); returns how many links were added."""
    rule_ids = rule_ids or {}
    added = 0
    for step in drill.steps:
        if step.executed_at is None:
            continue
        at = as_utc(step.executed_at)
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


def link_by_hand(session: Session, audit: AuditChain | None, actor: str, step: DrillStep, alert: Alert) -> None:
    """An analyst's link between a step and an alert (also written to the audit chain)."""
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


def score(session: Session, drill: Drill) -> dict[str, Any]:
    """Coverage, time to detect per step, time to resolve the linked alerts, and the findings."""
    steps = []
    mttds: list[float] = []
    mttrs: list[float] = []
    for step in drill.steps:
        links = session.execute(select(DrillAlertLink, Alert).join(Alert, Alert.id == DrillAlertLink.alert_id)
                                .where(DrillAlertLink.step_id == step.id).order_by(Alert.first_seen)).all()
        alerts = [alert for _, alert in links]
        mttd = None
        if step.executed_at is not None and alerts:
            mttd = max(0.0, (as_utc(alerts[0].first_seen) - as_utc(step.executed_at)).total_seconds())
            mttds.append(mttd)
        for alert in alerts:
            if alert.resolved_at is not None:
                mttrs.append((as_utc(alert.resolved_at) - as_utc(alert.created_at)).total_seconds())
        steps.append({
            "seq": step.seq, "name": step.name, "technique": step.technique, "target": step.target,
            "expected_rule": step.expected_rule,
            "planned_at": as_utc(step.planned_at).isoformat(),
            "executed_at": as_utc(step.executed_at).isoformat() if step.executed_at else None,
            "detected": bool(alerts), "mttd_seconds": mttd,
            "alerts": [{"id": a.id, "title": a.rule_title, "severity": a.severity, "status": a.status,
                        "method": link.method} for link, a in links],
        })
    executed = [s for s in steps if s["executed_at"]]
    detected = [s for s in executed if s["detected"]]
    return {
        "drill": {"id": drill.id, "title": drill.title, "type": drill.type, "status": drill.status,
                  "scenario": drill.scenario_code, "scope": drill.scope, "teams": drill.teams,
                  "planned_start": as_utc(drill.planned_start).isoformat(),
                  "actual_start": as_utc(drill.actual_start).isoformat() if drill.actual_start else None,
                  "actual_end": as_utc(drill.actual_end).isoformat() if drill.actual_end else None},
        "steps": steps,
        "coverage": round(len(detected) / len(executed), 4) if executed else None,
        "detected_steps": len(detected), "executed_steps": len(executed),
        "mttd_seconds": round(mean(mttds), 1) if mttds else None,
        "mttr_seconds": round(mean(mttrs), 1) if mttrs else None,
        "findings": [{"id": f.id, "step": f.step_id, "title": f.title, "severity": f.severity,
                      "remediation": f.remediation, "owner": f.owner, "status": f.status,
                      "due": as_utc(f.due).isoformat() if f.due else None} for f in drill.findings],
    }


def add_finding(session: Session, drill: Drill, title: str, remediation: str, severity: str = "medium",
                step: DrillStep | None = None, owner: str | None = None, due: datetime | None = None) -> DrillFinding:
    if not title.strip() or not remediation.strip():
        raise DrillError("a finding needs a title and a remediation task")
    if severity not in ("low", "medium", "high", "critical"):
        raise DrillError("severity must be low, medium, high or critical")
    finding = DrillFinding(drill_id=drill.id, step_id=step.id if step else None, title=title.strip(),
                           severity=severity, remediation=remediation.strip(), owner=owner, due=due, status="open")
    drill.findings.append(finding)
    session.flush()
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
            add_finding(session, drill, f"检测缺口 / detection gap: {step.name} ({step.technique})",
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
