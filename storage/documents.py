"""SQL for documents, their recipients, attachments and file content."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import NoResultFound

from congvan.states.errors import NotFound
from congvan.states.fields import EDITABLE
from congvan.states.text import has_visible_text

from .chains import ChainHeads, ChainStatements, advancing, heading, kept
from .prepared import Prepared
from .tables import Agency, Attachment, Blob, Document, Recipient

_documents = Document.__table__  # type: ignore[attr-defined]
_recipients = Recipient.__table__  # type: ignore[attr-defined]
_agencies = Agency.__table__  # type: ignore[attr-defined]
_attachments = Attachment.__table__  # type: ignore[attr-defined]
_blobs = Blob.__table__  # type: ignore[attr-defined]

# A chain of replacements is followed this far at most (none is so long).
_LONGEST_CHAIN = 100


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """A documents row as stored: every column, by its name."""

    id: str
    agency_id: str
    number: int | None
    symbol: str
    doc_type: str
    legal_normative: bool
    subject: str
    place: str
    issued_on: str | None
    content: str
    signer_name: str
    signer_position: str
    signer_competence: str
    urgency: int
    secrecy: str
    due_date: str | None
    appointed_at: str | None
    signer_user: str
    state: str
    version: int
    revision: int
    submitted_revision: int | None
    audit_head: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    replaces_id: str | None = None  # a replacement (thay thế): the document it replaces
    replace_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict, column by column (for code that takes mappings)."""
        return {name: getattr(self, name) for name in DOCUMENT_FIELDS}


@dataclass(frozen=True, slots=True)
class RecipientRow:
    """A recipient of a document (nơi nhận), in the document's order."""

    organ_id: str
    name: str


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    """A file of a document as listed: its bytes are the blob named by ``sha256``."""

    id: int
    sha256: str
    filename: str
    media_type: str
    size: int
    role: str


DOCUMENT_FIELDS = tuple(f.name for f in dataclasses.fields(DocumentRow))

# The statements every transition runs, built once (building a statement costs more
# Python than SQLite takes to run it) and run through Prepared (see prepared.py).
_c = _documents.c
# Every column in DocumentRow's order, so that a row builds the record by position.
DOCUMENT_COLUMNS = tuple(_c[name] for name in DOCUMENT_FIELDS)
_GET = Prepared(select(*DOCUMENT_COLUMNS).where(_c.id == bindparam("document_id")))


_HEAD = Prepared(heading(_documents))
_HEAD_FOR_UPDATE = Prepared(heading(_documents).with_for_update())
_ADVANCE = advancing(_documents)
_INSERT = insert(_documents)
# What submit's record_submission effect runs (see actions/review.py).
_by_id = _c.id == bindparam("document_id")
_BUMP_REVISION = Prepared(update(_documents).where(_by_id).values(revision=_c.revision + 1))
_REVISION = Prepared(select(_c.revision).where(_by_id))
_MARK_SUBMITTED = Prepared(update(_documents).where(_by_id).values(submitted_revision=_c.revision))
_WITHDRAW_SUBMISSION = Prepared(update(_documents).where(_by_id).values(submitted_revision=None))
_SUBMITTED_REVISION = Prepared(select(_c.submitted_revision).where(_by_id))
# What sending, delivering and receiving run for every document and file.
_by_digest = _blobs.c.sha256 == bindparam("sha256")
_BLOB = Prepared(select(_blobs.c.data).where(_by_digest))
_BLOB_STORED = Prepared(select(_blobs.c.sha256).where(_by_digest))
_BLOB_SIZE = Prepared(select(_blobs.c.size).where(_by_digest))
# SQL counts from 1; substr takes a BLOB (SQLite) or a bytea (PostgreSQL) as it is.
_BLOB_SLICE = Prepared(
    select(func.substr(_blobs.c.data, bindparam("start"), bindparam("length"))).where(_by_digest)
)
# Two transactions storing the same new bytes at once (PostgreSQL runs them side by
# side): the second finds them there, as the first did not.
_PUT_BLOB = {
    "postgresql": Prepared(postgresql.insert(_blobs).on_conflict_do_nothing()),
    "sqlite": Prepared(sqlite.insert(_blobs).on_conflict_do_nothing()),
}
_ATTACHMENTS = Prepared(
    select(
        _attachments.c.id,
        _attachments.c.sha256,
        _attachments.c.filename,
        _attachments.c.media_type,
        _attachments.c.size,
        _attachments.c.role,
    )
    .where(_attachments.c.document_id == bindparam("document_id"))
    .order_by(_attachments.c.position)
)
_RECIPIENTS = Prepared(
    select(_recipients.c.organ_id, _recipients.c.name)
    .where(_recipients.c.document_id == bindparam("document_id"))
    .order_by(_recipients.c.position)
)


