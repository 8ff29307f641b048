"""SQL for database timers: rows with a due time, taken in batches when due."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from congvan.states import vocabulary

from .clock import as_utc
from .prepared import Prepared
from .tables import Timer

_timers = Timer.__table__  # type: ignore[attr-defined]
# What every job's claim and record run, built once and run through Prepared (see
# prepared.py).
_INSERT = Prepared(insert(_timers))
_CANCEL = Prepared(
    delete(_timers).where(
        _timers.c.kind == bindparam("kind"), _timers.c.ref_id == bindparam("ref_id")
    )
)

# Names no timers column has: an UPDATE binds its columns' own names for their SET values.
_by_ref = (_timers.c.kind == bindparam("of_kind")) & (_timers.c.ref_id == bindparam("of_ref"))
_RESET = Prepared(
    update(_timers)
    .where(_by_ref)
    .values(
        document_id=bindparam("new_document_id"),
        due_at=bindparam("new_due_at"),
        payload=bindparam("new_payload"),
        attempts=0,
        last_error=None,
        parked_at=None,
    )
)

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
    attempts: int = 0
    last_error: str | None = None
    parked_at: datetime | None = None

    @property
    def deadline(self) -> datetime:
        """The moment this timer watches: a rule's deadline, kept in its payload (the timer
        fires once it has passed, and again later if its subject was busy); else its due
        moment."""
        kept = self.payload.get("deadline")
        return datetime.fromisoformat(str(kept)) if kept else as_utc(self.due_at)


# A DueTimer's columns, in its fields' order, so that a row builds it by position.
_TIMER_COLUMNS = tuple(
    _timers.c[name]
    for name in (
        "id",
        "kind",
        "ref_id",
        "document_id",
        "due_at",
        "payload",
        "attempts",
        "last_error",
        "parked_at",
    )
)


def _due(row: Sequence[Any]) -> DueTimer:
    timer_id, kind, ref_id, document_id, due_at, payload, attempts, last_error, parked = row
    return DueTimer(
        timer_id,
        kind,
        ref_id,
        document_id,
        as_utc(due_at),
        {} if payload == "{}" else json.loads(payload),  # most timers carry nothing
        attempts,
        last_error,
        as_utc(parked) if parked is not None else None,
    )


_WAITING = _timers.c.parked_at.is_(None)
# What every scheduler tick runs, built once: the due timers' batch, and its removal.
_take_due = (
    select(*_TIMER_COLUMNS)
    .where(_WAITING, _timers.c.due_at <= bindparam("now"))
    .order_by(_timers.c.due_at)
    .limit(bindparam("limit"))
)
_TAKE_DUE = Prepared(_take_due)
_TAKE_DUE_SKIP_LOCKED = Prepared(_take_due.with_for_update(skip_locked=True))
# An expanding IN: SQLAlchemy caches its compiled form, the ids' count is filled per run.
_REMOVE = delete(_timers).where(_timers.c.id.in_(bindparam("ids", expanding=True)))


def _of_agency(query: Select[Any], agency_id: str | None) -> Select[Any]:
    """Narrow ``query`` to timers of ``agency_id``'s work (None: all timers)."""
    return query if agency_id is None else query.where(_timers.c.agency_id == agency_id)


