"""The two ways events enter the pipeline besides the transports — a drill's replayed attack logs and automation
job events — count in the same ingest metrics, under the bounded sources ``replay`` and ``job``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.runtime import Runtime
from infra.jobs import Jobs
from portal.job_events import DATASET, SocSink
from soc.metrics import SOURCES, source_label
from soc.store.base import SearchQuery
from tests.soc.test_ingest import _ingest_metrics, soc_portal  # noqa: F401 — soc_portal is a fixture
from tests.test_job_events import PLAY


def test_replay_and_job_are_bounded_source_labels() -> None:
    assert {"replay", "job"} <= set(SOURCES)
    assert (source_label("replay"), source_label("job"), source_label("job:7:1")) == ("replay", "job", "other")


def _replayed_records(rt: Runtime, drill_id: int) -> int:
    """How many log records the replay fed into the pipeline, as its audit entry records."""
    with rt.sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "drill.replay",
                                                   AuditEntry.object_id == str(drill_id))).one()
    return int(json.loads(entry.payload)["records"])


def test_drill_replay_counts_under_source_replay_on_metrics(soc_portal) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """A replay through the API counts every record it injects, on the service's /metrics, and nothing else."""
    client, rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    drill_id = client.post("/api/soc/drills", json={"scenario": "web-to-root", "scope": ["SYS-RSJ-001"]},
                           headers=analyst).json()["drill"]["id"]
    before = _ingest_metrics(client.get("/metrics").text)
    assert client.post(f"/api/soc/drills/{drill_id}/replay", headers=analyst).status_code == 200
    after = _ingest_metrics(client.get("/metrics").text)
    records = _replayed_records(rt, drill_id)
    assert records > 0 and "replay" not in before
    # a replay is not spooled and nothing is dropped: those two series are never touched, so absent from /metrics
    assert after["replay"] == {"received": records, "parsed": records, "stored": records, "dead_lettered": 0}
    assert {src: c for src, c in after.items() if src != "replay"} == before


def _run_job(rt: Runtime, tmp_path: Path, sink: Any) -> list[tuple[int, Any, dict[str, Any]]]:
    """Run the two-task test playbook, every event into ``sink``; the (job id, view, raw event)s seen."""
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    web-01:\n      ansible_connection: local\n"
                                      f"      ansible_python_interpreter: {sys.executable}\n")
    jobs = Jobs(rt)
    job_id = jobs.create("playbook", str(tmp_path / "play.yml"), {}, "alice")
    seen: list[tuple[int, Any, dict[str, Any]]] = []

    def forward(view: Any, raw: dict[str, Any]) -> None:
        seen.append((job_id, view, raw))
        sink(job_id, view, raw)

    jobs.run(job_id, tmp_path / "inv.yml", extravars={"out": str(tmp_path / "m")}, on_event=forward)
    sink.flush()
    return seen


def test_job_events_count_under_source_job(sqlite_rt: Runtime, tmp_path: Path) -> None:
    """Every job event the sink stores counts under ``job``; fed again, it is read and parsed again but not
    newly stored (ids are job + sequence)."""
    sink = SocSink(sqlite_rt)
    try:
        assert sink.soc.metrics.ingest_totals() == {}
        seen = _run_job(sqlite_rt, tmp_path, sink)
        stored = sink.soc.store.count(SearchQuery(where={"event.dataset": DATASET}, limit=50))
        first = sink.soc.metrics.ingest_totals()
        for job_id, view, raw in seen:
            sink(job_id, view, raw)
        sink.flush()
        second = sink.soc.metrics.ingest_totals()
    finally:
        sink.close()
    assert stored == 4  # play start, ok, failed, stats (task starts are not forwarded)
    assert first == {"job": {"received": stored, "spooled": 0, "parsed": stored, "stored": stored,
                             "dead_lettered": 0, "dropped": 0}}
    assert second == {"job": {"received": 2 * stored, "spooled": 0, "parsed": 2 * stored, "stored": stored,
                              "dead_lettered": 0, "dropped": 0}}


def test_a_batch_stored_again_after_an_outage_is_counted_once(tmp_path: Path) -> None:
    """The store goes down between the two origins of a batch: the batch is stored again from its start, and each
    origin's parsed, stored and dead-lettered counts still come out once."""
    from soc.consumer import SpoolConsumer
    from soc.deadletter import DeadLetterStore
    from soc.enrich import Enricher, RegisterIndex
    from soc.metrics import SocMetrics
    from soc.pipeline import Pipeline
    from soc.spool import Spool, spool_source
    from soc.store.base import StoreUnavailable
    from soc.store.sqlite import SQLiteStore

    class DownOnce(SQLiteStore):
        calls = 0

        def write_encoded(self, encoded: Any) -> Any:
            DownOnce.calls += 1
            if DownOnce.calls == 2:
                raise StoreUnavailable("down for a moment")
            return super().write_encoded(encoded)

    metrics = SocMetrics()
    pipeline = Pipeline(DownOnce(tmp_path / "events.db"), DeadLetterStore(tmp_path / "dead.db"),
                        Enricher(RegisterIndex()), retry_seconds=0)
    spool = Spool(tmp_path / "spool")
    event = lambda n: json.dumps({"@timestamp": "2026-11-20T03:00:00Z", "message": f"n{n}"}).encode()  # noqa: E731
    spool.append([(spool_source("json", "udp:192.0.2.1"), event(i)) for i in range(10)]
                 + [(spool_source("json", "udp:192.0.2.1"), b"not json {")]
                 + [(spool_source("json", "tcp:192.0.2.2"), event(100 + i)) for i in range(5)])
    consumer = SpoolConsumer(spool, pipeline, metrics)
    with pytest.raises(StoreUnavailable):
        consumer.drain_once()
    assert consumer.drain_once() == 16
    totals = metrics.ingest_totals()
    assert {k: totals["udp"][k] for k in ("parsed", "stored", "dead_lettered")} == {
        "parsed": 10, "stored": 10, "dead_lettered": 1}
    assert {k: totals["tcp"][k] for k in ("parsed", "stored", "dead_lettered")} == {
        "parsed": 5, "stored": 5, "dead_lettered": 0}
