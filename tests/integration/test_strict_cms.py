"""Only strict DER CMS with accepted algorithms verifies; damage is refused, never a crash.

Each rule is provoked on a signature that is otherwise valid, and compared with
``openssl cms -verify`` where openssl judges it: openssl reads BER and SHA-1, so it
accepts some of what is refused here, but nothing accepted here may be refused by it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import algos, core
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs7,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from congvan.actions.signing.strict import check_strict_cms
from congvan.actions.signing.verification import _trusted_signers
from congvan.states.errors import (
    CertificateProfileInvalid,
    SignatureError,
    SignatureMalformed,
    WeakAlgorithm,
)
from tests.integration.test_cms import (
    MANIFEST,
    Issued,
    Pki,
    issue,
    key_usage,
    make_pki,
    sign,
    verify,
)
from tests.tools import verify_with_openssl

OPENSSL = shutil.which("openssl") or "openssl"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def good(pki: Pki) -> bytes:
    return sign(pki.signer, pki)


@dataclass(frozen=True)
class OpenSsl:
    """``openssl cms -verify`` over MANIFEST with the test root as the only CA."""

    folder: Path

    def accepts(self, cms_der: bytes) -> bool:
        (self.folder / "sig.p7s").write_bytes(cms_der)
        done = verify_with_openssl(self.folder, "-purpose", "any")
        return done.returncode == 0

    def sign(self, who: Issued, digest: str) -> bytes:
        """A detached signature by ``who`` made with ``openssl cms -sign -md digest``."""
        key = who.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        (self.folder / "signer.key").write_bytes(key)
        (self.folder / "signer.pem").write_bytes(who.cert.public_bytes(Encoding.PEM))
        subprocess.run(
            [
                OPENSSL,
                "cms",
                "-sign",
                "-binary",
                "-md",
                digest,
                "-in",
                str(self.folder / "manifest.json"),
                "-signer",
                str(self.folder / "signer.pem"),
                "-inkey",
                str(self.folder / "signer.key"),
                "-certfile",
                str(self.folder / "ca.pem"),
                "-outform",
                "DER",
                "-out",
                str(self.folder / "signed.p7s"),
            ],
            capture_output=True,
            check=True,
        )
        return (self.folder / "signed.p7s").read_bytes()


@pytest.fixture(scope="module")
def openssl(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> OpenSsl:
    folder = tmp_path_factory.mktemp("openssl")
    (folder / "manifest.json").write_bytes(MANIFEST)
    (folder / "ca.pem").write_bytes(pki.root.cert.public_bytes(Encoding.PEM))
    return OpenSsl(folder)


# -- making signatures that break one rule --------------------------------------------------


@dataclass
class Node:
    """One element of a DER tree: its identifier octet and either children or a value."""

    identifier: int
    children: list[Node] | None
    value: bytes = b""
    length_form: str = "minimal"  # or "long" (one extra zero octet) or "indefinite"

    def encode(self) -> bytes:
        contents = (
            self.value if self.children is None else b"".join(c.encode() for c in self.children)
        )
        if self.length_form == "indefinite":
            return bytes((self.identifier, 0x80)) + contents + b"\0\0"
        size = len(contents)
        length = size.to_bytes(max(1, (size.bit_length() + 7) // 8), "big")
        if self.length_form == "long":
            return bytes((self.identifier, 0x81 + len(length), 0)) + length + contents
        if size < 0x80:
            return bytes((self.identifier, size)) + contents
        return bytes((self.identifier, 0x80 | len(length))) + length + contents


def tree(der: bytes) -> Node:
    """The DER tree of ``der`` (constructed elements split, primitives kept whole)."""

    def parse(data: bytes, position: int) -> tuple[Node, int]:
        identifier = data[position]
        size, position = data[position + 1], position + 2
        if size & 0x80:
            count = size & 0x7F
            size = int.from_bytes(data[position : position + count], "big")
            position += count
        end = position + size
        if not identifier & 0x20:
            return Node(identifier, None, data[position:end]), end
        children = []
        while position < end:
            child, position = parse(data, position)
            children.append(child)
        return Node(identifier, children), end

    return parse(der, 0)[0]


def at(node: Node, *path: int) -> Node:
    for index in path:
        assert node.children is not None
        node = node.children[index]
    return node


# ContentInfo → [0] → SignedData → its fields; SignerInfo inside the last SET.
SIGNED_DATA = (1, 0)
CERTIFICATES = (*SIGNED_DATA, 3)
SIGNER_INFO = (*SIGNED_DATA, 4, 0)


def with_length_form(der: bytes, path: tuple[int, ...], form: str) -> bytes:
    root = tree(der)
    at(root, *path).length_form = form
    return root.encode()


def with_digest_algorithms(der: bytes, *names: str) -> bytes:
    content_info = asn1_cms.ContentInfo.load(der)
    content_info["content"]["digest_algorithms"] = [
        algos.DigestAlgorithm({"algorithm": name}) for name in names
    ]
    return bytes(content_info.dump())


def with_broken_certificate(der: bytes, old: bytes, new: bytes) -> bytes:
    """``der`` with the first ``old`` in an embedded certificate made ``new``."""
    root = tree(der)
    certificates = at(root, *CERTIFICATES).children
    assert certificates is not None
    index = next(i for i, c in enumerate(certificates) if old in c.encode())
    certificates[index] = tree(certificates[index].encode().replace(old, new, 1))
    return root.encode()


def pkcs7_signed(who: Issued, pki: Pki, algorithm: hashes.HashAlgorithm) -> bytes:
    """A detached signature by OpenSSL's PKCS#7 builder (through ``cryptography``)."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(MANIFEST)
        .add_signer(who.cert, who.key, algorithm)  # type: ignore[arg-type]
        .add_certificate(pki.root.cert)
        .sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    )


