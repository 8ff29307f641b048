"""Whether a document's audit chain holds: every hash recomputed, and the rows it speaks
for (state and version, dispatches, signatures) held to what it recorded."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from congvan.states.dispatch import AUDIT_PREFIX, DISPATCH, FAILED

from .audit import GENESIS, AuditRow, NewEntry, digest, entry_hash, stored_chain
from .clock import as_utc
from .signed_fields import as_received, as_stored, digest_of, fields_moved, received_moved
from .tables import (
    AuditEntry,
    Blob,
    Dispatch,
    Document,
    EscalationRow,
    ReceivedDocument,
    Signature,
    chain_tables,
)

_audit = AuditEntry.__table__  # type: ignore[attr-defined]
_documents = Document.__table__  # type: ignore[attr-defined]
_received = ReceivedDocument.__table__  # type: ignore[attr-defined]
_blobs = Blob.__table__  # type: ignore[attr-defined]
_dispatches = Dispatch.__table__  # type: ignore[attr-defined]
_escalations = EscalationRow.__table__  # type: ignore[attr-defined]
_signatures = Signature.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ChainProblem:
    """The first point at which a document's chain stops verifying."""

    document_id: str
    version: int | None
    entry_id: int | None
    problem: str  # altered | removed | reordered | truncated | missing | headless
    detail: str


@dataclass(frozen=True)
class SentBy:
    """An outgoing document's dispatches as their rows stand, to hold them to its chain:
    id → (organ id, state); of each dispatch an escalation sent again, the moments its
    escalation's chain records it; and which are the sending's (a recall's or update's
    dispatches are not the document's to resend)."""

    rows: Mapping[str, tuple[str, str]]
    resent: Mapping[str, Sequence[datetime]]
    sending: frozenset[str]  # the sending's dispatches, not a request's


def verify_document(
    conn: Connection,
    document_id: str,
    head: str,
    at: tuple[str, int] | None = None,
    sent: SentBy | None = None,
    signed: Sequence[SignedRow] = (),
    held: Callable[[Sequence[AuditRow]], str | None] | None = None,
) -> ChainProblem | None:
    """Check one document's chain against its stored head; ``None`` when it verifies.

    An entry holding a value its column cannot (SQL wrote text into its moment, say) is
    altered there, once the entries before it verify. ``at``, the row's (state, version):
    every move of a row writes an entry, so the row stands where its trail ends; a row
    elsewhere was moved by SQL (its head hash left as it was). ``sent``, an outgoing
    document's dispatches, are held to their trail alike (:func:`_dispatch_moved`);
    ``signed``, its signature rows, to the entries accepting them; ``held`` says how the
    row departs from what its trail and the manifest it accepted make it
    (``signed_fields``), if it does."""
    rows, wrong = stored_chain(conn, document_id)
    if wrong is not None:
        earlier = verify_entries(document_id, rows, None) if rows else None
        where = (document_id, wrong.number("version"), wrong.number("id"))
        detail = f"entry holds a value its column cannot: {wrong.column}"
        return earlier or ChainProblem(*where, "altered", detail)
    problem = verify_entries(document_id, rows, head)
    if problem is None and at is not None:
        # (a subject keeping its entries in another's chain -- a dispatch in its
        # document's -- names them "machine.event" and tells its own states there)
        own = next((r.to_state for r in reversed(rows) if "." not in r.event), None)
        ends = (own, rows[-1].version)
        if at != ends:
            detail = (
                f"its row says {at[0]} at version {at[1]}, its trail ends at {ends[0]}, "
                f"version {ends[1]}: the row was moved outside a transition"
            )
            return ChainProblem(document_id, None, None, "altered", detail)
    if problem is None and sent is not None:
        problem = _dispatch_moved(document_id, rows, sent)
    if problem is None:
        problem = _signature_swapped(document_id, rows, signed)
    if problem is None and held is not None and (moved := held(rows)):
        return ChainProblem(document_id, None, None, "altered", moved)
    return problem


@dataclass(frozen=True)
class SignedRow:
    """A signature row as verification reads it: its manifest's digest as its column
    says, its CMS's digest as computed, and the manifest itself."""

    id: str
    manifest_sha256: str
    cms_sha256: str
    manifest: bytes
    held_as_text: str | None = None  # a column SQL wrote text into, where bytes belong
    # What the sign entry records of it too: its certificate, how it was made, its PDF.
    certificate: str | None = None
    mode: str | None = None
    signed_pdf_sha256: str | None = None
    signed_pdf_digest: str | None = None  # of the bytes stored under that name (None: none)


