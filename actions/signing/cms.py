"""Detached CMS signatures over a manifest: sign on the server, verify ours and uploaded ones.

A signature is a DER ``ContentInfo`` holding a ``SignedData`` without its content (the
manifest travels beside it), one ``SignerInfo``, the signer's certificate and chain, and
the signed attributes content type, message digest, signing time, CMS algorithm
protection and signing-certificate-v2 (ESS). ``openssl cms -verify -binary`` accepts it.

Verification checks, in this order, and raises the first failure:

    signature invalid        SignatureError        (also: not a detached CMS at all)
    manifest changed         ManifestMismatch
    certificate path         CertificateRevoked, CertificateExpired,
                             CertificateNotYetValid, ChainUntrusted, KeyUsageInvalid
    signing time             CertificateExpired / CertificateNotYetValid when the claimed
                             signing time lies outside the certificate's validity
    signer identity          SignerMismatch

The path is validated at the moment ``at`` with the CRLs given and never the network.
The signing time in the CMS is what the signer claims, not a timestamp: callers choose
``at`` (the moment of acceptance, or a trusted time) and store it with the verdict.

A signature timestamp token (RFC 3161; embedded as the unsigned attribute
signatureTimeStampToken, or passed as ``timestamp_token``) is judged first, since the
other checks depend on it: an invalid one raises ``TimestampInvalid``; a valid one moves
the moment of the path checks to its genTime, and the claimed signing time must not lie
after genTime (``SigningTimeInvalid``). The verdict says which time it rests on.

pyHanko 0.38 is async only; ``sign_manifest`` and ``verify_manifest_signature`` run it on a
private event loop, and code already inside a loop awaits the ``async_`` variants.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, cast

from asn1crypto import algos, core, keys, tsp
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.attributes import CMSAttributeProvider, SigningTimeProvider
from pyhanko.sign.general import as_signing_certificate_v2
from pyhanko.sign.signers import SimpleSigner
from pyhanko.sign.signers.pdf_cms import CMSSignedAttributes, format_signed_attributes
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.registry import SimpleCertificateStore

from congvan.actions.signing.hotpath import (
    ChainCache,
    SignatureTemplate,
    cache_key,
    quick_verify,
    split,
    trusted_signer,
)
from congvan.actions.signing.strict import check_strict_cms, is_canonical
from congvan.actions.signing.timestamps import Stamp, async_verify_token, token_in
from congvan.states.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateProfileInvalid,
    CertificateRevoked,
    ChainUntrusted,
    KeyUsageInvalid,
    ManifestMismatch,
    RevocationUnknown,
    SignatureError,
    SignerMismatch,
    SigningTimeInvalid,
    WeakAlgorithm,
)

from . import profiles, revocation

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
DIGEST = "sha256"
REQUIRED_ATTRIBUTES = frozenset({"content_type", "message_digest", "signing_time"})
SIGNER_KEY_USAGE = KeyUsageConstraints(
    key_usage=frozenset({"digital_signature", "non_repudiation"}), match_all_key_usages=True
)
_KEY_USAGE_MESSAGE = "The certificate's key usage must include digitalSignature and nonRepudiation."
# A signer's clock may run a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)
# What ``expected_signer`` may name: the keys of ``Verdict.signer``.
# Our verdicts report every failed point with its own error code; pyHanko's own warnings
# repeat each one with a traceback, so only its errors are let through.
logging.getLogger("pyhanko").setLevel(logging.ERROR)
logging.getLogger("pyhanko_certvalidator").setLevel(logging.ERROR)

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
    signer: Mapping[str, str]  # SIGNER_FIELDS plus not_before / not_after / profile
    # A certificate of the path revoked after ``checked_at``: the signature was made
    # before, and stands, but whoever relies on it should know (e.g. a key compromise).
    later_revocation: Mapping[str, str | None] | None = None
    # With a valid timestamp token: its genTime and authority, and the path was judged then.
    timestamp: datetime | None = None
    timestamp_authority: str | None = None
    time_source: str = "claimed"  # "timestamp" | "claimed" (by the signer)


# -- signing ---------------------------------------------------------------------------


class _Fixed(CMSAttributeProvider):
    """An attribute whose value is the same in every signature of one signer."""

    def __init__(self, attribute_type: str, value: Any) -> None:
        self.attribute_type = attribute_type
        self.value = value

    async def build_attr_value(self, dry_run: bool = False) -> Any:
        return self.value


def _frozen(value: Any) -> Any:
    # asn1crypto re-encodes a value built in code on every dump(), recursively, and pyHanko
    # dumps the signed attributes several times; a parsed copy keeps its encoding.
    return type(value).load(value.dump())


class _ManifestSigner(SimpleSigner):
    """A SimpleSigner that keeps the parsed key and the signed attributes that never change.

    The stock signer re-parses (and for RSA re-checks) the private key and rebuilds the
    signing-certificate-v2 value for every signature: about 30 ms of a 35 ms signature.
    """

    def __init__(
        self, key: SigningKey, cert: x509.Certificate, chain: Sequence[x509.Certificate]
    ) -> None:
        if key.public_key() != cert.public_key():
            raise ValueError("the private key does not belong to the certificate")
        if isinstance(key, rsa.RSAPrivateKey):
            mechanism = "sha256_rsa"
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            mechanism = "sha256_ecdsa"
        else:
            raise TypeError(f"unsupported signing key {type(key).__name__}")
        signing_cert = _asn1_cert(cert)
        mechanism_value = _frozen(algos.SignedDigestAlgorithm({"algorithm": mechanism}))
        super().__init__(
            signing_cert=signing_cert,
            signing_key=keys.PrivateKeyInfo.load(
                key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
            ),
            cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                [_asn1_cert(c) for c in chain]
            ),
            signature_mechanism=mechanism_value,
        )
        self.key = key
        # Made from this signer's first signature, which pyHanko builds (``hotpath``).
        self.template: SignatureTemplate | None = None
        self._constant_attributes = (
            _Fixed(
                "signing_certificate_v2",
                tsp.SigningCertificateV2.load(as_signing_certificate_v2(signing_cert).dump()),
            ),
            _Fixed(
                "cms_algorithm_protection",
                _frozen(
                    asn1_cms.CMSAlgorithmProtection(
                        {
                            "digest_algorithm": algos.DigestAlgorithm({"algorithm": DIGEST}),
                            "signature_algorithm": mechanism_value,
                        }
                    )
                ),
            ),
        )

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        if digest_algorithm != DIGEST:
            return super().sign_raw(data, digest_algorithm)
        return self.sign_digest_input(data)

    def sign_digest_input(self, data: bytes) -> bytes:
        """The signature value over ``data`` (the DER of the signed attributes)."""
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    async def reference_sign(self, manifest: bytes, signing_time: datetime) -> bytes:
        """Sign through pyHanko; the first such signature becomes the template."""
        content_info = await self.async_sign_general_data(
            manifest,
            DIGEST,
            detached=True,
            # The generic (non-PDF) settings; pyHanko annotates the PDF subclass only.
            signed_attr_settings=CMSSignedAttributes(  # type: ignore[arg-type]
                signing_time=signing_time
            ),
        )
        der = bytes(content_info.dump())
        if self.template is None:
            self.template = SignatureTemplate(der)
        return der

    async def signed_attrs(  # type: ignore[no-untyped-def]
        self,
        data_digest: bytes,
        digest_algorithm: str,
        attr_settings=None,
        content_type="data",
        use_pades=False,
        timestamper=None,
        dry_run=False,
        is_pdf_sig=True,
    ) -> asn1_cms.CMSAttributes:
        # The same attributes pyHanko's generic CMS spec yields, from values built once.
        plain = (
            digest_algorithm == DIGEST
            and not (use_pades or is_pdf_sig or timestamper)
            and attr_settings is not None
            and attr_settings.signing_time is not None
            and attr_settings.cades_signed_attrs is None
        )
        if not plain:
            return await super().signed_attrs(
                data_digest,
                digest_algorithm,
                attr_settings=attr_settings,
                content_type=content_type,
                use_pades=use_pades,
                timestamper=timestamper,
                dry_run=dry_run,
                is_pdf_sig=is_pdf_sig,
            )
        providers = [*self._constant_attributes, SigningTimeProvider(attr_settings.signing_time)]
        attrs = await format_signed_attributes(
            data_digest, providers, content_type=content_type, dry_run=dry_run
        )
        return _frozen(attrs)


_signers: dict[tuple[bytes, ...], _ManifestSigner] = {}
_signers_lock = threading.Lock()
_MAX_SIGNERS = 64


def _signer_for(
    key: SigningKey, cert: x509.Certificate, chain: Sequence[x509.Certificate]
) -> _ManifestSigner:
    """The cached signer of this certificate and chain, built on first use."""
    cache_key = tuple(c.fingerprint(hashes.SHA256()) for c in (cert, *chain))
    signer = _signers.get(cache_key)
    if signer is not None and (signer.key is key or signer.key.public_key() == key.public_key()):
        return signer
    signer = _ManifestSigner(key, cert, chain)
    with _signers_lock:
        if len(_signers) >= _MAX_SIGNERS:
            _signers.pop(next(iter(_signers)))
        _signers[cache_key] = signer
    return signer


async def async_sign_manifest(
    manifest: bytes,
    *,
    key: SigningKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    signing_time: datetime,
) -> bytes:
    """Sign ``manifest`` with ``key``; return a detached CMS SignedData (DER ContentInfo).

    ``chain`` is embedded as given (issuing CAs, the root too if wanted);
    ``signing_time`` must be timezone-aware.
    """
    _require_aware(signing_time, "signing_time")
    signer = _signer_for(key, cert, chain)
    if signer.template is not None:
        return signer.template.sign(manifest, signing_time, signer.sign_digest_input)
    return await signer.reference_sign(manifest, signing_time)


def sign_manifest(
    manifest: bytes,
    *,
    key: SigningKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    signing_time: datetime,
) -> bytes:
    """Sign ``manifest``; see ``async_sign_manifest``. Not callable inside an event loop."""
    _outside_a_loop()
    _require_aware(signing_time, "signing_time")
    signer = _signer_for(key, cert, chain)
    if signer.template is not None:  # no event loop needed
        return signer.template.sign(manifest, signing_time, signer.sign_digest_input)
    return bytes(_run(signer.reference_sign(manifest, signing_time)))


# -- verification ----------------------------------------------------------------------


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
    if timestamp_token is not None:
        return await _stamped_verdict(
            manifest, cms_der, trust_roots, crl_der, at, expected_signer, profile, timestamp_token
        )
    verdict = _quick_verdict(manifest, cms_der, trust_roots, crl_der, at, expected_signer, profile)
    if verdict is not None:
        return verdict
    return await _full_verdict(
        manifest, cms_der, trust_roots, crl_der, at, expected_signer, profile
    )


async def _stamped_verdict(
    manifest: bytes,
    cms_der: bytes,
    trust_roots: Sequence[x509.Certificate],
    crl_der: list[bytes],
    at: datetime,
    expected_signer: Mapping[str, str] | None,
    profile: profiles.Profile,
    token: bytes,
) -> Verdict:
    """Verify with a token given beside the CMS: the token first, then the signature."""
    signed_data, _signing_time = _detached_signed_data(cms_der)
    value = bytes(signed_data["signer_infos"][0]["signature"].native)
    stamp = await async_verify_token(token, value, trust_roots=trust_roots, crls=crl_der)
    verdict = _quick_verdict(
        manifest, cms_der, trust_roots, crl_der, at, expected_signer, profile, stamp
    )
    if verdict is not None:
        return verdict
    return await _full_verdict(
        manifest, cms_der, trust_roots, crl_der, at, expected_signer, profile, stamp
    )


def _check_arguments(
    crls: Iterable[x509.CertificateRevocationList | bytes],
    at: datetime,
    expected_signer: Mapping[str, str] | None,
) -> list[bytes]:
    """Refuse a naive ``at`` or unknown signer fields; return the CRLs as DER."""
    _require_aware(at, "at")
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
) -> Verdict:
    """Verify through pyHanko, every point, and remember the signer when it passes."""
    check_strict_cms(cms_der)
    signed_data, signing_time = _detached_signed_data(cms_der)
    signer_info = signed_data["signer_infos"][0]
    if stamp is None:
        try:
            token = token_in(signer_info)
        except (ValueError, TypeError) as exc:
            raise SignatureError(f"The signature is malformed: {exc}") from exc
        if token is not None:
            stamp = await async_verify_token(
                token,
                bytes(signer_info["signature"].native),
                trust_roots=trust_roots,
                crls=crl_der,
            )
    moment = at if stamp is None else stamp.gen_time
    key = cache_key(signed_data["certificates"].dump(), trust_roots, crl_der)
    roots = [_asn1_cert(c) for c in trust_roots]
    try:
        status = await async_validate_detached_cms(
            manifest,
            signed_data,
            signer_validation_context=_context(roots, crl_der, moment),
            key_usage_settings=SIGNER_KEY_USAGE,
        )
    except SignatureValidationError as exc:  # e.g. signing-certificate-v2 names another cert
        raise SignatureError(f"The signature is malformed: {exc.failure_message}") from exc
    except (ValueError, TypeError) as exc:  # asn1crypto parses lazily
        raise SignatureError(f"The signature is malformed: {exc}") from exc

    cert = status.signing_cert
    signer = _describe(cert)
    who = {"signer": signer["common_name"], "serial_number": signer["serial_number"]}
    if not status.valid:
        raise SignatureError("The signature does not verify with the signer's key.", **who)
    if not status.intact:
        raise ManifestMismatch(**who)
    if not (status.trusted and status.trust_problem_indic is None):
        raise await _path_error(status, signed_data, roots, crl_der, moment, who)
    later = check_path(status, crl_der, moment, signer, profile, who)
    _check_against_stamp(signing_time, stamp, who)
    check_signing_time(signing_time, moment, cert, signer, who)
    _check_expected_signer(signer, expected_signer, who)
    if later is None:
        _remember(key, signed_data, status, crl_der, signer)
    return _verdict(signing_time, at, signer, expected_signer, later, stamp)


def check_path(
    status: Any,
    crl_der: list[bytes],
    at: datetime,
    signer: dict[str, str],
    profile: profiles.Profile,
    who: dict[str, str],
) -> revocation.LaterRevocation | None:
    """What pyHanko's path check leaves to us: key usage, profile, CRLs without a pointer.

    Sets ``signer["profile"]``; returns a revocation after ``at``, if any.
    """
    cert = status.signing_cert
    try:
        # Again, because pyHanko 0.38 drops match_all_key_usages from the constraints it is
        # given (StandardCMSSignatureStatus.default_usage_constraints): it would accept a
        # certificate with digitalSignature alone.
        SIGNER_KEY_USAGE.validate(cert)
    except cv_errors.InvalidCertificateError as exc:
        raise KeyUsageInvalid(_KEY_USAGE_MESSAGE, reason=str(exc), **who) from exc
    leaf = x509.load_der_x509_certificate(cert.dump())
    signer["profile"] = profiles.profile_of(leaf) or ""
    check_profile(signer, profile, who)
    path = [leaf]
    if status.validation_path is not None:
        path += [
            c
            for c in (
                x509.load_der_x509_certificate(c.dump())
                for c in status.validation_path.iter_certs(include_root=True)
            )
            if c != leaf
        ]
    crls = [x509.load_der_x509_crl(c) for c in crl_der]
    return revocation.check_path(path, crls, at, who)


def check_profile(
    signer: Mapping[str, str], profile: profiles.Profile, who: Mapping[str, str]
) -> None:
    """The certificate has the profile this use accepts."""
    if signer.get("profile") != profile:
        raise CertificateProfileInvalid(
            f"This use needs {profiles.describe(profile)}; the signature was made with "
            f"{profiles.describe(signer.get('profile'))}.",
            expected_profile=profile,
            certificate_profile=signer.get("profile") or None,
            **who,
        )


def _quick_verdict(
    manifest: bytes,
    cms_der: bytes,
    trust_roots: Sequence[x509.Certificate],
    crl_der: list[bytes],
    at: datetime,
    expected_signer: Mapping[str, str] | None,
    profile: profiles.Profile = "signer",
    stamp: Stamp | None = None,
) -> Verdict | None:
    """The verdict on a signer seen before (``hotpath``), or None to verify in full.

    With a verified ``stamp``, the path is judged at its genTime instead of ``at``.
    """
    pieces = split(cms_der)
    if pieces is None:
        return None
    moment = at if stamp is None else stamp.gen_time
    known = _trusted_signers.get(cache_key(pieces.certificates, trust_roots, crl_der))
    quick = known and quick_verify(manifest, pieces, known, moment)
    if not quick or not is_canonical(cms_der, pieces):
        return None
    signer = dict(quick.trusted.signer)
    who = {"signer": signer["common_name"], "serial_number": signer["serial_number"]}
    check_profile(signer, profile, who)
    _check_against_stamp(quick.signing_time, stamp, who)
    check_signing_time(quick.signing_time, moment, quick.trusted, signer, who)
    _check_expected_signer(signer, expected_signer, who)
    return _verdict(quick.signing_time, at, signer, expected_signer, None, stamp)


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
    signer: Mapping[str, str], expected_signer: Mapping[str, str] | None, who: dict[str, str]
) -> None:
    if not expected_signer:
        return
    differ = {
        name: {"expected": want, "certificate": signer[name]}
        for name, want in expected_signer.items()
        if _comparable(signer[name]) != _comparable(want)
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
    signer: dict[str, str],
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
        signer=MappingProxyType(signer),
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
    signer: dict[str, str],
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
        MappingProxyType(dict(signer)),
    )
    if record is not None:
        _trusted_signers.put(key, record)


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
) -> Verdict:
    """Verify a detached signature; see ``async_verify_manifest_signature``."""
    _outside_a_loop()
    crl_der = _check_arguments(crls, at, expected_signer)
    if timestamp_token is not None:
        return cast(
            Verdict,
            _run(
                _stamped_verdict(
                    manifest,
                    cms_der,
                    trust_roots,
                    crl_der,
                    at,
                    expected_signer,
                    profile,
                    timestamp_token,
                )
            ),
        )
    verdict = _quick_verdict(manifest, cms_der, trust_roots, crl_der, at, expected_signer, profile)
    if verdict is not None:  # no event loop needed
        return verdict
    return cast(
        Verdict,
        _run(_full_verdict(manifest, cms_der, trust_roots, crl_der, at, expected_signer, profile)),
    )


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
        raise SignatureError(f"The signature is not a detached CMS signature: {exc}") from exc


def _context(
    roots: list[asn1_x509.Certificate], crls: list[bytes], at: datetime
) -> ValidationContext:
    # One context per validation: it caches paths and revocation results.
    return ValidationContext(
        trust_roots=roots,  # asn1crypto objects: bytes crash despite the docstring
        crls=crls,
        allow_fetching=False,
        revocation_mode="hard-fail",
        moment=at,
        # A CRL issued after ``at`` still speaks about ``at`` (archive re-checks).
        retroactive_revinfo=True,
    )


async def _path_error(
    status: Any,
    signed_data: asn1_cms.SignedData,
    roots: list[asn1_x509.Certificate],
    crls: list[bytes],
    at: datetime,
    who: dict[str, str],
) -> SignatureError:
    """The error for a certificate path pyHanko did not accept."""
    indic = status.trust_problem_indic
    if status.revoked or indic in (
        AdESIndeterminate.REVOKED_NO_POE,
        AdESIndeterminate.REVOKED_CA_NO_POE,
    ):
        details = status.revocation_details
        if details is not None:
            return CertificateRevoked(
                revoked_at=details.revocation_date.isoformat(),
                reason=str(details.revocation_reason.native),
                ca_revoked=details.ca_revoked,
                **who,
            )
        return CertificateRevoked(**who)
    # pyHanko folds untrusted, not-yet-valid, weak, missing or stale CRLs and CA problems
    # into a few indications and only logs the cause: validate the path again to learn it.
    others = [c.chosen for c in signed_data["certificates"] if c.name == "certificate"]
    validator = CertificateValidator(
        status.signing_cert, others, validation_context=_context(roots, crls, at)
    )
    try:
        await validator.async_validate_path()
    except cv_errors.NotYetValidError as exc:
        return CertificateNotYetValid(reason=exc.failure_msg, **who)
    except cv_errors.ExpiredError as exc:
        return CertificateExpired(reason=exc.failure_msg, **who)
    except cv_errors.RevokedError as exc:
        return CertificateRevoked(reason=exc.failure_msg, **who)
    except cv_errors.InsufficientRevinfoError as exc:  # no CRL, or a stale one
        return RevocationUnknown(reason=exc.failure_msg, **who)
    except cv_errors.DisallowedAlgorithmError as exc:
        return WeakAlgorithm(
            "A certificate on the path is signed with an algorithm that is not accepted.",
            reason=exc.failure_msg,
            **who,
        )
    except cv_errors.PathBuildingError as exc:
        return ChainUntrusted(reason=str(exc), **who)
    except cv_errors.PathValidationError as exc:  # e.g. a root's name with another key
        return ChainUntrusted(reason=exc.failure_msg, **who)
    except cv_errors.InvalidCertificateError as exc:
        if status.signing_cert.self_signed != "no":  # self-signed and not a pinned root
            return ChainUntrusted(
                "The certificate is self-signed and not a trusted root.", reason=str(exc), **who
            )
        return KeyUsageInvalid(_KEY_USAGE_MESSAGE, reason=str(exc), **who)
    except cv_errors.ValidationError as exc:
        return ChainUntrusted("The certificate path is not valid.", reason=str(exc), **who)
    if indic is AdESIndeterminate.OUT_OF_BOUNDS_NO_POE:
        return CertificateExpired(**who)
    if indic is AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND:
        return ChainUntrusted(**who)
    if indic is AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE:
        return KeyUsageInvalid(_KEY_USAGE_MESSAGE, **who)
    return SignatureError("The certificate path is not valid.", indication=str(indic), **who)


# -- helpers ---------------------------------------------------------------------------


def _describe(cert: asn1_x509.Certificate) -> dict[str, str]:
    subject = cert.subject.native

    def text(name: str) -> str:
        value = subject.get(name, "")
        return ", ".join(value) if isinstance(value, list) else str(value)

    return {
        "common_name": text("common_name"),
        "title": text("title"),
        "organization": text("organization_name"),
        "organizational_unit": text("organizational_unit_name"),
        "user_id": text("user_id"),
        "serial_number": format(cert.serial_number, "x"),
        "issuer": cert.issuer.human_friendly,
        "sha256": cert.sha256.hex(),
        "not_before": cert.not_valid_before.isoformat(),
        "not_after": cert.not_valid_after.isoformat(),
    }


def _comparable(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).casefold().split())


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _outside_a_loop() -> None:
    """Refuse a synchronous call from inside an event loop (even when it would not block)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError("inside an event loop, await the async_ variant instead")


