"""SQL for documents that made no progress: unfinished, and nothing happened to them lately.

A document progresses when its row moves (every transition of it or of one of its
dispatches advances its chain and its ``updated_at``), when a delivery attempt ends, or
when a recipient reports a status (04–06 move nothing, yet they are news). The list reads
the partial index ``ix_documents_unfinished`` (agency, updated_at, id; acknowledged,
recalled and replaced documents left out), oldest first, so a page costs the same
however many documents the agency finished; each candidate is then checked against its
own dispatches' attempts and statuses through their indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, exists, literal_column, or_, select

from congvan.states.document import ACKNOWLEDGED, RECALLED, REPLACED

from .clock import as_utc
from .documents import DOCUMENT_COLUMNS, DocumentRow
from .tables import Dispatch, DispatchAttempt, DispatchStatus, Document

_documents = Document.__table__  # type: ignore[attr-defined]
_dispatches = Dispatch.__table__  # type: ignore[attr-defined]
_attempts = DispatchAttempt.__table__  # type: ignore[attr-defined]
_statuses = DispatchStatus.__table__  # type: ignore[attr-defined]

# What awaits nothing more: every recipient registered it, it was taken back, or replaced.
# The partial index (tables.py, migration 0023) names these three in this order.
FINISHED = (ACKNOWLEDGED, RECALLED, REPLACED)
# Written out, not bound: a partial index serves a query only when the query repeats its
# predicate word for word (SQLite), or the planner can prove it (PostgreSQL).
UNFINISHED = _documents.c.state.not_in([literal_column(f"'{s}'") for s in FINISHED])


def _news_since(cutoff: datetime) -> list[Any]:
    """Conditions: no attempt ended and no status arrived for the document since ``cutoff``."""
    d, x = _documents.c, _dispatches.c
    attempt: Select[Any] = (
        select(literal_column("1"))
        .select_from(_attempts.join(_dispatches, _dispatches.c.id == _attempts.c.dispatch_id))
        .where(x.document_id == d.id, _attempts.c.finished_at >= cutoff)
    )
    status: Select[Any] = (
        select(literal_column("1"))
        .select_from(_statuses.join(_dispatches, _dispatches.c.id == _statuses.c.dispatch_id))
        .where(x.document_id == d.id, _statuses.c.received_at >= cutoff)
    )
    return [~exists(attempt), ~exists(status)]


def stalled_query(
    agency_id: str | None,
    cutoff: datetime,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Select[Any]:
    """The statement :func:`stalled` runs (its plan is what the index is for)."""
    d = _documents.c
    query = select(*DOCUMENT_COLUMNS).where(UNFINISHED, d.updated_at < cutoff, *_news_since(cutoff))
    if agency_id is not None:
        query = query.where(d.agency_id == agency_id)
    if after is not None:
        at, last_id = after
        query = query.where(or_(d.updated_at > at, and_(d.updated_at == at, d.id > last_id)))
    return query.order_by(d.updated_at, d.id).limit(limit)


def stalled(
    conn: Connection,
    agency_id: str | None,
    cutoff: datetime,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[DocumentRow]:
    """``agency_id``'s (None: every agency's) unfinished documents with no progress since
    ``cutoff``, the longest stalled first (by ``updated_at``, then id), from after
    ``after``, ``limit`` of them."""
    rows = conn.execute(stalled_query(agency_id, cutoff, after=after, limit=limit)).all()
    return [_row(r) for r in rows]


def _row(values: Sequence[Any]) -> DocumentRow:
    row = DocumentRow(*values)
    # SQLite hands timestamps back naive: they are UTC.
    return replace(row, created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at))
