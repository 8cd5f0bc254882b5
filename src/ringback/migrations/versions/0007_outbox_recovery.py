"""outbox recovery: claims with a token and a lease, lookup failures, event re-drive time

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-04 18:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringback.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("lease_until", ringback.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("lookup_failures", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("provider_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("redrive_at", ringback.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("provider_events", schema=None) as batch_op:
        batch_op.drop_column("redrive_at")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("lookup_failures")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("claim_token")
