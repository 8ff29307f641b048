"""An X.509 certificate described (``CertificateDescription``), whichever library parsed it.

Verification meets certificates as asn1crypto objects (pyHanko's), the key store as
cryptography's; both are described here, the same way. The names and numbers are read
with asn1crypto, which takes any DER a signature may carry, so a certificate
cryptography refuses is still named (``congvan verify`` names the signer of a signature
that fails); its profile is then None.
"""

from __future__ import annotations

from collections.abc import Iterable

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from congvan.states.certificates import CertificateDescription
from congvan.states.errors import InvalidInput
from congvan.states.text import printable

from . import profiles

# Subject attributes by the field that reports them (asn1crypto's names).
_SUBJECT_FIELDS = {
    "common_name": "common_name",
    "title": "title",
    "organization": "organization_name",
    "organizational_unit": "organizational_unit_name",
    "user_id": "user_id",
}
# RFC 5280 key usages in the order they are reported; encipherOnly and decipherOnly only
# qualify keyAgreement and are left out.
_KEY_USAGES = (
    "digital_signature",
    "non_repudiation",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def describe(cert: x509.Certificate | asn1_x509.Certificate) -> CertificateDescription:
    """Who the certificate names, who issued it, when it is valid and what it may do."""
    loaded: x509.Certificate | None
    if isinstance(cert, x509.Certificate):
        parsed, loaded = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)), cert
    else:
        parsed, loaded = cert, _loaded(cert)
    subject = parsed.subject.native

    def text(name: str) -> str:
        # Names from outside (a root trusted, a peer's certificate) are kept and printed:
        # any control or hidden character in them is written as its escape.
        value = subject.get(name, "")
        return printable(", ".join(value) if isinstance(value, list) else str(value))

    key_usage, is_ca = _constraints(parsed)
    return CertificateDescription(
        **{field: text(name) for field, name in _SUBJECT_FIELDS.items()},
        serial_number=format(parsed.serial_number, "x"),
        issuer=printable(parsed.issuer.human_friendly),
        sha256=parsed.sha256.hex(),
        not_before=parsed.not_valid_before,
        not_after=parsed.not_valid_after,
        profile=_profile(loaded),
        key_usage=key_usage,
        is_ca=is_ca,
    )


def _constraints(cert: asn1_x509.Certificate) -> tuple[tuple[str, ...], bool]:
    """The key usages named and whether it is a CA; none and no for a malformed extension."""
    try:
        usage = cert.key_usage_value
        named = set() if usage is None else set(usage.native)
        return tuple(u for u in _KEY_USAGES if u in named), bool(cert.ca)
    except (ValueError, TypeError):
        return (), False


def _profile(cert: x509.Certificate | None) -> str | None:
    if cert is None:
        return None
    try:
        return profiles.profile_of(cert)
    except ValueError:  # an extension cryptography cannot parse: it claims no profile
        return None


def _loaded(cert: asn1_x509.Certificate) -> x509.Certificate | None:
    try:
        return x509.load_der_x509_certificate(cert.dump())
    except ValueError:
        return None


def owned_by(certs: Iterable[x509.Certificate], agency_id: str, profile: str) -> None:
    """Each of ``certs`` is a certificate of ``profile`` (an agency's organisational one,
    or a signer's) naming ``agency_id`` as its organisational unit; else InvalidInput."""
    for cert in certs:
        described = describe(cert)
        if described.is_ca or described.profile != profile:
            raise InvalidInput(
                f"The certificate of {described.common_name or 'nobody'} is "
                f"{profiles.describe(None if described.is_ca else described.profile)}, "
                f"not {profiles.describe(profile)}.",
                field="certificates",
                sha256=described.sha256,
                profile="ca" if described.is_ca else described.profile,
            )
        if described.organizational_unit != agency_id:
            raise InvalidInput(
                f"The certificate names agency {described.organizational_unit or '(none)'} "
                f"(its OU), not {agency_id}.",
                field="certificates",
                sha256=described.sha256,
                organizational_unit=described.organizational_unit,
            )
