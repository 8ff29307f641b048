"""SQL for notifications: each agency's routes, the messages queued, and their attempts."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, tuple_, update

from congvan.states import vocabulary

from .clock import as_utc
from .locks import hold
from .tables import Notification, NotificationAttempt, NotificationRoute

_routes = NotificationRoute.__table__  # type: ignore[attr-defined]
_notices = Notification.__table__  # type: ignore[attr-defined]
_attempts = NotificationAttempt.__table__  # type: ignore[attr-defined]

PENDING = vocabulary.NOTICE_PENDING
SENT = vocabulary.NOTICE_SENT
DEAD = vocabulary.NOTICE_DEAD
CANCELLED = vocabulary.NOTICE_CANCELLED


@dataclass(frozen=True, slots=True)
class RouteRow:
    """A notification route as stored; ``secret`` is for signing only, never for showing."""

    id: str
    agency_id: str
    kind: str
    channel: str
    target: str
    secret: str | None = dataclasses.field(repr=False)
    enabled: bool
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NoticeRow:
    """A notification as stored: its rendered content (JSON text) and where it stands."""

    id: str
    agency_id: str
    route_id: str
    kind: str
    channel: str
    target: str
    escalation_id: str
    document_id: str | None
    content: str
    state: str
    job_id: str
    attempts: int
    last_error: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One attempt to send a notification."""

    notification_id: str
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: str
    status: int | None
    error: str


def _columns(table: Any, record: type) -> tuple[Any, ...]:
    return tuple(table.c[f.name] for f in dataclasses.fields(record))


_ROUTE_COLUMNS = _columns(_routes, RouteRow)
_NOTICE_COLUMNS = _columns(_notices, NoticeRow)
_ATTEMPT_COLUMNS = _columns(_attempts, AttemptRow)


def _route(row: Sequence[Any]) -> RouteRow:
    fields = list(row)
    fields[-1] = as_utc(fields[-1])
    return RouteRow(*fields)


def _notice(row: Sequence[Any]) -> NoticeRow:
    fields = list(row)
    for i in (-3, -2):
        fields[i] = as_utc(fields[i])
    if fields[-1] is not None:
        fields[-1] = as_utc(fields[-1])
    return NoticeRow(*fields)


def _attempt(row: Sequence[Any]) -> AttemptRow:
    fields = list(row)
    fields[2], fields[3] = as_utc(fields[2]), as_utc(fields[3])
    return AttemptRow(*fields)


class NotificationRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- routes ----------------------------------------------------------------------

    def add_route(self, row: dict[str, Any]) -> None:
        self.conn.execute(insert(_routes), [row])

    def route(self, route_id: str, agency_id: str | None = None) -> RouteRow | None:
        """The route, if it exists (and, with ``agency_id``, belongs to that agency)."""
        query = select(*_ROUTE_COLUMNS).where(_routes.c.id == route_id)
        if agency_id is not None:
            query = query.where(_routes.c.agency_id == agency_id)
        row = self.conn.execute(query).first()
        return _route(row) if row else None

    def hold_adding(self, agency_id: str) -> None:
        """Wait until no other transaction adds a route of the agency, and hold off the
        next until this one ends: the unique index tells targets apart by case, so two
        additions of one mailbox written differently would each find no twin and both go in."""
        hold(self.conn, f"congvan.routes:{agency_id}")

    def find_route(self, agency_id: str, kind: str, channel: str, target: str) -> RouteRow | None:
        """The agency's route of ``kind`` to ``target`` (a URL as validated, written one
        way; an address in any case: one mailbox, however its letters are cased)."""
        c = _routes.c
        same = (
            func.lower(c.target) == target.lower()
            if channel == vocabulary.NOTIFY_EMAIL
            else c.target == target
        )
        row = self.conn.execute(
            select(*_ROUTE_COLUMNS).where(
                c.agency_id == agency_id, c.kind == kind, c.channel == channel, same
            )
        ).first()
        return _route(row) if row else None

    def routes(
        self,
        agency_id: str | None = None,
        *,
        after: tuple[str, str, str] | None = None,
        limit: int | None = None,
    ) -> list[RouteRow]:
        """Routes by (agency, kind, id): one agency's, or every agency's."""
        c = _routes.c
        query = select(*_ROUTE_COLUMNS).order_by(c.agency_id, c.kind, c.id)
        if agency_id is not None:
            query = query.where(c.agency_id == agency_id)
        if after is not None:
            query = query.where(tuple_(c.agency_id, c.kind, c.id) > tuple_(*after))
        if limit is not None:
            query = query.limit(limit)
        return [_route(r) for r in self.conn.execute(query)]

    def matching(self, agency_id: str, kind: str, *, risen: bool = False) -> list[RouteRow]:
        """The agency's enabled routes for ``kind`` or for every kind (and, for an
        escalation ``risen`` to the second level, the leadership's), oldest first."""
        c = _routes.c
        kinds = [kind, vocabulary.EVERY_KIND, *([vocabulary.RISEN_KIND] if risen else [])]
        rows = self.conn.execute(
            select(*_ROUTE_COLUMNS)
            .where(
                c.agency_id == agency_id,
                c.kind.in_(kinds),
                c.enabled.is_(True),
            )
            .order_by(c.created_at, c.id)
        )
        return [_route(r) for r in rows]

    def set_enabled(self, route_id: str, agency_id: str, enabled: bool) -> bool:
        c = _routes.c
        result = self.conn.execute(
            update(_routes)
            .where(c.id == route_id, c.agency_id == agency_id)
            .values(enabled=enabled)
        )
        return result.rowcount == 1

    def cancel_queued(self, route_id: str, why: str, now: datetime) -> int:
        """Cancel the route's notifications queued and not sent (pending); how many."""
        c = _notices.c
        result = self.conn.execute(
            update(_notices)
            .where(c.route_id == route_id, c.state == vocabulary.NOTICE_PENDING)
            .values(state=vocabulary.NOTICE_CANCELLED, last_error=why, updated_at=now)
        )
        return int(result.rowcount)

    def remove_route(self, route_id: str, agency_id: str) -> bool:
        c = _routes.c
        result = self.conn.execute(
            delete(_routes).where(c.id == route_id, c.agency_id == agency_id)
        )
        return result.rowcount == 1

    # -- notifications -----------------------------------------------------------------

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(insert(_notices), [dict(r) for r in rows])

    def get(
        self, notice_id: str, agency_id: str | None = None, *, for_update: bool = False
    ) -> NoticeRow | None:
        """The notification (and, with ``agency_id``, only that agency's); ``for_update``
        locks its row till the transaction ends, for a change that depends on its state."""
        query = select(*_NOTICE_COLUMNS).where(_notices.c.id == notice_id)
        if agency_id is not None:
            query = query.where(_notices.c.agency_id == agency_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return _notice(row) if row else None

    def page(
        self,
        agency_id: str | None,
        state: str | None,
        *,
        after: str | None = None,
        limit: int = 50,
    ) -> list[NoticeRow]:
        """Notifications newest first (ids sort by creation), of an agency or all, in a state."""
        c = _notices.c
        query = select(*_NOTICE_COLUMNS).order_by(c.id.desc()).limit(limit)
        if agency_id is not None:
            query = query.where(c.agency_id == agency_id)
        if state is not None:
            query = query.where(c.state == state)
        if after is not None:
            query = query.where(c.id < after)
        return [_notice(r) for r in self.conn.execute(query)]

    def update(self, notice_id: str, **values: Any) -> None:
        self.conn.execute(update(_notices).where(_notices.c.id == notice_id).values(**values))

    def add_attempt(self, attempt: AttemptRow) -> None:
        self.conn.execute(
            insert(_attempts),
            [{**dataclasses.asdict(attempt), "error": attempt.error[:1000]}],
        )

    def attempts_of(self, notice_id: str) -> list[AttemptRow]:
        c = _attempts.c
        rows = self.conn.execute(
            select(*_ATTEMPT_COLUMNS).where(c.notification_id == notice_id).order_by(c.attempt)
        )
        return [_attempt(r) for r in rows]
