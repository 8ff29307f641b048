"""count failed timer firings, keep the last error, park a timer after the limit

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("timers") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_index("ix_timers_due", table_name="timers")
    op.create_index("ix_timers_due", "timers", ["parked_at", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_timers_due", table_name="timers")
    op.create_index("ix_timers_due", "timers", ["due_at"])
    with op.batch_alter_table("timers") as batch:
        batch.drop_column("parked_at")
        batch.drop_column("last_error")
        batch.drop_column("attempts")
