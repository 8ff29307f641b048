"""recall, update and replace sent documents: dispatches carrying a request, the
replacement's link to the document it replaces, received requests awaiting an answer

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_UNIQUE = "uq_dispatches_document_organ_request"
# The name each dialect gave the unnamed unique (document_id, organ_id) of 0001.
_SQLITE_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_OLD_SQLITE, _OLD_POSTGRES = "uq_dispatches_document_id", "dispatches_document_id_organ_id_key"


def upgrade() -> None:
    request_id = sa.Column("request_id", sa.String(length=36), nullable=False, server_default="")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "dispatches", recreate="always", naming_convention=_SQLITE_NAMING
        ) as batch:
            batch.add_column(request_id)
            batch.drop_constraint(_OLD_SQLITE, type_="unique")
            batch.create_unique_constraint(_UNIQUE, ["document_id", "organ_id", "request_id"])
    else:
        op.add_column("dispatches", request_id)
        op.drop_constraint(_OLD_POSTGRES, "dispatches", type_="unique")
        op.create_unique_constraint(
            _UNIQUE, "dispatches", ["document_id", "organ_id", "request_id"]
        )
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("replaces_id", sa.String(length=36), nullable=True))
        batch.add_column(
            sa.Column("replace_reason", sa.String(length=2000), nullable=False, server_default="")
        )
        batch.create_index("ix_documents_replaces_id", ["replaces_id"], unique=False)
    with op.batch_alter_table("received_documents") as batch:
        batch.add_column(sa.Column("replaces_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("corrections", sa.Text(), nullable=False, server_default="{}"))
        batch.create_index("ix_received_documents_replaces_id", ["replaces_id"], unique=False)
    op.create_table(
        "received_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("received_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("answer_reason", sa.String(length=2000), nullable=False),
        sa.Column("package_sha256", sa.String(length=64), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=False),
        sa.Column("receipt_cms", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["received_id"], ["received_documents.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("received_id", "message_id"),
    )
    op.create_index(
        "ix_received_requests_received_id", "received_requests", ["received_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_received_requests_received_id", table_name="received_requests")
    op.drop_table("received_requests")
    with op.batch_alter_table("received_documents") as batch:
        batch.drop_index("ix_received_documents_replaces_id")
        batch.drop_column("corrections")
        batch.drop_column("replaces_id")
    with op.batch_alter_table("documents") as batch:
        batch.drop_index("ix_documents_replaces_id")
        batch.drop_column("replace_reason")
        batch.drop_column("replaces_id")
    requests = "SELECT id FROM dispatches WHERE request_id <> ''"
    for table in ("dispatch_attempts", "dispatch_statuses"):
        op.execute(sa.text(f"DELETE FROM {table} WHERE dispatch_id IN ({requests})"))
    op.execute(sa.text("DELETE FROM dispatches WHERE request_id <> ''"))
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("dispatches", recreate="always") as batch:
            batch.drop_constraint(_UNIQUE, type_="unique")
            batch.create_unique_constraint(_OLD_SQLITE, ["document_id", "organ_id"])
            batch.drop_column("request_id")
    else:
        op.drop_constraint(_UNIQUE, "dispatches", type_="unique")
        op.create_unique_constraint(_OLD_POSTGRES, "dispatches", ["document_id", "organ_id"])
        op.drop_column("dispatches", "request_id")
