"""Whether to trust a package ``open_package`` opened: who sent it, for whom, and is it whole.

``verify_package`` checks, in this order, and raises the first refusal:

    1. agency signature over package.json      AgencySignatureInvalid (401), reason = the
       (agency profile, pinned roots, CRLs)    SignatureError code (chain_untrusted,
                                               certificate_revoked,
                                               certificate_profile_invalid…)
       its certificate names the sender        AgencyMismatch (403) certificate
       the sender is in our directory          PeerUnknown (401) unknown_agency
    2. the recipient is us                     Misaddressed (403) recipient
    3. the signer's signature over             DocumentSignatureInvalid (422), reason = the
       manifest.json (signer profile), by      SignatureError code (signer_mismatch: the
       the signer and position it names, of    certificate names another)
       the sending agency
    4. every part's size and SHA-256 against   PackageTampered (422) part_size, part_digest,
       package.json; the manifest's digest     manifest_digest
       and document id; every attachment of    attachment_missing, attachment_mismatch,
       the manifest against the file parts     attachment_extra, attachment_twice,
       (each listed once)                      document_id
       the manifest's members: all of its      MessageMalformed (422) members, member
       format's and no other, each of its
       kind; one main file, a PDF, and         main_file, attachment_role
       appendices; the issuing agency not      MessageMalformed (422) metadata
       among its recipients
    5. the manifest is the sender's document   AgencyMismatch (403) manifest_agency
       and names us among its recipients       Misaddressed (403) not_a_recipient
       its metadata as a document's fields     MessageMalformed (422) metadata (details:
       hold them (kind, length, storable       field, problem)
       text in NFC; urgency 0–4), those review
       requires not null
    6. the signed PDF, when there is one, as   (``signedpdf.verify_signed_main``)
       an upload is judged: named signed/ +    PackageTampered (422) signed_pdf_mismatch
       the manifest's main PDF, and that PDF's
       bytes with one signature appended and
       nothing else (ManifestMismatch,
       PdfModified underneath)
       its signatures verify (chain, CRLs,     DocumentSignatureInvalid (422)
       signer profile)                         signed_pdf_invalid
       made with signature.p7s's certificate   DocumentSignatureInvalid (422)
                                               signed_pdf_signer

A refusal of 6 names the ``SignatureError`` underneath in ``details["error"]``
(``pdf_modified``, ``chain_untrusted``…). A package without a signed PDF skips 6: a
signature made without one is accepted as it is.

Certificates are judged at ``now``, the moment of acceptance, with the CRLs of ``trust``;
nothing is fetched. When no current CRL covers a certificate (1, 3 or 6), nothing is
refused: VerificationDeferred (503, reason revocation_unknown) asks the sender to come
back later. The checks that read every byte (4, 6) come after those that need only the
small members, so a package from nobody we trust costs no more than its signatures; the
signed PDF, the dearest to verify, comes last.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from congvan.actions.signing.certpath import ahead_of_clock
from congvan.actions.signing.keystore import TrustMaterial
from congvan.actions.signing.manifest import ATTACHMENT_FIELDS, MANIFEST_MEMBERS, METADATA_FIELDS
from congvan.actions.signing.manifest import FORMAT as MANIFEST_FORMAT
from congvan.actions.signing.pades import PdfVerdict
from congvan.actions.signing.signedpdf import verify_signed_main
from congvan.actions.signing.verification import Verdict, verify_manifest_signature
from congvan.states.errors import (
    AgencyMismatch,
    DocumentSignatureInvalid,
    ExchangeRefused,
    ManifestMismatch,
    MessageMalformed,
    Misaddressed,
    PackageTampered,
    PeerUnknown,
    RevocationUnknown,
    SignatureError,
    SignerMismatch,
)
from congvan.states.fields import (
    DOCUMENT_FIELDS,
    REQUIRED_AT_REVIEW,
    SIGNED_WHEN_SET,
    SIGNED_WHEN_TRUE,
)
from congvan.states.format_rules import symbol_cased
from congvan.states.policy import (
    APPOINTED_URGENCY,
    FILE_ROLES,
    MAIN_FILE,
    MAIN_FILE_TYPE,
    URGENCY,
    is_organ_id,
)
from congvan.states.text import given, signed_text_problem, value_problem

from .envelope import (
    Members,
    check_moment,
    clock_ahead,
    deferred,
    read_canonical,
    verify_body,
)
from .package import FILES, MANIFEST, SIGNED, Header, Package, Part, main_pdf

# Whether an agency is one this system exchanges documents with (the directory).
DirectoryLookup = Callable[[str], bool]


@dataclass(frozen=True)
class Accepted:
    """A package that passed every check, and what the receipt and the inbox need of it."""

    header: Header
    manifest: bytes
    document: Mapping[str, Any]  # the manifest's content
    package_sha256: str
    manifest_sha256: str
    agency: Verdict
    signer: Verdict
    signed_pdf: PdfVerdict | None = None  # when the package carries one


def verify_package(
    package: Package,
    trust: TrustMaterial,
    *,
    expected_recipient: str,
    now: datetime,
    directory_lookup: DirectoryLookup,
    accepted_before: datetime | None = None,
    taken_at: datetime | None = None,
) -> Accepted:
    """Check ``package`` is from the agency it names, for ``expected_recipient``, intact.

    ``accepted_before``: when this installation took the signed manifest the package
    carries once already (a recall or update carries the document as received). Its
    signer's signature is judged as of then, as it was: a certificate renewed and revoked
    as superseded since does not make the document one its sender can no longer recall or
    correct. The agency's signature, made now, is judged now.

    ``taken_at``: when this installation took these very bytes (the same package delivered
    again, its first answer lost): both signatures are judged as of then, as they were, so
    that a renewal since on either side does not refuse what is held already.
    """
    header = package.header
    if not directory_lookup(header.sender):
        # Known before its signature is read: an agency in no directory entry has no
        # certificate here to be checked against (deferring it, as a certificate not yet
        # imported is, would have its sender try again for nothing).
        raise PeerUnknown(
            f"Agency {header.sender} is not in this system's directory.",
            reason="unknown_agency",
            agency_id=header.sender,
        )
    agency = verify_body(
        package.body,
        package.agency_signature,
        trust,
        agency_id=header.sender,
        at=now if taken_at is None else taken_at,
    )
    # When it was sent is evidence (its receipt and statuses are bounded by it, a clerk
    # judges its timeliness by it): the agency signs the header as it sends it, so neither
    # after nor before that.
    check_moment(
        "sent_at",
        header.sent_at,
        signed_at=agency.signing_time,
        not_before=agency.signing_time,
        since=("signed_at", "the agency signed the package"),
        now=now,
    )
    if header.recipient != expected_recipient:
        raise Misaddressed(
            f"The package is for {header.recipient}, not {expected_recipient}.",
            reason="recipient",
            recipient=header.recipient,
        )
    signer_judged_at = taken_at or accepted_before or now
    try:
        signer = verify_manifest_signature(
            package.manifest,
            package.signature,
            trust_roots=trust.roots,
            crls=trust.crls,
            intermediates=trust.intermediates,
            at=signer_judged_at,
            expected_signer=_signer_named(package.manifest, header.sender),
            profile="signer",
        )
    except RevocationUnknown as exc:
        raise deferred(exc, header.sender) from exc
    except SignatureError as exc:
        if ahead_of_clock(exc):
            raise clock_ahead(exc, header.sender) from exc
        raise DocumentSignatureInvalid(
            f"The document's signature does not verify: {exc.message}", reason=exc.code
        ) from exc
    # Nor before the document it carries was signed.
    check_moment(
        "sent_at",
        header.sent_at,
        not_before=signer.signing_time,
        since=("document_signed_at", "the document was signed"),
    )
    heads = {part.name: _check_part(package, part) for part in header.parts}
    document = _check_manifest(package, header)
    main = main_pdf(document)
    if main is not None and not heads.get(FILES + main, b"").startswith(PDF_MAGIC):
        raise MessageMalformed(
            "The main file the manifest names a PDF is not one.",
            reason="main_file",
            part=FILES + main,
        )
    if document.get("agency_id") != header.sender:
        raise AgencyMismatch(
            f"The document is issued by {document.get('agency_id')}, not by the sender.",
            reason="manifest_agency",
            agency_id=header.sender,
        )
    if header.recipient not in document["recipients"]:
        # The signer addressed the document (nơi nhận); the agency's clerk cannot add to it.
        raise Misaddressed(
            f"The signed document does not name {header.recipient} among its recipients.",
            reason="not_a_recipient",
            recipient=header.recipient,
        )
    _check_metadata(document)
    # The signed PDF is the signer's too: judged as of when its signature was.
    signed_pdf = _check_signed_pdf(package, document, signer, trust, signer_judged_at)
    return Accepted(
        header=header,
        manifest=package.manifest,
        document=MappingProxyType(document),
        package_sha256=package.sha256,
        manifest_sha256=header.manifest_sha256,
        agency=agency,
        signer=signer,
        signed_pdf=signed_pdf,
    )


def _signer_named(manifest: bytes, sender: str) -> dict[str, str]:
    """Whom the signer's certificate must name, as the sender's own checks and the evidence
    verifier want: the manifest's signer and position, of the sending agency. (A manifest
    that is not JSON names nobody here; it is refused as such further on.)"""
    try:
        document = json.loads(manifest)
    except (ValueError, RecursionError):
        document = None
    named = {"organizational_unit": sender}
    if isinstance(document, dict):
        for field, name in (("common_name", "signer_name"), ("title", "signer_position")):
            value = document.get(name)
            if isinstance(value, str) and value.strip():
                named[field] = value
    return named


APPOINTED = "appointed_at"

# How every PDF begins (ISO 32000-1, 7.5.2): what review's type check reads too.
PDF_MAGIC = b"%PDF-"


def _check_part(package: Package, part: Part) -> bytes:
    """The part is the size and SHA-256 package.json gives it; returns its first bytes."""
    digest, size, head = hashlib.sha256(), 0, b""
    for chunk in package.archive.chunks(part.name):
        digest.update(chunk)
        if len(head) < len(PDF_MAGIC):
            head += chunk[: len(PDF_MAGIC) - len(head)]
        size += len(chunk)
    if size != part.size:
        raise PackageTampered(
            f"{part.name} is not the size package.json gives it.",
            reason="part_size",
            part=part.name,
        )
    if digest.hexdigest() != part.sha256:
        raise PackageTampered(
            f"{part.name} is not the part package.json names.",
            reason="part_digest",
            part=part.name,
        )
    return head


def _check_manifest(package: Package, header: Header) -> dict[str, Any]:
    """The manifest's content, once it and the file parts are what package.json names."""
    listed = next(p for p in header.parts if p.name == MANIFEST)
    if header.manifest_sha256 != listed.sha256:
        raise PackageTampered(
            "package.json names two different manifests.", reason="manifest_digest"
        )
    document = read_canonical(package.manifest, MANIFEST_FORMAT)
    _check_members(document)
    if document.get("document_id") != header.document_id:
        raise PackageTampered(
            "The manifest is of another document than package.json names.",
            reason="document_id",
        )
    files = {p.filename: p for p in header.parts if p.filename is not None}
    attachments = document["attachments"]
    named: set[str] = set()
    for attachment in attachments:
        name = attachment["filename"]
        part = files.get(name) if isinstance(name, str) else None
        if part is None:
            raise PackageTampered(
                "A file the manifest lists is not in the package.",
                reason="attachment_missing",
                filename=str(name)[:300],
            )
        as_signed = {k: attachment.get(k) for k in ("role", "media_type", "size", "sha256")}
        as_packed = {k: getattr(part, k) for k in as_signed}
        # Equal and of one type: JSON's true is not the size 1, nor 1.0 the size 1.
        if as_signed != as_packed or any(
            type(as_signed[k]) is not type(as_packed[k]) for k in as_signed
        ):
            raise PackageTampered(
                f"{part.name} is not the file the manifest names.",
                reason="attachment_mismatch",
                part=part.name,
            )
        if part.name in named:
            raise PackageTampered(
                "The manifest lists a file twice.", reason="attachment_twice", part=part.name
            )
        named.add(part.name)
    extra = sorted(p.name for p in files.values() if p.name not in named)
    if extra:
        raise PackageTampered(
            "The package carries files the manifest does not list.",
            reason="attachment_extra",
            parts=extra[:20],
        )
    _check_roles(attachments)
    return document


