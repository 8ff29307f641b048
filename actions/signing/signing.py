"""Signing as transitions: who may sign, the signature attached by ``sign``, checked by ``send``.

Two modes. The server signs with the signer's stored key (encrypted PKCS#8, unlocked with
the configured passphrase): the manifest (detached CMS) and the main PDF (PAdES, visible
stamp). Or the signer's own tool (a USB token in practice) signs the manifest from
``GET /v1/documents/{id}/manifest`` and the CMS comes in the event's body as base64
(``cms``), with the main PDF it signed with the same certificate (``signed_pdf``, base64,
optional): that PDF must be the document's main file with signatures appended
(incremental update) that adds one signature and nothing else (``pdfchanges``), and both
are verified before they are accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from cryptography import x509

from congvan.states.deadlines import Deadlines
from congvan.states.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    CongvanError,
    FieldTooLong,
    GuardFailed,
    InvalidInput,
    ManifestMismatch,
    SignatureError,
    SigningTimeInvalid,
)
from congvan.states.format_rules import competence_line, grants_competence
from congvan.states.phrasing import moment
from congvan.states.policy import DEFAULT_NUMBERING, number_series
from congvan.states.text import calendar_day
from congvan.states.timeliness import (
    DEFAULT_CUTOFF,
    DEFAULT_SIGN_WITHIN_WORKING_DAYS,
    WorkingDays,
    appointed_moment,
    judge_signing,
)
from congvan.states.timeliness import (
    VIETNAM as VIETNAM,  # re-exported: the CLI shows times in it
)
from congvan.storage.clock import as_utc
from congvan.storage.documents import AttachmentRow, DocumentRow
from congvan.storage.ids import new_id
from congvan.storage.signatures import SignatureRow
from congvan.storage.unit_of_work import UnitOfWork

from ..calendar import VIETNAM_CALENDAR
from ..context import TransitionContext
from ..timestamping import Timestamping, record_embedded
from . import keystore, pki
from .certpath import CLOCK_SKEW
from .cms import sign_manifest
from .pades import PdfVerdict, sign_pdf, verify_pdf
from .signedpdf import SIGNATURE_ROOM, verify_signed_main
from .stored import expected_signer, hold_to_signer, manifest_of, verify_stored
from .truststore import TrustStore
from .verification import verify_manifest_signature

MAX_CMS_BYTES = 256 * 1024


@dataclass(frozen=True)
class ServerSignature:
    """What signing on the server made: the manifest signed, its CMS, the stamped PDF;
    and ``checked_pdf``, what was verified before the transaction: the main file's and
    the signed PDF's SHA-256 and the fingerprint of the certificate that signed it (the
    server's stamped PDF, or the one a signer's tool uploaded)."""

    manifest: bytes
    cms: bytes
    signed_pdf: bytes | None
    checked_pdf: tuple[str, str, str] | None = None


class Signing:
    """The guards and effect the document machine names for ``sign`` and ``send``."""

    def __init__(
        self,
        passphrase: Callable[[], str],
        trust: TrustStore,
        max_pdf_bytes: int = 25 * 1024 * 1024,
        timestamping: Timestamping | None = None,
        calendar: WorkingDays = VIETNAM_CALENDAR,
        send_cutoff: time = DEFAULT_CUTOFF,
        sign_within_working_days: int = DEFAULT_SIGN_WITHIN_WORKING_DAYS,
        deadlines: Callable[[UnitOfWork, str], Deadlines] | None = None,
    ) -> None:
        self.passphrase = passphrase
        # The agency's time rules in force (the escalations' own): an urgent document is
        # sent "right after signing", within the rule's working minutes.
        self.deadlines = deadlines
        self.calendar = calendar
        self.send_cutoff = send_cutoff
        self.sign_within_working_days = sign_within_working_days
        self.trust = trust
        self.timestamping = timestamping
        # An uploaded signed PDF: the main file's limit plus room for signatures.
        self.max_pdf_bytes = max_pdf_bytes + SIGNATURE_ROOM
        self._keys: dict[str, Any] = {}  # unlocked keys by certificate fingerprint

    def signer_has_authority(self, ctx: TransitionContext) -> tuple[bool, str]:
        doc = ctx.uow.documents.load(ctx.document.id)
        username = doc.signer_user or ""
        if not username:
            return False, "the document names no signer"
        if ctx.actor.name != f"{username}@{doc.agency_id}":
            return False, f"only {username} signs this document"
        # Judged on the signing day as well as on the document's date: a back-dated
        # document cannot use an authority that has lapsed since.
        signing_day = ctx.now.astimezone(VIETNAM).date().isoformat()
        # With the competence the document is signed under, as review judged it: revoking
        # the grant of KT. leaves no signing as KT. under a grant of TUQ. kept.
        competence = competence_line(doc.signer_competence or "")
        for label, on in (
            ("the document's date", doc.issued_on),
            ("the signing day", signing_day),
        ):
            if not on:
                continue
            held = ctx.uow.authorities.holdings(doc.agency_id, username, doc.doc_type, on)
            if not held:
                return False, (
                    f"{username} holds no authority to sign {doc.doc_type} on {on} ({label})"
                )
            if not any(grants_competence(a.competence or "", competence) for a in held):
                return False, (
                    f"{username} holds no authority to sign {doc.doc_type} as {competence} on "
                    f"{on} ({label})"
                )
        return True, ""

    def _timeliness(self, uow: UnitOfWork, doc: DocumentRow, signed_at: datetime) -> dict[str, Any]:
        """The signing judged now (states.timeliness.judge_signing), for the trail.

        Decision 28/2018 Art. 6 runs from the signing: a document dated long before it is
        signed, or approved long before, is flagged, and the judgment is kept as made.
        """
        try:
            dated: date | None = calendar_day(str(doc.issued_on))
        except ValueError:
            dated = None
        approvals = uow.audit.entries(doc.id, "approve")
        urgency = int(doc.urgency or 0)
        rules = self.deadlines(uow, doc.agency_id) if self.deadlines else None
        return judge_signing(
            signed_at,
            send_by=rules.send_by(signed_at, urgency, appointed_moment(doc.appointed_at))
            if rules
            else None,
            urgency=urgency,
            dated=dated,
            reviewed_at=approvals[-1].at if approvals else None,
            calendar=self.calendar,
            cutoff=self.send_cutoff,
            sign_within_working_days=self.sign_within_working_days,
        ).as_dict()

    def attach_signature(self, ctx: TransitionContext) -> None:
        """Sign (or accept an uploaded signature of) the manifest, verified before storing."""
        uow, doc_id = ctx.uow, ctx.document.id
        doc = uow.documents.load(doc_id)
        manifest = manifest_of(uow, doc_id)
        trust = keystore.trust_material(uow, self.trust)
        uploaded = ctx.data.get("cms")
        signed_pdf = ""
        if ctx.data.get("signed_pdf") is not None and uploaded is None:
            raise InvalidInput(
                "A signed PDF is uploaded together with the signer's CMS (cms).", field="cms"
            )
        made_pdf: bytes | None = None  # the main PDF signed on the server, when it is
        made = ctx.prepared.get("attach_signature")
        checked = made.checked_pdf if made is not None else None  # verified beforehand
        if uploaded is not None:
            cms, mode = _decode(str(uploaded), "cms", MAX_CMS_BYTES), "upload"
        else:
            if made is None or made.manifest != manifest:
                made = self.sign_on_server(ctx)  # not prepared before the transaction
            cms, mode, made_pdf, checked = made.cms, "server", made.signed_pdf, made.checked_pdf
        with _naming_the_field("cms" if mode == "upload" else None):
            verdict = verify_manifest_signature(
                manifest,
                cms,
                trust_roots=trust.roots,
                crls=trust.crls,
                intermediates=trust.intermediates,
                at=ctx.now,
                expected_signer=expected_signer(uow, doc),
            )
            hold_to_signer(uow, doc, verdict.signer)
        if verdict.signing_time < as_utc(doc.created_at) - CLOCK_SKEW:
            # A signer's tool writes the time it claims; it cannot predate what it signs.
            raise SigningTimeInvalid(
                "The signature claims a signing time before the document existed: "
                f"{verdict.signing_time:%Y-%m-%d %H:%M} UTC.",
                field="cms",
                signing_time=verdict.signing_time.isoformat(),
                created_at=as_utc(doc.created_at).isoformat(),
            )
        fingerprint = verdict.signer.sha256
        if made_pdf is not None:
            # Verified as an uploaded one is: a main file carrying a signature of its own
            # (an untrusted one in the signer's name) would otherwise be stored, and the
            # letter could never be sent.
            signed_pdf = _keep_signed_pdf(uow, doc_id, made_pdf, fingerprint, trust, ctx, checked)
        if mode == "upload" and ctx.data.get("signed_pdf") is not None:
            encoded = str(ctx.data["signed_pdf"])
            signed_pdf = self._accept_signed_pdf(
                uow, doc, encoded, fingerprint, trust, ctx, checked
            )
        elif mode == "upload" and _main_pdf(uow, doc_id) is not None:
            # The document a recipient reads is its PDF: it shows who signed it (Decree 68
            # Art. 29), as one signed on the server does with its stamp.
            raise InvalidInput(
                "An uploaded signature comes with the main PDF signed by the same "
                "certificate (signed_pdf): the document shows its signature.",
                field="signed_pdf",
            )
        signature_id = new_id()
        uow.signatures.add_signature(
            SignatureRow(
                id=signature_id,
                document_id=doc_id,
                revision=doc.revision,
                manifest=manifest,
                manifest_sha256=hashlib.sha256(manifest).hexdigest(),
                cms=cms,
                mode=mode,
                signer=ctx.actor.name,
                certificate_fingerprint=fingerprint,
                signing_time=verdict.signing_time,
                signed_pdf_sha256=signed_pdf,
                created_at=ctx.now,
            )
        )
        ctx.audit.update(
            {
                # What a later verification trusts: the audit entry's time and this hash
                "signature_id": signature_id,
                "cms_sha256": hashlib.sha256(cms).hexdigest(),
                "mode": mode,
                "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
                "certificate": fingerprint,
                "signer": verdict.signer.common_name,
                "timeliness": self._timeliness(uow, doc, ctx.now),
            }
        )
        if verdict.timestamp is not None:  # an uploaded CMS that carries a valid token
            record_embedded(uow, signature_id, cms, verdict, ctx.now)
            ctx.audit["timestamp"] = verdict.timestamp.isoformat()
        elif self.timestamping is not None and self.timestamping.configured:
            # Asked of the TSA after commit, never inside this transaction: for ours and for
            # an uploaded one alike (the time the signer's tool claims proves nothing once
            # its key is revoked for a compromise; a token shows the signature was there).
            self.timestamping.request(
                uow, "signature", signature_id, ctx.now, document_id=doc_id, agency_id=doc.agency_id
            )
            ctx.audit["timestamp"] = "requested"

    def _server_material(
        self,
        uow: UnitOfWork,
        doc: DocumentRow,
        trust: keystore.TrustMaterial,
        ctx: TransitionContext,
    ) -> dict[str, Any]:
        """The signer's key (unlocked), certificate and chain."""
        row = uow.signatures.signing_certificate(doc.agency_id, doc.signer_user, ctx.now)
        if row is None:
            raise _no_usable_key(uow, doc, ctx.now)
        key = self._keys.get(row.fingerprint)
        if key is None:
            # Unlocking runs the KDF (600,000 PBKDF2 rounds, about 200 ms) and checks the RSA
            # key (about 60 ms): once per process per certificate.
            key = pki.load_private_key(row.key_pem.encode(), self.passphrase())
            self._keys[row.fingerprint] = key
        cert = x509.load_pem_x509_certificate(row.cert_pem.encode())
        chain = [r for r in trust.roots if r.subject == cert.issuer]
        return {"key": key, "cert": cert, "chain": chain}

    def prepare_signature(self, ctx: TransitionContext) -> ServerSignature:
        """``attach_signature``'s preparer: the signature made (or the uploaded signed PDF
        verified) before the write transaction, only for the one who may sign: another
        signer's request unlocks no key in the named signer's name and spends nothing on
        a PDF (the transaction's guard then says why it is refused)."""
        ok, why = self.signer_has_authority(ctx)
        if not ok:
            raise GuardFailed("sign", ctx.document.state, ["signer_has_authority"], {"signer": why})
        return self.sign_on_server(ctx)

    def sign_on_server(self, ctx: TransitionContext) -> ServerSignature:
        """Sign the manifest and stamp the main PDF (PAdES) with the signer's stored key.

        The heavy part of signing (the PDF): the engine runs it as ``attach_signature``'s
        preparer, before the transition's write transaction, in a read-only one; the
        effect then only verifies and stores what was made. Nothing is written here.
        """
        uow, doc_id = ctx.uow, ctx.document.id
        if ctx.data.get("cms") is not None:
            # An uploaded signature: nothing to make, its signed PDF (if any) to verify
            return ServerSignature(b"", b"", None, self._check_uploaded_pdf(ctx))
        doc = uow.documents.load(doc_id)
        manifest = manifest_of(uow, doc_id)
        trust = keystore.trust_material(uow, self.trust)
        material = self._server_material(uow, doc, trust, ctx)
        cms = sign_manifest(manifest, signing_time=ctx.now, **material)
        main = _main_pdf(uow, doc_id)
        data = uow.documents.blob(main.sha256) if main else None
        if not data:
            return ServerSignature(manifest, cms, None)
        agency = uow.agencies.agency(doc.agency_id)
        signed = sign_pdf(
            data,
            signer_name=doc.signer_name,
            position=doc.signer_position,
            agency_name=agency.name if agency else "",
            signing_time=ctx.now,
            **material,
        )
        certificate = keystore.fingerprint(material["cert"])
        checked = _checked_pdf(main, data, signed, certificate, trust, ctx)
        return ServerSignature(manifest, cms, signed, checked)

    def _check_uploaded_pdf(self, ctx: TransitionContext) -> tuple[str, str, str] | None:
        """The uploaded signed PDF verified against the main file (what ``_keep_signed_pdf``
        would check in the transaction), with whichever certificate signed it: the
        transaction's verification of the CMS then says whether that is the signer's."""
        uow = ctx.uow
        encoded, main = ctx.data.get("signed_pdf"), _main_pdf(uow, ctx.document.id)
        if encoded is None or main is None:
            return None
        signed = _decode(str(encoded), "signed_pdf", self.max_pdf_bytes)
        data = uow.documents.blob(main.sha256) or b""
        trust = keystore.trust_material(uow, self.trust)
        return _checked_pdf(main, data, signed, None, trust, ctx)

    def _accept_signed_pdf(
        self,
        uow: UnitOfWork,
        doc: DocumentRow,
        encoded: str,
        certificate: str,
        trust: keystore.TrustMaterial,
        ctx: TransitionContext,
        checked: tuple[str, str, str] | None = None,
    ) -> str:
        """Check an uploaded signed PDF against the main file and verify it; store it.

        ``certificate`` is the fingerprint of the manifest's signer; returns the PDF's
        SHA-256. ``checked``: what was verified before the transaction, if anything.
        """
        signed = _decode(encoded, "signed_pdf", self.max_pdf_bytes)
        main = _main_pdf(uow, doc.id)
        if main is None:
            raise InvalidInput(
                "The document has no main PDF to carry a signature.", field="signed_pdf"
            )
        with _naming_the_field("signed_pdf"):
            return _keep_signed_pdf(uow, doc.id, signed, certificate, trust, ctx, checked)

    def signature_valid(self, ctx: TransitionContext) -> tuple[bool, str]:
        """Verify again before sending: same manifest, same trust, same signer."""
        uow, doc_id = ctx.uow, ctx.document.id
        doc = uow.documents.load(doc_id)
        signature = uow.signatures.latest_signature(doc_id)
        if signature is None or signature.revision != doc.revision:
            return False, "the current revision is not signed"
        trust = keystore.trust_material(uow, self.trust)
        manifest = manifest_of(uow, doc_id)
        verdict = verify_stored(uow, signature, manifest, doc, trust)
        later = verdict.later_revocation
        if later is not None:
            # The signature stands as of when it was made, but every recipient judges it as
            # it arrives, and refuses it: nothing is sent that all of them would refuse.
            why = f" ({later['reason']})" if later.get("reason") else ""
            raise CertificateRevoked(
                f"The signer's certificate ({later['subject']}) was revoked after the "
                f"document was signed, at {later['revoked_at']}{why}: its recipients would "
                "refuse it. Return the document (reject) and sign it again.",
                revoked_at=later["revoked_at"],
                revocation_reason=later.get("reason"),
            )
        _valid_as_it_arrives(manifest, bytes(signature.cms), doc, uow, trust, ctx.now)
        if signature.signed_pdf_sha256:
            pdf = uow.documents.blob(signature.signed_pdf_sha256) or b""
            if hashlib.sha256(pdf).hexdigest() != signature.signed_pdf_sha256:
                raise ManifestMismatch(
                    "The stored bytes of the signed PDF no longer match their digest.",
                    sha256=signature.signed_pdf_sha256,
                )
            verify_pdf(
                pdf,
                trust_roots=trust.roots,
                crls=trust.crls,
                at=verdict.checked_at,
                intermediates=trust.intermediates,
            )
        return True, ""

    def not_duplicate(self, ctx: TransitionContext) -> tuple[bool, str]:
        """Never send the same number twice a year, nor the same file to the same agency.

        Two sends of the agency at once would each find nothing the other sent: the
        agency's issuing is held first, so that the second reads what the first wrote.
        """
        uow, doc_id = ctx.uow, ctx.document.id
        doc = uow.documents.load(doc_id)
        if not uow.readonly:
            uow.duplicates.hold_issuing(doc.agency_id)
        if doc.number and doc.issued_on:
            agency = uow.agencies.agency(doc.agency_id)
            earlier = uow.duplicates.sent_with_number(
                doc.agency_id,
                doc.number,
                number_series(agency.numbering if agency else DEFAULT_NUMBERING, doc.as_dict()),
                doc.issued_on[:4],
                exclude=doc_id,
            )
            if earlier:
                return False, f"document {earlier['id']} was sent with this number"
        mains = [a for a in uow.documents.attachments(doc_id) if a.role == "main"]
        recipients = [r.organ_id for r in uow.documents.recipients(doc_id)]
        if mains:
            earlier = uow.duplicates.sent_with_file(
                doc.agency_id,
                mains[0].sha256,
                recipients,
                exclude=doc_id,
                replaced=uow.documents.replaced_chain(doc.replaces_id),
            )
            if earlier:
                return False, (
                    f"document {earlier['id']} already sent this file to {earlier['organ_id']}"
                )
        return True, ""


