"""Drill records (攻防演练 / 应急演练): drills, steps, alert links, findings.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drills",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("scenario_code", sa.String(64)),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("teams", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("planned_start", TZ, nullable=False),
        sa.Column("actual_start", TZ),
        sa.Column("actual_end", TZ),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_drills_status", "drills", ["status"])
    op.create_table(
        "drill_steps",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("drill_id", sa.Integer(), sa.ForeignKey("drills.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("technique", sa.String(16), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("expected_rule", sa.String(64)),
        sa.Column("planned_at", TZ, nullable=False),
        sa.Column("executed_at", TZ),
    )
    op.create_index("ix_drill_steps_drill_id", "drill_steps", ["drill_id"])
    op.create_table(
        "drill_alert_links",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("step_id", sa.Integer(), sa.ForeignKey("drill_steps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("linked_by", sa.String(64), nullable=False),
        sa.Column("linked_at", TZ, nullable=False),
        sa.UniqueConstraint("step_id", "alert_id", name="uq_drill_alert_links_step_id"),
    )
    op.create_index("ix_drill_alert_links_step_id", "drill_alert_links", ["step_id"])
    op.create_index("ix_drill_alert_links_alert_id", "drill_alert_links", ["alert_id"])
    op.create_table(
        "drill_findings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("drill_id", sa.Integer(), sa.ForeignKey("drills.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step_id", sa.Integer(), sa.ForeignKey("drill_steps.id", ondelete="SET NULL")),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("remediation", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(64)),
        sa.Column("due", TZ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("closed_at", TZ),
    )
    op.create_index("ix_drill_findings_drill_id", "drill_findings", ["drill_id"])


def downgrade() -> None:
    for table in ("drill_findings", "drill_alert_links", "drill_steps", "drills"):
        op.drop_table(table)
