"""The append-only, per-document hash chain of audit entries (storage/audit_checks.py
verifies it)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, insert, select

from .canonical import canonical_json
from .clock import as_utc
from .prepared import Prepared
from .stored import Stored, WrongKind, altered
from .tables import AuditEntry, chain_heads

if TYPE_CHECKING:
    from .audit_checks import ChainProblem

GENESIS = "0" * 64
_audit = AuditEntry.__table__  # type: ignore[attr-defined]
_INSERT = Prepared(insert(_audit))  # built once, run through Prepared (see prepared.py)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def timestamp(at: datetime) -> str:
    return as_utc(at).isoformat(timespec="microseconds")


def entry_hash(
    *,
    prev_hash: str,
    document_id: str,
    version: int,
    actor: str,
    event: str,
    from_state: str,
    to_state: str,
    at: datetime,
    payload_digest: str,
) -> str:
    """The hash of one entry: it covers the previous hash, so entries cannot move."""
    material = canonical_json(
        [
            prev_hash,
            document_id,
            version,
            actor,
            event,
            from_state,
            to_state,
            timestamp(at),
            payload_digest,
        ]
    )
    return digest(material)


@dataclass(frozen=True)
class NewEntry:
    """An audit entry about to be appended, with its computed hash."""

    document_id: str
    version: int
    actor: str
    event: str
    from_state: str
    to_state: str
    at: datetime
    payload: str
    payload_digest: str
    prev_hash: str
    hash: str


def make_entry(
    *,
    prev_hash: str,
    document_id: str,
    version: int,
    actor: str,
    event: str,
    from_state: str,
    to_state: str,
    at: datetime,
    payload: Mapping[str, Any],
) -> NewEntry:
    text = canonical_json(payload)
    pdigest = digest(text)
    return NewEntry(
        document_id=document_id,
        version=version,
        actor=actor,
        event=event,
        from_state=from_state,
        to_state=to_state,
        at=at,
        payload=text,
        payload_digest=pdigest,
        prev_hash=prev_hash,
        hash=entry_hash(
            prev_hash=prev_hash,
            document_id=document_id,
            version=version,
            actor=actor,
            event=event,
            from_state=from_state,
            to_state=to_state,
            at=at,
            payload_digest=pdigest,
        ),
    )


@dataclass(frozen=True, slots=True)
class AuditRow(NewEntry):
    """An entry as stored, every column: what was appended and the id its row was given.

    Verification reads it; ``at`` is aware UTC, ``payload`` the text its digest covers.
    """

    id: int


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What one entry records, as the trail shows it: its payload read back as JSON."""

    version: int
    event: str
    actor: str
    from_state: str
    to_state: str
    at: datetime  # aware UTC
    payload: dict[str, Any]
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON shows it: ``at`` in ISO 8601 with microseconds and offset."""
        return {
            "version": self.version,
            "event": self.event,
            "actor": self.actor,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "at": timestamp(self.at),
            "payload": self.payload,
            "hash": self.hash,
        }


AUDIT_FIELDS = tuple(f.name for f in dataclasses.fields(AuditRow))
EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(AuditEvent))
# Every column in the record's order, so that a row builds the record by position.
_ROW_COLUMNS = tuple(_audit.c[name] for name in AUDIT_FIELDS)
_EVENT_COLUMNS = tuple(_audit.c[name] for name in EVENT_FIELDS)
_STORED = Stored(_ROW_COLUMNS, AuditRow)  # read to be verified
# Every send reads its signing entries (see prepared.py).
_ENTRIES = Prepared(
    select(*_EVENT_COLUMNS)
    .where(_audit.c.document_id == bindparam("document_id"), _audit.c.event == bindparam("event"))
    .order_by(_audit.c.version)
)


def _row(row: Sequence[Any]) -> AuditRow:
    entry = AuditRow(*row)
    return dataclasses.replace(entry, at=as_utc(entry.at))  # SQLite reads it back naive


def _event(row: Sequence[Any]) -> AuditEvent:
    version, event, actor, from_state, to_state, at, payload, hash_ = row
    return AuditEvent(
        version, event, actor, from_state, to_state, as_utc(at), json.loads(payload), hash_
    )


class AuditRepository:
    """Appends entries and reads chains; it has no update or delete."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def verify(self, document_id: str | None = None) -> Iterator[tuple[str, ChainProblem | None]]:
        """Verify every document's chain (or one): ``(document_id, problem or None)``."""
        from .audit_checks import verify_chains  # (which reads chains through this module)

        return verify_chains(self.conn, document_id)

    def count_chains(self) -> int:
        """How many chains there are: outgoing and received documents, escalations."""
        heads = chain_heads()
        return int(self.conn.execute(select(func.count()).select_from(heads)).scalar_one())

    def entries(self, document_id: str, event: str) -> list[AuditEvent]:
        """A document's entries of one event, oldest first."""
        rows = _ENTRIES.all(self.conn, {"document_id": document_id, "event": event})
        return [_event(r) for r in rows]

    def chain(self, document_id: str) -> list[AuditRow]:
        """A document's entries as stored, oldest first (``Conflict`` for an entry holding
        a value its column cannot: altered by SQL)."""
        rows, wrong = stored_chain(self.conn, document_id)
        if wrong is not None:
            version = wrong.row.get("version")
            raise altered(f"audit entry {version!r} of document {document_id}", wrong)
        return rows

    def append(self, entries: list[NewEntry]) -> None:
        if entries:
            _INSERT.execute(self.conn, [e.__dict__ for e in entries])

    def history(
        self, document_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        """A document's entries oldest first: those after version ``after``, ``limit`` of them."""
        c = _audit.c
        query = (
            select(*_EVENT_COLUMNS)
            .where(c.document_id == document_id, c.version > after)
            .order_by(c.version)
            .limit(limit)
        )
        return [_event(r) for r in self.conn.execute(query)]


def stored_chain(conn: Connection, document_id: str) -> tuple[list[AuditRow], WrongKind | None]:
    """A document's entries as stored, oldest first, up to the first holding a value its
    column cannot (named, second)."""
    query = select(*_STORED.columns).where(_audit.c.document_id == document_id)
    rows: list[AuditRow] = []
    for raw in conn.execute(query.order_by(_audit.c.version)):
        read = _STORED.read(conn.dialect, raw)
        if isinstance(read, WrongKind):
            return rows, read
        rows.append(_row(read))
    return rows, None
