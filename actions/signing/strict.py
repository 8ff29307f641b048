"""The strictness rules every CMS signature meets before anything else looks at it.

An uploaded or embedded CMS is accepted only as distinguished encoding and standard
algorithms, the form ``openssl cms -verify`` and every other verifier read the same way:

    DER                   every element, the embedded certificates and CRLs included, has
                          a definite, minimal length, primitive strings, minimal integers
                          and sorted sets; the whole re-encodes to the same bytes
    certificates          each parses strictly as X.509 (extensions included), with an
                          RSA key of 2048 bits or more or an ECDSA key on P-256, P-384
                          or P-521 (else ``WeakAlgorithm``)
    one signer            SignedData with exactly one SignerInfo
    content               what is signed is plain data (id-data), not a timestamp token's
                          TSTInfo or any other kind of content the same key may sign
    signed attributes     each type once, with one value (RFC 5652 11: one content type,
                          one message digest, one signing time; none other repeats)
    unsigned attributes   each type once, a signature timestamp or CAdES long-term
                          validation data (no countersignature, nothing unknown); a
                          timestamp holds one token, which meets every rule here itself,
                          its content a TSTInfo
    digest                SHA-256, SHA-384 or SHA-512, listed in digestAlgorithms, which
                          lists nothing else
    signature algorithm   RSA PKCS#1 v1.5, RSA-PSS or ECDSA, hashing with that digest
    algorithm protection  when present, names the SignerInfo's digest and signature
                          algorithms

A rule about bytes fails with ``SignatureMalformed``; an algorithm outside the accepted
ones with ``WeakAlgorithm``. ``check_strict_cms`` takes a few milliseconds, so the quick
path of a known signer (``hotpath``) asks ``is_canonical`` instead: all but the signing
time, digest and signature of such a CMS are byte for byte those of one that passed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from congvan.actions.signing.hotpath import Pieces, signing_time_of
from congvan.states.errors import SignatureMalformed, WeakAlgorithm

from . import der

# OIDs, dotted: asn1crypto gives several names to some of them.
DIGESTS = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_RSA = "1.2.840.113549.1.1.1"  # rsaEncryption: PKCS#1 v1.5 with the SignerInfo's digest
_RSA_PSS = "1.2.840.113549.1.1.10"
_MGF1 = "1.2.840.113549.1.1.8"
# Signature algorithm → the hash it signs with (None: the SignerInfo's digest), and
# whether it takes NULL parameters (RSA) or none at all (ECDSA, RFC 5758).
SIGNATURE_ALGORITHMS: dict[str, tuple[str | None, bool]] = {
    _RSA: (None, True),
    "1.2.840.113549.1.1.11": ("sha256", True),
    "1.2.840.113549.1.1.12": ("sha384", True),
    "1.2.840.113549.1.1.13": ("sha512", True),
    "1.2.840.10045.4.3.2": ("sha256", False),
    "1.2.840.10045.4.3.3": ("sha384", False),
    "1.2.840.10045.4.3.4": ("sha512", False),
}
# UTF8String, NumericString, PrintableString, TeletexString, IA5String, UniversalString,
# BMPString: what X.520 names hold.
_DIRECTORY_STRINGS = frozenset({0x0C, 0x12, 0x13, 0x14, 0x16, 0x1C, 0x1E})
# What ``is_canonical`` rebuilds the headers around the pieces with.
_SIGNED_DATA_OID = asn1_cms.ContentType("signed_data").dump()
_SEQUENCE, _SET_OF, _OCTET_STRING, _CONTEXT_0 = 0x30, 0x31, 0x04, 0xA0
_SIGNING_TIME_OID = asn1_cms.CMSAttributeType("signing_time").dump()


def check_strict_cms(cms_der: bytes) -> None:
    """Refuse a CMS ContentInfo that is not strict DER with accepted algorithms."""
    der.check_der(cms_der)
    _check_signed_data(cms_der, _DATA, "The signature is not a detached CMS signature")


def check_strict_timestamp_token(token: bytes) -> None:
    """The same rules for an RFC 3161 timestamp token, whose signed content is a TSTInfo:
    a token is a CMS signature too, read by every verifier the same way or refused."""
    der.check_der(token)
    _check_signed_data(token, _TST_INFO, "The timestamp token is not a CMS signature")


def _check_signed_data(encoded: bytes, content: str, not_one: str) -> None:
    try:
        content_info = asn1_cms.ContentInfo.load(encoded, strict=True)
        if content_info["content_type"].dotted != "1.2.840.113549.1.7.2":
            raise SignatureMalformed(f"{not_one}: it is not a SignedData.")
        signed_data = content_info["content"]
        _check_implicit_sets(signed_data)
        _check_certificates(signed_data)
        _check_algorithms(signed_data)
        _check_content_type(signed_data, content)
        signer_info = signed_data["signer_infos"][0]
        _check_signed_attributes(signer_info)
        _check_unsigned_attributes(signer_info)
        # asn1crypto reads lazily: read what a verifier reads, so that a value its type
        # says is primitive but sent in pieces (a BER string the DER walk cannot tell from
        # an explicit tag, say a subject key identifier) is refused here, as not DER.
        signer_info["sid"].native  # noqa: B018
        signer_info["signed_attrs"].native  # noqa: B018
    except (SignatureMalformed, WeakAlgorithm):
        raise
    # asn1crypto parses lazily and reports damage as whatever the value it met raises.
    except Exception as exc:  # any failure to read it means it is malformed
        raise SignatureMalformed(f"{not_one}: {der.reading_failure(exc)}") from exc


def check_strict_embedded_cms(contents: bytes) -> None:
    """``check_strict_cms`` for a PDF signature's /Contents: one CMS, then zero padding."""
    size = der.element_size(contents)
    if contents[size:].strip(b"\0"):
        raise SignatureMalformed("The signature's /Contents holds more than one CMS.")
    check_strict_cms(contents[:size])


