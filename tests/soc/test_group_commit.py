"""Group commit: the ingest writer stores the batches waiting for it in one transaction, capped, in order, once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from soc import pipeline as pipeline_module
from soc.consumer import SpoolConsumer
from soc.deadletter import DeadLetterStore
from soc.ecs import Event, event_id
from soc.enrich import Enricher, RegisterIndex
from soc.metrics import SocMetrics
from soc.pipeline import IngestStats, Pipeline, RawRecord, _BatchWriter
from soc.spool import Spool, spool_source
from soc.store.base import EncodedBatch, SearchQuery, StoreUnavailable, WriteResult
from soc.store.sqlite import SQLiteStore

BATCH = 100  # events per pipeline batch in these tests
BATCHES = 20


class RecordingStore(SQLiteStore):
    """The embedded store, slowed down so that batches queue up behind a write; notes the rows of every write."""

    def __init__(self, path: Path, delay: float = 0.05) -> None:
        super().__init__(path)
        self.delay = delay
        self.writes: list[int] = []  # rows per write_encoded call (one transaction each)
        self.fail: BaseException | None = None  # raised by the next write instead of writing
        self.unavailable = 0  # the next this many writes raise StoreUnavailable

    def write_encoded(self, encoded: EncodedBatch) -> WriteResult:
        time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        if self.unavailable:
            self.unavailable -= 1
            raise StoreUnavailable("switched off by the test")
        self.writes.append(len(encoded.payload))
        return super().write_encoded(encoded)

    def ids_in_rowid_order(self) -> list[str]:
        return [doc_id for (doc_id,) in self._db.execute("SELECT id FROM events ORDER BY rowid")]


class PlainStore:
    """A store without ``encode``/``write_encoded``: the writer joins the (id, event) batches and calls ``write``."""

    def __init__(self, inner: SQLiteStore, delay: float = 0.05) -> None:
        self.inner = inner
        self.delay = delay
        self.writes: list[int] = []

    def write(self, docs: list[tuple[str, Event]]) -> WriteResult:
        time.sleep(self.delay)
        self.writes.append(len(docs))
        return self.inner.write(docs)

    def __getattr__(self, name: str) -> Any:  # reading (count, search, close) goes to the embedded store
        if name in ("encode", "write_encoded"):
            raise AttributeError(name)
        return getattr(self.inner, name)


def _records(batches: int = BATCHES, bad_every: int | None = 50) -> list[RawRecord]:
    """JSON lines in file order; after every ``bad_every``-th one a line that is not JSON (dead-lettered)."""
    records = []
    for n in range(batches * BATCH):
        records.append(RawRecord(f"file:/test:{n}", json.dumps(
            {"@timestamp": "2026-11-20T03:00:00Z", "message": f"n{n}"}).encode()))
        if bad_every is not None and n % bad_every == 0:
            records.append(RawRecord(f"file:/test:bad{n}", f"not json {n} {{".encode()))
    return records


def _pipeline(tmp_path: Path, store: Any, **kwargs: Any) -> tuple[Pipeline, DeadLetterStore]:
    dead = DeadLetterStore(tmp_path / "dead.db")
    return Pipeline(store, dead, Enricher(RegisterIndex()), batch_size=BATCH, retry_seconds=0, **kwargs), dead


@pytest.fixture
def cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """A cap of 2½ batches: groups of two, the third taken while forming the group is held over for the next."""
    monkeypatch.setattr(pipeline_module, "GROUP_COMMIT_ROWS", 250)
    return 250


def test_waiting_batches_are_written_in_fewer_capped_transactions_in_order_once(tmp_path: Path, cap: int) -> None:
    store = RecordingStore(tmp_path / "events.db")
    metrics = SocMetrics()
    seen: list[int] = []
    pipeline, dead = _pipeline(tmp_path, store, metrics=metrics, source="file",
                               after_write=lambda batch: seen.append(len(batch)))
    records = _records()
    try:
        stats = pipeline.run(records, "json")
        expected = [event_id(r.source_key, r.raw) for r in records if b"not json" not in r.raw]
        assert len(store.writes) < BATCHES  # batches waited for the slow writer and were grouped
        assert max(store.writes) > BATCH and max(store.writes) <= cap
        assert sum(store.writes) == len(expected) == BATCHES * BATCH
        assert seen == store.writes  # detection sees each group once, as written
        assert store.ids_in_rowid_order() == expected  # every event once, rowids in file order
        assert store.count(SearchQuery()) == stats.stored == len(expected)
        bad = len(records) - len(expected)
        assert dead.count() == stats.dead_lettered == bad  # the dead letters of every grouped batch
        totals = metrics.ingest_totals()["file"]  # received counted at submit, the rest per group written
        assert (totals["received"], totals["parsed"], totals["stored"], totals["dead_lettered"]) == \
            (len(records), len(expected), len(expected), bad)
    finally:
        store.close()
        dead.close()


def test_store_without_encoding_gets_joined_batches(tmp_path: Path, cap: int) -> None:
    inner = SQLiteStore(tmp_path / "events.db")
    store = PlainStore(inner)
    pipeline, dead = _pipeline(tmp_path, store)
    records = _records(bad_every=None)
    try:
        pipeline.run(records, "json")
        assert len(store.writes) < BATCHES and max(store.writes) <= cap and sum(store.writes) == len(records)
        ids = [doc_id for (doc_id,) in inner._db.execute("SELECT id FROM events ORDER BY rowid")]
        assert ids == [event_id(r.source_key, r.raw) for r in records]
    finally:
        inner.close()
        dead.close()


def test_rerun_stores_nothing_twice(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "events.db", delay=0.01)
    pipeline, dead = _pipeline(tmp_path, store)
    records = _records()
    try:
        first = pipeline.run(records, "json")
        second = pipeline.run(records, "json")
        assert first.stored == BATCHES * BATCH and second.stored == 0 and second.duplicates == BATCHES * BATCH
        assert store.count(SearchQuery()) == BATCHES * BATCH
    finally:
        store.close()
        dead.close()


def test_a_group_is_retried_whole_while_the_store_is_unavailable(tmp_path: Path, cap: int) -> None:
    store = RecordingStore(tmp_path / "events.db")
    store.unavailable = 2
    pipeline, dead = _pipeline(tmp_path, store)
    pipeline.retry_seconds = 30.0
    records = _records()
    try:
        stats = pipeline.run(records, "json")
        assert stats.stored == BATCHES * BATCH and stats.duplicates == 0
        assert store.ids_in_rowid_order() == [event_id(r.source_key, r.raw) for r in records
                                              if b"not json" not in r.raw]
        assert max(store.writes) <= cap
    finally:
        store.close()
        dead.close()


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), StoreUnavailable("down for good")])
def test_a_store_error_in_a_group_is_raised_to_the_caller(tmp_path: Path, error: Exception) -> None:
    store = RecordingStore(tmp_path / "events.db")
    store.fail = error
    pipeline, dead = _pipeline(tmp_path, store)
    try:
        with pytest.raises(type(error), match=str(error)):
            pipeline.run(_records(), "json")
        assert store.writes == [] and store.count(SearchQuery()) == 0
    finally:
        store.close()
        dead.close()


class GatedStore(RecordingStore):
    """Holds the first write until the test opens the gate, so that everything submitted meanwhile waits."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, delay=0)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write_encoded(self, encoded: EncodedBatch) -> WriteResult:
        self.entered.set()
        self.gate.wait(10)
        return super().write_encoded(encoded)


