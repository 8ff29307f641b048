"""widen a received document's type to what a sender's document type may hold (50)

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("received_documents", schema=None) as batch_op:
        batch_op.alter_column(
            "doc_type", existing_type=sa.String(20), type_=sa.String(50), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("received_documents", schema=None) as batch_op:
        batch_op.alter_column(
            "doc_type", existing_type=sa.String(50), type_=sa.String(20), existing_nullable=False
        )
