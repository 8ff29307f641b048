"""SQL for dispatches: one row per (document, recipient)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from .tables import Dispatch

_dispatches = Dispatch.__table__  # type: ignore[attr-defined]


class DispatchRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def create(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(insert(_dispatches), list(rows))

    def get(self, dispatch_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
        query = select(_dispatches).where(_dispatches.c.id == dispatch_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return dict(row._mapping) if row else None

    def for_document(self, document_id: str) -> list[dict[str, Any]]:
        c = _dispatches.c
        rows = self.conn.execute(
            select(_dispatches).where(c.document_id == document_id).order_by(c.organ_id)
        )
        return [dict(r._mapping) for r in rows]

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
