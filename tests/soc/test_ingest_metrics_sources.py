"""The two ways events enter the pipeline besides the transports — a drill's replayed attack logs and automation
job events — count in the same ingest metrics, under the bounded sources ``replay`` and ``job``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

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
