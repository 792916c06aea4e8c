"""Job events reach the SOC as ECS documents (dataset yunshu.ansible), once each, enriched from the register."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from core.runtime import Runtime
from infra.jobs import JobEventView, Jobs
from portal.job_events import DATASET, SocSink, job_forwarder
from soc.service import open_soc
from soc.store.base import SearchQuery, StoreUnavailable

PLAY = """
- name: Local
  hosts: all
  gather_facts: false
  tasks:
    - name: Touch a marker
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "x\\n"
        mode: "0644"
    - name: Fail on purpose
      ansible.builtin.fail:
        msg: nope
"""


def test_job_events_are_searchable_in_the_soc(sqlite_rt: Runtime, tmp_path: Path) -> None:
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    web-01:\n      ansible_connection: local\n"
                                      f"      ansible_python_interpreter: {sys.executable}\n")
    jobs = Jobs(sqlite_rt)
    job_id = jobs.create("playbook", str(tmp_path / "play.yml"), {}, "alice")
    sink = SocSink(sqlite_rt)
    seen: list = []

    def forward(view, raw) -> None:  # type: ignore[no-untyped-def]
        seen.append((view, raw))
        sink(job_id, view, raw)

    record = jobs.run(job_id, tmp_path / "inv.yml", extravars={"out": str(tmp_path / "m")}, on_event=forward)
    sink.flush()
    query = SearchQuery(where={"event.dataset": DATASET}, limit=50)
    stored = sink.soc.store.count(query)
    for view, raw in seen:  # the same stream again (a replay) is stored once: ids are job + sequence
        sink(job_id, view, raw)
    sink.flush()
    assert sink.soc.store.count(query) == stored
    found = [event for _, event in sink.soc.store.search(query).hits]
    sink.close()
    assert record["status"] == "failed"
    actions = sorted(e["event"]["action"] for e in found)
    assert actions == ["playbook_on_play_start", "playbook_on_stats", "runner_on_failed", "runner_on_ok"]
    failed = next(e for e in found if e["event"]["action"] == "runner_on_failed")
    assert failed["event"]["outcome"] == "failure" and failed["host"]["name"] == "web-01"
    assert "nope" in failed["message"] and failed["labels"]["job_id"] == str(job_id)


def _events(count: int) -> list[tuple[JobEventView, dict[str, Any]]]:
    return [(JobEventView(seq, "runner_on_ok", "web-01", "Touch a marker", False, False, None),
             {"created": "2026-11-30T08:00:00+00:00", "event_data": {"playbook": "play.yml"}})
            for seq in range(1, count + 1)]


def test_sink_uses_an_open_soc_and_leaves_it_open(sqlite_rt: Runtime) -> None:
    """Given the server's SOC, the sink stores and counts there and does not close it (nor open another)."""
    soc = open_soc(sqlite_rt)
    closed: list[bool] = []
    soc.close = lambda: closed.append(True)  # type: ignore[method-assign]
    try:
        sink = SocSink(sqlite_rt, soc=soc)
        assert sink.soc is soc
        sink.on_created(42, 1)
        for view, raw in _events(3):
            sink.on_event(view, raw)
        sink.close()
        assert closed == []
        assert soc.store.count(SearchQuery(where={"labels.job_id": "42"}, limit=10)) == 3  # still usable
        assert soc.metrics.ingest_totals()["job"]["stored"] == 3
    finally:
        del soc.close
        soc.close()


def test_sink_closes_the_soc_it_opened(sqlite_rt: Runtime) -> None:
    sink = SocSink(sqlite_rt)
    real_close, closed = sink.soc.close, []

    def close() -> None:
        closed.append(True)
        real_close()

    sink.soc.close = close  # type: ignore[method-assign]
    sink.close()
    assert closed == [True]


def _down(soc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any) -> Any:
        raise StoreUnavailable("switched off by the test")

    monkeypatch.setattr(soc.store, "write_encoded", refuse, raising=False)
    monkeypatch.setattr(soc.store, "write", refuse)


def test_job_sink_only_warns_when_the_store_is_down(sqlite_rt: Runtime, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A job goes on when the SOC fails: a warning, then nothing more is forwarded."""
    soc = open_soc(sqlite_rt)
    _down(soc, monkeypatch)
    sink = job_forwarder(sqlite_rt, soc)
    assert sink is not None
    sink.pipeline.retry_seconds = 0
    sink.batch = 2
    sink.on_created(7, 1)
    with caplog.at_level(logging.WARNING, logger="yunshu.jobs"):
        for view, raw in _events(5):
            sink.on_event(view, raw)
        sink.close()
    assert sink.failed and sink.buffer == []
    assert [r.getMessage() for r in caplog.records].count(
        "job 7: events no longer forwarded to the SOC (StoreUnavailable: switched off by the test); the job goes on"
    ) == 1
    strict = SocSink(sqlite_rt, soc=soc)  # without warn_only, a failure is raised
    strict.pipeline.retry_seconds = 0
    strict(7, *_events(1)[0])
    with pytest.raises(StoreUnavailable):
        strict.flush()
    soc.close()
