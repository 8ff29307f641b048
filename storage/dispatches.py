"""SQL for dispatches: one row per (document, recipient)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from .tables import Dispatch

_dispatches = Dispatch.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class DispatchRow:
    """The sending of one document to one recipient, as stored."""

    id: str
    document_id: str
    organ_id: str
    state: str
    attempts: int
    last_error: str
    updated_at: datetime


DISPATCH_FIELDS = tuple(f.name for f in dataclasses.fields(DispatchRow))
# Every column in DispatchRow's order, so that a row builds the record by position.
_COLUMNS = tuple(_dispatches.c[name] for name in DISPATCH_FIELDS)


class DispatchRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def create(self, rows: Sequence[DispatchRow]) -> None:
        if rows:
            self.conn.execute(insert(_dispatches), [dataclasses.asdict(r) for r in rows])

    def get(self, dispatch_id: str, *, for_update: bool = False) -> DispatchRow | None:
        query = select(*_COLUMNS).where(_dispatches.c.id == dispatch_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return DispatchRow(*row) if row else None

    def for_document(self, document_id: str) -> list[DispatchRow]:
        c = _dispatches.c
        rows = self.conn.execute(
            select(*_COLUMNS).where(c.document_id == document_id).order_by(c.organ_id)
        )
        return [DispatchRow(*r) for r in rows]

    def states(self, document_id: str) -> list[str]:
        c = _dispatches.c
        return list(
            self.conn.execute(select(c.state).where(c.document_id == document_id)).scalars()
        )

    def set_state(
        self,
        dispatch_id: str,
        *,
        state: str,
        at: datetime,
        attempts: int | None = None,
        last_error: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state, "updated_at": at}
        if attempts is not None:
            values["attempts"] = attempts
        if last_error is not None:
            values["last_error"] = last_error[:1000]
        self.conn.execute(update(_dispatches).where(_dispatches.c.id == dispatch_id).values(values))
