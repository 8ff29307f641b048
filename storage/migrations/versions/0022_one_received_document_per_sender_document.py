"""one received document per sender's document; received documents found by number

Revision ID: 0022
Revises: 0021

A document its sender sent before is refused under another message id (domain.md §8):
the unique index settles two deliveries racing, the other finds a repeat by number.
An installation that already holds the same document twice (received before this
check) fails here, naming the index: keep one of the two, then migrate again.
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ux_received_sender_document",
        "received_documents",
        ["agency_id", "sender_id", "sender_document_id"],
        unique=True,
    )
    op.create_index(
        "ix_received_sender_number", "received_documents", ["agency_id", "sender_id", "number"]
    )


def downgrade() -> None:
    op.drop_index("ix_received_sender_number", table_name="received_documents")
    op.drop_index("ux_received_sender_document", table_name="received_documents")
