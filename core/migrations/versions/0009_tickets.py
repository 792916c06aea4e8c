"""Department tickets, their history and the jobs they start.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(24), nullable=False, index=True),
        sa.Column("state", sa.String(24), nullable=False, index=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("department_code", sa.String(16), sa.ForeignKey("departments.code"), nullable=False, index=True),
        sa.Column("system_id", sa.String(32), sa.ForeignKey("systems.id"), nullable=True, index=True),
        sa.Column("new_system", sa.Text(), nullable=True),
        sa.Column("mlps_level", sa.Integer(), nullable=False),
        sa.Column("grading", sa.Text(), nullable=True),
        sa.Column("data_class", sa.String(16), nullable=False),
        sa.Column("resources", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("data_catalog_id", sa.String(64), nullable=False),
        sa.Column("crypto_plan_ref", sa.String(128), nullable=True),
        sa.Column("requester", sa.String(64), nullable=False, index=True),
        sa.Column("security_reviewer", sa.String(64), nullable=True),
        sa.Column("resource_approver", sa.String(64), nullable=True),
        sa.Column("admission", sa.Text(), nullable=True),
        sa.Column("plan", sa.Text(), nullable=True),
        sa.Column("stage_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renewals", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ticket_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(24), nullable=True),
        sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_table(
        "ticket_jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("infra_job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("ticket_id", "kind", name="uq_ticket_jobs_kind"),
    )


def downgrade() -> None:
    op.drop_table("ticket_jobs")
    op.drop_table("ticket_history")
    op.drop_table("tickets")
