"""SOC-health collector: which of the system's hosts sent events in the last 24 h, boundary (network) logs, the
retention setting for the system's data class, network detection rules and the alert SLA state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from policies.mlps.evidence import Provenance, SocHealth
from portal.compliance.digest import stamp
from portal.compliance.system_info import SystemInfo
from soc.alerts.models import Alert
from soc.alerts.stage import load_configured_rules
from soc.service import open_soc
from soc.store.base import SearchQuery

OPEN_STATES = ("new", "acknowledged", "investigating")
NETWORK_CATEGORIES = {"firewall", "network_connection", "proxy", "dns", "ids", "waf", "webserver"}
ALERT_WINDOW = timedelta(days=365)


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else (ts if ts.tzinfo else ts.replace(tzinfo=UTC))


def alert_sla_state(session: Session, system_id: str, now: datetime) -> dict[str, Any]:
    """Alerts of the system raised in the last year and those past their acknowledge / resolve deadline."""
    alerts = session.scalars(select(Alert).where(Alert.system_id == system_id,
                                                 Alert.created_at >= now - ALERT_WINDOW)).all()
    over = []
    for a in alerts:
        if a.status not in OPEN_STATES:
            continue
        ack_late = a.acknowledged_at is None and (_aware(a.acknowledge_due) or now) < now
        resolve_late = a.resolved_at is None and (_aware(a.resolve_due) or now) < now
        if ack_late or resolve_late:
            over.append(a.id)
    return {"total": len(alerts), "over_sla": sorted(over)}


def network_rules(rt: Runtime) -> list[str]:
    """Loaded Sigma rules that watch boundary / network logs."""
    ruleset = load_configured_rules(rt.settings.soc.rules_dirs)
    return sorted(r.id for r in ruleset.rules if (r.logsource[1] or "") in NETWORK_CATEGORIES)


def collect_soc(rt: Runtime, system: SystemInfo,
                now: datetime) -> tuple[SocHealth, dict[str, Provenance], dict[str, Any]]:
    """SOC health of one system as evidence, with provenance over the numbers read."""
    hosts = {h.name for h in system.hosts}
    since = now - timedelta(hours=24)
    soc = open_soc(rt)
    try:
        query = SearchQuery(start=since, end=now + timedelta(seconds=1), where={"gov.system.id": system.id})
        by_host = dict(soc.store.terms("host.name", query, size=max(100, 4 * len(hosts))))
        network_events = sum(soc.store.count(SearchQuery(start=since, end=now + timedelta(seconds=1),
                                                          where={"gov.system.id": system.id,
                                                                 "event.category": category}))
                             for category in ("network", "intrusion_detection"))
    finally:
        soc.close()
    retention = rt.settings.soc.retention_days
    retention_days = retention.get(system.data_class or "unclassified", retention.get("unclassified"))
    with rt.sessions() as session:
        sla = alert_sla_state(session, system.id, now)
    rules = network_rules(rt)
    health = SocHealth(as_of=now, hosts_reporting_24h=sorted(h for h in by_host if h in hosts),
                       retention_days=retention_days, network_sources_reporting=network_events > 0,
                       network_rules_enabled=len(rules), alerts_total=sla["total"],
                       alerts_over_sla=len(sla["over_sla"]))
    material = {"events_24h_by_host": by_host, "network_events_24h": network_events,
                "retention_days": retention, "alerts": sla, "network_rules": rules}
    return health, {"soc": stamp("soc event store, alert records, settings.soc", now, material)}, material
