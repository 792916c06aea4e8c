"""Records of automation jobs (ansible-runner) and their events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from inventory.models import utcnow

JOB_STATES = ("queued", "running", "successful", "failed", "timeout", "canceled", "error")
FINISHED = frozenset({"successful", "failed", "timeout", "canceled", "error"})


class Job(Base):
    """One playbook run: who asked for what on which scope, and how it went."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    playbook: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text)  # JSON: what the job targets (departments, systems, hosts)
    limit: Mapped[str | None] = mapped_column(Text)
    check_mode: Mapped[bool] = mapped_column(Boolean)
    requested_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    rc: Mapped[int | None] = mapped_column(Integer)
    stats: Mapped[str | None] = mapped_column(Text)  # JSON: host → ok/changed/failures/dark/skipped…
    result: Mapped[str | None] = mapped_column(Text)  # JSON: what the job established (e.g. hosts verified)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    timeout_s: Mapped[int] = mapped_column(Integer)
    artifacts: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float)


class JobEvent(Base):
    """One ansible-runner event worth keeping (task results, play starts, the final stats)."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    event: Mapped[str] = mapped_column(String(48))
    host: Mapped[str | None] = mapped_column(String(64))
    task: Mapped[str | None] = mapped_column(String(256))
    changed: Mapped[bool] = mapped_column(Boolean, default=False)
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str | None] = mapped_column(Text)
