"""态势感知 (situational awareness): one summary of events and alerts for the console's overview page.

Everything is computed for a time window and limited to the departments the viewer may see. The department risk
score sums the weights of the department's open alerts (``risk_weights`` in policy.yaml, doubled when past their
SLA) and caps it at 100.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.models import Department, System
from soc.alerts.models import Alert
from soc.alerts.policy import OPEN_STATUSES, SEVERITY_ORDER, alert_policy
from soc.alerts.service import as_utc, sla_state
from soc.ecs import UI_ZONE
from soc.store.aggregate import zone_offset_minutes
from soc.store.base import EventStore, SearchQuery

# MITRE ATT&CK Enterprise tactics in kill-chain order (ids TA0043 … TA0040), as Sigma tags spell them.
TACTICS = (
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "credential-access", "discovery", "lateral-movement", "collection",
    "command-and-control", "exfiltration", "impact",
)


def tactics_of(tags: list[str]) -> list[str]:
    """The ATT&CK tactics among Sigma tags (``attack.credential-access`` or ``attack.credential_access``)."""
    found = []
    for tag in tags:
        name = tag.removeprefix("attack.").replace("_", "-")
        if name in TACTICS and name not in found:
            found.append(name)
    return found


def _bucket(ts: datetime, interval: str) -> str:
    """The start of the hour or day (console clock) holding ``ts``, as the event histogram keys it."""
    local = ts.astimezone(UI_ZONE).replace(minute=0, second=0, microsecond=0)
    return (local.replace(hour=0) if interval == "1d" else local).isoformat()


def situation(session: Session, store: EventStore, departments: set[str] | None, hours: int = 24,
              now: datetime | None = None) -> dict[str, Any]:
    """The overview for the last ``hours`` (see the module docstring)."""
    now = now or datetime.now(UTC)
    start = now - timedelta(hours=hours)
    scope = SearchQuery(start=start, end=now, departments=departments)
    interval = "1h" if hours <= 72 else "1d"
    events_over_time = [{"key": b.astimezone(UI_ZONE).isoformat(), "count": n}
                        for b, n in store.date_histogram(scope, interval, zone_offset_minutes())]
    ip_versions = dict(store.terms("network.type", scope, 5))

    query = select(Alert).where(Alert.last_seen >= start)
    if departments is not None:
        query = query.where(Alert.department_code.in_(departments))
    recent = list(session.scalars(query))
    open_query = select(Alert).where(Alert.status.in_(OPEN_STATUSES))
    if departments is not None:
        open_query = open_query.where(Alert.department_code.in_(departments))
    open_alerts = list(session.scalars(open_query))

    # alerts by when their first event happened, on the same buckets as the events
    alerts_over_time = Counter(_bucket(as_utc(a.first_seen), interval) for a in recent if as_utc(a.first_seen) >= start)
    severity = Counter(a.severity for a in recent)
    sources = Counter()  # type: Counter[str]
    systems = Counter()  # type: Counter[str]
    depts = Counter()  # type: Counter[str]
    heat: dict[str, Counter[str]] = {}
    for alert in recent:
        if alert.source_ip:
            sources[alert.source_ip] += alert.count
        if alert.system_id:
            systems[alert.system_id] += 1
        if alert.department_code:
            depts[alert.department_code] += 1
        day = as_utc(alert.last_seen).astimezone(UI_ZONE).date().isoformat()
        for tactic in tactics_of(list(alert.attack or [])):
            heat.setdefault(tactic, Counter())[day] += 1

    weights = alert_policy().risk_weights
    risk = Counter()  # type: Counter[str]
    overdue = []
    for alert in open_alerts:
        late = sla_state(alert, now)["overdue"]
        if late:
            overdue.append(alert)
        if alert.department_code:
            risk[alert.department_code] += weights.get(alert.severity, 0) * (2 if late else 1)

    names = _names(session, set(depts) | set(risk), set(systems))
    days = sorted({d for counter in heat.values() for d in counter})
    return {
        "window": {"from": start.isoformat(), "to": now.isoformat(), "hours": hours, "interval": interval},
        "events_total": store.count(scope),
        "events_over_time": events_over_time,
        "alerts_over_time": [{"key": k, "count": n} for k, n in sorted(alerts_over_time.items())],
        "severity": {s: severity.get(s, 0) for s in reversed(SEVERITY_ORDER)},
        "open_alerts": len(open_alerts),
        "top_sources": [{"ip": ip, "count": n} for ip, n in sources.most_common(10)],
        "top_systems": [{"id": s, "name": names.get(s, s), "alerts": n} for s, n in systems.most_common(10)],
        "top_departments": [{"code": d, "name": names.get(d, d), "alerts": n} for d, n in depts.most_common(10)],
        "attack_heatmap": {"tactics": list(TACTICS), "days": days,
                           "cells": [[t, d, heat[t][d]] for t in TACTICS if t in heat for d in days if heat[t][d]]},
        "ip_versions": {"ipv4": ip_versions.get("ipv4", 0), "ipv6": ip_versions.get("ipv6", 0)},
        "department_risk": [{"code": d, "name": names.get(d, d), "score": min(100, n)}
                            for d, n in risk.most_common(15)],
        "overdue": [{"id": a.id, "title": a.rule_title, "severity": a.severity, "department": a.department_code,
                     "department_name": names.get(a.department_code) if a.department_code else None,
                     "resolve_due": as_utc(a.resolve_due).isoformat()}
                    for a in sorted(overdue, key=lambda a: as_utc(a.resolve_due))[:20]],
        "overdue_total": len(overdue),
    }


def _names(session: Session, departments: set[str], systems: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    if departments:
        rows = session.execute(select(Department.code, Department.name).where(Department.code.in_(departments)))
        out.update({code: name for code, name in rows})
    if systems:
        rows = session.execute(select(System.id, System.name).where(System.id.in_(systems)))
        out.update({system_id: name for system_id, name in rows})
    return out
