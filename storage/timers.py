"""SQL for database timers: rows with a due time, taken in batches when due."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from congvan.states import vocabulary

from .clock import as_utc
from .prepared import Prepared
from .tables import Document, Timer

_timers = Timer.__table__  # type: ignore[attr-defined]
_documents = Document.__table__  # type: ignore[attr-defined]
_INSERT = Prepared(insert(_timers))  # built once, run through Prepared (see prepared.py)

JOB_DEADLINE = vocabulary.JOB_DEADLINE
AUDIT_ANCHOR = vocabulary.AUDIT_ANCHOR
CRL_CHECK = vocabulary.CRL_CHECK


@dataclass(frozen=True)
class DueTimer:
    id: str
    kind: str
    ref_id: str
    document_id: str | None
    due_at: datetime
    payload: dict[str, Any]


def _due(row: Any) -> DueTimer:
    return DueTimer(
        row.id, row.kind, row.ref_id, row.document_id, as_utc(row.due_at), json.loads(row.payload)
    )


class TimerRepository:
    def __init__(self, conn: Connection, *, skip_locked: bool) -> None:
        self.conn = conn
        self.skip_locked = skip_locked

    def add(self, timers: Sequence[dict[str, Any]]) -> None:
        if timers:
            _INSERT.execute(
                self.conn,
                [
                    {**t, "payload": json.dumps(t.get("payload", {}), sort_keys=True)}
                    for t in timers
                ],
            )

    def take_due(self, now: datetime, limit: int) -> list[DueTimer]:
        """Up to ``limit`` timers due by ``now``; the index on due_at keeps this O(due)."""
        query = (
            select(_timers).where(_timers.c.due_at <= now).order_by(_timers.c.due_at).limit(limit)
        )
        if self.skip_locked:
            query = query.with_for_update(skip_locked=True)
        return [_due(r) for r in self.conn.execute(query)]

    def remove(self, timer_ids: Sequence[str]) -> None:
        if timer_ids:
            self.conn.execute(delete(_timers).where(_timers.c.id.in_(list(timer_ids))))

    def cancel(self, kind: str, ref_id: str) -> None:
        self.conn.execute(delete(_timers).where(_timers.c.kind == kind, _timers.c.ref_id == ref_id))

    def of_kind(self, kind: str) -> list[DueTimer]:
        rows = self.conn.execute(
            select(_timers).where(_timers.c.kind == kind).order_by(_timers.c.due_at)
        )
        return [_due(r) for r in rows]

    def for_document(self, document_id: str) -> list[DueTimer]:
        rows = self.conn.execute(
            select(_timers).where(_timers.c.document_id == document_id).order_by(_timers.c.due_at)
        )
        return [_due(r) for r in rows]

    def next_due(self, agency_id: str | None = None) -> datetime | None:
        """The earliest due time; with ``agency_id``, of that agency's documents' timers."""
        query = select(_timers.c.due_at).order_by(_timers.c.due_at).limit(1)
        if agency_id is not None:
            query = query.join(_documents, _documents.c.id == _timers.c.document_id).where(
                _documents.c.agency_id == agency_id
            )
        first = self.conn.execute(query).scalar()
        return as_utc(first) if first else None