def _signature_swapped(
    document_id: str, rows: Sequence[AuditRow], signed: Sequence[SignedRow]
) -> ChainProblem | None:
    """The first signature row (id, manifest digest, CMS digest) that differs from what
    the ``sign`` entry accepting it recorded, or that no entry accepted (written by SQL)."""
    accepted: dict[str, dict[str, Any]] = {}
    unnamed = False
    for row in rows:
        if row.event == "sign":
            payload = json.loads(row.payload)
            if isinstance(payload.get("signature_id"), str):
                accepted[payload["signature_id"]] = payload
            else:
                unnamed = True  # an entry of before signatures were named: nothing to hold
    for held in signed:
        signature_id = held.id
        if held.held_as_text:
            detail = f"its signature {signature_id} holds text in {held.held_as_text}"
            return ChainProblem(document_id, None, None, "altered", detail)
        entry = accepted.get(signature_id)
        if entry is None:
            if unnamed:
                continue
            detail = f"its signature {signature_id} was accepted by no entry of its trail"
            return ChainProblem(document_id, None, None, "altered", detail)
        kept = {
            "manifest_sha256": held.manifest_sha256,
            "cms_sha256": held.cms_sha256,
            "certificate": held.certificate,
            "mode": held.mode,
            "signed_pdf_sha256": held.signed_pdf_sha256,
        }
        differ = [k for k, v in kept.items() if k in entry and entry[k] != v]
        if held.signed_pdf_sha256 and held.signed_pdf_digest != held.signed_pdf_sha256:
            what = "gone" if held.signed_pdf_digest is None else "not the bytes signed"
            detail = f"its signature {signature_id}'s signed PDF is {what}"
            return ChainProblem(document_id, None, None, "altered", detail)
        if differ:
            detail = (
                f"its signature {signature_id} is not the one its trail accepted "
                f"({', '.join(differ)} differ): the row was changed outside a transition"
            )
            return ChainProblem(document_id, None, None, "altered", detail)
    if gone := sorted(set(accepted) - {held.id for held in signed}):
        detail = f"its signature {gone[0]} is accepted by its trail, and its row is gone"
        return ChainProblem(document_id, None, None, "altered", detail)
    return None


def _signed_by(conn: Connection, document_ids: list[str]) -> dict[str, list[SignedRow]]:
    """The signature rows of these documents."""
    c = _signatures.c
    signed: dict[str, list[SignedRow]] = {}
    query = select(
        c.document_id,
        c.id,
        c.manifest_sha256,
        c.cms,
        c.manifest,
        c.certificate_fingerprint,
        c.mode,
        c.signed_pdf_sha256,
        _blobs.c.data,
    ).select_from(_signatures.outerjoin(_blobs, _blobs.c.sha256 == c.signed_pdf_sha256))
    query = query.where(c.document_id.in_(document_ids))
    for row_of in conn.execute(query):
        document_id, signature_id, manifest_sha256, cms, manifest = row_of[:5]
        certificate, mode, signed_pdf_sha256, pdf = row_of[5:]
        texts = [name for name, v in (("cms", cms), ("manifest", manifest)) if not _is_blob(v)]
        if texts:  # SQL wrote text where bytes belong: named, not a traceback
            row = SignedRow(signature_id, manifest_sha256, "", b"", held_as_text=texts[0])
        else:
            cms_digest = hashlib.sha256(bytes(cms)).hexdigest()
            row = SignedRow(
                signature_id, manifest_sha256, cms_digest, bytes(manifest), None,
                certificate, mode, signed_pdf_sha256, digest_of(pdf),
            )  # fmt: skip
        signed.setdefault(document_id, []).append(row)
    return signed


def _is_blob(value: Any) -> bool:
    return isinstance(value, bytes | bytearray | memoryview)


