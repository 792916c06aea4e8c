"""Drains the spool: detection first, then the store, each with its own durable place in the spool.

Without detection one thread reads a batch, parses, enriches and stores it, then moves the checkpoint.

With detection, alerts never wait for the store. Two threads share the work:

- the **detection reader** reads from the ``detected`` cursor, parses and enriches, evaluates the rules, records the
  alerts, moves the cursor, then offers the parsed batch to the store writer (a bounded hand-off: when the store
  lags and the hand-off is full the batch is dropped, and the writer parses those records again from the spool);
- the **store writer** stores everything before the detected cursor (the hand-off's batch when it holds the one
  starting where the writer stands, else records read from the spool) and then moves the checkpoint.

Crash and replay: the checkpoint never passes the detected cursor, so a segment is dropped only once both are past
it. Each event is detected once: before recording a batch's alerts the reader saves, with the cursor, the batch's
end and its first detection; on restart, if that detection is in the alert database the record committed and the
batch is skipped, otherwise it is evaluated again (and rule hits are keyed by event id besides). Correlation windows
live in memory: a restart starts them empty.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING

from soc.metrics import SocMetrics
from soc.pipeline import Pipeline, Prepared, ingest_gc, short_switch_interval
from soc.spool import Position, Spool, SpooledRecord, source_format, source_origin, source_sender
from soc.store.base import StoreUnavailable

if TYPE_CHECKING:
    from soc.alerts.service import Detection
    from soc.alerts.stage import DetectionStage

log = logging.getLogger("yunshu.soc.consumer")
DETECTED = "detected"  # the spool cursor of the detection reader
STORE_BATCH_WITH_DETECTION = 1000  # records the store writer reads from the spool at once while detection runs
DETECTION_LAG_BYTES = 256 * 1024  # the store writer pauses while detection is further behind the spool's end


@dataclass
class ParsedBatch:
    """Spool records [start, end) parsed and enriched, grouped by source in spool order."""

    start: Position
    end: Position
    groups: list[tuple[str, Prepared]]

    @property
    def records(self) -> int:
        return sum(prepared.read for _, prepared in self.groups)


class Handoff:
    """Parsed batches on their way from the detection reader to the store writer, bounded by records held."""

    def __init__(self, max_records: int):
        self.max_records = max_records
        self._lock = threading.Lock()
        self._batches: deque[ParsedBatch] = deque()
        self._held = 0

    def offer(self, batch: ParsedBatch) -> bool:
        """Hold the batch unless that would exceed the bound (then the writer reads the spool instead)."""
        with self._lock:
            if self._held + batch.records > self.max_records and self._batches:
                return False
            self._batches.append(batch)
            self._held += batch.records
            return True

    def take(self, start: Position) -> tuple[ParsedBatch | None, Position | None]:
        """The held batch starting at ``start`` (older ones are discarded); else None and where the next held
        batch starts (None when none is held)."""
        with self._lock:
            while self._batches and self._batches[0].start < start:
                self._held -= self._batches.popleft().records
            if self._batches and self._batches[0].start == start:
                batch = self._batches.popleft()
                self._held -= batch.records
                return batch, None
            return None, self._batches[0].start if self._batches else None

    @property
    def held(self) -> int:
        return self._held


def _by_origin(groups: list[tuple[str, Prepared]]) -> list[tuple[str, Prepared]]:
    """The groups of a batch, neighbours of the same origin (``udp``, ``tcp``, ``http``: what the metrics count by)
    joined, in spool order. Records from many senders arrive interleaved, so a batch of syslog holds many short runs
    of one source each; joined, they are stored in one transaction instead of one each."""
    joined: list[tuple[str, Prepared]] = []
    for origin, runs in groupby(groups, key=lambda group: source_origin(group[0])):
        parts = [prepared for _, prepared in runs]
        if len(parts) == 1:
            joined.append((origin, parts[0]))
        else:
            joined.append((origin, Prepared(events=[e for p in parts for e in p.events],
                                            dead=[d for p in parts for d in p.dead], read=sum(p.read for p in parts))))
    return joined


def _position(text: str) -> Position:
    segment, offset = text.split(":")
    return Position(int(segment), int(offset))


class SpoolConsumer:
    """Background threads draining the spool into the rules (if any) and the store (see the module docstring)."""

    def __init__(self, spool: Spool, pipeline: Pipeline, metrics: SocMetrics | None = None,
                 batch_records: int = 5000, retry_seconds: float = 1.0, detection: DetectionStage | None = None,
                 handoff_records: int = 50_000):
        self.spool = spool
        self.pipeline = pipeline
        self.metrics = metrics or SocMetrics()
        self.batch_records = batch_records
        self.retry_seconds = retry_seconds
        self.detection = detection
        self.handoff = Handoff(handoff_records)
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._unrecorded: tuple[ParsedBatch, list[Detection]] | None = None  # detected, alerts not yet committed
        self._detected = self._resume_detection() if detection is not None else None
        self._threads = [threading.Thread(target=self._store_loop, name="soc-consumer", daemon=True)]
        if detection is not None:
            self._threads.append(threading.Thread(target=self._detect_loop, name="soc-detect", daemon=True))
        self._settings = ExitStack()  # process-wide settings held while the threads run

    def start(self) -> None:
        # the store thread needs the GIL back after every SQLite statement, the receivers after every read: while the
        # consumer runs, a thread holding the GIL hands it over after at most INGEST_SWITCH_INTERVAL, not 5 ms
        self._settings.enter_context(short_switch_interval())
        # parsed batches are held across the rules and in the hand-off for as long as the consumer runs: with the
        # collector's thresholds back at their defaults between two batches, every pause had the next allocations
        # walk the batches held (stage B at 20,000 events/s: see README, "GC held")
        self._settings.enter_context(ingest_gc())
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._progress:
            self._progress.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        self._settings.close()

    def _parse(self, records: list[SpooledRecord]) -> list[tuple[str, Prepared]]:
        groups = [(source, self.pipeline.prepare(group, source_format(source), source_sender(source)))
                  for source, group in groupby(records, key=lambda r: r.source)]
        for source, prepared in groups:  # a dead letter names the sender (the spool place goes with its segment)
            if prepared.dead:
                prepared.dead = [(f"{source} {key}", reason, raw) for key, reason, raw in prepared.dead]
        return groups

    # --- detection ------------------------------------------------------------------------------------------

    @property
    def detected(self) -> Position | None:
        """Everything before this position has been through the rules (None when detection is off)."""
        return self._detected

    def _resume_detection(self) -> Position:
        """Where detection goes on after a restart: its cursor, past a batch whose alerts were committed."""
        checkpoint = self.spool.checkpoint()
        saved = self.spool.cursor(DETECTED)
        if saved is None:
            return checkpoint  # detection newly switched on: it starts where the store stands
        position, note = saved
        if note:
            pending = json.loads(note)
            assert self.detection is not None
            if self.detection.recorded(pending["rule_id"], pending["event_id"]):
                position = _position(pending["end"])
                log.info("detection resumes after a batch whose alerts were recorded before the restart")
            self.spool.set_cursor(DETECTED, position)
        return min(max(position, checkpoint), self.spool.end())  # (past the end only if the disk lost appends)

    def detect_once(self) -> int:
        """Detect on one batch from the detected cursor; returns how many records were consumed."""
        assert self.detection is not None and self._detected is not None
        if self._unrecorded is not None:  # recording failed last time: record again, do not detect twice
            batch, found = self._unrecorded
            self._record(batch, found)
            return batch.records
        start = self._detected
        records, end = self.spool.read(start, self.batch_records)
        if not records:
            if end != start:
                self._advance(ParsedBatch(start, end, []))  # moved into a newer segment
            return 0
        batch = ParsedBatch(start, end, self._parse(records))
        found = self.detection.detect([e for _, prepared in batch.groups for e in prepared.events])
        self._unrecorded = (batch, found)
        self._record(batch, found)
        return len(records)

    def _record(self, batch: ParsedBatch, found: list[Detection]) -> None:
        assert self.detection is not None
        if found:
            first = found[0]
            note = json.dumps({"end": f"{batch.end.segment}:{batch.end.offset}", "rule_id": first.rule_id,
                               "event_id": first.event_id})
            self.spool.set_cursor(DETECTED, batch.start, note)
            self.detection.record(found)
        self._advance(batch)
        # only now: should moving the cursor fail (a full disk), the retry records again (nothing twice) rather than
        # evaluate the batch again (its events would count twice in the correlation windows)
        self._unrecorded = None

    def _advance(self, batch: ParsedBatch) -> None:
        self.spool.set_cursor(DETECTED, batch.end)
        if batch.groups:
            self.handoff.offer(batch)
        with self._progress:
            self._detected = batch.end
            self._progress.notify_all()

    def _detect_loop(self) -> None:
        while not self._stop.is_set():
            try:
                consumed = self.detect_once()
                if consumed == 0 and self._detected is not None:
                    self.spool.wait_for_data(self._detected, timeout=0.5)
            except Exception:  # e.g. the alert database is unavailable: keep the batch and try again
                log.exception("detection failed; retrying")
                self._stop.wait(self.retry_seconds)

    # --- storing --------------------------------------------------------------------------------------------

    def drain_once(self) -> int:
        """Store one batch; returns how many records were consumed (0 when nothing is ready)."""
        start = self.spool.checkpoint()
        limit = self._detected
        if limit is not None and start >= limit:
            return 0
        batch, next_held = self.handoff.take(start) if limit is not None else (None, None)
        if batch is None:
            until = min((p for p in (limit, next_held) if p is not None), default=None)
            # with detection on, small store batches: a batch holds the interpreter while it is prepared
            size = self.batch_records if limit is None else min(self.batch_records, STORE_BATCH_WITH_DETECTION)
            records, end = self.spool.read(start, size, until)
            if not records:
                if end != start:
                    self.spool.commit(end)  # moved into a newer segment
                return 0
            batch = ParsedBatch(start, end, self._parse(records))
        done = [(origin, self.pipeline.store_prepared(prepared)) for origin, prepared in _by_origin(batch.groups)]
        self.spool.commit(batch.end)
        # counted once the whole batch is stored: after StoreUnavailable in a later group the batch is stored again
        # from its start, and its first groups then come back as duplicates (stored by the failed attempt)
        for origin, stats in done:
            self.metrics.count_stored(origin, stats.read, stats.stored + stats.duplicates, stats.dead_lettered)
        self.metrics.backlog.set(self.spool.backlog_bytes())
        return batch.records

    def _wait_for_work(self) -> None:
        if self._detected is None:
            self.spool.wait_for_data(self.spool.checkpoint(), timeout=0.5)
            return
        with self._progress:
            if not self._stop.is_set() and self.spool.checkpoint() >= self._detected:
                self._progress.wait(0.5)

    def detection_lag_bytes(self) -> int:
        """Spooled bytes not yet through the rules (0 when detection is off)."""
        detected = self._detected
        if detected is None:
            return 0
        end = self.spool.end()
        return end.offset - detected.offset if end.segment == detected.segment else self.spool.segment_bytes

    def _store_loop(self) -> None:
        while not self._stop.is_set():
            if self.detection_lag_bytes() > DETECTION_LAG_BYTES:
                # alerts first: while detection is behind, the store leaves it the GIL (the spool holds the rest)
                self._stop.wait(0.05)
                continue
            try:
                if self.drain_once() == 0:
                    self._wait_for_work()
            except StoreUnavailable as exc:  # keep everything in the spool and try again
                log.warning("event store unavailable, events stay in the spool: %s", exc)
                self._stop.wait(self.retry_seconds)
            except Exception:  # a bug must not silently stop ingestion: log it and keep going
                log.exception("spool consumer failed; retrying")
                self._stop.wait(self.retry_seconds)
