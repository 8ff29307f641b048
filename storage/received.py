"""SQL for received documents: what other agencies sent to ours, and the incoming register."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update

from congvan.states.received import RECALLED, REPLACED

from .chains import ChainHeads, ChainStatements, advancing, heading
from .documents import decode_cursor, encode_cursor
from .locks import hold
from .prepared import Prepared
from .tables import Agency, ReceivedDocument, ReceivedRequest

_received = ReceivedDocument.__table__  # type: ignore[attr-defined]
_requests = ReceivedRequest.__table__  # type: ignore[attr-defined]
AWAITING, AGREED, REFUSED = "awaiting", "agreed", "refused"
_agencies = Agency.__table__  # type: ignore[attr-defined]
_c = _received.c


def _legal_normative(manifest: bytes | None) -> bool:
    """Whether a stored manifest says its document is legal normative (it names the flag
    only when true)."""
    try:
        return json.loads(bytes(manifest or b"{}")).get("legal_normative") is True
    except (ValueError, AttributeError):
        return False


@dataclass(frozen=True, slots=True)
class Received:
    """A received document's row (without the manifest, receipt and package bytes)."""

    id: str
    agency_id: str
    sender_id: str
    message_id: str
    state: str
    version: int
    audit_head: str
    urgency: int
    sender_document_id: str
    number: int | None
    symbol: str
    doc_type: str
    subject: str
    issued_on: str
    manifest_sha256: str
    package_sha256: str
    register_year: int | None
    register_number: int | None
    reason: str
    received_at: datetime
    updated_at: datetime
    replaces_id: str | None = None  # a replacement: the received document it replaces
    corrections: str = "{}"  # JSON: metadata corrected by updates our clerk agreed to


@dataclass(frozen=True, slots=True)
class Request:
    """A sender's recall or update of a document it sent us, and our clerk's answer."""

    id: str
    received_id: str
    kind: str  # recall | update
    message_id: str
    reason: str
    changes: str  # JSON object: field → corrected value (an update's)
    state: str  # awaiting | agreed | refused
    answer_reason: str
    package_sha256: str
    received_at: datetime
    answered_at: datetime | None


_COLUMNS = [_c[f.name] for f in fields(Received)]
_REQUEST_COLUMNS = [_requests.c[f.name] for f in fields(Request)]

