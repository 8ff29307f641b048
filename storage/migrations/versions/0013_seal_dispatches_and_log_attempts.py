"""seal dispatches and log attempts: message ids, sealed headers, receipts, every attempt

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dispatches") as batch:
        batch.add_column(sa.Column("message_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("header", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("header_cms", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("receipt", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("receipt_cms", sa.LargeBinary(), nullable=True))
        batch.create_unique_constraint("uq_dispatches_message_id", ["message_id"])
    op.create_table(
        "dispatch_attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dispatch_id", sa.String(36), sa.ForeignKey("dispatches.id"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(1000), nullable=False),
        sa.UniqueConstraint("dispatch_id", "attempt"),
    )


def downgrade() -> None:
    op.drop_table("dispatch_attempts")
    with op.batch_alter_table("dispatches") as batch:
        batch.drop_constraint("uq_dispatches_message_id", type_="unique")
        for column in ("receipt_cms", "receipt", "header_cms", "header", "message_id"):
            batch.drop_column(column)
