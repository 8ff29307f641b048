"""SQL for the rows that head an audit chain (a document, a received document, an
escalation): what a transition reads of one, and its move at the version it expects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Table, bindparam, select, update

from .prepared import Prepared

Row = TypeVar("Row")


def kept(
    cache: dict[str, list[Row]], key: str, holds: bool, read: Callable[[], list[Row]]
) -> list[Row]:
    """Rows read once per transaction: from ``cache`` if there, else ``read`` (and kept
    when ``holds``, the rows' document being locked); a copy the caller may change."""
    rows = cache.get(key)
    if rows is None:
        rows = read()
        if holds:
            cache[key] = rows
    return list(rows)


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
        # Heads this transaction locked: until it ends, only its own writes change them
        # (every writer locks the head first), so they are read once.
        self._held: dict[str, DocumentHead] = {}

    def head(self, chain_id: str, *, for_update: bool = False) -> DocumentHead | None:
        """What a transition needs: owner agency, state, version, audit head.

        ``for_update`` locks the row (PostgreSQL; SQLite's writer holds the database) for
        the rest of the transaction, and from then on the head is answered without a look.
        """
        held = self._held.get(chain_id)
        if held is not None:
            return held
        query = self.chain.head_for_update if for_update else self.chain.head
        row = query.first(self.conn, {"chain_id": chain_id})
        if not row:
            return None
        head = DocumentHead(*row)
        if for_update:
            self._held[chain_id] = head
        return head

    def holds(self, chain_id: str) -> bool:
        """True when this transaction has locked the row (see ``head``)."""
        return chain_id in self._held

    def forget(self) -> None:
        """Read everything again (after a rollback to a savepoint, which also releases
        the locks taken since)."""
        self._held.clear()

    def _changed(self, chain_id: str) -> None:
        """The row changed by other columns than a move: read it again, still locked."""
        self._held.pop(chain_id, None)
        self._moved(chain_id)

    def _moved(self, chain_id: str) -> None:
        """The row is being written: what a subclass kept of it goes."""

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
        held = self._held.pop(chain_id, None)
        self._moved(chain_id)
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
        if moved == 1 and held is not None:
            self._held[chain_id] = replace(
                held, state=state, version=new_version, audit_head=audit_head
            )
        return moved == 1