def unsorted_attributes(who: Issued, good: bytes) -> bytes:
    """``good`` with its signed attributes out of DER order, signed so by ``who`` (RSA)."""
    root = tree(good)
    signer_info = at(root, *SIGNER_INFO)
    attributes, signature = at(signer_info, 3), at(signer_info, 5)
    assert attributes.children is not None and isinstance(who.key, rsa.RSAPrivateKey)
    attributes.children.reverse()
    signed = Node(0x31, attributes.children).encode()  # [0] IMPLICIT on the wire, SET signed
    signature.value = who.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    return root.encode()


def with_signature_algorithm(der: bytes, name: str) -> bytes:
    content_info = asn1_cms.ContentInfo.load(der)
    signer_info = content_info["content"]["signer_infos"][0]
    signer_info["signature_algorithm"] = algos.SignedDigestAlgorithm({"algorithm": name})
    return bytes(content_info.dump())


def with_two_signers(der: bytes) -> bytes:
    root = tree(der)
    signer_infos = at(root, *SIGNED_DATA, 4)
    assert signer_infos.children is not None
    signer_infos.children.append(signer_infos.children[0])
    return root.encode()


def with_attributes(der: bytes, who: Issued, change: Callable[[list[bytes]], list[bytes]]) -> bytes:
    """``der`` with its signed attributes (each one's DER) changed by ``change``, sorted as
    DER sorts a SET OF, and signed so by ``who`` (RSA): strict but for what changed."""
    root = tree(der)
    signer_info = at(root, *SIGNER_INFO)
    attributes, signature = at(signer_info, 3), at(signer_info, 5)
    assert attributes.children is not None and isinstance(who.key, rsa.RSAPrivateKey)
    changed = sorted(change([child.encode() for child in attributes.children]))
    attributes.children = [tree(encoded) for encoded in changed]
    signed = Node(0x31, attributes.children).encode()  # [0] IMPLICIT on the wire, SET signed
    signature.value = who.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    return root.encode()


def signing_time_attribute(moment: datetime, *more: datetime) -> bytes:
    values = [asn1_cms.Time({"utc_time": m}) for m in (moment, *more)]
    return bytes(asn1_cms.CMSAttribute({"type": "signing_time", "values": values}).dump())