def _dispatch_moved(
    document_id: str, rows: Sequence[AuditRow], sent: SentBy
) -> ChainProblem | None:
    """The first dispatch whose row stands elsewhere than its trail ends, or that its
    trail names and is gone.

    A dispatch starts pending and each of its moves is an entry of its document's chain
    (``dispatch.<event>``, naming it), except one: a failed dispatch sent again goes back
    to pending by its document's ``resend`` (naming its recipients, ``resent_to``) or by
    an escalation's ``act resend`` (in the escalation's chain, naming the dispatch)."""
    ends: dict[str, tuple[str, datetime]] = {}
    organs: dict[str, str] = {}  # who each dispatch goes to, as the trail names it
    for row in rows:
        if row.event.startswith(AUDIT_PREFIX):
            payload = json.loads(row.payload)
            ends[str(payload.get("dispatch_id"))] = (row.to_state, row.at)
            if isinstance(payload.get("organ_id"), str):
                organs[str(payload.get("dispatch_id"))] = payload["organ_id"]
        elif row.event == "send":
            named = json.loads(row.payload).get("dispatches")
            if isinstance(named, dict):
                organs.update({str(d): str(o) for o, d in named.items()})
        elif row.event == "resend":
            again = set(json.loads(row.payload).get("resent_to") or ())
            for dispatch_id in sent.sending:
                organ_id = sent.rows[dispatch_id][0]
                if organ_id in again and ends.get(dispatch_id, ("",))[0] == FAILED:
                    ends[dispatch_id] = (DISPATCH.initial, row.at)
    for dispatch_id, (organ_id, state) in sorted(sent.rows.items()):
        if organs.get(dispatch_id, organ_id) != organ_id:
            detail = (
                f"its dispatch {dispatch_id} says it goes to {organ_id}, its trail to "
                f"{organs[dispatch_id]}: the row was changed outside a transition"
            )
            return ChainProblem(document_id, None, None, "altered", detail)
        trail, since = ends.get(dispatch_id, (DISPATCH.initial, None))
        if (
            trail == FAILED
            and state == DISPATCH.initial
            and since is not None
            and any(at >= since for at in sent.resent.get(dispatch_id, ()))
        ):
            continue  # sent again by its escalation
        if state != trail:
            detail = (
                f"its dispatch {dispatch_id} to {organ_id} says {state}, its trail ends at "
                f"{trail}: the row was moved outside a transition"
            )
            return ChainProblem(document_id, None, None, "altered", detail)
    if gone := sorted(set(ends) - set(sent.rows)):
        detail = f"its dispatch {gone[0]} is in its trail, and its row is gone"
        return ChainProblem(document_id, None, None, "altered", detail)
    return None


def _sent_by(conn: Connection, document_ids: list[str]) -> dict[str, SentBy]:
    """The dispatches of these documents, and the escalations' resends of them."""
    c = _dispatches.c
    rows: dict[str, dict[str, tuple[str, str]]] = {d: {} for d in document_ids}
    sending: dict[str, set[str]] = {d: set() for d in document_ids}
    query = select(c.document_id, c.id, c.organ_id, c.state, c.request_id).where(
        c.document_id.in_(document_ids)
    )
    for document_id, dispatch_id, organ_id, state, request_id in conn.execute(query):
        rows[document_id][dispatch_id] = (organ_id, state)
        if not request_id:
            sending[document_id].add(dispatch_id)
    escalated = select(_escalations.c.id).where(_escalations.c.document_id.in_(document_ids))
    entries = select(_audit.c.at, _audit.c.payload).where(
        _audit.c.document_id.in_(escalated), _audit.c.payload.contains('"resent"')
    )
    resent: dict[str, list[datetime]] = {}
    for at, payload in conn.execute(entries):
        named = json.loads(payload).get("resent")
        if isinstance(named, dict) and isinstance(named.get("dispatch_id"), str):
            resent.setdefault(named["dispatch_id"], []).append(as_utc(at))
    return {
        d: SentBy(rows[d], {k: resent[k] for k in rows[d] if k in resent}, frozenset(sending[d]))
        for d in document_ids
    }


