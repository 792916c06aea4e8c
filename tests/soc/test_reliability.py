"""Nothing lost, nothing doubled: the Elasticsearch server is killed mid-ingest and started again."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from elasticsearch.helpers import scan

from soc.consumer import SpoolConsumer
from soc.deadletter import DeadLetterStore
from soc.enrich import Enricher, RegisterIndex
from soc.pipeline import Pipeline
from soc.spool import Spool, spool_source
from soc.store.base import SearchQuery
from tests.soc.durable_proxy import JournalingProxy, acknowledged_creates
from tests.soc.osmem import es_client, es_store, osmem_process

TOTAL = 100_000


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _event(n: int) -> bytes:
    minute, second = divmod(n % 3600, 60)
    return json.dumps({"@timestamp": f"2026-11-20T0{n % 3}:{minute:02d}:{second:02d}Z", "message": f"event {n}",
                       "user": {"name": f"u{n}"}, "event": {"dataset": "reliability.test"}}).encode()


def test_acknowledged_creates_keeps_only_201_items() -> None:
    request = b'{"create":{"_id":"a"}}\n{"n":1}\n{"create":{"_id":"b"}}\n{"n":2}\n'
    response = json.dumps({"items": [{"create": {"_id": "a", "status": 201}},
                                     {"create": {"_id": "b", "status": 409}}]}).encode()
    assert acknowledged_creates(request, response) == [b'{"create":{"_id":"a"}}', b'{"n":1}']


def test_kill_elasticsearch_mid_ingest_then_restart_stores_exactly_all(tmp_path: Path) -> None:
    """100k events spooled; osmem-server SIGKILLed after ~30k and a fresh one started (holding what the first
    acknowledged, as a durable node would): every event ends up stored exactly once, none dead-lettered."""
    spool = Spool(tmp_path / "spool")
    source = spool_source("json", "http:reliability")
    for start in range(0, TOTAL, 10_000):
        spool.append([(source, _event(n)) for n in range(start, start + 10_000)])

    with ExitStack() as stack:
        stack.callback(spool.close)
        first = stack.enter_context(osmem_process())
        proxy = JournalingProxy(first.url)
        stack.callback(proxy.close)
        store = es_store(proxy.url, refresh=False)
        stack.callback(store.close)
        deadletters = DeadLetterStore(tmp_path / "dead.db")
        stack.callback(deadletters.close)
        pipeline = Pipeline(store, deadletters, Enricher(RegisterIndex()), retry_seconds=0)
        consumer = SpoolConsumer(spool, pipeline, retry_seconds=0.05)
        stack.callback(consumer.stop)
        consumer.start()
        _wait_for(lambda: proxy.acknowledged >= 30_000, 120, "30k acknowledged events")
        first.process.kill()  # SIGKILL while bulk requests are in flight
        first.process.wait(10)
        killed_at = proxy.acknowledged
        proxy.detach()
        time.sleep(0.5)  # the consumer keeps failing against the dead server meanwhile
        assert spool.backlog_bytes() > 0, "the unacknowledged events must still be in the spool"

        second = stack.enter_context(osmem_process())
        proxy.restore(second.url)
        _wait_for(lambda: spool.backlog_bytes() == 0, 300, "the spool to drain after the restart")
        assert killed_at < TOTAL, "the kill came after the ingest had finished; the test proved nothing"

        client = es_client(second.url)
        client.indices.refresh(index="yunshu-events-*")
        users = [hit["_source"]["user"]["name"]
                 for hit in scan(client, index="yunshu-events-*", query={"query": {"match_all": {}}}, size=5000)]
        assert len(users) == TOTAL, f"{len(users)} stored, expected {TOTAL}"
        assert len(set(users)) == TOTAL, "some events were stored twice"
        assert set(users) == {f"u{n}" for n in range(TOTAL)}
        assert store.count(SearchQuery(where={"event.dataset": "reliability.test"})) == TOTAL
        assert deadletters.count() == 0
