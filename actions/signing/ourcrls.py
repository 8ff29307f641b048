"""Our CA's CRLs held to the revocations it made: a revocation never leaves them.

What the last CRL our CA signed lists, for the next to list too (whatever the rows say
now: a row un-revoked by SQL is not published as good again); and which CRLs in force
are believed (one of ours older than a revocation the rows record, the newest deleted
by SQL, is not).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from cryptography import x509

from congvan.storage.unit_of_work import UnitOfWork

log = logging.getLogger("congvan.keys")


def last_listed(
    uow: UnitOfWork, issuer_fingerprint: str, ca_cert: x509.Certificate
) -> dict[int, tuple[int, datetime, x509.ReasonFlags | None]]:
    """What the newest CRL of ours that our CA's signature holds lists: serial → entry."""
    rows = [
        r for r in uow.signatures.latest_crl_rows() if r.issuer_fingerprint == issuer_fingerprint
    ]
    if not rows:
        return {}
    crl = x509.load_der_x509_crl(bytes(rows[0].der))
    if not crl.is_signature_valid(ca_cert.public_key()):  # type: ignore[arg-type]
        return {}  # not ours: it lists nothing we revoked
    entries = {}
    for entry in crl:
        try:
            reason: x509.ReasonFlags | None = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            reason = None
        at = entry.revocation_date_utc
        entries[entry.serial_number] = (entry.serial_number, at, reason)
    return entries


def believed(
    uow: UnitOfWork, crls: list[bytes], parsed: Callable[[str, str], x509.Certificate]
) -> list[bytes]:
    """The newest CRLs but any of our CA's that omits a certificate it revoked here: one
    older than a revocation the rows record (a newer CRL removed by SQL, which would make
    the revoked certificate good again). Taken as no CRL, a signature under our CA cannot
    be judged for revocation (``revocation_unknown``) until ``keys crl`` publishes one
    listing every revocation (which it does from the rows). Only our CA revokes here, and
    each revocation publishes its CRL at once. (Judged at each read: the same set of CRLs
    in force before a revocation and after its CRL is deleted is judged otherwise.)
    """
    revoked = uow.signatures.revoked_pems()
    if not revoked:
        return crls
    ours = [parsed(r.fingerprint, r.cert_pem) for r in uow.signatures.roots() if r.key_pem]
    certs = [
        cert
        for cert in (parsed(fp, pem) for fp, pem in revoked)
        if any(cert.issuer == ca.subject for ca in ours)
    ]
    kept = []
    for der in crls:
        crl = _parsed_crl(der)
        issuer = _key_id(crl.extensions)
        omitted = [
            c
            for c in certs
            if c.issuer == crl.issuer
            and (issuer is None or _key_id(c.extensions) == issuer)
            and crl.get_revoked_certificate_by_serial_number(c.serial_number) is None
        ]
        if omitted:
            log.warning(
                "a CRL in force omits a revocation recorded here: no CRL of its issuer is "
                "taken until `congvan keys crl` publishes one",
                extra={"action": "crl.omits_revocation", "serial": f"{omitted[0].serial_number:x}"},
            )
            continue
        kept.append(der)
    return kept


def _key_id(extensions: x509.Extensions) -> bytes | None:
    """The authority key identifier a certificate or a CRL names its issuer by, if any."""
    try:
        return extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


# CRLs as parsed, by their bytes: every verification may look at them.
_parsed_crls: dict[bytes, x509.CertificateRevocationList] = {}


def readable(crls: list[bytes]) -> list[bytes]:
    """The CRLs that parse; one damaged in the database (SQL, a bad disk) counts as no CRL,
    so that what it would judge is ``revocation_unknown``, never a traceback."""
    kept = []
    for der in crls:
        try:
            _parsed_crl(der)
        except (ValueError, TypeError):
            log.warning("a stored CRL cannot be read: counted as none")
            continue
        kept.append(der)
    return kept


def _parsed_crl(der: bytes) -> x509.CertificateRevocationList:
    crl = _parsed_crls.get(der)
    if crl is None:
        if len(_parsed_crls) > 64:
            _parsed_crls.clear()
        crl = _parsed_crls[der] = x509.load_der_x509_crl(der)
    return crl
