"""funnel outcomes: cancelled, rebooked and kept bookings

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-04 18:40:00

Additive: counters on ``funnel_daily`` and ``funnel_bookings``, the ``funnel_booking_starts``
rollup, and the two appointment indexes the rollup reads by. The days of every missed call
whose thread has an appointment are marked dirty, so the next report recomputes them with
cancellations and reschedules (other days are unchanged: their new counters are 0).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import ringback.db

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("funnel_daily", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancelled", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("rebooked", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("funnel_bookings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancelled", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("cancelled_valued", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("cancelled_value_cents", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.create_table(
        "funnel_booking_starts",
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("starts_at", ringback.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("booked", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "location_id", "day", "starts_at", name=op.f("pk_funnel_booking_starts")
        ),
    )
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.create_index("ix_appointments_conversation_id", ["conversation_id"], unique=False)
        batch_op.create_index(
            "ix_appointments_rescheduled_from_id", ["rescheduled_from_id"], unique=False
        )
    _mark_booked_days_dirty()


def _mark_booked_days_dirty() -> None:
    calls = sa.table(
        "calls",
        sa.column("location_id", sa.String()),
        sa.column("missed_at", ringback.db.UTCDateTime()),
        sa.column("conversation_id", sa.Integer()),
        sa.column("outcome", sa.String()),
    )
    appointments = sa.table("appointments", sa.column("conversation_id", sa.Integer()))
    dirty = sa.table(
        "funnel_dirty",
        sa.column("location_id", sa.String()),
        sa.column("utc_hour", ringback.db.UTCDateTime()),
        sa.column("marked_at", ringback.db.UTCDateTime()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(calls.c.location_id, calls.c.missed_at).where(
            calls.c.outcome == "missed",
            calls.c.missed_at.is_not(None),
            calls.c.conversation_id.in_(
                sa.select(appointments.c.conversation_id).where(
                    appointments.c.conversation_id.is_not(None)
                )
            ),
        )
    )
    hours = {
        (location_id, missed_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
        for location_id, missed_at in rows
    }
    hours -= {
        (loc, hour) for loc, hour in bind.execute(sa.select(dirty.c.location_id, dirty.c.utc_hour))
    }
    if not hours:
        return
    now = datetime.now(UTC)
    bind.execute(
        sa.insert(dirty),
        [{"location_id": loc, "utc_hour": hour, "marked_at": now} for loc, hour in sorted(hours)],
    )


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_appointments_rescheduled_from_id")
        batch_op.drop_index("ix_appointments_conversation_id")
    op.drop_table("funnel_booking_starts")
    with op.batch_alter_table("funnel_bookings", schema=None) as batch_op:
        batch_op.drop_column("cancelled_value_cents")
        batch_op.drop_column("cancelled_valued")
        batch_op.drop_column("cancelled")
    with op.batch_alter_table("funnel_daily", schema=None) as batch_op:
        batch_op.drop_column("rebooked")
        batch_op.drop_column("cancelled")
