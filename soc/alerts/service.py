"""Turning detections into alerts (dedup, severity, SLA), the analyst workflow, and webhook notifications."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.audit import AuditChain
from soc.alerts.models import Alert, AlertEvent, AlertHistory, AlertNote, WebhookDelivery
from soc.alerts.policy import OPEN_STATUSES, SEVERITY_ORDER, STATUSES, AlertPolicy, alert_policy
from soc.detect.compiler import MISSING, field_getter, scalar_text
from soc.detect.correlation import CorrelationMatch, event_time
from soc.detect.loader import CompiledRule

Event = dict[str, Any]


class WorkflowError(ValueError):
    """A transition the workflow does not allow, or bad input to it (the message says which)."""


@dataclass
class Detection:
    """A rule or correlation that fired on an event, as plain data."""

    rule_id: str
    title: str
    level: str
    tags: tuple[str, ...]
    event_id: str
    event: Event
    correlation: bool = False
    group: dict[str, str | None] = field(default_factory=dict)
    count: int = 1
    departments: tuple[str, ...] = ()  # a correlation's: of the events it counted

    @property
    def department(self) -> str | None:
        """The department the alert belongs to: the event's; for a correlation over several departments' events
        none (a city-level alert, seen by the roles that see every department)."""
        if len(self.departments) > 1:
            return None
        gov = self.event.get("gov")
        name = gov.get("department") if isinstance(gov, dict) else None
        return name if isinstance(name, str) else None


def detections(event_id: str, event: Event, matched: Iterable[CompiledRule],
               correlated: Iterable[CorrelationMatch] = ()) -> list[Detection]:
    """The alert-worthy results for one event: generating rules and generating correlations."""
    out = [Detection(r.id, r.title, r.level, r.tags, event_id, event) for r in matched if r.generate]
    out += [Detection(m.correlation.id, m.correlation.title, m.correlation.level, m.correlation.tags, event_id,
                      event, correlation=True, group=m.group, count=m.count, departments=m.departments)
            for m in correlated if m.correlation.generate]
    return out


def _value(event: Event, name: str) -> Any:
    value = field_getter(name)(event)
    if value is MISSING:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    return value


def _at(event: Event) -> datetime:
    seconds = event_time(event)
    return datetime.fromtimestamp(seconds, UTC) if seconds else datetime.now(UTC)


_IN_CHUNK = 500  # values in one SQL IN list (well within SQLite's and PostgreSQL's parameter limits)


def group_key(rule_id: str, group: dict[str, str | None]) -> str:
    """The dedup key of an alert: a hash of its rule and the values of its group fields."""
    return hashlib.sha256(json.dumps([rule_id, sorted(group.items())], default=str).encode()).hexdigest()


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone columns; they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _within(alert: Alert, at: datetime, window: timedelta) -> bool:
    """Whether a detection at ``at`` joins the alert: within the dedup window of the time the alert spans."""
    return as_utc(alert.first_seen) - window <= at <= as_utc(alert.last_seen) + window


def _add_to(alert: Alert, d: Detection, at: datetime) -> None:
    """Count a detection at time ``at`` into an open alert of its group."""
    alert.count += d.count
    alert.first_seen = min(as_utc(alert.first_seen), at)
    alert.last_seen = max(as_utc(alert.last_seen), at)


@dataclass
class Recorded:
    """The alerts a batch of detections created and the ones it added to."""

    created: dict[int, Alert] = field(default_factory=dict)
    updated: dict[int, Alert] = field(default_factory=dict)


@dataclass
class WebhookTarget:
    url: str
    secret: str
    min_severity: str = "high"


class AlertService:
    """Records detections as alerts and moves alerts through the workflow (in the caller's transaction)."""

    def __init__(self, policy: AlertPolicy | None = None, webhooks: Sequence[WebhookTarget] = (),
                 audit: AuditChain | None = None):
        self.policy = policy or alert_policy()
        self.webhooks = list(webhooks)
        self.audit = audit

    # -- recording -------------------------------------------------------------------------------------------

    def group_of(self, detection: Detection) -> dict[str, str | None]:
        """The values an alert is deduplicated on: the policy's group fields (the system among them), or a
        correlation's group-by values and the departments of the events it counted (a correlation grouped by
        source address alone would otherwise fold one department's detections into another's alert)."""
        if detection.correlation:
            group = dict(detection.group)
            departments = detection.departments or tuple(filter(None, [detection.department]))
            if departments:
                group["gov.department"] = ",".join(departments)
            return group
        return {name: scalar_text(v) for name in self.policy.group_fields
                if (v := _value(detection.event, name)) is not None}

    def record(self, session: Session, found: Iterable[Detection], now: datetime | None = None) -> Recorded:
        """Create or update alerts for the detections; an event already behind the rule's alert adds nothing.

        A batch is recorded with a few set-wise queries (which events are already behind their rule's alert, which
        alerts are open for the batch's groups) and one insert of its events, inside a savepoint; should another
        writer record some of the same events meanwhile (the unique (rule, event) constraint refuses the insert),
        the batch is recorded again one detection at a time, as before.
        """
        now = now or datetime.now(UTC)
        pending = self._unseen(session, list(found))
        if not pending:
            return Recorded()
        try:
            with session.begin_nested():
                return self._record_batch(session, pending, now)
        except IntegrityError:
            result = Recorded()
            for detection in pending:
                outcome = self._record_one(session, detection, now)
                if outcome is not None:
                    alert, created = outcome
                    if created:
                        result.created[alert.id] = alert
                    elif alert.id not in result.created:
                        result.updated[alert.id] = alert
            return result

    @staticmethod
    def _unseen(session: Session, found: list[Detection]) -> list[Detection]:
        """The detections whose event is not yet behind their rule's alert (each (rule, event) once, in order)."""
        seen: set[tuple[str, str]] = set()
        rules = sorted({d.rule_id for d in found})
        events = sorted({d.event_id for d in found})
        for at in range(0, len(events), _IN_CHUNK):
            seen.update((rule_id, event_id) for rule_id, event_id in session.execute(
                select(AlertEvent.rule_id, AlertEvent.event_id).where(
                    AlertEvent.rule_id.in_(rules), AlertEvent.event_id.in_(events[at:at + _IN_CHUNK]))))
        out = []
        for d in found:
            pair = (d.rule_id, d.event_id)
            if pair not in seen:
                seen.add(pair)
                out.append(d)
        return out

    def _record_batch(self, session: Session, pending: list[Detection], now: datetime) -> Recorded:
        """:meth:`record` of detections not yet recorded: the same alerts as recording them one by one."""
        window = timedelta(minutes=self.policy.dedup_window_minutes)
        items = [(d, self.group_of(d), _at(d.event)) for d in pending]
        keyed = [(d, group, at, group_key(d.rule_id, group)) for d, group, at in items]
        pairs = {(d.rule_id, key) for d, _, _, key in keyed}
        earliest = min(at for _, _, at, _ in keyed) - window
        open_alerts: dict[tuple[str, str], list[Alert]] = {}  # per group, oldest first (the newest is preferred)
        with session.no_autoflush:
            keys = sorted({key for _, key in pairs})
            for at in range(0, len(keys), _IN_CHUNK):
                for alert in session.scalars(
                        select(Alert).where(Alert.rule_id.in_({r for r, _ in pairs}),
                                            Alert.group_key.in_(keys[at:at + _IN_CHUNK]),
                                            Alert.status.in_(OPEN_STATUSES), Alert.last_seen >= earliest)
                        .order_by(Alert.id)):
                    if (alert.rule_id, alert.group_key) in pairs:
                        open_alerts.setdefault((alert.rule_id, alert.group_key), []).append(alert)
        created: list[Alert] = []
        notes: list[tuple[Alert, dict[str, Any]]] = []  # new alerts and their payloads as created (ids to come)
        links: list[tuple[Alert, Detection, datetime]] = []
        for d, group, at, key in keyed:
            alerts = open_alerts.setdefault((d.rule_id, key), [])
            alert = next((a for a in reversed(alerts) if _within(a, at, window)), None)
            if alert is None:
                alert = self._new_alert(d, key, group, at, now)
                session.add(alert)
                alerts.append(alert)
                created.append(alert)
                if self.webhooks:  # notified as created (as one by one), not as the rest of the batch leaves it
                    notes.append((alert, alert_payload(alert, alert.created_at)))
            else:
                _add_to(alert, d, at)
            links.append((alert, d, at))
        session.flush()  # ids for the new alerts
        for alert, payload in notes:
            self._notify(session, alert, payload)
        session.add_all([AlertEvent(alert_id=alert.id, rule_id=d.rule_id, event_id=d.event_id, event_time=at)
                         for alert, d, at in links])
        session.flush()
        result = Recorded()
        new = {id(alert) for alert in created}
        for alert, _, _ in links:
            if id(alert) in new:
                result.created.setdefault(alert.id, alert)
            elif alert.id not in result.created:
                result.updated[alert.id] = alert
        return result

    def _record_one(self, session: Session, d: Detection, now: datetime) -> tuple[Alert, bool] | None:
        seen = session.scalar(select(AlertEvent.id).where(AlertEvent.rule_id == d.rule_id,
                                                          AlertEvent.event_id == d.event_id))
        if seen is not None:
            return None
        group = self.group_of(d)
        key = group_key(d.rule_id, group)
        at = _at(d.event)
        window = timedelta(minutes=self.policy.dedup_window_minutes)
        try:
            # the alert's creation or update and the link stand or fall together: when another writer recorded
            # this event for the rule meanwhile, neither an empty new alert nor a count too many is left behind
            with session.begin_nested():
                alert = session.scalars(
                    select(Alert).where(Alert.rule_id == d.rule_id, Alert.group_key == key,
                                        Alert.status.in_(OPEN_STATUSES), Alert.last_seen >= at - window,
                                        Alert.first_seen <= at + window)
                    .order_by(Alert.id.desc()).limit(1)).first()
                created = alert is None
                if alert is None:
                    alert = self._new_alert(d, key, group, at, now)
                    session.add(alert)
                    session.flush()
                else:
                    _add_to(alert, d, at)
                session.add(AlertEvent(alert_id=alert.id, rule_id=d.rule_id, event_id=d.event_id, event_time=at))
        except IntegrityError:  # another writer recorded this event for the rule meanwhile
            return None
        if created:
            self._notify(session, alert)
        return alert, created

    def _new_alert(self, d: Detection, key: str, group: dict[str, str | None], at: datetime,
                   now: datetime) -> Alert:
        gov = d.event.get("gov") if isinstance(d.event.get("gov"), dict) else {}
        mlps = gov.get("mlps_level")
        mlps_level = int(mlps) if isinstance(mlps, (int, str)) and str(mlps).isdigit() else None
        data_class = gov.get("data_class") if isinstance(gov.get("data_class"), str) else None
        severity = self.policy.severity(d.level, mlps_level, data_class)
        sla = self.policy.sla_minutes[severity]
        system = gov.get("system") if isinstance(gov.get("system"), dict) else {}
        return Alert(
            rule_id=d.rule_id, rule_title=d.title, rule_level=d.level, correlation=d.correlation, group_key=key,
            group_fields=group, severity=severity, score=self.policy.score(d.level, mlps_level, data_class),
            status="new", department_code=d.department, system_id=system.get("id"),
            mlps_level=mlps_level, data_class=data_class, attack=[t for t in d.tags if t.startswith("attack.")],
            source_ip=scalar_text(_value(d.event, "source.ip")), host_name=scalar_text(_value(d.event, "host.name")),
            count=d.count, first_seen=at, last_seen=at, summary=str(d.event.get("message", ""))[:1000],
            created_at=now, acknowledge_due=now + timedelta(minutes=sla.acknowledge),
            resolve_due=now + timedelta(minutes=sla.resolve))

    def _notify(self, session: Session, alert: Alert, payload: dict[str, Any] | None = None) -> None:
        """Queue the alert's notifications; ``payload``: the alert as it was created (else as it is now), its id
        filled in here (the alert must have been flushed)."""
        payload = alert_payload(alert, alert.created_at) if payload is None else {**payload, "id": alert.id}
        text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        rank = SEVERITY_ORDER.index
        for hook in self.webhooks:
            if rank(alert.severity) >= rank(hook.min_severity):  # type: ignore[arg-type]
                session.add(WebhookDelivery(alert_id=alert.id, url=hook.url, next_attempt_at=alert.created_at,
                                            payload=text))

    # -- workflow --------------------------------------------------------------------------------------------

    def transition(self, session: Session, alert: Alert, target: str, actor: str, *,
                   assignee: str | None = None, note: str | None = None, now: datetime | None = None) -> Alert:
        """Move an alert (acknowledge, investigate, resolve, mark false positive, reopen) and record who did."""
        now = now or datetime.now(UTC)
        if target not in STATUSES:
            raise WorkflowError(f"unknown status {target!r}; one of {', '.join(STATUSES)}")
        if not self.policy.can_move(alert.status, target):
            allowed = ", ".join(self.policy.transitions[alert.status]) or "none"  # type: ignore[index]
            raise WorkflowError(f"an alert that is {alert.status} cannot become {target} (allowed: {allowed})")
        if target in ("resolved", "false_positive") and not (note and note.strip()):
            raise WorkflowError("closing an alert needs a note saying why")
        previous = alert.status
        alert.status = target
        if assignee is not None:
            alert.assignee = assignee or None
        elif alert.assignee is None and target in ("acknowledged", "investigating"):
            alert.assignee = actor
        if target != "new" and alert.acknowledged_at is None:
            alert.acknowledged_at = now
        alert.resolved_at = now if target in ("resolved", "false_positive") else None
        session.add(AlertHistory(alert_id=alert.id, actor=actor, from_status=previous, to_status=target,
                                 assignee=alert.assignee, at=now))
        if note and note.strip():
            session.add(AlertNote(alert_id=alert.id, author=actor, body=note.strip(), created_at=now))
        if self.audit is not None:
            self.audit.append(session, actor=actor, action=f"alert.{target}", object_type="alert",
                              object_id=str(alert.id), payload={"from": previous, "assignee": alert.assignee})
        return alert

    def assign(self, session: Session, alert: Alert, assignee: str | None, actor: str, *,
               note: str | None = None, now: datetime | None = None) -> Alert:
        """Hand an open alert over to ``assignee`` (None: unassign) without changing its status; recorded in the
        history and the audit chain. Whether the assignee may work alerts is the caller's check."""
        now = now or datetime.now(UTC)
        assignee = assignee.strip() if assignee is not None else None
        if assignee == "":
            raise WorkflowError("the assignee cannot be empty (give a user name, or unassign)")
        if alert.status not in OPEN_STATUSES:
            raise WorkflowError(f"alert {alert.id} is {alert.status}; only an open alert can be handed over "
                                "(reopen it first)")
        if assignee == alert.assignee:
            state = f"assigned to {assignee}" if assignee else "unassigned"
            raise WorkflowError(f"alert {alert.id} is already {state}")
        previous = alert.assignee
        alert.assignee = assignee
        session.add(AlertHistory(alert_id=alert.id, actor=actor, from_status=alert.status, to_status=alert.status,
                                 assignee=assignee, at=now))
        if note and note.strip():
            session.add(AlertNote(alert_id=alert.id, author=actor, body=note.strip()[:10_000], created_at=now))
        if self.audit is not None:
            self.audit.append(session, actor=actor, action="alert.assign", object_type="alert",
                              object_id=str(alert.id),
                              payload={"from": previous, "to": assignee, "status": alert.status})
        return alert

    def comment(self, session: Session, alert: Alert, actor: str, body: str) -> AlertNote:
        if not body.strip():
            raise WorkflowError("a comment cannot be empty")
        note = AlertNote(alert_id=alert.id, author=actor, body=body.strip()[:10_000], created_at=datetime.now(UTC))
        session.add(note)
        return note


def sla_state(alert: Alert, now: datetime | None = None) -> dict[str, Any]:
    """Whether acknowledgement and resolution are within their SLA (``overdue`` true once a deadline passed)."""
    now = now or datetime.now(UTC)
    ack_due, resolve_due = as_utc(alert.acknowledge_due), as_utc(alert.resolve_due)
    acknowledged = as_utc(alert.acknowledged_at) if alert.acknowledged_at else None
    resolved = as_utc(alert.resolved_at) if alert.resolved_at else None
    ack_late = (acknowledged or now) > ack_due
    resolve_late = (resolved or now) > resolve_due
    open_ = alert.status in OPEN_STATUSES
    return {
        "acknowledge_due": ack_due.isoformat(), "resolve_due": resolve_due.isoformat(),
        "acknowledge_breached": ack_late, "resolve_breached": resolve_late,
        "overdue": open_ and ((acknowledged is None and ack_late) or resolve_late),
        "seconds_to_resolve_due": int((resolve_due - now).total_seconds()) if open_ else None,
    }


def alert_payload(alert: Alert, now: datetime | None = None) -> dict[str, Any]:
    """The JSON form of an alert (API, CLI, webhooks)."""
    return {
        "id": alert.id, "rule_id": alert.rule_id, "title": alert.rule_title, "level": alert.rule_level,
        "severity": alert.severity, "score": alert.score, "status": alert.status, "assignee": alert.assignee,
        "correlation": alert.correlation, "group": alert.group_fields, "count": alert.count,
        "department": alert.department_code, "system_id": alert.system_id, "mlps_level": alert.mlps_level,
        "data_class": alert.data_class, "attack": list(alert.attack or []), "source_ip": alert.source_ip,
        "host_name": alert.host_name, "first_seen": as_utc(alert.first_seen).isoformat(),
        "last_seen": as_utc(alert.last_seen).isoformat(), "created_at": as_utc(alert.created_at).isoformat(),
        "summary": alert.summary, "sla": sla_state(alert, now),
    }


def count_open(session: Session, departments: set[str] | None = None) -> int:
    query = select(func.count(Alert.id)).where(Alert.status.in_(OPEN_STATUSES))
    if departments is not None:
        query = query.where(Alert.department_code.in_(departments))
    return int(session.scalar(query) or 0)
