"""staff side: the funnel counts threads staff closed as called back, resolved

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive: no thread was closed as "resolved" before, so 0 is true for every row.
    with op.batch_alter_table("funnel_daily", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resolved", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("funnel_daily", schema=None) as batch_op:
        batch_op.drop_column("resolved")
