"""keep escalations (warnings someone owns, each with its own audit chain) and each
agency's own time rules

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("agency_id", sa.String(35), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("cause", sa.String(120), nullable=False),
        sa.Column("active_key", sa.String(120), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("audit_head", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("urgency", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.String(36), nullable=True),
        sa.Column("dispatch_id", sa.String(36), nullable=True),
        sa.Column("received_id", sa.String(36), nullable=True),
        sa.Column("organ_id", sa.String(35), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rise_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("active_key"),
    )
    op.create_index(
        "ix_escalations_agency_state", "escalations", ["agency_id", "state", "opened_at"]
    )
    op.create_index("ix_escalations_document", "escalations", ["document_id"])
    op.create_index("ix_escalations_received", "escalations", ["received_id"])
    op.create_table(
        "agency_time_rules",
        sa.Column("agency_id", sa.String(35), sa.ForeignKey("agencies.id"), primary_key=True),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agency_time_rules")
    for name in (
        "ix_escalations_received",
        "ix_escalations_document",
        "ix_escalations_agency_state",
    ):
        op.drop_index(name, "escalations")
    op.drop_table("escalations")
