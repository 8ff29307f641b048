"""index what a document waits for: unfinished documents by agency and idle time, and
timers by document

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_UNFINISHED = sa.text("state <> 'acknowledged'")


def upgrade() -> None:
    op.create_index(
        "ix_documents_unfinished",
        "documents",
        ["agency_id", "updated_at", "id"],
        sqlite_where=_UNFINISHED,
        postgresql_where=_UNFINISHED,
    )
    op.create_index("ix_timers_document", "timers", ["document_id"])


def downgrade() -> None:
    op.drop_index("ix_timers_document", table_name="timers")
    op.drop_index("ix_documents_unfinished", table_name="documents")