@contextmanager
def _naming_the_field(field: str | None) -> Iterator[None]:
    """Name the uploaded body field a verification failure is about."""
    try:
        yield
    except SignatureError as exc:
        if field is not None:
            exc.details.setdefault("field", field)
        raise


def _main_pdf(uow: UnitOfWork, document_id: str) -> AttachmentRow | None:
    """The document's main attachment when it is a PDF."""
    for attachment in uow.documents.attachments(document_id):
        if attachment.role == "main" and attachment.media_type == "application/pdf":
            return attachment
    return None


def _no_usable_key(uow: UnitOfWork, doc: DocumentRow, now: datetime) -> CongvanError:
    """Why the signer has no certificate with a stored key to sign with now: the newest
    one kept is revoked, expired or not valid yet (its own error), or there is none."""
    kept = [
        r
        for r in uow.signatures.certificates(doc.agency_id)
        if r.kind == "signer" and r.username == doc.signer_user and r.key_pem
    ]
    newest = max(kept, key=lambda r: r.created_at, default=None)
    who = {"signer": doc.signer_user, "sha256": newest.fingerprint if newest else None}
    what = "issue a new one (`congvan keys issue-signer`) or upload a signature made with "
    what += "the signer's own token"
    if newest is None:
        return InvalidInput(
            f"No certificate with a stored key for this signer: {what}.",
            field="cms",
            signer=doc.signer_user,
        )
    if newest.revoked_at is not None:
        return CertificateRevoked(f"The signer's stored certificate is revoked: {what}.", **who)
    # The moment to the minute, in Vietnam time as every moment told: a date alone (and
    # UTC's) reads as "today" for a certificate valid from tonight.
    if as_utc(newest.not_after) < now:
        return CertificateExpired(
            f"The signer's stored certificate expired at {moment(as_utc(newest.not_after), 'en')}: "
            f"{what}.",
            not_after=as_utc(newest.not_after).isoformat(),
            **who,
        )
    return CertificateNotYetValid(
        f"The signer's stored certificate is valid from {moment(as_utc(newest.not_before), 'en')} "
        f"only: sign then, or {what}.",
        not_before=as_utc(newest.not_before).isoformat(),
        **who,
    )


