"""The SOC wired to a running control plane: store, dead letters and register enrichment."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core.runtime import Runtime
from soc.activity import mark_active_systems
from soc.alerts.stage import DetectionStage, configured_detection
from soc.alerts.webhook import deliver_due
from soc.consumer import SpoolConsumer
from soc.deadletter import DeadLetterStore
from soc.detection_process import DetectionProcess
from soc.enrich import Enricher, RegisterIndex
from soc.metrics import SocMetrics
from soc.parsers import ParseContext
from soc.pipeline import IngestStats, Pipeline, file_records
from soc.receivers import SyslogReceivers
from soc.spool import Spool, source_origin, spool_source
from soc.store.base import EventStore
from soc.store.factory import open_store

log = logging.getLogger("yunshu.soc")


@dataclass
class Soc:
    store: EventStore
    deadletters: DeadLetterStore
    enricher: Enricher
    ctx: ParseContext
    detection: DetectionStage | None = None
    metrics: SocMetrics = field(default_factory=SocMetrics)

    def pipeline(self, max_line_bytes: int = 65536, retry_seconds: float = 30.0, detect: bool = True,
                 count_as: str | None = None) -> Pipeline:
        """A pipeline into the store; with ``detect`` (and detection on) the rules see each batch once stored.

        With ``count_as`` (a metrics source such as ``file``) ``Pipeline.run`` counts what it reads, parses,
        stores and dead-letters in ``self.metrics`` under that source.
        """
        return Pipeline(self.store, self.deadletters, self.enricher, self.ctx, max_line_bytes=max_line_bytes,
                        retry_seconds=retry_seconds, after_write=self.detection if detect else None,
                        metrics=self.metrics if count_as is not None else None, source=count_as or "other")

    def close(self) -> None:
        self.store.close()
        self.deadletters.close()


def open_soc(rt: Runtime, store_url: str | None = None, metrics: SocMetrics | None = None,
             must_exist: bool = False, detect: bool = True) -> Soc:
    """The configured store (or ``store_url``), the dead-letter file, a register index loaded now and, unless
    detection is switched off, the rules with the alert service; counters go to ``metrics`` (else a registry of
    the SOC's own, which nothing scrapes: a command-line run). ``must_exist``: as in ``open_store`` (commands that
    only read); ``detect=False`` leaves the rules unloaded (commands that only read or delete stored events)."""
    settings = rt.settings.soc
    with rt.sessions() as session:
        index = RegisterIndex.load(session)
    detection = configured_detection(rt, metrics) if settings.detection and detect else None
    return Soc(
        store=open_store(store_url or settings.store_url, rt.settings.home, settings.retention_days, must_exist),
        deadletters=DeadLetterStore(rt.settings.home / "soc" / "deadletter.db"),
        enricher=Enricher(index, mask_pii=settings.mask_pii),
        ctx=ParseContext(tz=ZoneInfo(settings.timezone)),
        detection=detection,
        metrics=metrics or SocMetrics(),
    )


def ingest_files(soc: Soc, paths: list[str], fmt: str, max_line_bytes: int = 65536) -> IngestStats:
    """Ingest files line by line; ids come from (file, offset), so running it again adds nothing.

    Counted in ``soc.metrics`` under source ``file`` (received, parsed, stored, dead-lettered; files are not
    spooled).
    """
    pipeline = soc.pipeline(max_line_bytes, count_as="file")
    total = IngestStats()
    with _writer_for(soc.store, paths):
        for path in paths:
            stats = pipeline.run(file_records(path), fmt)
            for name in ("read", "stored", "duplicates", "dead_lettered", "duration_s"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
    return total


# Files of at least this many bytes in all are written by a process of the store's own, when it has one
# (``SQLiteStore.writes_in_child``): starting it costs about half a second, a 4 MiB file takes about as long to parse.
CHILD_WRITER_MIN_BYTES = 4 * 1024 * 1024


def _writer_for(store: EventStore, paths: list[str]) -> contextlib.AbstractContextManager[None]:
    """Where the import's writes go: a process of the store's own for files large enough when this process may run
    on more than one CPU, else this one."""
    in_child = getattr(store, "writes_in_child", None)
    if (in_child is None or len(os.sched_getaffinity(0)) < 2  # (on one CPU the child would only add its handover)
            or sum(_size(path) for path in paths) < CHILD_WRITER_MIN_BYTES):
        return contextlib.nullcontext()
    return in_child()  # type: ignore[no-any-return]


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # (reading it will say what is wrong)
        return 0


def apply_retention(soc: Soc, retention_days: dict[str, int], now: datetime | None = None) -> dict[str, int]:
    """Delete events past their retention (per data class; ``unclassified`` for events without one)."""
    now = now or datetime.now(UTC)
    deleted = {}
    for data_class, days in retention_days.items():
        key = None if data_class == "unclassified" else data_class
        deleted[data_class] = soc.store.delete_before(now - timedelta(days=days), key)
    return deleted


class SocServices:
    """What ``yunshu up`` runs for the SOC: the spool, its consumer and (optionally) the syslog listeners."""

    def __init__(self, rt: Runtime, metrics: SocMetrics, listeners: bool = False,
                 syslog_hosts: Sequence[str] | None = None):
        self.rt = rt
        self.metrics = metrics
        self.listeners = listeners
        self.syslog_hosts = list(syslog_hosts or [rt.settings.soc.syslog_host])
        self.soc = open_soc(rt, metrics=metrics)
        self.spool = Spool(rt.settings.home / "soc" / "spool")
        # detection runs ahead of the store, on its own spool cursor (see soc.consumer)
        pipeline = self.soc.pipeline(rt.settings.soc.max_line_bytes, retry_seconds=0, detect=False)
        self.detection_process: DetectionProcess | None = None
        if self.soc.detection is not None and rt.settings.soc.detection_process:
            self.detection_process = DetectionProcess(rt.settings, self.spool, metrics)
            # this process's stage still serves drill replays and file ingest; the live windows are the child's
            self.soc.detection.reports_state = False
            self.consumer = SpoolConsumer(self.spool, pipeline, metrics, remote_detection=self.detection_process)
        else:
            self.consumer = SpoolConsumer(self.spool, pipeline, metrics, detection=self.soc.detection)
        self.receivers: SyslogReceivers | None = None
        self._stop = threading.Event()
        self._maintenance = threading.Thread(target=self._maintain, name="soc-maintenance", daemon=True)
        self._webhooks = threading.Thread(target=self._send_webhooks, name="soc-webhooks", daemon=True)

    def _send_webhooks(self, interval: float = 2.0) -> None:
        """Deliver due alert notifications until stopped."""
        secrets = {w.url: w.secret for w in self.rt.settings.soc.webhooks}
        while not self._stop.wait(interval):
            try:
                deliver_due(self.rt.transaction, secrets)
            except Exception:  # notifications must never take the service down
                log.exception("webhook delivery failed; will retry")

    def _maintain(self, reload_seconds: float = 60.0, retention_seconds: float = 6 * 3600.0) -> None:
        """Keep the register index fresh, move systems' last activity forward and apply retention, until
        stopped."""
        last_retention = 0.0
        activity_since = datetime.now(UTC) - timedelta(days=1)  # events of the last day count at start
        while not self._stop.wait(reload_seconds if last_retention else 0):
            try:
                with self.rt.sessions() as session:
                    self.soc.enricher.index = RegisterIndex.load(session)
                now = datetime.now(UTC)
                with self.rt.transaction() as session:
                    mark_active_systems(session, self.soc.store, activity_since, now)
                activity_since = now
                if time.monotonic() - last_retention >= retention_seconds or not last_retention:
                    deleted = apply_retention(self.soc, self.rt.settings.soc.retention_days)
                    last_retention = time.monotonic()
                    log.info("retention applied: %s", deleted)
            except Exception:  # maintenance must never take the service down
                log.exception("SOC maintenance failed; will retry")

    async def start(self) -> None:
        """Start the consumer (and detection process), maintenance, webhooks and listeners; if any of them cannot
        start (the syslog port is taken), what had started is stopped again before the error goes on."""
        try:
            self.consumer.start()
            self._maintenance.start()
            if self.rt.settings.soc.webhooks:
                self._webhooks.start()
            if self.listeners:
                cfg = self.rt.settings.soc
                self.receivers = SyslogReceivers(self.spool, self.metrics, self.syslog_hosts, cfg.syslog_port,
                                                 self.soc.deadletters)
                await self.receivers.start()
        except BaseException:
            if self.receivers is not None:
                with contextlib.suppress(Exception):  # whatever part of them had started
                    await self.receivers.stop()
                self.receivers = None
            await self.stop()
            raise

    async def stop(self) -> None:
        self._stop.set()
        if self.receivers:
            await self.receivers.stop()
        self.consumer.stop()
        if self._maintenance.is_alive():
            self._maintenance.join(10)
        if self._webhooks.is_alive():
            self._webhooks.join(15)
        self.spool.close()
        self.soc.close()

    def detection_health(self) -> dict[str, object]:
        """How detection runs (``process``, ``thread`` or ``off``), the spooled bytes it has not seen yet and, for a
        process, whether it runs and how many were started (more than one: one ended and was replaced)."""
        child = self.detection_process
        mode = "off" if self.soc.detection is None else "process" if child is not None else "thread"
        return {
            "mode": mode,
            "lag_bytes": self.consumer.detection_lag_bytes(),
            "process_running": bool(child and child.process and child.process.is_alive()) if child else None,
            "process_starts": child.starts if child else None,
        }

    def accept(self, origin: str, fmt: str, raws: list[bytes]) -> None:
        """Spool records received over HTTP (durable when this returns; it blocks on the fsync, so call it from a
        worker thread, not the event loop)."""
        source = spool_source(fmt, origin)
        label = source_origin(source)
        self.metrics.received.labels(label).inc(len(raws))
        self.spool.append([(source, raw) for raw in raws])
        self.metrics.spooled.labels(label).inc(len(raws))
