"""Drill collector: the drills (应急演练 / 攻防演练) held that covered the system and their findings' state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.mlps.evidence import Drill as DrillFact
from policies.mlps.evidence import DrillRecords, Provenance
from portal.compliance.digest import stamp
from portal.compliance.system_info import SystemInfo
from soc.drills.models import Drill


def collect_drills(session: Session, system: SystemInfo,
                   now: datetime) -> tuple[DrillRecords, dict[str, Provenance], dict[str, Any]]:
    """Drills with the system in scope that actually started (planned ones do not count)."""
    facts: list[DrillFact] = []
    rows: list[dict[str, Any]] = []
    for drill in session.scalars(select(Drill).where(Drill.actual_start.is_not(None)).order_by(Drill.id)):
        if system.id not in (drill.scope or []) or drill.type not in ("emergency", "attack_defense"):
            continue
        start = drill.actual_start if drill.actual_start.tzinfo else drill.actual_start.replace(tzinfo=UTC)
        open_ = sum(1 for f in drill.findings if f.status != "closed")
        facts.append(DrillFact(kind=drill.type, held_on=start.date(), findings_total=len(drill.findings),  # type: ignore[arg-type]
                               findings_open=open_))
        rows.append({"id": drill.id, "title": drill.title, "type": drill.type, "status": drill.status,
                     "held_on": start.date().isoformat(), "findings": [
                         {"id": f.id, "title": f.title, "status": f.status} for f in drill.findings]})
    return DrillRecords(drills=facts), {"drills": stamp("soc drill records", now, rows)}, {"drills": rows}
