"""The embedded store's key tables (host and user names, source and destination addresses) in the side index's file:
every key of every row (each element of a list), filters finding the same rows before and after the side index
reaches them, query plans driven by the candidates, keys of deleted rows dropped, older layouts rebuilt."""

from __future__ import annotations

import ipaddress
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from soc.ecs import Event
from soc.store.base import SearchQuery
from soc.store.key_index import BUCKET_BITS, KEYED
from soc.store.rows import ip_key
from soc.store.side_index import SideIndex, index_path
from soc.store.sqlite import SQLiteStore, store_id
from soc.store.text_index import text_path
from soc.store.wal import immediate

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
HOSTS = ["web-01", "web-02", "db-01", "bastion", "网关"]
USERS = ["root", "alice", "bob", "张三"]


def _event(i: int, rng: random.Random) -> Event:
    user: str | list[str] = rng.choice(USERS)
    if i % 7 == 0:  # a JSON log's list of users
        user = rng.sample(USERS, 2)
    event: Event = {
        "@timestamp": (NOW - timedelta(minutes=i)).isoformat(),
        "event": {"dataset": "test"},
        "host": {"name": rng.choice(HOSTS)},
        "user": {"name": user},
        "source": {"ip": rng.choice([f"10.1.{rng.randint(0, 3)}.{rng.randint(1, 254)}", f"2001:db8::{i:x}"])},
        "message": f"line {i}",
        "gov": {"data_class": "一般数据" if i % 2 else "重要数据"},
    }
    if i % 3:
        event["destination"] = {"ip": f"192.0.2.{i % 5}"}
    return event


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def _ids(store: SQLiteStore, **query: object) -> set[str]:
    return {doc_id for doc_id, _ in store.search(SearchQuery(limit=10_000, **query)).hits}  # type: ignore[arg-type]


def _keys(path: Path, column: str) -> list[tuple[object, int]]:
    with sqlite3.connect(index_path(path)) as db:
        return db.execute(f"SELECT key, rid FROM keys_{column} ORDER BY rid, key").fetchall()


@pytest.fixture
def events() -> list[Event]:
    rng = random.Random(20261203)
    return [_event(i, rng) for i in range(200)]


def test_key_tables_hold_every_key_of_every_row_and_each_element_of_a_list(tmp_path: Path,
                                                                           events: list[Event]) -> None:
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    store.write([(f"e{i}", event) for i, event in enumerate(events)])
    store.wait_indexed()
    users = [(name, rid) for rid, event in enumerate(events, 1) for name in sorted(_as_list(event["user"]["name"]))]
    assert _keys(path, "user_name") == users
    assert _keys(path, "host_name") == [(event["host"]["name"], rid) for rid, event in enumerate(events, 1)]
    assert _keys(path, "source_ip_key") == [(ip_key(event["source"]["ip"]), rid) for rid, event in enumerate(events, 1)]
    assert _keys(path, "destination_ip_key") == [(ip_key(event["destination"]["ip"]), rid)
                                                 for rid, event in enumerate(events, 1) if "destination" in event]
    with sqlite3.connect(path) as db:  # the events file keeps no index on them
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert not {f"events_{column}" for column in KEYED} & indexes
    store.close()


def _expected(events: list[Event], field: str, value: str, start: datetime | None) -> set[str]:
    out = set()
    for i, event in enumerate(events):
        if start and datetime.fromisoformat(event["@timestamp"]) < start:
            continue
        section, name = field.split(".")
        held = event.get(section, {}).get(name)
        held = _as_list(held)
        if field.endswith(".ip"):
            net = ipaddress.ip_network(value, strict=False)
            found = any(h is not None and ipaddress.ip_address(h) in net for h in held)
        else:
            found = value in held
        if found:
            out.add(f"e{i}")
    return out


def _write_over_buckets(store: SQLiteStore, docs: list[tuple[str, Event]], gap: int) -> None:
    """Write ``docs`` in four parts, each from a rowid ``gap`` past the last (as after deleted rowids)."""
    for part in range(4):
        with immediate(store._db) as db:
            top = db.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
            db.execute("INSERT INTO store_meta(key, value) VALUES ('next_rowid', ?) ON CONFLICT(key) DO UPDATE SET "
                       "value = excluded.value", (top + gap,))
        store.write(docs[part::4])


@pytest.mark.parametrize("indexed", [True, False, "buckets"],
                         ids=["through the key tables", "before the side index", "key tables in several buckets"])
