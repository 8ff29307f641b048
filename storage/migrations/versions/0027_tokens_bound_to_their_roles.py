"""bind each bearer token to the roles it was created with

Revision ID: 0027
Revises: 0026

A token spoke for whatever roles its user held, so creating a supervisor's token for a
clerk's user name made every token of that user a supervisor's. Each token now keeps its
own roles (comma-separated, as ``users.roles``); what it may do is those of them its user
still holds. A token kept from before takes the roles its user holds now: what it could
do the moment before the upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("roles", sa.String(200), nullable=False, server_default=""))
    op.execute(
        "UPDATE api_tokens SET roles = "
        "(SELECT users.roles FROM users WHERE users.id = api_tokens.user_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("roles")
