"""The fast path of ``verification``: what checking one signer's signatures repeats, done once.

pyHanko checks a CMS through asn1crypto object trees in pure Python, about 3 ms a signature,
ten times the signature math itself. Almost all of it is the same for every signature
verified against the same trust roots and CRLs (the certificate path). This module keeps
that part (``template`` does the same for making signatures):

``ChainCache``
    After pyHanko fully verified a signature (integrity, algorithms, signing-certificate,
    certificate path with revocation, key usage), ``TrustedSigner`` records what that
    verdict rested on: the exact bytes of the certificates, signer identifier, algorithm
    identifiers and constant attributes, the signer's public key, and the span of moments
    in which the path stays valid. ``split`` cuts a later CMS into its DER pieces (only
    the one common shape: one signer, certificates, signed and no unsigned attributes),
    and ``quick_verify`` accepts it only when it carries those same bytes and its own
    digest, signing time and signature check out. Neither ever rejects anything: on any
    difference or doubt they answer ``None`` and the caller runs pyHanko's full
    validation, whose answer (and error code) is authoritative.

Why the span is sound: with no CRL listing a certificate of the path, pyHanko's path verdict
depends on the moment only through each certificate's validity and each CRL's next update
(a CRL issued later still speaks about an earlier moment: ``retroactive_revinfo``). A path
with any certificate listed in a given CRL, revoked or on hold, is never cached. A new CRL
has new bytes, so it is a new key and the path is validated again.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import cms as asn1_cms
from asn1crypto.parser import parse
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from congvan.states.certificates import CertificateDescription

from .template import (
    HASHES,
    MESSAGE_DIGEST_OID,
    OCTET_STRING,
    PER_SIGNATURE,
    SET,
    SIGNED_DATA_OID,
    SIGNING_TIME_OID,
    cms_attribute,
    tlv,
)

_SEQUENCE_BYTE, _SET_BYTE, _OCTET_STRING_BYTE = 0x30, 0x31, 0x04
_EXPLICIT_0_BYTE = _IMPLICIT_0_BYTE = 0xA0

_MECHANISMS = {
    # signature algorithm → (hash, whether RSA PKCS#1 v1.5; else ECDSA)
    "sha256_rsa": ("sha256", True),
    "sha384_rsa": ("sha384", True),
    "sha512_rsa": ("sha512", True),
    "sha256_ecdsa": ("sha256", False),
    "sha384_ecdsa": ("sha384", False),
    "sha512_ecdsa": ("sha512", False),
}


@dataclass(frozen=True)
class TrustedSigner:
    """What a full verification established, and the exact bytes it was established for."""

    signed_data_head: bytes  # SignedData version and digestAlgorithms, DER
    certificates: bytes  # SignedData.certificates, DER
    signer_info_head: bytes  # SignerInfo version, sid and digestAlgorithm, DER
    signature_algorithm: bytes
    constant_attributes: frozenset[bytes]  # whole Attribute DERs (content type, ESS, ...)
    hash_name: str
    pkcs1: bool  # RSA PKCS#1 v1.5; else ECDSA
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    not_valid_before: datetime  # the signer's certificate (as ``check_signing_time`` reads)
    not_valid_after: datetime
    valid_from: datetime  # the span of moments in which the path verdict holds
    valid_until: datetime
    signer: CertificateDescription


def trusted_signer(
    signed_data: asn1_cms.SignedData,
    leaf: x509.Certificate,
    path_certificates: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    signer: CertificateDescription,
) -> TrustedSigner | None:
    """The record of a signature pyHanko accepted, or None when it must not be reused.

    ``leaf`` is the signer's certificate; ``path_certificates`` the validated path, trust
    anchor and leaf included.
    """
    public_key = leaf.public_key()
    signer_info = signed_data["signer_infos"][0]
    mechanism = signer_info["signature_algorithm"]["algorithm"].native
    known = _MECHANISMS.get(mechanism)
    digest = signer_info["digest_algorithm"]["algorithm"].native
    if known is None or known[0] != digest or digest not in HASHES:
        return None
    if known[1] != isinstance(public_key, rsa.RSAPublicKey):
        return None
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return None
    if any(crl.next_update_utc is None for crl in crls):
        return None  # how long such a CRL counts is the validator's policy, not its data
    for cert in path_certificates:
        for crl in crls:
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                return None  # listed: the verdict depends on the moment
    types: dict[str, int] = {}
    constant: set[bytes] = set()
    for attribute in signer_info["signed_attrs"]:
        oid = attribute["type"].dotted
        types[oid] = types.get(oid, 0) + 1
        if len(attribute["values"]) != 1:
            return None
        if oid not in PER_SIGNATURE:
            constant.add(attribute.dump())
    if any(count != 1 for count in types.values()) or not types.keys() >= PER_SIGNATURE:
        return None
    return TrustedSigner(
        signed_data_head=signed_data["version"].dump() + signed_data["digest_algorithms"].dump(),
        certificates=signed_data["certificates"].dump(),
        signer_info_head=b"".join(
            signer_info[field].dump() for field in ("version", "sid", "digest_algorithm")
        ),
        signature_algorithm=signer_info["signature_algorithm"].dump(),
        constant_attributes=frozenset(constant),
        hash_name=digest,
        pkcs1=known[1],
        public_key=public_key,
        not_valid_before=leaf.not_valid_before_utc,
        not_valid_after=leaf.not_valid_after_utc,
        valid_from=max(c.not_valid_before_utc for c in path_certificates),
        valid_until=min(
            [c.not_valid_after_utc for c in path_certificates]
            + [crl.next_update_utc for crl in crls if crl.next_update_utc]
        ),
        signer=signer,
    )


def cache_key(
    certificates: bytes,
    roots: Iterable[x509.Certificate],
    crls: Iterable[bytes],
    intermediates: Iterable[x509.Certificate] = (),
) -> tuple[bytes, ...]:
    """What a path verdict depends on besides the moment: certificates, roots, CRLs, and
    the CA certificates held here a path may pass through.

    A CRL read from the database comes with its digest taken (``storage.signatures.Crl``).
    """
    return (
        hashlib.sha256(certificates).digest(),
        b"roots",
        *sorted(_fingerprint(root) for root in roots),
        b"crls",
        *sorted(getattr(crl, "sha256", None) or hashlib.sha256(crl).digest() for crl in crls),
        b"cas",
        *sorted(_fingerprint(ca) for ca in intermediates),
    )


_fingerprints: dict[x509.Certificate, bytes] = {}


def _fingerprint(cert: x509.Certificate) -> bytes:
    """A root's SHA-256, remembered: the same pinned roots come with every verification.

    Keyed by the certificate itself (equal when their DER is), so a changed root is a
    different key.
    """
    fp = _fingerprints.get(cert)
    if fp is None:
        fp = cert.fingerprint(hashes.SHA256())
        if len(_fingerprints) >= 256:
            _fingerprints.clear()
        _fingerprints[cert] = fp
    return fp


class ChainCache:
    """A bounded, thread-safe map from ``cache_key`` to the ``TrustedSigner`` found there."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._items: OrderedDict[tuple[bytes, ...], TrustedSigner] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[bytes, ...]) -> TrustedSigner | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[bytes, ...], value: TrustedSigner) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Quick:
    """A signature ``quick_verify`` accepted."""

    signing_time: datetime
    trusted: TrustedSigner


