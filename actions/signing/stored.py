"""What a document's signature covers and names, and the check of one already stored.

``manifest_of`` and ``expected_signer`` are what signing (``signing``) signs and checks the
certificate against; ``verify_stored`` judges a stored signature again, for ``send``, the
API and the CLI, as of the moment the audit trail says it was accepted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from congvan.states.certificates import CertificateDescription, comparable
from congvan.states.errors import InvalidInput, ManifestMismatch, SignatureError, SignerMismatch
from congvan.storage.documents import DocumentRow
from congvan.storage.signatures import SignatureRow
from congvan.storage.unit_of_work import UnitOfWork

from ..timestamping import stored_token
from . import keystore
from .manifest import build_manifest
from .verification import Verdict, verify_manifest_signature


def manifest_of(
    uow: UnitOfWork, document_id: str, *, taken_back: Mapping[str, Any] | None = None
) -> bytes:
    """The manifest of the document as it stands now (with ``taken_back``: those fields'
    values instead of its own)."""
    doc = uow.documents.get(document_id)
    if doc is None:
        raise InvalidInput("No such document.", document_id=document_id)
    recipients = [r.organ_id for r in uow.documents.recipients(document_id)]
    # The manifest's format is defined over plain mappings (it is also built by hand).
    attachments = [dataclasses.asdict(a) for a in uow.documents.attachments(document_id)]
    fields = {**doc.as_dict(), **(taken_back or {}), "recipients": recipients}
    return build_manifest(fields, attachments)


@dataclasses.dataclass(frozen=True)
class AsSigned:
    """A document as its signature covers it: its manifest, its row, and the versions of
    the updates whose corrections were taken back to get them (none: as it is now)."""

    manifest: bytes
    document: DocumentRow
    updates: list[int]


def as_signed(uow: UnitOfWork, document_id: str, signed_sha256: str) -> AsSigned:
    """The document as its signature (of manifest ``signed_sha256``) should cover it.

    An update (a correction of an issued document's metadata, sent to its recipients)
    changes the document after it was signed; its audit entry keeps each field's value
    before. Taken back, newest first, they give the document as signed. When that is not
    what was signed either, the document changed otherwise: it is given as it is now, for
    the verification to refuse.
    """
    doc = uow.documents.load(document_id)
    current = AsSigned(manifest_of(uow, document_id), doc, [])
    updates = uow.audit.entries(document_id, "update")
    if hashlib.sha256(current.manifest).hexdigest() == signed_sha256 or not updates:
        return current
    taken_back: dict[str, Any] = {}
    for entry in reversed(updates):
        for name, change in dict(entry.payload.get("changed") or {}).items():
            taken_back[name] = change["from"]
    signed = manifest_of(uow, document_id, taken_back=taken_back)
    if hashlib.sha256(signed).hexdigest() != signed_sha256:
        return current
    return AsSigned(signed, dataclasses.replace(doc, **taken_back), [e.version for e in updates])


def expected_signer(uow: UnitOfWork, doc: DocumentRow) -> dict[str, str]:
    """Who the certificate must name: the document's signer, position and agency."""
    agency = uow.agencies.agency(doc.agency_id)
    return {
        "common_name": doc.signer_name,
        "title": doc.signer_position,
        "organization": agency.name if agency else "",
        "organizational_unit": doc.agency_id,
    }


def hold_to_signer(uow: UnitOfWork, doc: DocumentRow, certificate: CertificateDescription) -> None:
    """Refuse a certificate that is not the document's signer's own (``SignerMismatch``):
    a name and a position are no one's alone (two people of an agency may share them).
    Whose a certificate is: the user it is registered to here (``keys issue-signer``, or
    a token's certificate by ``keys import --kind signer --user``); one registered to no
    one is the signer's when its UID names them (``user@agency``, as this installation's
    CA writes it)."""
    own = f"{doc.signer_user}@{doc.agency_id}"
    row = uow.signatures.certificate(certificate.sha256)
    if row is not None and row.kind == "signer":
        holder = f"{row.username}@{row.agency_id}"
    else:
        holder = certificate.user_id or ""
    if comparable(holder) == comparable(own):
        return
    raise SignerMismatch(
        (
            f"The certificate is {holder}'s, not the document's signer's ({own}): "
            if holder
            else "The certificate is registered to no signer and names none (UID): "
        )
        + "a signer signs with a certificate of their own, registered to them "
        "(congvan keys import --kind signer --user).",
        differences={"user": {"expected": own, "certificate": holder or None}},
        signer=certificate.common_name,
        sha256=certificate.sha256,
    )


def verify_stored(
    uow: UnitOfWork,
    signature: SignatureRow,
    manifest: bytes,
    doc: DocumentRow,
    trust: keystore.TrustMaterial,
) -> Verdict:
    """Verify a stored signature against ``manifest`` as of when it was accepted.

    The moment of acceptance, and which CMS was accepted, are read from the audit entry
    of the ``sign`` transition (hash-chained and anchored), not from the signature's row,
    which SQL can change unnoticed. Every attachment's bytes are hashed again. With the
    timestamp token the TSA gave after acceptance, the verdict rests on its time.
    """
    cms = bytes(signature.cms)
    accepted = accepted_at(uow, signature, cms)
    check_stored_bytes(uow, manifest)
    return verify_manifest_signature(
        manifest,
        cms,
        trust_roots=trust.roots,
        crls=trust.crls,
        intermediates=trust.intermediates,
        at=accepted,
        expected_signer=expected_signer(uow, doc),
        timestamp_token=stored_token(uow, "signature", signature.id),
    )


def accepted_at(uow: UnitOfWork, signature: SignatureRow, cms: bytes) -> datetime:
    """When the audit trail says this signature was accepted; refuses one it does not know."""
    cms_sha256 = hashlib.sha256(cms).hexdigest()
    for entry in reversed(uow.audit.entries(signature.document_id, "sign")):
        payload = entry.payload
        if payload.get("signature_id", signature.id) != signature.id:
            continue
        if payload.get("manifest_sha256") != signature.manifest_sha256:
            continue
        if payload.get("cms_sha256", cms_sha256) != cms_sha256:
            raise SignatureError(
                "The stored signature is not the one the audit trail recorded when it was "
                "accepted.",
                audit_version=entry.version,
            )
        return entry.at
    raise SignatureError(
        "The audit trail records no acceptance of this signature.",
        document_id=signature.document_id,
    )


def check_stored_bytes(uow: UnitOfWork, manifest: bytes) -> None:
    """Every file the manifest lists is still stored with the bytes it was signed with."""
    try:
        listed = json.loads(manifest).get("attachments", [])
    except (ValueError, AttributeError):
        return  # not a manifest of ours: the signature check says what it is
    for attachment in listed:
        data = uow.documents.blob(attachment.get("sha256", ""))
        if data is None or hashlib.sha256(data).hexdigest() != attachment.get("sha256"):
            raise ManifestMismatch(
                "The stored bytes of an attachment no longer match the digest the manifest signs.",
                attachment=attachment.get("filename"),
                sha256=attachment.get("sha256"),
            )
