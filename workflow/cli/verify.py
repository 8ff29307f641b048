"""The ``verify`` command: a document's latest signature, or a signature file (CMS or PDF)."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from congvan.states import policy
from congvan.states.errors import InvalidInput, NotFound

from ..settings import Settings
from . import files
from .files import read_bounded, regular_file
from .runtime import Store, Subparsers, runtime_for
from .verdict import PDF_CHECKS, print_trust_notes, report

if TYPE_CHECKING:
    from congvan.actions.signing.keystore import TrustMaterial


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "verify",
        help="verify a document's latest signature, or a signature file (CMS or PDF)",
        description="Exit 0 when the signature verifies, 1 when it does not, 2 when there "
        "is nothing to verify (no such document, unsigned, no such file).",
    )
    p.add_argument("target", metavar="FILE|DOCUMENT", help="a document id, or a signature file")
    p.add_argument(
        "--content",
        metavar="MANIFEST",
        help="the signed manifest, for a detached CMS signature file (DER or PEM)",
    )
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    target = Path(args.target)
    with runtime_for(settings) as runtime:  # verifying needs no key passphrase
        if args.content is not None or target.exists():
            from congvan.actions.signing.signedpdf import SIGNATURE_ROOM

            # A signed PDF is at most a main file with its signatures; a CMS is far less.
            most = settings.max_attachment_bytes + SIGNATURE_ROOM
            path = regular_file(args.target, "signature file")
            return _verify_file(path, args.content, runtime, most)
        return _verify_document(args.target, runtime)


def _looks_like_cms(data: bytes) -> bool:
    """Whether ``data`` could be a CMS signature at all: PEM armour, or DER's outer
    SEQUENCE (what it holds is judged by the verification, with its own words)."""
    from asn1crypto import pem

    return pem.detect(data) or data[:1] == b"\x30"


def _read_cms(data: bytes) -> bytes:
    """A CMS signature file as DER: DER as is, PEM (CMS or PKCS7 armour) decoded."""
    from asn1crypto import pem

    if not pem.detect(data):
        return data
    try:
        _kind, _headers, der = pem.unarmor(data)
    except ValueError as exc:  # no END line, bad base64, or headers that are not ASCII
        raise InvalidInput("The PEM signature file is not valid PEM.") from exc
    return bytes(der)


def _verify_document(document_id: str, runtime: Store) -> int:
    import hashlib

    from congvan.actions.signing import keystore
    from congvan.actions.signing.stored import as_signed, verify_stored
    from congvan.actions.timestamping import timestamp_view
    from congvan.states.timeliness import shown_exactly

    with runtime.uow(readonly=True) as uow:
        trust = keystore.trust_material(uow, runtime.trust, noting_ignored=True)
        doc = uow.documents.get(document_id)
        if doc is None:
            raise NotFound(
                f"No file {document_id!r} and no document with that id.", document_id=document_id
            )
        signature = uow.signatures.latest_signature(document_id)
        if signature is None:
            raise InvalidInput(
                f"Document {document_id} is not signed ({doc.state}).",
                document_id=document_id,
                state=doc.state,
            )
        signed = as_signed(uow, document_id, signature.manifest_sha256)
        manifest, updates = signed.manifest, signed.updates
        cms_der = bytes(signature.cms)
        notation = policy.written_notation(doc.as_dict())
        current = hashlib.sha256(manifest).hexdigest()
        accepted = shown_exactly(signature.created_at)
        header = [
            f"document      {document_id} {notation} ({doc.state}, revision {doc.revision})",
            f"signature     revision {signature.revision}, {signature.mode} mode, "
            f"accepted {accepted}; checked as of then",
        ]
        footer = [f"manifest      sha256 {signature.manifest_sha256} (signed)"]
        if updates:
            versions = ", ".join(f"v{v}" for v in updates)
            footer.append(f"              its metadata corrected since by update ({versions})")
        elif current != signature.manifest_sha256:
            footer.append(f"              sha256 {current} (the document now)")
        print_trust_notes(trust, runtime.trust)
        stamp = timestamp_view(uow, "signature", signature.id)
        if stamp["status"] in ("pending", "unavailable"):
            error = f": {stamp['error']}" if stamp["error"] else ""
            footer.append(f"timestamp     {stamp['status']}{error}")
        return report(
            lambda: verify_stored(uow, signature, manifest, signed.document, trust),
            cms_der,
            header,
            footer,
        )


def _verify_file(path: Path, content: str | None, runtime: Store, most: int) -> int:
    import hashlib

    from congvan.actions.signing import keystore
    from congvan.actions.signing.verification import verify_manifest_signature
    from congvan.states.timeliness import shown_exactly

    data = read_bounded(str(path), "signature file", most)
    now = runtime.clock()
    with runtime.uow(readonly=True) as uow:
        trust = keystore.trust_material(uow, runtime.trust, noting_ignored=True)
    print_trust_notes(trust, runtime.trust)
    checked = (
        f"checked at    {shown_exactly(now)} with {len(trust.roots)} "
        f"trusted root(s) and {len(trust.crls)} CRL(s)"
    )
    if data.startswith(b"PK\x03\x04"):
        raise InvalidInput(
            f"{path} is a ZIP archive, not a signature: an evidence bundle is checked by "
            "`congvan evidence verify BUNDLE`.",
            field="target",
        )
    if data.startswith(b"%PDF"):
        if content is not None:
            raise InvalidInput(
                "--content names the manifest a detached CMS signature signed; a PDF holds "
                "what its signature covers: leave it out.",
                field="content",
            )
        return _verify_pdf(path, data, trust, now, checked)
    no_signature = InvalidInput(
        f"{path} is not a signature file: verify takes a signed PDF, or a detached CMS "
        "signature (DER, or PEM) with the content it signs (--content).",
        field="target",
    )
    if content is None:
        if not _looks_like_cms(data):
            raise no_signature
        raise InvalidInput(
            "A detached CMS signature needs the signed manifest: --content MANIFEST.",
            field="content",
        )
    manifest_path = regular_file(content, "content")
    if not _looks_like_cms(data):
        raise no_signature
    manifest = read_bounded(str(manifest_path), "content", files.MANIFEST)
    cms_der = _read_cms(data)
    profile, agency_id, what = _signed_by(manifest)
    return report(
        lambda: verify_manifest_signature(
            manifest,
            cms_der,
            # An agency's message speaks for the agency it names, under the roots that may
            # (as the inbox, a receipt's sender and `evidence verify` hold it)
            trust_roots=trust.roots if agency_id is None else trust.roots_for(agency_id),
            crls=trust.crls,
            at=now,
            profile=profile,
            expected_signer=None if agency_id is None else {"organizational_unit": agency_id},
            intermediates=trust.intermediates,
        ),
        cms_der,
        [f"signature     {path} (detached CMS, {len(cms_der)} bytes; {what})", checked],
        [f"content       sha256 {hashlib.sha256(manifest).hexdigest()} ({manifest_path})"],
    )


# What an agency signs with its organisational key (Decree 30 Art. 33), by the format the
# content names: a package header, a receipt, a status message, a bundle's index, an
# anchor; and the field naming the agency that signs it.
_AGENCY_SIGNED = {
    "congvan-package/1": "sender",
    "congvan-receipt/1": "recipient",
    "congvan-status/1": "from",
    "congvan-evidence/2": "agency_id",
    "congvan-audit-anchor/1": "agency_id",
}


def _signed_by(content: bytes) -> tuple[Literal["signer", "agency"], str | None, str]:
    """Whose certificate profile signs ``content``, and for an agency's, the agency it names
    as its signer: an agency's for the messages and records an agency signs, a person's
    (the signer's) for a document's manifest."""
    import json

    try:
        parsed = json.loads(content)
        named = parsed.get("format")
    except (ValueError, AttributeError, RecursionError):
        return "signer", None, "a signer's signature over a manifest"
    if named not in _AGENCY_SIGNED:
        return "signer", None, "a signer's signature over a manifest"
    field = _AGENCY_SIGNED[named]
    agency_id = parsed.get(field)
    if not isinstance(agency_id, str) or not policy.is_organ_id(agency_id):
        raise InvalidInput(
            f"The content is {named}, whose {field!r} names the agency that signs it: it "
            "names none.",
            field="content",
        )
    return "agency", agency_id, f"{agency_id}'s signature over {named}"


def _verify_pdf(path: Path, data: bytes, trust: TrustMaterial, now: datetime, checked: str) -> int:
    from congvan.actions.signing.pades import verify_pdf
    from congvan.actions.signing.pdfsignatures import signature_cms

    return report(
        lambda: verify_pdf(
            data,
            trust_roots=trust.roots,
            crls=trust.crls,
            at=now,
            intermediates=trust.intermediates,
        ),
        # the signature a failure names (its field), else the last: to name its signer
        lambda field: signature_cms(data, field),
        [f"signature     {path} (PDF, {len(data)} bytes; every signature is checked)", checked],
        [],
        PDF_CHECKS,
    )
