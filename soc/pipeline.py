"""The ingest pipeline: raw records → parse → enrich → batched, idempotent writes; failures dead-lettered."""

from __future__ import annotations

import gc
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import IO, Any, NamedTuple

from soc.deadletter import DeadLetterStore
from soc.ecs import Event
from soc.metrics import SocMetrics, source_label
from soc.parsers import ParseContext
from soc.records import SourcedRecord, events_of, file_lines, record_event
from soc.store.base import EncodedBatch, EncodingStore, EventStore, StoreUnavailable

log = logging.getLogger("yunshu.soc.pipeline")

# Group commit. A store transaction costs much more per row when it is small (each one rewrites every index page it
# dirties: SQLite measured 75 µs/row at 2000 rows per transaction, 52 at 10000, 49 at 20000), so the writer thread
# writes the batches already waiting for it together, in one transaction of at most GROUP_COMMIT_ROWS events. The
# queue holds up to WRITER_QUEUE_DEPTH batches so that the parser can run that far ahead and groups can form (the
# events held: the queue's plus the group being written, under a hundred thousand). The queue is deep enough for the
# parser to run on while a commit waits on the disk (its fsync, a WAL checkpoint): with 8 batches of 2,000 the parser
# waited 3 s in a 1M-line import and ran at 43-44k events/s; with 16 to 64, 48-57k (2 CPUs, alternating runs,
# 2026-12-03; about 30 MB more held at 32).
GROUP_COMMIT_ROWS = 20_000
WRITER_QUEUE_DEPTH = 32
# Records a pipeline with nothing to run after the write parses and encodes at a time (``_EarlyEncoder``): encoded
# while in the CPU's caches and freed at once, a batch's events cost less than when thousands are held until the
# batch is full (A/B of Pipeline.run in one process, 300,000 corpus lines, the database write left out: 73 → 57 µs an
# event, median of six; chunks of 16 to 64 alike, 256 loses the gain).
ENCODE_CHUNK = 32


@dataclass
class IngestStats:
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        data = asdict(self)
        data["duration_s"] = round(self.duration_s, 3)
        return data


class RawRecord(NamedTuple):
    """One raw record and the durable place it came from (file offset, spool offset, …); a named tuple (one is
    made per line read, and a frozen dataclass costs about a microsecond more to build)."""

    source_key: str
    raw: bytes


# Cyclic-GC thresholds while ingesting. A batch of thousands of events (each a dozen dicts and lists) lives between
# parse and store write; with the default (700, 10, 10) those objects survive collection after collection and are
# traversed again and again, which halves ingest throughput. They hold no reference cycles: reference counting frees
# them, so collecting rarely while a batch is built costs nothing but a little memory. The young generation's
# threshold counts allocations net of frees: at 500,000 a batch of 5,000 events (≈ 150,000 containers) is freed
# before it triggers a collection. Measured in the running service at 20,000 events/s (2026-12-01): the detection
# reader's CPU for 200,000 events 16.5 → 14.3 s against (50,000, 20, 100), receipt → alert p99 11.9 → 9.6 s.
INGEST_GC_THRESHOLDS: tuple[int, int, int] = (500_000, 10, 100)
DEAD_LETTER_MAX_BYTES = 1024 * 1024  # bytes of one record a dead letter keeps (a file's line can be any length)
# Thread switch interval while a pipeline's writer thread runs beside its parsing thread. The writer needs the GIL
# back after every SQLite statement; with CPython's default of 5 ms it mostly waits for the parsing thread to yield:
# on two CPUs the 1M-line corpus went into the embedded store at 6,900 events/s, at 0.5 ms 10,500 and at 0.1 ms
# 11,000; on one core 6,900 either way (2026-12-01).
INGEST_SWITCH_INTERVAL = 0.0005


class _SharedSetting:
    """A process-wide setting changed while anyone needs it: the first user changes it, the last one out restores
    what was there before the first (nested and concurrent uses share one change)."""

    def __init__(self, read: Callable[[], Any], write: Callable[[Any], None], adjust: Callable[[Any], Any]):
        self._read, self._write, self._adjust = read, write, adjust
        self._lock = threading.Lock()
        self._users = 0
        self._saved: Any = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._saved = self._read()
                self._write(self._adjust(self._saved))
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._write(self._saved)
                    self._saved = None