def with_content_type(der: bytes, who: Issued, content_type: str) -> bytes:
    """``der`` declaring another eContentType, its content-type attribute saying the same."""
    content_info = asn1_cms.ContentInfo.load(der)
    content_info["content"]["encap_content_info"] = {"content_type": content_type}
    declared = bytes(
        asn1_cms.CMSAttribute({"type": "content_type", "values": [content_type]}).dump()
    )
    oid = bytes(asn1_cms.CMSAttributeType("content_type").dump())

    def swap(attributes: list[bytes]) -> list[bytes]:
        return [declared if a[2 : 2 + len(oid)] == oid else a for a in attributes]

    return with_attributes(bytes(content_info.dump(force=True)), who, swap)


def refusal(cms_der: bytes, pki: Pki, *, known: bool) -> SignatureError:
    """The error verifying ``cms_der`` raises, with the signer remembered or not."""
    if known:
        verify(MANIFEST, sign(pki.signer, pki), pki)  # the quick path knows this signer now
    else:
        _trusted_signers.clear()
    with pytest.raises(SignatureError) as caught:
        verify(MANIFEST, cms_der, pki)
    return caught.value


@pytest.fixture(params=["full", "known signer"])
def known(request: pytest.FixtureRequest) -> Iterator[bool]:
    yield request.param == "known signer"
    _trusted_signers.clear()


# -- the rules -----------------------------------------------------------------------------


def test_our_signatures_and_openssls_are_strict(pki: Pki, good: bytes, openssl: OpenSsl) -> None:
    check_strict_cms(good)
    check_strict_cms(sign(pki.ec_signer, pki))
    check_strict_cms(pkcs7_signed(pki.signer, pki, hashes.SHA256()))
    verify(MANIFEST, pkcs7_signed(pki.signer, pki, hashes.SHA512()), pki)
    assert openssl.accepts(good)


def test_sha1_is_a_weak_algorithm(pki: Pki, openssl: OpenSsl, known: bool) -> None:
    # Given the same signer's signature made by openssl with SHA-1 (which it still takes)
    upload = openssl.sign(pki.signer, "sha1")
    assert openssl.accepts(upload)
    verify(MANIFEST, openssl.sign(pki.signer, "sha256"), pki)

    # Then it is refused for its algorithm, not for anything else
    refused = refusal(upload, pki, known=known)
    assert WeakAlgorithm is type(refused), refused.message
    assert "1.3.14.3.2.26" == refused.details["algorithm"]


def test_a_weak_algorithm_beside_the_signers_digest_is_refused(pki: Pki, good: bytes) -> None:
    upload = with_digest_algorithms(good, "sha1", "sha256")

    assert WeakAlgorithm is type(refusal(upload, pki, known=False))


@pytest.mark.parametrize("listed", [("sha384",), ("sha512", "sha384"), ()])
def test_digest_algorithms_must_list_the_signers_digest(
    pki: Pki, good: bytes, openssl: OpenSsl, known: bool, listed: tuple[str, ...]
) -> None:
    # Given a valid signature whose digestAlgorithms lacks SHA-256, the signer's digest
    upload = with_digest_algorithms(good, *listed)

    # Then it is malformed, and openssl refuses it too
    refused = refusal(upload, pki, known=known)
    assert SignatureMalformed is type(refused), refused.message
    assert not openssl.accepts(upload)


LENGTHS = {
    "indefinite ContentInfo": ((), "indefinite"),
    "long ContentInfo": ((), "long"),
    "indefinite SignedData": (SIGNED_DATA, "indefinite"),
    "long certificates": (CERTIFICATES, "long"),
    "long SignerInfo": (SIGNER_INFO, "long"),
    "long signed attributes": ((*SIGNER_INFO, 3), "long"),
    "long signature value": ((*SIGNER_INFO, 5), "long"),
    "long digest algorithm": ((*SIGNER_INFO, 2), "long"),
}