def test_batches_taken_with_the_end_are_written(tmp_path: Path) -> None:
    """The end (None) is queued right behind the waiting batches: the group that takes it is written, then the
    thread stops."""
    store = GatedStore(tmp_path / "events.db")
    pipeline, dead = _pipeline(tmp_path, store)
    stats = IngestStats()
    docs = [(RawRecord(f"k{n}", json.dumps({"@timestamp": "2026-11-20T03:00:00Z", "message": f"m{n}"}).encode()))
            for n in range(25)]
    events = [pipeline.to_event(r, "json") for r in docs]
    try:
        writer = _BatchWriter(pipeline, stats, depth=8)
        with writer:
            writer.submit([events[0]], [])  # type: ignore[list-item]
            assert store.entered.wait(10)
            for at in range(1, 25, 4):
                writer.submit(events[at:at + 4], [("k-dead", f"dead {at}", str(at).encode())])  # type: ignore[arg-type]
            threading.Timer(0.2, store.gate.set).start()  # __exit__ queues the end behind them, then waits
        assert store.writes == [1, 24]
        assert stats.stored == 25 and stats.dead_lettered == 6 and dead.count() == 6
        assert store.ids_in_rowid_order() == [doc_id for doc_id, _ in events]
    finally:
        store.close()
        dead.close()


def test_encoded_batches_join_in_order() -> None:
    parts = [EncodedBatch([1, 2], [("a", "bad")]), EncodedBatch([]), EncodedBatch([3], [("b", "x")])]
    joined = EncodedBatch.join(parts)
    assert joined.payload == [1, 2, 3] and joined.rejected == [("a", "bad"), ("b", "x")]
    assert EncodedBatch.join([]).payload == []


