"""Format ``congvan-receipt/1``: the receiving agency's signed word that a package arrived.

The receiver answers a package it accepted (``acceptance.verify_package``) with a receipt:
status 01 of QCVN 102 (arrived, not yet handled by a clerk; Decree 30 Art. 21 wants it
the same day). It is RFC 8785 canonical JSON under a detached CMS made with the
receiving agency's organisational key (``envelope``). Its members, all present:

``format``                ``"congvan-receipt/1"``.
``message_id``            The package's ``message_id``.
``package_sha256``        SHA-256 (lowercase hex) of the package archive as received.
``manifest_sha256``       SHA-256 of its ``manifest.json``.
``sender``                The organ id of the agency that sent the package.
``recipient``             The organ id of the agency that received it: the signer.
``status``                ``"01"``.
``received_at``           When it was accepted, ISO 8601 in UTC.
``received_document_id``  The receiver's id for the document it now holds.

Example (one line in reality, wrapped here)::

    {"format":"congvan-receipt/1","manifest_sha256":"5c0a…e1f3",
    "message_id":"dispatch-7f3a","package_sha256":"0d4e…77b2",
    "received_at":"2021-02-06T02:15:03+00:00","received_document_id":"in-2021-0412",
    "recipient":"000.00.11.H57","sender":"000.00.00.H57","status":"01"}

``verify_receipt``, on the sending side, refuses in this order:

    not canonical, another format, a member      MessageMalformed / FormatUnsupported
    missing, extra or mistyped, status not 01
    the signature does not verify with an        AgencySignatureInvalid (401), reason = the
    agency certificate we trust                  SignatureError code (a person's certificate:
                                                 certificate_profile_invalid)
    the certificate names another agency than    AgencyMismatch (403) certificate
    ``recipient``
    ``recipient`` is not the agency we sent to   AgencyMismatch (403) receiver
    another message, package or manifest         MessageMismatch (422) message_id,
                                                 package_digest, manifest_digest
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from congvan.actions.signing.agencykeys import AgencyKey
from congvan.actions.signing.keystore import TrustMaterial
from congvan.states.errors import (
    AgencyMismatch,
    CongvanError,
    MessageMalformed,
    MessageMismatch,
)
from congvan.storage.unit_of_work import UnitOfWork

from .envelope import Members, Sealed, check_moment, iso, read_canonical, seal, verify_body

FORMAT = "congvan-receipt/1"
ARRIVED = "01"
MEMBERS = (
    "format",
    "message_id",
    "package_sha256",
    "manifest_sha256",
    "sender",
    "recipient",
    "status",
    "received_at",
    "received_document_id",
)


@dataclass(frozen=True)
class Receipt:
    """A receipt whose signature and members verified."""

    message_id: str
    package_sha256: str
    manifest_sha256: str
    sender: str
    recipient: str
    status: str
    received_at: datetime
    received_document_id: str
    # A certificate of its path revoked after it was signed (verification.Verdict's).
    later_revocation: Mapping[str, str | None] | None = None


def make_receipt(
    *,
    message_id: str,
    package_sha256: str,
    manifest_sha256: str,
    sender: str,
    received_at: datetime,
    received_document_id: str,
    agency: AgencyKey,
) -> Sealed:
    """The receipt of a package from ``sender``, signed by the receiving ``agency``."""
    content = {
        "format": FORMAT,
        "message_id": message_id,
        "package_sha256": package_sha256,
        "manifest_sha256": manifest_sha256,
        "sender": sender,
        "recipient": agency.agency_id,
        "status": ARRIVED,
        "received_at": iso(received_at),
        "received_document_id": received_document_id,
    }
    try:
        _read(content)
    except MessageMalformed as exc:  # a receipt this module would refuse is never sent
        raise ValueError(exc.message) from exc
    return seal(content, agency, received_at)


def verify_receipt(
    body: bytes,
    cms: bytes,
    trust: TrustMaterial,
    *,
    expected_message_id: str,
    expected_package_sha256: str,
    expected_manifest_sha256: str,
    expected_receiver: str,
    expected_sender: str,
    now: datetime,
    sent_at: datetime | None = None,
) -> Receipt:
    """Check the receipt answers our package, from the agency that sent it, and is signed
    by the agency we sent it to; its ``received_at`` lies between ``sent_at`` (the
    package's, when known) and its signing."""
    receipt = _read(read_canonical(body, FORMAT))
    verdict = verify_body(body, cms, trust, agency_id=receipt.recipient, at=now)
    check_moment(
        "received_at",
        receipt.received_at,
        signed_at=verdict.signing_time,
        not_before=sent_at,
        now=now,
    )
    if receipt.recipient != expected_receiver:
        raise AgencyMismatch(
            f"The receipt comes from {receipt.recipient}; the package went to {expected_receiver}.",
            reason="receiver",
            agency_id=receipt.recipient,
        )
    for reason, found, expected in (
        ("message_id", receipt.message_id, expected_message_id),
        ("sender", receipt.sender, expected_sender),
        ("package_digest", receipt.package_sha256, expected_package_sha256),
        ("manifest_digest", receipt.manifest_sha256, expected_manifest_sha256),
    ):
        if found != expected:
            raise MessageMismatch(
                f"The receipt's {reason.replace('_', ' ')} is not the package's.",
                reason=reason,
                found=found,
                expected=expected,
            )
    return replace(receipt, later_revocation=verdict.later_revocation)


def arrived_at(uow: UnitOfWork, dispatch_id: str) -> datetime | None:
    """When the receipt kept for a dispatch (verified as it came) says its package
    arrived; None with no receipt, or one this format does not read. A retry may have
    fetched it long after: this, not when it was recorded, is when the recipient had it."""
    kept = uow.dispatches.receipt(dispatch_id)
    if kept is None:
        return None
    try:
        return _read(read_canonical(kept[0], FORMAT)).received_at
    except CongvanError:
        return None


def _read(content: Mapping[str, object]) -> Receipt:
    members = Members(content, MEMBERS)
    return Receipt(
        message_id=members.identifier("message_id"),
        package_sha256=members.sha256("package_sha256"),
        manifest_sha256=members.sha256("manifest_sha256"),
        sender=members.organ_id("sender"),
        recipient=members.organ_id("recipient"),
        status=members.choice("status", (ARRIVED,)),
        received_at=members.moment("received_at"),
        received_document_id=members.identifier("received_document_id"),
    )
