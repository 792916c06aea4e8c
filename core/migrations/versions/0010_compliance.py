"""等保 evaluations per system (the trend) and auditors' answers to manual items.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_evaluations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("system_id", sa.String(32), sa.ForeignKey("systems.id"), nullable=False, index=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("conclusion", sa.String(16), nullable=True),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=True),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("high_risks", sa.Integer(), nullable=False),
        sa.Column("answers_used", sa.Integer(), nullable=False),
        sa.Column("evidence_digests", sa.Text(), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
    )
    op.create_table(
        "compliance_answers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("system_id", sa.String(32), sa.ForeignKey("systems.id"), nullable=False, index=True),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("result", sa.String(8), nullable=False),
        sa.Column("auditor", sa.String(64), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("mitigated", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("compliance_answers")
    op.drop_table("compliance_evaluations")
