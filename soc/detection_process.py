"""The detection reader in a process of its own (``soc.detection_process: true``).

In the service's process the detection reader shares one interpreter lock with the receivers and the store writer;
here it has an interpreter, and on a machine with two CPUs or more a CPU, to itself. The parent tells the child how
far the spool is durable (it alone appends): the end is one shared 64-bit word (segment << 40 | offset, written
whole) and a byte on a wake pipe after each append. The child tells the parent how far it has detected (the store
writer never passes that) and what it counted, for /metrics (a one-way pipe: ``("detected", segment, offset,
metric operations)`` after each batch). Alerts go to the database from the child, as the thread records them. No
lock, event or condition is shared: a child killed while it held one would leave the parent's appends waiting for
ever. Should the child die, the parent starts another (after 1 s, doubling up to a minute while children die before
reporting), which resumes from the ``detected`` cursor as a restarted service does (``soc.detection_reader``). The
child ends when its wake pipe does: the parent closed it (stop) or is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import logging
import multiprocessing
import os
import reprlib
import select
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.settings import Settings
from soc.detection_reader import BATCH_RECORDS
from soc.metrics import SocMetrics
from soc.spool import Position, Spool, SpoolReader

log = logging.getLogger("yunshu.soc.detect")
REGISTER_RELOAD_SECONDS = 60.0  # as the service's maintenance reloads its register index
RESTART_MAX_SECONDS = 60.0  # the longest wait before another child, while children keep dying before reporting
OFFSET_BITS = 40  # the shared end: segment << OFFSET_BITS | offset (segments are 64 MiB; an offset fits in 40 bits)


def pack_position(position: Position) -> int:
    """A spool position as the one word the parent shares with the child."""
    if not 0 <= position.offset < 1 << OFFSET_BITS or not 0 <= position.segment < 1 << (63 - OFFSET_BITS):
        raise ValueError(f"spool position out of range for the shared end: {position}")
    return position.segment << OFFSET_BITS | position.offset


def unpack_position(word: int) -> Position:
    return Position(word >> OFFSET_BITS, word & ((1 << OFFSET_BITS) - 1))
MetricOp = tuple[str, tuple[str, ...], str, float]  # (SocMetrics attribute, label values, "inc" or "set", value)


class _RecordedMetric:
    """One metric of ``MetricsRecorder``: ``labels(...)``, ``inc`` and ``set`` are written down, not counted."""

    def __init__(self, name: str, ops: list[MetricOp], labels: tuple[str, ...] = ()):
        self.name, self.ops, self.label_values = name, ops, labels

    def labels(self, *values: str) -> _RecordedMetric:
        return _RecordedMetric(self.name, self.ops, tuple(str(v) for v in values))

    def inc(self, amount: float = 1.0) -> None:
        self.ops.append((self.name, self.label_values, "inc", float(amount)))

    def set(self, value: float) -> None:
        self.ops.append((self.name, self.label_values, "set", float(value)))


class MetricsRecorder:
    """What the detection stage counts (``SocMetrics``' detection metrics), written down in the child to be done to
    the parent's ``SocMetrics`` (``apply_metric_ops``)."""

    NAMES = ("rule_seconds", "correlation_state", "detections", "alerts")

    def __init__(self) -> None:
        self.ops: list[MetricOp] = []
        for name in self.NAMES:
            setattr(self, name, _RecordedMetric(name, self.ops))

    def take(self) -> list[MetricOp]:
        """The operations written down since the last call."""
        taken = list(self.ops)
        self.ops.clear()
        return taken


def apply_metric_ops(metrics: SocMetrics, ops: list[MetricOp]) -> None:
    """Do to ``metrics`` what the child's recorder wrote down."""
    for name, labels, op, value in ops:
        if name not in MetricsRecorder.NAMES or op not in ("inc", "set"):
            raise ValueError(f"not a detection metric operation: {name}.{op}")
        metric: Any = getattr(metrics, name)
        if labels:
            metric = metric.labels(*labels)
        getattr(metric, op)(value)


class DetectionProcess:
    """The parent's side: starts the child, keeps it told of the spool's end, hears its progress, replaces it."""

    def __init__(self, settings: Settings, spool: Spool, metrics: SocMetrics, batch_records: int = BATCH_RECORDS,
                 restart_seconds: float = 1.0):
        self.settings = settings
        self.spool = spool
        self.metrics = metrics
        self.batch_records = batch_records
        self.restart_seconds = restart_seconds
        self.process: multiprocessing.process.BaseProcess | None = None
        self.starts = 0  # children started (more than one: a child died and was replaced)
        self._ctx = multiprocessing.get_context("spawn")  # not fork: this process has threads, sockets, databases
        self._end: ctypes.c_longlong = self._ctx.RawValue(ctypes.c_longlong, 0)  # pack_position
        self._wake: Connection | None = None  # the current child's wake pipe (written raw, never blocking)
        self._wake_lock = threading.Lock()  # writing a byte to it against closing it
        self._end_lock = threading.Lock()  # the shared end's compare-and-set (it is written in this process only)
        self._conn: Connection | None = None
        self._heard = False  # the current child has reported (it has loaded the rules and resumed)
        self._on_detected: Callable[[Position], None] = lambda _end: None
        self._lock = threading.Lock()  # the current child and its pipe, against stopping
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_detected: Callable[[Position], None]) -> None:
        self._on_detected = on_detected
        self.spool.on_append(self._appended)
        self._appended(self.spool.end())
        # before multiprocessing's own exit handler, which would wait for the child (registered earlier: run later)
        atexit.register(self._kill)
        self._spawn()
        self._thread = threading.Thread(target=self._hear, name="soc-detect-progress", daemon=True)
        self._thread.start()

    def _spawn(self) -> bool:
        """Start a child (unless stopping); False when none was started."""
        receiving, sending = self._ctx.Pipe(duplex=False)
        woken, wake = self._ctx.Pipe(duplex=False)
        with self._lock:
            if self._stopping.is_set():
                for conn in (receiving, sending, woken, wake):
                    conn.close()
                return False
            process = self._ctx.Process(
                target=child_main, name="yunshu-detection", daemon=True,
                args=(sending, woken, self._end, self.settings, str(self.spool.dir), self.batch_records))
            try:
                process.start()
            except BaseException:
                for conn in (receiving, woken, wake):
                    conn.close()
                raise
            finally:
                sending.close()
            woken.close()
            os.set_blocking(wake.fileno(), False)
            self._set_wake(wake)
            self._conn, self.process, self._heard = receiving, process, False
            self.starts += 1
        self._nudge()
        return True

    def _set_wake(self, wake: Connection | None) -> None:
        with self._wake_lock:
            old, self._wake = self._wake, wake
            if old is not None:
                old.close()  # the child it woke ends, if it still runs

    def _nudge(self) -> None:
        """A byte on the wake pipe; when it is full the child has bytes to read already."""
        with self._wake_lock:
            if self._wake is not None:
                with contextlib.suppress(BlockingIOError, BrokenPipeError):
                    os.write(self._wake.fileno(), b"\0")

    def _appended(self, end: Position) -> None:
        """Spool listener (runs under the append lock): the child may read up to ``end`` (never moved back)."""
        word = pack_position(end)
        with self._end_lock:  # (start() calls this outside the append lock)
            if word > self._end.value:
                self._end.value = word
        self._nudge()

    def _hear(self) -> None:
        """Take the child's progress; start another child when it dies. Once stopping, reports are read and dropped
        until the pipe ends (a child blocked sending its last one could not end)."""
        delay = self.restart_seconds
        resumed_at: Position | None = None  # where the current child resumed (its first report)
        while True:
            conn, process = self._conn, self.process
            assert conn is not None and process is not None
            try:
                message = conn.recv()
            except Exception:  # the child ended (EOF), or what it sent cannot be read: this child is done
                if self._stopping.is_set():
                    return
                if process.is_alive():  # (not an end: its report could not be read)
                    log.exception("a report of the detection process could not be read; it is replaced")
                process.kill()
                process.join(1)
                log.error("the detection process ended (exit code %s); starting another in %.1f s",
                          process.exitcode, delay)
                conn.close()
                if self._stopping.wait(delay):
                    return
                # back to the start only once a child gets past where it resumed: one that dies on its first batch
                # reloads the rules less and less often
                delay = min(delay * 2, RESTART_MAX_SECONDS)
                resumed_at = None
                try:
                    if self._spawn():
                        self.metrics.detection_restarts.inc()
                except Exception:  # the next turn finds the old pipe closed and waits ``delay`` again
                    log.exception("a detection process could not be started")
                continue
            if self._stopping.is_set():
                continue  # dropped: the child is stopping
            try:
                if message[0] == "detected":
                    _, segment, offset, ops = message
                    position = Position(segment, offset)
                    self._heard = True
                    if resumed_at is None:
                        resumed_at = position
                    elif position > resumed_at:
                        delay = self.restart_seconds
                    self._on_detected(position)
                    apply_metric_ops(self.metrics, ops)
            except Exception:  # a bad report must not stop hearing the next ones
                log.exception("a report of the detection process could not be taken: %s", reprlib.repr(message))

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopping.set()
            process, conn, heard = self.process, self._conn, self._heard
        self._set_wake(None)  # the child's wake pipe ends: it stops after the batch in hand
        if process is not None:
            if not heard:  # it has not reported yet: nothing of its work is in flight here, and loading is long
                process.kill()
            process.join(timeout)
            if process.is_alive():
                log.warning("the detection process did not stop within %.0f s: killed", timeout)
                process.kill()  # (it ignores SIGTERM: see child_main)
                process.join(5)
        if self._thread is not None:
            self._thread.join(timeout)
        if conn is not None:
            conn.close()
        atexit.unregister(self._kill)

    def _kill(self) -> None:
        """At interpreter exit without ``stop`` (a start-up that failed): the child goes too, at once."""
        with self._lock:
            self._stopping.set()
            process = self.process
        if process is not None and process.is_alive():
            process.kill()
            process.join(5)


