"""The SOC wired to a running control plane: store, dead letters and register enrichment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core.runtime import Runtime
from soc.deadletter import DeadLetterStore
from soc.enrich import Enricher, RegisterIndex
from soc.parsers import ParseContext
from soc.pipeline import IngestStats, Pipeline, file_records
from soc.store.base import EventStore
from soc.store.factory import open_store


@dataclass
class Soc:
    store: EventStore
    deadletters: DeadLetterStore
    enricher: Enricher
    ctx: ParseContext

    def pipeline(self, max_line_bytes: int = 65536) -> Pipeline:
        return Pipeline(self.store, self.deadletters, self.enricher, self.ctx, max_line_bytes=max_line_bytes)

    def close(self) -> None:
        self.store.close()
        self.deadletters.close()


def open_soc(rt: Runtime, store_url: str | None = None) -> Soc:
    """The configured store (or ``store_url``), the dead-letter file and a register index loaded now."""
    settings = rt.settings.soc
    with rt.sessions() as session:
        index = RegisterIndex.load(session)
    return Soc(
        store=open_store(store_url or settings.store_url, rt.settings.home),
        deadletters=DeadLetterStore(rt.settings.home / "soc" / "deadletter.db"),
        enricher=Enricher(index, mask_pii=settings.mask_pii),
        ctx=ParseContext(tz=ZoneInfo(settings.timezone)),
    )


def ingest_files(soc: Soc, paths: list[str], fmt: str, max_line_bytes: int = 65536) -> IngestStats:
    """Ingest files line by line; ids come from (file, offset), so running it again adds nothing."""
    pipeline = soc.pipeline(max_line_bytes)
    total = IngestStats()
    for path in paths:
        stats = pipeline.run(file_records(path), fmt)
        for name in ("read", "stored", "duplicates", "dead_lettered", "duration_s"):
            setattr(total, name, getattr(total, name) + getattr(stats, name))
    return total


def apply_retention(soc: Soc, retention_days: dict[str, int], now: datetime | None = None) -> dict[str, int]:
    """Delete events past their retention (per data class; ``unclassified`` for events without one)."""
    now = now or datetime.now(UTC)
    deleted = {}
    for data_class, days in retention_days.items():
        key = None if data_class == "unclassified" else data_class
        deleted[data_class] = soc.store.delete_before(now - timedelta(days=days), key)
    return deleted
