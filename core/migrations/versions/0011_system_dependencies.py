"""System dependencies in the register (which systems a system needs; migration waves respect them).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "system_dependencies",
        sa.Column("system_id", sa.String(length=32), nullable=False),
        sa.Column("depends_on_id", sa.String(length=32), nullable=False),
        sa.CheckConstraint("system_id <> depends_on_id", name=op.f("ck_system_dependencies_not_self")),
        sa.ForeignKeyConstraint(["system_id"], ["systems.id"], name=op.f("fk_system_dependencies_system_id_systems"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["depends_on_id"], ["systems.id"],
                                name=op.f("fk_system_dependencies_depends_on_id_systems"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("system_id", "depends_on_id", name=op.f("pk_system_dependencies")),
    )
    op.create_index(op.f("ix_system_dependencies_depends_on_id"), "system_dependencies", ["depends_on_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_system_dependencies_depends_on_id"), table_name="system_dependencies")
    op.drop_table("system_dependencies")