@dataclass(frozen=True)
class Pieces:
    """The DER pieces of a detached SignedData with one signer, as ``split`` finds them."""

    signed_data_head: bytes  # version and digestAlgorithms
    encap_content_info: bytes
    certificates: bytes
    signer_info_head: bytes  # version, sid and digestAlgorithm
    signed_attributes: bytes  # the [0] IMPLICIT element, header included
    signature_algorithm: bytes
    signature: bytes  # the OCTET STRING element


def split(cms_der: bytes) -> Pieces | None:
    """Cut a CMS ContentInfo into the pieces ``quick_verify`` compares, or None.

    Only the one shape our own signatures and common tools have: SignedData with version,
    digestAlgorithms, encapContentInfo, certificates, no CRLs, one SignerInfo with signed
    and no unsigned attributes. The pieces are the exact bytes as they came.
    """
    try:
        outer = _contents(cms_der, _SEQUENCE_BYTE, whole=True)
        oid, content = _elements_list(outer, 2)
        if oid != SIGNED_DATA_OID:
            return None
        signed_data = _contents(_contents(content, _EXPLICIT_0_BYTE), _SEQUENCE_BYTE)
        version, digests, encap, certificates, signer_infos = _elements_list(signed_data, 5)
        if certificates[0] != _IMPLICIT_0_BYTE:
            return None
        (signer_info,) = _elements_list(_contents(signer_infos, _SET_BYTE), 1)
        parts = _elements_list(_contents(signer_info, _SEQUENCE_BYTE), 6)
    except ValueError:
        return None
    if parts[3][0] != _IMPLICIT_0_BYTE or parts[5][0] != _OCTET_STRING_BYTE:
        return None
    return Pieces(
        signed_data_head=version + digests,
        encap_content_info=encap,
        certificates=certificates,
        signer_info_head=parts[0] + parts[1] + parts[2],
        signed_attributes=parts[3],
        signature_algorithm=parts[4],
        signature=parts[5],
    )


