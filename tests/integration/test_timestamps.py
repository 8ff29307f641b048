"""RFC 3161 timestamps of a signature: asked of a TSA on loopback, embedded, verified.

The TSA is real HTTP on 127.0.0.1 (``tests.tsa``) signing with pyHanko's DummyTimeStamper
under a certificate of the test root with the critical extended key usage timeStamping.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import tsp
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.timestamps import (
    TimestampUnavailable,
    embedded_token,
    request_token,
    signature_value,
    verify_token,
    with_timestamp,
)
from congvan.states.errors import (
    CertificateExpired,
    SignatureError,
    SignatureMalformed,
    SigningTimeInvalid,
    TimestampInvalid,
)
from tests.integration.test_cms import (
    DAY,
    MANIFEST,
    NOW,
    OPENSSL,
    SIGNER,
    TAMPERED,
    Pki,
    make_pki,
    make_root,
    publish_crl,
    sign,
    sub_ca,
    verify,
)
from tests.tools import verify_with_openssl
from tests.tsa import (
    ClockedTimeStamper,
    LoopbackTsa,
    TsaMaterial,
    closed_port_url,
    issue_tsa,
    start_tsa,
)

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def tsa(pki: Pki) -> Iterator[LoopbackTsa]:
    """A TSA of the trusted root, whose clock stands at NOW."""
    material = issue_tsa(pki.root.cert, pki.root.key, now=NOW)
    with start_tsa(material, lambda: NOW) as server:
        yield server


def stamp(url: str, cms_der: bytes) -> bytes:
    return request_token(url, signature_value(cms_der), timeout=TIMEOUT)


# -- the verdict rests on the token --------------------------------------------------------


def test_without_a_token_the_verdict_rests_on_the_time_the_signer_claims(pki: Pki) -> None:
    verdict = verify(MANIFEST, sign(pki.signer, pki), pki)

    assert ("claimed", None, None) == (
        verdict.time_source,
        verdict.timestamp,
        verdict.timestamp_authority,
    )


def test_a_token_from_the_tsa_dates_the_signature(pki: Pki, tsa: LoopbackTsa) -> None:
    # Given our signature and a token the TSA made over its signature value
    cms_der = sign(pki.signer, pki)
    token = stamp(tsa.url, cms_der)

    # When it is verified with the token beside it
    verdict = verify(MANIFEST, cms_der, pki, timestamp_token=token, expected_signer=SIGNER)

    # Then the verdict rests on the token's time and names the authority
    assert ("timestamp", NOW, "congvan test TSA") == (
        verdict.time_source,
        verdict.timestamp,
        verdict.timestamp_authority,
    )
    assert verdict.signer_matches
    # and the request the TSA answered asked for the SHA-256 of the signature value
    request = tsp.TimeStampReq.load(tsa.answered[-1])
    imprint = request["message_imprint"]
    assert ("sha256", hashlib.sha256(signature_value(cms_der)).digest()) == (
        imprint["hash_algorithm"]["algorithm"].native,
        imprint["hashed_message"].native,
    )
    assert request["nonce"].native is not None


def test_an_embedded_token_is_read_back_and_used(pki: Pki, tsa: LoopbackTsa) -> None:
    cms_der = sign(pki.signer, pki)
    token = stamp(tsa.url, cms_der)

    stamped = with_timestamp(cms_der, token)

    assert token == embedded_token(stamped)
    assert embedded_token(cms_der) is None
    assert signature_value(cms_der) == signature_value(stamped)
    verdict = verify(MANIFEST, stamped, pki)
    assert ("timestamp", NOW) == (verdict.time_source, verdict.timestamp)
    with pytest.raises(SignatureError):
        verify(TAMPERED, stamped, pki)


def test_a_token_over_another_signature_is_invalid(pki: Pki, tsa: LoopbackTsa) -> None:
    other = stamp(tsa.url, sign(pki.signer, pki, manifest=TAMPERED))

    with pytest.raises(TimestampInvalid, match="something else"):
        verify(MANIFEST, sign(pki.signer, pki), pki, timestamp_token=other)
    with pytest.raises(TimestampInvalid):
        verify(MANIFEST, with_timestamp(sign(pki.signer, pki), other), pki)


def test_a_token_from_a_tsa_nobody_trusts_is_invalid(pki: Pki) -> None:
    outsider = make_root("Outsider TSA Root")
    material = issue_tsa(outsider.cert, outsider.key, now=NOW)  # type: ignore[arg-type]
    cms_der = sign(pki.signer, pki)
    with start_tsa(material, lambda: NOW) as server:
        token = stamp(server.url, cms_der)

    with pytest.raises(TimestampInvalid, match="trusted root") as raised:
        verify(MANIFEST, cms_der, pki, timestamp_token=token)
    assert "timestamp_invalid" == raised.value.code


def test_a_tsa_a_ca_held_here_issued_is_trusted_through_it(pki: Pki) -> None:
    # Given a TSA whose certificate a CA under the trusted root issued, its tokens carrying
    # the TSA's certificate alone
    issuing = sub_ca(pki.root)
    material = issue_tsa(issuing.cert, issuing.key, now=NOW)
    cms_der = sign(pki.signer, pki)
    with start_tsa(material, lambda: NOW) as server:
        token = stamp(server.url, cms_der)
    crls = [pki.crl, publish_crl(issuing, [])]

    # Then, that CA not held, the token chains to nothing trusted
    with pytest.raises(TimestampInvalid, match="trusted root"):
        verify(MANIFEST, cms_der, pki, timestamp_token=token, crls=crls)
    # And held (a link of the path, never a root), the token dates the signature, as the
    # signature's own path would pass through it
    verdict = verify(
        MANIFEST, cms_der, pki, timestamp_token=token, crls=crls, intermediates=[issuing.cert]
    )
    assert ("timestamp", NOW) == (verdict.time_source, verdict.timestamp)


@pytest.mark.parametrize(
    "usage",
    [
        {"eku_critical": False},
        {"eku": [ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING]},
    ],
    ids=["not-critical", "not-alone"],
)
def test_a_tsa_certificate_without_the_critical_timestamping_usage_is_refused(
    pki: Pki, usage: dict[str, object]
) -> None:
    material = issue_tsa(pki.root.cert, pki.root.key, now=NOW, **usage)  # type: ignore[arg-type]
    cms_der = sign(pki.signer, pki)
    with start_tsa(material, lambda: NOW) as server:
        token = stamp(server.url, cms_der)

    with pytest.raises(TimestampInvalid, match="timeStamping"):
        verify(MANIFEST, cms_der, pki, timestamp_token=token)


def test_a_token_judges_the_certificate_at_its_time_not_now(pki: Pki) -> None:
    # Given a signature made while the certificate was valid, stamped then
    then = NOW - 40 * DAY
    material = issue_tsa(pki.root.cert, pki.root.key, now=then)
    cms_der = sign(pki.expired, pki, at=then)
    with start_tsa(material, lambda: then) as server:
        token = stamp(server.url, cms_der)

    # When it is verified today, after the certificate expired
    verdict = verify(MANIFEST, cms_der, pki, at=NOW, timestamp_token=token)

    # Then it holds on the token's time; without the token it does not
    assert (True, then) == (verdict.valid_at_signing_time, verdict.timestamp)
    with pytest.raises(CertificateExpired):
        verify(MANIFEST, cms_der, pki, at=NOW)


def test_a_signing_time_claimed_after_the_token_is_refused(pki: Pki, tsa: LoopbackTsa) -> None:
    later = NOW + timedelta(hours=1)
    cms_der = sign(pki.signer, pki, at=later)
    token = stamp(tsa.url, cms_der)  # the TSA saw it at NOW

    with pytest.raises(SigningTimeInvalid):
        verify(MANIFEST, cms_der, pki, at=later, timestamp_token=token)


def test_a_damaged_token_is_invalid(pki: Pki, tsa: LoopbackTsa) -> None:
    cms_der = sign(pki.signer, pki)
    token = bytearray(stamp(tsa.url, cms_der))
    token[-5] ^= 0xFF  # inside the TSA's signature value

    with pytest.raises(TimestampInvalid):
        verify(MANIFEST, cms_der, pki, timestamp_token=bytes(token))
    with pytest.raises(TimestampInvalid, match="malformed"):
        verify(MANIFEST, cms_der, pki, timestamp_token=b"\x30\x03\x02\x01\x01")


# -- asking the TSA ----------------------------------------------------------------------


def mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def answering(
    material: TsaMaterial, change: Callable[[tsp.TimeStampReq, tsp.TimeStampResp], bytes]
) -> httpx.MockTransport:
    stamper = ClockedTimeStamper(material, lambda: NOW)

    def handle(request: httpx.Request) -> httpx.Response:
        req = tsp.TimeStampReq.load(request.content)
        return httpx.Response(200, content=change(req, stamper.request_tsa_response(req)))

    return mock(handle)


def test_a_tsa_that_is_down_is_unavailable_not_an_error_of_the_signature() -> None:
    with pytest.raises(TimestampUnavailable, match="unreachable"):
        request_token(closed_port_url(), b"signature", timeout=TIMEOUT)


def test_a_refusal_a_wrong_nonce_or_imprint_is_unavailable(pki: Pki) -> None:
    material = issue_tsa(pki.root.cert, pki.root.key, now=NOW)

    def refuse(_req: tsp.TimeStampReq, _resp: tsp.TimeStampResp) -> bytes:
        return bytes.fromhex("3005300302010" + "2")  # status rejection, no token

    def other_nonce(req: tsp.TimeStampReq, _resp: tsp.TimeStampResp) -> bytes:
        changed = tsp.TimeStampReq.load(req.dump())
        changed["nonce"] = req["nonce"].native + 1
        return ClockedTimeStamper(material, lambda: NOW).request_tsa_response(changed).dump()

    def other_imprint(req: tsp.TimeStampReq, _resp: tsp.TimeStampResp) -> bytes:
        changed = tsp.TimeStampReq.load(req.dump())
        changed["message_imprint"] = {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": bytes(32),
        }
        return ClockedTimeStamper(material, lambda: NOW).request_tsa_response(changed).dump()

    for change, message in [
        (refuse, "refused"),
        (other_nonce, "nonce"),
        (other_imprint, "something else"),
    ]:
        with pytest.raises(TimestampUnavailable, match=message):
            request_token(
                "http://tsa.invalid/",
                b"signature",
                timeout=TIMEOUT,
                transport=answering(material, change),
            )
    with pytest.raises(TimestampUnavailable, match="503"):
        request_token(
            "http://tsa.invalid/",
            b"signature",
            timeout=TIMEOUT,
            transport=mock(lambda _r: httpx.Response(503)),
        )


# -- openssl agrees ----------------------------------------------------------------------


@pytest.fixture
def exported(pki: Pki, tmp_path: Path) -> Path:
    (tmp_path / "manifest.json").write_bytes(MANIFEST)
    (tmp_path / "ca.pem").write_bytes(pki.root.cert.public_bytes(Encoding.PEM))
    return tmp_path


def openssl_ts_verify(
    folder: Path, token: bytes, digest: bytes
) -> subprocess.CompletedProcess[str]:
    (folder / "token.der").write_bytes(token)
    return subprocess.run(
        [
            str(OPENSSL),
            "ts",
            "-verify",
            "-token_in",
            "-in",
            str(folder / "token.der"),
            "-digest",
            digest.hex(),
            "-CAfile",
            str(folder / "ca.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_openssl_agrees_with_our_verdict_on_a_token(
    pki: Pki, tsa: LoopbackTsa, exported: Path
) -> None:
    cms_der = sign(pki.signer, pki)
    token = stamp(tsa.url, cms_der)
    digest = hashlib.sha256(signature_value(cms_der)).digest()

    ours = verify_token(
        token, signature_value(cms_der), trust_roots=[pki.root.cert], crls=[pki.crl]
    )
    accepted = openssl_ts_verify(exported, token, digest)
    refused = openssl_ts_verify(exported, token, hashlib.sha256(b"another").digest())
    shown = subprocess.run(
        [str(OPENSSL), "ts", "-reply", "-token_in", "-in", str(exported / "token.der"), "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert 0 == accepted.returncode, accepted.stdout + accepted.stderr
    assert 0 != refused.returncode
    assert NOW == ours.gen_time
    assert f"Time stamp: {NOW.strftime('%b %e %H:%M:%S %Y GMT')}" in shown


def test_openssl_accepts_our_signature_with_the_token_embedded(
    pki: Pki, tsa: LoopbackTsa, exported: Path
) -> None:
    cms_der = sign(pki.signer, pki)
    (exported / "sig.p7s").write_bytes(with_timestamp(cms_der, stamp(tsa.url, cms_der)))

    accepted = verify_with_openssl(exported)

    assert 0 == accepted.returncode, accepted.stderr.decode()


def test_a_token_proves_nothing_about_a_signature_time_in_the_future(pki: Pki) -> None:
    # A token's genTime outside the TSA certificate's validity is not trusted.
    material = issue_tsa(pki.root.cert, pki.root.key, now=NOW)
    far = NOW + 400 * DAY
    cms_der = sign_manifest(
        MANIFEST, key=pki.signer.key, cert=pki.signer.cert, chain=[], signing_time=NOW
    )
    with start_tsa(material, lambda: far) as server:
        token = stamp(server.url, cms_der)

    with pytest.raises(TimestampInvalid):
        verify(MANIFEST, cms_der, pki, timestamp_token=token)


# -- a token is a strict CMS signature, one to a signature ---------------------------------


def with_unsigned(cms_der: bytes, values_per_attribute: list[list[bytes]]) -> bytes:
    """The CMS with one signature timestamp attribute for each list of tokens given."""
    content_info = asn1_cms.ContentInfo.load(cms_der)
    signed_data = content_info["content"]
    signer_info = signed_data["signer_infos"][0]
    signer_info["unsigned_attrs"] = asn1_cms.CMSAttributes(
        [
            asn1_cms.CMSAttribute(
                {
                    "type": "signature_time_stamp_token",
                    "values": [asn1_cms.ContentInfo.load(t) for t in tokens],
                }
            )
            for tokens in values_per_attribute
        ]
    )
    signed_data["signer_infos"] = asn1_cms.SignerInfos([signer_info])
    content_info["content"] = signed_data
    return bytes(content_info.dump(force=True))


@pytest.mark.parametrize("shape", ["two attributes", "two tokens in one"])
def test_a_signature_carrying_two_timestamps_is_malformed(
    pki: Pki, tsa: LoopbackTsa, shape: str
) -> None:
    # Given a signature and two tokens over it (each verifier might date it by either)
    cms_der = sign(pki.signer, pki)
    first, second = stamp(tsa.url, cms_der), stamp(tsa.url, cms_der)
    assert verify(MANIFEST, with_timestamp(cms_der, first), pki).timestamp == NOW
    layout = [[first], [second]] if shape == "two attributes" else [[first, second]]

    # When both travel in it, then it is refused, whichever way they are put
    with pytest.raises(SignatureMalformed, match=r"twice|tokens instead of one"):
        verify(MANIFEST, with_unsigned(cms_der, layout), pki)


def test_a_token_not_in_distinguished_encoding_is_refused(pki: Pki, tsa: LoopbackTsa) -> None:
    # Given a token whose outer length is written in a longer form than needed
    cms_der = sign(pki.signer, pki)
    token = stamp(tsa.url, cms_der)
    assert token[1] == 0x82  # SEQUENCE, two length bytes
    loose = token[:1] + b"\x83\x00" + token[2:]

    # When it is given beside the signature, then it is refused
    with pytest.raises(TimestampInvalid, match="malformed"):
        verify(MANIFEST, cms_der, pki, timestamp_token=loose)