class TimerBusy(Exception):
    """A handler found what its timer is about held by another transaction (a worker
    recording the job, the relay): taken again in a moment, nothing counted. Waiting for
    the row instead, while the scheduler holds the timer that worker is about to cancel,
    is how two transactions wait for each other."""

    RETRY = timedelta(seconds=1)


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

    def reset(self, timer: dict[str, Any]) -> None:
        """The timer of ``timer``'s kind on its ``ref_id`` becomes ``timer`` (due anew,
        no failures counted): one UPDATE where there is one, else it is added. What
        ``cancel`` then ``add`` would leave, in one statement (every job claim moves its
        deadline)."""
        params = {
            "of_kind": timer["kind"],
            "of_ref": timer["ref_id"],
            "new_document_id": timer.get("document_id"),
            "new_due_at": timer["due_at"],
            "new_payload": json.dumps(timer.get("payload", {}), sort_keys=True),
        }
        if _RESET.rowcount(self.conn, params) == 0:
            self.add([timer])

    def server_now(self) -> datetime | None:
        """The database server's clock now (PostgreSQL); None for SQLite, a file read on
        this machine by this machine's clock."""
        if self.conn.dialect.name != "postgresql":
            return None
        return as_utc(self.conn.execute(text("SELECT clock_timestamp()")).scalar_one())

    def take_due(self, now: datetime, limit: int) -> list[DueTimer]:
        """Up to ``limit`` timers due by ``now``; the index on due_at keeps this O(due)."""
        query = _TAKE_DUE_SKIP_LOCKED if self.skip_locked else _TAKE_DUE
        return [_due(r) for r in query.all(self.conn, {"now": now, "limit": limit})]

    def remove(self, timer_ids: Sequence[str]) -> None:
        """Delete fired timers: one statement for the whole batch."""
        if timer_ids:
            self.conn.execute(_REMOVE, {"ids": list(timer_ids)})

    def later(self, timer_id: str, due_at: datetime) -> None:
        """Take the timer again at ``due_at``, nothing counted (its subject was busy)."""
        self._failed(timer_id, due_at=due_at)

    def retry_later(self, timer_id: str, attempts: int, error: str, due_at: datetime) -> None:
        """A firing failed: count it, keep the error, and take the timer again at ``due_at``."""
        self._failed(timer_id, attempts=attempts, last_error=error, due_at=due_at)

    def park(self, timer_id: str, attempts: int, error: str, at: datetime) -> None:
        """A timer failed too often: keep it, visibly, and never take it until retried."""
        self._failed(timer_id, attempts=attempts, last_error=error, parked_at=at)

    def _failed(self, timer_id: str, **values: Any) -> None:
        self.conn.execute(update(_timers).where(_timers.c.id == timer_id).values(**values))

    def unpark(self, timer_id: str, due_at: datetime) -> bool:
        """Take a parked timer again at ``due_at`` with its count reset; False if not parked."""
        done = self.conn.execute(
            update(_timers)
            .where(_timers.c.id == timer_id, _timers.c.parked_at.is_not(None))
            .values(attempts=0, parked_at=None, due_at=due_at)
        )
        return done.rowcount == 1

    def parked(self, agency_id: str | None = None) -> list[DueTimer]:
        """Parked timers, oldest first; with ``agency_id``, that agency's documents' only."""
        query = select(*_TIMER_COLUMNS).where(_timers.c.parked_at.is_not(None))
        query = _of_agency(query, agency_id)
        return [_due(r) for r in self.conn.execute(query.order_by(_timers.c.parked_at))]

    def count_parked(self, agency_id: str | None = None) -> int:
        query = select(func.count()).select_from(_timers).where(_timers.c.parked_at.is_not(None))
        query = _of_agency(query, agency_id)
        return int(self.conn.execute(query).scalar_one())

    def cancel(self, kind: str, ref_id: str) -> None:
        _CANCEL.rowcount(self.conn, {"kind": kind, "ref_id": ref_id})

    def of_kind(self, kind: str) -> list[DueTimer]:
        rows = self.conn.execute(
            select(*_TIMER_COLUMNS).where(_timers.c.kind == kind).order_by(_timers.c.due_at)
        )
        return [_due(r) for r in rows]

    def watching(self, kind: str, ref_ids: Sequence[str]) -> dict[str, DueTimer]:
        """The timers of ``kind`` on each of ``ref_ids`` that has one, by its ref id."""
        if not ref_ids:
            return {}
        rows = self.conn.execute(
            select(*_TIMER_COLUMNS).where(
                _timers.c.kind == kind, _timers.c.ref_id.in_(list(ref_ids))
            )
        )
        return {t.ref_id: t for t in map(_due, rows)}

    def for_document(self, document_id: str) -> list[DueTimer]:
        rows = self.conn.execute(
            select(*_TIMER_COLUMNS)
            .where(_timers.c.document_id == document_id)
            .order_by(_timers.c.due_at)
        )
        return [_due(r) for r in rows]

    def next_due(self, agency_id: str | None = None) -> datetime | None:
        """The earliest due time; with ``agency_id``, of that agency's documents' timers."""
        query = select(_timers.c.due_at).where(_WAITING).order_by(_timers.c.due_at).limit(1)
        query = _of_agency(query, agency_id)
        first = self.conn.execute(query).scalar()
        return as_utc(first) if first else None
