"""Drains the spool into the store through the pipeline, committing only what is stored."""

from __future__ import annotations

import logging
import threading
from itertools import groupby

from soc.metrics import SocMetrics
from soc.pipeline import Pipeline, RawRecord
from soc.spool import Spool, SpooledRecord, source_format, source_origin
from soc.store.base import StoreUnavailable

log = logging.getLogger("yunshu.soc.consumer")


class SpoolConsumer:
    """A background thread: read a batch, parse/enrich/store it, then move the checkpoint."""

    def __init__(self, spool: Spool, pipeline: Pipeline, metrics: SocMetrics | None = None,
                 batch_records: int = 5000, retry_seconds: float = 1.0):
        self.spool = spool
        self.pipeline = pipeline
        self.metrics = metrics or SocMetrics()
        self.batch_records = batch_records
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soc-consumer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def drain_once(self) -> int:
        """Process one batch; returns how many records were consumed (0 when the spool is empty)."""
        start = self.spool.checkpoint()
        records, end = self.spool.read(start, self.batch_records)
        if not records:
            if end != start:
                self.spool.commit(end)  # moved into a newer segment
            return 0
        for source, group in groupby(records, key=lambda r: r.source):
            self._process(source, list(group))
        self.spool.commit(end)
        self.metrics.backlog.set(self.spool.backlog_bytes())
        return len(records)

    def _process(self, source: str, group: list[SpooledRecord]) -> None:
        origin = source_origin(source)
        stats = self.pipeline.run((RawRecord(r.key, r.raw) for r in group), source_format(source))
        self.metrics.parsed.labels(origin).inc(stats.read - stats.dead_lettered)
        self.metrics.stored.labels(origin).inc(stats.stored)
        self.metrics.dead_lettered.labels(origin).inc(stats.dead_lettered)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.drain_once() == 0:
                    self.spool.wait_for_data(self.spool.checkpoint(), timeout=0.5)
            except StoreUnavailable as exc:  # keep everything in the spool and try again
                log.warning("event store unavailable, events stay in the spool: %s", exc)
                self._stop.wait(self.retry_seconds)
            except Exception:  # a bug must not silently stop ingestion: log it and keep going
                log.exception("spool consumer failed; retrying")
                self._stop.wait(self.retry_seconds)
