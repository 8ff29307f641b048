"""Judging a detached CMS signature over a manifest: ours, and uploaded ones.

Verification checks, in this order, and raises the first failure:

    signature invalid        SignatureError        (also: not a detached CMS at all)
    manifest changed         ManifestMismatch
    certificate path         CertificateRevoked, CertificateExpired,
                             CertificateNotYetValid, ChainUntrusted, KeyUsageInvalid
    signing time             CertificateExpired / CertificateNotYetValid when the claimed
                             signing time lies outside the certificate's validity
    signer identity          SignerMismatch

The path is validated at the moment ``at`` with the CRLs given and never the network
(``certpath``). The signing time in the CMS is what the signer claims, not a timestamp:
callers choose ``at`` (the moment of acceptance, or a trusted time) and store it with the
verdict.

A signature timestamp token (RFC 3161; embedded as the unsigned attribute
signatureTimeStampToken, or passed as ``timestamp_token``) is judged first, since the
other checks depend on it: an invalid one raises ``TimestampInvalid``; a valid one moves
the moment of the path checks to its genTime, and the claimed signing time must not lie
after genTime (``SigningTimeInvalid``). The verdict says which time it rests on.

A signer whose signature passed every point in full is remembered (``hotpath``), and its
next signatures are judged without pyHanko or an event loop. The full and the quick verdict
stay in this one module, side by side, because they must run the same checks in the same
order and raise the same errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, cast

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko.sign.validation.errors import SignatureValidationError

from congvan.actions.signing.der import reading_failure
from congvan.actions.signing.hotpath import (
    ChainCache,
    cache_key,
    quick_verify,
    split,
    trusted_signer,
)
from congvan.actions.signing.strict import check_strict_cms, is_canonical
from congvan.actions.signing.timestamps import Stamp, async_verify_token, token_in
from congvan.states.certificates import CertificateDescription, comparable
from congvan.states.errors import (
    CertificateNotYetValid,
    ManifestMismatch,
    SignatureError,
    SignerMismatch,
    SigningTimeInvalid,
)

from . import profiles, revocation
from .certpath import (
    CLOCK_SKEW,
    SIGNER_KEY_USAGE,
    check_path,
    check_profile,
    check_signing_time,
    path_error,
    validation_context,
)
from .cms import asn1_cert, outside_a_loop, require_aware, run_sync
from .description import describe

REQUIRED_ATTRIBUTES = frozenset({"content_type", "message_digest", "signing_time"})
# What ``expected_signer`` may name: text fields of ``Verdict.signer``.
SIGNER_FIELDS = (
    "common_name",
    "title",
    "organization",
    "organizational_unit",
    "user_id",
    "serial_number",
    "issuer",
    "sha256",
)


@dataclass(frozen=True)
class Verdict:
    """What was checked about a signature that verified, and who made it."""

    intact: bool  # the message digest matches the manifest
    valid: bool  # the signature verifies with the certificate's key
    trusted: bool  # the certificate chains to a trust root
    not_revoked: bool  # no CRL given revokes a certificate of the chain at ``checked_at``
    key_usage_ok: bool  # digitalSignature and nonRepudiation
    valid_at_signing_time: bool  # the claimed signing time lies inside the validity
    signer_matches: bool | None  # None when no expected signer was given
    signing_time: datetime  # as the signer claims it
    checked_at: datetime
    signer: CertificateDescription
    # A certificate of the path revoked after ``checked_at``: the signature was made
    # before, and stands, but whoever relies on it should know (e.g. a key compromise).
    later_revocation: Mapping[str, str | None] | None = None
    # With a valid timestamp token: its genTime and authority, and the path was judged then.
    timestamp: datetime | None = None
    timestamp_authority: str | None = None
    time_source: str = "claimed"  # "timestamp" | "claimed" (by the signer)


async def async_verify_manifest_signature(
    manifest: bytes,
    cms_der: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    crls: Iterable[x509.CertificateRevocationList | bytes],
    at: datetime,
    expected_signer: Mapping[str, str] | None = None,
    profile: profiles.Profile = "signer",
    timestamp_token: bytes | None = None,
    intermediates: Sequence[x509.Certificate] = (),
) -> Verdict:
    """Check that ``cms_der`` signs ``manifest`` by a trusted, unrevoked signer at ``at``.

    ``trust_roots`` are the pinned roots (``truststore``), never rows of the database.
    ``crls`` must hold a current CRL of every CA on the path (nothing is fetched).
    ``expected_signer`` maps some of ``SIGNER_FIELDS`` to the wanted values, compared after
    NFC, case folding and collapsing spaces. ``profile`` is the kind of certificate this
    use accepts (``profiles``). ``timestamp_token`` stamps the signature (it wins over one
    the CMS carries). Raises the ``SignatureError`` subclass of the first check that fails.
    """
    crl_der = _check_arguments(crls, at, expected_signer)
    check = (manifest, cms_der, trust_roots, crl_der, at, expected_signer, profile)
    quick = timestamp_token is None and _quick_verdict(*check, intermediates=intermediates)
    if quick:
        return quick
    return await _slow_verdict(*check, timestamp_token, intermediates=intermediates)


def verify_manifest_signature(
    manifest: bytes,
    cms_der: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    crls: Iterable[x509.CertificateRevocationList | bytes],
    at: datetime,
    expected_signer: Mapping[str, str] | None = None,
    profile: profiles.Profile = "signer",
    timestamp_token: bytes | None = None,
    intermediates: Sequence[x509.Certificate] = (),
) -> Verdict:
    """Verify a detached signature; see ``async_verify_manifest_signature``."""
    outside_a_loop()
    crl_der = _check_arguments(crls, at, expected_signer)
    check = (manifest, cms_der, trust_roots, crl_der, at, expected_signer, profile)
    quick = timestamp_token is None and _quick_verdict(*check, intermediates=intermediates)
    if quick:
        return quick  # no event loop needed
    slow = _slow_verdict(*check, timestamp_token, intermediates=intermediates)
    return cast(Verdict, run_sync(slow))


async def _slow_verdict(
    manifest: bytes,
    cms_der: bytes,
    trust_roots: Sequence[x509.Certificate],
    crl_der: list[bytes],
    at: datetime,
    expected_signer: Mapping[str, str] | None,
    profile: profiles.Profile,
    token: bytes | None,
    *,
    intermediates: Sequence[x509.Certificate] = (),
) -> Verdict:
    """The verdict that needs an event loop: a token given beside the CMS, or a signer not seen.

    A given token is verified first; then a signer seen before is judged quickly at its
    genTime, and anything else in full.
    """
    stamp: Stamp | None = None
    if token is not None:
        signed_data, _signing_time = _detached_signed_data(cms_der)
        value = bytes(signed_data["signer_infos"][0]["signature"].native)
        stamp = await async_verify_token(
            token, value, trust_roots=trust_roots, crls=crl_der, intermediates=intermediates
        )
    checked = (manifest, cms_der, trust_roots, crl_der, at, expected_signer, profile)
    if stamp is not None:
        verdict = _quick_verdict(*checked, stamp, intermediates=intermediates)
        if verdict is not None:
            return verdict
    return await _full_verdict(*checked, stamp, intermediates=intermediates)


def _check_arguments(
    crls: Iterable[x509.CertificateRevocationList | bytes],
    at: datetime,
    expected_signer: Mapping[str, str] | None,
) -> list[bytes]:
    """Refuse a naive ``at`` or unknown signer fields; return the CRLs as DER."""
    require_aware(at, "at")
    unknown = set(expected_signer or ()) - set(SIGNER_FIELDS)
    if unknown:
        raise ValueError(f"expected_signer names unknown fields: {sorted(unknown)}")
    return [c if isinstance(c, bytes) else c.public_bytes(Encoding.DER) for c in crls]


async def _full_verdict(
    manifest: bytes,
    cms_der: bytes,
    trust_roots: Sequence[x509.Certificate],
    crl_der: list[bytes],
    at: datetime,
    expected_signer: Mapping[str, str] | None,
    profile: profiles.Profile = "signer",
    stamp: Stamp | None = None,
    *,
    intermediates: Sequence[x509.Certificate] = (),
) -> Verdict:
    """Verify through pyHanko, every point, and remember the signer when it passes."""
    check_strict_cms(cms_der)
    signed_data, signing_time = _detached_signed_data(cms_der)
    signer_info = signed_data["signer_infos"][0]
    if stamp is None:
        try:
            token = token_in(signer_info)
        except (ValueError, TypeError) as exc:
            raise SignatureError(f"The signature is malformed: {reading_failure(exc)}") from exc
        if token is not None:
            stamp = await async_verify_token(
                token,
                bytes(signer_info["signature"].native),
                trust_roots=trust_roots,
                crls=crl_der,
                intermediates=intermediates,
            )
    moment = at if stamp is None else stamp.gen_time
    key = cache_key(signed_data["certificates"].dump(), trust_roots, crl_der, intermediates)
    roots = [asn1_cert(c) for c in trust_roots]
    cas = [asn1_cert(c) for c in intermediates]
    try:
        status = await async_validate_detached_cms(
            manifest,
            _without_root_lookalikes(signed_data, roots),
            signer_validation_context=validation_context(roots, crl_der, moment, cas),
            key_usage_settings=SIGNER_KEY_USAGE,
        )
    except SignatureValidationError as exc:  # e.g. signing-certificate-v2 names another cert
        raise SignatureError(f"The signature is malformed: {exc.failure_message}") from exc
    except (ValueError, TypeError) as exc:  # asn1crypto parses lazily
        raise SignatureError(f"The signature is malformed: {reading_failure(exc)}") from exc

    cert = status.signing_cert
    signer = describe(cert)
    who = {"signer": signer.common_name, "serial_number": signer.serial_number}
    if not status.valid:
        raise SignatureError("The signature does not verify with the signer's key.", **who)
    if not status.intact:
        # A manifest, a receipt, a status: what the signature covers, whichever it is
        raise ManifestMismatch(
            "The signed content no longer matches its signature: it was changed after "
            "signing (a manifest, or a message an agency signed).",
            **who,
        )
    if not (status.trusted and status.trust_problem_indic is None):
        error = await path_error(status, signed_data, roots, crl_der, moment, who, cas)
        if isinstance(error, CertificateNotYetValid):
            # Not valid yet by our clock: the clocks disagree (a wait settles it) only if
            # it was valid at the moment its signature claims; else that claim itself
            # is refused, for good (a certificate valid ten days on, signed with today).
            check_signing_time(signing_time, moment, cert, signer, who)
        raise error
    later = check_path(status, crl_der, moment, signer, profile, who)
    _check_against_stamp(signing_time, stamp, who)
    check_signing_time(signing_time, moment, cert, signer, who)
    _check_expected_signer(signer, expected_signer, who)
    if later is None:
        _remember(key, signed_data, status, crl_der, signer)
    return _verdict(signing_time, at, signer, expected_signer, later, stamp)


def _quick_verdict(
    manifest: bytes,
    cms_der: bytes,
    trust_roots: Sequence[x509.Certificate],
    crl_der: list[bytes],
    at: datetime,
    expected_signer: Mapping[str, str] | None,
    profile: profiles.Profile = "signer",
    stamp: Stamp | None = None,
    *,
    intermediates: Sequence[x509.Certificate] = (),
) -> Verdict | None:
    """The verdict on a signer seen before (``hotpath``), or None to verify in full.

    With a verified ``stamp``, the path is judged at its genTime instead of ``at``.
    """
    pieces = split(cms_der)
    if pieces is None:
        return None
    moment = at if stamp is None else stamp.gen_time
    known = _trusted_signers.get(
        cache_key(pieces.certificates, trust_roots, crl_der, intermediates)
    )
    quick = known and quick_verify(manifest, pieces, known, moment)
    if not quick or not is_canonical(cms_der, pieces):
        return None
    signer = quick.trusted.signer
    who = {"signer": signer.common_name, "serial_number": signer.serial_number}
    check_profile(signer, profile, who)
    _check_against_stamp(quick.signing_time, stamp, who)
    check_signing_time(quick.signing_time, moment, quick.trusted, signer, who)
    _check_expected_signer(signer, expected_signer, who)
    return _verdict(quick.signing_time, at, signer, expected_signer, None, stamp)


def _without_root_lookalikes(
    signed_data: asn1_cms.SignedData, roots: Sequence[Any]
) -> asn1_cms.SignedData:
    """``signed_data`` less the certificates it carries under a pinned root's name that
    are not that root: only the pinned root anchors a path under its name, and a copy
    carried beside the signature that differs from it (a byte of its serial changed) would
    be taken for a CA below it, its revocation then unknowable. What the signature signs
    does not cover the certificates it carries: leaving one out changes no verdict but
    that one."""
    pinned = {bytes(r.subject.dump()): bytes(r.dump()) for r in roots}
    carried = signed_data["certificates"]
    if not isinstance(carried, asn1_cms.CertificateSet):
        return signed_data
    kept = [
        choice
        for choice in carried
        if choice.name != "certificate"
        or pinned.get(bytes(choice.chosen.subject.dump()), bytes(choice.chosen.dump()))
        == bytes(choice.chosen.dump())
    ]
    if len(kept) == len(carried):
        return signed_data
    # (as it comes out of a ContentInfo, explicitly tagged: its bytes without the tag)
    narrowed = asn1_cms.SignedData.load(signed_data.untag().dump())
    narrowed["certificates"] = [asn1_cms.CertificateChoices.load(c.dump()) for c in kept]
    return narrowed


def _check_against_stamp(
    signing_time: datetime, stamp: Stamp | None, who: Mapping[str, str]
) -> None:
    """The signer cannot claim to have signed after the TSA saw the signature."""
    if stamp is not None and signing_time > stamp.gen_time + CLOCK_SKEW:
        raise SigningTimeInvalid(
            "The claimed signing time lies after the signature's timestamp.",
            signing_time=signing_time.isoformat(),
            timestamp=stamp.gen_time.isoformat(),
            **who,
        )


def _check_expected_signer(
    signer: CertificateDescription,
    expected_signer: Mapping[str, str] | None,
    who: dict[str, str],
) -> None:
    if not expected_signer:
        return
    named = signer.as_dict()
    differ = {
        name: {"expected": want, "certificate": named[name]}
        for name, want in expected_signer.items()
        if comparable(named[name]) != comparable(want)
    }
    if differ:
        raise SignerMismatch(
            f"The certificate differs from the expected signer in {', '.join(differ)}.",
            differences=differ,
            **who,
        )


def _verdict(
    signing_time: datetime,
    at: datetime,
    signer: CertificateDescription,
    expected_signer: Mapping[str, str] | None,
    later: revocation.LaterRevocation | None = None,
    stamp: Stamp | None = None,
) -> Verdict:
    return Verdict(
        intact=True,
        valid=True,
        trusted=True,
        not_revoked=True,
        key_usage_ok=True,
        valid_at_signing_time=True,
        signer_matches=True if expected_signer else None,
        signing_time=signing_time,
        checked_at=at,
        signer=signer,
        later_revocation=MappingProxyType(later.as_dict()) if later else None,
        timestamp=None if stamp is None else stamp.gen_time,
        timestamp_authority=None if stamp is None else stamp.authority,
        time_source="claimed" if stamp is None else "timestamp",
    )


# Signers whose signatures pyHanko verified in full, by certificates, roots and CRLs.
_trusted_signers = ChainCache()


def _remember(
    key: tuple[bytes, ...],
    signed_data: asn1_cms.SignedData,
    status: Any,
    crl_der: list[bytes],
    signer: CertificateDescription,
) -> None:
    """Record a signature pyHanko accepted so the next one of this signer is quick."""
    path = status.validation_path
    if path is None:
        return
    as_cryptography = [
        x509.load_der_x509_certificate(c.dump()) for c in path.iter_certs(include_root=True)
    ]
    leaf = x509.load_der_x509_certificate(status.signing_cert.dump())
    if leaf not in as_cryptography:
        return
    record = trusted_signer(
        signed_data,
        leaf,
        as_cryptography,
        [x509.load_der_x509_crl(c) for c in crl_der],
        signer,
    )
    if record is not None:
        _trusted_signers.put(key, record)


def _detached_signed_data(cms_der: bytes) -> tuple[asn1_cms.SignedData, datetime]:
    """The SignedData and claimed signing time, or SignatureError if it is not one we take."""
    try:
        content_info = asn1_cms.ContentInfo.load(cms_der)
        if content_info["content_type"].native != "signed_data":
            raise ValueError("it is not a CMS SignedData")
        signed_data = content_info["content"]
        if signed_data["encap_content_info"]["content"].native is not None:
            raise ValueError("it carries its content; a detached signature is expected")
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise ValueError(f"it has {len(signer_infos)} signers instead of one")
        attrs = signer_infos[0]["signed_attrs"]
        present = set() if isinstance(attrs, core.Void) else {a["type"].native for a in attrs}
        missing = REQUIRED_ATTRIBUTES - present
        if missing:
            raise ValueError(f"it lacks the signed attributes {', '.join(sorted(missing))}")
        signing_time = next(a for a in attrs if a["type"].native == "signing_time")
        return signed_data, signing_time["values"][0].native
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureError(
            f"The signature is not a detached CMS signature: {reading_failure(exc)}"
        ) from exc
