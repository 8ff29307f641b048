"""SQL for dispatches: one row per (document, recipient)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from .chains import kept
from .prepared import Prepared
from .tables import Dispatch, DispatchAttempt, DispatchStatus

_dispatches = Dispatch.__table__  # type: ignore[attr-defined]
_attempts = DispatchAttempt.__table__  # type: ignore[attr-defined]
_statuses = DispatchStatus.__table__  # type: ignore[attr-defined]


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
    message_id: str | None = None
    posting_until: datetime | None = None  # an attempt under way, leased until then
    request_id: str = ""  # the recall or update it carries; "" for the sending itself


@dataclass(frozen=True, slots=True)
class SealedDispatch:
    """What a dispatch sends on every attempt: its package.json and the agency's CMS."""

    message_id: str
    header: bytes
    header_cms: bytes


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One delivery attempt, as logged."""

    dispatch_id: str
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: str
    http_status: int | None
    latency_ms: int
    error: str


DISPATCH_FIELDS = tuple(f.name for f in dataclasses.fields(DispatchRow))
# Every column in DispatchRow's order, so that a row builds the record by position.
_COLUMNS = tuple(_dispatches.c[name] for name in DISPATCH_FIELDS)


@dataclass(frozen=True, slots=True)
class StatusRow:
    """A signed status message about a dispatch, as kept."""

    dispatch_id: str
    code: str
    reason: str
    at: datetime
    body: bytes
    cms: bytes
    received_at: datetime

    def event_data(self) -> dict[str, str]:
        """What the dispatch's event records of it: its code (the trail keeps which
        status message moved the dispatch, so that an evidence bundle must hold it) and,
        when it gives one, its reason as the dispatch's error."""
        return {
            "status": self.code,
            **({"error": f"{self.code}: {self.reason}"} if self.reason else {}),
        }


_STATUS_FIELDS = tuple(f.name for f in dataclasses.fields(StatusRow))
_STATUS_COLUMNS = tuple(_statuses.c[name] for name in _STATUS_FIELDS)
_ATTEMPT_FIELDS = tuple(f.name for f in dataclasses.fields(AttemptRow))