def is_canonical(cms_der: bytes, pieces: Pieces) -> bool:
    """Whether ``cms_der``, cut into ``pieces``, is DER around its pieces.

    For the quick path: its other pieces are byte for byte those of a CMS that passed
    ``check_strict_cms`` (``quick_verify`` compared them), so only the headers around them,
    the order of the signed attributes and the encoding of the signing time remain.
    """
    attributes = der.contents_of(pieces.signed_attributes)
    signature = der.contents_of(pieces.signature)
    if attributes is None or signature is None:
        return False
    elements = []
    position, end = 0, len(attributes)
    try:
        while position < end:
            _class, _constructed, _tag, _start, next_position = der.header(
                attributes, position, end
            )
            elements.append(attributes[position:next_position])
            position = next_position
    except SignatureMalformed:
        return False
    if elements != sorted(elements):
        return False
    # ``quick_verify`` took the one element with this OID at offset 2 for the signing time:
    # in the one DER form of its year.
    for element in elements:
        if element[2:13] == _SIGNING_TIME_OID and signing_time_of(element) is None:
            return False
    # What ``cms_der`` must be, with minimal headers around the pieces as they came.
    signer_info_size = (
        len(pieces.signer_info_head)
        + der.header_size(len(attributes))
        + len(pieces.signature_algorithm)
        + der.header_size(len(signature))
    )
    signer_infos_size = der.header_size(signer_info_size)
    signed_data_size = (
        len(pieces.signed_data_head)
        + len(pieces.encap_content_info)
        + len(pieces.certificates)
        + der.header_size(signer_infos_size)
    )
    content_size = der.header_size(signed_data_size)
    expected = b"".join(
        (
            der.encoded_header(_SEQUENCE, len(_SIGNED_DATA_OID) + der.header_size(content_size)),
            _SIGNED_DATA_OID,
            der.encoded_header(_CONTEXT_0, der.header_size(signed_data_size)),
            der.encoded_header(_SEQUENCE, signed_data_size),
            pieces.signed_data_head,
            pieces.encap_content_info,
            pieces.certificates,
            der.encoded_header(_SET_OF, signer_infos_size),
            der.encoded_header(_SEQUENCE, signer_info_size),
            pieces.signer_info_head,
            der.encoded_header(_CONTEXT_0, len(attributes)),
            attributes,
            pieces.signature_algorithm,
            der.encoded_header(_OCTET_STRING, len(signature)),
            signature,
        )
    )
    return cms_der == expected


# -- what the parsed SignedData holds ----------------------------------------------------


def _check_implicit_sets(signed_data: asn1_cms.SignedData) -> None:
    """The SET OFs whose tags say nothing of it (IMPLICIT ones) are sorted too."""
    sets = [signed_data["certificates"], signed_data["crls"]]
    for signer_info in signed_data["signer_infos"]:
        sets += [signer_info["signed_attrs"], signer_info["unsigned_attrs"]]
    for found in sets:
        if isinstance(found, core.Void):
            continue
        encodings = list(der.elements(found.contents))
        if encodings != sorted(encodings):
            raise SignatureMalformed(
                "The signature is not a detached CMS signature: a set is not sorted (not DER)."
            )