def _check_members(document: Mapping[str, Any]) -> None:
    """The manifest holds every member of its format and no other (``manifest.py``), each
    of its kind: what a signer signs, and what review made sure a document has."""
    optional = [name for name in (*SIGNED_WHEN_TRUE, *SIGNED_WHEN_SET) if name in document]
    members = Members(document, (*MANIFEST_MEMBERS, *optional))
    members.identifier("document_id")
    members.organ_id("agency_id")
    revision = document["revision"]
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
        raise MessageMalformed(
            "The manifest's revision must be a whole number from 1.",
            reason="member",
            member="revision",
        )
    recipients = document["recipients"]
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(r, str) and is_organ_id(r) for r in recipients)
    ):
        raise MessageMalformed(
            "The manifest's recipients must be a list of agency identifiers.",
            reason="member",
            member="recipients",
        )
    for name in SIGNED_WHEN_TRUE:
        if name in document and document[name] is not True:
            raise MessageMalformed(
                f"The manifest names {name} only when it is true.", reason="member", member=name
            )
    for name in SIGNED_WHEN_SET:
        if name in document and document[name] is None:
            raise MessageMalformed(
                f"The manifest names {name} only when it is set.", reason="member", member=name
            )
    if (document["urgency"] == APPOINTED_URGENCY) != (APPOINTED in document):
        # Review's metadata.appointed_time: the one urgency with an appointed time.
        raise MessageMalformed(
            "A hỏa tốc hẹn giờ document (urgency 4) carries its appointed time, and only it.",
            reason="metadata",
            field=APPOINTED,
            problem="goes with urgency 4 only",
        )
    missing = [
        name for name in REQUIRED_AT_REVIEW if name in METADATA_FIELDS and not given(document[name])
    ]
    if missing:
        raise MessageMalformed(
            f"A signed document has its {', '.join(missing)}; the manifest's are empty.",
            reason="metadata",
            field=missing[0],
            problem="is missing",
        )
    symbol = document["symbol"]
    if isinstance(symbol, str) and not symbol_cased(symbol, document.get("doc_type")):
        raise MessageMalformed(
            "The manifest's symbol is not groups of capitals and digits joined by '-' (the "
            "type's abbreviation first, as Decree 30 writes it).",
            reason="metadata",
            field="symbol",
            problem="is not a symbol",
        )
    if len(set(recipients)) != len(recipients):
        raise MessageMalformed(
            "The manifest names a recipient twice.", reason="member", member="recipients"
        )
    if document["agency_id"] in recipients:
        # Review's metadata.agencies: an agency does not send a document to itself.
        raise MessageMalformed(
            "The manifest names the issuing agency among its recipients.",
            reason="metadata",
            field="recipients",
            problem="names the issuing agency",
        )
    attachments = document["attachments"]
    if not isinstance(attachments, list) or not attachments:
        raise PackageTampered("The manifest lists no attachments.", reason="attachment_missing")
    for attachment in attachments:
        if not isinstance(attachment, dict):
            raise MessageMalformed(
                "Each attachment of the manifest is an object.",
                reason="member",
                member="attachments",
            )
        Members(attachment, ATTACHMENT_FIELDS)
        name = attachment["filename"]
        if not isinstance(name, str) or signed_text_problem(name, multi_line=False):
            raise MessageMalformed(
                "An attachment's filename is not one line of NFC text.",
                reason="member",
                member="attachments",
            )