def child_main(conn: Connection, woken: Connection, end: ctypes.c_longlong, settings: Settings, spool_dir: str,
               batch_records: int) -> None:
    """The detection process: detect from the spool's ``detected`` cursor up to the end the parent shares, until the
    wake pipe ends."""
    from core.runtime import open_runtime
    from soc.alerts.stage import configured_detection
    from soc.detection_reader import DetectionReader, ParsedBatch
    from soc.enrich import Enricher, RegisterIndex
    from soc.parsers import ParseContext
    from soc.pipeline import INGEST_GC_THRESHOLDS, Pipeline

    # Ctrl-C, or a SIGTERM to the whole process group (systemd, timeout), stops the parent, which then stops this
    # process; should the parent be gone instead, the wake pipe ends
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s [detection] %(message)s")
    gc.set_threshold(*INGEST_GC_THRESHOLDS)  # this process does nothing but parse batches and run the rules
    wake = woken.fileno()
    os.set_blocking(wake, False)

    def woken_up() -> bool:
        """Drain the wake pipe; False once it has ended."""
        try:
            while os.read(wake, 65536):
                pass
            return False
        except BlockingIOError:
            return True

    rt = open_runtime(settings, run_migrations=False)
    try:
        recorder = MetricsRecorder()
        stage = configured_detection(rt, recorder)  # type: ignore[arg-type]  # records what it counts
        cfg = settings.soc

        def register() -> Enricher:
            with rt.sessions() as session:
                return Enricher(RegisterIndex.load(session), mask_pii=cfg.mask_pii)

        pipeline = Pipeline(None, None, register(), ParseContext(tz=ZoneInfo(cfg.timezone)),  # type: ignore[arg-type]
                            max_line_bytes=cfg.max_line_bytes)  # only prepares: no store, no dead letters

        def advanced(batch: ParsedBatch) -> None:
            conn.send(("detected", batch.end.segment, batch.end.offset, recorder.take()))

        reader = DetectionReader(SpoolReader(Path(spool_dir)), pipeline, stage, unpack_position(end.value), advanced,
                                 batch_records)
        conn.send(("detected", reader.detected.segment, reader.detected.offset, recorder.take()))
        reloaded = time.monotonic()
        while woken_up():  # (drained before the end is read: an append after this leaves a byte for the wait)
            until = unpack_position(end.value)
            if time.monotonic() - reloaded >= REGISTER_RELOAD_SECONDS:
                try:
                    pipeline.enrich = register()
                except Exception:
                    log.exception("register reload failed; the previous index stays")
                reloaded = time.monotonic()
            try:
                consumed = reader.detect_once(until)
            except BrokenPipeError:
                raise
            except Exception:  # e.g. the alert database is unavailable: keep the batch and try again
                log.exception("detection failed; retrying in a second")
                deadline = time.monotonic() + 1.0
                while (left := deadline - time.monotonic()) > 0:  # the whole second, appends or not
                    select.select([wake], [], [], left)
                    if not woken_up():
                        return
                continue
            if consumed == 0 and reader.detected >= until:
                select.select([wake], [], [], 5.0)  # until the parent appends (or stops, or is gone)
    except BrokenPipeError:
        return  # the parent is gone
    finally:
        conn.close()
        woken.close()
        rt.close()