# ``with ingest_gc():`` the GC thresholds are at least INGEST_GC_THRESHOLDS
ingest_gc = _SharedSetting(gc.get_threshold, lambda t: gc.set_threshold(*t),
                           lambda old: tuple(max(o, n) for o, n in zip(old, INGEST_GC_THRESHOLDS, strict=True)))
# ``with short_switch_interval():`` the thread switch interval is at most INGEST_SWITCH_INTERVAL
short_switch_interval = _SharedSetting(sys.getswitchinterval, sys.setswitchinterval,
                                       lambda old: min(old, INGEST_SWITCH_INTERVAL))


@dataclass
class Prepared:
    """Records parsed and enriched but not yet stored: the events, the dead letters, how many were read."""

    events: list[tuple[str, Event]] = field(default_factory=list)
    dead: list[tuple[str, str, bytes]] = field(default_factory=list)  # (source key, reason, raw)
    read: int = 0


class Pipeline:
    """Parses, enriches and stores records in batches; retries while the store is unavailable."""

    def __init__(
        self,
        store: EventStore,
        deadletters: DeadLetterStore,
        enrich: Callable[[Event], Event],
        ctx: ParseContext | None = None,
        *,
        batch_size: int = 2000,
        max_line_bytes: int = 65536,
        retry_seconds: float = 30.0,
        after_write: Callable[[list[tuple[str, Event]]], None] | None = None,
        metrics: SocMetrics | None = None,
        source: str = "file",
    ):
        self.store = store
        self.deadletters = deadletters
        self.enrich = enrich
        self.ctx = ctx or ParseContext()
        self.batch_size = batch_size
        self.max_line_bytes = max_line_bytes
        self.retry_seconds = retry_seconds
        self.after_write = after_write  # e.g. detection: sees every batch the store accepted
        # ``run`` counts what it reads and stores under ``source`` (once per batch); ``store_prepared`` does not
        # count, its caller (the spool consumer) does
        self.metrics = metrics
        self.source = source_label(source)

    def to_event(self, record: SourcedRecord, fmt: str,
                 sender: str | None = None) -> tuple[str, Event] | tuple[None, str]:
        """The (id, event) of a record, or (None, reason) when it cannot become one (see ``records.record_event``)."""
        return record_event(record, fmt, self.ctx, self.enrich, self.max_line_bytes, sender)

    @staticmethod
    def _dead_letter(record: SourcedRecord, reason: str) -> tuple[str, str, bytes]:
        """(source, reason, raw) of a record that cannot become an event: whole, up to DEAD_LETTER_MAX_BYTES (every
        frame the receivers take); of a longer one (a file's line can be any length) only those first bytes."""
        if len(record.raw) > DEAD_LETTER_MAX_BYTES:
            kept = record.raw[:DEAD_LETTER_MAX_BYTES]
            return record.source_key, f"{reason}; first {DEAD_LETTER_MAX_BYTES} bytes kept", kept
        return record.source_key, reason, record.raw

    def run(self, records: Iterable[RawRecord], fmt: str = "auto") -> IngestStats:
        """Process every record; returns the counts. Raises StoreUnavailable if the store stays down.

        Batches are written by a thread of their own while this one parses the next (the store's drivers release
        the GIL while they wait on SQLite or the network), at most WRITER_QUEUE_DEPTH batches behind; the batches
        waiting when the writer gets free are written together (group commit, see GROUP_COMMIT_ROWS). A store that
        can encode (``EncodingStore``: rows, JSON) has that done here too, so the writing thread mostly waits on the
        database without the GIL instead of competing with parsing for it; with nothing to run after the write, the
        events are encoded a few at a time as they are parsed and not held (``_EarlyEncoder``).
        """
        stats = IngestStats()
        started = time.perf_counter()
        early = (_EarlyEncoder(self.store.encode)
                 if self.after_write is None and isinstance(self.store, EncodingStore) else None)
        with ingest_gc(), short_switch_interval(), _BatchWriter(self, stats) as writer:
            self._run_chunks(iter(records), fmt, early, writer, stats)
        stats.duration_s = time.perf_counter() - started
        return stats

    def _run_chunks(self, records: Iterator[RawRecord], fmt: str, early: _EarlyEncoder | None, writer: _BatchWriter,
                    stats: IngestStats) -> None:
        """``run``'s loop: the records go ENCODE_CHUNK at a time through the compiled ``events_of`` (a record's turn
        of an interpreted loop, with its method calls, had cost about 0.4 µs); each chunk's events are encoded at once
        (``early``) or held until their batch is written; a batch is at most ``batch_size`` events."""
        batch: list[tuple[str, Event]] = []  # held events (without ``early``)
        dead: list[tuple[str, str, bytes]] = []
        ctx, enrich, max_line_bytes = self.ctx, self.enrich, self.max_line_bytes
        while True:
            events: list[tuple[str, Event]] = []
            failed: list[tuple[SourcedRecord, str]] = []
            refs: list[tuple[str, bytes]] | None = None if early is None else []
            pending = len(batch) if early is None else len(early.refs)
            chunk = islice(records, min(ENCODE_CHUNK, self.batch_size - pending))
            read = events_of(chunk, fmt, ctx, enrich, max_line_bytes, None, events, failed, refs)
            if not read:
                break
            stats.read += read
            dead.extend(self._dead_letter(record, reason) for record, reason in failed)
            if early is None:
                batch.extend(events)
            elif events:
                early.add(events, refs)  # type: ignore[arg-type]
            if pending + len(events) >= self.batch_size:
                self._submit(writer, early, batch, dead)
                batch, dead = [], []
            elif len(dead) >= self.batch_size:  # a long run of bad lines is not held until the next events
                writer.submit([], dead)
                dead = []
        self._submit(writer, early, batch, dead)

    @staticmethod
    def _submit(writer: _BatchWriter, early: _EarlyEncoder | None, batch: list[tuple[str, Event]],
                dead: list[tuple[str, str, bytes]]) -> None:
        """Hand a batch and its dead letters to the writer: the held events, or what ``early`` encoded."""
        if early is None:
            writer.submit(batch, dead)
        else:
            refs, encoded = early.take()
            writer.submit(refs, dead, encoded)

    def prepare(self, records: Iterable[SourcedRecord], fmt: str = "auto", sender: str | None = None) -> Prepared:
        """Parse and enrich records without storing them (see ``store_prepared``); ``sender`` as in ``to_event``."""
        prepared = Prepared()
        failed: list[tuple[SourcedRecord, str]] = []
        with ingest_gc():
            prepared.read = events_of(records, fmt, self.ctx, self.enrich, self.max_line_bytes, sender,
                                      prepared.events, failed)
        prepared.dead = [self._dead_letter(record, reason) for record, reason in failed]
        return prepared

    def store_prepared(self, prepared: Prepared) -> IngestStats:
        """Store a prepared batch and dead-letter what could not become events (what ``run`` does after parsing).

        The events are written in transactions of up to GROUP_COMMIT_ROWS (or ``batch_size`` if larger): the caller
        bounds what it prepares at once. The batch is left as it was, so a caller may retry it after StoreUnavailable.
        """
        stats = IngestStats(read=prepared.read)
        started = time.perf_counter()
        chunk = max(self.batch_size, GROUP_COMMIT_ROWS)
        for at in range(0, len(prepared.events), chunk):
            self._flush(prepared.events[at:at + chunk], [], stats)
        self._flush([], list(prepared.dead), stats)
        stats.duration_s = time.perf_counter() - started
        return stats

    def _flush(self, batch: list[tuple[str, Event]], dead: list[tuple[str, str, bytes]], stats: IngestStats,
               encoded: EncodedBatch | None = None) -> None:
        if batch:
            result = self._write_with_retry(batch, encoded)
            if self.after_write is not None:
                self.after_write(batch)
            stats.stored += result.created
            stats.duplicates += result.duplicates
            if result.rejected:  # (a dict of a group's 20,000 ids costs its writer thread a millisecond or two)
                by_id = dict(batch)
                for doc_id, reason in result.rejected:
                    dead.append((f"rejected:{doc_id}", f"store refused: {reason}", _original(by_id[doc_id])))
            batch.clear()
        if dead:
            self.deadletters.add_many(dead)
            stats.dead_lettered += len(dead)
            dead.clear()

    def _write_with_retry(self, batch: list[tuple[str, Event]],  # type: ignore[no-untyped-def]
                          encoded: EncodedBatch | None = None):
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.2
        while True:
            try:
                if encoded is not None:
                    return self.store.write_encoded(encoded)  # type: ignore[attr-defined]
                return self.store.write(batch)
            except StoreUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


