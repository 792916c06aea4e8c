"""SOC alerts: alerts, the events behind them, history, notes and webhook deliveries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("rule_title", sa.String(256), nullable=False),
        sa.Column("rule_level", sa.String(16), nullable=False),
        sa.Column("correlation", sa.Boolean(), nullable=False),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("group_fields", sa.JSON(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(64)),
        sa.Column("department_code", sa.String(32)),
        sa.Column("system_id", sa.String(64)),
        sa.Column("mlps_level", sa.Integer()),
        sa.Column("data_class", sa.String(16)),
        sa.Column("attack", sa.JSON(), nullable=False),
        sa.Column("source_ip", sa.String(45)),
        sa.Column("host_name", sa.String(255)),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("acknowledge_due", TZ, nullable=False),
        sa.Column("resolve_due", TZ, nullable=False),
        sa.Column("acknowledged_at", TZ),
        sa.Column("resolved_at", TZ),
    )
    for column in ("rule_id", "group_key", "severity", "status", "department_code", "system_id", "source_ip",
                   "last_seen", "created_at"):
        op.create_index(f"ix_alerts_{column}", "alerts", [column])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_time", TZ, nullable=False),
        sa.UniqueConstraint("rule_id", "event_id", name="uq_alert_events_rule_id"),
    )
    op.create_index("ix_alert_events_alert_id", "alert_events", ["alert_id"])
    op.create_table(
        "alert_notes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_alert_notes_alert_id", "alert_notes", ["alert_id"])
    op.create_table(
        "alert_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(64)),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_alert_history_alert_id", "alert_history", ["alert_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.String(512), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("delivered_at", TZ),
    )
    op.create_index("ix_webhook_deliveries_alert_id", "webhook_deliveries", ["alert_id"])
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])


def downgrade() -> None:
    for table in ("webhook_deliveries", "alert_history", "alert_notes", "alert_events", "alerts"):
        op.drop_table(table)
