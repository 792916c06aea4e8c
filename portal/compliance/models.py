"""Stored 等保 evaluations (one row per run, for the trend) and auditors' answers to manual items."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class EvaluationRun(Base):
    """One evaluation of one system: headline numbers, the evidence digests and the full results (JSON)."""

    __tablename__ = "compliance_evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system_id: Mapped[str] = mapped_column(ForeignKey("systems.id"), index=True)
    evaluated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    level: Mapped[int] = mapped_column(Integer)
    conclusion: Mapped[str | None] = mapped_column(String(16))
    provisional: Mapped[bool] = mapped_column(Boolean)
    rate: Mapped[float | None] = mapped_column(Float)
    counts: Mapped[str] = mapped_column(Text)  # JSON {result: n}
    high_risks: Mapped[int] = mapped_column(Integer)
    answers_used: Mapped[int] = mapped_column(Integer)
    evidence_digests: Mapped[str] = mapped_column(Text)  # JSON {item: sha256}
    results: Mapped[str] = mapped_column(Text)  # JSON: policies.mlps.report.report_data(...)
    details: Mapped[str] = mapped_column(Text)  # JSON: what each collector read


class ComplianceAnswer(Base):
    """An auditor's result for one manual (or overridden) requirement; the newest per unit is used."""

    __tablename__ = "compliance_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system_id: Mapped[str] = mapped_column(ForeignKey("systems.id"), index=True)
    unit: Mapped[str] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(String(8))
    auditor: Mapped[str] = mapped_column(String(64))
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text)
    mitigated: Mapped[bool] = mapped_column(Boolean)
