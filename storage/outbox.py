"""SQL for the outbox: jobs written with a transition, relayed after it commits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, func, insert, select, update

from congvan.states import vocabulary

from .clock import as_utc
from .prepared import Prepared
from .tables import OutboxJob

_outbox = OutboxJob.__table__  # type: ignore[attr-defined]

PENDING = vocabulary.JOB_PENDING
ENQUEUED = vocabulary.JOB_ENQUEUED
RUNNING = vocabulary.JOB_RUNNING
WAITING = vocabulary.JOB_WAITING  # an attempt failed; its backoff timer re-drives it
DONE = vocabulary.JOB_DONE
FAILED = vocabulary.JOB_FAILED
STATUSES = vocabulary.JOB_STATUSES

# What every job's claim and record run, built once and run through Prepared (see
# prepared.py).
_INSERT = Prepared(insert(_outbox))
_by_id = _outbox.c.id == bindparam("job_id")
_c = _outbox.c
# What a Job holds, in its fields' order, so that a row builds it by position.
_JOB_COLUMNS = (
    _c.id,
    _c.action,
    _c.document_id,
    _c.queue,
    _c.payload,
    _c.status,
    _c.attempts,
    _c.lease_until,
    _c.agency_id,
)
_get = select(*_JOB_COLUMNS).where(_by_id)
_GET = Prepared(_get)
_GET_FOR_UPDATE = Prepared(_get.with_for_update())
_GET_UNLESS_HELD = Prepared(_get.with_for_update(skip_locked=True))
# What the relay reads on every pass.
_pending = (
    select(*_JOB_COLUMNS)
    .where(_c.status == PENDING)
    .order_by(_c.created_at)
    .limit(bindparam("limit"))
)
_PENDING = Prepared(_pending)
_PENDING_SKIP_LOCKED = Prepared(_pending.with_for_update(skip_locked=True))
_CLAIM = Prepared(
    update(_outbox).where(_by_id).values(status=RUNNING, lease_until=bindparam("lease_until"))
)
# The relay marks each batch it hands the broker: one row per job, run as one executemany.
_MARK = Prepared(update(_outbox).where(_by_id))  # SET: the columns given
_WAIT = Prepared(update(_outbox).where(_by_id).values(status=WAITING, lease_until=None))
_FINISH = Prepared(
    update(_outbox)
    .where(_by_id, _outbox.c.status != DONE)
    .values(status=DONE, done_at=bindparam("at"))
)


@dataclass(frozen=True)
class Job:
    id: str
    action: str
    document_id: str | None
    queue: str
    payload: dict[str, Any]
    status: str
    attempts: int
    lease_until: datetime | None = None
    agency_id: str | None = None

    def leased(self, now: datetime) -> bool:
        """Claimed by a worker whose lease has not ended."""
        return self.status == RUNNING and self.lease_until is not None and now < self.lease_until


class Outlet(Protocol):
    """Who is told of a transaction's jobs once it commits: the relay (workflow/relay.py)."""

    def handing_off(self) -> bool:
        """Whether jobs written now are handed to it after commit (asked as a unit of
        work opens); if not, they wait in the table as pending until it polls."""
        ...

    def hand_off(self, jobs: Sequence[Job]) -> None:
        """Take committed jobs, written as enqueued, to the broker."""
        ...

    def kick(self) -> None:
        """Pending jobs were committed: look for them now."""
        ...


def _job(row: Sequence[Any]) -> Job:
    job_id, action, document_id, queue, payload, status, attempts, lease_until, agency_id = row
    return Job(
        id=job_id,
        action=action,
        document_id=document_id,
        queue=queue,
        payload=json.loads(payload),
        status=status,
        attempts=attempts,
        lease_until=as_utc(lease_until) if lease_until is not None else None,
        agency_id=agency_id,
    )


def _handed(row: dict[str, Any]) -> Job:
    return Job(
        id=row["id"],
        action=row["action"],
        document_id=row.get("document_id"),
        queue=row.get("queue", "default"),
        payload=row.get("payload", {}),
        status=ENQUEUED,
        attempts=0,
        agency_id=row.get("agency_id"),
    )


