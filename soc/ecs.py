"""ECS events as plain nested dicts, and the small helpers every stage shares.

An event is a ``dict`` shaped like an ECS document: ``{"@timestamp": "...Z", "event": {...},
"source": {"ip": ...}, ...}``. Our own fields live under ``gov``. Timestamps are UTC ISO-8601 strings
with millisecond precision and a ``Z`` suffix. ``event.original`` keeps the raw line until the store
decides whether to keep it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

Event = dict[str, Any]

ECS_VERSION = "8.17.0"


def iso_utc(ts: datetime) -> str:
    """``2026-11-22T04:15:51.123Z`` (naive datetimes are taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


UI_ZONE = ZoneInfo("Asia/Shanghai")


def parse_query_time(text: str | None) -> datetime | None:
    """A search bound typed by a person: ISO-8601, taken as Asia/Shanghai when it names no zone."""
    if not text:
        return None
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO-8601 time") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UI_ZONE)


def put(event: Event, dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested event, creating the intermediate objects."""
    *parents, leaf = dotted.split(".")
    node = event
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def get(event: Event, dotted: str, default: Any = None) -> Any:
    """Read ``a.b.c`` from a nested event (``@timestamp`` and other top-level keys work too)."""
    node: Any = event
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def flatten(event: Event, prefix: str = "") -> dict[str, Any]:
    """``{"source": {"ip": x}}`` → ``{"source.ip": x}`` (lists are kept as values)."""
    flat: dict[str, Any] = {}
    for key, value in event.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def event_id(source_key: str, raw: bytes | str) -> str:
    """Deterministic document id: the same raw record from the same place always gets the same id.

    ``source_key`` names where the record sits durably (``file:/path:offset``, ``spool:segment:offset``),
    so replays after a crash or an outage are idempotent while two identical lines at different
    places stay two events.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    h = hashlib.blake2b(digest_size=16)
    h.update(source_key.encode())
    h.update(b"\0")
    h.update(data)
    return h.hexdigest()
