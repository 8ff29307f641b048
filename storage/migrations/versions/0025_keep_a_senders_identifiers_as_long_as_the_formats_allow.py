"""keep a sender's message and document ids as long as the exchange formats allow (200)

Revision ID: 0025
Revises: 0024

A package's ``message_id`` and ``document_id`` are opaque identifiers of up to 200
printable ASCII characters (``congvan-package/1``); other QCVN 102 systems write a
document id such as ``000.00.00.H57,2026/12/02,1227/UBND-TĐKT``. PostgreSQL refused to
store one longer than the columns held (100 and 36), where SQLite took it. Narrowing
them again (downgrade) fails while a longer one is kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# table: (column, length before, length now); SQLite rebuilds each table once.
_WIDENED = {
    "received_documents": (("message_id", 100, 200), ("sender_document_id", 36, 200)),
    "received_requests": (("message_id", 100, 200),),
}


def _alter(*, widen: bool) -> None:
    for table, columns in _WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, before, now in columns:
                old, new = (before, now) if widen else (now, before)
                batch_op.alter_column(
                    column,
                    existing_type=sa.String(old),
                    type_=sa.String(new),
                    existing_nullable=False,
                )


def upgrade() -> None:
    _alter(widen=True)


def downgrade() -> None:
    _alter(widen=False)