@pytest.mark.parametrize("case", LENGTHS)
def test_ber_lengths_are_malformed(pki: Pki, good: bytes, known: bool, case: str) -> None:
    # Given a valid signature with one length in a BER form (openssl reads these)
    path, form = LENGTHS[case]
    upload = with_length_form(good, path, form)
    assert upload != good

    # Then it is malformed, also when the quick path knows the signer
    refused = refusal(upload, pki, known=known)
    assert SignatureMalformed is type(refused), refused.message


CERTIFICATE_DAMAGE = {
    # The signer certificate's TBSCertificate with a non-minimal length
    "length": None,
    # cA TRUE as 01 inside the root's basicConstraints extension (an OCTET STRING's DER)
    "boolean in an extension": (b"\x30\x03\x01\x01\xff", b"\x30\x03\x01\x01\x01"),
    # The root's organisation as an OCTET STRING instead of a UTF8String
    "name value not a string": (b"\x0c\x10Congvan Test PKI", b"\x04\x10Congvan Test PKI"),
    # ... and as a UTF8String that is not UTF-8
    "name not utf-8": (b"\x0c\x10Congvan Test PKI", b"\x0c\x10Congvan Test PK\xff"),
}


@pytest.mark.parametrize("case", CERTIFICATE_DAMAGE)
def test_broken_der_inside_an_embedded_certificate_is_malformed(
    pki: Pki, good: bytes, openssl: OpenSsl, known: bool, case: str
) -> None:
    change = CERTIFICATE_DAMAGE[case]
    if change is None:
        upload = with_length_form(good, (*CERTIFICATES, 1, 0), "long")
    else:
        upload = with_broken_certificate(good, *change)

    refused = refusal(upload, pki, known=known)
    assert SignatureMalformed is type(refused), refused.message
    if case != "boolean in an extension":  # openssl reads BER there
        assert not openssl.accepts(upload)


def test_signed_attributes_out_of_order_are_malformed(
    pki: Pki, good: bytes, openssl: OpenSsl, known: bool
) -> None:
    # Given a signer who signed its attributes unsorted (openssl verifies them as they come)
    upload = unsorted_attributes(pki.signer, good)
    assert openssl.accepts(upload)

    refused = refusal(upload, pki, known=known)
    assert SignatureMalformed is type(refused), refused.message


def test_a_signature_algorithm_hashing_another_digest_is_malformed(pki: Pki, good: bytes) -> None:
    # openssl hashes with the digest algorithm and ignores the one the signature names
    upload = with_signature_algorithm(good, "sha384_rsa")

    assert SignatureMalformed is type(refusal(upload, pki, known=False))


def test_algorithm_protection_must_name_the_signature_algorithm(pki: Pki, good: bytes) -> None:
    # rsaEncryption with SHA-256 is what openssl writes, but the signed attribute says
    # sha256WithRSAEncryption
    upload = with_signature_algorithm(good, "rsassa_pkcs1v15")

    refused = refusal(upload, pki, known=False)
    assert SignatureMalformed is type(refused)
    assert "algorithm protection" in refused.message


def test_a_weak_signature_algorithm_is_refused(pki: Pki, good: bytes) -> None:
    upload = with_signature_algorithm(good, "sha1_rsa")

    assert WeakAlgorithm is type(refusal(upload, pki, known=False))


def test_two_signers_are_malformed(pki: Pki, good: bytes) -> None:
    refused = refusal(with_two_signers(good), pki, known=False)

    assert SignatureMalformed is type(refused)
    assert 2 == refused.details["signers"]


@pytest.mark.parametrize("case", ["two attributes", "two values in one"])
def test_a_signed_attribute_given_twice_is_malformed(
    pki: Pki, good: bytes, openssl: OpenSsl, known: bool, case: str
) -> None:
    # RFC 5652 11.3: one signing time, one value; openssl refuses a second, and a verifier
    # that reads the first one would let the signer claim whichever time sorts first
    earlier = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    if case == "two attributes":
        upload = with_attributes(good, pki.signer, lambda a: [*a, signing_time_attribute(earlier)])
    else:
        oid = bytes(asn1_cms.CMSAttributeType("signing_time").dump())
        now = datetime.now(UTC).replace(microsecond=0)

        def two_values(attributes: list[bytes]) -> list[bytes]:
            kept = [a for a in attributes if a[2 : 2 + len(oid)] != oid]
            return [*kept, signing_time_attribute(now, earlier)]

        upload = with_attributes(good, pki.signer, two_values)
    assert not openssl.accepts(upload)

    refused = refusal(upload, pki, known=known)
    assert SignatureMalformed is type(refused), refused.message
    assert "signing_time" in refused.message


