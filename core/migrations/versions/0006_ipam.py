"""IPAM allocations (department /48, network /64, host addresses).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ipam_allocations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("value", sa.String(49), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "owner", name="uq_ipam_allocations_kind"),
        sa.UniqueConstraint("value", name="uq_ipam_allocations_value"),
    )


def downgrade() -> None:
    op.drop_table("ipam_allocations")
