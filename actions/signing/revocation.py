"""Revocation of a validated path, read from the CRLs we hold, distribution point or not.

pyhanko-certvalidator consults revocation data only for certificates that name a CRL
distribution point; a certificate of our own CA made without one would pass while revoked.
So after the validator accepts a path, every certificate on it but the root is looked up in
the newest CRL its issuer signed (its signature checked with the issuer's key):

- listed with a revocation date at or before the moment checked: ``CertificateRevoked``;
- listed with a later date: the signature stands, but the verdict says so (a key
  compromised after signing, or a signer who left the post since);
- no CRL of that issuer, or one that had expired by the moment checked and was not issued
  after it: ``RevocationUnknown``.

A CRL issued after the moment checked still speaks about it (an archive re-check), as in
the validator's ``retroactive_revinfo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from congvan.states.errors import CertificateRevoked, RevocationUnknown


@dataclass(frozen=True)
class LaterRevocation:
    """A certificate of the path revoked after the moment that was checked."""

    serial_number: str
    subject: str
    revoked_at: datetime
    reason: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "serial_number": self.serial_number,
            "subject": self.subject,
            "revoked_at": self.revoked_at.isoformat(),
            "reason": self.reason,
        }


def check_path(
    path: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    at: datetime,
    who: dict[str, str] | None = None,
) -> LaterRevocation | None:
    """Check every certificate of ``path`` (any order, root included) against ``crls`` at ``at``.

    Raises ``CertificateRevoked`` or ``RevocationUnknown``; returns the first revocation
    after ``at``, or None.
    """
    who = who or {}
    later: LaterRevocation | None = None
    for cert in path:
        if cert.issuer == cert.subject:
            continue  # the trust anchor: trusted by being pinned, not by a CRL
        issuer = next((c for c in path if c.subject == cert.issuer and c is not cert), None)
        if issuer is None:
            raise RevocationUnknown(
                "The issuer of a certificate on the path is missing.",
                certificate=_name(cert),
                **who,
            )
        crl = newest_crl(issuer, crls)
        if crl is None:
            raise RevocationUnknown(
                "No CRL of the certificate's issuer is held: its revocation status is unknown.",
                certificate=_name(cert),
                issuer=_name(issuer),
                **who,
            )
        next_update = crl.next_update_utc
        if next_update is not None and next_update < at and crl.last_update_utc <= at:
            raise RevocationUnknown(
                "The issuer's newest CRL had expired at the moment checked.",
                certificate=_name(cert),
                issuer=_name(issuer),
                crl_next_update=next_update.isoformat(),
                checked_at=at.isoformat(),
                **who,
            )
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is None:
            continue
        reason = _reason(entry)
        if entry.revocation_date_utc <= at:
            raise CertificateRevoked(
                revoked_at=entry.revocation_date_utc.isoformat(),
                reason=reason,
                ca_revoked=cert is not path[0] and _is_ca(cert),
                certificate=_name(cert),
                **who,
            )
        later = later or LaterRevocation(
            serial_number=format(cert.serial_number, "x"),
            subject=_name(cert),
            revoked_at=entry.revocation_date_utc,
            reason=reason,
        )
    return later


def newest_crl(
    issuer: x509.Certificate, crls: Sequence[x509.CertificateRevocationList]
) -> x509.CertificateRevocationList | None:
    """The newest CRL in ``crls`` that ``issuer`` signed (checked with its key)."""
    signed = [c for c in crls if c.issuer == issuer.subject and _signed_by(c, issuer)]
    return max(signed, key=lambda c: (_number(c), c.last_update_utc), default=None)


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return False
    return crl.is_signature_valid(key)


def _number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return -1


def _reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()