def quick_verify(
    content: bytes, pieces: Pieces, trusted: TrustedSigner, at: datetime
) -> Quick | None:
    """Accept the signature in ``pieces`` over ``content`` by what ``trusted`` recorded.

    None when anything differs from what pyHanko accepted or does not check out.
    """
    if not trusted.valid_from <= at <= trusted.valid_until:
        return None
    if (
        pieces.certificates != trusted.certificates
        or pieces.signer_info_head != trusted.signer_info_head
        or pieces.signature_algorithm != trusted.signature_algorithm
        or pieces.signed_data_head != trusted.signed_data_head
        or pieces.encap_content_info != _DETACHED_DATA
    ):
        return None
    digester = hashes.Hash(HASHES[trusted.hash_name]())
    digester.update(content)
    expected_digest = cms_attribute(MESSAGE_DIGEST_OID, tlv(OCTET_STRING, digester.finalize()))
    constants: set[bytes] = set()
    digest_seen = False
    signing_time = None
    # Each attribute's DER must be one of the constant ones recorded, the digest of this
    # content, or a signing time; each exactly once, all constant ones present.
    try:
        attributes = _contents(pieces.signed_attributes, _IMPLICIT_0_BYTE)
        for encoded in _elements(attributes):
            if encoded in trusted.constant_attributes and encoded not in constants:
                constants.add(encoded)
            elif encoded == expected_digest and not digest_seen:
                digest_seen = True
            elif signing_time is None and encoded.startswith(_SIGNING_TIME_PREFIX, 2):
                # Only the one DER form our signatures use for its year; anything else
                # goes the full way.
                signing_time = signing_time_of(encoded)
                if signing_time is None:
                    return None
            else:
                return None
        signature = _contents(pieces.signature, _OCTET_STRING_BYTE)
    except ValueError:
        return None
    if (
        not digest_seen
        or signing_time is None
        or len(constants) != len(trusted.constant_attributes)
    ):
        return None
    signed = tlv(SET, attributes)  # [0] IMPLICIT on the wire, SET OF when signed
    algorithm = HASHES[trusted.hash_name]()
    try:
        if trusted.pkcs1:
            assert isinstance(trusted.public_key, rsa.RSAPublicKey)
            trusted.public_key.verify(signature, signed, padding.PKCS1v15(), algorithm)
        else:
            assert isinstance(trusted.public_key, ec.EllipticCurvePublicKey)
            trusted.public_key.verify(signature, signed, ec.ECDSA(algorithm))
    except InvalidSignature:
        return None
    return Quick(signing_time=signing_time, trusted=trusted)


_DETACHED_DATA = asn1_cms.EncapsulatedContentInfo({"content_type": "data"}).dump()
_SIGNING_TIME_UTC = re.compile(
    re.escape(b"\x30\x1c" + SIGNING_TIME_OID + b"\x31\x0f\x17\x0d")
    + rb"([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})Z"
)
_SIGNING_TIME_GENERALIZED = re.compile(
    re.escape(b"\x30\x1e" + SIGNING_TIME_OID + b"\x31\x11\x18\x0f")
    + rb"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})Z"
)


def signing_time_of(encoded: bytes) -> datetime | None:
    """The moment of a signing-time attribute in the one DER form our signatures use for
    its year (one UTCTime for 1950 through 2049, else one GeneralizedTime, whole seconds),
    or None."""
    match = _SIGNING_TIME_UTC.fullmatch(encoded)
    if match is not None:
        year = int(match[1])
        year += 1900 if year >= 50 else 2000  # RFC 5280: YY of 50 or more is 19YY
    else:
        match = _SIGNING_TIME_GENERALIZED.fullmatch(encoded)
        if match is None or 1950 <= int(match[1]) <= 2049:
            return None
        year = int(match[1])
    month, day, hour, minute, second = (int(g) for g in match.groups()[1:])
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


_SIGNING_TIME_PREFIX = SIGNING_TIME_OID + b"\x31"


def _elements(contents: bytes) -> Iterator[bytes]:
    """The DER of each element of a SET OF (or SEQUENCE OF), from its contents."""
    position = 0
    while position < len(contents):
        _, _, _, header, body, trailer = parse(contents[position:])
        size = len(header) + len(body) + len(trailer)
        yield contents[position : position + size]
        position += size


def _elements_list(contents: bytes, count: int) -> list[bytes]:
    found = list(_elements(contents))
    if len(found) != count:
        raise ValueError(f"{len(found)} elements instead of {count}")
    return found


def _contents(encoded: bytes, first_byte: int, whole: bool = False) -> bytes:
    """The contents of one DER element whose identifier octet is ``first_byte``."""
    if not encoded or encoded[0] != first_byte:
        raise ValueError("unexpected tag")
    _, _, _, header, body, trailer = parse(encoded, strict=whole)
    if trailer or len(header) + len(body) != len(encoded):
        raise ValueError("not one definite-length element")
    return bytes(body)