def test_a_signing_time_of_this_century_as_a_generalized_time_is_malformed(
    pki: Pki, good: bytes, known: bool
) -> None:
    # RFC 5652 11.3: 1950 through 2049 is a UTCTime; a GeneralizedTime is a second encoding
    # of the same moment (openssl reads either)
    oid = bytes(asn1_cms.CMSAttributeType("signing_time").dump())
    now = datetime.now(UTC).replace(microsecond=0)
    generalized = bytes(
        asn1_cms.CMSAttribute(
            {"type": "signing_time", "values": [asn1_cms.Time({"generalized_time": now})]}
        ).dump()
    )

    def swap(attributes: list[bytes]) -> list[bytes]:
        return [generalized if a[2 : 2 + len(oid)] == oid else a for a in attributes]

    refused = refusal(with_attributes(good, pki.signer, swap), pki, known=known)
    assert SignatureMalformed is type(refused), refused.message
    assert "not a UTCTime" in refused.message


def test_every_other_signed_attribute_given_twice_is_malformed(pki: Pki, good: bytes) -> None:
    attributes = [child.encode() for child in at(tree(good), *SIGNER_INFO, 3).children or ()]
    for twice in attributes:
        upload = with_attributes(good, pki.signer, lambda a, t=twice: [*a, t])

        refused = refusal(upload, pki, known=False)
        assert SignatureMalformed is type(refused), refused.message


@pytest.mark.parametrize("content_type", ["tst_info", "authenticated_data", "signed_data"])
def test_signed_content_other_than_data_is_malformed(
    pki: Pki, good: bytes, known: bool, content_type: str
) -> None:
    # A signature the agency's key made over another kind of content (a timestamp token's
    # TSTInfo, say) is not a signature of the bytes it is checked against as data
    upload = with_content_type(good, pki.signer, content_type)

    refused = refusal(upload, pki, known=known)
    assert SignatureMalformed is type(refused), refused.message
    assert "content" in refused.message


# -- damage at any byte ----------------------------------------------------------------------

Mutation = tuple[str, int, int]


def mutate(der: bytes, mutation: Mutation) -> bytes:
    kind, position, byte = mutation
    position %= len(der)
    if kind == "flip":
        return der[:position] + bytes((der[position] ^ (1 << (byte % 8)),)) + der[position + 1 :]
    if kind == "replace":
        return der[:position] + bytes((byte,)) + der[position + 1 :]
    if kind == "insert":
        return der[:position] + bytes((byte,)) + der[position:]
    if kind == "delete":
        return der[:position] + der[position + 1 :]
    return der[:position]  # truncate


MUTATIONS: st.SearchStrategy[Mutation] = st.tuples(
    st.sampled_from(["flip", "replace", "insert", "delete", "truncate"]),
    st.integers(min_value=0, max_value=1 << 16),
    st.integers(min_value=0, max_value=255),
)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(mutation=MUTATIONS, quick=st.booleans())
def test_damage_is_refused_as_a_signature_error_and_never_accepted_against_openssl(
    pki: Pki, good: bytes, openssl: OpenSsl, mutation: Mutation, quick: bool
) -> None:
    # Given a valid signature damaged at one byte, the signer remembered or not
    damaged = mutate(good, mutation)
    if quick:
        verify(MANIFEST, good, pki)
    else:
        _trusted_signers.clear()

    # When it is verified: a SignatureError or a verdict, nothing else
    try:
        verify(MANIFEST, damaged, pki)
    except SignatureError:
        return

    # Then what is accepted, openssl accepts too
    assert openssl.accepts(damaged), mutation


