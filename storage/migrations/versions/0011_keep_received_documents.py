"""keep received documents: what other agencies sent us, with their own state and chain

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "received_documents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("agency_id", sa.String(35), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("sender_id", sa.String(35), nullable=False),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("audit_head", sa.String(64), nullable=False),
        sa.Column("urgency", sa.Integer(), nullable=False),
        sa.Column("sender_document_id", sa.String(36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("symbol", sa.String(50), nullable=False),
        sa.Column("doc_type", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("issued_on", sa.String(10), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=False),
        sa.Column("receipt_cms", sa.LargeBinary(), nullable=False),
        sa.Column("register_year", sa.Integer(), nullable=True),
        sa.Column("register_number", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("agency_id", "sender_id", "message_id"),
        sa.UniqueConstraint("agency_id", "register_year", "register_number"),
    )
    op.create_index("ix_received_agency_state", "received_documents", ["agency_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_received_agency_state", "received_documents")
    op.drop_table("received_documents")
