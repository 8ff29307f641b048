"""The inbox: accept a package from another agency, store it once, answer a signed receipt.

No caller is trusted for who it says it is: the sender is what the agency signature on
the package proves (DESIGN principle 10). Accepting takes these steps, none of them inside
a write transaction but the last:

1. open the package (structure, sizes, names) and verify it against the pinned roots, the
   directory and the recipient, who must be an agency of this installation with an
   organisational key (``actions.exchange.acceptance``) -- the sender's signature first,
   so that whom we receive for is told only to an authenticated agency;
2. sign the receipt (status 01) with the recipient's organisational key;
3. store the received document with its first audit entry, unless the same package (same
   sender, same message id) was stored before: then the first receipt is the answer,
   however often and however concurrently the package is delivered again (signed anew
   by the key valid now when the agency's certificate was renewed since); another
   package under that message id is refused (``MessageIdReused``).

A recall or an update (business types 1, 2) is not a new document: it must name one this
sender sent to this recipient (the package that brought it, the same document and signed
manifest), still in force, else it is refused (``OriginalUnknown``: not_received,
another_document, another_manifest, not_in_force); it is kept with that document, once,
for our clerk to agree (15) or refuse (16). A replacement (3) must name such a document
too; it is stored as a new document linked to it, which is marked replaced.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.exc import IntegrityError

from congvan.actions.context import SYSTEM
from congvan.actions.corrections import check_corrected
from congvan.actions.exchange.acceptance import Accepted, verify_package
from congvan.actions.exchange.archive import Limits
from congvan.actions.exchange.envelope import sign_body
from congvan.actions.exchange.package import RECALL, REPLACE, UPDATE, Header, open_package
from congvan.actions.exchange.receipts import make_receipt
from congvan.actions.signing import keystore
from congvan.actions.signing.agencykeys import AgencyKey, AgencyKeys
from congvan.actions.signing.truststore import TrustStore
from congvan.states.document import UPDATABLE
from congvan.states.errors import (
    AgencySignatureInvalid,
    DocumentSignatureInvalid,
    GuardFailed,
    InvalidInput,
    MessageIdReused,
    MessageMalformed,
    Misaddressed,
    OriginalUnknown,
    RequestAwaiting,
    TransitionNotAllowed,
    Unavailable,
)
from congvan.states.policy import notation
from congvan.states.timeliness import in_vietnam
from congvan.storage.clock import as_utc
from congvan.storage.ids import new_id
from congvan.storage.received import Received
from congvan.storage.unit_of_work import UnitOfWork

from .engine import Engine
from .engine.creating import Arrival

log = logging.getLogger("congvan.inbox")


@dataclass(frozen=True)
class Answer:
    """The receipt a package is answered with, and whether this delivery stored it."""

    receipt: bytes
    receipt_cms: bytes
    received_id: str
    stored: bool

    def wire(self) -> dict[str, str]:
        """The inbox's JSON answer: the receipt and its CMS, each in base64."""
        return {
            "receipt": base64.b64encode(self.receipt).decode(),
            "receipt_cms": base64.b64encode(self.receipt_cms).decode(),
        }