def _fields(record: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """A record's fields as a dict (``dataclasses.asdict`` deep-copies every value)."""
    return {name: getattr(record, name) for name in names}


# What every delivery attempt and dispatch transition run, built once and run through
# Prepared (see prepared.py).
_d = _dispatches.c
_by_id = _d.id == bindparam("dispatch_id")
_get = select(*_COLUMNS).where(_by_id)
_GET = Prepared(_get)
_GET_FOR_UPDATE = Prepared(_get.with_for_update())
# What every dispatch transition reads to derive its document's state.
# Only the sending's dispatches: a recall's or an update's never move the document.
_SENDING = _d.request_id == ""
_STATES = Prepared(select(_d.state).where(_d.document_id == bindparam("document_id"), _SENDING))
_SEALED = Prepared(select(_d.message_id, _d.header, _d.header_cms).where(_by_id))
_UPDATE = Prepared(update(_dispatches).where(_by_id))  # SET: the columns given
_LOG_ATTEMPT = Prepared(insert(_attempts))
_LAST_ATTEMPT = Prepared(
    select(func.max(_attempts.c.attempt)).where(_attempts.c.dispatch_id == bindparam("dispatch_id"))
)
_BY_MESSAGE_ID = Prepared(select(*_COLUMNS).where(_d.message_id == bindparam("message_id")))
_FOR_DOCUMENT = Prepared(
    select(*_COLUMNS)
    .where(_d.document_id == bindparam("document_id"), _SENDING)
    .order_by(_d.organ_id)
)
_REQUESTS_OF = (_d.document_id == bindparam("document_id"), _d.request_id != "")
_FOR_REQUESTS = Prepared(
    select(*_COLUMNS).where(*_REQUESTS_OF).order_by(_d.request_id, _d.organ_id)
)
_FOR_REQUEST = Prepared(
    select(*_COLUMNS)
    .where(*_REQUESTS_OF, _d.request_id == bindparam("request_id"))
    .order_by(_d.request_id, _d.organ_id)
)
_IN_FLIGHT = Prepared(
    select(func.count()).where(
        _d.organ_id == bindparam("organ_id"),
        _d.posting_until > bindparam("now"),
        _d.id != bindparam("besides"),
    )
)
_RECEIPT = Prepared(select(_d.receipt, _d.receipt_cms).where(_by_id))
_CREATE = Prepared(insert(_dispatches))
_STATUS_CODES = Prepared(
    select(_statuses.c.code).where(_statuses.c.dispatch_id == bindparam("dispatch_id"))
)
_KEEP_STATUS = Prepared(insert(_statuses))
_STATUSES_OF = Prepared(
    select(*_STATUS_COLUMNS)
    .where(_statuses.c.dispatch_id == bindparam("dispatch_id"))
    .order_by(_statuses.c.code)
)


def _never(_document_id: str) -> bool:
    return False


class DispatchRepository:
    """Dispatches, their attempts and the status messages about them.

    ``holds(document_id)`` says whether this transaction holds the document locked (see
    ``ChainHeads.head``): every writer of a dispatch locks its document first, so a
    dispatch of such a document is read once and changes only by this repository's own
    writes, which drop what they change.
    """

    def __init__(self, conn: Connection, holds: Callable[[str], bool] = _never) -> None:
        self.conn = conn
        self.holds = holds
        self._rows: dict[str, DispatchRow] = {}
        self._states: dict[str, list[str]] = {}
        self._of_document: dict[str, list[DispatchRow]] = {}

    def forget(self) -> None:
        """Read everything again (after a rollback to a savepoint)."""
        self._rows.clear()
        self._states.clear()
        self._of_document.clear()

    def _changed(self, dispatch_id: str) -> None:
        """A dispatch is being written: what was read of it and of its document's
        dispatches goes (every document's, when the dispatch itself was not read)."""
        row = self._rows.pop(dispatch_id, None)
        if row is None:
            self._states.clear()
            self._of_document.clear()
        else:
            self._document_changed(row.document_id)

    def _document_changed(self, document_id: str) -> None:
        self._states.pop(document_id, None)
        self._of_document.pop(document_id, None)

    def create(self, rows: Sequence[DispatchRow]) -> None:
        for row in rows:
            self._document_changed(row.document_id)
        if rows:
            _CREATE.execute(self.conn, [_fields(r, DISPATCH_FIELDS) for r in rows])

    def seal(self, dispatch_id: str, sealed: SealedDispatch) -> None:
        """Keep the package header every attempt of this dispatch sends."""
        values = {"message_id": sealed.message_id, "header": sealed.header}
        values |= {"header_cms": sealed.header_cms, "dispatch_id": dispatch_id}
        self._changed(dispatch_id)
        _UPDATE.rowcount(self.conn, values)

    def sealed(self, dispatch_id: str) -> SealedDispatch | None:
        row = _SEALED.first(self.conn, {"dispatch_id": dispatch_id})
        if row is None or row[0] is None or row[1] is None or row[2] is None:
            return None
        return SealedDispatch(row[0], bytes(row[1]), bytes(row[2]))

    def keep_receipt(self, dispatch_id: str, receipt: bytes, cms: bytes) -> None:
        """The signed receipt the recipient answered (kept as evidence)."""
        params = {"dispatch_id": dispatch_id, "receipt": receipt, "receipt_cms": cms}
        _UPDATE.rowcount(self.conn, params)

    def receipt(self, dispatch_id: str) -> tuple[bytes, bytes] | None:
        row = _RECEIPT.first(self.conn, {"dispatch_id": dispatch_id})
        if row is None or row[0] is None or row[1] is None:
            return None
        return bytes(row[0]), bytes(row[1])

    def by_message_id(self, message_id: str) -> DispatchRow | None:
        row = _BY_MESSAGE_ID.first(self.conn, {"message_id": message_id})
        return DispatchRow(*row) if row else None

    def status_codes(self, dispatch_id: str) -> list[str]:
        """The codes of the status messages kept about the dispatch."""
        return [str(row[0]) for row in _STATUS_CODES.all(self.conn, {"dispatch_id": dispatch_id})]

    def keep_status(self, status: StatusRow, kept: Collection[str] | None = None) -> bool:
        """Keep a status message; False when this code was kept for the dispatch already.

        ``kept``: the dispatch's :meth:`status_codes`, when the caller read them already.
        """
        if kept is None:
            kept = self.status_codes(status.dispatch_id)
        if status.code in kept:
            return False
        _KEEP_STATUS.execute(self.conn, [_fields(status, _STATUS_FIELDS)])
        return True

    def statuses_of(self, dispatch_id: str) -> list[StatusRow]:
        rows = _STATUSES_OF.all(self.conn, {"dispatch_id": dispatch_id})
        return [StatusRow(*r) for r in rows]

    def statuses_by_dispatch(self, document_id: str) -> dict[str, list[StatusRow]]:
        """The status messages kept about each dispatch of the document, by code."""
        c = _statuses.c
        rows = self.conn.execute(
            select(*_STATUS_COLUMNS)
            .join(_dispatches, _dispatches.c.id == c.dispatch_id)
            .where(_dispatches.c.document_id == document_id)
            .order_by(c.dispatch_id, c.code)
        )
        found: dict[str, list[StatusRow]] = {}
        for row in rows:
            status = StatusRow(*row)
            found.setdefault(status.dispatch_id, []).append(status)
        return found

    def log_attempt(self, attempt: AttemptRow) -> None:
        _LOG_ATTEMPT.execute(self.conn, [_fields(attempt, _ATTEMPT_FIELDS)])

    def attempts_logged(self, dispatch_id: str) -> int:
        """The number of the dispatch's last logged attempt (0: none yet)."""
        row = _LAST_ATTEMPT.first(self.conn, {"dispatch_id": dispatch_id})
        return int(row[0] or 0) if row is not None else 0

    def attempts_of(self, dispatch_id: str) -> list[AttemptRow]:
        c = _attempts.c
        columns = [c[f.name] for f in dataclasses.fields(AttemptRow)]
        rows = self.conn.execute(
            select(*columns).where(c.dispatch_id == dispatch_id).order_by(c.attempt)
        )
        return [AttemptRow(*r) for r in rows]

    def last_attempts(self, document_id: str) -> dict[str, AttemptRow]:
        """The last logged attempt of each dispatch of the document, by dispatch id."""
        c = _attempts.c
        columns = [c[f.name] for f in dataclasses.fields(AttemptRow)]
        last = (
            select(c.dispatch_id, func.max(c.attempt).label("attempt"))
            .join(_dispatches, _dispatches.c.id == c.dispatch_id)
            .where(_dispatches.c.document_id == document_id)
            .group_by(c.dispatch_id)
            .subquery()
        )
        rows = self.conn.execute(
            select(*columns).join(
                last, (last.c.dispatch_id == c.dispatch_id) & (last.c.attempt == c.attempt)
            )
        )
        return {row.dispatch_id: row for row in (AttemptRow(*r) for r in rows)}

    def get(self, dispatch_id: str, *, for_update: bool = False) -> DispatchRow | None:
        held = None if for_update else self._rows.get(dispatch_id)
        if held is not None:
            return held
        query = _GET_FOR_UPDATE if for_update else _GET
        row = query.first(self.conn, {"dispatch_id": dispatch_id})
        if not row:
            return None
        found = DispatchRow(*row)
        if self.holds(found.document_id):
            self._rows[dispatch_id] = found
        return found

    def for_document(self, document_id: str) -> list[DispatchRow]:
        """The document's sending: one dispatch per recipient."""

        def read() -> list[DispatchRow]:
            rows = _FOR_DOCUMENT.all(self.conn, {"document_id": document_id})
            return [DispatchRow(*r) for r in rows]

        return kept(self._of_document, document_id, self.holds(document_id), read)

    def for_requests(self, document_id: str, request_id: str | None = None) -> list[DispatchRow]:
        """The dispatches carrying the document's recall and update requests (or one's)."""
        if request_id is None:
            rows = _FOR_REQUESTS.all(self.conn, {"document_id": document_id})
        else:
            params = {"document_id": document_id, "request_id": request_id}
            rows = _FOR_REQUEST.all(self.conn, params)
        return [DispatchRow(*r) for r in rows]

    def header_of(self, dispatch_id: str) -> bytes | None:
        """The package.json a dispatch was sealed with (what its request said)."""
        c = _dispatches.c
        value = self.conn.execute(select(c.header).where(c.id == dispatch_id)).scalar()
        return None if value is None else bytes(value)

    def in_flight(self, organ_id: str, now: datetime, *, besides: str = "") -> int:
        """How many attempts to deliver to ``organ_id`` are under way (their lease live)."""
        params = {"organ_id": organ_id, "now": now, "besides": besides}
        row = _IN_FLIGHT.first(self.conn, params)
        return int(row[0]) if row is not None else 0

    def waiting_for(self, organ_id: str) -> int:
        """How many dispatches to ``organ_id`` wait for an attempt or are in one."""
        c = _dispatches.c
        count = self.conn.execute(
            select(func.count())
            .select_from(_dispatches)
            .where(c.organ_id == organ_id, c.state.in_(("pending", "sending")))
        ).scalar_one()
        return int(count)

    def posting(self, dispatch_id: str, until: datetime | None) -> None:
        """An attempt is under way until ``until`` (its lease); None: it has ended."""
        self._changed(dispatch_id)
        _UPDATE.rowcount(self.conn, {"dispatch_id": dispatch_id, "posting_until": until})

    def states(self, document_id: str) -> list[str]:
        """The states of the document's sending's dispatches."""

        def read() -> list[str]:
            return [row[0] for row in _STATES.all(self.conn, {"document_id": document_id})]

        return kept(self._states, document_id, self.holds(document_id), read)

    def set_state(
        self,
        dispatch_id: str,
        *,
        state: str,
        at: datetime,
        attempts: int | None = None,
        last_error: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"dispatch_id": dispatch_id, "state": state, "updated_at": at}
        if attempts is not None:
            values["attempts"] = attempts
        if last_error is not None:
            values["last_error"] = last_error[:1000]
        # Dropped, not carried forward: the moment reads back as the database keeps it.
        self._changed(dispatch_id)
        _UPDATE.rowcount(self.conn, values)