def _check_certificates(signed_data: asn1_cms.SignedData) -> None:
    """Each embedded certificate and CRL parses strictly with ``cryptography``."""
    certificates = signed_data["certificates"]
    for index, choice in enumerate([] if isinstance(certificates, core.Void) else certificates):
        if choice.name != "certificate":
            raise SignatureMalformed(
                f"The signature embeds a {choice.name}; only X.509 certificates are accepted.",
                certificate=index,
            )
        encoded = choice.chosen.dump()
        try:
            certificate = x509.load_der_x509_certificate(encoded)
            # cryptography reads names and extensions when asked: ask, so it checks them.
            certificate.extensions, certificate.subject, certificate.issuer  # noqa: B018
        except ValueError as exc:
            raise SignatureMalformed(
                f"An embedded certificate is not strict DER X.509: {exc}", certificate=index
            ) from exc
        if certificate.serial_number <= 0:  # cryptography only warns (RFC 5280 4.1.2.2)
            raise SignatureMalformed(
                "An embedded certificate has a serial number that is not positive.",
                certificate=index,
            )
        if not _names_are_strings(encoded):
            raise SignatureMalformed(
                "An embedded certificate names its issuer or subject with a value that is "
                "not a directory string.",
                certificate=index,
            )
        _check_key(certificate, index)
    crls = signed_data["crls"]
    for index, choice in enumerate([] if isinstance(crls, core.Void) else crls):
        if choice.name != "crl":
            raise SignatureMalformed(f"The signature embeds a {choice.name}.", crl=index)
        try:
            x509.load_der_x509_crl(choice.chosen.dump()).extensions  # noqa: B018
        except ValueError as exc:
            raise SignatureMalformed(
                f"An embedded CRL is not strict DER X.509: {exc}", crl=index
            ) from exc


# Public keys strong enough to sign with: RSA of at least 2048 bits, ECDSA on the NIST
# curves of at least 256 bits. The algorithm checks alone took ECDSA on P-192.
MIN_RSA_BITS = 2048
STRONG_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})


def _check_key(certificate: x509.Certificate, index: int) -> None:
    """Refuse a certificate whose key is too weak to trust a signature by it."""
    check_key_strength(certificate, "An embedded certificate", certificate=index)


