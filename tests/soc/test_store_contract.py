"""One contract, every store: the embedded SQLite store and Elasticsearch (a real osmem-server)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sigma.rule import SigmaRule

from soc.ecs import Event, event_id
from soc.store.base import EventStore, SearchQuery, split_where

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _event(minutes: int, dataset: str, ip: str, user: str, dept: str | None, data_class: str | None,
           message: str, action: str = "ssh_login", outcome: str = "failure") -> Event:
    event: Event = {
        "@timestamp": (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "event": {"kind": "event", "category": ["authentication"], "dataset": dataset, "action": action,
                  "outcome": outcome},
        "source": {"ip": ip},
        "user": {"name": user},
        "host": {"name": "gaj-rkxx-app01"},
        "message": message,
        "related": {"ip": [ip], "user": [user]},
    }
    if dept:
        event["gov"] = {"department": dept, "data_class": data_class, "mlps_level": 3, "system": {"id": "SYS-1"}}
    return event


EVENTS = [
    _event(0, "system.auth", "198.18.1.10", "root", "GAJ", "important", "Failed password for root from 198.18.1.10"),
    _event(5, "system.auth", "198.18.1.11", "root", "GAJ", "important", "Failed password for root from 198.18.1.11"),
    _event(70, "system.auth", "2001:db8:1::5", "admin", "RSJ", "general", "Accepted password for admin",
           outcome="success"),
    _event(130, "nginx.access", "203.0.113.7", "-", "RSJ", "general", "GET /api/身份信息查询 HTTP/1.1",
           action="access", outcome="success"),
    _event(60 * 24 * 200, "system.auth", "198.19.0.1", "bob", None, None, "session opened for user bob"),
    _event(-60 * 24 * 200, "system.auth", "198.19.0.2", "old", "GAJ", "general", "ancient general event"),
    _event(-60 * 24 * 200, "system.auth", "198.19.0.3", "old", "GAJ", "important", "ancient important event"),
]
DOCS = [(event_id("test", str(i)), e) for i, e in enumerate(EVENTS)]


def _sqlite(tmp: Path) -> Iterator[EventStore]:
    from soc.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp / "events.db")
    yield store
    store.close()


def _sqlite_compressed(tmp: Path) -> Iterator[EventStore]:
    from tests.soc.compressed import compressed_sqlite

    store = compressed_sqlite(tmp / "events.db")
    yield store
    store.close()


def _elasticsearch(tmp: Path) -> Iterator[EventStore]:
    from tests.soc.osmem import es_store, osmem_server

    with osmem_server() as url:
        store = es_store(url)
        yield store
        store.close()


@pytest.fixture(params=["sqlite", "sqlite-zstd", "elasticsearch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """The embedded store (documents as JSON text, and compressed with a dictionary) and Elasticsearch."""
    factory = {"sqlite": _sqlite, "sqlite-zstd": _sqlite_compressed, "elasticsearch": _elasticsearch}
    yield from factory[request.param](tmp_path)


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    result = store.write(DOCS)
    assert (result.created, result.duplicates, result.rejected) == (len(DOCS), 0, [])
    return store


def test_writes_are_idempotent(filled: EventStore) -> None:
    again = filled.write(DOCS)
    assert (again.created, again.duplicates) == (0, len(DOCS))
    assert filled.count(SearchQuery()) == len(DOCS)


def test_time_range_and_order(filled: EventStore) -> None:
    q = SearchQuery(start=T0, end=T0 + timedelta(hours=3), limit=10)
    result = filled.search(q)
    assert result.total == 4
    stamps = [e["@timestamp"] for _, e in result.hits]
    assert stamps == sorted(stamps, reverse=True)
    assert result.hits[0][0] == DOCS[3][0]  # ids come back as written


def test_field_filters(filled: EventStore) -> None:
    assert filled.count(SearchQuery(where={"user.name": "root"})) == 2
    assert filled.count(SearchQuery(where={"event.outcome": "success", "gov.department": "RSJ"})) == 2
    assert filled.count(SearchQuery(where={"event.category": "authentication"})) == len(DOCS)
    assert filled.count(SearchQuery(where={"gov.mlps_level": 3})) == 6


def test_cidr_v4_and_v6(filled: EventStore) -> None:
    assert filled.count(SearchQuery(cidr={"source.ip": "198.18.1.0/24"})) == 2
    assert filled.count(SearchQuery(cidr={"source.ip": "198.18.0.0/15"})) == 5
    assert filled.count(SearchQuery(cidr={"source.ip": "2001:db8::/32"})) == 1
    assert filled.count(SearchQuery(cidr={"source.ip": "10.0.0.0/8"})) == 0


def _host_event(minutes: int, host_ip: str | list[str], related: list[str], observer: str | None = None) -> Event:
    event: Event = {
        "@timestamp": (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "event": {"kind": "event", "dataset": "system.auth", "action": "ssh_login"},
        "host": {"name": f"host-{minutes}", "ip": host_ip},
        "related": {"ip": related},
        "message": f"multi-address host {minutes}",
    }
    if observer:
        event["observer"] = {"ip": observer}
    return event


# a dual-stack host (v4 first, v6 second), a host whose second address is private, one with a single address
HOST_EVENTS = [
    _host_event(0, ["198.18.5.1", "2001:db8:5::1"], ["198.18.5.1", "2001:db8:5::1", "203.0.113.9"], "192.0.2.1"),
    _host_event(1, ["198.18.6.1", "10.20.0.7"], ["198.18.6.1", "10.20.0.7", "2001:db8:ff::9"]),
    _host_event(2, "10.20.0.8", ["10.20.0.8"]),
]
HOST_DOCS = [(event_id("hosts", str(i)), e) for i, e in enumerate(HOST_EVENTS)]


@pytest.fixture
def hosts(store: EventStore) -> EventStore:
    assert store.write(HOST_DOCS).created == len(HOST_DOCS)
    return store


def _ids(store: EventStore, **query: dict[str, str]) -> set[str]:
    return {doc_id for doc_id, _ in store.search(SearchQuery(**query)).hits}  # type: ignore[arg-type]


def test_cidr_on_related_ip(filled: EventStore) -> None:
    """split_where routes a CIDR on related.ip to ``cidr``; every store answers it on any element of the list."""
    where, cidr = split_where(["related.ip=198.18.1.0/24"])
    assert (where, cidr) == ({}, {"related.ip": "198.18.1.0/24"})
    assert filled.count(SearchQuery(where=where, cidr=cidr)) == 2
    assert filled.count(SearchQuery(cidr={"related.ip": "198.18.0.0/15"})) == 5
    assert filled.count(SearchQuery(cidr={"related.ip": "2001:db8::/32"})) == 1
    assert filled.count(SearchQuery(cidr={"related.ip": "10.0.0.0/8"})) == 0
    assert filled.count(SearchQuery(where={"related.ip": "203.0.113.7"})) == 1
    assert filled.count(SearchQuery(where={"related.ip": "203.0.113.8"})) == 0


def test_every_address_of_a_host_ip_list(hosts: EventStore) -> None:
    first, second, single = (doc_id for doc_id, _ in HOST_DOCS)
    assert _ids(hosts, where={"host.ip": "198.18.5.1"}) == {first}  # the first address of a list
    assert _ids(hosts, where={"host.ip": "10.20.0.7"}) == {second}  # the second address of a list
    assert _ids(hosts, where={"host.ip": "2001:db8:5::1"}) == {first}
    assert _ids(hosts, where={"host.ip": "10.20.0.8"}) == {single}  # a single address, not in a list
    assert _ids(hosts, where={"host.ip": "10.20.0.9"}) == set()
    assert _ids(hosts, cidr={"host.ip": "10.20.0.0/16"}) == {second, single}
    assert _ids(hosts, cidr={"host.ip": "198.18.0.0/15"}) == {first, second}
    assert _ids(hosts, cidr={"host.ip": "10.20.0.7/32"}) == {second}
    # a CIDR with host bits set means its network, as Elasticsearch takes it
    assert _ids(hosts, cidr={"host.ip": "10.20.0.99/24"}) == {second, single}
    assert hosts.count(SearchQuery(cidr={"host.ip": "172.16.0.0/12"})) == 0


def test_ipv6_cidr_on_lists(hosts: EventStore) -> None:
    first, second, _ = (doc_id for doc_id, _ in HOST_DOCS)
    assert _ids(hosts, cidr={"host.ip": "2001:db8::/32"}) == {first}  # the v6 address is the second of the list
    assert _ids(hosts, cidr={"host.ip": "2001:db8:5::/48"}) == {first}
    assert _ids(hosts, cidr={"host.ip": "2001:db8:6::/48"}) == set()
    assert _ids(hosts, cidr={"related.ip": "2001:db8::/32"}) == {first, second}
    assert _ids(hosts, cidr={"related.ip": "2001:db8:ff::/48"}) == {second}
    assert _ids(hosts, where={"related.ip": "2001:db8:ff::9"}) == {second}
    assert _ids(hosts, where={"host.ip": "2001:db8:5::1", "related.ip": "203.0.113.9"}) == {first}


def test_other_ip_fields_of_the_mapping(hosts: EventStore) -> None:
    first = HOST_DOCS[0][0]
    assert _ids(hosts, cidr={"observer.ip": "192.0.2.0/24"}) == {first}
    assert _ids(hosts, where={"observer.ip": "192.0.2.1"}) == {first}
    assert _ids(hosts, cidr={"observer.ip": "198.51.100.0/24"}) == set()


@pytest.mark.parametrize("item", ["host.ip=10.0.0.0/33", "related.ip=not-an-ip", "source.ip=2001:db8::/129",
                                  "host.ip=300.1.1.1"])
def test_malformed_ip_filters_are_refused_naming_the_value(item: str) -> None:
    value = item.partition("=")[2]
    with pytest.raises(ValueError, match=re.escape(repr(value))):
        split_where([item])


def test_sqlite_refuses_malformed_ip_filters(tmp_path: Path) -> None:
    """Queries built without split_where get the same refusal from the embedded store."""
    from soc.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "events.db")
    try:
        with pytest.raises(ValueError, match=r"host\.ip: '10\.0\.0\.0/33' is not an IP address or CIDR"):
            store.count(SearchQuery(cidr={"host.ip": "10.0.0.0/33"}))
        with pytest.raises(ValueError, match=r"related\.ip: 'nope'"):
            store.search(SearchQuery(where={"related.ip": "nope"}))
        with pytest.raises(ValueError, match=r"not user\.name"):
            store.count(SearchQuery(cidr={"user.name": "10.0.0.0/8"}))
    finally:
        store.close()


def test_full_text_including_chinese(filled: EventStore) -> None:
    assert filled.count(SearchQuery(text="Failed password")) == 2
    assert filled.count(SearchQuery(text="password Failed")) == 0  # the words in their order
    assert filled.count(SearchQuery(text="   ")) == filled.count(SearchQuery())  # blank text: no condition
    hits = filled.search(SearchQuery(text="身份信息")).hits
    assert [h[0] for h in hits] == [DOCS[3][0]]


def test_department_scope(filled: EventStore) -> None:
    assert filled.count(SearchQuery(departments={"RSJ"})) == 2
    assert filled.count(SearchQuery(departments=set())) == 0


def test_terms_and_histogram(filled: EventStore) -> None:
    q = SearchQuery(start=T0, end=T0 + timedelta(hours=3))
    assert filled.terms("event.dataset", q) == [("system.auth", 3), ("nginx.access", 1)]
    buckets = filled.date_histogram(q, "1h")
    assert [(b.hour, n) for b, n in buckets] == [(8, 2), (9, 1), (10, 1)]
    assert [n for _, n in filled.date_histogram(q, "15m")] == [2, 1, 1]
    with pytest.raises(ValueError, match="interval '1 week'"):
        filled.date_histogram(q, "1 week")


def test_daily_buckets_follow_the_local_clock(store: EventStore) -> None:
    """23:00 and 01:00 Beijing time fall on different local days, though both are on 2026-11-20 in UTC."""
    late, early = datetime(2026, 11, 20, 15, 0, tzinfo=UTC), datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    store.write([(event_id("local", str(i)), {"@timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "message": "x"})
                 for i, t in enumerate((late, early))])
    assert store.date_histogram(SearchQuery(), "1d") == [(datetime(2026, 11, 20, tzinfo=UTC), 2)]
    beijing = store.date_histogram(SearchQuery(), "1d", offset_minutes=480)
    assert beijing == [(datetime(2026, 11, 19, 16, tzinfo=UTC), 1), (datetime(2026, 11, 20, 16, tzinfo=UTC), 1)]


def test_retention_by_data_class(filled: EventStore) -> None:
    cutoff = T0 - timedelta(days=180)
    assert filled.delete_before(cutoff, "general") == 1
    assert filled.count(SearchQuery()) == len(DOCS) - 1
    assert filled.count(SearchQuery(text="ancient important")) == 1  # other classes untouched
    assert filled.delete_before(cutoff, None) == 0  # the unclassified event is new


def _rule(detection: str) -> SigmaRule:
    return SigmaRule.from_yaml(f"title: hunt\nlogsource: {{product: test}}\ndetection:\n{detection}\n")


def test_hunt_translates_rules_into_the_store_query(filled: EventStore) -> None:
    root_in_range = _rule("  sel:\n    user.name: root\n    source.ip|cidr: 198.18.1.0/24\n  condition: sel")
    result = filled.hunt(root_in_range, SearchQuery())
    assert result.total == 2 and {i for i, _ in result.hits} == {DOCS[0][0], DOCS[1][0]}
    either = _rule("  a:\n    event.dataset: nginx.access\n  b:\n    user.name: admin\n  condition: a or b")
    assert {i for i, _ in filled.hunt(either, SearchQuery()).hits} == {DOCS[2][0], DOCS[3][0]}
    negated = _rule("  a:\n    gov.department: GAJ\n  b:\n    user.name: old\n  condition: a and not b")
    assert filled.hunt(negated, SearchQuery()).total == 2
    assert filled.hunt(negated, SearchQuery(departments={"RSJ"})).total == 0  # the scope still applies
    assert filled.hunt(root_in_range, SearchQuery(start=T0 + timedelta(minutes=1))).total == 1


def test_sqlite_refused_row_is_rejected_and_the_batch_goes_on(tmp_path: Path) -> None:
    """A row the database refuses (here: a trigger) is rejected with the reason; the other rows are stored."""
    from soc.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "events.db")
    store._db.execute("CREATE TRIGGER refuse BEFORE INSERT ON events WHEN new.message = 'poison' "
                      "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END")
    docs = [(f"id{i}", {"@timestamp": "2026-11-20T00:00:00Z", "message": "poison" if i == 1 else f"ok {i}"})
            for i in range(3)]
    result = store.write(docs)
    assert (result.created, result.duplicates) == (2, 0)
    assert [doc_id for doc_id, _ in result.rejected] == ["id1"] and "poisoned row" in result.rejected[0][1]
    again = store.write(docs[:1])
    assert (again.created, again.duplicates, again.rejected) == (0, 1, [])
    store.close()


def test_sqlite_commits_are_on_disk_when_they_return(tmp_path: Path) -> None:
    """synchronous=FULL: the spool drops a segment once its records are stored, so a stored batch must survive a
    power cut (NORMAL, in WAL mode, may lose the last commits)."""
    from soc.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "events.db")
    try:
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


def test_full_text_folds_case_in_every_script(store: EventStore) -> None:
    docs = [(event_id("case", str(i)), {"@timestamp": "2026-11-20T08:00:00.000Z", "message": m})
            for i, m in enumerate(["ÉCOLE ouverte", "Ärger mit dem Server", "мой ПАРОЛЬ истёк"])]
    assert store.write(docs).created == 3
    for text, expected in (("école", 0), ("ÄRGER", 1), ("пароль", 2), ("École Ouverte", 0)):
        assert [doc_id for doc_id, _ in store.search(SearchQuery(text=text)).hits] == [docs[expected][0]], text


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        SearchQuery(limit=-1)


def test_list_values_in_hot_fields_match_and_count_each_element(store: EventStore) -> None:
    """JSON logs may carry a list where ECS has one keyword (user.name, host.name): each element matches a filter
    and counts in terms, as Elasticsearch treats a multi-valued keyword."""
    names = [["alice", "bob"], "bob", "carol", ["dave"], ["bob", "erin", "alice", "alice"], '\x1e["bob"]']
    docs = []
    for i, name in enumerate(names):
        event = _event(i, "json", "198.18.9.1", "x", "GAJ", "general", f"list event {i}")
        event["user"] = {"name": name}
        event["host"] = {"name": ["web-a", "web-b"] if i == 0 else "web-c"}
        docs.append((event_id("lists", str(i)), event))
    store.write(docs)
    assert store.count(SearchQuery(where={"user.name": "bob"})) == 3
    assert store.count(SearchQuery(where={"user.name": "alice"})) == 2
    assert store.count(SearchQuery(where={"user.name": "dave"})) == 1  # a one-element list is its value
    assert store.count(SearchQuery(where={"host.name": "web-b"})) == 1
    assert store.terms("user.name", SearchQuery()) == [("bob", 3), ("alice", 2), ('\x1e["bob"]', 1), ("carol", 1),
                                                        ("dave", 1), ("erin", 1)]  # a document counts once
    assert store.count(SearchQuery(where={"user.name": '\x1e["bob"]'})) == 1  # a value like a mark is itself
    assert store.terms("user.name", SearchQuery(), size=2) == [("bob", 3), ("alice", 2)]
    assert store.terms("host.name", SearchQuery(where={"user.name": "alice"})) == [
        ("web-a", 1), ("web-b", 1), ("web-c", 1)]


def test_list_values_reach_the_embedded_store_through_the_pipeline(tmp_path: Path) -> None:
    """The pipeline encodes a few events at a time and joins them: the mark that a batch holds lists survives."""
    from soc.deadletter import DeadLetterStore
    from soc.enrich import Enricher, RegisterIndex
    from soc.parsers import ParseContext
    from soc.pipeline import Pipeline, RawRecord
    from soc.store.sqlite import SQLiteStore

    store, dead = SQLiteStore(tmp_path / "events.db"), DeadLetterStore(tmp_path / "dead.db")
    try:
        lines = [json.dumps({"@timestamp": "2026-11-20T02:00:00Z", "message": f"m{i}",
                             "user": {"name": ["alice", "bob"] if i == 77 else f"u{i}"}}) for i in range(100)]
        stats = Pipeline(store, dead, Enricher(RegisterIndex()), ParseContext(), retry_seconds=0).run(
            [RawRecord(f"file:/x:{i}", line.encode()) for i, line in enumerate(lines)], "json")
        assert stats.stored == 100
        assert store.count(SearchQuery(where={"user.name": "bob"})) == 1
    finally:
        store.close()
        dead.close()