def test_spool_consumer_stores_interleaved_senders_of_one_origin_in_one_transaction(tmp_path: Path) -> None:
    """Syslog from many senders arrives interleaved: one short run of records per sender. The consumer stores the
    runs of one origin together; metrics per origin and the spool checkpoint stay exact."""
    store = RecordingStore(tmp_path / "events.db", delay=0)
    pipeline, dead = _pipeline(tmp_path, store)
    metrics = SocMetrics()
    spool = Spool(tmp_path / "spool")
    records = []
    for n in range(300):
        origin = f"udp:198.18.0.{n % 30}" if n < 200 else ("tcp:198.18.1.1" if n % 2 else "tcp:198.18.1.2")
        records.append((spool_source("json", origin), json.dumps(
            {"@timestamp": "2026-11-20T03:00:00Z", "message": f"n{n}"}).encode()))
    records.append((spool_source("json", "http:test"), b"not json {"))
    end = spool.append(records)
    consumer = SpoolConsumer(spool, pipeline, metrics, batch_records=1000)
    try:
        assert consumer.drain_once() == len(records)
        assert store.writes == [200, 100]  # udp from 30 senders, then tcp from 2: one transaction each
        assert spool.checkpoint() == end
        assert store.count(SearchQuery()) == 300 and dead.count() == 1
        totals = metrics.ingest_totals()
        assert (totals["udp"]["stored"], totals["tcp"]["stored"], totals["http"]["dead_lettered"]) == (200, 100, 1)
        assert [m for (m,) in store._db.execute("SELECT message FROM events ORDER BY rowid")] == \
            [f"n{n}" for n in range(300)]
        assert consumer.drain_once() == 0
    finally:
        store.close()
        dead.close()


class ChunkRecordingStore(RecordingStore):
    """Also notes how many events each ``encode`` call gets and refuses to encode a message "unencodable"."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.encoded_sizes: list[int] = []

    def encode(self, docs: list[tuple[str, Event]]) -> EncodedBatch:
        self.encoded_sizes.append(len(docs))
        kept = [(i, e) for i, e in docs if e.get("message") != "unencodable"]
        encoded = super().encode(kept)
        encoded.rejected.extend((i, "cannot encode") for i, e in docs if e.get("message") == "unencodable")
        return encoded


def test_without_after_write_events_are_encoded_early_and_grouped_in_order_once(tmp_path: Path, cap: int) -> None:
    store = ChunkRecordingStore(tmp_path / "events.db")
    pipeline, dead = _pipeline(tmp_path, store)
    records = _records()
    try:
        stats = pipeline.run(records, "json")
        expected = [event_id(r.source_key, r.raw) for r in records if b"not json" not in r.raw]
        assert max(store.encoded_sizes) == pipeline_module.ENCODE_CHUNK  # encoded a few at a time, as parsed
        assert sum(store.encoded_sizes) == len(expected)
        assert len(store.writes) < BATCHES and max(store.writes) <= cap  # still grouped per transaction
        assert store.ids_in_rowid_order() == expected
        assert stats.stored == len(expected) and dead.count() == stats.dead_lettered == len(records) - len(expected)
    finally:
        store.close()
        dead.close()


def test_documents_refused_early_are_dead_lettered_with_their_raw_record(tmp_path: Path) -> None:
    """Refused when encoded or by the database: the dead letter keeps the record as read; the rest is stored."""
    store = ChunkRecordingStore(tmp_path / "events.db")
    store._db.execute("CREATE TRIGGER refuse BEFORE INSERT ON events WHEN new.message = 'poison' "
                      "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END")
    pipeline, dead = _pipeline(tmp_path, store)
    messages = ["ok"] * 40 + ["unencodable", "poison"] + ["ok"] * 40
    records = [RawRecord(f"file:/t:{n}", json.dumps({"@timestamp": "2026-11-20T03:00:00Z", "message": m,
                                                       "n": n}).encode()) for n, m in enumerate(messages)]
    try:
        stats = pipeline.run(records, "json")
        assert (stats.stored, stats.dead_lettered) == (80, 2)
        reasons = {letter.raw: letter.reason for letter in dead.latest()}
        assert len(reasons) == 2 and reasons[records[40].raw] == "store refused: cannot encode"
        assert "poisoned row" in reasons[records[41].raw]
        assert store.count(SearchQuery()) == 80
    finally:
        store.close()
        dead.close()
