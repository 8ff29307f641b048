"""Whether a document's row still says what was signed: an outgoing document's what its
signature covers, a received document's what the manifest it arrived with says.

Once signed, a document's metadata and recipients change only by an ``update`` (a
correction sent to its recipients), whose audit entry keeps each field's value before and
after. The manifest its last accepted signature covers (held to that ``sign`` entry by its
digest), with the corrections recorded after it applied in order, is what the row must
say; a value elsewhere was written by SQL, outside any transition. Drafts and reviewed
documents change by edits, whose entries name the fields changed and not their values:
their rows are held to their trail by state and version only.

A received document's row is what its ``receive`` entry names (the sender, the message id,
the package's and the manifest's digests) and the metadata that manifest gives, with the
corrections of the updates its clerk agreed to (``agree_update``, each field's value
before and after) applied in order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select

from congvan.states.document import DRAFT, REVIEWED
from congvan.states.fields import SIGNED, SIGNED_WHEN_SET, SIGNED_WHEN_TRUE

from .audit import AuditRow
from .tables import Attachment, Blob, Document, ReceivedDocument, Recipient

_documents = Document.__table__  # type: ignore[attr-defined]
_attachments = Attachment.__table__  # type: ignore[attr-defined]
_blobs = Blob.__table__  # type: ignore[attr-defined]
_received = ReceivedDocument.__table__  # type: ignore[attr-defined]
_recipients = Recipient.__table__  # type: ignore[attr-defined]
# The row's columns a manifest names: the issuing agency and the signed metadata.
_COLUMNS = ("agency_id", *SIGNED, *SIGNED_WHEN_TRUE, *SIGNED_WHEN_SET)
_SHOWN = 80  # characters of a value a report quotes


@dataclass(frozen=True)
class AsStored:
    """What an outgoing document's row says of what a signature covers."""

    fields: Mapping[str, Any]  # the issuing agency and the signed metadata, by column
    recipients: tuple[str, ...]  # organ ids, in their order
    # Its files, in their order: what the manifest names of each, and the digest of the
    # bytes stored under its name (None: none stored).
    files: tuple[tuple[dict[str, Any], str | None], ...] = ()


def as_stored(conn: Connection, document_ids: Sequence[str]) -> dict[str, AsStored]:
    """The signed values of those of ``document_ids`` past review, as their rows stand."""
    c = _documents.c
    query = select(c.id, *(c[name] for name in _COLUMNS)).where(
        c.id.in_(document_ids), c.state.not_in((DRAFT, REVIEWED))
    )
    fields = {row[0]: dict(zip(_COLUMNS, row[1:], strict=True)) for row in conn.execute(query)}
    r = _recipients.c
    listed: dict[str, list[str]] = {doc: [] for doc in fields}
    order = select(r.document_id, r.organ_id).where(r.document_id.in_(list(fields)))
    for doc, organ_id in conn.execute(order.order_by(r.document_id, r.position, r.id)):
        listed[doc].append(organ_id)
    files: dict[str, list[tuple[dict[str, Any], str | None]]] = {doc: [] for doc in fields}
    a, b = _attachments.c, _blobs.c
    named = (a.role, a.filename, a.media_type, a.size, a.sha256)
    query = (
        select(a.document_id, *named, b.data)
        .select_from(_attachments.outerjoin(_blobs, b.sha256 == a.sha256))
        .where(a.document_id.in_(list(fields)))
        .order_by(a.document_id, a.position, a.id)
    )
    for doc, *listing, data in conn.execute(query):
        entry = dict(zip(_ATTACHMENT_MEMBERS, listing, strict=True))
        files[doc].append((entry, digest_of(data)))
    return {
        doc: AsStored(values, tuple(listed[doc]), tuple(files[doc]))
        for doc, values in fields.items()
    }


# A manifest's members of each file (actions/signing/manifest.py ATTACHMENT_FIELDS).
_ATTACHMENT_MEMBERS = ("role", "filename", "media_type", "size", "sha256")


def digest_of(data: Any) -> str | None:
    """The SHA-256 of bytes stored (None: none stored; empty: text where bytes belong)."""
    if data is None:
        return None
    if not isinstance(data, bytes | bytearray | memoryview):
        return ""  # text where bytes belong: no file's digest
    return hashlib.sha256(data).hexdigest()


