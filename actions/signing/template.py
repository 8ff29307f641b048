"""One signer's detached CMS made once by pyHanko, then reused for every later signature.

pyHanko builds a CMS through asn1crypto object trees in pure Python, about 3 ms a signature,
ten times the signature math itself. Almost all of it is the same for every document one
signer signs (the certificates, the algorithm identifiers, three of the five signed
attributes). ``SignatureTemplate`` is made from one CMS that pyHanko signed for this signer
(the reference). Later signatures reuse the reference's DER pieces and encode only what
changes: the message digest and signing time attributes, the signature value and the
lengths around them. The output is byte for byte what pyHanko would produce (tests compare
the two). Checking such signatures quickly is ``hotpath``'s part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from asn1crypto.parser import emit
from cryptography.hazmat.primitives import hashes

# DER tags, as (class, method, tag) for ``emit``.
SEQUENCE = (0, 1, 16)
SET = (0, 1, 17)
OCTET_STRING = (0, 0, 4)
_EXPLICIT_0 = (2, 1, 0)  # ContentInfo.content
_IMPLICIT_0 = (2, 1, 0)  # SignerInfo.signedAttrs

SIGNED_DATA_OID = asn1_cms.ContentType("signed_data").dump()
MESSAGE_DIGEST_OID = asn1_cms.CMSAttributeType("message_digest").dump()
SIGNING_TIME_OID = asn1_cms.CMSAttributeType("signing_time").dump()
# The attributes that differ between signatures; every other one must repeat exactly.
PER_SIGNATURE = frozenset({"1.2.840.113549.1.9.4", "1.2.840.113549.1.9.5"})
HASHES: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def tlv(kind: tuple[int, int, int], contents: bytes) -> bytes:
    """One DER element of the tag ``kind`` around ``contents``."""
    return bytes(emit(*kind, contents))


def cms_attribute(type_oid: bytes, value: bytes) -> bytes:
    """A CMS attribute of one value, as DER."""
    return tlv(SEQUENCE, type_oid + tlv(SET, value))


def signing_time(moment: datetime) -> asn1_cms.Time:
    """A CMS signing time, in whole seconds, of the type RFC 5652 (11.3) requires:
    UTCTime for the years 1950 through 2049, GeneralizedTime for any other (UTCTime has
    two digits for the year; pyHanko writes UTCTime whatever the year, and fails past
    2049)."""
    moment = moment.astimezone(UTC).replace(microsecond=0)
    if 1950 <= moment.year <= 2049:
        return asn1_cms.Time({"utc_time": core.UTCTime(moment)})
    return asn1_cms.Time({"generalized_time": core.GeneralizedTime(moment)})


def signing_time_value(moment: datetime) -> bytes:
    """The DER of ``signing_time(moment)``."""
    return bytes(signing_time(moment).dump())


class SignatureTemplate:
    """One signer's detached CMS with the per-signature parts left open."""

    def __init__(self, reference: bytes) -> None:
        content_info = asn1_cms.ContentInfo.load(reference)
        if content_info["content_type"].native != "signed_data":
            raise ValueError("the reference is not a CMS SignedData")
        signed_data = content_info["content"]
        (signer_info,) = signed_data["signer_infos"]
        if not isinstance(signer_info["unsigned_attrs"], core.Void):
            raise ValueError("the reference has unsigned attributes")
        self.digest = signer_info["digest_algorithm"]["algorithm"].native
        self._hash = HASHES[self.digest]
        self._signed_data_head = b"".join(
            signed_data[field].dump()
            for field in ("version", "digest_algorithms", "encap_content_info", "certificates")
        )
        self._signer_info_head = b"".join(
            signer_info[field].dump() for field in ("version", "sid", "digest_algorithm")
        )
        self._signature_algorithm = signer_info["signature_algorithm"].dump()
        self._constant_attributes = [
            attribute.dump()
            for attribute in signer_info["signed_attrs"]
            if attribute["type"].dotted not in PER_SIGNATURE
        ]

    def signed_attributes(self, content: bytes, signing_time: datetime) -> bytes:
        """The signed attributes' contents: their DER encodings in DER (sorted) order."""
        digester = hashes.Hash(self._hash())
        digester.update(content)
        digest = tlv(OCTET_STRING, digester.finalize())
        attributes = [
            *self._constant_attributes,
            cms_attribute(MESSAGE_DIGEST_OID, digest),
            cms_attribute(SIGNING_TIME_OID, signing_time_value(signing_time)),
        ]
        return b"".join(sorted(attributes))

    def sign(
        self, content: bytes, signing_time: datetime, sign_raw: Callable[[bytes], bytes]
    ) -> bytes:
        """A detached CMS over ``content``; ``sign_raw`` signs the DER of the attributes."""
        attributes = self.signed_attributes(content, signing_time)
        signature = sign_raw(tlv(SET, attributes))
        signer_info = tlv(
            SEQUENCE,
            self._signer_info_head
            + tlv(_IMPLICIT_0, attributes)
            + self._signature_algorithm
            + tlv(OCTET_STRING, signature),
        )
        signed_data = tlv(SEQUENCE, self._signed_data_head + tlv(SET, signer_info))
        return tlv(SEQUENCE, SIGNED_DATA_OID + tlv(_EXPLICIT_0, signed_data))
