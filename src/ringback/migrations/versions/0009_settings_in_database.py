"""settings in the database: the settings document with its version, and the audit log

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 12:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ringback.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "settings_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", _JSON, nullable=False),
        sa.Column("managed_by", sa.String(length=1000), nullable=True),
        sa.Column("updated_at", ringback.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settings_state")),
    )
    op.create_table(
        "settings_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", ringback.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=1100), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("section", sa.String(length=60), nullable=False),
        sa.Column("before", _JSON, nullable=True),
        sa.Column("after", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settings_changes")),
    )
    op.create_index(
        "ix_settings_changes_changed_at", "settings_changes", ["changed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_settings_changes_changed_at", table_name="settings_changes")
    op.drop_table("settings_changes")
    op.drop_table("settings_state")
