"""Certificate profiles: a person's signing certificate or an agency's, told by the certificate.

Decree 68/2024/NĐ-CP issues two kinds of signing certificate, and each use accepts only
its kind: documents are signed by a person (``signer``); audit anchors, receipts and the
agency's own signature at issue by the agency's organisational certificate (``agency``).

The certificates ``congvan keys issue-*`` makes say which they are with a certificate
policy (below; OIDs under ``2.25``, the UUID arc of ITU-T X.667, which needs no
registration) and carry the extended key usages documentSigning (RFC 9336) and
emailProtection (which ``openssl cms -verify`` and NSS look for in a signing
certificate). A certificate made elsewhere without our policies is recognised by its
subject: a person's certificate names a title or a user id (UID, e.g. the CCCD number);
an agency's names neither. Whatever it says, a certificate cannot sign documents when

- its key usage lacks digitalSignature, or
- it lists extended key usages and none of documentSigning, emailProtection or
  anyExtendedKeyUsage (a TLS server certificate, say), or
- it claims both policies.
"""

from __future__ import annotations

from typing import Literal

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

Profile = Literal["signer", "agency"]
PROFILES: tuple[Profile, ...] = ("signer", "agency")

_ARC = "2.25.91673624540958440080800994581514870140"
SIGNER_POLICY = ObjectIdentifier(f"{_ARC}.1.1")
AGENCY_POLICY = ObjectIdentifier(f"{_ARC}.1.2")
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
SIGNING_USAGES = frozenset(
    {
        DOCUMENT_SIGNING,
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    }
)
_POLICY = {"signer": SIGNER_POLICY, "agency": AGENCY_POLICY}
_NAMES = {"signer": "a person's signing certificate", "agency": "an agency's certificate"}


def extensions(profile: Profile) -> list[x509.ExtensionType]:
    """What a certificate of this profile carries, besides key usage and the rest."""
    return [
        x509.CertificatePolicies([x509.PolicyInformation(_POLICY[profile], None)]),
        x509.ExtendedKeyUsage([DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
    ]


def profile_of(cert: x509.Certificate) -> Profile | None:
    """Which profile the certificate has, or None when it may not sign documents at all."""
    ext = cert.extensions
    try:
        if ext.get_extension_for_class(x509.BasicConstraints).value.ca:
            return None  # a CA issues certificates; a person or an agency signs
    except x509.ExtensionNotFound:
        pass
    try:
        usage = ext.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature or usage.key_cert_sign or usage.crl_sign:
            return None
    except x509.ExtensionNotFound:
        pass  # no key usage: the key usage check of the verifier refuses it on its own
    try:
        usages = set(ext.get_extension_for_class(x509.ExtendedKeyUsage).value)
        if not usages & SIGNING_USAGES:
            return None
    except x509.ExtensionNotFound:
        pass
    try:
        policies = {
            p.policy_identifier for p in ext.get_extension_for_class(x509.CertificatePolicies).value
        }
    except x509.ExtensionNotFound:
        policies = set()
    claimed = [name for name, oid in _POLICY.items() if oid in policies]
    if len(claimed) > 1:
        return None
    if claimed:
        return "signer" if claimed[0] == "signer" else "agency"
    personal = cert.subject.get_attributes_for_oid(NameOID.TITLE) or (
        cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    )
    return "signer" if personal else "agency"


def describe(profile: str | None) -> str:
    """The profile in words, for messages."""
    return _NAMES.get(profile or "", "a certificate that may not sign documents")