def test_a_changed_copy_of_the_pinned_root_carried_beside_the_signature_is_no_ca(
    pki: Pki, good: bytes, openssl: OpenSsl
) -> None:
    # Given the signature with the copy of the root it carries changed in its issuer's name
    # (what the signature signs does not cover the certificates it carries): its country
    # a UTF8String, not a PrintableString; the same name as compared, other bytes (a
    # NumericString, which holds digits only, cryptography 49 and later refuse to read)
    carried = asn1_cms.ContentInfo.load(good)["content"]["certificates"]
    [root_copy] = [c.chosen for c in carried if c.chosen.subject == c.chosen.issuer]
    der = bytes(root_copy.dump())
    issuer = bytes(root_copy["tbs_certificate"]["issuer"].dump())
    at = good.index(der) + der.index(issuer) + issuer.index(b"\x13\x02VN")
    damaged = good[:at] + b"\x0c" + good[at + 1 :]
    _trusted_signers.clear()

    # Then it verifies under the pinned root, as openssl says (taken for a CA below the
    # root, it made the signer's revocation "unknown")
    verify(MANIFEST, damaged, pki)
    assert openssl.accepts(damaged)


def with_signer_digest(der: bytes, oid: str) -> bytes:
    content_info = asn1_cms.ContentInfo.load(der)
    signer_info = content_info["content"]["signer_infos"][0]
    signer_info["digest_algorithm"] = algos.DigestAlgorithm({"algorithm": oid})
    return bytes(content_info.dump())


def with_subject_as_set(der: bytes) -> bytes:
    """``der`` with its first certificate's subject Name tagged SET instead of SEQUENCE."""
    root = tree(der)
    at(root, *CERTIFICATES, 0, 0, 5).identifier = 0x31
    return root.encode()


# Damage that once escaped pyHanko as AttributeError or ValueError (an HTTP 500).
ONCE_CRASHED = {
    "unknown digest OID": (
        lambda der: with_signer_digest(der, "2.16.840.1.101.3.4.2.9"),
        WeakAlgorithm,
    ),
    "name tagged SET": (with_subject_as_set, SignatureMalformed),
}


@pytest.mark.parametrize("case", ONCE_CRASHED)
def test_damage_that_once_crashed_is_a_signature_error(pki: Pki, good: bytes, case: str) -> None:
    damage, error = ONCE_CRASHED[case]

    assert error is type(refusal(damage(good), pki, known=False))


@pytest.mark.parametrize("kind", ["rsa1024", "p192", "p224"])
def test_a_signers_key_too_weak_to_trust_is_a_weak_algorithm(pki: Pki, kind: str) -> None:
    weak = issue(pki.root, kind=kind)
    with pytest.raises(WeakAlgorithm):
        verify(MANIFEST, sign(weak, pki), pki)


@pytest.mark.parametrize("usage", ["ca", "key_cert_sign", "crl_sign"])
def test_a_ca_certificate_cannot_sign_as_a_person(pki: Pki, usage: str) -> None:
    flags = {"digital_signature": True, "content_commitment": True}
    if usage != "ca":
        flags[usage] = True
    issued = issue(pki.root, ca_flag=usage == "ca", usage=key_usage(**flags))
    with pytest.raises(CertificateProfileInvalid):
        verify(MANIFEST, sign(issued, pki), pki)


def with_key_identifier(der: bytes, who: Issued) -> bytes:
    """``der`` naming its signer by subject key identifier (version 3), not issuer and
    serial: nothing signed changes."""
    content_info = asn1_cms.ContentInfo.load(der)
    signed_data = content_info["content"]
    signer_info = signed_data["signer_infos"][0]
    identifier = x509.SubjectKeyIdentifier.from_public_key(who.cert.public_key()).digest
    signer_info["version"] = "v3"
    signer_info["sid"] = asn1_cms.SignerIdentifier(name="subject_key_identifier", value=identifier)
    signed_data["version"] = "v3"
    signed_data["signer_infos"] = asn1_cms.SignerInfos([signer_info])
    content_info["content"] = signed_data
    return bytes(content_info.dump())


