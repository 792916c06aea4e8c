"""Drains the spool: detection first, then the store, each with its own durable place in the spool.

Without detection one thread reads a batch, parses, enriches and stores it, then moves the checkpoint.

With detection, alerts never wait for the store. Two threads share the work:

- the **detection reader** (``soc.detection_reader``) reads from the ``detected`` cursor, parses and enriches,
  evaluates the rules, records the alerts, moves the cursor, then offers the parsed batch to the store writer (a
  bounded hand-off: when the store lags and the hand-off is full the batch is dropped, and the writer parses those
  records again from the spool);
- the **store writer** stores everything before the detected cursor (the hand-off's batch when it holds the one
  starting where the writer stands, else records read from the spool) and then moves the checkpoint.

The detection reader can instead run in a process of its own (module ``soc.detection_process``, setting
``soc.detection_process``): it then has an interpreter and a CPU to itself, reports its cursor here, and the store
writer parses everything it stores.

Crash and replay: the checkpoint never passes the detected cursor, so a segment is dropped only once both are past
it; how each event is detected once is told in ``soc.detection_reader``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from itertools import groupby
from typing import TYPE_CHECKING, Protocol

from soc.detection_reader import BATCH_RECORDS, DETECTED, DetectionReader, ParsedBatch, parse_records
from soc.metrics import SocMetrics
from soc.pipeline import Pipeline, Prepared, ingest_gc, short_switch_interval
from soc.spool import Position, Spool, source_origin
from soc.store.base import StoreUnavailable

if TYPE_CHECKING:
    from soc.alerts.stage import DetectionStage

log = logging.getLogger("yunshu.soc.consumer")
__all__ = ["DETECTED", "Handoff", "ParsedBatch", "RemoteDetection", "SpoolConsumer"]
STORE_BATCH_WITH_DETECTION = 1000  # records the store writer reads from the spool at once while detection runs
DETECTION_LAG_BYTES = 256 * 1024  # the store writer pauses while detection is further behind the spool's end


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


class RemoteDetection(Protocol):
    """Detection running elsewhere (``soc.detection_process.DetectionProcess``): started with a callback it calls
    with the detected cursor each time that moves."""

    def start(self, on_detected: Callable[[Position], None]) -> None: ...

    def stop(self, timeout: float) -> None: ...


class SpoolConsumer:
    """Background threads draining the spool into the rules (if any) and the store (see the module docstring)."""

    def __init__(self, spool: Spool, pipeline: Pipeline, metrics: SocMetrics | None = None,
                 batch_records: int = BATCH_RECORDS, retry_seconds: float = 1.0,
                 detection: DetectionStage | None = None, handoff_records: int = 50_000,
                 remote_detection: RemoteDetection | None = None):
        self.spool = spool
        self.pipeline = pipeline
        self.metrics = metrics or SocMetrics()
        self.batch_records = batch_records
        self.retry_seconds = retry_seconds
        self.detection = detection
        self.remote_detection = remote_detection
        self.handoff = Handoff(handoff_records)
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._detected: Position | None = None
        self.reader: DetectionReader | None = None
        if detection is not None and remote_detection is not None:
            raise ValueError("detection runs here (detection=) or elsewhere (remote_detection=), not both")
        if detection is not None:
            self.reader = DetectionReader(spool, pipeline, detection, spool.end(), self._advanced, batch_records)
            self._detected = self.reader.detected
        elif remote_detection is not None:
            self._detected = self._saved_detection()
        self._threads = [threading.Thread(target=self._store_loop, name="soc-consumer", daemon=True)]
        if detection is not None:
            self._threads.append(threading.Thread(target=self._detect_loop, name="soc-detect", daemon=True))
        self._settings = ExitStack()  # process-wide settings held while the threads run

    def start(self) -> None:
        # the store thread needs the GIL back after every SQLite statement, the receivers after every read: while the
        # consumer runs, a thread holding the GIL hands it over after at most INGEST_SWITCH_INTERVAL, not 5 ms
        self._settings.enter_context(short_switch_interval())
        if self.reader is not None:
            # parsed batches are held across the rules and in the hand-off for as long as the consumer runs: with
            # the collector's thresholds back at their defaults between two batches, every pause had the next
            # allocations walk the batches held (stage B at 20,000 events/s, A/B: p99 0.83-1.9 s → 0.26-0.71 s)
            self._settings.enter_context(ingest_gc())
        if self.remote_detection is not None:
            self.remote_detection.start(self._remote_advanced)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._progress:
            self._progress.notify_all()
        if self.remote_detection is not None:
            self.remote_detection.stop(timeout)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        self._settings.close()

    # --- detection ------------------------------------------------------------------------------------------

    @property
    def detected(self) -> Position | None:
        """Everything before this position has been through the rules (None when detection is off)."""
        return self._detected

    def _saved_detection(self) -> Position:
        """Where the store writer may go up to before a detection process reports: the saved cursor (the process may
        resume past it, never before it), within the checkpoint and the spool's end."""
        saved = self.spool.cursor(DETECTED)
        checkpoint = self.spool.checkpoint()
        return min(max(saved[0] if saved else checkpoint, checkpoint), self.spool.end())

    def detect_once(self) -> int:
        """Detect on one batch from the detected cursor; returns how many records were consumed."""
        assert self.reader is not None
        return self.reader.detect_once()

    def _advanced(self, batch: ParsedBatch) -> None:
        if batch.groups:
            self.handoff.offer(batch)
        self._remote_advanced(batch.end)

    def _remote_advanced(self, end: Position) -> None:
        with self._progress:
            self._detected = end
            self._progress.notify_all()

    def _detect_loop(self) -> None:
        assert self.reader is not None
        while not self._stop.is_set():
            try:
                if self.reader.detect_once() == 0:
                    self.spool.wait_for_data(self.reader.detected, timeout=0.5)
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
            # with detection on in this process, small store batches: a batch holds the interpreter while it is prepared
            size = (self.batch_records if limit is None or self.remote_detection is not None
                    else min(self.batch_records, STORE_BATCH_WITH_DETECTION))
            records, end = self.spool.read(start, size, until)
            if not records:
                if end != start:
                    self.spool.commit(end)  # moved into a newer segment
                return 0
            batch = ParsedBatch(start, end, parse_records(self.pipeline, records))
        done = [(origin, self.pipeline.store_prepared(prepared)) for origin, prepared in _by_origin(batch.groups)]
        self.spool.commit(batch.end)
        # counted once the whole batch is stored: after StoreUnavailable in a later group the batch is stored again
        # from its start, and its first groups then come back as duplicates (stored by the failed attempt)
        for origin, stats in done:
            self.metrics.count_stored(origin, stats.read, stats.stored + stats.duplicates, stats.dead_lettered)
        self.metrics.backlog.set(self.spool.backlog_bytes())
        lag = getattr(self.pipeline.store, "text_index_lag", None)  # the embedded store's
        if lag is not None:
            self.metrics.text_index_lag.set(lag())
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
        if end.segment == detected.segment:
            return max(0, end.offset - detected.offset)
        return self.spool.bytes_after(detected)

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
