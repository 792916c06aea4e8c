"""Automation job events into the SOC (dataset ``yunshu.ansible``): who changed what on which host is searchable
and detectable next to the hosts' own logs. The portal joins the two engines; infra and soc never import each other.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.runtime import Runtime
from infra.jobs import JobEventView

if TYPE_CHECKING:
    from soc.service import Soc

DATASET = "yunshu.ansible"
log = logging.getLogger("yunshu.jobs")


def ecs_event(job_id: int, view: JobEventView, raw: dict[str, Any]) -> dict[str, Any]:
    """One job event as an ECS document."""
    data = raw.get("event_data") or {}
    outcome = "failure" if view.failed else "success" if view.event.startswith("runner_on_") else "unknown"
    created = raw.get("created")
    timestamp = created if isinstance(created, str) else datetime.now(UTC).isoformat()
    doc: dict[str, Any] = {
        "@timestamp": timestamp if timestamp.endswith(("Z", "+00:00")) else f"{timestamp}Z",
        "event": {"kind": "event", "category": ["configuration"], "type": ["change" if view.changed else "info"],
                  "action": view.event, "outcome": outcome, "dataset": DATASET, "module": "ansible",
                  "sequence": view.seq},
        "message": f"job {job_id} {view.event}" + (f" [{view.task}]" if view.task else "")
                   + (f" on {view.host}" if view.host else "") + (f": {view.message}" if view.message else ""),
        "labels": {"job_id": str(job_id), "playbook": str(data.get("playbook", ""))},
        "rule": {"name": view.task} if view.task else {},
    }
    if view.host:
        doc["host"] = {"name": view.host}
    return {k: v for k, v in doc.items() if v != {}}


class SocSink:
    """Buffers job events and stores them through the SOC pipeline (deterministic ids: job and sequence), counted
    in the SOC's ingest metrics (``soc.metrics``) under source ``job``.

    ``soc``: an open SOC to use (the server's own, so its /metrics count the events); it stays open, only a SOC
    the sink opened itself is closed by :meth:`close`. ``warn_only``: a SOC failure (StoreUnavailable after the
    pipeline's ``retry_seconds``, or anything else) is logged as a warning and forwarding stops, instead of being
    raised into the job's event handler (which would end the job as an error).
    """

    def __init__(self, rt: Runtime, batch: int = 200, soc: Soc | None = None, *, warn_only: bool = False,
                 retry_seconds: float = 30.0):
        if soc is None:
            from soc.service import open_soc

            soc = open_soc(rt)
            self.owned = True
        else:
            self.owned = False
        self.soc = soc
        self.pipeline = soc.pipeline(retry_seconds=retry_seconds, count_as="job")
        self.batch = batch
        self.buffer: list[Any] = []
        self.warn_only = warn_only
        self.failed = False
        self.job_id: int | None = None

    def __call__(self, job_id: int, view: JobEventView, raw: dict[str, Any]) -> None:
        from soc.pipeline import RawRecord

        if view.event == "playbook_on_task_start" or self.failed:
            return
        try:
            line = json.dumps(ecs_event(job_id, view, raw), ensure_ascii=False).encode("utf-8")
        except Exception as exc:
            self._give_up(exc)
            return
        self.buffer.append(RawRecord(f"job:{job_id}:{view.seq}", line))
        if len(self.buffer) >= self.batch:
            self.flush()

    def on_created(self, job_id: int, _hosts: int) -> None:
        """``run_scoped(on_created=…)``: the job whose events :meth:`on_event` forwards."""
        self.job_id = job_id

    def on_event(self, view: JobEventView, raw: dict[str, Any]) -> None:
        """``run_scoped(on_event=…)``: forward the event of the job named by :meth:`on_created`."""
        if self.job_id is not None:
            self(self.job_id, view, raw)

    def flush(self) -> None:
        records, self.buffer = self.buffer, []
        if not records or self.failed:
            return
        try:
            self.pipeline.run(records, "json")
        except Exception as exc:
            self._give_up(exc)

    def _give_up(self, exc: Exception) -> None:
        """Raise ``exc``, or (``warn_only``) log it and forward nothing more."""
        if not self.warn_only:
            raise exc
        self.failed, self.buffer = True, []
        log.warning("job %s: events no longer forwarded to the SOC (%s: %s); the job goes on", self.job_id,
                    type(exc).__name__, exc)

    def close(self) -> None:
        """Store what is buffered; close the SOC only if this sink opened it."""
        try:
            self.flush()
        finally:
            if self.owned:
                self.soc.close()


def job_forwarder(rt: Runtime, soc: Soc | None = None) -> SocSink | None:
    """The sink of a job's events (``yunshu onboard`` and the other job commands, jobs the server runs): into
    ``soc`` (the server's) or the configured SOC. SOC failures only log a warning, so they never stop a playbook
    half-way; None (after a warning) when no SOC can be opened."""
    try:
        return SocSink(rt, soc=soc, warn_only=True)
    except Exception as exc:
        log.warning("job events will not reach the SOC: %s: %s", type(exc).__name__, exc)
        return None