def _original(item: Event | bytes) -> bytes:
    """What a dead letter keeps of a document the store refused: the raw record (early encoding keeps only that) or
    the event's ``event.original``."""
    if isinstance(item, bytes):
        return item
    return str(item.get("event", {}).get("original", "")).encode()


class _EarlyEncoder:
    """Encodes a batch's events a chunk (ENCODE_CHUNK records) at a time as they are parsed and keeps only (id, raw
    record) of each: for a pipeline whose store encodes (``EncodingStore``) and which runs nothing after the write."""

    def __init__(self, encode: Callable[[list[tuple[str, Event]]], EncodedBatch]):
        self.encode = encode
        self.refs: list[tuple[str, bytes]] = []  # (id, raw record): what a refused document is dead-lettered with
        self.encoded = EncodedBatch(payload=[])

    def add(self, events: list[tuple[str, Event]], refs: list[tuple[str, bytes]]) -> None:
        """Encode a chunk's events; ``refs``: their (id, raw record)."""
        self.encoded.extend(self.encode(events))
        self.refs.extend(refs)

    def take(self) -> tuple[list[tuple[str, bytes]], EncodedBatch]:
        """The batch so far, (refs, encoded), to submit; the encoder starts a new one."""
        refs, encoded = self.refs, self.encoded
        self.refs, self.encoded = [], EncodedBatch(payload=[])
        return refs, encoded


