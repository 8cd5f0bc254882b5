"""waitlist and retention: waitlist entries, slots freed for the waitlist, rebooking and
review-request texts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 16:40:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

import ringback.db
import ringback.models

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, ringback.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "waitlist_openings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=80), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("room_id", sa.String(length=64), nullable=True),
        _when("starts_at", False),
        _when("ends_at", False),
        sa.Column("freed_by_id", _ID, nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("offered", sa.Integer(), nullable=False),
        sa.Column("appointment_id", _ID, nullable=True),
        sa.Column("value_cents", sa.Integer(), nullable=True),
        _when("created_at", False),
        _when("settled_at"),
        sa.ForeignKeyConstraint(
            ["freed_by_id"],
            ["appointments.id"],
            name=op.f("fk_waitlist_openings_freed_by_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_waitlist_openings_appointment_id_appointments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_openings")),
    )
    op.create_index(
        "ix_waitlist_openings_status", "waitlist_openings", ["status", "starts_at"], unique=False
    )
    op.create_index(
        "ix_waitlist_openings_location_created",
        "waitlist_openings",
        ["location_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "waitlist_entries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", _ID, nullable=False),
        sa.Column("service", sa.String(length=80), nullable=False),
        sa.Column("windows", ringback.models.JSONType, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        _when("created_at", False),
        _when("expires_at"),
        _when("offered_at"),
        sa.Column("opening_id", _ID, nullable=True),
        sa.Column("appointment_id", _ID, nullable=True),
        _when("settled_at"),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_waitlist_entries_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["opening_id"],
            ["waitlist_openings.id"],
            name=op.f("fk_waitlist_entries_opening_id_waitlist_openings"),
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_waitlist_entries_appointment_id_appointments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
    )
    op.create_index(
        "ix_waitlist_entries_match", "waitlist_entries", ["location_id", "status"], unique=False
    )
    op.create_index("ix_waitlist_entries_patient", "waitlist_entries", ["patient_id"], unique=False)
    op.create_table(
        "retention_texts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", _ID, nullable=False),
        sa.Column("appointment_id", _ID, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("skip_reason", sa.String(length=30), nullable=True),
        sa.Column("message_id", _ID, nullable=True),
        _when("created_at", False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_retention_texts_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_retention_texts_appointment_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_retention_texts_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_texts")),
        sa.UniqueConstraint(
            "kind", "appointment_id", name=op.f("uq_retention_texts_kind_appointment_id")
        ),
    )
    op.create_index(
        "ix_retention_texts_patient", "retention_texts", ["patient_id", "kind"], unique=False
    )
    op.create_index(
        "ix_retention_texts_location_created",
        "retention_texts",
        ["location_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_retention_texts_location_created", table_name="retention_texts")
    op.drop_index("ix_retention_texts_patient", table_name="retention_texts")
    op.drop_table("retention_texts")
    op.drop_index("ix_waitlist_entries_patient", table_name="waitlist_entries")
    op.drop_index("ix_waitlist_entries_match", table_name="waitlist_entries")
    op.drop_table("waitlist_entries")
    op.drop_index("ix_waitlist_openings_location_created", table_name="waitlist_openings")
    op.drop_index("ix_waitlist_openings_status", table_name="waitlist_openings")
    op.drop_table("waitlist_openings")
