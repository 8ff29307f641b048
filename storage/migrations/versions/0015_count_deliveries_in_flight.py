"""count the deliveries in flight to each peer: the end of the lease of the attempt under
way on each dispatch, indexed by recipient

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dispatches") as batch:
        batch.add_column(sa.Column("posting_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_dispatches_organ_posting", "dispatches", ["organ_id", "posting_until"])


def downgrade() -> None:
    op.drop_index("ix_dispatches_organ_posting", table_name="dispatches")
    with op.batch_alter_table("dispatches") as batch:
        batch.drop_column("posting_until")