# events (or, encoded early, (id, raw record) pairs), dead letters, the store's encoding of the events
_Item = tuple[list[tuple[str, Any]], list[tuple[str, str, bytes]], EncodedBatch | None]


class _BatchWriter:
    """A thread writing a pipeline's batches in order; the first error is raised to the submitting thread.

    Group commit: with a batch the thread takes the batches already waiting behind it (without waiting for more),
    up to GROUP_COMMIT_ROWS events, and writes them in one store write (one transaction; retried whole while the store
    is unavailable, which is safe as ids are deterministic), then their dead letters together.
    """

    def __init__(self, pipeline: Pipeline, stats: IngestStats, depth: int | None = None,
                 group_rows: int | None = None):
        self.pipeline = pipeline
        self.stats = stats
        self.group_rows = GROUP_COMMIT_ROWS if group_rows is None else group_rows
        depth = WRITER_QUEUE_DEPTH if depth is None else depth
        self.queue: queue.Queue[_Item | None] = queue.Queue(maxsize=depth)
        self.encode = pipeline.store.encode if isinstance(pipeline.store, EncodingStore) else None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="ingest-writer", daemon=True)

    def __enter__(self) -> _BatchWriter:
        self.thread.start()
        return self

    def submit(self, batch: list[tuple[str, Any]], dead: list[tuple[str, str, bytes]],
               encoded: EncodedBatch | None = None) -> None:
        """Queue events and dead letters; the events are encoded here when the store encodes, unless ``encoded``
        comes with them (``_EarlyEncoder``: ``batch`` then holds (id, raw record) pairs)."""
        if self.error is not None:
            raise self.error
        if encoded is None and batch and self.encode is not None:
            encoded = self.encode(batch)
        if batch or dead:
            if self.pipeline.metrics is not None:
                self.pipeline.metrics.received.labels(self.pipeline.source).inc(len(batch) + len(dead))
            self.queue.put((batch, dead, encoded))

    def _work(self) -> None:
        held: _Item | None = None  # taken while forming a group it did not fit in: it starts the next one
        while (first := held if held is not None else self.queue.get()) is not None:
            group, held, ended = self._group(first)
            del first  # nothing of a written group stays referenced while the thread waits for the next
            if self.error is None:  # after an error, only drain what is submitted meanwhile
                try:
                    self._write(group)
                except BaseException as exc:  # handed to the submitting thread
                    self.error = exc
            del group
            if ended:
                return

    def _group(self, first: _Item) -> tuple[list[_Item], _Item | None, bool]:
        """``first`` and the items already waiting behind it, up to ``group_rows`` events; also the item taken that
        did not fit (it starts the next group) and whether the end (None) was taken (write the group, then stop)."""
        group, rows = [first], len(first[0])
        while rows < self.group_rows:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return group, None, True
            if rows + len(item[0]) > self.group_rows:
                return group, item, False
            group.append(item)
            rows += len(item[0])
        return group, None, False

    def _write(self, group: list[_Item]) -> None:
        """One store write for the group's events, then its dead letters (and those the store rejected)."""
        if len(group) == 1:
            batch, dead_letters, encoded = group[0]
        else:
            batch = [doc for events, _, _ in group for doc in events]
            dead_letters = [dead for _, deads, _ in group for dead in deads]
            parts = [part for events, _, part in group if events]  # every one encoded, or none (no encoding store)
            encoded = EncodedBatch.join([p for p in parts if p is not None]) if parts and None not in parts else None
        metrics, stats = self.pipeline.metrics, self.stats
        read, stored, dead = len(batch) + len(dead_letters), stats.stored, stats.dead_lettered
        self.pipeline._flush(batch, dead_letters, stats, encoded)
        if metrics is not None:
            metrics.count_stored(self.pipeline.source, read, stats.stored - stored, stats.dead_lettered - dead)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if kind is None and self.error is not None:
            raise self.error


