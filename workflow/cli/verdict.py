"""How a signature's verdict is shown: each point checked, who signed, and when."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from congvan.states.certificates import CertificateDescription
from congvan.states.errors import CongvanError

if TYPE_CHECKING:
    from congvan.actions.signing.keystore import TrustMaterial
    from congvan.actions.signing.truststore import TrustStore

# The points a verdict reports: name, label, what it means.
POINTS = {
    "intact": ("intact", "the signed content is unchanged (the manifest, or the PDF's bytes)"),
    "valid": ("valid", "the signature verifies with the certificate's key"),
    "trusted": ("trusted", "the certificate path leads to a trusted root"),
    "not_revoked": ("not revoked", "no CRL revokes a certificate of the path"),
    "key_usage_ok": ("key usage", "digitalSignature, nonRepudiation, the right profile"),
    "covers_entire_file": ("only signatures added", "nothing but signatures added to the PDF"),
    "valid_at_signing_time": ("valid at signing time", "the claimed time is inside the validity"),
    "signer_matches": ("signer matches", "name, position and agency of the document's signer"),
}
# The order the verifiers check them in; each stops at the first failure.
CMS_CHECKS = (
    "valid",
    "intact",
    "trusted",
    "not_revoked",
    "key_usage_ok",
    "valid_at_signing_time",
    "signer_matches",
)
PDF_CHECKS = (
    "valid",
    "intact",
    "trusted",
    "not_revoked",
    "key_usage_ok",
    "covers_entire_file",
    "valid_at_signing_time",
)


def failed_point(exc: CongvanError) -> str:
    """Which point of the verdict a verification error stands for: by its class only."""
    from congvan.states import errors

    by_class: tuple[tuple[type[CongvanError], str], ...] = (
        (errors.PdfModified, "covers_entire_file"),
        (errors.ManifestMismatch, "intact"),
        (errors.CertificateRevoked, "not_revoked"),
        (errors.RevocationUnknown, "not_revoked"),
        (errors.ChainUntrusted, "trusted"),
        (errors.CertificateExpired, "trusted"),  # at the moment of checking
        (errors.CertificateNotYetValid, "trusted"),
        (errors.KeyUsageInvalid, "key_usage_ok"),  # and the certificate's profile
        (errors.SignerMismatch, "signer_matches"),
        (errors.SigningTimeInvalid, "valid_at_signing_time"),
        (errors.TimestampInvalid, "valid_at_signing_time"),
    )
    for cls, point in by_class:
        if isinstance(exc, cls):
            return point
    return "valid"  # malformed, a weak algorithm, or the signature does not verify


def print_trust_notes(trust: TrustMaterial, store: TrustStore) -> None:
    """Say which roots the database holds that the trust store does not pin."""
    for fp in trust.ignored:
        print(
            f"note          root {fp[:16]}… is in the database but not pinned in "
            f"{store.directory}: it is NOT trusted (`congvan keys trust FILE` pins one)"
        )


def _local(at: object) -> object:
    """A moment as this command tells every other: in Vietnam time (ISO 8601, +07:00)."""
    from congvan.states.timeliness import shown_exactly

    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            return at
    if not isinstance(at, datetime):
        return at
    return shown_exactly(at)  # (a moment without an offset, as CRLs give it: UTC)


def _print_points(checks: Sequence[str], marks: dict[str, str], notes: dict[str, str]) -> None:
    for point in sorted(checks, key=list(POINTS).index):
        label, meaning = POINTS[point]
        print(f"  {marks[point]} {label:<22} {notes.get(point, meaning)}")


def _verdict_marks(verdict: Any, checks: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    # A point the verdict does not report separately held, or it would have raised.
    marks = {p: "✓" if getattr(verdict, p, True) else "✗" for p in checks}
    notes = {}
    if "signer_matches" in checks and verdict.signer_matches is None:
        marks["signer_matches"] = "–"
        notes["signer_matches"] = "not checked: no expected signer for a file"
    if verdict.signing_time is None:
        marks["valid_at_signing_time"] = "–"
        notes["valid_at_signing_time"] = "not checked: the signature claims no signing time"
    return marks, notes


def _error_marks(exc: CongvanError, checks: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    failed = failed_point(exc)
    position = checks.index(failed) if failed in checks else 0
    marks = {p: "✓" if i < position else "–" for i, p in enumerate(checks)}
    marks[failed] = "✗"
    notes = {p: "not checked" for i, p in enumerate(checks) if i > position}
    notes[failed] = exc.message
    return marks, notes


def _signed_by(cms_der: bytes) -> tuple[CertificateDescription | None, datetime | None]:
    """Who the CMS's signer certificate names (in the verdict's shape), and the claimed
    signing time. Read for display only (also when verification fails); nothing here is
    trusted.
    """
    from asn1crypto import cms as asn1_cms

    from congvan.actions.signing.description import describe

    try:
        signed_data = asn1_cms.ContentInfo.load(cms_der)["content"]
        signer_info = signed_data["signer_infos"][0]
        kind, sid = signer_info["sid"].name, signer_info["sid"].chosen
        signing_time = None
        for attr in signer_info["signed_attrs"]:
            if attr["type"].native == "signing_time":
                signing_time = attr["values"][0].native
        for choice in signed_data["certificates"]:
            cert = choice.chosen
            if choice.name == "certificate" and (
                (
                    kind == "issuer_and_serial_number"
                    and cert.serial_number == sid["serial_number"].native
                )
                or (kind == "subject_key_identifier" and cert.key_identifier == sid.native)
            ):
                return describe(cert), signing_time
        return None, signing_time
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None, None


def _print_certificate(signer: CertificateDescription | None, claimed: datetime | None) -> None:
    from congvan.states.timeliness import shown_exactly

    if signer is None:
        print("signer        (no readable signer certificate in the signature)")
    else:
        print(f"signer        {signer.common_name or '—'}")
        print(f"position      {signer.title or '—'}")
        print(f"agency        {_agency(signer)}")
        print(f"certificate   sha256 {signer.sha256}")
        print(
            f"              serial {signer.serial_number}, issued by "
            f"{signer.issuer or '—'}, valid {shown_exactly(signer.not_before)}"
            f" → {shown_exactly(signer.not_after)}"
        )
    if claimed is not None:
        print(f"signing time  {shown_exactly(claimed)} (time claimed by the signer)")


def _agency(signer: CertificateDescription) -> str:
    agency = signer.organization or "—"
    return f"{agency} ({signer.organizational_unit})" if signer.organizational_unit else agency


def _print_pdf_signers(verdict: Any) -> None:
    """Each signature of a PDF signed more than once, first to last, and which of them an
    agency other than the first signature's made: none is taken for the PDF's signer."""
    signed_by = verdict.signed_by
    print(
        f"signatures    {len(signed_by)} in the file, each checked, in the order they were "
        f"added; the last covers {verdict.coverage}"
    )
    for number, signature in enumerate(signed_by, start=1):
        print(f"-- signature {number} of {len(signed_by)}, in field {signature.field_name}")
        _print_certificate(signature.signer, signature.signing_time)
    first = signed_by[0].signer
    for number, signature in enumerate(signed_by[1:], start=2):
        if signature.signer.organizational_unit != first.organizational_unit:
            print(
                f"note          signature {number} was added by {_agency(signature.signer)}, "
                f"not by the agency of signature 1 ({_agency(first)}): it vouches for "
                "what that agency signed, not for who issued the document"
            )


def _print_signer(cms_der: bytes, verdict: Any) -> None:
    from congvan.states.timeliness import shown_exactly

    if verdict is not None and len(getattr(verdict, "signed_by", ())) > 1:
        _print_pdf_signers(verdict)
        return
    signer, claimed = _signed_by(cms_der)
    if verdict is not None:
        claimed = verdict.signing_time
        if signer is None:  # a PDF: the verdict names the signer, in the same shape
            signer = verdict.signer
    _print_certificate(signer, claimed)
    stamped = getattr(verdict, "timestamp", None)
    if stamped is not None:
        print(
            f"timestamp     {shown_exactly(stamped)} by "
            f"{verdict.timestamp_authority} (RFC 3161; the checks rest on this time)"
        )
    if verdict is not None and hasattr(verdict, "signature_count"):
        print(
            f"signatures    {verdict.signature_count} in the file; the last, in field "
            f"{verdict.field_name}, covers {verdict.coverage}"
        )


def report(
    verify: Callable[[], Any],
    cms_der: bytes | Callable[[str | None], bytes],
    header: Sequence[str],
    footer: Sequence[str],
    checks: Sequence[str] = CMS_CHECKS,
) -> int:
    """Run a verification, print each point and who signed; 0 when it verifies, else 1.

    ``cms_der`` is the signature, or for a file of several (a PDF) what gives the one in a
    field (the one a failure names, else the last), to name its signer.
    """
    cms_of = cms_der if callable(cms_der) else (lambda _field: cms_der)
    from congvan.states.errors import SignatureError

    for text in header:
        print(text)
    verdict = None
    try:
        verdict = verify()
    except SignatureError as exc:
        print(f"NOT VERIFIED  error [{exc.code}]: {exc.message}")
        details = {k: v for k, v in exc.details.items() if k not in ("signer", "serial_number")}
        if details:
            print(f"              {json.dumps(details, ensure_ascii=False, default=str)}")
        _print_points(checks, *_error_marks(exc, checks))
        field = exc.details.get("signature_field")
        _print_signer(cms_of(field if isinstance(field, str) else None), None)
    else:
        later = getattr(verdict, "later_revocation", None)
        if later:
            print(
                f"VERIFIED, BUT a certificate of the path ({later['subject']}, serial "
                f"{later['serial_number']}) was revoked after this moment: on "
                f"{_local(later['revoked_at'])}, reason {later['reason'] or 'not given'}"
            )
        else:
            print("VERIFIED")
        _print_points(checks, *_verdict_marks(verdict, checks))
        _print_signer(cms_of(None), verdict)
    for text in footer:
        print(text)
    return 1 if verdict is None else 0
