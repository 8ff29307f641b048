"""SQL for the rows that head an audit chain (a document, a received document, an
escalation): what a transition reads of one, and its move at the version it expects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, bindparam, select, update

from .prepared import Prepared


@dataclass(frozen=True)
class DocumentHead:
    """What a transition needs of a document: who owns it, where it is, its version."""

    id: str
    agency_id: str
    state: str
    version: int
    audit_head: str
    urgency: int


def heading(table: Table) -> Select[Any]:
    """What a transition reads of a row that holds an audit chain, its id bound as
    ``chain_id``: id, owner agency, state, version, audit head and urgency (a DocumentHead).
    """
    c = table.c
    return select(c.id, c.agency_id, c.state, c.version, c.audit_head, c.urgency).where(
        c.id == bindparam("chain_id")
    )


def advancing(table: Table) -> Prepared:
    """The move of a row that holds an audit chain, made only at the version expected.

    Its id is bound as ``chain_id``, a name no chain table has for a column of its own.
    """
    c = table.c
    return Prepared(
        update(table)
        .where(c.id == bindparam("chain_id"), c.version == bindparam("expected_version"))
        .values(
            state=bindparam("new_state"),
            version=bindparam("new_version"),
            audit_head=bindparam("new_audit_head"),
            updated_at=bindparam("at"),
        )
    )


@dataclass(frozen=True)
class ChainStatements:
    """The statements that read and move the rows of one table that hold audit chains."""

    head: Prepared  # a ``heading`` statement
    head_for_update: Prepared  # the same, locking the row
    advance: Prepared  # an ``advancing`` statement
    table: Table  # whose ``version`` ``current_version`` reads


class ChainHeads:
    """A repository of rows that each head an audit chain (a document, a received document,
    an escalation): what a transition reads of one, and its move at the version expected.
    """

    chain: ChainStatements

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def head(self, chain_id: str, *, for_update: bool = False) -> DocumentHead | None:
        """What a transition needs: owner agency, state, version, audit head."""
        query = self.chain.head_for_update if for_update else self.chain.head
        row = query.first(self.conn, {"chain_id": chain_id})
        return DocumentHead(*row) if row else None

    def current_version(self, chain_id: str) -> int | None:
        c = self.chain.table.c
        return self.conn.execute(select(c.version).where(c.id == chain_id)).scalar()

    def advance(
        self,
        chain_id: str,
        *,
        expected_version: int,
        state: str,
        new_version: int,
        audit_head: str,
        at: datetime,
    ) -> bool:
        """Move it on, only if nobody moved it since ``expected_version``."""
        moved = self.chain.advance.rowcount(
            self.conn,
            {
                "chain_id": chain_id,
                "expected_version": expected_version,
                "new_state": state,
                "new_version": new_version,
                "new_audit_head": audit_head,
                "at": at,
            },
        )
        return moved == 1