def test_a_key_identifier_sent_in_pieces_is_malformed(pki: Pki, good: bytes) -> None:
    # Given a signature naming its signer by key identifier, strict as it is
    named = with_key_identifier(good, pki.signer)
    check_strict_cms(named)

    # When the identifier ([0] IMPLICIT OCTET STRING) is sent constructed, in two pieces (BER)
    root = tree(named)
    sid = at(root, *SIGNER_INFO, 1)
    assert (sid.identifier, sid.children) == (0x80, None)
    half = len(sid.value) // 2
    pieces = [Node(0x04, None, sid.value[:half]), Node(0x04, None, sid.value[half:])]
    at(root, *SIGNER_INFO).children[1] = Node(0xA0, pieces)  # type: ignore[index]

    # Then it is refused for its bytes, not for the signature (which no byte of it covers)
    with pytest.raises(SignatureMalformed, match="primitive"):
        check_strict_cms(root.encode())
    with pytest.raises(SignatureMalformed):
        verify(MANIFEST, root.encode(), pki)


def with_unsigned(der: bytes, *attributes: asn1_cms.CMSAttribute) -> bytes:
    """``der`` carrying ``attributes`` unsigned: nothing signed changes."""
    content_info = asn1_cms.ContentInfo.load(der)
    signed_data = content_info["content"]
    signer_info = signed_data["signer_infos"][0]
    signer_info["unsigned_attrs"] = asn1_cms.CMSAttributes(list(attributes))
    signed_data["signer_infos"] = asn1_cms.SignerInfos([signer_info])
    content_info["content"] = signed_data
    return bytes(content_info.dump())


def test_an_unsigned_attribute_congvan_does_not_verify_is_malformed(
    pki: Pki, good: bytes, known: bool
) -> None:
    signer_info = asn1_cms.ContentInfo.load(good)["content"]["signer_infos"][0]
    # A countersignature whose signature is zeros, and 30 KB of an unknown kind: both
    # would travel in packages and evidence as if they said something
    forged = asn1_cms.SignerInfo.load(signer_info.dump())
    forged["signature"] = bytes(len(forged["signature"].native))
    countersigned = with_unsigned(
        good, asn1_cms.CMSAttribute({"type": "counter_signature", "values": [forged]})
    )
    unknown = with_unsigned(
        good,
        asn1_cms.CMSAttribute(
            {"type": "1.3.6.1.4.1.99999.1", "values": [core.OctetString(b"\0" * 30_000)]}
        ),
    )
    for upload in (countersigned, unknown):
        refused = refusal(upload, pki, known=known)
        assert SignatureMalformed is type(refused), refused.message
        assert "unsigned attribute" in refused.message

    # while long-term validation data (here the signer's certificate values) is taken
    certificates = asn1_cms.ContentInfo.load(good)["content"]["certificates"]
    values = core.SequenceOf(spec=asn1_cms.Certificate)
    for choice in certificates:
        values.append(choice.chosen)
    carried = with_unsigned(
        good,
        asn1_cms.CMSAttribute(
            {"type": "1.2.840.113549.1.9.16.2.23", "values": [core.Any.load(values.dump())]}
        ),
    )
    verdict = verify(MANIFEST, carried, pki)
    assert (verdict.intact, verdict.valid, verdict.trusted) == (True, True, True)


@pytest.mark.parametrize(
    "upload",
    [b"\x30\x03\x02\x01\x00", b"\x30\x03\x06\x01\x00"],
    ids=["integer where the content type goes", "an empty object identifier"],
)
def test_a_refusal_says_why_in_its_own_words_never_the_parsers(pki: Pki, upload: bytes) -> None:
    # A parser's message names its classes ("Error parsing asn1crypto.cms.ContentType")
    refused = refusal(upload, pki, known=False)
    assert isinstance(refused, SignatureError)
    assert "asn1crypto" not in refused.message and "Error parsing" not in refused.message
    assert "not a detached CMS signature" in refused.message or "malformed" in refused.message
