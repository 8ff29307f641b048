"""Who issued what: a certificate's chain to the pinned roots, and other CAs' CRLs.

What another installation hands over is judged here before it is kept: a peer's
organisational certificate must chain to a root pinned in the trust store (directly or
through a CA certificate held here), and a CRL must be its issuer's, in force, and undo
none of the revocations of the one held before it (RFC 5280 §3.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from congvan.states.errors import AlreadyExists, ChainUntrusted, InvalidInput
from congvan.storage.clock import as_utc
from congvan.storage.unit_of_work import UnitOfWork

from . import revocation
from .certpath import CLOCK_SKEW
from .description import describe
from .truststore import TrustStore, fingerprint


def import_crl(uow: UnitOfWork, store: TrustStore, data: bytes, *, now: datetime) -> dict[str, Any]:
    """Keep another CA's CRL (DER or PEM) for verification; its signature is checked first.

    Its issuer must be a pinned root or a CA certificate we hold. It must be in force at
    ``now`` (not dated ahead of the clock skew, not run out), newer than the one held for
    that issuer (the very one held, imported again, changes nothing: ``unchanged``), and
    undo none of that one's revocations (RFC 5280 §3.3: an entry leaves a CRL only when its
    certificate has expired, or was on hold). It must be a complete CRL: not a delta, not
    narrowed by an issuing distribution point.
    """
    try:
        crl = (
            x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
        )
    except ValueError as exc:
        raise InvalidInput("The file is not a CRL (DER or PEM).", field="file") from exc
    narrowed = revocation.partial(crl)
    if narrowed is not None:
        # Held as the issuer's newest, it would stand for every certificate of that issuer
        # and hide what its complete CRL lists (RFC 5280 §5.2.4, §5.2.5).
        raise InvalidInput(
            f"The CRL is {narrowed}: import the issuer's complete CRL.", field="file"
        )
    issuer = next(
        (
            c
            for c in _issuers(uow, store)
            # (a CRL listing nobody has len() 0: compare with None, never by truth)
            if c.subject == crl.issuer and revocation.newest_crl(c, [crl]) is not None
        ),
        None,
    )
    if issuer is None:
        raise InvalidInput(
            "The CRL is not signed by a pinned root or a CA certificate held here: "
            f"{crl.issuer.rfc4514_string()}.",
            field="file",
        )
    if crl.next_update_utc is None:
        raise InvalidInput("A CRL without a next update is not accepted.", field="file")
    if crl.last_update_utc > now + CLOCK_SKEW:
        raise InvalidInput(
            f"The CRL is dated {crl.last_update_utc:%Y-%m-%d %H:%M} UTC, ahead of this "
            "clock: not in force yet (import it once it is).",
            field="file",
            this_update=crl.last_update_utc.isoformat(),
        )
    if crl.next_update_utc <= now:
        raise InvalidInput(
            f"The CRL ran out at {crl.next_update_utc:%Y-%m-%d %H:%M} UTC: import the "
            "issuer's current one.",
            field="file",
            next_update=crl.next_update_utc.isoformat(),
        )
    issuer_fp = fingerprint(issuer)
    held = uow.signatures.next_crl_number(issuer_fp) - 1
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = held + 1
    held_crl = next(
        (r for r in uow.signatures.latest_crl_rows() if r.issuer_fingerprint == issuer_fp), None
    )
    der = crl.public_bytes(serialization.Encoding.DER)
    info = {
        "issuer": crl.issuer.rfc4514_string(),
        "number": number,
        "revoked": len(list(crl)),
        "next_update": crl.next_update_utc.isoformat(),
        "unchanged": False,
    }
    if held_crl is not None and number == held and bytes(held_crl.der) == der:
        # The very CRL held: imported again (a scheduled import with nothing new)
        return {**info, "unchanged": True}
    if number <= held:
        raise AlreadyExists(
            f"CRL {held} of this issuer is held already; this one is number {number}.",
            field="file",
        )
    if held_crl is not None:
        _refuse_undone_revocations(uow, x509.load_der_x509_crl(held_crl.der), crl, issuer)
    uow.signatures.add_crl(
        {
            "issuer_fingerprint": issuer_fp,
            "number": number,
            "der": der,
            "this_update": crl.last_update_utc,
            "next_update": crl.next_update_utc,
        }
    )
    return info


# Entries that may leave a later CRL: a hold released, or the removal itself.
_UNDOABLE = frozenset({x509.ReasonFlags.certificate_hold, x509.ReasonFlags.remove_from_crl})


def _refuse_undone_revocations(
    uow: UnitOfWork,
    held: x509.CertificateRevocationList,
    crl: x509.CertificateRevocationList,
    issuer: x509.Certificate,
) -> None:
    """``crl`` keeps every revocation of ``held`` but a hold, or that of a certificate we
    know to have expired by then; else InvalidInput naming the first it drops."""
    kept = {entry.serial_number for entry in crl}
    expired = {
        int(row.serial, 16)
        for row in uow.signatures.certificates()
        if as_utc(row.not_after) <= crl.last_update_utc
        and issued_by(x509.load_pem_x509_certificate(row.cert_pem.encode()), issuer)
    }
    for entry in held:
        if entry.serial_number in kept or entry.serial_number in expired:
            continue
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            reason = None
        if reason in _UNDOABLE:
            continue
        raise InvalidInput(
            f"The CRL leaves out certificate {entry.serial_number:x}, revoked in the CRL "
            f"held ({reason.name if reason else 'no reason given'}): a revocation is not "
            "undone.",
            field="file",
            serial=format(entry.serial_number, "x"),
        )


def _issuers(uow: UnitOfWork, store: TrustStore) -> list[x509.Certificate]:
    """Who may have issued what we are handed: the pinned roots, then the CA certificates
    held here (an intermediate, or a root stored but not pinned)."""
    return list(store.roots()) + [
        x509.load_pem_x509_certificate(r.cert_pem.encode())
        for r in uow.signatures.certificates()
        if r.subject.is_ca
    ]


# Deeper than any CA hierarchy a province runs (root, intermediate, issuing CA).
_MOST_LINKS = 8


def require_pinned_chain(
    uow: UnitOfWork, store: TrustStore, certs: Iterable[x509.Certificate], field: str
) -> None:
    """Each of ``certs`` chains, by signature, to a pinned root, through CA certificates
    held here if need be; else ``ChainUntrusted`` naming the first that does not.

    What a peer's certificates are checked for when they are kept, so that a directory
    entry no message could ever be taken under is refused then, not found out at the
    first delivery. Validity and revocation are judged at each verification, as ever.
    """
    pinned = store.roots()
    issuers = _issuers(uow, store)
    for cert in certs:
        if not _chains_to(cert, pinned, issuers):
            described = describe(cert)
            raise ChainUntrusted(
                f"The certificate of {described.common_name or 'nobody'} (issued by "
                f"{cert.issuer.rfc4514_string()}) does not chain to a pinned root: pin the "
                "issuing installation's root first (`congvan keys trust FILE`).",
                field=field,
                sha256=described.sha256,
            )


def _chains_to(
    cert: x509.Certificate, pinned: list[x509.Certificate], issuers: list[x509.Certificate]
) -> bool:
    return root_of(cert, pinned, issuers) is not None


def root_of(
    cert: x509.Certificate,
    pinned: Sequence[x509.Certificate],
    issuers: Sequence[x509.Certificate],
) -> x509.Certificate | None:
    """The pinned root ``cert`` chains to by signature, through ``issuers`` if need be (or
    is), else None: the root of the path, whatever other certificates came with it. A
    path longer than a CA on it allows (its ``pathlen``, the root's too) is no path."""
    link = cert
    path = [cert]
    for _ in range(_MOST_LINKS):
        if link in pinned:
            return link if _within_path_lengths(path) else None
        root = next((r for r in pinned if issued_by(link, r)), None)
        if root is not None:
            return root if _within_path_lengths([*path, root]) else None
        parent = next((c for c in issuers if c != link and issued_by(link, c)), None)
        if parent is None:
            return None
        link = parent
        path.append(parent)
    return None


def _within_path_lengths(path: Sequence[x509.Certificate]) -> bool:
    """Whether each CA of ``path`` (the certificate first, its root last) has no more
    intermediate CAs below it than its path length constraint allows (RFC 5280 4.2.1.9);
    as openssl judges it."""
    for depth, ca in enumerate(path[1:], start=1):
        try:
            allowed = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            continue
        if allowed.path_length is not None and depth - 1 > allowed.path_length:
            return False
    return True


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key signed ``cert`` (and names match)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