def _held(
    conn: Connection, table: Any, ids: list[str], signed: Mapping[str, Sequence[SignedRow]]
) -> dict[str, Callable[[Sequence[AuditRow]], str | None]]:
    """How each row of ``ids`` is held to what its trail and manifest make it: an outgoing
    document past review to what its signature covers, a received one to the manifest it
    arrived with (``signed_fields``)."""
    if table is _documents:
        return {
            doc: functools.partial(
                fields_moved,
                stored=stored,
                manifests={s.id: s.manifest for s in signed.get(doc, ())},
            )
            for doc, stored in as_stored(conn, ids).items()
        }
    if table is _received:
        return {
            doc: functools.partial(received_moved, stored=stored)
            for doc, stored in as_received(conn, ids).items()
        }
    return {}


def verify_entries(
    document_id: str, rows: Sequence[NewEntry], head: str | None
) -> ChainProblem | None:
    """Check a document's entries, oldest first, recomputing every hash; ``None`` when they
    verify. ``head`` is the hash the chain must end at (``None``: wherever it ends).

    Stored rows (``AuditRow``) carry their id; entries read from an evidence bundle do not.
    """
    if not rows:
        return ChainProblem(document_id, None, None, "missing", "the document has no audit entries")
    hashes = {r.hash for r in rows}
    prev = GENESIS
    for expected_version, row in enumerate(rows, start=1):
        where = (document_id, row.version, getattr(row, "id", None))
        if digest(row.payload) != row.payload_digest:
            return ChainProblem(*where, "altered", "payload does not match its digest")
        # Before the hash: an entry moved to another version no longer matches its hash
        # (the hash covers the version), but it still names the entry it really followed.
        if row.prev_hash != prev and row.prev_hash in hashes:
            return ChainProblem(*where, "reordered", "entry follows a different entry")
        try:
            recomputed = entry_hash(
                prev_hash=row.prev_hash,
                document_id=row.document_id,
                version=row.version,
                actor=row.actor,
                event=row.event,
                from_state=row.from_state,
                to_state=row.to_state,
                at=row.at,
                payload_digest=row.payload_digest,
            )
        except TypeError:  # a value no entry ever held (a version past JSON's integers)
            return ChainProblem(*where, "altered", "entry holds a value JSON cannot carry")
        if recomputed != row.hash:
            return ChainProblem(*where, "altered", "entry does not match its hash")
        if row.prev_hash != prev:
            return ChainProblem(*where, "removed", "the entry before this one is missing")
        if row.version != expected_version:
            return ChainProblem(*where, "reordered", f"expected version {expected_version}")
        prev = row.hash
    if head is not None and prev != head:
        if head in hashes:
            return ChainProblem(document_id, None, None, "truncated", "entries after the head")
        detail = "it does not end at its document's head: latest entries missing, or rewritten"
        return ChainProblem(document_id, None, None, "truncated", detail)
    return None


def verify_chains(
    conn: Connection, document_id: str | None = None, batch: int = 500
) -> Iterator[tuple[str, ChainProblem | None]]:
    """Verify every chain (or one), yielding ``(document_id, problem)``.

    Outgoing and received documents and escalations each have their own chain; entries
    of none of them (its row deleted) are a chain ``headless``.
    """
    for table in chain_tables():
        c = table.c
        query = select(c.id, c.audit_head, c.state, c.version).order_by(c.id)
        if document_id is not None:
            query = query.where(c.id == document_id)
        last = ""
        while page := conn.execute(query.where(c.id > last).limit(batch)).all():
            ids = [r[0] for r in page]
            sent = _sent_by(conn, ids) if table is _documents else {}
            signed = _signed_by(conn, ids) if table is _documents else {}
            held = _held(conn, table, ids, signed)
            for doc_id, head, state, version in page:
                at = (state, version)
                yield (
                    doc_id,
                    verify_document(
                        conn,
                        doc_id,
                        head,
                        at,
                        sent.get(doc_id),
                        signed.get(doc_id, ()),
                        held.get(doc_id),
                    ),
                )
            last = page[-1][0]
    # Entries whose document, received document or escalation is gone (its row deleted by
    # SQL): a chain with no head is a document removed.
    entries = _audit.c.document_id
    headed = [entries.in_(select(table.c.id)) for table in chain_tables()]
    orphans = select(entries).distinct().where(*(~h for h in headed)).order_by(entries)
    if document_id is not None:
        orphans = orphans.where(entries == document_id)
    for (doc_id,) in conn.execute(orphans):
        detail = "its document's row is gone: the entries have no head"
        yield doc_id, ChainProblem(doc_id, None, None, "headless", detail)