# What every arrival and received-document transition runs, built once and run through
# Prepared (see prepared.py).
_by_id = _c.id == bindparam("received_id")
_INSERT = Prepared(insert(_received))
_GET = Prepared(select(*_COLUMNS).where(_by_id))
_FIND = Prepared(
    select(*_COLUMNS).where(
        _c.agency_id == bindparam("agency_id"),
        _c.sender_id == bindparam("sender_id"),
        _c.message_id == bindparam("message_id"),
    )
)
# What the same document sent again under another message id finds: its id, or its
# number, symbol and date while the sender holds that number (not recalled or replaced).
# Two lookups, each by its own index: one query with an OR of the two reads every document
# of that sender (SQLite searches by the columns the two share, then sorts).
_same_sender = and_(_c.agency_id == bindparam("agency_id"), _c.sender_id == bindparam("sender_id"))
_SAME_DOCUMENT_ID = Prepared(
    select(*_COLUMNS).where(_same_sender, _c.sender_document_id == bindparam("sender_document_id"))
)
# With the manifest, which says whether it is legal normative: such documents are numbered
# in a series of their own (Decree 30 Art. 15), so 05/QĐ-UBND and 05/2026/QĐ-UBND of one
# day are two documents.
_SAME_NUMBER = Prepared(
    select(*_COLUMNS, _c.manifest)
    .where(
        _same_sender,
        _c.number == bindparam("number"),
        _c.symbol == bindparam("symbol"),
        _c.issued_on == bindparam("issued_on"),
        _c.state != RECALLED,
        _c.state != REPLACED,
    )
    .order_by(_c.received_at, _c.id)
)
# Every package arriving asks it (see prepared.py). Found by its message id (an index),
# then its document by key: a join lets SQLite start from the sender's documents
# instead, one more per document sent.
_REQUEST_UNDER = Prepared(
    select(*_REQUEST_COLUMNS).where(
        _requests.c.message_id == bindparam("message_id"),
        select(_c.id)
        .where(
            _c.id == _requests.c.received_id,
            _c.agency_id == bindparam("agency_id"),
            _c.sender_id == bindparam("sender_id"),
        )
        .exists(),
    )
)
_HEAD = Prepared(heading(_received))
_HEAD_FOR_UPDATE = Prepared(heading(_received).with_for_update())
_ADVANCE = advancing(_received)
_LOCK_AGENCY = Prepared(
    select(_agencies.c.id).where(_agencies.c.id == bindparam("agency_id")).with_for_update()
)
_LAST_NUMBER = Prepared(
    select(func.max(_c.register_number)).where(
        _c.agency_id == bindparam("agency_id"), _c.register_year == bindparam("in_year")
    )
)
_NUMBER = Prepared(
    update(_received)
    .where(_by_id)
    .values(register_year=bindparam("in_year"), register_number=bindparam("next_number"))
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a received document was verified from and answered with, as stored bytes."""

    manifest: bytes
    receipt: bytes
    receipt_cms: bytes
    package_sha256: str


@dataclass(frozen=True, slots=True)
class ReceivedPage:
    items: list[Received]
    next_cursor: str | None


class ReceivedRepository(ChainHeads):
    chain = ChainStatements(_HEAD, _HEAD_FOR_UPDATE, _ADVANCE, _received)

    def add(self, row: Mapping[str, Any]) -> None:
        _INSERT.execute(self.conn, [dict(row)])

    def get(self, received_id: str) -> Received | None:
        row = _GET.first(self.conn, {"received_id": received_id})
        return Received(*row) if row else None

    def hold_arrivals(self, agency_id: str, sender_id: str) -> None:
        """Wait until no other transaction stores a package from ``sender_id`` for
        ``agency_id``, and hold off the next until this one ends.

        An arrival looks for the document it repeats before it inserts, and no unique
        index says "number, symbol and date while the sender holds that number": two
        arrivals at once would each find nothing. PostgreSQL takes a transaction-scoped
        advisory lock on the pair; SQLite's writer already holds the whole database.
        """
        hold(self.conn, f"congvan.received:{agency_id}:{sender_id}")

    def find(self, agency_id: str, sender_id: str, message_id: str) -> Received | None:
        """The document a package with this message id from this sender already made."""
        params = {"agency_id": agency_id, "sender_id": sender_id, "message_id": message_id}
        row = _FIND.first(self.conn, params)
        return Received(*row) if row else None

    def same_document(
        self,
        agency_id: str,
        sender_id: str,
        sender_document_id: str,
        number: int | None,
        symbol: str,
        issued_on: str,
        legal_normative: bool = False,
    ) -> Received | None:
        """A document this sender sent ``agency_id`` before that this one repeats: the same
        document id, or the same number, symbol and date in the same series (a number the
        sender still holds; legal normative documents are a series of their own)."""
        sender = {"agency_id": agency_id, "sender_id": sender_id}
        found = [
            _SAME_DOCUMENT_ID.first(self.conn, {**sender, "sender_document_id": sender_document_id})
        ]
        if number is not None:
            by_number = {**sender, "number": number, "symbol": symbol, "issued_on": issued_on}
            found += [
                row[:-1]
                for row in _SAME_NUMBER.all(self.conn, by_number)
                if _legal_normative(row[-1]) == legal_normative
            ][:1]
        rows = [Received(*row) for row in found if row is not None]
        return min(rows, key=lambda r: (r.received_at, r.id), default=None)

    def evidence(self, received_id: str) -> Evidence | None:
        row = self.conn.execute(
            select(_c.manifest, _c.receipt, _c.receipt_cms, _c.package_sha256).where(
                _c.id == received_id
            )
        ).first()
        if row is None:
            return None
        return Evidence(bytes(row[0]), bytes(row[1]), bytes(row[2]), row[3])

    def register(self, received_id: str, agency_id: str, year: int) -> int:
        """Give it the next number of the agency's incoming register for ``year``.

        The agency's row is locked first (PostgreSQL; SQLite serialises writers anyway), so
        two registrations of one agency take turns and never draw the same number.
        """
        _LOCK_AGENCY.first(self.conn, {"agency_id": agency_id})
        last = _LAST_NUMBER.first(self.conn, {"agency_id": agency_id, "in_year": year})
        number = int((last and last[0]) or 0) + 1
        params = {"received_id": received_id, "in_year": year, "next_number": number}
        _NUMBER.rowcount(self.conn, params)
        return number

    def add_request(self, row: Mapping[str, Any]) -> None:
        self.conn.execute(insert(_requests), [dict(row)])

    def request_by_message(self, received_id: str, message_id: str) -> Request | None:
        r = _requests.c
        row = self.conn.execute(
            select(*_REQUEST_COLUMNS).where(
                r.received_id == received_id, r.message_id == message_id
            )
        ).first()
        return Request(*row) if row else None

    def request_under(self, agency_id: str, sender_id: str, message_id: str) -> Request | None:
        """The recall or update a package with this message id from this sender brought,
        about whichever of the documents it sent ``agency_id``."""
        params = {"message_id": message_id, "agency_id": agency_id, "sender_id": sender_id}
        row = _REQUEST_UNDER.first(self.conn, params)
        return Request(*row) if row else None

    def request(self, request_id: str) -> Request | None:
        r = _requests.c
        row = self.conn.execute(select(*_REQUEST_COLUMNS).where(r.id == request_id)).first()
        return Request(*row) if row else None

    def requests(self, received_id: str) -> list[Request]:
        r = _requests.c
        rows = self.conn.execute(
            select(*_REQUEST_COLUMNS)
            .where(r.received_id == received_id)
            .order_by(r.received_at, r.id)
        )
        return [Request(*row) for row in rows]

    def awaiting(self, received_id: str, kind: str) -> Request | None:
        """The oldest request of ``kind`` our clerk has not answered yet."""
        return next(
            (q for q in self.requests(received_id) if q.kind == kind and q.state == AWAITING),
            None,
        )

    def awaiting_kinds(self, received_ids: Sequence[str]) -> dict[str, set[str]]:
        """For each of ``received_ids``, the kinds of request awaiting our clerk's answer."""
        r = _requests.c
        found: dict[str, set[str]] = {}
        if received_ids:
            rows = self.conn.execute(
                select(r.received_id, r.kind).where(
                    r.received_id.in_(list(received_ids)), r.state == AWAITING
                )
            )
            for received_id, kind in rows:
                found.setdefault(received_id, set()).add(kind)
        return found

    def request_receipt(self, request_id: str) -> tuple[bytes, bytes]:
        r = _requests.c
        row = self.conn.execute(select(r.receipt, r.receipt_cms).where(r.id == request_id)).one()
        return bytes(row[0]), bytes(row[1])

    def answer_request(self, request_id: str, state: str, reason: str, at: datetime) -> None:
        self.conn.execute(
            update(_requests)
            .where(_requests.c.id == request_id)
            .values(state=state, answer_reason=reason, answered_at=at)
        )

    def correct(self, received_id: str, columns: Mapping[str, Any], corrections: str) -> None:
        """Apply corrected metadata (the columns it has) and keep every correction."""
        self._changed(received_id)
        self.conn.execute(
            update(_received)
            .where(_c.id == received_id)
            .values(**dict(columns), corrections=corrections)
        )

    def replaced_by(self, received_id: str) -> list[str]:
        rows = self.conn.execute(
            select(_c.id).where(_c.replaces_id == received_id).order_by(_c.received_at, _c.id)
        )
        return [r[0] for r in rows]

    def set_reason(self, received_id: str, reason: str) -> None:
        self.conn.execute(update(_received).where(_c.id == received_id).values(reason=reason))

    def page(
        self,
        agency_id: str,
        *,
        states: Sequence[str] = (),
        sender_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ReceivedPage:
        """Newest first, ``limit`` at a time; the cursor is the last id seen."""
        query = select(*_COLUMNS).where(_c.agency_id == agency_id)
        if states:
            query = query.where(_c.state.in_(list(states)))
        if sender_id:
            query = query.where(_c.sender_id == sender_id)
        if cursor:
            query = query.where(_c.id < decode_cursor(cursor, "received"))
        rows = self.conn.execute(query.order_by(_c.id.desc()).limit(limit + 1)).all()
        items = [Received(*r) for r in rows[:limit]]
        more = len(rows) > limit
        return ReceivedPage(
            items, encode_cursor(items[-1].id, "received") if more and items else None
        )
