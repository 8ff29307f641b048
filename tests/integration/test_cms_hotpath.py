"""The fast paths of signing and verification give exactly what pyHanko's full path gives.

Signing: a signer's later signatures come from a template made from its first, which
pyHanko built; they must be byte for byte what pyHanko builds. Verification: once pyHanko
verified a signer's signature in full, the next one is accepted by comparing bytes and
checking digest, signing time and signature math; it must never accept what the full path
refuses, and every refusal must keep its error code, whatever was remembered before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from congvan.actions.signing import cms, hotpath, verification
from congvan.actions.signing.description import describe
from congvan.actions.signing.hotpath import ChainCache
from congvan.actions.signing.template import SignatureTemplate
from congvan.states.errors import (
    CertificateExpired,
    CertificateRevoked,
    ChainUntrusted,
    ManifestMismatch,
    RevocationUnknown,
    SignatureError,
    SignerMismatch,
    SigningTimeInvalid,
)
from tests.integration.test_cms import (
    DAY,
    MANIFEST,
    NOW,
    SIGNER,
    TAMPERED,
    Issued,
    Pki,
    issue,
    make_pki,
    make_root,
    publish_crl,
    sign,
    verify,
)

LATER = NOW + timedelta(minutes=1)


@pytest.fixture(scope="module", name="pki")
def module_pki() -> Pki:
    return make_pki()


@pytest.fixture(autouse=True)
def forget_signers() -> Iterator[None]:
    verification._trusted_signers.clear()
    yield
    verification._trusted_signers.clear()


def reference(who: Issued, pki: Pki, manifest: bytes, at: datetime) -> bytes:
    """What pyHanko itself builds for this signer, manifest and time."""
    signer = cms._ManifestSigner(who.key, who.cert, [pki.root.cert])
    return bytes(asyncio.run(signer.reference_sign(manifest, at)))


def template_for(who: Issued, pki: Pki) -> tuple[SignatureTemplate, Callable[[bytes], bytes]]:
    signer = cms._ManifestSigner(who.key, who.cert, [pki.root.cert])
    asyncio.run(signer.reference_sign(b"{}", NOW))
    assert signer.template is not None
    return signer.template, signer.sign_digest_input


# -- signing -----------------------------------------------------------------------------


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    manifest=st.binary(max_size=3000),
    moment=st.datetimes(
        min_value=datetime(1901, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
    ),
)
def test_template_signatures_are_pyhankos_byte_for_byte(
    pki: Pki, manifest: bytes, moment: datetime
) -> None:
    # Given a template made from one pyHanko signature of the RSA signer
    template, sign_raw = template_for(pki.signer, pki)

    # When any manifest is signed at any time through it and through pyHanko
    fast = template.sign(manifest, moment, sign_raw)

    # Then the bytes are the same (PKCS#1 v1.5 is deterministic)
    assert reference(pki.signer, pki, manifest, moment) == fast


def test_template_ecdsa_signatures_differ_from_pyhankos_only_in_the_signature(
    pki: Pki,
) -> None:
    template, sign_raw = template_for(pki.ec_signer, pki)

    fast = asn1_cms.ContentInfo.load(template.sign(MANIFEST, NOW, sign_raw))
    slow = asn1_cms.ContentInfo.load(reference(pki.ec_signer, pki, MANIFEST, NOW))

    for parsed in (fast, slow):
        parsed["content"]["signer_infos"][0]["signature"] = b""
    assert slow.dump(force=True) == fast.dump(force=True)


def test_sign_manifest_uses_the_template_after_the_first_signature(pki: Pki) -> None:
    first = sign(pki.signer, pki, at=NOW)
    second = sign(pki.signer, pki, manifest=TAMPERED, at=NOW + DAY)

    assert cms.signer_for(pki.signer.key, pki.signer.cert, [pki.root.cert]).template
    assert reference(pki.signer, pki, MANIFEST, NOW) == first
    assert reference(pki.signer, pki, TAMPERED, NOW + DAY) == second


# -- verification: what is remembered -----------------------------------------------------


def test_a_verified_signer_is_remembered_and_the_next_signature_is_quick(pki: Pki) -> None:
    cms_der = sign(pki.signer, pki)
    crl = [pki.crl.public_bytes(cms.Encoding.DER)]
    assert verification._quick_verdict(MANIFEST, cms_der, [pki.root.cert], crl, LATER, None) is None

    full = verify(MANIFEST, cms_der, pki, at=LATER, expected_signer=SIGNER)
    quick = verification._quick_verdict(MANIFEST, cms_der, [pki.root.cert], crl, LATER, SIGNER)

    assert quick == full
    assert 1 == len(verification._trusted_signers)


def test_a_certificate_listed_in_a_crl_is_never_remembered(pki: Pki) -> None:
    # The revoked certificate was revoked two days ago; before that its signatures verify.
    before = NOW - 3 * DAY
    cms_der = sign(pki.revoked, pki, at=before)

    assert verify(MANIFEST, cms_der, pki, at=before).trusted
    assert 0 == len(verification._trusted_signers)
    with pytest.raises(CertificateRevoked):
        verify(MANIFEST, cms_der, pki, at=LATER)


def prime(pki: Pki, who: Issued | None = None) -> None:
    """Verify a good signature of ``who`` so that its chain is remembered."""
    who = who or pki.signer
    verify(MANIFEST, sign(who, pki), pki, at=LATER)
    assert 1 == len(verification._trusted_signers)


def flip_signature(cms_der: bytes) -> bytes:
    parsed = asn1_cms.ContentInfo.load(cms_der)
    signer_info = parsed["content"]["signer_infos"][0]
    value = bytearray(signer_info["signature"].native)
    value[10] ^= 0x01
    signer_info["signature"] = bytes(value)
    return bytes(parsed.dump(force=True))


def resign_with_another_key(cms_der: bytes) -> bytes:
    """The same certificates and attributes, the signature made by a stranger's key."""
    parsed = asn1_cms.ContentInfo.load(cms_der)
    signer_info = parsed["content"]["signer_infos"][0]
    attributes = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer_info["signature"] = stranger.sign(attributes, padding.PKCS1v15(), hashes.SHA256())
    return bytes(parsed.dump(force=True))


