"""Initial schema: audit chain, register, users, sessions and API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_digest", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
    )
    op.create_index(op.f("ix_audit_entries_action"), "audit_entries", ["action"], unique=False)
    op.create_index(op.f("ix_audit_entries_object_id"), "audit_entries", ["object_id"], unique=False)
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "departments",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_en", sa.String(length=256), nullable=True),
        sa.Column("parent_code", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_code"], ["departments.code"], name=op.f("fk_departments_parent_code_departments")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_departments")),
    )
    op.create_index(op.f("ix_departments_parent_code"), "departments", ["parent_code"], unique=False)
    op.create_table(
        "networks",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("zone", sa.String(length=32), nullable=False),
        sa.Column("department_code", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_code"], ["departments.code"], name=op.f("fk_networks_department_code_departments")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_networks")),
    )
    op.create_index(op.f("ix_networks_department_code"), "networks", ["department_code"], unique=False)
    op.create_table(
        "systems",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("department_code", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("mlps_level", sa.Integer(), nullable=False),
        sa.Column("grading_info_object", sa.String(length=32), nullable=False),
        sa.Column("grading_info_degree", sa.String(length=32), nullable=False),
        sa.Column("grading_service_object", sa.String(length=32), nullable=False),
        sa.Column("grading_service_degree", sa.String(length=32), nullable=False),
        sa.Column("data_class", sa.String(length=16), nullable=False),
        sa.Column("public_data_level", sa.String(length=4), nullable=False),
        sa.Column("hosting", sa.String(length=16), nullable=False),
        sa.Column("network_stack", sa.String(length=8), nullable=False),
        sa.Column("network_zone", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_activity", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("mlps_level BETWEEN 1 AND 4", name=op.f("ck_systems_mlps_level_range")),
        sa.ForeignKeyConstraint(
            ["department_code"], ["departments.code"], name=op.f("fk_systems_department_code_departments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_systems")),
    )
    op.create_index(op.f("ix_systems_data_class"), "systems", ["data_class"], unique=False)
    op.create_index(op.f("ix_systems_department_code"), "systems", ["department_code"], unique=False)
    op.create_index(op.f("ix_systems_hosting"), "systems", ["hosting"], unique=False)
    op.create_index(op.f("ix_systems_mlps_level"), "systems", ["mlps_level"], unique=False)
    op.create_index(op.f("ix_systems_network_stack"), "systems", ["network_stack"], unique=False)
    op.create_index(op.f("ix_systems_network_zone"), "systems", ["network_zone"], unique=False)
    op.create_index(op.f("ix_systems_status"), "systems", ["status"], unique=False)
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("department_code", sa.String(length=16), nullable=True),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_code"], ["departments.code"], name=op.f("fk_users_department_code_departments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("token_prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_api_tokens_token_digest")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "hosts",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("system_id", sa.String(length=32), nullable=False),
        sa.Column("ipv4", sa.String(length=15), nullable=True),
        sa.Column("ipv6", sa.String(length=45), nullable=True),
        sa.Column("os", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["system_id"], ["systems.id"], name=op.f("fk_hosts_system_id_systems")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_hosts")),
        sa.UniqueConstraint("ipv4", name=op.f("uq_hosts_ipv4")),
        sa.UniqueConstraint("ipv6", name=op.f("uq_hosts_ipv6")),
    )
    op.create_index(op.f("ix_hosts_system_id"), "hosts", ["system_id"], unique=False)
    op.create_table(
        "prefixes",
        sa.Column("cidr", sa.String(length=49), nullable=False),
        sa.Column("family", sa.Integer(), nullable=False),
        sa.Column("network_code", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["network_code"], ["networks.code"], name=op.f("fk_prefixes_network_code_networks")
        ),
        sa.PrimaryKeyConstraint("cidr", name=op.f("pk_prefixes")),
    )
    op.create_index(op.f("ix_prefixes_network_code"), "prefixes", ["network_code"], unique=False)
    op.create_table(
        "web_sessions",
        sa.Column("id_digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id_digest", name=op.f("pk_web_sessions")),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_web_sessions_user_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_index(op.f("ix_prefixes_network_code"), table_name="prefixes")
    op.drop_table("prefixes")
    op.drop_index(op.f("ix_hosts_system_id"), table_name="hosts")
    op.drop_table("hosts")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_index(op.f("ix_systems_status"), table_name="systems")
    op.drop_index(op.f("ix_systems_network_zone"), table_name="systems")
    op.drop_index(op.f("ix_systems_network_stack"), table_name="systems")
    op.drop_index(op.f("ix_systems_mlps_level"), table_name="systems")
    op.drop_index(op.f("ix_systems_hosting"), table_name="systems")
    op.drop_index(op.f("ix_systems_department_code"), table_name="systems")
    op.drop_index(op.f("ix_systems_data_class"), table_name="systems")
    op.drop_table("systems")
    op.drop_index(op.f("ix_networks_department_code"), table_name="networks")
    op.drop_table("networks")
    op.drop_index(op.f("ix_departments_parent_code"), table_name="departments")
    op.drop_table("departments")
    op.drop_table("audit_head")
    op.drop_index(op.f("ix_audit_entries_object_id"), table_name="audit_entries")
    op.drop_index(op.f("ix_audit_entries_action"), table_name="audit_entries")
    op.drop_table("audit_entries")
