"""Drill records in the control-plane database: the drill, its steps, the alerts linked to steps, findings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base
from inventory.models import utcnow


class Drill(Base):
    __tablename__ = "drills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(32))  # attack_defense (攻防演练) | emergency (应急演练)
    scenario_code: Mapped[str | None] = mapped_column(String(64))
    scenario: Mapped[str] = mapped_column(Text, default="")
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)  # system ids
    teams: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="planned", index=True)  # planned|running|completed
    planned_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actual_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actual_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    steps: Mapped[list[DrillStep]] = relationship(order_by="DrillStep.seq", cascade="all, delete-orphan")
    findings: Mapped[list[DrillFinding]] = relationship(order_by="DrillFinding.id", cascade="all, delete-orphan")


class DrillStep(Base):
    __tablename__ = "drill_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("drills.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(256))
    technique: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(255))
    expected_rule: Mapped[str | None] = mapped_column(String(64))
    planned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    executed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DrillAlertLink(Base):
    __tablename__ = "drill_alert_links"
    __table_args__ = (UniqueConstraint("step_id", "alert_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("drill_steps.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))  # auto | manual
    linked_by: Mapped[str] = mapped_column(String(64))
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DrillFinding(Base):
    __tablename__ = "drill_findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("drills.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("drill_steps.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(256))
    severity: Mapped[str] = mapped_column(String(16))
    remediation: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(64))
    due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | in_progress | closed
    status_by: Mapped[str | None] = mapped_column(String(64))  # who set the current status, and when
    status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_note: Mapped[str | None] = mapped_column(Text)  # why (required when a closed finding is reopened)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