@dataclass(frozen=True)
class Page:
    items: list[DocumentRow]
    next_cursor: str | None


def encode_cursor(last_id: str, listing: str) -> str:
    """The cursor after ``last_id`` in ``listing`` (a list's name: its cursors are its own)."""
    return base64.urlsafe_b64encode(f"{listing}/{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, listing: str) -> str:
    """The id a cursor of ``listing`` names; ValueError for another list's cursor."""
    padded = cursor + "=" * (-len(cursor) % 4)
    named, _, last_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("/")
    if named != listing:
        raise ValueError(f"not a cursor of {listing}")
    return last_id


class DocumentRepository(ChainHeads):
    """Documents, recipients and attachments; file bytes live in ``blobs`` once."""

    chain = ChainStatements(_HEAD, _HEAD_FOR_UPDATE, _ADVANCE, _documents)

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        # What this transaction read of documents it holds locked (see ChainHeads.head):
        # the guards, effects and rules of one transition each read the row, and only
        # this transaction's own writes (which drop what they change) could change it.
        self._rows: dict[str, DocumentRow] = {}
        self._recipients: dict[str, list[RecipientRow]] = {}
        self._attachments: dict[str, list[AttachmentRow]] = {}

    def forget(self) -> None:
        super().forget()
        self._rows.clear()
        self._recipients.clear()
        self._attachments.clear()

    def _moved(self, document_id: str) -> None:
        # Read again if asked: its moment reads back as the database keeps it.
        self._rows.pop(document_id, None)

    def count_by_state(self, agency_id: str | None = None) -> dict[str, int]:
        """Documents by state; with ``agency_id``, that agency's only."""
        query = select(_c.state, func.count()).group_by(_c.state)
        if agency_id is not None:
            query = query.where(_c.agency_id == agency_id)
        return {state: int(n) for state, n in self.conn.execute(query)}

    def set_fields(self, document_id: str, fields: Mapping[str, Any]) -> None:
        unknown = set(fields) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if fields:
            self._changed(document_id)
            self.conn.execute(
                update(_documents).where(_documents.c.id == document_id).values(**fields)
            )

    def bump_revision(self, document_id: str) -> int:
        """Results of checks on earlier revisions stop counting."""
        params = {"document_id": document_id}
        self._changed(document_id)
        _BUMP_REVISION.rowcount(self.conn, params)
        row = _REVISION.first(self.conn, params)
        if row is None:  # as Result.scalar_one() says it
            raise NoResultFound("No row was found when one was required")
        return int(row[0])

    def mark_submitted(self, document_id: str, *, withdraw: bool = False) -> int | None:
        """Record the current revision as submitted for review (or withdraw it)."""
        params = {"document_id": document_id}
        self._changed(document_id)
        (_WITHDRAW_SUBMISSION if withdraw else _MARK_SUBMITTED).rowcount(self.conn, params)
        row = _SUBMITTED_REVISION.first(self.conn, params)
        return row[0] if row is not None else None

    def add(self, row: Mapping[str, Any]) -> None:
        self.conn.execute(_INSERT, [dict(row)])

    def get(self, document_id: str) -> DocumentRow | None:
        held = self._rows.get(document_id)
        if held is not None:
            return held
        row = _GET.first(self.conn, {"document_id": document_id})
        if not row:
            return None
        found = DocumentRow(*row)
        if self.holds(document_id):
            self._rows[document_id] = found
        return found

    def replaced_chain(self, replaced_id: str | None) -> list[str]:
        """The document a replacement names (``replaced_id``), the one that one replaced,
        and so on, newest first (a chain of replacements is one document corrected)."""
        found: list[str] = []
        at = replaced_id
        while at and at not in found and len(found) < _LONGEST_CHAIN:
            found.append(at)
            row = self.get(at)
            at = row.replaces_id if row is not None else None
        return found

    def load(self, document_id: str) -> DocumentRow:
        """The document, which must exist (as in a transition, which holds it locked)."""
        row = self.get(document_id)
        if row is None:
            raise NotFound("No such document.", document_id=document_id)
        return row

    def replaced_by(self, document_id: str) -> list[str]:
        """The replacements drafted for a document (the one sent marks it replaced)."""
        c = _documents.c
        rows = self.conn.execute(
            select(c.id).where(c.replaces_id == document_id).order_by(c.created_at, c.id)
        )
        return [r[0] for r in rows]

    def page(
        self,
        agency_id: str,
        *,
        states: Sequence[str] = (),
        urgency: int | None = None,
        doc_type: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        """Newest first, ``limit`` at a time; the cursor is the last id seen."""
        c = _documents.c
        query = select(*DOCUMENT_COLUMNS).where(c.agency_id == agency_id)
        if states:
            query = query.where(c.state.in_(list(states)))
        if urgency is not None:
            query = query.where(c.urgency == urgency)
        if doc_type:
            query = query.where(c.doc_type == doc_type)
        if created_after:
            query = query.where(c.created_at >= created_after)
        if created_before:
            query = query.where(c.created_at < created_before)
        if cursor:
            query = query.where(c.id < decode_cursor(cursor, "documents"))
        rows = self.conn.execute(query.order_by(c.id.desc()).limit(limit + 1)).all()
        items = [DocumentRow(*r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1].id, "documents") if more and items else None)

    # recipients -------------------------------------------------------------------------

    def set_recipients(self, document_id: str, recipients: Sequence[Mapping[str, str]]) -> None:
        """The document's recipients, in order; one given by its identifier alone is named
        as the directory names its agency (the name a package and every view show)."""
        self._recipients.pop(document_id, None)
        self.conn.execute(delete(_recipients).where(_recipients.c.document_id == document_id))
        unnamed = {r["organ_id"] for r in recipients if not has_visible_text(r.get("name", ""))}
        if unnamed:
            a = _agencies.c
            found = self.conn.execute(select(a.id, a.name).where(a.id.in_(unnamed))).all()
            named: dict[str, str] = {str(i): str(n) for i, n in found}
            recipients = [
                {**r, "name": named[r["organ_id"]]} if r["organ_id"] in named else r
                for r in recipients
            ]
        if recipients:
            self.conn.execute(
                insert(_recipients),
                [
                    {
                        "document_id": document_id,
                        "organ_id": r["organ_id"],
                        "name": r.get("name", ""),
                        "position": i,
                    }
                    for i, r in enumerate(recipients)
                ],
            )

    def recipients(self, document_id: str) -> list[RecipientRow]:
        def read() -> list[RecipientRow]:
            rows = _RECIPIENTS.all(self.conn, {"document_id": document_id})
            return [RecipientRow(*r) for r in rows]

        return kept(self._recipients, document_id, self.holds(document_id), read)

    # attachments ------------------------------------------------------------------------

    def put_blob(self, sha256: str, data: bytes) -> None:
        """Store bytes under their digest unless they are there already."""
        if _BLOB_STORED.first(self.conn, {"sha256": sha256}) is None:
            put = _PUT_BLOB[self.conn.dialect.name]
            put.execute(self.conn, [{"sha256": sha256, "size": len(data), "data": data}])

    def blob(self, sha256: str) -> bytes | None:
        row = _BLOB.first(self.conn, {"sha256": sha256})
        return row[0] if row is not None else None

    def blob_size(self, sha256: str) -> int | None:
        """The size of the bytes stored under ``sha256``, None when none are."""
        row = _BLOB_SIZE.first(self.conn, {"sha256": sha256})
        return int(row[0]) if row is not None else None

    def blob_slice(self, sha256: str, offset: int, length: int) -> bytes:
        """``length`` bytes (fewer at the end) of those stored under ``sha256`` from
        ``offset``: a large file is read a slice at a time, never whole."""
        params = {"sha256": sha256, "start": offset + 1, "length": length}
        row = _BLOB_SLICE.first(self.conn, params)
        return bytes(row[0]) if row is not None and row[0] is not None else b""

    def add_attachments(self, document_id: str, files: Sequence[Mapping[str, Any]]) -> None:
        self._attachments.pop(document_id, None)
        if files:
            self.conn.execute(
                insert(_attachments),
                [{"document_id": document_id, "position": i, **f} for i, f in enumerate(files)],
            )

    def attachments(self, document_id: str) -> list[AttachmentRow]:
        def read() -> list[AttachmentRow]:
            rows = _ATTACHMENTS.all(self.conn, {"document_id": document_id})
            return [AttachmentRow(*r) for r in rows]

        return kept(self._attachments, document_id, self.holds(document_id), read)

    def count(self, agency_id: str | None = None) -> int:
        query = select(func.count()).select_from(_documents)
        if agency_id:
            query = query.where(_documents.c.agency_id == agency_id)
        return int(self.conn.execute(query).scalar_one())