def _check_roles(attachments: list[dict[str, Any]]) -> None:
    """One main file, a PDF, and appendices: what review asks of a document before it is
    signed (``attachments.main_file``), asked again of what a peer sends."""
    roles = [a.get("role") for a in attachments]
    unknown = sorted({str(r)[:40] for r in roles if r not in FILE_ROLES})
    if unknown:
        raise MessageMalformed(
            f"The manifest names a file role other than {' or '.join(FILE_ROLES)}.",
            reason="attachment_role",
            roles=unknown[:5],
        )
    main = [a for a in attachments if a.get("role") == MAIN_FILE]
    if len(main) != 1:
        raise MessageMalformed(
            f"A document has exactly one main file; the manifest lists {len(main)}.",
            reason="main_file",
            count=len(main),
        )
    if main[0].get("media_type") != MAIN_FILE_TYPE:
        raise MessageMalformed(
            "The main file of a document is a PDF.",
            reason="main_file",
            media_type=str(main[0].get("media_type"))[:100],
        )


def _check_metadata(document: Mapping[str, Any]) -> None:
    """What the manifest says of the document, as the fields of a document hold it: it is
    kept, listed and shown by our clerks' screens."""
    for field in DOCUMENT_FIELDS:
        if field.manifest == "never" or field.name not in document:
            continue
        value = document[field.name]
        problem = value_problem(field, value)
        if problem is None and field.name == "urgency" and value is not None:
            problem = None if value in URGENCY else f"must be {min(URGENCY)} to {max(URGENCY)}"
        if problem is not None:
            raise MessageMalformed(
                f"The manifest's {field.name} {problem}.",
                reason="metadata",
                field=field.name,
                problem=problem,
            )


