"""The detection reader in a process of its own (``soc.detection_process: true``).

In the service's process the detection reader shares one interpreter lock with the receivers and the store writer;
here it has an interpreter, and on a machine with two CPUs or more a CPU, to itself. The parent tells the child how
far the spool is durable (it alone appends), the child tells the parent how far it has detected (the store writer
never passes that) and what it counted, for /metrics. Alerts go to the database from the child, as the thread
records them. Should the child die, the parent starts another, which resumes from the ``detected`` cursor as a
restarted service does (``soc.detection_reader``).

Messages, parent → child: ``("end", segment, offset)``, ``("stop",)``; child → parent: ``("detected", segment,
offset, metric operations)``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.settings import Settings
from soc.metrics import SocMetrics
from soc.spool import Position, Spool, SpoolReader

log = logging.getLogger("yunshu.soc.detect")
REGISTER_RELOAD_SECONDS = 60.0  # as the service's maintenance reloads its register index
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
    """The parent's side: starts the child, keeps it told of the spool's end, hears its progress, restarts it."""

    def __init__(self, settings: Settings, spool: Spool, metrics: SocMetrics, batch_records: int = 5000,
                 restart_seconds: float = 1.0):
        self.settings = settings
        self.spool = spool
        self.metrics = metrics
        self.batch_records = batch_records
        self.restart_seconds = restart_seconds
        self.process: multiprocessing.process.BaseProcess | None = None
        self.starts = 0  # children started (more than one: a child died and was replaced)
        self._conn: Connection | None = None
        self._on_detected: Callable[[Position], None] = lambda _end: None
        self._stopping = threading.Event()
        self._end_changed = threading.Condition()
        self._end: Position | None = None
        self._sent: Position | None = None
        self._threads: list[threading.Thread] = []
        self._heard = False  # the current child has reported (it has loaded the rules and resumed)

    def start(self, on_detected: Callable[[Position], None]) -> None:
        self._on_detected = on_detected
        self.spool.on_append(self._appended)
        self._appended(self.spool.end())
        self._spawn()
        self._threads = [threading.Thread(target=self._tell_ends, name="soc-detect-ends", daemon=True),
                         threading.Thread(target=self._hear, name="soc-detect-progress", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # not fork: this process has threads, sockets and databases open
        parent, child = ctx.Pipe()
        process = ctx.Process(target=child_main, args=(child, self.settings, str(self.spool.dir), self.batch_records),
                              name="yunshu-detection", daemon=True)
        process.start()
        child.close()
        with self._end_changed:
            self._conn, self.process, self._sent = parent, process, None
            self._heard = False
            self.starts += 1
            self._end_changed.notify_all()

    def _appended(self, end: Position) -> None:
        """Spool listener (runs under the append lock): note the end; ``_tell_ends`` sends it."""
        with self._end_changed:
            self._end = end
            self._end_changed.notify_all()

    def _tell_ends(self) -> None:
        """Send the child the spool's latest end whenever it moved (a slow child gets the newest, not each one)."""
        while not self._stopping.is_set():
            with self._end_changed:
                while not self._stopping.is_set() and (self._end is None or self._end == self._sent):
                    self._end_changed.wait(0.5)
                end, conn = self._end, self._conn
                self._sent = end
            if end is None or conn is None or self._stopping.is_set():
                continue
            try:
                conn.send(("end", end.segment, end.offset))
            except (OSError, ValueError):  # the child is gone: ``_hear`` starts another, which is sent the end
                time.sleep(0.05)

    def _hear(self) -> None:
        """Take the child's progress; start another child when it dies."""
        while not self._stopping.is_set():
            conn = self._conn
            assert conn is not None
            try:
                message = conn.recv()
            except (EOFError, OSError):
                if self._stopping.is_set():
                    return
                code = self.process.exitcode if self.process is not None else None
                log.error("the detection process ended (exit code %s); starting another in %.1f s", code,
                          self.restart_seconds)
                conn.close()
                if self._stopping.wait(self.restart_seconds):
                    return
                self._spawn()
                continue
            if message[0] == "detected":
                self._heard = True
                _, segment, offset, ops = message
                apply_metric_ops(self.metrics, ops)
                self._on_detected(Position(segment, offset))

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with self._end_changed:
            self._end_changed.notify_all()
        if self._conn is not None:
            with contextlib.suppress(OSError, ValueError):  # already gone
                self._conn.send(("stop",))
        if self.process is not None:
            if not self._heard:  # still loading the rules: it has done nothing yet that stopping could cut short
                self.process.kill()
            self.process.join(timeout)
            if self.process.is_alive():
                log.warning("the detection process did not stop within %.0f s: killed", timeout)
                self.process.kill()  # (it ignores SIGTERM: see child_main)
                self.process.join(5)
        for thread in self._threads:
            thread.join(timeout)
        if self._conn is not None:
            self._conn.close()


def child_main(conn: Connection, settings: Settings, spool_dir: str, batch_records: int) -> None:
    """The detection process: detect from the spool's ``detected`` cursor up to the end the parent reports."""
    from core.runtime import open_runtime
    from soc.alerts.stage import configured_detection
    from soc.detection_reader import DetectionReader, ParsedBatch
    from soc.enrich import Enricher, RegisterIndex
    from soc.parsers import ParseContext
    from soc.pipeline import INGEST_GC_THRESHOLDS, Pipeline

    # Ctrl-C, or a SIGTERM to the whole process group (systemd, timeout), stops the parent, which then stops this
    # process; should the parent die instead, the pipe's end stops it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s [detection] %(message)s")
    gc.set_threshold(*INGEST_GC_THRESHOLDS)  # this process does nothing but parse batches and run the rules
    rt = open_runtime(settings, run_migrations=False)
    recorder = MetricsRecorder()
    stage = configured_detection(rt, recorder)  # type: ignore[arg-type]  # records what it counts
    cfg = settings.soc

    def register() -> Enricher:
        with rt.sessions() as session:
            return Enricher(RegisterIndex.load(session), mask_pii=cfg.mask_pii)

    enricher = register()
    pipeline = Pipeline(None, None, enricher, ParseContext(tz=ZoneInfo(cfg.timezone)),  # type: ignore[arg-type]
                        max_line_bytes=cfg.max_line_bytes)  # only prepares: no store, no dead letters
    until: Position | None = None
    while until is None:  # the first message is the spool's end
        message = conn.recv()
        if message[0] == "stop":
            return
        until = Position(message[1], message[2])

    def advanced(batch: ParsedBatch) -> None:
        conn.send(("detected", batch.end.segment, batch.end.offset, recorder.take()))

    reader = DetectionReader(SpoolReader(Path(spool_dir)), pipeline, stage, until, advanced, batch_records)
    conn.send(("detected", reader.detected.segment, reader.detected.offset, recorder.take()))
    reloaded = time.monotonic()
    try:
        while True:
            while conn.poll():
                message = conn.recv()
                if message[0] == "stop":
                    return
                until = Position(message[1], message[2])
            if time.monotonic() - reloaded >= REGISTER_RELOAD_SECONDS:
                try:
                    pipeline.enrich = register()
                except Exception:
                    log.exception("register reload failed; the previous index stays")
                reloaded = time.monotonic()
            try:
                consumed = reader.detect_once(until)
            except Exception:  # e.g. the alert database is unavailable: keep the batch and try again
                log.exception("detection failed; retrying")
                time.sleep(1.0)
                continue
            if consumed == 0 and reader.detected >= until:
                conn.poll(0.5)  # until the parent reports more
    except (EOFError, BrokenPipeError):
        return  # the parent is gone
    finally:
        rt.close()