QUIET_SECONDS = 2.0  # a file untouched this long is not being written
MAX_WAIT_SECONDS = 10.0  # how long an unterminated last line of a file being written may be waited for


def file_records(path: str, quiet_seconds: float = QUIET_SECONDS,
                 max_wait_seconds: float = MAX_WAIT_SECONDS) -> Iterator[RawRecord]:
    """The lines of a file with their byte offsets as durable keys (re-reading gives the same ids).

    Reading stops at the first line end at or past the file's size when it was opened, so a file that keeps
    growing is not followed. A last line without a newline is taken as it is when the file has been quiet for
    ``quiet_seconds``. While the file is being written it is waited for (up to ``max_wait_seconds``) to end; if
    it never does, it is left out and logged, for the next run to read whole, so that no cut-off half of a line
    is stored. (The loop over the lines is compiled: ``records.file_lines``.)
    """
    import os
    from pathlib import Path

    resolved = Path(path).resolve()
    # keys are hashed and stored as UTF-8: a file name that is not UTF-8 is written with \x escapes
    name = os.fsencode(resolved).decode("utf-8", "backslashreplace")

    def complete(fh: IO[bytes], raw: bytes, offset: int) -> bytes | None:
        whole = _last_line(fh, raw, quiet_seconds, max_wait_seconds)
        if whole is None:
            log.warning("file %s: the line at byte %d is still being written; left for the next run", name, offset)
        return whole

    return file_lines(resolved, f"file:{name}:", RawRecord, complete)


def _last_line(fh: IO[bytes], raw: bytes, quiet_seconds: float, max_wait_seconds: float) -> bytes | None:
    """``raw`` (read without its newline at the end of ``fh``) once whole: ended by a newline written meanwhile,
    or as it is when the file has been quiet for ``quiet_seconds``; None when it is still growing after
    ``max_wait_seconds``."""
    import os

    deadline = time.monotonic() + max_wait_seconds
    while True:
        raw += fh.readline()
        if raw[-1:] == b"\n":
            return raw
        quiet_for = time.time() - os.fstat(fh.fileno()).st_mtime
        if quiet_for >= quiet_seconds:
            return raw
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(quiet_seconds - quiet_for, 0.2, max(deadline - time.monotonic(), 0.0)))
