"""reminders and attendance: appointment_reminders, planned and attendance columns, consent
to texts recorded by an import

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 12:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringback.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_UNPLANNED = "reminders_planned_at IS NULL AND status = 'booked'"


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reminders_planned_at", ringback.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("attendance", sa.String(length=10), nullable=True))
        batch_op.add_column(
            sa.Column("attendance_at", ringback.db.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("text_consent_at", ringback.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_appointments_reminders_unplanned",
        "appointments",
        ["starts_at"],
        unique=False,
        sqlite_where=sa.text(_UNPLANNED),
        postgresql_where=sa.text(_UNPLANNED),
    )
    op.create_table(
        "appointment_reminders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "appointment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column(
            "patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("offset_minutes", sa.Integer(), nullable=False),
        sa.Column("due_at", ringback.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("skip_reason", sa.String(length=30), nullable=True),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("lease_until", ringback.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", ringback.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("settled_at", ringback.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_appointment_reminders_appointment_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_appointment_reminders_patient_id_patients"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_appointment_reminders_message_id_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_reminders")),
        sa.UniqueConstraint(
            "appointment_id",
            "offset_minutes",
            name=op.f("uq_appointment_reminders_appointment_id_offset_minutes"),
        ),
    )
    op.create_index(
        "ix_appointment_reminders_due", "appointment_reminders", ["status", "due_at"], unique=False
    )
    op.create_index(
        "ix_appointment_reminders_location_settled",
        "appointment_reminders",
        ["location_id", "settled_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_appointment_reminders_location_settled", table_name="appointment_reminders")
    op.drop_index("ix_appointment_reminders_due", table_name="appointment_reminders")
    op.drop_table("appointment_reminders")
    op.drop_index("ix_appointments_reminders_unplanned", table_name="appointments")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("text_consent_at")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("attendance_at")
        batch_op.drop_column("attendance")
        batch_op.drop_column("reminders_planned_at")