def check_key_strength(cert: x509.Certificate, what: str, /, **details: Any) -> None:
    """``WeakAlgorithm`` when ``cert``'s key is too weak to trust what it signs; ``what``
    names the certificate in the message."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise WeakAlgorithm(
                f"{what} has an RSA key of {key.key_size} bits; "
                f"at least {MIN_RSA_BITS} are accepted.",
                key_size=key.key_size,
                **details,
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in STRONG_CURVES:
            raise WeakAlgorithm(
                f"{what} has a key on curve {key.curve.name}; P-256, P-384 or P-521 are accepted.",
                curve=key.curve.name,
                **details,
            )
    else:
        raise WeakAlgorithm(
            f"{what} has a key that is neither RSA nor ECDSA.",
            key_type=type(key).__name__,
            **details,
        )


def _names_are_strings(certificate: bytes) -> bool:
    """Whether every value in the certificate's issuer and subject is a directory string.

    cryptography takes any tag there; openssl and RFC 5280 only strings.
    """
    (tbs, *_rest) = der.children(certificate, 0, len(certificate))
    fields = der.children(certificate, tbs[1], tbs[2])
    first = 1 if fields[0][0] == _CONTEXT_0 else 0  # [0] version
    for _identifier, start, end in (fields[first + 2], fields[first + 4]):
        for _set, set_start, set_end in der.children(certificate, start, end):
            for _sequence, pair_start, pair_end in der.children(certificate, set_start, set_end):
                value = der.children(certificate, pair_start, pair_end)[1]
                if value[0] not in _DIRECTORY_STRINGS:
                    return False
    return True


def _check_algorithms(signed_data: asn1_cms.SignedData) -> None:
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise SignatureMalformed(
            f"The signature has {len(signer_infos)} signers instead of one.",
            signers=len(signer_infos),
        )
    signer_info = signer_infos[0]
    listed = []
    for algorithm in signed_data["digest_algorithms"]:
        listed.append(_digest(algorithm))
    digest = _digest(signer_info["digest_algorithm"])
    if digest not in listed:
        raise SignatureMalformed(
            "The signer's digest algorithm is not listed in digestAlgorithms.",
            digest_algorithm=digest,
            digest_algorithms=listed,
        )
    signature_algorithm = signer_info["signature_algorithm"]
    _check_signature_algorithm(signature_algorithm, digest)
    attributes = signer_info["signed_attrs"]
    protections = [
        attribute
        for attribute in ([] if isinstance(attributes, core.Void) else attributes)
        if attribute["type"].dotted == "1.2.840.113549.1.9.52"
    ]
    if not protections:
        return
    if len(protections) != 1 or len(protections[0]["values"]) != 1:
        raise SignatureMalformed("The CMS algorithm protection attribute is given twice.")
    protection = protections[0]["values"][0]
    if (
        protection["digest_algorithm"].dump() != signer_info["digest_algorithm"].dump()
        and _digest(protection["digest_algorithm"]) != digest
    ) or not _same_signature_algorithm(protection["signature_algorithm"], signature_algorithm):
        raise SignatureMalformed(
            "The CMS algorithm protection attribute names other algorithms than the signer's."
        )


_DATA = "1.2.840.113549.1.7.1"
_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"  # id-aa-signatureTimeStampToken


def _check_content_type(signed_data: asn1_cms.SignedData, expected: str) -> None:
    """What is signed is what it is checked as: data (the bytes it is checked against) for
    a signature, a TSTInfo for a timestamp token; nothing else the same key may sign."""
    content_type = signed_data["encap_content_info"]["content_type"]
    if content_type.dotted != expected:
        kind = "data" if expected == _DATA else "a TSTInfo"
        raise SignatureMalformed(
            f"The signature signs {content_type.native} content, not {kind}.",
            content_type=content_type.dotted,
        )


def _check_signed_attributes(signer_info: asn1_cms.SignerInfo) -> None:
    """Each signed attribute once, with one value: a signer cannot claim two of anything
    (two signing times, say, one for each verifier that reads only the first or the last)."""
    for name, attribute in _attributes_once(signer_info, "signed_attrs", "signed"):
        if len(attribute["values"]) != 1:
            raise SignatureMalformed(
                f"The signature's {name} attribute holds {len(attribute['values'])} values "
                "instead of one.",
                attribute=name,
            )
        if name == "signing_time":
            _check_signing_time_form(attribute["values"][0])


def _check_signing_time_form(value: Any) -> None:
    """RFC 5652 11.3: a signing time from 1950 through 2049 is a UTCTime, later or earlier
    ones a GeneralizedTime -- one form for each moment, as DER wants one encoding."""
    year = value.chosen.native.year
    utc_years = 1950 <= year <= 2049
    if (value.name == "utc_time") != utc_years:
        wanted = "UTCTime" if utc_years else "GeneralizedTime"
        raise SignatureMalformed(
            f"The signature's signing time of {year} is not a {wanted} (RFC 5652 11.3).",
            attribute="signing_time",
        )


# Unsigned attributes a signature may carry: its timestamp, which is verified, and the
# validation data of a long-term CAdES signature (RFC 5126 6.2-6.3, ETSI EN 319 122-1
# 5.5), which travels as evidence for later verifiers. Anything else (a countersignature,
# which congvan does not verify, or bytes of an unknown kind) would travel in the package
# and its evidence as if it said something, unread and signed by nobody.
_UNSIGNED_TAKEN = frozenset(
    {
        _TIMESTAMP_TOKEN,
        "1.2.840.113549.1.9.16.2.21",  # complete-certificate-references
        "1.2.840.113549.1.9.16.2.22",  # complete-revocation-references
        "1.2.840.113549.1.9.16.2.23",  # certificate-values
        "1.2.840.113549.1.9.16.2.24",  # revocation-values
        "1.2.840.113549.1.9.16.2.25",  # CAdES-C-time-stamp (escTimeStamp)
        "1.2.840.113549.1.9.16.2.26",  # time-stamped-certs-crls-references
        "0.4.0.1733.2.4",  # archive-time-stamp-v3
        "0.4.0.1733.2.5",  # ats-hash-index
    }
)


def _check_unsigned_attributes(signer_info: asn1_cms.SignerInfo) -> None:
    """Each unsigned attribute once, of a kind taken; a signature timestamp holds one
    token, itself strict. Two tokens would let each verifier date the signature by the one
    it reads."""
    for name, attribute in _attributes_once(signer_info, "unsigned_attrs", "unsigned"):
        if attribute["type"].dotted not in _UNSIGNED_TAKEN:
            raise SignatureMalformed(
                f"The signature carries an unsigned attribute congvan does not verify "
                f"({name}): only a signature timestamp and long-term validation data.",
                attribute=name,
            )
        if attribute["type"].dotted != _TIMESTAMP_TOKEN:
            continue
        values = attribute["values"]
        if len(values) != 1:
            raise SignatureMalformed(
                f"The signature's timestamp attribute holds {len(values)} tokens instead of one.",
                attribute=name,
            )
        try:
            check_strict_timestamp_token(values[0].dump())
        except SignatureMalformed as exc:
            raise SignatureMalformed(
                f"The signature's timestamp token is refused: {exc.message}", attribute=name
            ) from exc


def _attributes_once(
    signer_info: asn1_cms.SignerInfo, key: str, kind: str
) -> Iterator[tuple[str, asn1_cms.CMSAttribute]]:
    """The SignerInfo's ``key`` attributes with their names; SignatureMalformed at the
    first type given twice."""
    attributes = signer_info[key]
    seen: set[str] = set()
    for attribute in [] if isinstance(attributes, core.Void) else attributes:
        oid = attribute["type"]
        name = oid.native if isinstance(oid.native, str) else oid.dotted
        if oid.dotted in seen:
            raise SignatureMalformed(
                f"The signature's {kind} attributes give {name} twice.", attribute=name
            )
        seen.add(oid.dotted)
        yield name, attribute


def _digest(algorithm: core.Sequence) -> str:
    """The name of an accepted digest algorithm identifier."""
    oid = algorithm["algorithm"].dotted
    name = DIGESTS.get(oid)
    if name is None:
        raise WeakAlgorithm(
            f"The digest algorithm {algorithm['algorithm'].native} is not accepted; "
            "use SHA-256, SHA-384 or SHA-512.",
            algorithm=oid,
        )
    if not isinstance(algorithm["parameters"], core.Void | core.Null):
        raise SignatureMalformed("A digest algorithm has parameters.", algorithm=name)
    return name


def _check_signature_algorithm(algorithm: core.Sequence, digest: str) -> None:
    oid = algorithm["algorithm"].dotted
    parameters = algorithm["parameters"]
    if oid == _RSA_PSS:
        _check_pss(parameters, digest)
        return
    known = SIGNATURE_ALGORITHMS.get(oid)
    if known is None:
        raise WeakAlgorithm(
            f"The signature algorithm {algorithm['algorithm'].native} is not accepted; "
            "use RSA (PKCS#1 v1.5 or PSS) or ECDSA with SHA-256, SHA-384 or SHA-512.",
            algorithm=oid,
        )
    hash_name, null_parameters = known
    allowed = (core.Void, core.Null) if null_parameters else (core.Void,)
    if not isinstance(parameters, allowed):
        raise SignatureMalformed("The signature algorithm has parameters it does not take.")
    if hash_name not in (None, digest):
        raise SignatureMalformed(
            "The signature algorithm hashes with another digest than the signer's.",
            signature_hash=hash_name,
            digest_algorithm=digest,
        )


def _check_pss(parameters: core.Asn1Value, digest: str) -> None:
    if isinstance(parameters, core.Void | core.Null):
        raise SignatureMalformed("The RSA-PSS signature algorithm has no parameters.")
    hash_name = _digest(parameters["hash_algorithm"])
    mask = parameters["mask_gen_algorithm"]
    if mask["algorithm"].dotted != _MGF1:
        raise WeakAlgorithm("The RSA-PSS mask generation function is not MGF1.")
    if _digest(mask["parameters"]) != digest or hash_name != digest:
        raise SignatureMalformed("The RSA-PSS parameters hash with another digest.")
    if parameters["trailer_field"].native != "trailer_field_bc":
        raise SignatureMalformed("The RSA-PSS trailer field is not 1.")


def _same_signature_algorithm(named: core.Asn1Value, used: core.Sequence) -> bool:
    """The signature algorithm of an algorithm protection attribute agrees with ``used``."""
    if isinstance(named, core.Void):
        return False  # CMS algorithm protection of a signature names its algorithm
    if named["algorithm"].dotted != used["algorithm"].dotted:
        return False
    mine, theirs = named["parameters"], used["parameters"]
    if isinstance(mine, core.Void | core.Null) and isinstance(theirs, core.Void | core.Null):
        return True
    return bool(mine.dump() == theirs.dump())
