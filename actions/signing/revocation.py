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

Only a CRL whose scope covers the certificate speaks for it (RFC 5280 §5.2.4, §5.2.5,
§6.3.3): a delta CRL lists only what changed since its base, and a CRL whose issuing
distribution point narrows it (CA certificates only, end entities only, some reasons,
another issuer's entries, another distribution point than the certificate names) says
nothing of the others. Taken as complete, a newer one of those hid a revocation its base
listed. A CRL with a critical extension not read here is not used either (§5.2).

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
        crl = newest_crl(issuer, crls, covering=cert)
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
        revoked_at = _in_force_from(entry)
        if revoked_at <= at:
            raise CertificateRevoked(
                revoked_at=revoked_at.isoformat(),
                reason=reason,
                ca_revoked=cert is not path[0] and _is_ca(cert),
                certificate=_name(cert),
                **(
                    {"listed_at": entry.revocation_date_utc.isoformat()}
                    if revoked_at != entry.revocation_date_utc
                    else {}
                ),
                **who,
            )
        later = later or LaterRevocation(
            serial_number=format(cert.serial_number, "x"),
            subject=_name(cert),
            revoked_at=revoked_at,
            reason=reason,
        )
    return later


def _in_force_from(entry: x509.RevokedCertificate) -> datetime:
    """From when a revocation counts: its date, or the invalidity date the entry gives
    when earlier (RFC 5280 5.3.2: from then the key is known or suspected compromised, so
    a signature made after it is no proof, even if the CA listed it later)."""
    try:
        invalid = entry.extensions.get_extension_for_class(x509.InvalidityDate).value
    except x509.ExtensionNotFound:
        return entry.revocation_date_utc
    return min(entry.revocation_date_utc, invalid.invalidity_date_utc)


def newest_crl(
    issuer: x509.Certificate,
    crls: Sequence[x509.CertificateRevocationList],
    covering: x509.Certificate | None = None,
) -> x509.CertificateRevocationList | None:
    """The newest CRL in ``crls`` that ``issuer`` signed (checked with its key); with
    ``covering``, the newest of those whose scope covers that certificate."""
    signed = [
        c
        for c in crls
        if c.issuer == issuer.subject
        and (covering is None or covers(c, covering))
        and signed_by(c, issuer)
    ]
    return max(signed, key=lambda c: (_number(c), c.last_update_utc), default=None)


# The CRL extensions read here or that change nothing of its scope.
_READ = frozenset(
    {
        x509.CRLNumber.oid,
        x509.AuthorityKeyIdentifier.oid,
        x509.IssuerAlternativeName.oid,
        x509.AuthorityInformationAccess.oid,
        x509.FreshestCRL.oid,
        x509.IssuingDistributionPoint.oid,
    }
)


# An entry's extensions read here or that change nothing of what it says.
_ENTRY_READ = frozenset({x509.CRLReason.oid, x509.InvalidityDate.oid})


def _unusable(crl: x509.CertificateRevocationList) -> str | None:
    """Why ``crl`` speaks for no certificate at all, or None: a delta CRL, or one with a
    critical extension not read here, of its own or of any entry's (RFC 5280 §5.2, §5.3:
    such a CRL MUST NOT be used, whichever certificate is looked up)."""
    for extension in crl.extensions:
        if extension.oid == x509.DeltaCRLIndicator.oid:
            return "a delta CRL (it lists only what changed since its base CRL)"
        if extension.critical and extension.oid not in _READ:
            return f"a critical extension not read here ({extension.oid.dotted_string})"
    for entry in crl:
        for extension in entry.extensions:
            if extension.critical and extension.oid not in _ENTRY_READ:
                oid = extension.oid.dotted_string
                return f"a CRL with an entry's critical extension not read here ({oid})"
    return None


def partial(crl: x509.CertificateRevocationList) -> str | None:
    """Why ``crl`` is not a complete CRL of its issuer's certificates, or None when it is:
    a delta CRL, one whose issuing distribution point narrows its scope, one with a
    critical extension not read here."""
    unusable = _unusable(crl)
    if unusable is not None:
        return unusable
    try:
        point = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return None
    if point.only_contains_ca_certs:
        return "a CRL of CA certificates only"
    if point.only_contains_user_certs:
        return "a CRL of end-entity certificates only"
    if point.only_contains_attribute_certs:
        return "a CRL of attribute certificates only"
    if point.only_some_reasons is not None:
        return "a CRL of some revocation reasons only"
    if point.indirect_crl:
        return "an indirect CRL (entries of other issuers)"
    if point.full_name is not None or point.relative_name is not None:
        return "a CRL of one distribution point"
    return None


def covers(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    """Whether ``crl`` speaks for ``cert`` (its issuer's): complete, or narrowed to a
    scope ``cert`` is in (its kind, the distribution point it names)."""
    if _unusable(crl) is not None:
        return False
    try:
        point = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return True
    if point.only_contains_attribute_certs or point.indirect_crl:
        return False
    if point.only_some_reasons is not None:
        return False
    if point.only_contains_ca_certs and not _is_ca(cert):
        return False
    if point.only_contains_user_certs and _is_ca(cert):
        return False
    if point.full_name is None and point.relative_name is None:
        return True
    return any(
        (point.full_name is not None and set(point.full_name) & set(named.full_name or ()))
        or (point.relative_name is not None and point.relative_name == named.relative_name)
        for named in _distribution_points(cert)
    )


def _distribution_points(cert: x509.Certificate) -> list[x509.DistributionPoint]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value)
    except x509.ExtensionNotFound:
        return []


def signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key made ``crl``'s signature."""
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
