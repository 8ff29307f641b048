"""lookups on every send and arrival by an index: numbers, files, requests, the lists

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


# A list of one state, newest first, reads that page only: the state's index ends by id.
_BY_STATE = (
    ("ix_documents_agency_state", "documents"),
    ("ix_received_agency_state", "received_documents"),
)


def _by_state(*columns: str) -> None:
    for name, table in _BY_STATE:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, list(columns))


def upgrade() -> None:
    _by_state("agency_id", "state", "id")
    op.create_index("ix_documents_agency_number", "documents", ["agency_id", "number", "id"])
    op.create_index("ix_received_agency_id_order", "received_documents", ["agency_id", "id"])
    op.create_index("ix_attachments_sha256_role", "attachments", ["sha256", "role"])
    op.create_index("ix_received_requests_message", "received_requests", ["message_id"])


def downgrade() -> None:
    _by_state("agency_id", "state")
    op.drop_index("ix_received_requests_message", table_name="received_requests")
    op.drop_index("ix_attachments_sha256_role", table_name="attachments")
    op.drop_index("ix_received_agency_id_order", table_name="received_documents")
    op.drop_index("ix_documents_agency_number", table_name="documents")