def fields_moved(
    rows: Sequence[AuditRow], stored: AsStored, manifests: Mapping[str, bytes]
) -> str | None:
    """How the row departs from what its last accepted signature covers, corrected by the
    updates after it (``manifests``: each signature's manifest by id); ``None`` when it
    does not, or when no entry names the signature it accepted."""
    signs = [i for i, row in enumerate(rows) if row.event == "sign"]
    if not signs:
        return None
    accepted = json.loads(rows[signs[-1]].payload)
    signature_id = accepted.get("signature_id")
    manifest = manifests.get(signature_id) if isinstance(signature_id, str) else None
    if manifest is None:
        return None  # an entry of before signatures were named, or a row gone (said apart)
    if hashlib.sha256(manifest).hexdigest() != accepted.get("manifest_sha256", ""):
        return (
            f"its signature {signature_id} covers another manifest than its trail accepted: "
            "the row was changed outside a transition"
        )
    signed = _json_object(manifest)
    if signed is None:
        return f"its signature {signature_id} has a manifest that is not a JSON object"
    expected: dict[str, Any] = {name: signed.get(name) for name in _COLUMNS}
    expected.update({name: bool(signed.get(name)) for name in SIGNED_WHEN_TRUE})
    for row in rows[signs[-1] + 1 :]:
        if row.event != "update":
            continue
        changed = json.loads(row.payload).get("changed")
        for name, change in changed.items() if isinstance(changed, dict) else ():
            if name in expected and isinstance(change, dict):
                expected[name] = change.get("to")
    for name in _COLUMNS:
        if _plain(stored.fields.get(name)) != _plain(expected[name]):
            return (
                f"its {name} says {_shown(stored.fields.get(name))}, what was signed (with "
                f"the corrections its trail records) says {_shown(expected[name])}: the row "
                "was changed outside a transition"
            )
    if problem := _files_moved(signed.get("attachments"), stored.files):
        return problem
    named = signed.get("recipients")
    if isinstance(named, list) and tuple(named) != stored.recipients:
        return (
            f"its recipients are {', '.join(stored.recipients) or 'none'}, what was signed "
            f"names {', '.join(map(str, named)) or 'none'}: they were changed outside a "
            "transition"
        )
    return None


# A received row's columns its receive entry names, by the entry's member.
_ARRIVAL = {
    "sender": "sender_id",
    "message_id": "message_id",
    "package_sha256": "package_sha256",
    "manifest_sha256": "manifest_sha256",
}
# Its metadata columns, by the manifest's member they are taken from.
_RECEIVED_FIELDS = {
    "document_id": "sender_document_id",
    "number": "number",
    "symbol": "symbol",
    "doc_type": "doc_type",
    "subject": "subject",
    "issued_on": "issued_on",
    "urgency": "urgency",
}
# What an agreed update writes into the row's own columns; the rest go in ``corrections``.
_CORRECTED_COLUMNS = ("subject", "issued_on")
_RECEIVED_COLUMNS = (
    "agency_id",
    *_ARRIVAL.values(),
    *_RECEIVED_FIELDS.values(),
    "manifest",
    "corrections",
    "register_year",
    "register_number",
    "reason",
)