def _valid_as_it_arrives(
    manifest: bytes,
    cms: bytes,
    doc: DocumentRow,
    uow: UnitOfWork,
    trust: keystore.TrustMaterial,
    now: datetime,
) -> None:
    """Refuse to send a signature whose certificates are out of their validity now.

    It stands as of when it was made, but a package carries no timestamp: every recipient
    judges it as it arrives, and a certificate on its path that ran out since (or not valid
    yet, a clock set back) is refused by every inbox, for good. What else could fail now
    (a CRL gone stale here) was judged at its acceptance, and each recipient judges it with
    its own."""
    try:
        verify_manifest_signature(
            manifest,
            cms,
            trust_roots=trust.roots,
            crls=trust.crls,
            intermediates=trust.intermediates,
            at=now,
            expected_signer=expected_signer(uow, doc),
        )
    except CertificateExpired as exc:
        raise CertificateExpired(
            "A certificate of the signature's path has run out since the document was "
            f"signed ({exc.message}): its recipients judge it as it arrives and would refuse "
            "it. Return the document (reject) and sign it again with a valid certificate.",
            **exc.details,
        ) from exc
    except CertificateNotYetValid as exc:
        raise CertificateNotYetValid(
            "A certificate of the signature's path is not valid at this moment "
            f"({exc.message}): its recipients judge it as it arrives and would refuse it.",
            **exc.details,
        ) from exc
    except CongvanError:
        pass  # judged at its acceptance (verify_stored); each recipient has its own CRLs


