"""Drill findings move open → in_progress → closed: who set the status, when and why.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = ("status_by", "status_at", "status_note")


def upgrade() -> None:
    with op.batch_alter_table("drill_findings") as batch:
        batch.add_column(sa.Column("status_by", sa.String(64)))
        batch.add_column(sa.Column("status_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("status_note", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("drill_findings") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
