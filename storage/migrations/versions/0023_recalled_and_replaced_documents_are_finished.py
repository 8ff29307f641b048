"""recalled and replaced documents wait for nothing: left out of the unfinished index

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_BEFORE = sa.text("state <> 'acknowledged'")
_AFTER = sa.text("state NOT IN ('acknowledged', 'recalled', 'replaced')")


def _index(where: sa.TextClause) -> None:
    op.create_index(
        "ix_documents_unfinished",
        "documents",
        ["agency_id", "updated_at", "id"],
        sqlite_where=where,
        postgresql_where=where,
    )


def upgrade() -> None:
    op.drop_index("ix_documents_unfinished", table_name="documents")
    _index(_AFTER)


def downgrade() -> None:
    op.drop_index("ix_documents_unfinished", table_name="documents")
    _index(_BEFORE)
