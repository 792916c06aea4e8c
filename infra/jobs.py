"""Automation jobs: a playbook run with a record (who, what, scope, status, rc, per-host stats, events, artifacts,
duration), a concurrency limit across processes, cancellation, a timeout and live events for the caller.

A job is created ``queued``; ``run`` waits for a free slot (at most ``jobs.max_concurrent`` running, counted in the
database, so CLI processes and the console share the limit), runs the playbook through ansible-runner and records
the outcome. Cancellation is a flag on the record that the run polls; every transition goes to the audit chain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from infra.ansible_run import PlaybookResult, run_playbook
from infra.jobs_models import FINISHED, Job, JobEvent

KEPT_EVENTS = {"playbook_on_play_start", "playbook_on_task_start", "runner_on_ok", "runner_on_failed",
               "runner_on_unreachable", "runner_on_skipped", "runner_item_on_failed", "playbook_on_stats"}
KINDS = ("ipv6_migration", "onboard", "evidence", "decommission", "playbook")


class JobRefused(RuntimeError):
    """The job cannot start (no free slot in time, unknown or finished job); the message says why."""


@dataclass(frozen=True)
class JobEventView:
    """An ansible-runner event reduced to what a person follows: which host, which task, what happened."""

    seq: int
    event: str
    host: str | None
    task: str | None
    changed: bool
    failed: bool
    message: str | None


def reduce_event(event: dict[str, Any]) -> JobEventView | None:
    """The part of a runner event worth keeping (None for events nobody follows)."""
    name = event.get("event", "")
    if name not in KEPT_EVENTS:
        return None
    data = event.get("event_data") or {}
    res = data.get("res") if isinstance(data.get("res"), dict) else {}
    failed = name in ("runner_on_failed", "runner_on_unreachable", "runner_item_on_failed") and not data.get(
        "ignore_errors")
    message = res.get("msg") if isinstance(res.get("msg"), str) else None
    if name == "playbook_on_play_start":
        message = data.get("play")
    return JobEventView(seq=int(event.get("counter", 0)), event=name, host=data.get("host"),
                        task=(data.get("task") or None), changed=bool(res.get("changed")), failed=failed,
                        message=(message or None) and str(message)[:2000])


def _now() -> datetime:
    return datetime.now(UTC)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def job_dict(job: Job) -> dict[str, Any]:
    """A job record as JSON-ready data."""
    return {
        "id": job.id, "kind": job.kind, "playbook": job.playbook, "scope": json.loads(job.scope), "limit": job.limit,
        "check": job.check_mode, "requested_by": job.requested_by, "status": job.status, "rc": job.rc,
        "stats": json.loads(job.stats) if job.stats else {}, "result": json.loads(job.result) if job.result else None,
        "error": job.error, "cancel_requested": job.cancel_requested, "timeout_s": job.timeout_s,
        "artifacts": job.artifacts, "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None, "duration_s": job.duration_s,
    }


class Jobs:
    """Create, run, cancel and read automation jobs of one control plane."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.settings = rt.settings.jobs
        self.dir = rt.settings.home / "jobs"

    def create(self, kind: str, playbook: str, scope: dict[str, Any], requested_by: str, *, limit: str | None = None,
               check: bool = False, timeout_s: int | None = None) -> int:
        """Record a queued job; returns its id."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}; expected one of {', '.join(KINDS)}")
        with self.rt.transaction() as session:
            job = Job(kind=kind, playbook=playbook, scope=_dump(scope), limit=limit, check_mode=check,
                      requested_by=requested_by, status="queued", cancel_requested=False,
                      timeout_s=timeout_s or self.settings.timeout_s, created_at=_now())
            session.add(job)
            session.flush()
            self.rt.audit.append(session, actor=requested_by, action="job.created", object_type="job",
                                 object_id=str(job.id), payload={"kind": kind, "playbook": playbook, "scope": scope,
                                                                 "check": check})
            return job.id

    def _claim_slot(self, job_id: int) -> bool:
        with self.rt.transaction() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise JobRefused(f"job {job_id} does not exist")
            if job.status != "queued":
                raise JobRefused(f"job {job_id} is {job.status}, not queued")
            if job.cancel_requested:
                return True  # let run() record the cancellation
            running = session.scalar(select(func.count()).select_from(Job).where(Job.status == "running")) or 0
            if running >= self.settings.max_concurrent:
                return False
            job.status, job.started_at = "running", _now()
            return True

    def _finish(self, job_id: int, status: str, **values: Any) -> None:
        with self.rt.transaction() as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.status, job.finished_at = status, _now()
            started = job.started_at or job.created_at
            if started.tzinfo is None:
                started = started.replace(tzinfo=UTC)
            job.duration_s = round((job.finished_at - started).total_seconds(), 3)
            for key, value in values.items():
                setattr(job, key, value)
            self.rt.audit.append(session, actor=job.requested_by, action=f"job.{status}", object_type="job",
                                 object_id=str(job_id), payload={"rc": job.rc, "kind": job.kind})

    def cancel(self, job_id: int, actor: str) -> str:
        """Ask a queued or running job to stop; returns its status at the time of asking."""
        with self.rt.transaction() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise JobRefused(f"job {job_id} does not exist")
            if job.status in FINISHED:
                raise JobRefused(f"job {job_id} has already finished ({job.status})")
            job.cancel_requested = True
            self.rt.audit.append(session, actor=actor, action="job.cancel_requested", object_type="job",
                                 object_id=str(job_id), payload={"status": job.status})
            return job.status

    def _cancel_requested(self, job_id: int) -> bool:
        with self.rt.sessions() as session:
            return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    def run(self, job_id: int, inventory: Path, *, extravars: dict[str, Any] | None = None,
            on_event: Callable[[JobEventView, dict[str, Any]], None] | None = None,
            summarise: Callable[[PlaybookResult], dict[str, Any]] | None = None) -> dict[str, Any]:
        """Wait for a slot, run the job's playbook and record the outcome; returns the finished record.

        ``on_event`` sees every kept event (reduced, and the raw runner event) as it happens; ``summarise`` turns
        the run into the job's ``result`` (e.g. which hosts were verified)."""
        deadline = time.monotonic() + self.settings.queue_wait_s
        while not self._claim_slot(job_id):
            if time.monotonic() > deadline:
                self._finish(job_id, "error", error=f"no free job slot within {self.settings.queue_wait_s} s "
                                                    f"(at most {self.settings.max_concurrent} jobs run at once)")
                raise JobRefused(f"job {job_id}: no free slot within {self.settings.queue_wait_s} s")
            time.sleep(0.5)
        with self.rt.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            playbook, limit, check, timeout = job.playbook, job.limit, job.check_mode, job.timeout_s
            canceled = job.cancel_requested
        if canceled:  # recorded after the read's transaction ends (on SQLite it holds the one write lock)
            self._finish(job_id, "canceled", error="canceled before it started")
            return self.show(job_id)
        private = self.dir / str(job_id)
        seq = 0
        pending: list[JobEventView] = []
        last_poll = [0.0, False]
        last_store = [0.0]

        def handle(event: dict[str, Any]) -> None:
            nonlocal seq
            view = reduce_event(event)
            if view is None:
                return
            seq += 1
            view = JobEventView(seq, view.event, view.host, view.task, view.changed, view.failed, view.message)
            pending.append(view)
            now = time.monotonic()
            # stored at least once a second (and at each new task), so the console can follow the job live
            if len(pending) >= 50 or now - last_store[0] >= 1.0 or view.event in (
                    "playbook_on_task_start", "playbook_on_stats"):
                self._store_events(job_id, pending)
                last_store[0] = now
            if on_event is not None:
                on_event(view, event)

        def cancelled() -> bool:
            now = time.monotonic()
            if now - last_poll[0] >= 1.0:
                last_poll[0], last_poll[1] = now, self._cancel_requested(job_id)
            return bool(last_poll[1])

        try:
            outcome = run_playbook(playbook, inventory, private, extravars=extravars, limit=limit, check=check,
                                   forks=self.settings.forks, timeout=timeout, on_event=handle, cancelled=cancelled,
                                   keep_events=summarise is not None)
        except Exception as exc:  # the run could not start at all: recorded, then raised
            self._store_events(job_id, pending)
            self._finish(job_id, "error", error=f"{type(exc).__name__}: {exc}")
            raise
        self._store_events(job_id, pending)
        result = summarise(outcome) if summarise is not None else None
        status = outcome.status if outcome.status in FINISHED else "failed"
        self._finish(job_id, status, rc=outcome.rc, stats=_dump(outcome.stats), artifacts=str(outcome.artifacts),
                     result=_dump(result) if result is not None else None)
        return self.show(job_id)

    def _store_events(self, job_id: int, pending: list[JobEventView]) -> None:
        if not pending:
            return
        with self.rt.transaction() as session:
            for view in pending:
                session.add(JobEvent(job_id=job_id, seq=view.seq, ts=_now(), event=view.event, host=view.host,
                                     task=view.task and view.task[:256], changed=view.changed, failed=view.failed,
                                     message=view.message))
        pending.clear()

    def show(self, job_id: int, events: bool = True) -> dict[str, Any]:
        """One job with (optionally) its events."""
        with self.rt.sessions() as session:
            return show_job(session, job_id, events)

    def list(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        """The most recent jobs, newest first."""
        with self.rt.sessions() as session:
            return list_jobs(session, limit, status)


def show_job(session: Session, job_id: int, events: bool = True, after: int = 0) -> dict[str, Any]:
    """One job read in ``session``, with its events (those after sequence number ``after``)."""
    job = session.get(Job, job_id)
    if job is None:
        raise JobRefused(f"job {job_id} does not exist")
    out = job_dict(job)
    if events:
        rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after)
                               .order_by(JobEvent.seq))
        out["events"] = [{"seq": e.seq, "ts": e.ts.isoformat(), "event": e.event, "host": e.host, "task": e.task,
                          "changed": e.changed, "failed": e.failed, "message": e.message} for e in rows]
    return out


def list_jobs(session: Session, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    """The most recent jobs read in ``session``, newest first."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status:
        query = query.where(Job.status == status)
    return [job_dict(j) for j in session.scalars(query)]
