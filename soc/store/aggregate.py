"""Aggregations as the console, the API and the CLI present them: one JSON-ready answer for any store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from soc.ecs import UI_ZONE
from soc.store.base import EventStore, SearchQuery


def zone_offset_minutes() -> int:
    """Minutes east of UTC of the console's time zone now (480 for Asia/Shanghai)."""
    offset = datetime.now(UTC).astimezone(UI_ZONE).utcoffset()
    return int(offset.total_seconds() // 60) if offset else 0


def aggregate(store: EventStore, query: SearchQuery, terms: list[str], interval: str | None,
              size: int = 10) -> dict[str, Any]:
    """``{"total", "terms": {field: [{"key", "count"}]}, "histogram": {"interval", "buckets": [...]}}``.

    Histogram buckets start on the console's clock (Asia/Shanghai unless configured) and carry ISO-8601 keys
    with that offset. Raises ValueError for a field or interval the store cannot aggregate.
    """
    answer: dict[str, Any] = {"total": store.count(query), "terms": {}}
    for field_name in dict.fromkeys(terms):
        answer["terms"][field_name] = [{"key": key, "count": n} for key, n in store.terms(field_name, query, size)]
    if interval:
        buckets = store.date_histogram(query, interval, zone_offset_minutes())
        answer["histogram"] = {
            "interval": interval,
            "buckets": [{"key": start.astimezone(UI_ZONE).isoformat(), "count": n} for start, n in buckets],
        }
    return answer