def as_received(conn: Connection, document_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """The rows of those of ``document_ids`` that are received documents, by column."""
    c = _received.c
    package = _blobs.c.data
    query = (
        select(c.id, *(c[name] for name in _RECEIVED_COLUMNS), package)
        .select_from(_received.outerjoin(_blobs, _blobs.c.sha256 == c.package_sha256))
        .where(c.id.in_(document_ids))
    )
    return {
        row[0]: {
            **dict(zip(_RECEIVED_COLUMNS, row[1:-1], strict=True)),
            "package_digest": digest_of(row[-1]),
        }
        for row in conn.execute(query)
    }


def received_moved(rows: Sequence[AuditRow], stored: Mapping[str, Any]) -> str | None:
    """How a received document's row departs from its arrival and the manifest it came
    with, corrected by the updates its clerk agreed to; ``None`` when it does not."""
    arrived = next((r for r in rows if r.event == "receive"), None)
    if arrived is None:
        return None  # its trail is broken otherwise, and said so
    entry = json.loads(arrived.payload)
    for member, column in _ARRIVAL.items():
        if member in entry and stored[column] != entry[member]:
            return _moved(column, stored[column], entry[member], "its arrival recorded")
    if not isinstance(stored["manifest"], bytes | bytearray | memoryview):
        return "its manifest holds text, where the bytes it arrived with belong"
    manifest = bytes(stored["manifest"])
    if hashlib.sha256(manifest).hexdigest() != entry.get("manifest_sha256"):
        return (
            "its manifest is not the one it arrived with: the row was changed outside a transition"
        )
    signed = _json_object(manifest)
    if signed is None:
        return "its manifest is not a JSON object"
    recipients = signed.get("recipients")
    if isinstance(recipients, list) and stored["agency_id"] not in recipients:
        return _moved("agency_id", stored["agency_id"], recipients, "its manifest addresses")
    expected = {column: signed.get(member) for member, column in _RECEIVED_FIELDS.items()}
    expected["urgency"] = int(expected["urgency"] or 0)
    corrections: dict[str, Any] = {}
    for row in rows:
        if row.event != "agree_update":
            continue
        changed = json.loads(row.payload).get("changed")
        for name, change in changed.items() if isinstance(changed, dict) else ():
            if isinstance(change, dict):
                corrections[name] = change.get("to")
                if name in _CORRECTED_COLUMNS:
                    expected[name] = change.get("to")
    for column, value in expected.items():
        if _plain(stored[column]) != _plain(value):
            return _moved(column, stored[column], value, "the manifest it arrived with (and "
                          "the corrections its trail records)")  # fmt: skip
    try:
        kept = json.loads(stored["corrections"] or "{}")
    except ValueError:
        kept = None
    if kept != corrections:
        return _moved("corrections", kept, corrections, "the updates its trail agreed to")
    if stored["package_digest"] != stored["package_sha256"]:
        what = "gone" if stored["package_digest"] is None else "not the bytes that arrived"
        return f"its package (the files as they arrived) is {what}"
    return _handled_moved(rows, stored)


def _handled_moved(rows: Sequence[AuditRow], stored: Mapping[str, Any]) -> str | None:
    """How a received row's incoming register number and refusal reason depart from what
    its ``register`` and ``refuse`` entries recorded."""
    register: Any = None
    reason = ""
    for row in rows:
        if row.event == "register":
            register = json.loads(row.payload).get("register")
        elif row.event == "refuse":
            reason = str(json.loads(row.payload).get("reason") or "")
    if isinstance(register, dict):
        numbered = {"year": stored["register_year"], "number": stored["register_number"]}
        if numbered != register:
            return _moved("incoming register entry", numbered, register, "its registration")
    elif stored["register_number"] is not None:
        return _moved("register_number", stored["register_number"], None, "its trail")
    if (stored["reason"] or "") != reason:
        return _moved("reason", stored["reason"], reason, "its refusal recorded")
    return None


def _files_moved(signed: Any, files: Sequence[tuple[dict[str, Any], str | None]]) -> str | None:
    """How a document's files depart from those its manifest names: a file listed
    otherwise, added or taken away, or its bytes gone or not those signed."""
    if not isinstance(signed, list):
        return None  # a manifest of another form: held by its digest alone
    listed = [entry for entry, _digest in files]
    if listed != signed:
        shown = ", ".join(str(e.get("filename")) for e in listed) or "none"
        named = ", ".join(str(e.get("filename")) for e in signed if isinstance(e, dict))
        return (
            f"its files are listed as {shown}, what was signed names {named or 'none'} "
            "(or names them otherwise): they were changed outside a transition"
        )
    for entry, digest in files:
        if digest is None:
            return f"its file {entry['filename']} is gone: its bytes are stored no more"
        if digest != entry["sha256"]:
            return (
                f"its file {entry['filename']} is not the bytes signed (their SHA-256 is "
                f"{digest or 'of no bytes'}): they were changed outside a transition"
            )
    return None


def _json_object(text: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _moved(column: str, found: Any, expected: Any, source: str) -> str:
    return (
        f"its {column} says {_shown(found)}, {source} says {_shown(expected)}: the row was "
        "changed outside a transition"
    )


def _plain(value: Any) -> Any:
    """A value as a manifest writes it: dates in ISO form; a text left empty and a value
    not set alike (an update clearing a field stores the one or the other by column)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return None if value == "" else value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