class Inbox:
    """Accepts packages for this installation's agencies."""

    def __init__(self, engine: Engine, keys: AgencyKeys, trust: TrustStore, limits: Limits) -> None:
        self.engine = engine
        self.keys = keys
        self.trust = trust
        self.limits = limits

    def accept(self, stream: BinaryIO) -> Answer:
        """Verify the package in ``stream``, store it once, answer its receipt."""
        engine = self.engine
        now = engine.clock()
        with open_package(stream, self.limits) as package:
            header = package.header
            with engine.open_uow(readonly=True) as uow:
                signer = self.keys.find(uow, header.recipient, now)
                trust = keystore.trust_material(uow, self.trust, [header.sender])
                # Known: a peer of the directory, or an agency of this installation.
                known = uow.peers.get(header.sender) is not None or (
                    self.keys.find(uow, header.sender, now) is not None
                )
                # A recall or update this message id brought (judged once it is verified).
                request = uow.received.request_under(
                    header.recipient, header.sender, header.message_id
                )
                accepted_before = _took_its_manifest(uow, header)
            # The sender is authenticated first: whom we receive for is not told to a
            # caller who cannot sign as an agency of the directory.
            verifying = functools.partial(
                verify_package,
                package,
                trust,
                expected_recipient=header.recipient,
                now=now,
                directory_lookup=lambda _sender: known,
                accepted_before=accepted_before,
            )
            try:
                accepted = verifying()
            except (AgencySignatureInvalid, DocumentSignatureInvalid):
                # These very bytes, taken here before (their first answer lost)? Then as
                # they were judged then: a renewal since, on either side, refuses nothing.
                with engine.open_uow(readonly=True) as uow:
                    taken_at = _took_these_bytes(uow, header, package.sha256)
                if taken_at is None:
                    raise
                accepted = verifying(taken_at=taken_at)
            if signer is None:
                with engine.open_uow(readonly=True) as uow:
                    ours = _kept_a_key(uow, header.recipient)
                if ours:
                    # One of ours between a revocation and its renewal: not now, never "not
                    # here" (a refusal the sender would keep for good).
                    raise Unavailable(
                        f"Agency {header.recipient} receives documents here but has no "
                        "usable organisational certificate to sign its receipt with just "
                        "now: try again later.",
                        reason="receipt_key",
                        recipient=header.recipient,
                    )
                raise Misaddressed(
                    f"No agency {header.recipient} receives documents here.",
                    reason="recipient",
                    recipient=header.recipient,
                )
            stream.seek(0)
            data = stream.read()
        if header.business_type in (RECALL, UPDATE):
            return self._request(accepted, signer, now)
        if request is not None:  # a document under a request's message id
            _same_package(request.package_sha256, accepted, header)
        replaces = None
        if header.business_type == REPLACE:
            replaces = self._original(header, replacement=True).id
        received_id = new_id()
        receipt = make_receipt(
            message_id=header.message_id,
            package_sha256=accepted.package_sha256,
            manifest_sha256=accepted.manifest_sha256,
            sender=header.sender,
            received_at=now,
            received_document_id=received_id,
            agency=signer,
        )
        doc, stored = engine.receive(
            Arrival(
                id=received_id,
                agency_id=header.recipient,
                sender_id=header.sender,
                message_id=header.message_id,
                sender_document_id=header.document_id,
                manifest=accepted.manifest,
                manifest_sha256=accepted.manifest_sha256,
                metadata=dict(accepted.document),
                package_sha256=accepted.package_sha256,
                package=data,
                receipt=receipt.body,
                receipt_cms=receipt.cms,
                replaces_id=replaces,
            )
        )
        if stored:
            return Answer(receipt.body, receipt.cms, doc.id, True)
        with engine.open_uow(readonly=True) as uow:
            first = uow.received.evidence(doc.id)
        assert first is not None
        _same_package(first.package_sha256, accepted, header)
        log.info(
            "package delivered again",
            extra={"action": "inbox.duplicate", "sender": header.sender, "document_id": doc.id},
        )
        return _answered_again(first.receipt, first.receipt_cms, doc.id, signer, now)

    def _original(self, header: Header, *, replacement: bool = False) -> Received:
        """The received document a recall, update or replacement names: one this sender
        sent to this recipient, by the package that brought it, else a refusal."""
        original = header.original
        assert original is not None  # read_header requires it of these types
        with self.engine.open_uow(readonly=True) as uow:
            found = uow.received.find(header.recipient, header.sender, original.message_id)
        if found is None:
            raise OriginalUnknown(
                f"{header.recipient} never received a package {original.message_id} from "
                f"{header.sender}.",
                reason="not_received",
                message_id=original.message_id,
            )
        if found.sender_document_id != original.document_id:
            raise OriginalUnknown(
                "The package named brought another document.",
                reason="another_document",
                message_id=original.message_id,
            )
        if (found.number, found.symbol) != (original.number, original.symbol or ""):
            raise OriginalUnknown(
                f"The package named brought {notation(found.number, found.symbol)}, not "
                f"{notation(original.number, original.symbol)}.",
                reason="another_document",
                message_id=original.message_id,
            )
        if not replacement and found.manifest_sha256 != header.manifest_sha256:
            raise OriginalUnknown(
                "A recall or update carries the document's signed manifest as received.",
                reason="another_manifest",
                message_id=original.message_id,
            )
        return found

    def _request(self, accepted: Accepted, signer: AgencyKey, now: datetime) -> Answer:
        """Keep a recall or update for our clerk to answer, once; answer its receipt."""
        header = accepted.header
        original = self._original(header)
        if header.business_type == UPDATE:
            _check_update(accepted, original)
        engine = self.engine
        with engine.open_uow(readonly=True) as uow:
            first = uow.received.request_under(header.recipient, header.sender, header.message_id)
            if first is not None:
                _same_package(first.package_sha256, accepted, header)
                body, cms = uow.received.request_receipt(first.id)
                return _answered_again(body, cms, first.received_id, signer, now)
            # A message id names one package from a sender: one that brought a document
            # is not a request's (its receipt and its 15/16 could not be told apart).
            brought = uow.received.find(header.recipient, header.sender, header.message_id)
            if brought is not None:
                _same_package(brought.package_sha256, accepted, header)
        receipt = make_receipt(
            message_id=header.message_id,
            package_sha256=accepted.package_sha256,
            manifest_sha256=accepted.manifest_sha256,
            sender=header.sender,
            received_at=now,
            received_document_id=original.id,
            agency=signer,
        )
        data = {
            "request_id": new_id(),
            "kind": header.business_type,
            "message_id": header.message_id,
            "reason": header.reason,
            "changes": dict(header.changes or {}),
            "package_sha256": accepted.package_sha256,
            "receipt": receipt.body,
            "receipt_cms": receipt.cms,
        }
        event = f"request_{header.business_type}"
        try:
            engine.fire_on("received", original.id, event, SYSTEM, data=data)
        except (GuardFailed, TransitionNotAllowed, IntegrityError) as exc:
            # The same package delivered twice at once, the first kept since this one
            # looked: its first receipt, whichever way the twin's transition failed
            # (another request awaiting: this one; the row's key taken: this one).
            with engine.open_uow(readonly=True) as uow:
                first = uow.received.request_by_message(original.id, header.message_id)
                if first is not None:
                    _same_package(first.package_sha256, accepted, header)
                    body, cms = uow.received.request_receipt(first.id)
                    return _answered_again(body, cms, original.id, signer, now)
            if isinstance(exc, GuardFailed):  # one request at a time: recalls.no_answer_owed
                raise RequestAwaiting(
                    "An earlier recall or update of this document still awaits our answer.",
                    reason="request_awaiting",
                    message_id=header.message_id,
                ) from exc
            if isinstance(exc, TransitionNotAllowed):
                raise OriginalUnknown(
                    f"The document is no longer in force here ({original.state}).",
                    reason="not_in_force",
                    message_id=header.message_id,
                    state=original.state,
                ) from exc
            raise
        log.info(
            "request received",
            extra={
                "action": "inbox.request",
                "sender": header.sender,
                "document_id": original.id,
                "business_type": header.business_type,
            },
        )
        return Answer(receipt.body, receipt.cms, original.id, True)