class OutboxRepository:
    def __init__(self, conn: Connection, *, skip_locked: bool, hand_off: bool = False) -> None:
        self.conn = conn
        self.skip_locked = skip_locked
        # ``hand_off``: the relay takes this transaction's jobs from memory once it commits,
        # so they are written as enqueued (as a relay pass would mark them) and kept here.
        self.hand_off = hand_off
        self.handed: list[Job] = []
        # Jobs written pending in this transaction: once it commits, the relay has work.
        self.added = 0
        # Every job written in this transaction, by id, in order (what a transition queued).
        self.written: list[str] = []

    def add(self, jobs: Sequence[dict[str, Any]]) -> None:
        if not jobs:
            return
        rows = [{**j, "payload": json.dumps(j.get("payload", {}), sort_keys=True)} for j in jobs]
        if self.hand_off:
            for row in rows:
                row.update(status=ENQUEUED, enqueued_at=row["created_at"])
            self.handed += [_handed(j) for j in jobs]
        else:
            self.added += len(jobs)
        self.written += [j["id"] for j in jobs]
        _INSERT.execute(self.conn, rows)

    def so_far(self) -> tuple[int, int, int]:
        """Where this transaction's jobs stand now, for :meth:`undo_since`."""
        return len(self.handed), self.added, len(self.written)

    def undo_since(self, mark: tuple[int, int, int]) -> None:
        """A savepoint was rolled back: forget the jobs written since ``so_far`` said."""
        handed, added, written = mark
        del self.handed[handed:]
        self.added = added
        del self.written[written:]

    def get(self, job_id: str, *, for_update: bool = False) -> Job | None:
        query = _GET_FOR_UPDATE if for_update else _GET
        row = query.first(self.conn, {"job_id": job_id})
        return _job(row) if row else None

    def get_unless_held(self, job_id: str) -> Job | None:
        """The job, locked, unless another transaction holds its row (PostgreSQL; then
        None, as for a job that is gone); SQLite's writer holds the whole database."""
        query = _GET_UNLESS_HELD if self.skip_locked else _GET_FOR_UPDATE
        row = query.first(self.conn, {"job_id": job_id})
        return _job(row) if row else None

    def claim_pending(self, limit: int) -> list[Job]:
        """Pending jobs, oldest first; on PostgreSQL rows another relay holds are skipped."""
        query = _PENDING_SKIP_LOCKED if self.skip_locked else _PENDING
        return [_job(r) for r in query.all(self.conn, {"limit": limit})]

    def mark(self, job_ids: Sequence[str], status: str, at: datetime) -> None:
        column = {ENQUEUED: "enqueued_at", DONE: "done_at"}.get(status)
        values: dict[str, Any] = {"status": status}
        if column:
            values[column] = at
        if job_ids:
            _MARK.execute(self.conn, [{"job_id": job_id, **values} for job_id in job_ids])

    def claim(self, job_id: str, lease_until: datetime) -> None:
        """A worker takes the job: running, and its own until ``lease_until``."""
        _CLAIM.rowcount(self.conn, {"job_id": job_id, "lease_until": lease_until})

    def wait(self, job_id: str) -> None:
        """An attempt failed: the lease is given up until the backoff timer re-drives it."""
        _WAIT.rowcount(self.conn, {"job_id": job_id})

    def finish(self, job_id: str, at: datetime) -> bool:
        """Mark done unless it already is; ``False`` means somebody else finished it."""
        return _FINISH.rowcount(self.conn, {"job_id": job_id, "at": at}) == 1

    def record_failure(self, job_id: str, error: str) -> int:
        """Count a failed attempt; returns the attempts so far."""
        self.conn.execute(
            update(_outbox)
            .where(_outbox.c.id == job_id)
            .values(attempts=_outbox.c.attempts + 1, last_error=error[:4000])
        )
        return int(
            self.conn.execute(select(_outbox.c.attempts).where(_outbox.c.id == job_id)).scalar_one()
        )

    def requeue(self, job_id: str) -> None:
        self.conn.execute(
            update(_outbox)
            .where(_outbox.c.id == job_id, _outbox.c.status != DONE)
            .values(status=PENDING, lease_until=None)
        )

    def requeue_many(self, job_ids: Sequence[str]) -> None:
        """Back to pending: the broker did not take them."""
        self.conn.execute(
            update(_outbox)
            .where(_outbox.c.id.in_(list(job_ids)), _outbox.c.status == ENQUEUED)
            .values(status=PENDING)
        )

    def for_document(self, document_id: str) -> list[Job]:
        rows = self.conn.execute(
            select(*_JOB_COLUMNS)
            .where(_outbox.c.document_id == document_id)
            .order_by(_outbox.c.created_at)
        )
        return [_job(r) for r in rows]

    def counts(self, agency_id: str | None = None) -> dict[str, int]:
        """Jobs by status; with ``agency_id``, only that agency's work."""
        query = select(_outbox.c.status, func.count()).group_by(_outbox.c.status)
        if agency_id is not None:
            query = query.where(_outbox.c.agency_id == agency_id)
        return {status: int(n) for status, n in self.conn.execute(query)}
