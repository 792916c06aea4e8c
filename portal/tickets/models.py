"""Tickets, their history and the jobs a ticket starts (provisioning plan, on-boarding, resource decommission)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from inventory.models import utcnow

TICKET_TYPES = ("cloud_resources", "cloud_migration", "ipv6", "change", "internet_exposure", "decommission",
                "remediation")
STATES = ("draft", "submitted", "admission", "security_review", "resource_approval", "provisioning", "onboarding",
          "delivered", "renewed", "reclaiming", "closed", "rejected", "withdrawn")
APPROVAL_STATES = ("security_review", "resource_approval")
ACTIVE_STATES = ("delivered", "renewed")  # resources in use (expiry applies)
FINAL_STATES = ("closed", "rejected", "withdrawn")
JOB_KINDS = ("provision", "onboard", "resource_decommission")


def ticket_ref(ticket_id: int) -> str:
    """The ticket's public reference, also the ``ticket_id`` label on every planned resource."""
    return f"TKT-{ticket_id:06d}"


class Ticket(Base):
    """One department request and where it stands."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(24), index=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    title: Mapped[str] = mapped_column(String(200))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)
    system_id: Mapped[str | None] = mapped_column(ForeignKey("systems.id"), index=True)
    new_system: Mapped[str | None] = mapped_column(Text)  # JSON {name, description} of a system not yet registered
    mlps_level: Mapped[int] = mapped_column(Integer)
    grading: Mapped[str | None] = mapped_column(Text)  # JSON: the GB/T 22240 answers when given
    data_class: Mapped[str] = mapped_column(String(16))
    # JSON: the CloudRequest-shaped spec as submitted; a 等保整改 ticket keeps {"compliance": {…finding…}} here
    resources: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    justification: Mapped[str] = mapped_column(Text)
    data_catalog_id: Mapped[str] = mapped_column(String(64))
    crypto_plan_ref: Mapped[str | None] = mapped_column(String(128))
    requester: Mapped[str] = mapped_column(String(64), index=True)
    security_reviewer: Mapped[str | None] = mapped_column(String(64))
    resource_approver: Mapped[str | None] = mapped_column(String(64))
    admission: Mapped[str | None] = mapped_column(Text)  # JSON: schema, quota and policy checks
    plan: Mapped[str | None] = mapped_column(Text)  # JSON: the plan (plan mode, nothing applied)
    stage_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    grace_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    renewals: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def ref(self) -> str:
        return ticket_ref(self.id)


class TicketHistory(Base):
    """One step of a ticket: who did what, from which state to which."""

    __tablename__ = "ticket_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(Text)


class TicketJob(Base):
    """A job a ticket started; at most one of each kind per ticket (the unique constraint backs the state checks)."""

    __tablename__ = "ticket_jobs"
    __table_args__ = (UniqueConstraint("ticket_id", "kind", name="uq_ticket_jobs_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    mode: Mapped[str] = mapped_column(String(16))  # plan | ansible
    status: Mapped[str] = mapped_column(String(16))  # queued | running | planned | successful | failed | not_run
    requested_by: Mapped[str] = mapped_column(String(64))
    result: Mapped[str | None] = mapped_column(Text)  # JSON
    error: Mapped[str | None] = mapped_column(Text)
    infra_job_id: Mapped[int | None] = mapped_column(Integer)  # the Ansible job (infra.jobs) when one ran
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
