"""Elasticsearch-specific behaviour of ElasticsearchStore against a real osmem-server (one fresh server per test).

``TestRealCluster`` runs the same essentials against a real Elasticsearch cluster when YUNSHU_TEST_ES_URL is set.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, RequestsHttpNode, Urllib3HttpNode
from elasticsearch import ApiError, Elasticsearch

from core.settings import SocSettings
from soc.ecs import Event, event_id
from soc.store.base import SearchQuery, StoreUnavailable
from soc.store.elasticsearch import (
    TEMPLATE_FILE,
    ElasticsearchStore,
    PlainMediaTypeNode,
    PlainMediaTypes,
    field_types,
    load_template,
    longest_retention,
    plain_media_type,
    plain_media_type_node,
)
from soc.store.factory import open_store
from tests.soc.osmem import es_client, es_store, osmem_process, osmem_server

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def ev(minutes: float, *, ip: str = "198.18.0.1", user: str = "root", dataset: str = "system.auth",
       dept: str | None = "GAJ", data_class: str | None = "general", level: int = 3,
       message: str = "Failed password for root", **extra: Any) -> Event:
    """A small nested ECS event ``minutes`` after T0."""
    event: Event = {
        "@timestamp": (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "event": {"kind": "event", "category": ["authentication"], "dataset": dataset, "outcome": "failure",
                  "original": f"<38>raw line {minutes}"},
        "source": {"ip": ip, "port": 52100},
        "user": {"name": user},
        "host": {"name": "gaj-app01", "ip": ["198.18.0.10"]},
        "message": message,
        "related": {"ip": [ip], "user": [user]},
        **extra,
    }
    if dept is not None:
        event["gov"] = {"department": dept, "mlps_level": level, "system": {"id": "SYS-GAJ-01"}}
        if data_class is not None:
            event["gov"]["data_class"] = data_class
    return event


def docs_of(*events: Event) -> list[tuple[str, Event]]:
    return [(event_id("test", json.dumps(e, sort_keys=True)), e) for e in events]


@pytest.fixture
def es_url() -> Iterator[str]:
    with osmem_server() as url:
        yield url


@pytest.fixture
def client(es_url: str) -> Iterator[Elasticsearch]:
    c = es_client(es_url)
    yield c
    c.close()


@pytest.fixture
def store(es_url: str) -> Iterator[ElasticsearchStore]:
    s = es_store(es_url)
    yield s
    s.close()


# -- the mapping as a data file ------------------------------------------------------------------------------


def test_template_file_is_valid_and_typed() -> None:
    body = load_template()
    fields = field_types(body["mappings"])
    assert body["mappings"]["dynamic"] is False
    assert [name for name, spec in fields.items() if spec["type"] == "text"] == ["message"]
    assert fields["@timestamp"]["type"] == "date"
    for name in ("host.ip", "source.ip", "destination.ip", "related.ip"):
        assert fields[name]["type"] == "ip"
    for name in ("event.dataset", "event.action", "event.outcome", "event.category", "event.type", "user.name",
                 "gov.department", "gov.data_class", "gov.system.id", "log.syslog.appname"):
        assert fields[name]["type"] == "keyword", name
    assert fields["gov.mlps_level"]["type"] == "short"
    for name in ("source.port", "destination.port", "http.response.status_code", "event.duration", "source.bytes"):
        assert fields[name]["type"] == "long", name


@pytest.mark.parametrize("mutate, error", [
    (lambda b: b["mappings"].update(dynamic=True), "dynamic"),
    (lambda b: b["mappings"]["properties"]["user"]["properties"]["name"].update(type="text"), "text is for message"),
    (lambda b: b["mappings"]["properties"]["message"].update(fields={"raw": {"type": "keyword"}}), "sub-fields"),
    (lambda b: b["mappings"]["properties"]["source"]["properties"]["ip"].update(type="keyword"), "source.ip"),
    (lambda b: b["mappings"]["properties"]["gov"]["properties"].pop("department"), "gov.department"),
    (lambda b: b["mappings"]["properties"]["user"]["properties"]["name"].update(type="wildcard"), "wildcard"),
    (lambda b: b.update(aliases={}), "unexpected keys"),
])
def test_template_validation_rejects(tmp_path: Path, mutate: Callable[[dict[str, Any]], Any], error: str) -> None:
    body = json.loads(TEMPLATE_FILE.read_text(encoding="utf-8"))
    mutate(body)
    bad = tmp_path / "template.json"
    bad.write_text(json.dumps(body), encoding="utf-8")
    with pytest.raises(ValueError, match=error):
        load_template(bad)


def test_media_type_rewrite() -> None:
    assert plain_media_type("application/vnd.elasticsearch+json; compatible-with=9") == "application/json"
    assert plain_media_type("application/vnd.elasticsearch+x-ndjson; compatible-with=9") == "application/x-ndjson"
    assert plain_media_type("text/plain") == "text/plain"
    assert plain_media_type_node(None) is PlainMediaTypeNode
    requests_node = plain_media_type_node("requests")
    assert issubclass(requests_node, PlainMediaTypes) and issubclass(requests_node, RequestsHttpNode)
    assert plain_media_type_node(requests_node) is requests_node
    with pytest.raises(ValueError, match="node_class 'httpxasync'"):
        plain_media_type_node("httpxasync")


# -- media types: osmem refuses the client's compatibility type -----------------------------------------------


def test_vendor_media_type_is_refused_by_osmem_and_the_store_switches_once(
        es_url: str, caplog: pytest.LogCaptureFixture) -> None:
    raw = Elasticsearch(es_url, max_retries=0)  # what the product's client sends by default
    with pytest.raises(ApiError) as refused:
        raw.indices.put_index_template(name="probe", index_patterns=["probe-*"], template={})
    assert refused.value.meta.status == 406
    assert "compatible-with=9" in str(refused.value)
    raw.close()

    s = ElasticsearchStore(es_url, refresh="wait_for", client_options={"max_retries": 0})
    before = s.client
    assert s.plain_media_types is False
    with caplog.at_level("INFO", logger="soc.store.elasticsearch"):
        assert s.write(docs_of(ev(0), ev(1))).created == 2
    assert s.plain_media_types is True and s.client is not before
    assert [n.__class__.__name__ for n in s.client.transport.node_pool.all()] == ["PlainMediaTypeNode"]
    switched = [r.getMessage() for r in caplog.records if "media type" in r.getMessage()]
    assert len(switched) == 1 and "406" in switched[0] and "application/json" in switched[0]
    assert s.search(SearchQuery(text="failed password")).total == 2
    assert s.write(docs_of(ev(0))).duplicates == 1
    assert len([r for r in caplog.records if "media type" in r.getMessage()]) == 1  # detected once
    s.close()


def test_plain_client_is_kept_and_a_refused_foreign_client_is_a_clear_error(es_url: str) -> None:
    plain = ElasticsearchStore(es_url, client_options={"node_class": PlainMediaTypeNode, "max_retries": 0})
    first = plain.client
    plain.ensure_ready()
    assert (plain.plain_media_types, plain.client) == (False, first)
    plain.close()
    requests_based = ElasticsearchStore(es_url, client_options={"node_class": "requests", "max_retries": 0})
    requests_based.ensure_ready()
    assert requests_based.plain_media_types is True
    assert all(isinstance(n, RequestsHttpNode) and isinstance(n, PlainMediaTypes)
               for n in requests_based.client.transport.node_pool.all())
    requests_based.close()
    foreign = Elasticsearch(es_url, max_retries=0)
    s = ElasticsearchStore(foreign)
    with pytest.raises(ValueError, match=r"refuses the client's compatibility media type .*406"):
        s.write(docs_of(ev(0)))
    assert s.retention_mode is None
    s.close()
    assert isinstance(next(iter(foreign.transport.node_pool.all())), Urllib3HttpNode)  # not closed, not changed
    foreign.close()


# -- template, mappings and daily indices --------------------------------------------------------------------


def test_template_and_mappings_installed(store: ElasticsearchStore, client: Elasticsearch) -> None:
    store.write(docs_of(ev(0, extra_field={"kept": "in source"})))
    templates = client.indices.get_index_template(name="yunshu-events").body["index_templates"]
    assert [t["name"] for t in templates] == ["yunshu-events"]
    template = templates[0]["index_template"]
    assert template["index_patterns"] == ["yunshu-events-*"]
    assert template["template"]["mappings"]["properties"]["message"] == {"type": "text"}
    assert "lifecycle" not in template["template"]["settings"].get("index", {})  # no ILM on osmem

    mapping = client.indices.get_mapping(index="yunshu-events-2026.11.20").body
    root = mapping["yunshu-events-2026.11.20"]["mappings"]
    assert root["dynamic"] in (False, "false")
    fields = field_types(root)
    assert {n: fields[n]["type"] for n in ("@timestamp", "message", "source.ip", "host.ip", "related.ip",
                                             "user.name", "event.dataset", "gov.department", "gov.mlps_level",
                                             "source.port")} == {
        "@timestamp": "date", "message": "text", "source.ip": "ip", "host.ip": "ip", "related.ip": "ip",
        "user.name": "keyword", "event.dataset": "keyword", "gov.department": "keyword", "gov.mlps_level": "short",
        "source.port": "long"}
    assert "fields" not in root["properties"]["message"]
    assert fields["event.original"].get("index") in (False, "false")
    assert not any(name.startswith("extra_field") for name in fields)  # unknown field not mapped ...
    hit = store.search(SearchQuery()).hits[0][1]
    assert hit["extra_field"] == {"kept": "in source"}  # ... but kept in _source


def test_events_land_in_their_utc_daily_index(store: ElasticsearchStore, client: Elasticsearch) -> None:
    late = ev(15 * 60 + 59.99)  # 2026-11-20T23:59:59.400Z
    early = ev(16 * 60)  # 2026-11-21T00:00:00.000Z
    shanghai = ev(0)
    shanghai["@timestamp"] = "2026-11-22T07:30:00+08:00"  # 2026-11-21 23:30 UTC
    docs = docs_of(late, early, shanghai)
    assert store.write(docs).created == 3
    placed = {hit["_id"]: hit["_index"] for hit in client.search(index="yunshu-events-*", size=10).body["hits"]["hits"]}
    assert placed == {docs[0][0]: "yunshu-events-2026.11.20", docs[1][0]: "yunshu-events-2026.11.21",
                      docs[2][0]: "yunshu-events-2026.11.21"}
    assert store.index_for(late) == "yunshu-events-2026.11.20"
    assert sorted(client.indices.get(index="yunshu-events-*").body) == [
        "yunshu-events-2026.11.20", "yunshu-events-2026.11.21"]


def test_custom_prefix_and_shards(es_url: str, client: Elasticsearch) -> None:
    with pytest.raises(ValueError, match="index_prefix"):
        es_store(es_url, index_prefix="Bad*Prefix")
    s = es_store(es_url, index_prefix="city-a-events", shards=2)
    assert s.write(docs_of(ev(0))).created == 1
    assert client.indices.get_index_template(name="city-a-events").body["index_templates"][0][
        "index_template"]["index_patterns"] == ["city-a-events-*"]
    settings = client.indices.get_settings(index="city-a-events-2026.11.20").body
    assert str(settings["city-a-events-2026.11.20"]["settings"]["index"]["number_of_shards"]) == "2"
    s.close()


# -- writes: ids, duplicates, rejections ----------------------------------------------------------------------


def test_same_batch_twice_is_created_then_duplicates(store: ElasticsearchStore) -> None:
    docs = docs_of(*(ev(i, ip=f"198.18.0.{i}") for i in range(25)))
    first = store.write(docs)
    assert (first.created, first.duplicates, first.rejected) == (25, 0, [])
    again = store.write(docs)
    assert (again.created, again.duplicates, again.rejected) == (0, 25, [])
    assert store.count(SearchQuery()) == 25


def test_duplicate_ids_within_one_batch_and_across_chunks(es_url: str) -> None:
    s = es_store(es_url, chunk_size=3)
    docs = docs_of(*(ev(i) for i in range(5)))
    result = s.write([*docs, docs[0], docs[4]])
    assert (result.created, result.duplicates) == (5, 2)
    assert s.count(SearchQuery()) == 5
    s.close()


def test_rejections_carry_the_reason(store: ElasticsearchStore) -> None:
    bad_ip = ev(1, ip="not-an-ip")
    no_time = ev(2)
    del no_time["@timestamp"]
    garbage_time = ev(3)
    garbage_time["@timestamp"] = "yesterday"
    docs = docs_of(ev(0), bad_ip, no_time, garbage_time)
    result = store.write(docs)
    assert result.created == 1 and result.duplicates == 0
    reasons = dict(result.rejected)
    assert set(reasons) == {docs[1][0], docs[2][0], docs[3][0]}
    assert "mapper_parsing_exception" in reasons[docs[1][0]] and "not-an-ip" in reasons[docs[1][0]]
    assert "@timestamp" in reasons[docs[2][0]] and "@timestamp" in reasons[docs[3][0]]


def test_keep_original_false_drops_the_raw_line(es_url: str) -> None:
    s = es_store(es_url, keep_original=False)
    event = ev(0)
    s.write(docs_of(event))
    stored = s.search(SearchQuery()).hits[0][1]
    assert "original" not in stored["event"] and stored["event"]["dataset"] == "system.auth"
    assert "original" in event["event"]  # the caller's dict is untouched
    s.close()


def test_refresh_false_with_explicit_refresh(es_url: str) -> None:
    s = es_store(es_url, refresh=False)
    assert s.write(docs_of(ev(0), ev(1))).created == 2
    s.refresh()
    assert s.count(SearchQuery()) == 2
    s.close()


# -- searching ------------------------------------------------------------------------------------------------


@pytest.fixture
def filled(store: ElasticsearchStore) -> ElasticsearchStore:
    events = [
        ev(0, ip="198.18.1.10", message="Failed password for root from 198.18.1.10 port 52100 ssh2"),
        ev(5, ip="198.18.1.11", message="Failed password for invalid user admin from 198.18.1.11"),
        ev(50, ip="198.19.255.1", user="alice", message="Accepted publickey for alice", data_class="important"),
        ev(70, ip="2001:db8:1::5", user="admin", dept="RSJ", message="Accepted password for admin"),
        ev(75, ip="2001:db8:2::9", user="-", dept="RSJ", dataset="nginx.access", level=2,
           message="GET /api/社保查询 HTTP/1.1 200", http={"response": {"status_code": 200}}),
        ev(60 * 25, ip="fd00::7", user="bob", dept=None, message="session opened for user bob"),
        ev(60 * 50, ip="10.1.2.3", user="carol", dept="WJW", level=4, message="sudo: carol : COMMAND=/bin/sh"),
    ]
    result = store.write(docs_of(*events))
    assert result.created == len(events), result
    return store


def test_cidr_on_ipv4_and_ipv6(filled: ElasticsearchStore) -> None:
    assert filled.count(SearchQuery(cidr={"source.ip": "198.18.1.0/24"})) == 2
    assert filled.count(SearchQuery(cidr={"source.ip": "198.18.0.0/15"})) == 3
    assert filled.count(SearchQuery(cidr={"source.ip": "10.0.0.0/8"})) == 1
    assert filled.count(SearchQuery(cidr={"source.ip": "2001:db8::/32"})) == 2
    assert filled.count(SearchQuery(cidr={"source.ip": "2001:db8:1::/48"})) == 1
    assert filled.count(SearchQuery(cidr={"related.ip": "fd00::/8"})) == 1
    assert filled.count(SearchQuery(cidr={"host.ip": "198.18.0.0/24"})) == 7
    assert filled.count(SearchQuery(where={"source.ip": "2001:db8:1::5"})) == 1
    with pytest.raises(ValueError, match="keyword"):
        filled.count(SearchQuery(cidr={"user.name": "10.0.0.0/8"}))


def test_full_text_time_range_and_order(filled: ElasticsearchStore) -> None:
    assert filled.count(SearchQuery(text="failed password")) == 2
    assert filled.count(SearchQuery(text="password")) == 3
    assert filled.count(SearchQuery(text="failed publickey")) == 0  # every word must match
    assert filled.count(SearchQuery(text="社保")) == 1
    result = filled.search(SearchQuery(start=T0, end=T0 + timedelta(minutes=70), limit=2))
    assert result.total == 3  # [start, end): the event at exactly +70 min is out
    assert [e["@timestamp"] for _, e in result.hits] == ["2026-11-20T08:50:00.000Z", "2026-11-20T08:05:00.000Z"]
    newest = filled.search(SearchQuery(limit=1)).hits[0][1]
    assert newest["user"]["name"] == "carol"


def test_where_and_department_scope(filled: ElasticsearchStore) -> None:
    assert filled.count(SearchQuery(where={"gov.mlps_level": 3})) == 4
    assert filled.count(SearchQuery(where={"gov.mlps_level": "4"})) == 1
    assert filled.count(SearchQuery(where={"http.response.status_code": 200})) == 1
    assert filled.count(SearchQuery(where={"event.category": "authentication", "user.name": "root"})) == 2
    assert filled.count(SearchQuery(departments={"GAJ", "WJW"})) == 4
    assert filled.count(SearchQuery(departments={"RSJ"}, text="password")) == 1
    assert filled.count(SearchQuery(departments=set())) == 0
    assert filled.search(SearchQuery(departments=set())).hits == []
    with pytest.raises(ValueError, match="not an indexed field"):
        filled.count(SearchQuery(where={"no.such.field": "x"}))
    with pytest.raises(ValueError, match="text"):
        filled.count(SearchQuery(where={"message": "x"}))


def test_terms_aggregation(filled: ElasticsearchStore) -> None:
    q = SearchQuery(start=T0, end=T0 + timedelta(days=1))
    assert filled.terms("event.dataset", q) == [("system.auth", 4), ("nginx.access", 1)]
    assert filled.terms("gov.department", SearchQuery()) == [("GAJ", 3), ("RSJ", 2), ("WJW", 1)]
    assert filled.terms("gov.mlps_level", SearchQuery(), size=2) == [("3", 4), ("2", 1)]
    assert filled.terms("source.ip", SearchQuery(cidr={"source.ip": "2001:db8::/32"})) == [
        ("2001:db8:1::5", 1), ("2001:db8:2::9", 1)]
    with pytest.raises(ValueError):
        filled.terms("message", SearchQuery())


def test_date_histogram_hourly_and_daily(filled: ElasticsearchStore) -> None:
    hourly = filled.date_histogram(SearchQuery(start=T0, end=T0 + timedelta(hours=3)), "1h")
    assert hourly == [(T0, 3), (T0 + timedelta(hours=1), 2)]
    daily = filled.date_histogram(SearchQuery(), "1d")
    day = datetime(2026, 11, 20, tzinfo=UTC)
    assert daily == [(day, 5), (day + timedelta(days=1), 1), (day + timedelta(days=2), 1)]
    assert all(b.tzinfo is not None for b, _ in daily)
    with pytest.raises(ValueError, match="interval"):
        filled.date_histogram(SearchQuery(), "1 week")


def test_empty_store_answers_empty(store: ElasticsearchStore) -> None:
    assert store.search(SearchQuery()).total == 0
    assert store.count(SearchQuery(text="x")) == 0
    assert store.terms("user.name", SearchQuery()) == []
    assert store.date_histogram(SearchQuery(), "1h") == []
    assert store.delete_before(T0, "general") == 0


# -- retention and ILM detection ------------------------------------------------------------------------------


def test_delete_before_by_data_class(store: ElasticsearchStore) -> None:
    old = -200 * 24 * 60
    docs = docs_of(ev(old, data_class="general"), ev(old + 1, data_class="general"),
                   ev(old, data_class="important", user="keep"), ev(old, dept=None, user="unclassified"),
                   ev(0, data_class="general", user="new"))
    assert store.write(docs).created == 5
    cutoff = T0 - timedelta(days=180)
    assert store.delete_before(cutoff, "general") == 2
    assert store.count(SearchQuery()) == 3
    assert store.delete_before(cutoff, None) == 1  # events without gov.data_class
    assert store.terms("user.name", SearchQuery()) == [("keep", 1), ("new", 1)]
    assert store.delete_before(cutoff, "general") == 0


def test_ilm_detection_falls_back_on_osmem(store: ElasticsearchStore, es_url: str) -> None:
    assert store.retention_mode is None  # nothing happens before first use
    store.ensure_ready()
    assert store.retention_mode == "delete_by_query"
    forced = es_store(es_url, ilm=True)
    with pytest.raises(RuntimeError, match="ILM required"):
        forced.ensure_ready()
    off = es_store(es_url, ilm=False)
    off.ensure_ready()
    assert off.retention_mode == "delete_by_query"
    forced.close()
    off.close()


class FakeIlmNode(PlainMediaTypeNode):
    """Answers the ILM endpoints itself (as a cluster with ILM would) and passes everything else to osmem."""

    requests: ClassVar[list[tuple[str, str, Any]]] = []

    def perform_request(self, method: str, target: str, body: bytes | None = None,
                        headers: HttpHeaders | None = None, **kwargs: Any) -> Any:
        from elastic_transport._node import NodeApiResponse

        intercepted = target.startswith(("/_ilm/", "/_index_template/"))
        payload = json.loads(body) if body and intercepted else None
        self.requests.append((method, target.split("?")[0], payload))
        if target.startswith("/_ilm/"):
            answer = {"operation_mode": "RUNNING"} if target.startswith("/_ilm/status") else {"acknowledged": True}
            headers_out = HttpHeaders({"content-type": "application/json", "x-elastic-product": "Elasticsearch"})
            meta = ApiResponseMeta(200, "1.1", headers_out, 0.0, self.config)
            return NodeApiResponse(meta, json.dumps(answer).encode())
        if target.startswith("/_index_template/") and payload:
            # osmem does not know index.lifecycle.* settings: record the real body, send it without them
            stripped = json.loads(json.dumps(payload))
            stripped["template"]["settings"]["index"].pop("lifecycle", None)
            body = json.dumps(stripped).encode()
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


def test_longest_retention() -> None:
    assert longest_retention() == max(SocSettings().retention_days.values()) == 1095
    assert longest_retention({"general": 180, "important": 400}) == 400
    with pytest.raises(ValueError, match="retention_days is empty"):
        longest_retention({})
    with pytest.raises(ValueError, match="'core': 0"):
        longest_retention({"general": 180, "core": 0})
    with pytest.raises(ValueError, match="retention_days must be whole days"):
        ElasticsearchStore("http://127.0.0.1:9", retention_days=0)
    assert ElasticsearchStore("http://127.0.0.1:9").retention_days == 1095  # the default is the longest one


def _with_fake_ilm(store: ElasticsearchStore, url: str) -> ElasticsearchStore:
    """``store`` (unused so far) talking through FakeIlmNode, as if its cluster had ILM."""
    store.client.close()
    store.client = Elasticsearch(url, node_class=FakeIlmNode, max_retries=0)
    store.refresh_policy = "wait_for"
    return store


@pytest.mark.parametrize("retention, min_age", [
    (None, "1096d"),  # the defaults: core data 1095 days
    ({"general": 180, "important": 365, "core": 1095, "unclassified": 180}, "1096d"),
    ({"general": 200, "important": 2000, "unclassified": 190}, "2001d"),
])
def test_open_store_ilm_policy_keeps_indices_for_the_longest_retention(
        es_url: str, tmp_path: Path, retention: dict[str, int] | None, min_age: str) -> None:
    """Daily indices mix data classes: ILM must not drop one before the longest class retention (+1 day so the
    day's last event is kept the whole period); shorter classes go per class through delete_before."""
    FakeIlmNode.requests.clear()
    s = open_store(es_url, tmp_path, retention)
    assert isinstance(s, ElasticsearchStore)
    _with_fake_ilm(s, es_url)
    old = -400 * 24 * 60
    docs = docs_of(ev(old, data_class="general", user="g"), ev(old, data_class="important", user="i"),
                   ev(old, data_class="core", user="c"))
    assert s.write(docs).created == 3
    assert s.retention_mode == "ilm"
    policy = {(m, p): b for m, p, b in FakeIlmNode.requests}[("PUT", "/_ilm/policy/yunshu-events")]["policy"]
    assert policy["phases"]["delete"] == {"min_age": min_age, "actions": {"delete": {}}}
    assert policy["_meta"]["retention_days"] == int(min_age[:-1]) - 1
    assert s.delete_before(T0 - timedelta(days=180), "general") == 1  # the shorter class, per class
    assert s.terms("user.name", SearchQuery()) == [("c", 1), ("i", 1)]
    s.close()


def test_ilm_path_installs_policy_and_references_it(es_url: str) -> None:
    FakeIlmNode.requests.clear()
    s = ElasticsearchStore(es_url, retention_days=365, refresh="wait_for",
                           client_options={"node_class": FakeIlmNode, "max_retries": 0})
    assert s.write(docs_of(ev(0))).created == 1
    assert s.retention_mode == "ilm"
    by_path = {(m, p): b for m, p, b in FakeIlmNode.requests}
    policy = by_path[("PUT", "/_ilm/policy/yunshu-events")]["policy"]
    assert policy["phases"]["delete"] == {"min_age": "366d", "actions": {"delete": {}}}
    template = by_path[("PUT", "/_index_template/yunshu-events")]
    assert template["template"]["settings"]["index"]["lifecycle"] == {"name": "yunshu-events"}
    assert template["_meta"]["retention_mode"] == "ilm"
    assert s.delete_before(T0 + timedelta(days=1), "general") == 1  # per-class retention still works
    s.close()


# -- unavailability --------------------------------------------------------------------------------------------


def test_store_unavailable_when_server_stopped() -> None:
    with osmem_process() as server:
        s = es_store(server.url)
        assert s.write(docs_of(ev(0))).created == 1
        defaults = ElasticsearchStore(server.url, client_options={"node_class": PlainMediaTypeNode})  # with retries
        never_used = es_store(server.url)
    for st in (s, defaults):
        with pytest.raises(StoreUnavailable):
            st.write(docs_of(ev(1)))
        with pytest.raises(StoreUnavailable):
            st.search(SearchQuery())
        with pytest.raises(StoreUnavailable):
            st.delete_before(T0, None)
    with pytest.raises(StoreUnavailable):  # first use (template install) against a stopped server
        never_used.write(docs_of(ev(2)))
    assert never_used.retention_mode is None
    for st in (s, defaults, never_used):
        st.close()


class _Handler(BaseHTTPRequestHandler):
    mode: ClassVar[str] = "503"

    def do_any(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        if self.mode == "not-elasticsearch":
            self._send(200, {"took": 1, "hits": {"hits": []}}, product=None)
        elif self.mode == "bulk429" and self.path.startswith("/_bulk"):
            item = {"create": {"_index": "yunshu-events-2026.11.20", "_id": "x", "status": 429,
                               "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}}
            self._send(200, {"took": 1, "errors": True, "items": [item]})
        elif self.mode == "bulk429":
            self._send(200, {"acknowledged": True} if self.path.startswith("/_index_template") else {})
        else:
            self._send(503, {"error": {"type": "unavailable", "reason": "cluster is red"}, "status": 503})

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_any

    def _send(self, status: int, body: dict[str, Any], product: str | None = "Elasticsearch") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        if product:
            self.send_header("x-elastic-product", product)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_cluster() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"mode": "503"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_5xx_and_item_429_are_unavailable(fake_cluster: tuple[str, type[_Handler]]) -> None:
    url, handler = fake_cluster
    s = es_store(url)
    with pytest.raises(StoreUnavailable, match="503"):
        s.write(docs_of(ev(0)))
    handler.mode = "bulk429"
    with pytest.raises(StoreUnavailable, match="429"):
        s.write(docs_of(ev(0)))
    s.close()


def test_server_that_is_not_elasticsearch_is_a_clear_error(fake_cluster: tuple[str, type[_Handler]]) -> None:
    url, handler = fake_cluster
    handler.mode = "not-elasticsearch"
    s = es_store(url)
    with pytest.raises(ValueError, match="not Elasticsearch"):
        s.write(docs_of(ev(0)))
    s.close()


def test_timeout_is_unavailable() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        s = ElasticsearchStore(url, request_timeout=0.3, client_options={"node_class": PlainMediaTypeNode,
                                                                         "max_retries": 0})
        with pytest.raises(StoreUnavailable):
            s.write(docs_of(ev(0)))
        s.close()


# -- opt-in: a real Elasticsearch cluster ----------------------------------------------------------------------

REAL_ES = os.environ.get("YUNSHU_TEST_ES_URL")


@pytest.mark.skipif(not REAL_ES, reason="set YUNSHU_TEST_ES_URL to run against a real Elasticsearch cluster")
class TestRealCluster:
    """Runs against YUNSHU_TEST_ES_URL (credentials in the URL; YUNSHU_TEST_ES_CA for a CA file) and cleans up."""

    @pytest.fixture
    def real(self) -> Iterator[ElasticsearchStore]:
        options: dict[str, Any] = {}
        if os.environ.get("YUNSHU_TEST_ES_CA"):
            options["ca_certs"] = os.environ["YUNSHU_TEST_ES_CA"]
        prefix = f"yunshu-test-{uuid.uuid4().hex[:8]}"
        s = ElasticsearchStore(str(REAL_ES), index_prefix=prefix, refresh="wait_for", client_options=options)
        yield s
        created = s.client.indices.get(index=f"{prefix}-*", allow_no_indices=True).body
        if created:  # by name: wildcard deletes are refused by default (action.destructive_requires_name)
            s.client.indices.delete(index=",".join(sorted(created)))
        s.client.options(ignore_status=404).indices.delete_index_template(name=prefix)
        if s.retention_mode == "ilm":
            s.client.options(ignore_status=404).ilm.delete_lifecycle(name=prefix)
        s.close()

    def test_round_trip(self, real: ElasticsearchStore) -> None:
        docs = docs_of(ev(0, ip="198.18.1.10"), ev(70, ip="2001:db8:1::5", dept="RSJ"), ev(60 * 24))
        assert real.write(docs).created == 3
        assert real.write(docs).duplicates == 3
        assert real.retention_mode in ("ilm", "delete_by_query")
        mapping = real.client.indices.get_mapping(index=f"{real.index_prefix}-2026.11.20").body
        fields = field_types(next(iter(mapping.values()))["mappings"])
        assert (fields["source.ip"]["type"], fields["message"]["type"]) == ("ip", "text")
        assert real.count(SearchQuery(cidr={"source.ip": "2001:db8::/32"})) == 1
        assert real.count(SearchQuery(text="failed password", departments={"GAJ"})) == 2
        assert real.terms("gov.department", SearchQuery()) == [("GAJ", 2), ("RSJ", 1)]
        assert real.date_histogram(SearchQuery(), "1d") == [(datetime(2026, 11, 20, tzinfo=UTC), 2),
                                                            (datetime(2026, 11, 21, tzinfo=UTC), 1)]
        assert real.delete_before(T0 + timedelta(hours=2), "general") == 2


def test_the_soc_opens_its_store_with_the_configured_retention(es_url: str, tmp_path: Path) -> None:
    """open_soc hands soc.retention_days to the store: ILM keeps indices for the longest configured class."""
    from core.runtime import open_runtime
    from core.settings import Settings
    from soc.service import open_soc

    rt = open_runtime(Settings(home=tmp_path / "var", soc=SocSettings(store_url=es_url, detection=False,
                                                                        retention_days={"core": 2000})))
    try:
        soc = open_soc(rt)
        assert isinstance(soc.store, ElasticsearchStore) and soc.store.retention_days == 2000
        soc.close()
    finally:
        rt.close()


class _FakeCluster(BaseHTTPRequestHandler):
    """A small Elasticsearch stand-in: templates acknowledged, searches empty, bulk items created; ``mode`` adds
    one behaviour of a real cluster: "es8" refuses the compatible-with=9 media type with a 400 as an
    Elasticsearch 8 node does, "ilm403" refuses ILM status to a user without read_ilm, "limit" answers 413 to
    a request body over ``max_bytes``, "proxy503" answers bulk requests with a proxy's HTML error page."""

    mode: ClassVar[str] = ""
    max_bytes: ClassVar[int] = 0
    bulk_sizes: ClassVar[list[int]] = []

    def do_any(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.mode == "es8" and "compatible-with=9" in (self.headers.get("content-type") or "") + (
                self.headers.get("accept") or ""):
            self._send(400, {"error": {"type": "media_type_header_exception",
                                       "reason": "Invalid media-type value on headers [Accept, Content-Type]"},
                             "status": 400})
        elif self.mode == "ilm403" and self.path.startswith("/_ilm/"):
            self._send(403, {"error": {"type": "security_exception", "reason": "action [cluster:admin/ilm/get] "
                                       "is unauthorized"}, "status": 403})
        elif self.mode == "proxy503" and self.path.startswith("/_bulk"):
            page = b"<html><body>503 Service Temporarily Unavailable</body></html>"
            self.send_response(503)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
        elif self.path.startswith("/_bulk"):
            if self.mode == "limit" and len(body) > self.max_bytes:
                self._send(413, {"error": {"type": "content_too_long", "reason": "request too large"},
                                 "status": 413})
                return
            self.bulk_sizes.append(len(body))
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            items = [{"create": {"_index": op["create"]["_index"], "_id": op["create"]["_id"], "status": 201}}
                     for op in lines[::2]]
            self._send(200, {"took": 1, "errors": False, "items": items})
        elif "_search" in self.path or "_count" in self.path:
            self._send(200, {"took": 1, "count": 0, "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}})
        else:
            self._send(200, {"acknowledged": True})

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_any

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("x-elastic-product", "Elasticsearch")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _fake(mode: str, max_bytes: int = 0) -> Iterator[tuple[str, type[_FakeCluster]]]:
    handler = type("Handler", (_FakeCluster,), {"mode": mode, "max_bytes": max_bytes, "bulk_sizes": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_an_elasticsearch_8_node_refusing_compatible_with_9_gets_plain_json() -> None:
    with _fake("es8") as (url, _):
        store = ElasticsearchStore(url, client_options={"max_retries": 0})
        try:
            assert store.write(docs_of(ev(0))).created == 1
            assert store.plain_media_types
        finally:
            store.close()


def test_ilm_not_readable_by_the_user_means_retention_by_delete_by_query() -> None:
    with _fake("ilm403") as (url, _):
        store = ElasticsearchStore(url, client_options={"node_class": PlainMediaTypeNode, "max_retries": 0})
        try:
            assert store.write(docs_of(ev(0))).created == 1
            assert store.retention_mode == "delete_by_query"
        finally:
            store.close()


def test_bulk_requests_too_large_are_split_and_a_document_too_large_alone_is_rejected() -> None:
    small = [ev(i, message="x" * 30_000) for i in range(10)]
    huge = ev(99, message="y" * 300_000)
    with _fake("limit", max_bytes=200_000) as (url, handler):
        store = ElasticsearchStore(url, client_options={"node_class": PlainMediaTypeNode, "max_retries": 0})
        try:
            docs = docs_of(*small[:5], huge, *small[5:])
            result = store.write(docs)
        finally:
            store.close()
    assert (result.created, result.duplicates) == (10, 0)
    assert result.rejected == [(docs[5][0], "larger than the cluster takes in one request (413)")]
    assert all(size <= 200_000 for size in handler.bulk_sizes)


def test_a_document_that_cannot_be_serialised_is_rejected_alone(store: ElasticsearchStore) -> None:
    bad = ev(1, labels={"odd": object()})
    docs = [*docs_of(ev(0)), ("bad-doc", bad), *docs_of(ev(2))]
    result = store.write(docs)
    assert result.created == 2
    assert [doc_id for doc_id, _ in result.rejected] == ["bad-doc"]
    assert "JSON" in result.rejected[0][1]


def test_a_document_stamped_with_its_parse_time_is_stored_once_across_days(store: ElasticsearchStore) -> None:
    """A record without a time of its own, parsed again on the next day, would go to the next daily index."""
    first = ev(0, tags=["timestamp_assumed"])
    again = {**first, "@timestamp": (T0 + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    assert store.write([("no-time-1", first)]).created == 1
    store.refresh()
    retry = store.write([("no-time-1", again), ("no-time-2", again)])
    assert (retry.created, retry.duplicates) == (1, 1)
    store.refresh()
    assert store.count(SearchQuery()) == 2


def test_a_filter_value_that_does_not_fit_its_field_is_a_value_error(store: ElasticsearchStore) -> None:
    store.write(docs_of(ev(0)))
    with pytest.raises(ValueError, match="Elasticsearch refused the query"):
        store.count(SearchQuery(where={"source.port": "abc"}))


def test_a_proxy_error_page_is_unavailable_not_a_reason_to_reject_documents() -> None:
    with _fake("proxy503") as (url, _):
        store = ElasticsearchStore(url, client_options={"node_class": PlainMediaTypeNode, "max_retries": 0})
        try:
            with pytest.raises(StoreUnavailable, match="not JSON"):
                store.write(docs_of(ev(0), ev(1)))
        finally:
            store.close()