def test_filters_on_keyed_fields_find_exactly_the_matching_rows(tmp_path: Path, events: list[Event],
                                                                indexed: bool | str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if not indexed:  # as when the side index's thread lags far behind: every row is past its upto
        monkeypatch.setattr(SideIndex, "notify", lambda self, rows=1: None)
    store = SQLiteStore(tmp_path / "events.db")
    docs = [(f"e{i}", event) for i, event in enumerate(events)]
    if indexed == "buckets":  # rowids 150,000 apart: buckets 2, 4, 6 and 9, with empty ones between
        _write_over_buckets(store, docs, 150_000)
        store.wait_indexed()
        with sqlite3.connect(index_path(tmp_path / "events.db")) as db:
            placed = db.execute("SELECT bkt, rid FROM keys_host_name").fetchall()
        assert {bkt for bkt, _ in placed} == {2, 4, 6, 9}
        assert all(bkt == rid >> BUCKET_BITS for bkt, rid in placed) and len(placed) == len(events)
    else:
        store.write(docs)
    if not indexed:
        assert store.text_index_lag() == 200
    else:
        store.wait_indexed()
        assert store.text_index_lag() == 0
    cases = [("host.name", h) for h in [*HOSTS, "nobody"]] + [("user.name", u) for u in USERS] + \
        [("source.ip", "10.1.2.0/24"), ("source.ip", "10.1.0.0/16"), ("source.ip", "2001:db8::/120"),
         ("source.ip", events[5]["source"]["ip"]), ("destination.ip", "192.0.2.3"),
         ("destination.ip", "192.0.2.0/30"), ("source.ip", "203.0.113.1")]
    for field, value in cases:
        for start in (None, NOW - timedelta(minutes=50)):
            expected = _expected(events, field, value, start)
            assert _ids(store, where={field: value}, start=start) == expected, (field, value, start)
            query = SearchQuery(where={field: value}, start=start, limit=3)  # counted and paged from the key table
            newest = sorted(expected, key=lambda doc_id: int(doc_id[1:]))[:3]  # e{i} is i minutes old
            assert [doc_id for doc_id, _ in store.search(query).hits] == newest, (field, value, start)
            assert store.count(query) == len(expected)
            assert sum(n for _, n in store.date_histogram(query, "1h")) == len(expected)
            in_department = SearchQuery(where={field: value}, start=start, departments={"GAJ"})
            assert store.count(in_department) == 0  # (the events have no department)
    both = _expected(events, "host.name", "web-01", None) & _expected(events, "user.name", "root", None)
    assert _ids(store, where={"host.name": "web-01", "user.name": "root"}) == both
    assert _ids(store, where={"host.name": "web-01"}, cidr={"source.ip": "10.1.0.0/16"}) == \
        _expected(events, "host.name", "web-01", None) & _expected(events, "source.ip", "10.1.0.0/16", None)
    store.close()


@pytest.mark.parametrize("query", [
    SearchQuery(where={"source.ip": "10.1.2.3"}),
    SearchQuery(cidr={"destination.ip": "192.0.2.0/24"}, start=NOW - timedelta(days=1), end=NOW),
    SearchQuery(where={"host.name": "web-01"}, start=NOW - timedelta(days=1)),
    SearchQuery(where={"user.name": "root"}, departments={"GAJ"}),
], ids=["address", "CIDR in a time range", "host", "user in departments"])
def test_a_keyed_filter_is_driven_by_its_key_table_not_by_a_walk_of_the_time_index(tmp_path: Path,
                                                                                   query: SearchQuery) -> None:
    """The newest page looks up the candidate rows from the key table (and those past the index) by rowid: walking
    every event in time order, or every event of the departments, would make a rare value cost the whole store."""
    store = SQLiteStore(tmp_path / "events.db")
    where, params = store._where(query)
    plan = [row[3] for row in store._reader.execute(
        f"EXPLAIN QUERY PLAN SELECT e.id, e.doc FROM events e{where} ORDER BY e.ts DESC, e.rowid DESC LIMIT 10",
        params)]
    assert plan[0] == "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)", plan
    assert not any(step.startswith("SCAN e") for step in plan), plan
    assert any(step.startswith("SEARCH ix.keys_") and "PRIMARY KEY" in step for step in plan), plan
    store.close()


def test_deleting_events_drops_their_keys(tmp_path: Path, events: list[Event]) -> None:
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    store.write([(f"e{i}", event) for i, event in enumerate(events)])
    store.wait_indexed()
    assert store.delete_before(NOW + timedelta(days=1), "一般数据") == 100  # the odd ones
    for column in KEYED:
        assert {rid % 2 for _, rid in _keys(path, column)} == {1}  # rowid i + 1: only the even events are left
    assert _ids(store, where={"host.name": "web-01"}) == {i for i in _expected(events, "host.name", "web-01", None)
                                                         if int(i[1:]) % 2 == 0}
    store.close()


def test_an_index_of_another_layout_and_the_text_file_of_12_03_are_replaced(
        tmp_path: Path, events: list[Event], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    store.write([(f"e{i}", event) for i, event in enumerate(events[:10])])
    store.wait_indexed()
    store.close()
    with sqlite3.connect(index_path(path)) as db:  # as an index written in an older layout
        db.execute("UPDATE index_state SET format = 0")
        db.execute("DELETE FROM keys_host_name")
    monkeypatch.setattr(SideIndex, "notify", lambda self, rows=1: None)  # (the rebuild is looked at before it runs)
    old = text_path(path)
    old.write_bytes(b"SQLite format 3\x00")
    old.with_name(old.name + "-wal").write_bytes(b"")
    store = SQLiteStore(path)
    assert not old.exists() and not old.with_name(old.name + "-wal").exists()
    assert store.text_index_lag() == 10  # started over, in the background
    assert _ids(store, where={"host.name": events[3]["host"]["name"]}) == \
        _expected(events[:10], "host.name", events[3]["host"]["name"], None)
    store.wait_indexed()
    assert len(_keys(path, "host_name")) == 10
    store.close()


def test_an_older_store_loses_its_inline_indexes_on_the_keyed_columns(tmp_path: Path, events: list[Event]) -> None:
    path = tmp_path / "events.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:  # as a store of 2026-12-03 or before
        db.execute("CREATE INDEX events_source_ip_key ON events(source_ip_key, ts)")
        db.execute("CREATE INDEX events_host_name ON events(host_name, ts)")
    store = SQLiteStore(path)
    with sqlite3.connect(path) as db:
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert not names & {"events_source_ip_key", "events_host_name"}
    store.write([("e0", events[0])])
    assert _ids(store, where={"source.ip": events[0]["source"]["ip"]}) == {"e0"}
    store.close()


def test_a_side_index_pass_leaves_the_events_file_to_the_writer(tmp_path: Path) -> None:
    """The index's connection has the events file attached read-only: its pass (a write transaction on its own
    file) does not hold the events file's write lock, so the writer goes on meanwhile."""
    rng = random.Random(5)
    store = SQLiteStore(tmp_path / "events.db")
    try:
        store.write([(f"e{i}", _event(i, rng)) for i in range(50)])
        store._db.execute("PRAGMA busy_timeout=200")  # a locked file fails fast instead of after 30 s
        side = SideIndex(store.path, store_id(store._db))
        try:
            with immediate(side._db) as db:  # a pass's transaction, open
                db.execute("UPDATE index_state SET upto = upto")
                assert store.write([(f"e{i}", _event(i, rng)) for i in range(50, 60)]).created == 10
                with pytest.raises(sqlite3.OperationalError, match="readonly"):
                    db.execute("DELETE FROM ev.events")
        finally:
            side.close()
        assert store.count(SearchQuery()) == 60
    finally:
        store.close()


@pytest.mark.parametrize("where", [{"host.name": "web-01", "user.name": "root"},
                                   {"user.name": "root", "host.name": "web-01"}], ids=["host first", "user first"])
def test_of_several_keyed_conditions_the_rarest_drives_the_query(tmp_path: Path, where: dict[str, str]) -> None:
    """Each row is checked against every condition: the candidate rows come from the key table of the condition with
    the fewest keys, whichever comes first in the query (a common host beside a rare user read all the host's rows)."""
    store = SQLiteStore(tmp_path / "events.db")
    events = [{"@timestamp": (NOW - timedelta(seconds=i)).isoformat(), "event": {"dataset": "test"},
               "host": {"name": "web-01"}, "user": {"name": "root" if i % 30 == 0 else "alice"},
               "source": {"ip": f"10.9.{i % 200}.{i % 250 + 1}"}, "message": f"line {i}"} for i in range(300)]
    store.write([(f"e{i}", event) for i, event in enumerate(events)])
    store.wait_indexed()
    where_sql, params = store._where(SearchQuery(where=where))
    plan = " / ".join(row[3] for row in store._reader.execute(
        f"EXPLAIN QUERY PLAN SELECT e.id FROM events e{where_sql} ORDER BY e.ts DESC LIMIT 10", params))
    assert "ix.keys_user_name" in plan and "ix.keys_host_name" not in plan, plan
    assert _ids(store, where=where) == {f"e{i}" for i in range(0, 300, 30)}
    cidr_sql, params = store._where(SearchQuery(where={"host.name": "web-01"}, cidr={"source.ip": "10.9.3.0/24"}))
    plan = " / ".join(row[3] for row in store._reader.execute(f"EXPLAIN QUERY PLAN SELECT e.id FROM events e{cidr_sql}",
                                                              params))
    assert "ix.keys_source_ip_key" in plan and "ix.keys_host_name" not in plan, plan
    assert _ids(store, where={"host.name": "web-01"}, cidr={"source.ip": "10.9.3.0/24"}) == \
        {f"e{i}" for i in range(300) if i % 200 == 3}
    store.close()
