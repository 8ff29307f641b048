"""Creating a chain: a document (row, recipients, files) or a received document, each with
its first audit entry, in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python

from congvan.actions.context import Actor
from congvan.actions.exchange.names import folded_name
from congvan.states import DOCUMENT, RECEIVED_DOCUMENT
from congvan.states.errors import DocumentReceivedBefore, InvalidInput
from congvan.states.policy import notation
from congvan.storage.audit import GENESIS, make_entry
from congvan.storage.clock import Clock
from congvan.storage.ids import new_id
from congvan.storage.received import Received
from congvan.storage.unit_of_work import UnitOfWork

from ..views import document_view
from .results import Idempotency, commit, replay

log = logging.getLogger("congvan.engine")


@dataclass(frozen=True)
class Draft:
    """A document to create, its inputs checked: fields, recipients and files (``data``
    bytes, stored once)."""

    agency_id: str
    fields: Mapping[str, Any]
    recipients: Sequence[Mapping[str, str]]
    files: Sequence[Mapping[str, Any]]

    def __post_init__(self) -> None:
        # A package names each file once, ignoring case and compatibility forms (a
        # recipient's disk may fold them):
        # a draft holding two such names could be reviewed and signed, never sent. And a
        # file is reached by its content (its download, a package's part): two files of
        # the same bytes would be one file under two names, the second never reachable.
        rules: tuple[tuple[Callable[[Mapping[str, Any]], str], str, str], ...] = (
            (lambda f: folded_name(str(f["filename"])),
             "same_filename", "Two files are named {0!r} and {1!r}: each file needs a name "
             "of its own, ignoring case and look-alike letters (ａ is a)."),
            (lambda f: str(f["sha256"]), "same_content",
             "The files {0!r} and {1!r} hold the same bytes: attach each file once."),
        )  # fmt: skip
        for key, reason, message in rules:
            seen: dict[str, str] = {}
            for f in self.files:
                name, value = str(f["filename"]), key(f)
                if value in seen:
                    raise InvalidInput(
                        message.format(seen[value], name),
                        field="files",
                        reason=reason,
                        filenames=[seen[value], name],
                    )
                seen[value] = name


def create_once(
    open_uow: Callable[..., UnitOfWork],
    clock: Clock,
    actor: Actor,
    draft: Draft,
    idempotency: Idempotency | None,
    *,
    replay: Callable[[UnitOfWork, str, Idempotency], dict[str, Any] | None] = replay,
) -> dict[str, Any]:
    """Create the draft; its view as of creation, kept with the key."""
    agency_id, files = draft.agency_id, draft.files
    with open_uow() as uow:
        if idempotency and (replayed := replay(uow, agency_id, idempotency)):
            return {**replayed, "replayed": True}
        now = clock()
        document_id = new_id()
        entry = make_entry(
            prev_hash=GENESIS,
            document_id=document_id,
            version=1,
            actor=actor.name,
            event="create",
            from_state="",
            to_state=DOCUMENT.initial,
            at=now,
            payload={
                "fields": dict(draft.fields),
                "recipients": [r["organ_id"] for r in draft.recipients],
                "files": [{k: f[k] for k in ("sha256", "filename", "role")} for f in files],
            },
        )
        uow.documents.add(
            {
                **draft.fields,
                "id": document_id,
                "agency_id": agency_id,
                "state": DOCUMENT.initial,
                "version": 1,
                "audit_head": entry.hash,
                "created_by": actor.name,
                "created_at": now,
                "updated_at": now,
            }
        )
        uow.documents.set_recipients(document_id, draft.recipients)
        for f in files:
            uow.documents.put_blob(f["sha256"], f["data"])
        uow.documents.add_attachments(
            document_id, [{k: v for k, v in f.items() if k != "data"} for f in files]
        )
        uow.audit.append([entry])
        # The answer as it is now, kept with the key in this transaction: a replay repeats
        # it even after the document has moved on.
        answer: dict[str, Any] = to_jsonable_python(
            document_view(uow, uow.documents.load(document_id))
        )
        if idempotency:
            uow.idempotency.remember(
                agency_id, idempotency.key, idempotency.fingerprint, 201, answer, now
            )
        commit(uow, idempotency)
    log.info(
        "document created",
        extra={"action": "document.create", "document_id": document_id, "agency": agency_id},
    )
    return answer


@dataclass(frozen=True)
class Arrival:
    """A verified package from another agency, as the inbox stores it.

    ``id`` and the signed ``receipt`` are made before the transaction opens (signing is
    no work for a write lock); when the package was already stored, both are discarded
    and the first arrival's receipt is answered.
    """

    id: str
    agency_id: str
    sender_id: str
    message_id: str
    sender_document_id: str
    manifest: bytes
    manifest_sha256: str
    metadata: Mapping[str, Any]
    package_sha256: str
    package: bytes
    receipt: bytes
    receipt_cms: bytes
    replaces_id: str | None = None  # a replacement: the received document it replaces


# What runs in an arrival's transaction besides storing it: (uow, received id, agency,
# urgency, now), to arm the rule that our clerks register it.
# (the transaction, received id, agency, urgency, arrival time, appointed time or None)
OnArrival = Callable[[UnitOfWork, str, str, int, datetime, str | None], None]


def refuse_repeat(uow: UnitOfWork, arrival: Arrival) -> Received | None:
    """Refuse a document its sender sent here before under another message id (domain.md
    §8: the same document id, or number, symbol and date), saying which it repeats.

    Returns the document when it came under this very message id (stored by a delivery
    of the same package that committed since this one looked), else None: new."""
    meta = arrival.metadata
    number = meta.get("number")
    symbol, issued_on = str(meta.get("symbol") or ""), str(meta.get("issued_on") or "")
    if number is None or not issued_on:
        number = None  # nothing to compare by but the document id (the inbox requires both)
    before = uow.received.same_document(
        arrival.agency_id,
        arrival.sender_id,
        arrival.sender_document_id,
        number,
        symbol,
        issued_on,
        legal_normative=meta.get("legal_normative") is True,
    )
    if before is None:
        return None
    if before.message_id == arrival.message_id:
        return before
    same_id = before.sender_document_id == arrival.sender_document_id
    raise DocumentReceivedBefore(
        f"{arrival.agency_id} received this document from {arrival.sender_id} before"
        + ("." if same_id else f": {notation(number, symbol)} of {issued_on}."),
        reason="document_id" if same_id else "number",
        message_id=before.message_id,
    )


def receive_once(
    open_uow: Callable[..., UnitOfWork],
    clock: Clock,
    arrival: Arrival,
    then: Callable[[UnitOfWork], None] | None = None,
    *,
    on_arrival: OnArrival | None = None,
) -> tuple[Received, bool]:
    """Store the arrival as a received document with its first audit entry, or find it.

    Returns the stored document and whether this call stored it; a race between two
    deliveries of one package is settled by the unique (agency, sender, message id).
    ``then`` runs in the same transaction once it is stored (a replacement marks the
    document it replaces).
    """
    with open_uow() as uow:
        # Arrivals from one sender to one agency take turns from here to the commit: the
        # repeat check reads what every earlier one stored.
        uow.received.hold_arrivals(arrival.agency_id, arrival.sender_id)
        first = uow.received.find(arrival.agency_id, arrival.sender_id, arrival.message_id)
        if first is not None:
            return first, False
        first = refuse_repeat(uow, arrival)
        if first is not None:
            return first, False
        now = clock()
        entry = make_entry(
            prev_hash=GENESIS,
            document_id=arrival.id,
            version=1,
            actor=f"agency:{arrival.sender_id}",
            event="receive",
            from_state="",
            to_state=RECEIVED_DOCUMENT.initial,
            at=now,
            payload={
                "sender": arrival.sender_id,
                "message_id": arrival.message_id,
                "manifest_sha256": arrival.manifest_sha256,
                "package_sha256": arrival.package_sha256,
                **({"replaces": arrival.replaces_id} if arrival.replaces_id else {}),
            },
        )
        meta = arrival.metadata
        uow.documents.put_blob(arrival.package_sha256, arrival.package)
        uow.received.add(
            {
                "id": arrival.id,
                "agency_id": arrival.agency_id,
                "sender_id": arrival.sender_id,
                "message_id": arrival.message_id,
                "state": RECEIVED_DOCUMENT.initial,
                "version": 1,
                "audit_head": entry.hash,
                "urgency": int(meta.get("urgency") or 0),
                "sender_document_id": arrival.sender_document_id,
                "number": meta.get("number"),
                "symbol": str(meta.get("symbol") or ""),
                "doc_type": str(meta.get("doc_type") or ""),
                "subject": str(meta.get("subject") or ""),
                "issued_on": str(meta.get("issued_on") or ""),
                "manifest": arrival.manifest,
                "manifest_sha256": arrival.manifest_sha256,
                "package_sha256": arrival.package_sha256,
                "receipt": arrival.receipt,
                "receipt_cms": arrival.receipt_cms,
                "reason": "",
                "received_at": now,
                "updated_at": now,
                "replaces_id": arrival.replaces_id,
            }
        )
        uow.audit.append([entry])
        if on_arrival is not None:
            urgency = int(meta.get("urgency") or 0)
            appointed = meta.get("appointed_at")
            on_arrival(uow, arrival.id, arrival.agency_id, urgency, now, appointed or None)
        if then is not None:
            then(uow)
        stored = uow.received.get(arrival.id)  # as committed, read in its transaction
        uow.commit()
    assert stored is not None
    log.info(
        "document received",
        extra={
            "action": "received.create",
            "document_id": arrival.id,
            "agency": arrival.agency_id,
            "sender": arrival.sender_id,
        },
    )
    return stored, True
