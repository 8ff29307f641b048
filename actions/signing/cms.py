"""Detached CMS signatures over a manifest: making them, and what verifying them shares.

A signature is a DER ``ContentInfo`` holding a ``SignedData`` without its content (the
manifest travels beside it), one ``SignerInfo``, the signer's certificate and chain, and
the signed attributes content type, message digest, signing time, CMS algorithm
protection and signing-certificate-v2 (ESS). ``openssl cms -verify -binary`` accepts it.
``verification`` judges such signatures, ours and uploaded ones.

pyHanko 0.38 is async only; ``sign_manifest`` and ``verification.verify_manifest_signature``
run it on a private event loop (``run_sync``), and code already inside a loop awaits the
``async_`` variants.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asn1crypto import algos, keys, tsp
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pyhanko.sign.attributes import CMSAttributeProvider, SigningTimeProvider
from pyhanko.sign.general import as_signing_certificate_v2
from pyhanko.sign.signers import SimpleSigner
from pyhanko.sign.signers.pdf_cms import CMSSignedAttributes, format_signed_attributes
from pyhanko_certvalidator.registry import SimpleCertificateStore

from congvan.actions.signing.template import SignatureTemplate, signing_time

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
DIGEST = "sha256"
# Verdicts (``verification``, ``pades``) report every failed point with its own error code;
# pyHanko's own warnings repeat each one with a traceback, so only its errors are let through.
logging.getLogger("pyhanko").setLevel(logging.ERROR)
logging.getLogger("pyhanko_certvalidator").setLevel(logging.ERROR)


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
        signing_cert = asn1_cert(cert)
        mechanism_value = _frozen(algos.SignedDigestAlgorithm({"algorithm": mechanism}))
        super().__init__(
            signing_cert=signing_cert,
            signing_key=keys.PrivateKeyInfo.load(
                key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
            ),
            cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                [asn1_cert(c) for c in chain]
            ),
            signature_mechanism=mechanism_value,
        )
        self.key = key
        # Made from this signer's first signature, which pyHanko builds (``template``).
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
        providers = [*self._constant_attributes, _SigningTime(attr_settings.signing_time)]
        attrs = await format_signed_attributes(
            data_digest, providers, content_type=content_type, dry_run=dry_run
        )
        return _frozen(attrs)


class _SigningTime(SigningTimeProvider):
    """pyHanko's signing-time attribute, of the type RFC 5652 requires for its year."""

    async def build_attr_value(self, dry_run: bool = False) -> asn1_cms.Time:
        return signing_time(self.timestamp)


_signers: dict[tuple[bytes, ...], _ManifestSigner] = {}
_signers_lock = threading.Lock()
_MAX_SIGNERS = 64


def signer_for(
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
    require_aware(signing_time, "signing_time")
    signer = signer_for(key, cert, chain)
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
    outside_a_loop()
    require_aware(signing_time, "signing_time")
    signer = signer_for(key, cert, chain)
    if signer.template is not None:  # no event loop needed
        return signer.template.sign(manifest, signing_time, signer.sign_digest_input)
    return bytes(run_sync(signer.reference_sign(manifest, signing_time)))


# -- shared with verification -----------------------------------------------------------


def asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def outside_a_loop() -> None:
    """Refuse a synchronous call from inside an event loop (even when it would not block)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError("inside an event loop, await the async_ variant instead")


def run_sync(coroutine: Any) -> Any:
    """Run a coroutine to completion on an event loop of its own, closed after.

    Only the slow paths come here (a signer's first signature, full verification, PAdES):
    the fast ones need no loop. A loop kept per thread would leak with every thread that
    ends (its selector's sockets), for a saving of well under 1% of such a call.
    """
    try:
        outside_a_loop()
    except RuntimeError:
        coroutine.close()
        raise
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()
