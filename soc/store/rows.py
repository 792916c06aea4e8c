"""The embedded store's row of an event: hot columns, 16-byte address keys, epoch milliseconds and the JSON document.

This is the per-event half of a write (the pipeline runs it in its parsing thread), so it is compiled with the rest
of the hot path (:mod:`soc.native`): ``event_row`` reads the hot fields with plain dictionary lookups written out
one by one rather than through a table of path getters (measured about 19 → 10-12 µs an event with the JSON).
``COLUMNS`` and ``IP_KEYS`` remain the one description of the row; a test checks ``event_row`` against them field by
field.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime
from typing import Any, Final

import cython
import orjson

from soc.ecs import Event, utc_seconds

# ECS field → column, in row order; the store indexes some and filters on all of them without touching the JSON.
COLUMNS: Final[dict[str, str]] = {
    "event.dataset": "dataset",
    "event.action": "action",
    "event.outcome": "outcome",
    "host.name": "host_name",
    "source.ip": "source_ip",
    "destination.ip": "destination_ip",
    "user.name": "user_name",
    "gov.system.id": "system_id",
    "gov.department": "department",
    "gov.mlps_level": "mlps_level",
    "gov.data_class": "data_class",
}
# IP field → column of its 16-byte key, in row order after the hot columns
IP_KEYS: Final[dict[str, str]] = {
    "source.ip": "source_ip_key", "destination.ip": "destination_ip_key", "host.ip": "host_ip_key",
}
ROW_COLUMNS: Final = ("id", "ts", *COLUMNS.values(), *IP_KEYS.values(), "message", "doc")

# A hot column holding a list value (a JSON log with ["alice", "bob"] for user.name) holds this mark and the JSON
# array of the list's texts; the store matches and counts each element (as Elasticsearch does a multi-valued
# keyword). LIST_END bounds the marked range of a column for a range test.
LIST_MARK: Final = "\x1e"
LIST_END: Final = "\x1f"
_lists_made: list[int] = [0]  # list values marked so far (one slot: a compiled module's globals are not rebound)
_CACHE_MAX: Final = 8192
_MISSING: Final[Any] = object()
_V4_MAPPED: Final = bytes(10) + b"\xff\xff"
_ip_keys: dict[str, bytes | None] = {}  # address text → key (log lines repeat their addresses)
_ts_millis: dict[str, int] = {}  # "@timestamp" text → epoch ms (many events share a second)


def _remember(cache: dict, key: str, value: Any) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


def ip_key(value: Any) -> bytes | None:
    """16-byte sort key of an address (IPv4 mapped into ::ffff:0:0/96; a list: its first address); None when not
    an address."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not value:
        return None
    text = str(value)
    key = _ip_keys.get(text, _MISSING)
    if key is _MISSING:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            key = None
        else:
            key = _V4_MAPPED + ip.packed if ip.version == 4 else ip.packed
        _remember(_ip_keys, text, key)
    return key


def network_range(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[bytes, bytes]:
    """First and last 16-byte keys of a network, for ``BETWEEN`` (equal for a single address)."""
    first, last = net.network_address.packed, net.broadcast_address.packed
    if net.version == 4:
        return _V4_MAPPED + first, _V4_MAPPED + last
    return first, last


def ts_ms(value: Any) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp or datetime."""
    if isinstance(value, str):
        millis = _ts_millis.get(value)
        if millis is None:
            millis = _ts_ms(value)
            _remember(_ts_millis, value, millis)
        return millis
    return _ts_ms(value)


def _ts_ms(value: Any) -> int:
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value)
        seconds = utc_seconds(text)  # the parsers' form, without fromisoformat (the same float)
        if seconds is not None:
            return int(seconds * 1000)
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


_json_fallback = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def to_json(event: Event) -> str:
    """The stored document: compact UTF-8 JSON through orjson (about ten times the standard encoder's speed); what
    orjson refuses (keys that are not strings, integers past 64 bits) goes through the standard encoder."""
    try:
        return orjson.dumps(event).decode()
    except TypeError:
        return _json_fallback(event)


def doc_bytes(event: Event) -> bytes:
    """The stored document as UTF-8 JSON bytes (``to_json``'s text, encoded), for a store that compresses it."""
    try:
        return orjson.dumps(event)
    except TypeError:
        return _json_fallback(event).encode()


@cython.cfunc
def _text(node: Any, name: str) -> str | None:
    """``str(node[name])`` when ``node`` is a dict holding a value there, else None (a column's value)."""
    if not isinstance(node, dict):
        return None
    value = node.get(name)
    if value is None:
        return None
    if type(value) is str:
        return _marked([value]) if value.startswith(LIST_MARK) else value
    if type(value) is list:
        return _listed(value)
    return str(value)


def _listed(values: list) -> str | None:
    """A column's value for a list: its one text, or LIST_MARK and the JSON array of its distinct texts; None when
    it holds no text (objects and nulls are none)."""
    texts = list(dict.fromkeys(v if type(v) is str else str(v) for v in values
                               if v is not None and not isinstance(v, (dict, list))))
    if not texts:
        return None
    if len(texts) == 1 and not texts[0].startswith(LIST_MARK):
        return texts[0]
    return _marked(texts)


def _marked(texts: list[str]) -> str:
    """LIST_MARK and the JSON array of ``texts`` (also a text that itself starts with the mark: as a list of one,
    so that no value can pass for a marked list)."""
    _lists_made[0] += 1
    return LIST_MARK + json.dumps(texts, ensure_ascii=False, separators=(",", ":"))


def lists_made() -> int:
    """How many list values rows have marked so far (in this process): a change across ``event_row`` calls tells
    that one of them marked a list (or another thread's did, which only costs a needless check)."""
    return _lists_made[0]


@cython.cfunc
def _node(node: Any, name: str) -> Any:
    """``node[name]`` when ``node`` is a dict, else None (one step of a dotted path)."""
    if not isinstance(node, dict):
        return None
    return node.get(name)


def event_row(doc_id: str, event: Event, encode_doc: Any = None) -> tuple[Any, ...]:
    """The row (ROW_COLUMNS) of an event: KeyError without ``@timestamp``, ValueError or TypeError when a value
    cannot be stored. ``encode_doc``: the store's form of the document from its JSON bytes (default: the JSON
    text)."""
    ev = event.get("event")
    host = event.get("host")
    source = event.get("source")
    destination = event.get("destination")
    gov = event.get("gov")
    return (
        doc_id, ts_ms(event["@timestamp"]),
        _text(ev, "dataset"), _text(ev, "action"), _text(ev, "outcome"),
        _text(host, "name"), _text(source, "ip"), _text(destination, "ip"), _text(event.get("user"), "name"),
        _text(_node(gov, "system"), "id"), _text(gov, "department"), _text(gov, "mlps_level"),
        _text(gov, "data_class"),
        ip_key(_node(source, "ip")), ip_key(_node(destination, "ip")), ip_key(_node(host, "ip")),
        event.get("message"), to_json(event) if encode_doc is None else encode_doc(doc_bytes(event)),
    )