def case_manifest_changed(pki: Pki) -> Any:
    verify(TAMPERED, sign(pki.signer, pki), pki, at=LATER)


def case_signature_flipped(pki: Pki) -> Any:
    verify(MANIFEST, flip_signature(sign(pki.signer, pki)), pki, at=LATER)


def case_stranger_key(pki: Pki) -> Any:
    verify(MANIFEST, resign_with_another_key(sign(pki.signer, pki)), pki, at=LATER)


def case_after_the_certificate_expired(pki: Pki) -> Any:
    verify(MANIFEST, sign(pki.signer, pki), pki, at=NOW + 400 * DAY)


def case_after_the_crl_went_stale(pki: Pki) -> Any:
    verify(MANIFEST, sign(pki.signer, pki), pki, at=NOW + 8 * DAY)


def case_revoked_by_a_newer_crl(pki: Pki) -> Any:
    newer = publish_crl(pki.root, [pki.revoked.cert, pki.signer.cert])
    verify(MANIFEST, sign(pki.signer, pki), pki, at=LATER, crls=[newer])


def case_another_signer_expected(pki: Pki) -> Any:
    other = {**SIGNER, "common_name": "Trần Văn B"}
    verify(MANIFEST, sign(pki.signer, pki), pki, at=LATER, expected_signer=other)


def case_signing_time_in_the_future(pki: Pki) -> Any:
    verify(MANIFEST, sign(pki.signer, pki, at=NOW + DAY), pki, at=LATER)


def case_signed_before_the_certificate(pki: Pki) -> Any:
    verify(MANIFEST, sign(pki.signer, pki, at=NOW - 60 * DAY), pki, at=LATER)


def case_other_trust_roots(pki: Pki) -> Any:
    stranger_root = make_root("Another Root CA")
    verify(
        MANIFEST,
        sign(pki.signer, pki),
        pki,
        at=LATER,
        trust_roots=[stranger_root.cert],
        crls=[publish_crl(stranger_root, [])],
    )


