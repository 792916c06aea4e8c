"""The embedded store's row of an event (soc.store.rows) against its description, COLUMNS and IP_KEYS."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soc.store.rows import COLUMNS, IP_KEYS, LIST_MARK, ROW_COLUMNS, event_row, ip_key, ts_ms


def _walk(event: dict, dotted: str) -> Any:
    node: Any = event
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _column(value: Any) -> str | None:
    """A hot column's value: the text; for a list its one text, or LIST_MARK and the JSON array of its texts."""
    if value is None:
        return None
    if not isinstance(value, list):
        text = str(value)
        return LIST_MARK + json.dumps([text], ensure_ascii=False) if text.startswith(LIST_MARK) else text
    texts = list(dict.fromkeys(str(v) for v in value if v is not None and not isinstance(v, (dict, list))))
    if not texts:
        return None
    if len(texts) == 1 and not texts[0].startswith(LIST_MARK):
        return texts[0]
    return LIST_MARK + json.dumps(texts, ensure_ascii=False, separators=(",", ":"))


def _expected(doc_id: str, event: dict) -> tuple[Any, ...]:
    """The row as COLUMNS and IP_KEYS describe it, computed the slow, generic way."""
    hot = [_column(_walk(event, name)) for name in COLUMNS]
    keys = [ip_key(_walk(event, name)) for name in IP_KEYS]
    return (doc_id, ts_ms(event["@timestamp"]), *hot, *keys, event.get("message"), orjson.dumps(event).decode())


class Tag(str):
    """A str subclass: the column holds a plain str of it."""


_leaf = st.one_of(st.none(), st.integers(-5, 500),
                  st.sampled_from(["", "GAJ", "198.18.1.10", "2001:db8::5", "x", "\x1e[\"admin\"]"]),
                  st.builds(Tag, st.sampled_from(["RSJ", "10.0.0.1"])),
                  st.lists(st.sampled_from(["198.18.0.1", "2001:db8::1", "bad", "\x1eodd"]), max_size=3))
_node = st.one_of(_leaf, st.dictionaries(st.sampled_from(["ip", "name", "id", "dataset", "action", "outcome",
                                                          "department", "mlps_level", "data_class", "system"]),
                                         st.one_of(_leaf, st.fixed_dictionaries({"id": _leaf})), max_size=6))
_events = st.fixed_dictionaries(
    {"@timestamp": st.sampled_from(["2026-11-20T08:00:00.000Z", "2026-11-20T16:30:01.250+08:00"])},
    optional={name: _node for name in ("event", "host", "source", "destination", "user", "gov")}
    | {"message": st.one_of(st.none(), st.text(max_size=20))},
)


@settings(max_examples=400, deadline=None)
@given(_events)
def test_row_follows_columns_and_ip_keys(event: dict) -> None:
    row = event_row("id-1", event)
    assert row == _expected("id-1", event)
    assert len(row) == len(ROW_COLUMNS)
    assert all(type(value) is str for value in row[2:2 + len(COLUMNS)] if value is not None)


@settings(max_examples=200, deadline=None)
@given(_events)
def test_a_compressing_store_gets_the_same_document_as_bytes(event: dict) -> None:
    """``encode_doc`` receives the JSON bytes of exactly the text the row holds without it."""
    seen: list[bytes] = []
    row = event_row("id-1", event, lambda doc: seen.append(doc) or b"packed")
    assert row[:-1] == event_row("id-1", event)[:-1] and row[-1] == b"packed"
    assert seen == [event_row("id-1", event)[-1].encode()]


def test_row_of_a_typical_event() -> None:
    event = {"@timestamp": "2026-11-20T08:00:00.000Z", "event": {"dataset": "system.auth", "outcome": "failure"},
             "source": {"ip": "198.18.1.10"}, "host": {"name": "h1", "ip": ["2001:db8::5", "10.0.0.1"]},
             "gov": {"system": {"id": "SYS-1"}, "department": "GAJ", "mlps_level": 3}, "message": "m"}
    row = dict(zip(ROW_COLUMNS, event_row("a", event), strict=True))
    assert row["ts"] == 1_795_161_600_000  # 2026-11-20T08:00Z
    assert (row["dataset"], row["outcome"], row["action"]) == ("system.auth", "failure", None)
    assert (row["system_id"], row["department"], row["mlps_level"]) == ("SYS-1", "GAJ", "3")
    assert row["source_ip_key"] == bytes(10) + b"\xff\xff" + bytes([198, 18, 1, 10])
    assert row["host_ip_key"] == bytes.fromhex("20010db8000000000000000000000005")  # a list: its first address


def test_row_without_timestamp_is_refused() -> None:
    with pytest.raises(KeyError):
        event_row("a", {"message": "no time"})


@given(moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
       digits=st.sampled_from([0, 3, 6]), zone=st.sampled_from(["Z", "+00:00", "+08:00"]))
def test_ts_ms_of_every_form_equals_fromisoformat(moment: datetime, digits: int, zone: str) -> None:
    """The parsers' ``Z`` form takes the short way (soc.ecs.utc_seconds), other forms fromisoformat: the same
    milliseconds either way."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{moment.microsecond:06d}"[:digits + 1] if digits else "") + zone
    expected = int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    assert ts_ms(text) == expected
    assert ts_ms(datetime.fromisoformat(text.replace("Z", "+00:00"))) == expected


def test_none_and_bytes_parameters_skip_sqlite3s_adaptation_and_are_stored_as_they_are() -> None:
    import sqlite3

    import soc.store.sqlite  # noqa: F401  (registers the adapters)

    adapters = sqlite3.adapters  # (type, protocol) → adapter
    assert (bytes, sqlite3.PrepareProtocol) in adapters and (type(None), sqlite3.PrepareProtocol) in adapters
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (k BLOB, n)")
    db.execute("INSERT INTO t VALUES (?, ?)", (b"\x00\xff", None))
    assert db.execute("SELECT k, typeof(k), n, typeof(n) FROM t").fetchone() == (b"\x00\xff", "blob", None, "null")
    subclass = type("Key", (bytes,), {})(b"ab")  # adapters are looked up by exact type: a subclass is as before
    db.execute("INSERT INTO t VALUES (?, 1)", (subclass,))
    assert db.execute("SELECT typeof(k) FROM t WHERE n = 1").fetchone() == ("blob",)
