"""jobs and timers name the agency they are for, so that a supervisor's metrics count all
of their agency's work: a received document's, a notification's, an escalation's, not
only an outgoing document's

Revision ID: 0026
Revises: 0025

Filled for the rows kept: by the outgoing or received document they name, and a timer
also by the received document, escalation or job it is about. Work of the whole
installation (anchors, CRLs) names none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

_OF_SUBJECT = (
    "(SELECT agency_id FROM documents WHERE documents.id = {table}.{column})",
    "(SELECT agency_id FROM received_documents WHERE received_documents.id = {table}.{column})",
)


def upgrade() -> None:
    for table in ("outbox", "timers"):
        op.add_column(table, sa.Column("agency_id", sa.String(length=35), nullable=True))
        for of in _OF_SUBJECT:
            named = of.format(table=table, column="document_id")
            op.execute(f"UPDATE {table} SET agency_id = {named} WHERE agency_id IS NULL")
    for of in (
        *_OF_SUBJECT,
        "(SELECT agency_id FROM escalations WHERE escalations.id = {table}.{column})",
        "(SELECT agency_id FROM outbox WHERE outbox.id = {table}.{column})",
    ):
        named = of.format(table="timers", column="ref_id")
        op.execute(f"UPDATE timers SET agency_id = {named} WHERE agency_id IS NULL")


def downgrade() -> None:
    for table in ("outbox", "timers"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("agency_id")