def _answered_again(
    receipt: bytes, cms: bytes, received_id: str, signer: AgencyKey, now: datetime
) -> Answer:
    """The first receipt, for a package delivered again: as it was signed, or, when the
    agency's certificate was renewed since (the old one may be revoked as superseded,
    which its sender would judge now), the same receipt signed now by the key valid now."""
    if signer.cert.public_bytes(Encoding.DER) not in cms:
        cms = sign_body(receipt, signer, now)
    return Answer(receipt, cms, received_id, False)


def _check_update(accepted: Accepted, original: Received) -> None:
    """What an update asks our clerk to agree to is held to what its sender's own update
    is (actions/corrections.py): it corrects how the document is written, never who
    signed it (the signer's certificate names the corrected signer) nor its year, and a
    due date not before the date of issue. Refused for good (422): agreed, it would be
    written to the document here."""
    current: dict[str, str | None] = {name: accepted.document.get(name) for name in UPDATABLE}
    current.update(json.loads(original.corrections))  # what our clerk agreed to before
    changes = accepted.header.changes or {}
    changed = {k: v for k, v in changes.items() if (current.get(k) or None) != v}
    signer = accepted.signer
    try:
        check_corrected(
            changed,
            current,
            signer=signer.signer,
            signed_on=in_vietnam(signer.signing_time).date(),
            today=None,  # gone by when it arrives (retries) is no reason to refuse it
        )
    except InvalidInput as exc:
        field = str(exc.details.get("field") or "changes").removeprefix("fields.")
        raise MessageMalformed(
            f"The update cannot be taken: {exc.message}",
            reason="correction",
            member="changes",
            field=field,
        ) from exc


def _same_package(first_sha256: str, accepted: Accepted, header: Header) -> None:
    """A package delivered again is answered the first receipt; one that only reuses the
    first's message id is refused (its own bytes would otherwise be dropped unsaid)."""
    if first_sha256 != accepted.package_sha256:
        raise MessageIdReused(
            f"Message {header.message_id} from {header.sender} was another package.",
            reason="message_id",
            message_id=header.message_id,
            package_sha256=accepted.package_sha256,
        )


def _took_its_manifest(uow: UnitOfWork, header: Header) -> datetime | None:
    """When the document a recall or update names arrived here, if it brought the very
    manifest this package carries (whatever else is wrong with the package is judged
    after its signatures)."""
    original = header.original
    if header.business_type not in (RECALL, UPDATE) or original is None:
        return None
    found = uow.received.find(header.recipient, header.sender, original.message_id)
    if found is None or found.manifest_sha256 != header.manifest_sha256:
        return None
    return as_utc(found.received_at)


def _kept_a_key(uow: UnitOfWork, agency_id: str) -> bool:
    """Whether an organisational key of ``agency_id`` is held here, usable or not."""
    return any(c.kind == "agency" and c.key_pem for c in uow.signatures.certificates(agency_id))


def _took_these_bytes(uow: UnitOfWork, header: Header, sha256: str) -> datetime | None:
    """When this very package (by its SHA-256) arrived here before, under its message id."""
    if header.business_type in (RECALL, UPDATE):
        request = uow.received.request_under(header.recipient, header.sender, header.message_id)
        held = None if request is None else (request.package_sha256, request.received_at)
    else:
        found = uow.received.find(header.recipient, header.sender, header.message_id)
        held = None if found is None else (found.package_sha256, found.received_at)
    return as_utc(held[1]) if held is not None and held[0] == sha256 else None
