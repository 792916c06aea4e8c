"""The embedded store's writes in a process of their own (``SQLiteStore.writes_in_child``): results, duplicates and
refused documents as in one process, the side index kept up, a killed child replaced, file imports large enough
written through it."""

from __future__ import annotations

import io
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import soc.service
from soc.deadletter import DeadLetterStore
from soc.ecs import Event
from soc.enrich import Enricher, RegisterIndex
from soc.parsers import ParseContext
from soc.service import Soc, ingest_files
from soc.store import writer_process
from soc.store.base import EncodedBatch, SearchQuery, StoreUnavailable
from soc.store.sqlite import SQLiteStore
from soc.store.writer_process import (
    WRITER_NICE,
    PackedRows,
    WriterProcess,
    read_frame,
    request_of,
    rows_of,
    send_frame,
    serve,
)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _docs(first: int, count: int) -> list[tuple[str, Event]]:
    return [(f"doc-{i:06d}", {"@timestamp": (NOW - timedelta(seconds=i)).isoformat(), "event": {"dataset": "test"},
                              "host": {"name": f"web-{i % 3}"}, "source": {"ip": f"10.0.{i % 7}.{i % 250 + 1}"},
                              "message": f"login failed for user{i % 5} attempt {i}"})
            for i in range(first, first + count)]


def _child_pid(store: SQLiteStore) -> int:
    child = store._child._child  # type: ignore[union-attr]
    assert child is not None
    return child.pid


def test_writes_in_child_store_like_in_process(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    try:
        with store.writes_in_child():
            first = store.write(_docs(0, 500))
            pid = _child_pid(store)
            # behind this process on the CPUs (parsing is the critical path)
            assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + WRITER_NICE)
            again = store.write(_docs(250, 500))  # half of them stored already
            bad = store.encode([("bad", {"@timestamp": "not a time", "message": "x"}), *_docs(2000, 2)])
            refused = store.write_encoded(bad)
        assert pid != os.getpid() and store._child is None
        assert (first.created, first.duplicates) == (500, 0)
        assert (again.created, again.duplicates) == (250, 250)
        assert refused.created == 2 and [doc_id for doc_id, _ in refused.rejected] == ["bad"]
        assert store.count(SearchQuery()) == 752
        store.wait_indexed()
        assert store.text_index_lag() == 0
        found = store.search(SearchQuery(text="attempt 499", where={"host.name": "web-1"}, limit=10))
        assert [event["message"] for _, event in found.hits] == ["login failed for user4 attempt 499"]
    finally:
        store.close()


def test_a_killed_child_is_reported_unavailable_and_replaced(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    try:
        with store.writes_in_child():
            store.write(_docs(0, 100))
            dead = store._child._child  # type: ignore[union-attr]
            os.kill(_child_pid(store), signal.SIGKILL)
            with pytest.raises(StoreUnavailable, match="writer process ended"):
                store.write(_docs(100, 100))
            assert dead is not None and dead.stdin.closed and dead.stdout.closed  # type: ignore[union-attr]
            retried = store.write(_docs(100, 100))  # a new child
        assert retried.created == 100
        assert store.count(SearchQuery()) == 200
    finally:
        store.close()


def test_child_loop_replies_per_request_and_ends_with_its_input(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    batches = [store.encode(_docs(0, 10)), store.encode(_docs(5, 10))]
    packed = EncodedBatch(payload=PackedRows.of(store.encode(_docs(15, 3)).payload))
    packed.extend(EncodedBatch(payload=store.encode(_docs(18, 2)).payload))  # a list of rows joins packed
    store.close()
    requests = io.BytesIO()
    for batch in [*batches, packed]:
        send_frame(requests, request_of(batch))
    requests.seek(0)
    replies = io.BytesIO()
    serve(str(tmp_path / "events.db"), requests, replies)
    replies.seek(0)
    answers = []
    while (frame := read_frame(replies)) is not None:
        answers.append(writer_process._loads(frame))
    assert answers == [("written", 10, 0, []), ("written", 5, 5, []), ("written", 5, 0, [])]


def test_rows_are_packed_while_writing_in_child_and_written_either_way(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    try:
        plain = store.encode(_docs(0, 4))
        assert isinstance(plain.payload, list)
        with store.writes_in_child():
            first, second = store.encode(_docs(4, 3)), store.encode(_docs(7, 2))
            assert isinstance(first.payload, PackedRows) and len(first.payload) == 3
            assert [row[0] for row in first.payload] == [doc_id for doc_id, _ in _docs(4, 3)]
            listed = EncodedBatch.join([plain, first])  # a list payload takes the packed rows as rows
            assert isinstance(listed.payload, list)
            assert listed.payload == rows_of(plain.payload) + rows_of(first.payload)
            packed = EncodedBatch.join([first, plain])  # a packed payload packs the list's rows
            assert isinstance(packed.payload, PackedRows) and len(packed.payload) == 7
            assert list(packed.payload) == rows_of(first.payload) + plain.payload
            assert store.write_encoded(packed).created == 7
        assert store.write_encoded(second).created == 2  # packed while the child ran, written in this process
        assert store.count(SearchQuery()) == 9
    finally:
        store.close()


def test_frames_carry_what_marshal_cannot() -> None:
    value = ([("id", 1, b"\x00doc", None)], [("x", "reason")], Decimal("1.5"))
    assert writer_process._loads(writer_process._dumps(value)) == value
    assert writer_process._dumps([1, "a"]).startswith(b"M")
    shared = "system.auth" * 3  # one text in two places: written out twice (format 2 has no references)
    assert writer_process._dumps([(shared, shared)]).count(shared.encode()) == 2
    assert writer_process._loads(writer_process._dumps([(shared, shared)])) == [(shared, shared)]
    assert read_frame(io.BytesIO(b"\x05\x00\x00\x00\x00\x00\x00\x00abc")) is None  # cut off


def test_large_file_imports_write_through_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "auth.log"
    log.write_text("".join(f"Dec  3 08:{i // 60 % 60:02d}:{i % 60:02d} host sshd[{i}]: Failed password for root "
                           f"from 10.0.0.{i % 200 + 1} port {40000 + i} ssh2\n" for i in range(3000)), encoding="utf-8")
    writes: list[int] = []
    real_write = WriterProcess.write

    def counted(self: WriterProcess, encoded: EncodedBatch):  # type: ignore[no-untyped-def]
        writes.append(len(encoded.payload))
        return real_write(self, encoded)

    monkeypatch.setattr(WriterProcess, "write", counted)
    store = SQLiteStore(tmp_path / "soc" / "events.db")
    soc_ = Soc(store=store, deadletters=DeadLetterStore(tmp_path / "soc" / "deadletter.db"),
               enricher=Enricher(RegisterIndex()), ctx=ParseContext(hostname="host"))
    try:
        monkeypatch.setattr(soc.service, "CHILD_WRITER_MIN_BYTES", log.stat().st_size + 1)
        small = ingest_files(soc_, [str(log)], "sshd")  # under the threshold: this process writes
        assert writes == [] and small.stored == 3000
        monkeypatch.setattr(soc.service, "CHILD_WRITER_MIN_BYTES", log.stat().st_size)
        again = ingest_files(soc_, [str(log)], "sshd")
        assert sum(writes) == 3000 and (again.stored, again.duplicates) == (0, 3000)
        assert json.loads(json.dumps(again.as_dict()))["read"] == 3000
        assert store.count(SearchQuery(where={"user.name": "root"})) == 3000
    finally:
        soc_.close()
