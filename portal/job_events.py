"""Automation job events into the SOC (dataset ``yunshu.ansible``): who changed what on which host is searchable
and detectable next to the hosts' own logs. The portal joins the two engines; infra and soc never import each other.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from core.runtime import Runtime
from infra.jobs import JobEventView

DATASET = "yunshu.ansible"


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
    in the SOC's ingest metrics (``soc.metrics``) under source ``job``."""

    def __init__(self, rt: Runtime, batch: int = 200):
        from soc.service import open_soc

        self.soc = open_soc(rt)
        self.pipeline = self.soc.pipeline(count_as="job")
        self.batch = batch
        self.buffer: list[Any] = []

    def __call__(self, job_id: int, view: JobEventView, raw: dict[str, Any]) -> None:
        from soc.pipeline import RawRecord

        if view.event == "playbook_on_task_start":
            return
        line = json.dumps(ecs_event(job_id, view, raw), ensure_ascii=False).encode("utf-8")
        self.buffer.append(RawRecord(f"job:{job_id}:{view.seq}", line))
        if len(self.buffer) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.pipeline.run(self.buffer, "json")
            self.buffer = []

    def close(self) -> None:
        self.flush()
        self.soc.close()


def forward_to_soc(rt: Runtime) -> SocSink:
    """A sink for ``Jobs.run(on_event=…)`` wrappers that stores job events in the SOC."""
    return SocSink(rt)