def _run(coroutine: Any) -> Any:
    """Run a coroutine to completion on an event loop of its own, closed after.

    Only the slow paths come here (a signer's first signature, full verification, PAdES):
    the fast ones need no loop. A loop kept per thread would leak with every thread that
    ends (its selector's sockets), for a saving of well under 1% of such a call.
    """
    try:
        _outside_a_loop()
    except RuntimeError:
        coroutine.close()
        raise
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def check_signing_time(
    signing_time: datetime,
    at: datetime,
    cert: Any,
    signer: Mapping[str, Any],
    who: Mapping[str, Any],
) -> None:
    """The claimed signing time is not after ``at`` and lies inside the validity."""
    if signing_time > at + CLOCK_SKEW:
        raise SigningTimeInvalid(
            "The signing time lies after the moment of verification.",
            signing_time=signing_time.isoformat(),
            checked_at=at.isoformat(),
            **who,
        )
    if signing_time < cert.not_valid_before:
        raise SigningTimeInvalid(
            "The certificate was not yet valid at the claimed signing time.",
            signing_time=signing_time.isoformat(),
            not_before=signer["not_before"],
            **who,
        )
    if signing_time > cert.not_valid_after:
        raise SigningTimeInvalid(
            "The certificate had expired at the claimed signing time.",
            signing_time=signing_time.isoformat(),
            not_after=signer["not_after"],
            **who,
        )
