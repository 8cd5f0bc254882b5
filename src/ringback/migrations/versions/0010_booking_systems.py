"""booking systems: the outside booking's ids on its sync row, sealed credentials, change
cursors, push channels

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 12:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringback.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calendar_syncs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ringback_ref", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("external_ref", sa.String(length=300), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_calendar_syncs_ringback_ref"), ["ringback_ref"], unique=False
        )
    op.create_table(
        "booking_system_credentials",
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(length=20), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("connected_at", ringback.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("location_id", name=op.f("pk_booking_system_credentials")),
    )
    op.create_table(
        "booking_system_states",
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("read_at", ringback.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("location_id", name=op.f("pk_booking_system_states")),
    )
    op.create_table(
        "booking_system_channels",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("calendar_id", sa.String(length=300), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=False),
        sa.Column("token", sa.String(length=100), nullable=False),
        sa.Column("expires_at", ringback.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_system_channels")),
    )
    with op.batch_alter_table("booking_system_channels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_booking_system_channels_location_id"), ["location_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("booking_system_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_booking_system_channels_location_id"))
    op.drop_table("booking_system_channels")
    op.drop_table("booking_system_states")
    op.drop_table("booking_system_credentials")
    with op.batch_alter_table("calendar_syncs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calendar_syncs_ringback_ref"))
        batch_op.drop_column("external_ref")
        batch_op.drop_column("ringback_ref")
