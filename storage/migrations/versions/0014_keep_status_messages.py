"""keep status messages: what recipients said about each dispatch, signed

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dispatch_statuses",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dispatch_id", sa.String(36), sa.ForeignKey("dispatches.id"), nullable=False),
        sa.Column("code", sa.String(2), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("cms", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("dispatch_id", "code"),
    )


def downgrade() -> None:
    op.drop_table("dispatch_statuses")