CASES: list[tuple[Callable[[Pki], Any], type[SignatureError]]] = [
    (case_manifest_changed, ManifestMismatch),
    (case_signature_flipped, SignatureError),
    (case_stranger_key, SignatureError),
    (case_after_the_certificate_expired, CertificateExpired),
    (case_after_the_crl_went_stale, RevocationUnknown),
    (case_revoked_by_a_newer_crl, CertificateRevoked),
    (case_another_signer_expected, SignerMismatch),
    (case_signing_time_in_the_future, SigningTimeInvalid),
    (case_signed_before_the_certificate, SigningTimeInvalid),
    (case_other_trust_roots, ChainUntrusted),
]


@pytest.mark.parametrize("remembered", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize(("case", "error"), CASES, ids=[c.__name__[5:] for c, _ in CASES])
def test_every_refusal_keeps_its_code_whatever_was_remembered(
    pki: Pki, case: Callable[[Pki], Any], error: type[SignatureError], remembered: bool
) -> None:
    # Given the signer's chain remembered from a good signature (or not)
    if remembered:
        prime(pki)

    # When a bad signature of that signer is verified
    with pytest.raises(SignatureError) as raised:
        case(pki)

    # Then the error is the one the full verification names, with its code
    assert type(raised.value) is error
    assert raised.value.code == error.code


def test_a_signature_passing_both_ways_gives_the_same_verdict(pki: Pki) -> None:
    cms_der = sign(pki.ec_signer, pki)
    cold = verify(MANIFEST, cms_der, pki, at=LATER, expected_signer=SIGNER)
    warm = verify(MANIFEST, cms_der, pki, at=LATER, expected_signer=SIGNER)

    assert cold == warm
    assert 1 == len(verification._trusted_signers)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_quick_never_accepts_what_the_full_verification_refuses(pki: Pki, data: Any) -> None:
    # Given the signer remembered and one of its signatures with a few bytes changed
    verification._trusted_signers.clear()
    prime(pki)
    good = sign(pki.signer, pki)
    mutated = bytearray(good)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        how = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if how == "replace":
            mutated[at] = data.draw(st.integers(0, 255))
        elif how == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            del mutated[at : at + data.draw(st.integers(1, 4))]
    crl = [pki.crl.public_bytes(cms.Encoding.DER)]

    # When the quick path accepts it
    quick = verification._quick_verdict(MANIFEST, bytes(mutated), [pki.root.cert], crl, LATER, None)

    # Then pyHanko's full verification accepts it too, with the same verdict
    if quick is not None:
        full = asyncio.run(
            verification._full_verdict(MANIFEST, bytes(mutated), [pki.root.cert], crl, LATER, None)
        )
        assert quick == full


def test_the_chain_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    cache = ChainCache(size=2)
    first, second, third = object(), object(), object()
    cache.put((b"1",), first)  # type: ignore[arg-type]
    cache.put((b"2",), second)  # type: ignore[arg-type]
    assert cache.get((b"1",)) is first  # now the most recent

    cache.put((b"3",), third)  # type: ignore[arg-type]

    assert cache.get((b"2",)) is None
    assert cache.get((b"1",)) is first
    assert cache.get((b"3",)) is third
    assert 2 == len(cache)


def test_an_ecdsa_signer_signs_and_verifies_quickly_too(pki: Pki) -> None:
    prime(pki, pki.ec_signer)
    cms_der = sign(pki.ec_signer, pki, manifest=TAMPERED)
    crl = [pki.crl.public_bytes(cms.Encoding.DER)]

    verdict = verification._quick_verdict(TAMPERED, cms_der, [pki.root.cert], crl, LATER, None)

    assert verdict is not None and verdict.trusted
    assert isinstance(pki.ec_signer.key, ec.EllipticCurvePrivateKey)


def test_expired_issued_certificates_still_name_their_error(pki: Pki) -> None:
    # A certificate expired at the moment of verification, its signer never remembered.
    expired = issue(pki.root, not_before=NOW - 400 * DAY, not_after=NOW - 35 * DAY)
    cms_der = sign(expired, pki, at=NOW - 40 * DAY)
    with pytest.raises(CertificateExpired):
        verify(MANIFEST, cms_der, pki, at=LATER)
    assert 0 == len(verification._trusted_signers)


def with_unsigned_attribute(cms_der: bytes) -> bytes:
    parsed = asn1_cms.ContentInfo.load(cms_der)
    signer_info = parsed["content"]["signer_infos"][0]
    signer_info["unsigned_attrs"] = asn1_cms.CMSAttributes(
        [{"type": "1.2.840.113549.1.9.16.2.23", "values": []}]  # CAdES certificate-values
    )
    return bytes(parsed.dump(force=True))


def test_shapes_the_quick_path_does_not_know_go_the_full_way(pki: Pki) -> None:
    # Given the signer remembered, and its signature with an unsigned attribute added
    # (outside what the signature covers, so still a valid signature to pyHanko)
    prime(pki)
    cms_der = with_unsigned_attribute(sign(pki.signer, pki))
    crl = [pki.crl.public_bytes(cms.Encoding.DER)]

    # Then the quick path declines it, and the full verification decides
    assert hotpath.split(cms_der) is None
    assert verification._quick_verdict(MANIFEST, cms_der, [pki.root.cert], crl, LATER, None) is None
    assert verify(MANIFEST, cms_der, pki, at=LATER).trusted


def test_split_finds_the_pieces_of_our_own_signatures(pki: Pki) -> None:
    cms_der = sign(pki.signer, pki)
    pieces = hotpath.split(cms_der)
    signed_data = asn1_cms.ContentInfo.load(cms_der)["content"]
    signer_info = signed_data["signer_infos"][0]

    assert pieces is not None
    assert signed_data["certificates"].dump() == pieces.certificates
    assert signer_info["signed_attrs"].dump() == pieces.signed_attributes
    assert signer_info["signature_algorithm"].dump() == pieces.signature_algorithm
    assert signer_info["signature"].dump() == pieces.signature
    assert hotpath.split(cms_der + b"\x00") is None  # trailing bytes
    assert hotpath.split(cms_der[:-1]) is None  # truncated


def test_threads_signing_and_verifying_at_once_agree(pki: Pki) -> None:
    # Given a signer nobody has used yet in this process, and eight threads
    fresh = issue(pki.root)
    crl = [pki.crl.public_bytes(cms.Encoding.DER)]

    def work(n: int) -> tuple[bytes, bool]:
        manifest = MANIFEST.replace(b'"revision":2', f'"revision":{n % 3}'.encode())
        cms_der = sign(fresh, pki, manifest=manifest)
        verdict = verification.verify_manifest_signature(
            manifest, cms_der, trust_roots=[pki.root.cert], crls=crl, at=LATER
        )
        return cms_der, verdict.trusted

    # When they all sign and verify at once (templates and remembered signers racing)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(48)))

    # Then every signature verifies, and equal manifests got equal bytes (RSA)
    assert all(trusted for _der, trusted in results)
    by_revision: dict[int, set[bytes]] = {}
    for n, (der, _trusted) in enumerate(results):
        by_revision.setdefault(n % 3, set()).add(der)
    assert [1, 1, 1] == [len(v) for v in by_revision.values()]
    assert 1 <= len(verification._trusted_signers) <= 2


class _CrlWithoutNextUpdate:
    next_update_utc = None

    def get_revoked_certificate_by_serial_number(self, serial: int) -> None:
        return None


def test_a_crl_without_a_next_update_is_never_relied_on(pki: Pki) -> None:
    signed_data = asn1_cms.ContentInfo.load(sign(pki.signer, pki))["content"]
    path = [pki.root.cert, pki.signer.cert]
    signer = describe(pki.signer.cert)

    kept = hotpath.trusted_signer(signed_data, pki.signer.cert, path, [pki.crl], signer)
    dropped = hotpath.trusted_signer(
        signed_data,
        pki.signer.cert,
        path,
        [pki.crl, _CrlWithoutNextUpdate()],  # type: ignore[list-item]
        signer,
    )

    assert kept is not None and kept.valid_until == pki.crl.next_update_utc
    assert dropped is None
