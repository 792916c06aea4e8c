"""System activity seen by the SOC: a system whose hosts sent events recently is in use, so its register
``last_activity`` moves forward (the idle-systems report — the plans' 僵尸系统 — reads it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.models import System, aware
from soc.store.base import EventStore, SearchQuery

MAX_SYSTEMS = 100_000


def mark_active_systems(session: Session, store: EventStore, since: datetime, now: datetime) -> list[str]:
    """Systems with events timed in [``since``, ``now``): their ``last_activity`` becomes ``now`` (never moved
    back). Returns the ids updated."""
    seen = [sid for sid, _ in store.terms("gov.system.id", SearchQuery(start=since, end=now), size=MAX_SYSTEMS)]
    if not seen:
        return []
    updated = []
    for system in session.scalars(select(System).where(System.id.in_(seen))):
        last = aware(system.last_activity)
        if last is None or last < now:
            system.last_activity = now
            updated.append(system.id)
    return sorted(updated)
