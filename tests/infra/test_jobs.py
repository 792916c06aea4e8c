"""Automation jobs: records, events, audit, cancellation, timeouts and the concurrency limit (local playbooks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.runtime import Runtime, open_runtime
from core.settings import Settings
from infra.jobs import JobRefused, Jobs
from tests.conftest import make_runtime

INVENTORY = "all:\n  hosts:\n    local-a:\n      ansible_connection: local\n      ansible_python_interpreter: '{py}'\n"
PLAY = """
- name: Local work
  hosts: all
  gather_facts: false
  tasks:
    - name: Write a file
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "done\\n"
        mode: "0644"
    - name: Wait
      ansible.builtin.command: sleep {{ wait | default(0) }}
      changed_when: false
    - name: Fail when asked
      ansible.builtin.fail:
        msg: induced failure
      when: fail | default(false)
"""


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path / "home")
    yield runtime
    runtime.close()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    import sys

    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "inv.yml").write_text(INVENTORY.format(py=sys.executable))
    return tmp_path / "play.yml", tmp_path / "inv.yml"


def test_a_job_is_recorded_with_stats_events_and_audit(rt: Runtime, files: tuple[Path, Path], tmp_path: Path) -> None:
    play, inv = files
    jobs = Jobs(rt)
    seen: list[str] = []
    job_id = jobs.create("playbook", str(play), {"hosts": ["local-a"]}, "alice")
    record = jobs.run(job_id, inv, extravars={"out": str(tmp_path / "out.txt")},
                      on_event=lambda view, _raw: seen.append(view.event))
    assert record["status"] == "successful" and record["rc"] == 0
    assert record["stats"]["local-a"]["changed"] == 1 and record["requested_by"] == "alice"
    assert record["duration_s"] > 0 and Path(record["artifacts"]).is_dir()
    tasks = [e["task"] for e in record["events"] if e["event"] == "runner_on_ok"]
    assert tasks == ["Write a file", "Wait"] and "playbook_on_stats" in seen
    assert (tmp_path / "out.txt").read_text() == "done\n"
    failed = jobs.run(jobs.create("playbook", str(play), {}, "alice"), inv,
                      extravars={"out": str(tmp_path / "out.txt"), "fail": True})
    assert failed["status"] == "failed" and failed["stats"]["local-a"]["failures"] == 1
    assert any(e["failed"] and e["message"] == "induced failure" for e in failed["events"])
    with rt.sessions() as s:
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "job")))
    assert actions.count("job.created") == 2 and "job.successful" in actions and "job.failed" in actions
    assert [j["id"] for j in jobs.list()] == [failed["id"], record["id"]]


def test_cancel_stops_a_running_job(rt: Runtime, files: tuple[Path, Path], tmp_path: Path) -> None:
    play, inv = files
    jobs = Jobs(rt)
    job_id = jobs.create("playbook", str(play), {}, "alice")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(jobs.run(
        job_id, inv, extravars={"out": str(tmp_path / "o"), "wait": 60})))
    worker.start()
    deadline = time.monotonic() + 30
    while jobs.show(job_id, events=False)["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert jobs.cancel(job_id, "bob") == "running"
    worker.join(45)
    assert not worker.is_alive() and result["status"] == "canceled"
    with pytest.raises(JobRefused, match="already finished"):
        jobs.cancel(job_id, "bob")


def test_cancel_between_claim_and_start_is_recorded(rt: Runtime, files: tuple[Path, Path], tmp_path: Path) -> None:
    """A cancel arriving after the job took its slot but before the playbook starts: the job ends canceled (the
    run must not wait on its own read transaction for the SQLite write lock)."""
    play, inv = files
    jobs = Jobs(rt)
    job_id = jobs.create("playbook", str(play), {}, "alice")
    claim = jobs._claim_slot

    def claim_then_cancel(claimed_id: int) -> bool:
        taken = claim(claimed_id)
        jobs.cancel(claimed_id, "bob")
        return taken

    jobs._claim_slot = claim_then_cancel  # type: ignore[method-assign]
    record = jobs.run(job_id, inv, extravars={"out": str(tmp_path / "o"), "wait": 60})
    assert record["status"] == "canceled" and record["error"] == "canceled before it started"


def test_timeout_ends_a_job(rt: Runtime, files: tuple[Path, Path], tmp_path: Path) -> None:
    play, inv = files
    jobs = Jobs(rt)
    job_id = jobs.create("playbook", str(play), {}, "alice", timeout_s=10)
    record = jobs.run(job_id, inv, extravars={"out": str(tmp_path / "o"), "wait": 60})
    assert record["status"] == "timeout"


def test_concurrency_limit_queues_the_second_job(tmp_path: Path, files: tuple[Path, Path]) -> None:
    play, inv = files
    rt = open_runtime(Settings(home=tmp_path / "home1", jobs={"max_concurrent": 1}))  # type: ignore[arg-type]
    try:
        jobs = Jobs(rt)
        first, second = (jobs.create("playbook", str(play), {}, "alice") for _ in range(2))
        records: dict[int, dict] = {}
        threads = [threading.Thread(target=lambda j=j: records.update({j: jobs.run(
            j, inv, extravars={"out": str(tmp_path / f"o{j}"), "wait": 3})})) for j in (first, second)]
        for t in threads:
            t.start()
            time.sleep(0.3)
        for t in threads:
            t.join(60)
        assert records[first]["status"] == records[second]["status"] == "successful"
        assert records[second]["started_at"] >= records[first]["finished_at"]
    finally:
        rt.close()


def test_bad_requests_are_named(rt: Runtime) -> None:
    jobs = Jobs(rt)
    with pytest.raises(ValueError, match="unknown job kind 'deploy'"):
        jobs.create("deploy", "x.yml", {}, "alice")
    with pytest.raises(JobRefused, match="job 999 does not exist"):
        jobs.show(999)
