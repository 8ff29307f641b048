"""Detached CMS over a manifest: signs, verifies, names the first failure, agrees with openssl."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from pyhanko.sign.signers import SimpleSigner
from pyhanko.sign.signers.pdf_cms import CMSSignedAttributes
from pyhanko_certvalidator.registry import SimpleCertificateStore

from congvan.actions.signing.certpath import ahead_of_clock
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.manifest import build_manifest
from congvan.actions.signing.verification import (
    async_verify_manifest_signature,
    verify_manifest_signature,
)
from congvan.states.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    ChainUntrusted,
    KeyUsageInvalid,
    ManifestMismatch,
    SignatureError,
    SignatureMalformed,
    SignerMismatch,
    SigningTimeInvalid,
)
from tests.tools import verify_with_openssl

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
AGENCY = "UBND tỉnh Thừa Thiên Huế"
SIGNER = {"common_name": "Nguyễn Văn Phương", "title": "Phó Chủ tịch", "organization": AGENCY}
OPENSSL = shutil.which("openssl") or "openssl"
# A missing openssl fails these tests with the setup command to run, never skips them.
needs_openssl = pytest.mark.usefixtures("openssl_installed")

# -- a test PKI: one root CA that issues signer certificates and publishes a CRL ---------

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    key: Key
    cert: x509.Certificate


# Weak keys, besides: an RSA key of 1024 bits, ECDSA on P-192 and P-224.
_CURVES: dict[str, ec.EllipticCurve] = {
    "ec": ec.SECP256R1(),
    "p192": ec.SECP192R1(),
    "p224": ec.SECP224R1(),
}


def new_key(kind: str = "rsa") -> Key:
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind])
    return rsa.generate_private_key(
        public_exponent=65537, key_size=1024 if kind == "rsa1024" else 2048
    )


def make_name(cn: str, *, title: str | None = None, org: str = AGENCY) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ]
    if title:
        attrs.append(x509.NameAttribute(NameOID.TITLE, title))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def key_usage(**granted: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return x509.KeyUsage(**{**flags, **granted})


def make_root(cn: str, *, around: datetime = NOW, path_length: int | None = None) -> Issued:
    """A root CA valid ten years either side of ``around``."""
    key = new_key()
    name = make_name(cn, org="Congvan Test PKI")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(around - 3650 * DAY)
        .not_valid_after(around + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(
    ca: Issued,
    *,
    cn: str = SIGNER["common_name"],
    title: str = SIGNER["title"],
    kind: str = "rsa",
    not_before: datetime = NOW - 30 * DAY,
    not_after: datetime = NOW + 365 * DAY,
    usage: x509.KeyUsage | None = None,
    ca_flag: bool = False,
) -> Issued:
    key = new_key(kind)
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    # The distribution point matters: in hard-fail mode the validator consults CRLs only for
    # certificates that name one, even when the CRL is handed to it.
    crl_dp = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier("http://pki.congvan.test/root.crl")],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(make_name(cn, title=title))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
        .add_extension(
            usage or key_usage(digital_signature=True, content_commitment=True), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .add_extension(x509.CRLDistributionPoints([crl_dp]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


def publish_crl(ca: Issued, revoked: list[x509.Certificate]) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(NOW - timedelta(hours=1))
        .next_update(NOW + 7 * DAY)
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(NOW - 2 * DAY)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    root: Issued
    crl: x509.CertificateRevocationList
    signer: Issued
    ec_signer: Issued
    expired: Issued
    not_yet_valid: Issued
    revoked: Issued
    no_non_repudiation: Issued
    encipherment_only: Issued
    rogue: Issued  # from a root nobody trusts


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def make_pki() -> Pki:
    root = make_root("Congvan Test Root CA")
    rogue_root = make_root("Rogue Root CA")
    revoked = issue(root)
    return Pki(
        root=root,
        crl=publish_crl(root, [revoked.cert]),
        signer=issue(root),
        ec_signer=issue(root, kind="ec"),
        expired=issue(root, not_before=NOW - 400 * DAY, not_after=NOW - 35 * DAY),
        not_yet_valid=issue(root, not_before=NOW + 10 * DAY, not_after=NOW + 400 * DAY),
        revoked=revoked,
        no_non_repudiation=issue(root, usage=key_usage(digital_signature=True)),
        encipherment_only=issue(root, usage=key_usage(key_encipherment=True)),
        rogue=issue(rogue_root),
    )


MANIFEST = build_manifest(
    {
        "id": "doc-1",
        "revision": 2,
        "agency_id": "000.00.00.H57",
        "number": 1227,
        "symbol": "UBND-TĐKT",
        "doc_type": "CV",
        "subject": "V/v tăng cường gửi, nhận văn bản điện tử",
        "signer_name": "Nguyễn Văn Phương",
        "recipients": ["000.00.01.H57"],
    },
    [
        {
            "role": "main",
            "filename": "1227.pdf",
            "media_type": "application/pdf",
            "size": 4,
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        }
    ],
)
TAMPERED = MANIFEST.replace(b'"number":1227', b'"number":1228')


def sign(who: Issued, pki: Pki, manifest: bytes = MANIFEST, at: datetime = NOW) -> bytes:
    return sign_manifest(
        manifest, key=who.key, cert=who.cert, chain=[pki.root.cert], signing_time=at
    )


def verify(manifest: bytes, cms_der: bytes, pki: Pki, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "trust_roots": [pki.root.cert],
        "crls": [pki.crl],
        # The wall clock, not NOW: signatures made by openssl carry the time they were made,
        # which a long test run leaves well after NOW.
        "at": max(NOW, datetime.now(UTC)) + timedelta(minutes=1),
        "expected_signer": None,
    }
    options.update(overrides)
    return verify_manifest_signature(manifest, cms_der, **options)


# -- round trip --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["signer", "ec_signer"])
def test_a_signed_manifest_verifies_and_says_what_was_checked(pki: Pki, which: str) -> None:
    # Given a manifest signed by a valid signer (RSA or ECDSA)
    signer: Issued = getattr(pki, which)
    cms_der = sign(signer, pki)

    # When it is verified against the root and its CRL, expecting that signer
    verdict = verify(MANIFEST, cms_der, pki, expected_signer=SIGNER)

    # Then every point holds and the certificate is described
    checks = (
        verdict.intact,
        verdict.valid,
        verdict.trusted,
        verdict.not_revoked,
        verdict.key_usage_ok,
        verdict.valid_at_signing_time,
        verdict.signer_matches,
    )
    assert (True,) * 7 == checks
    assert NOW == verdict.signing_time
    assert SIGNER["common_name"] == verdict.signer.common_name
    assert AGENCY == verdict.signer.organization
    assert signer.cert.fingerprint(hashes.SHA256()).hex() == verdict.signer.sha256


def test_the_cms_is_detached_with_the_signed_attributes_and_certificates(pki: Pki) -> None:
    signed_data = asn1_cms.ContentInfo.load(sign(pki.signer, pki))["content"]
    signer_info = signed_data["signer_infos"][0]

    assert signed_data["encap_content_info"]["content"].native is None
    assert {
        "content_type",
        "message_digest",
        "signing_time",
        "signing_certificate_v2",
        "cms_algorithm_protection",
    } == {a["type"].native for a in signer_info["signed_attrs"]}
    embedded = {c.chosen.sha256 for c in signed_data["certificates"]}
    expected = {c.fingerprint(hashes.SHA256()) for c in (pki.signer.cert, pki.root.cert)}
    assert expected == embedded


def test_signing_is_deterministic_for_rsa_and_repeatable(pki: Pki) -> None:
    # PKCS#1 v1.5 is deterministic: the cached signer must give the same bytes each time.
    assert sign(pki.signer, pki) == sign(pki.signer, pki)


def test_the_cached_signer_gives_the_bytes_of_pyhankos_stock_signer(pki: Pki) -> None:
    # Guards the attribute caching across pyHanko upgrades (RSA PKCS#1 v1.5 is deterministic).
    def asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))

    der_key = pki.signer.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    stock = SimpleSigner(
        signing_cert=asn1(pki.signer.cert),
        signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
        cert_registry=SimpleCertificateStore.from_certs([asn1(pki.root.cert)]),
    )
    settings = CMSSignedAttributes(signing_time=NOW)
    coroutine = stock.async_sign_general_data(MANIFEST, "sha256", signed_attr_settings=settings)

    assert asyncio.run(coroutine).dump() == sign(pki.signer, pki)


def test_a_key_that_does_not_match_the_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        sign_manifest(
            MANIFEST,
            key=pki.expired.key,
            cert=pki.signer.cert,
            chain=[pki.root.cert],
            signing_time=NOW,
        )


def test_inside_an_event_loop_the_async_variants_are_awaited(pki: Pki) -> None:
    cms_der = sign(pki.signer, pki)
    options = {"trust_roots": [pki.root.cert], "crls": [pki.crl], "at": NOW + DAY}

    async def in_a_loop() -> Any:
        with pytest.raises(RuntimeError, match="async_ variant"):
            verify_manifest_signature(MANIFEST, cms_der, **options)
        return await async_verify_manifest_signature(MANIFEST, cms_der, **options)

    assert asyncio.run(in_a_loop()).trusted


def test_a_naive_signing_time_is_refused(pki: Pki) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign(pki.signer, pki, at=NOW.replace(tzinfo=None))


# -- each failure, named -----------------------------------------------------------------


def test_a_changed_manifest_is_a_manifest_mismatch(pki: Pki) -> None:
    with pytest.raises(ManifestMismatch):
        verify(TAMPERED, sign(pki.signer, pki), pki)


def flip_signature(cms_der: bytes) -> bytes:
    content_info = asn1_cms.ContentInfo.load(cms_der)
    signer_info = content_info["content"]["signer_infos"][0]
    value = bytearray(signer_info["signature"].native)
    value[-5] ^= 0xFF
    signer_info["signature"] = bytes(value)
    return bytes(content_info.dump(force=True))


def test_flipped_signature_bytes_are_an_invalid_signature(pki: Pki) -> None:
    with pytest.raises(SignatureError) as caught:
        verify(MANIFEST, flip_signature(sign(pki.signer, pki)), pki)

    assert SignatureError is type(caught.value)
    assert "does not verify" in caught.value.message


def test_an_invalid_signature_is_reported_before_a_changed_manifest(pki: Pki) -> None:
    with pytest.raises(SignatureError) as caught:
        verify(TAMPERED, flip_signature(sign(pki.signer, pki)), pki)

    assert SignatureError is type(caught.value)


@pytest.mark.parametrize(
    "upload", [b"", b"not a signature", b"\x30\x03\x02\x01\x00", b"\x30\x82\xff\xff" + b"\0" * 9]
)
def test_garbage_is_refused_with_a_clear_message(pki: Pki, upload: bytes) -> None:
    with pytest.raises(SignatureError) as caught:
        verify(MANIFEST, upload, pki)

    assert SignatureMalformed is type(caught.value)
    assert "not a detached CMS signature" in caught.value.message


def test_an_expired_certificate_is_named(pki: Pki) -> None:
    with pytest.raises(CertificateExpired):
        verify(MANIFEST, sign(pki.expired, pki), pki)


def test_a_certificate_not_yet_valid_at_its_own_signing_time_is_refused_so(pki: Pki) -> None:
    # Valid ten days on, its signature made today: no clock reads that as valid, for good
    with pytest.raises(SigningTimeInvalid, match="not yet valid at the claimed signing time"):
        verify(MANIFEST, sign(pki.not_yet_valid, pki), pki)
    # Signed, as it claims, ten days on: by our clock the signature lies ahead of it
    ahead = sign(pki.not_yet_valid, pki, at=NOW + 10 * DAY + timedelta(hours=1))
    with pytest.raises(SigningTimeInvalid) as caught:
        verify(MANIFEST, ahead, pki)
    assert ahead_of_clock(caught.value)


def test_a_certificate_valid_a_moment_ahead_of_our_clock_is_named_as_such(pki: Pki) -> None:
    # Valid from two minutes on, signed (as it claims) three minutes on: within the skew
    # allowed, but not valid yet by our clock; the clocks disagree, a wait settles it
    soon = issue(pki.root, not_before=NOW + timedelta(minutes=2), not_after=NOW + 400 * DAY)
    cms_der = sign(soon, pki, at=NOW + timedelta(minutes=3))
    with pytest.raises(CertificateNotYetValid) as caught:
        verify(MANIFEST, cms_der, pki, at=NOW)
    assert ahead_of_clock(caught.value)


def test_a_signing_time_before_the_certificate_was_valid_is_named(pki: Pki) -> None:
    cms_der = sign(pki.signer, pki, at=NOW - 60 * DAY)

    with pytest.raises(SigningTimeInvalid, match="claimed signing time"):
        verify(MANIFEST, cms_der, pki)


def test_a_revoked_certificate_is_named_with_its_revocation(pki: Pki) -> None:
    with pytest.raises(CertificateRevoked) as caught:
        verify(MANIFEST, sign(pki.revoked, pki), pki)

    assert "key_compromise" == caught.value.details["reason"]


def test_a_certificate_from_an_untrusted_root_is_named(pki: Pki) -> None:
    with pytest.raises(ChainUntrusted):
        verify(MANIFEST, sign(pki.rogue, pki), pki)


@pytest.mark.parametrize("which", ["no_non_repudiation", "encipherment_only"])
def test_a_certificate_without_both_signing_usages_is_named(pki: Pki, which: str) -> None:
    with pytest.raises(KeyUsageInvalid):
        verify(MANIFEST, sign(getattr(pki, which), pki), pki)


def test_another_signer_than_expected_is_named(pki: Pki) -> None:
    expected = {**SIGNER, "common_name": "Trần Thị Bình"}

    with pytest.raises(SignerMismatch) as caught:
        verify(MANIFEST, sign(pki.signer, pki), pki, expected_signer=expected)

    assert ["common_name"] == list(caught.value.details["differences"])


def test_signer_names_compare_without_regard_to_case_or_spacing(pki: Pki) -> None:
    expected = {"common_name": "NGUYỄN  VĂN PHƯƠNG", "title": "PHÓ CHỦ TỊCH"}

    verdict = verify(MANIFEST, sign(pki.signer, pki), pki, expected_signer=expected)

    assert verdict.signer_matches


def sub_ca(root: Issued) -> Issued:
    """An issuing CA under ``root``, with the key identifier ``issue`` reads."""
    key = new_key()
    root_ski = root.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(make_name("Congvan Test Issuing CA", org="Congvan Test PKI"))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 300 * DAY)
        .not_valid_after(NOW + 3000 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), False
        )
        .sign(root.key, hashes.SHA256())
    )
    return Issued(key, cert)


@pytest.mark.parametrize(("path_length", "trusted"), [(0, False), (1, True), (None, True)])
def test_a_roots_path_length_constraint_binds_the_paths_it_anchors(
    path_length: int | None, trusted: bool
) -> None:
    # Given a root allowing ``path_length`` CAs under it, an issuing CA under it, and a
    # signer of that CA (every CRL at hand)
    root = make_root("Congvan Test Root CA", path_length=path_length)
    issuing = sub_ca(root)
    signer = issue(issuing)
    cms_der = sign_manifest(
        MANIFEST, key=signer.key, cert=signer.cert, chain=[issuing.cert, root.cert],
        signing_time=NOW,
    )  # fmt: skip
    at = NOW + timedelta(minutes=1)
    crls = [publish_crl(root, []), publish_crl(issuing, [])]

    def verified() -> Any:
        return verify_manifest_signature(
            MANIFEST, cms_der, trust_roots=[root.cert], crls=crls, at=at, expected_signer=None
        )

    # Then a root made with pathlen:0 anchors no path through another CA (as openssl says)
    if trusted:
        assert verified().valid
    else:
        with pytest.raises(ChainUntrusted):
            verified()


def test_a_missing_crl_leaves_the_revocation_status_unknown(pki: Pki) -> None:
    with pytest.raises(SignatureError, match="revocation status"):
        verify(MANIFEST, sign(pki.signer, pki), pki, crls=[])


# -- an outside tool: openssl signs, we verify; we sign, openssl verifies ----------------


@pytest.fixture
def exported(pki: Pki, tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "manifest.json").write_bytes(MANIFEST)
    (tmp_path / "tampered.json").write_bytes(TAMPERED)
    (tmp_path / "ca.pem").write_bytes(pki.root.cert.public_bytes(Encoding.PEM))
    (tmp_path / "signer.pem").write_bytes(pki.signer.cert.public_bytes(Encoding.PEM))
    (tmp_path / "signer.key").write_bytes(
        pki.signer.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    yield tmp_path


@needs_openssl
def test_a_signature_made_by_openssl_verifies(pki: Pki, exported: Path) -> None:
    # Given a detached CAdES signature made with the openssl CLI, as a user's tool would
    subprocess.run(
        [
            str(OPENSSL),
            "cms",
            "-sign",
            "-binary",
            "-cades",
            "-md",
            "sha256",
            "-in",
            str(exported / "manifest.json"),
            "-signer",
            str(exported / "signer.pem"),
            "-inkey",
            str(exported / "signer.key"),
            "-certfile",
            str(exported / "ca.pem"),
            "-outform",
            "DER",
            "-out",
            str(exported / "upload.p7s"),
        ],
        check=True,
        capture_output=True,
    )
    upload = (exported / "upload.p7s").read_bytes()

    # Then it verifies, and a changed manifest does not
    verdict = verify(MANIFEST, upload, pki, expected_signer=SIGNER)
    assert verdict.signer_matches
    with pytest.raises(ManifestMismatch):
        verify(TAMPERED, upload, pki)


@needs_openssl
def test_openssl_agrees_with_our_signature(pki: Pki, exported: Path) -> None:
    (exported / "sig.p7s").write_bytes(sign(pki.signer, pki))

    accepted = verify_with_openssl(exported)
    refused = verify_with_openssl(exported, content="tampered.json")

    assert 0 == accepted.returncode, accepted.stderr.decode()
    assert 0 != refused.returncode