def _decode(text: str, field: str, max_bytes: int) -> bytes:
    """An upload's bytes: text that is not base64, or says nothing, is input malformed
    (``invalid_input``), one too long ``field_too_long`` -- neither is a signature that
    does not verify."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"The uploaded {field} is not valid base64.", field=field) from exc
    if not data:
        raise InvalidInput(f"The uploaded {field} is empty.", field=field)
    if len(data) > max_bytes:
        raise FieldTooLong(
            f"The uploaded {field} is larger than {max_bytes} bytes.",
            field=field,
            max_bytes=max_bytes,
        )
    return data


def _checked_pdf(
    main: AttachmentRow | None,
    data: bytes,
    signed: bytes,
    certificate: str | None,
    trust: keystore.TrustMaterial,
    ctx: TransitionContext,
) -> tuple[str, str, str] | None:
    """A signed PDF verified as ``_keep_signed_pdf`` would, before the transaction (made
    with ``certificate``, or None: any, the transaction's CMS says whose): what was
    checked, for the transaction to know."""
    if main is None:
        return None
    verdict = _verified(data, signed, certificate, trust, ctx)
    return main.sha256, hashlib.sha256(signed).hexdigest(), verdict.signer.sha256


def _verified(
    main: bytes,
    signed: bytes,
    certificate: str | None,
    trust: keystore.TrustMaterial,
    ctx: TransitionContext,
) -> PdfVerdict:
    return verify_signed_main(
        main,
        signed,
        certificate=certificate,
        trust_roots=trust.roots,
        crls=trust.crls,
        intermediates=trust.intermediates,
        at=ctx.now,
    )


def _keep_signed_pdf(
    uow: UnitOfWork,
    document_id: str,
    signed: bytes,
    certificate: str,
    trust: keystore.TrustMaterial,
    ctx: TransitionContext,
    checked: tuple[str, str, str] | None = None,
) -> str:
    """Keep ``signed`` once it is the document's main PDF with one valid signature made
    with ``certificate`` appended (``verify_signed_main``), whoever made it: the server
    or the signer's token. Returns its SHA-256.

    The verification is the heavy part of signing (the PDF's signature, its changes, the
    page under the stamp drawn): when ``checked`` says it was done before the transaction
    for this main file, these bytes and this certificate, it is not done again while the
    database waits (the CMS's verification in the transaction judges the certificate as
    of now)."""
    main = _main_pdf(uow, document_id)
    digest = hashlib.sha256(signed).hexdigest()
    if main is None or checked != (main.sha256, digest, certificate):
        data = (uow.documents.blob(main.sha256) if main else None) or b""
        _verified(bytes(data), signed, certificate, trust, ctx)
    uow.documents.put_blob(digest, signed)
    ctx.audit["signed_pdf_sha256"] = digest
    return digest