def _check_signed_pdf(
    package: Package,
    document: Mapping[str, Any],
    signer: Verdict,
    trust: TrustMaterial,
    now: datetime,
) -> PdfVerdict | None:
    """Verify the signed PDF, when the package carries one, as an upload is verified."""
    part = package.header.signed_pdf
    if part is None:
        return None
    main = main_pdf(document)
    if main is None or part.name != SIGNED + main:
        raise PackageTampered(
            "The signed PDF is not the manifest's main PDF.",
            reason="signed_pdf_mismatch",
            part=part.name,
        )
    try:
        return verify_signed_main(
            # Whole in memory, as PDF verification needs: open_archive bounded both parts.
            _read(package, FILES + main),
            _read(package, part.name),
            certificate=signer.signer.sha256,
            trust_roots=trust.roots,
            crls=trust.crls,
            intermediates=trust.intermediates,
            at=now,
        )
    except RevocationUnknown as exc:
        raise deferred(exc, package.header.sender) from exc
    except SignatureError as exc:
        refusal, reason, text = next(r[1:] for r in _PDF_REFUSALS if isinstance(exc, r[0]))
        certificates = {k: v for k, v in exc.details.items() if k.endswith("_certificate")}
        raise refusal(
            f"{text}: {exc.message}", reason=reason, part=part.name, error=exc.code, **certificates
        ) from exc


# What a signed PDF that does not hold is refused as, by the first class that matches.
_PDF_REFUSALS: tuple[tuple[type[SignatureError], type[ExchangeRefused], str, str], ...] = (
    (  # PdfModified too
        ManifestMismatch,
        PackageTampered,
        "signed_pdf_mismatch",
        "The signed PDF is not the manifest's main PDF with one signature appended",
    ),
    (
        SignerMismatch,
        DocumentSignatureInvalid,
        "signed_pdf_signer",
        "The signed PDF is signed with another certificate than the manifest",
    ),
    (
        SignatureError,
        DocumentSignatureInvalid,
        "signed_pdf_invalid",
        "The signed PDF's signature does not verify",
    ),
)


def _read(package: Package, name: str) -> bytes:
    return b"".join(package.archive.chunks(name))
