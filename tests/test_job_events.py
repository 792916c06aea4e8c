"""Job events reach the SOC as ECS documents (dataset yunshu.ansible), once each, enriched from the register."""

from __future__ import annotations

import sys
from pathlib import Path

from core.runtime import Runtime
from infra.jobs import Jobs
from portal.job_events import DATASET, forward_to_soc
from soc.store.base import SearchQuery

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
    sink = forward_to_soc(sqlite_rt)
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
