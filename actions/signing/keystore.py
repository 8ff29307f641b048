"""The key store: our CA, agencies' and signers' certificates, CRLs, kept in the database.

Private keys are stored only as encrypted PKCS#8 (the passphrase comes from configuration,
never from the database) and never leave this module, or ``rewrap`` that re-encrypts them,
in clear. Our CA's key may have a passphrase of its own (``ca_passphrase``); the agencies'
and signers' share another.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from congvan.states.certificates import comparable
from congvan.states.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    WeakAlgorithm,
)
from congvan.storage.clock import as_utc
from congvan.storage.ids import new_id
from congvan.storage.signatures import CertificateRow
from congvan.storage.unit_of_work import UnitOfWork

from . import keywrap, ourcrls, pki
from .certfiles import import_certificates
from .certpath import CLOCK_SKEW
from .description import describe, owned_by
from .issuers import issued_by, require_pinned_chain
from .strict import check_key_strength
from .truststore import TrustStore

CRL_DAYS = 7
log = logging.getLogger("congvan.keys")

REASONS = {r.name: r for r in x509.ReasonFlags}
# What our CA revokes for, once and for good: not removeFromCRL (RFC 5280 §5.3.1 keeps it to
# delta CRLs, and in a full one verifiers such as openssl take the certificate as not
# revoked), nor certificateHold (a hold is released, and nothing here releases one).
REVOKE_REASONS = tuple(
    name for name in REASONS if name not in ("remove_from_crl", "certificate_hold")
)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class TrustMaterial:
    """What a verifier needs: the pinned roots and the newest CRL of each issuer.

    ``ignored`` lists roots the database holds that the trust store does not pin: they
    are not trusted, and a verifier says so.

    ``listed``: the certificates an agency's messages may be signed with, by agency (the
    fingerprints of its organisational certificates held here: ours, or its directory
    entry's). An agency missing from it has none: a root pinned for one installation
    does not speak for the agencies of another. ``None`` only offline (an evidence
    bundle, judged years later with no directory): the chain to the pinned roots is all.
    """

    roots: list[x509.Certificate]
    crls: list[bytes]
    ignored: tuple[str, ...] = ()
    listed: Mapping[str, frozenset[str]] | None = None
    # Offline, the roots that speak for an agency, by agency (fingerprints): whoever judges
    # an evidence bundle names them (``evidence verify --trust-for``). A root bound to
    # agencies speaks for them alone; an agency not named is judged against the roots
    # bound to none.
    bound: Mapping[str, frozenset[str]] | None = None
    # The CA certificates held here but not pinned (an intermediate imported with
    # ``keys import --kind root``): a path may pass through them to a pinned root when a
    # signature does not carry them, as the directory checked when it took a certificate
    # (``issuers.require_pinned_chain``). They anchor nothing.
    intermediates: tuple[x509.Certificate, ...] = ()

    def roots_for(self, agency_id: str) -> list[x509.Certificate]:
        """The roots a certificate of ``agency_id`` must chain to."""
        if not self.bound:
            return self.roots
        if agency_id in self.bound:
            return [r for r in self.roots if fingerprint(r) in self.bound[agency_id]]
        taken = frozenset().union(*self.bound.values())
        return [r for r in self.roots if fingerprint(r) not in taken]


def _store(
    uow: UnitOfWork,
    kind: str,
    issued: pki.Issued | x509.Certificate,
    now: datetime,
    *,
    agency_id: str | None = None,
    username: str | None = None,
    kept_ok: bool = False,
) -> CertificateRow:
    """Store the certificate (and its key, when issued here); ``AlreadyExists`` when it is
    stored already, unless ``kept_ok`` (then the row kept)."""
    cert = issued.certificate if isinstance(issued, pki.Issued) else issued
    key_pem = issued.key_pem.decode() if isinstance(issued, pki.Issued) else ""
    fp = fingerprint(cert)
    uow.signatures.hold_certificate(fp)
    kept = uow.signatures.certificate(fp)
    if kept is not None and kept_ok:
        return kept
    if kept is not None:
        raise AlreadyExists("This certificate is stored already.", fingerprint=fp)
    row = CertificateRow(
        id=new_id(),
        kind=kind,
        agency_id=agency_id,
        username=username,
        fingerprint=fp,
        serial=format(cert.serial_number, "x"),
        subject=describe(cert),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key_pem,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        revoked_at=None,
        revocation_reason="",
        created_at=now,
    )
    uow.signatures.add_certificate(row)
    return row


def keep_agency_certificate(
    uow: UnitOfWork, cert: x509.Certificate, agency_id: str, now: datetime
) -> CertificateRow:
    """Keep another installation's organisational certificate for ``agency_id``, no key;
    the caller has held it to a peer's rules (``import_certificate``'s for kind agency)."""
    return _store(uow, "agency", cert, now, agency_id=agency_id)


def _ca(uow: UnitOfWork) -> tuple[CertificateRow, pki.Issued]:
    roots = [r for r in uow.signatures.roots() if r.key_pem]
    if not roots:
        raise NotFound("No certification authority here: run `congvan keys init-ca` first.")
    row = roots[-1]
    return row, pki.Issued(cert_pem=row.cert_pem.encode(), key_pem=row.key_pem.encode())


def _backdated(ca: CertificateRow, now: datetime) -> datetime:
    """When a certificate issued ``now`` starts: the clock skew verifiers allow before now
    (not before its CA), so that a peer whose clock is a few minutes behind ours does not
    refuse what it signs at once as not yet valid (CAs commonly back-date so)."""
    return max(now - CLOCK_SKEW, as_utc(ca.not_before))


@contextmanager
def _naming_the_ca_passphrase() -> Iterator[None]:
    """Name the CA passphrase setting when the CA key does not open."""
    try:
        yield
    except keywrap.KeyUndecryptable as exc:
        raise keywrap.KeyUndecryptable(
            "The CA private key could not be decrypted: set CONGVAN_CA_KEY_PASSPHRASE to the "
            "CA's passphrase (unset, CONGVAN_KEY_PASSPHRASE is tried).",
            field="CONGVAN_CA_KEY_PASSPHRASE",
        ) from exc


# How long a certification authority made here is valid by default: ten years.
CA_VALID_DAYS = 3650


def init_ca(
    uow: UnitOfWork,
    name: str,
    organization: str,
    *,
    passphrase: str,
    now: datetime,
    store: TrustStore,
    valid_days: int = CA_VALID_DAYS,
) -> CertificateRow:
    """Create our certification authority, pin its root and publish its first CRL."""
    uow.signatures.hold_ca()  # two at once: one creates it, the other is told
    if any(r.key_pem for r in uow.signatures.roots()):
        raise AlreadyExists("A certification authority exists already.")
    ca = pki.create_ca(
        name,
        organization,
        passphrase=passphrase,
        valid_from=now - CLOCK_SKEW,  # as what it issues (_backdated)
        valid_days=valid_days,
    )
    row = _store(uow, "root", ca, now)
    publish_crl(uow, passphrase=passphrase, now=now)
    # Pinned before the commit: a root in the store whose row rolled back trusts nothing
    # that was not already signed by its key, which only this process has seen.
    store.pin(ca.certificate)
    return row


def _unlocks_the_kept_keys(uow: UnitOfWork, passphrase: str) -> None:
    """Refuse to lock a new key under a passphrase that does not open the keys kept: every
    process unlocks them all with the one CONGVAN_KEY_PASSPHRASE, so a key under another
    would be one no process could use (and ``keys rewrap`` could not reach)."""
    kept = uow.signatures.a_kept_key()
    if kept is None:
        return  # the first key: it sets the passphrase
    try:
        pki.load_private_key(kept.key_pem.encode(), passphrase)
    except keywrap.KeyUndecryptable as exc:
        raise InvalidInput(
            "CONGVAN_KEY_PASSPHRASE does not unlock the keys already stored "
            f"(tried the {kept.kind} key of {kept.agency_id}): a new key is stored under "
            "the same passphrase as they are.",
            field="CONGVAN_KEY_PASSPHRASE",
        ) from exc


@_naming_the_ca_passphrase()
def issue_signer(
    uow: UnitOfWork,
    agency_id: str,
    username: str,
    *,
    passphrase: str,
    crl_url: str,
    now: datetime,
    valid_days: int = 730,
    valid_from: datetime | None = None,
    ca_passphrase: str | None = None,
) -> CertificateRow:
    """A personal signing certificate for a user with the signer role.

    ``passphrase`` encrypts the new key; ``ca_passphrase`` (default: the same) unlocks the CA.
    """
    uow.peers.refuse_served_elsewhere(agency_id, "its signers' keys")
    user = uow.agencies.user(agency_id, username)
    agency = uow.agencies.agency(agency_id)
    if user is None or agency is None or "signer" not in user.roles.split(","):
        raise InvalidInput(f"'{username}' is not a signer of {agency_id}.", field="username")
    if not user.full_name or not user.position:
        raise InvalidInput("The signer needs a full name and a position.", field="username")
    row, ca = _ca(uow)
    _unlocks_the_kept_keys(uow, passphrase)
    issued = pki.issue_signer_certificate(
        ca,
        passphrase if ca_passphrase is None else ca_passphrase,
        full_name=user.full_name,
        position=user.position,
        agency_id=agency_id,
        agency_name=agency.name,
        user_id=f"{username}@{agency_id}",
        passphrase=passphrase,
        valid_from=valid_from or _backdated(row, now),
        valid_days=valid_days,
        crl_url=crl_url,
    )
    return _store(uow, "signer", issued, now, agency_id=agency_id, username=username)


@_naming_the_ca_passphrase()
def issue_agency(
    uow: UnitOfWork,
    agency_id: str,
    *,
    passphrase: str,
    crl_url: str,
    now: datetime,
    valid_days: int = 1095,
    ca_passphrase: str | None = None,
) -> CertificateRow:
    """The agency's organisational certificate (passphrases as for ``issue_signer``)."""
    agency = uow.agencies.agency(agency_id)
    if agency is None:
        raise NotFound(f"No agency {agency_id}.", agency_id=agency_id)
    uow.peers.refuse_served_elsewhere(agency_id, "its organisational key")
    row, ca = _ca(uow)
    _unlocks_the_kept_keys(uow, passphrase)
    issued = pki.issue_agency_certificate(
        ca,
        passphrase if ca_passphrase is None else ca_passphrase,
        agency_id=agency_id,
        agency_name=agency.name,
        passphrase=passphrase,
        valid_from=_backdated(row, now),
        valid_days=valid_days,
        crl_url=crl_url,
    )
    return _store(uow, "agency", issued, now, agency_id=agency_id)


def refuse_served_here(
    uow: UnitOfWork, agency_id: str, now: datetime, *, field: str, held: str
) -> None:
    """Refuse what holds another installation's certificates for an agency this one
    serves (it has users or its organisational key here); ``held`` says what it has."""
    if uow.agencies.has_users(agency_id) or uow.signatures.agency_certificate(agency_id, now):
        raise InvalidInput(
            f"Agency {agency_id} is served by this instance (it has users or its key here): "
            f"{held}.",
            field=field,
            agency_id=agency_id,
        )


def import_certificate(
    uow: UnitOfWork,
    data: bytes,
    *,
    kind: str,
    now: datetime,
    agency_id: str | None = None,
    username: str | None = None,
    password: str | None = None,
    store: TrustStore | None = None,
) -> list[CertificateRow]:
    """Store certificates made elsewhere (PEM, DER, PKCS#7 or PKCS#12).

    A root stored here is not trusted until it is pinned (``trust``), and belongs to no
    agency. An agency's or a signer's is held for an agency of this directory and must
    name it, with the profile of its kind; an agency's, what its messages are taken
    under (as a peer's), must also chain to a root pinned in ``store``.
    """
    if kind not in ("root", "agency", "signer"):
        raise InvalidInput("kind is root, agency or signer.", field="kind")
    certs = import_certificates(data, password)
    if kind == "root":
        if agency_id is not None or username is not None:
            raise InvalidInput(
                "A root belongs to no agency and no user: leave out the agency and the user.",
                field="agency" if agency_id is not None else "user",
            )
        for cert in certs:
            described = describe(cert)
            if not described.is_ca:
                raise InvalidInput(
                    f"The certificate of {described.common_name or 'nobody'} is not a CA "
                    "certificate: only a CA's is kept as a root.",
                    field="file",
                    sha256=described.sha256,
                )
    else:
        if agency_id is None:
            raise InvalidInput(
                "This certificate is held for an agency of the directory: name it.", field="agency"
            )
        if uow.agencies.agency(agency_id) is None:
            raise NotFound(f"No agency {agency_id}.", agency_id=agency_id)
        # A PKCS#12 file (or a bundle) carries the certificate with its chain: the chain's
        # CAs are not kept with it (a root is pinned on its own, `keys trust`).
        leaves = [c for c in certs if not describe(c).is_ca]
        if not leaves:
            raise InvalidInput(
                "The file holds only CA certificates: pin a root with `keys trust`, or "
                "keep it with --kind root.",
                field="file",
            )
        certs = leaves
        owned_by(certs, agency_id, kind)
        for cert in certs:
            _can_sign_now(cert, now)
        if kind == "agency":
            if username is not None:
                raise InvalidInput(
                    "An agency's certificate belongs to no user: leave out the user.",
                    field="user",
                )
            uow.agencies.hold(agency_id)  # its users or key are not added meanwhile
            refuse_served_here(
                uow,
                agency_id,
                now,
                field="agency",
                held="its organisational certificates are the ones made here with their "
                "keys (`keys issue-agency`); one imported would let whoever holds its key "
                "speak for it",
            )
            if store is None:
                raise TypeError("an agency's certificate is checked against the pinned roots")
            require_pinned_chain(uow, store, certs, "file")
        else:
            if username is not None:
                user = uow.agencies.user(agency_id, username)
                if user is None:
                    raise NotFound(f"No user {username} in agency {agency_id}.", username=username)
                if "signer" not in user.roles.split(","):  # as issue_signer holds it
                    raise InvalidInput(
                        f"'{username}' is not a signer of {agency_id}.", field="user"
                    )
                _names_no_other_user(certs, f"{username}@{agency_id}")
            if store is None:
                raise TypeError("a signer's certificate is checked against the pinned roots")
            # As an agency's: a certificate no signature could be taken under (its CA not
            # pinned here) is refused now, not found out at the first verification.
            require_pinned_chain(uow, store, certs, "file")
    return [_store(uow, kind, c, now, agency_id=agency_id, username=username) for c in certs]


def _can_sign_now(cert: x509.Certificate, now: datetime) -> None:
    """Refuse a certificate kept to sign with or to verify by that can do neither: run
    out already, its key too weak, or itself signed with a broken hash (SHA-1, MD5),
    as every verification would refuse a signature by it."""
    fp = _in_force_and_strong(cert, now, "The certificate", "signs nothing now")
    hashed = cert.signature_hash_algorithm
    if hashed is None or hashed.name not in ("sha256", "sha384", "sha512"):
        raise InvalidInput(
            f"The certificate is signed with {hashed.name if hashed else 'no hash'}: SHA-256, "
            "SHA-384 or SHA-512 are accepted.",
            field="file",
            sha256=fp,
        )


def _in_force_and_strong(cert: x509.Certificate, now: datetime, what: str, idle: str) -> str:
    """``cert``'s fingerprint; refused if it ran out by ``now`` (``idle`` says what it then
    does) or its key is too weak to trust what it signs."""
    fp = fingerprint(cert)
    if cert.not_valid_after_utc <= now:
        raise InvalidInput(
            f"{what} ran out at {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: it {idle}.",
            field="file",
            sha256=fp,
        )
    try:
        check_key_strength(cert, what, sha256=fp)
    except WeakAlgorithm as exc:
        raise InvalidInput(exc.message, field="file", **exc.details) from exc
    return fp


def _names_no_other_user(certs: list[x509.Certificate], holder: str) -> None:
    """Refuse a certificate registered to ``holder`` (user@agency) whose UID names another
    user of ours: as our CA writes it, a UID of the form user@agency names its holder."""
    for cert in certs:
        uid = describe(cert).user_id
        if "@" in uid and comparable(uid) != comparable(holder):
            raise InvalidInput(
                f"The certificate names {uid} as its holder, not {holder}.",
                field="user",
                sha256=fingerprint(cert),
            )


def revoke(
    uow: UnitOfWork,
    fp: str,
    *,
    reason: str,
    passphrase: str,
    now: datetime,
    crl_days: int = CRL_DAYS,
) -> bytes:
    """Revoke a certificate our CA issued and publish a CRL that lists it (``passphrase``:
    the CA's).

    A certificate another CA issued is refused: only its issuer can revoke it, and a
    revocation recorded here would be listed by no CRL, so verification would go on
    accepting it. Import that CA's CRL instead (``issuers.import_crl``).
    """
    if reason not in REVOKE_REASONS:
        raise InvalidInput(f"reason is one of {', '.join(sorted(REVOKE_REASONS))}.", field="reason")
    rows = [
        r
        for r in uow.signatures.certificates()
        if len(fp) >= 8 and r.fingerprint.startswith(fp.lower())
    ]
    if len(rows) > 1:
        raise InvalidInput(
            "That fingerprint prefix names several certificates.", field="fingerprint"
        )
    if not rows:
        raise NotFound("No such certificate.", fingerprint=fp)
    cert = x509.load_pem_x509_certificate(rows[0].cert_pem.encode())
    _ca_row, ca = _ca(uow)
    if rows[0].kind == "root":
        raise InvalidInput(
            "A root is not revoked by a CRL: to stop trusting it, remove it from the trust "
            "store (`congvan keys untrust FINGERPRINT`).",
            field="fingerprint",
        )
    if not issued_by(cert, ca.certificate):
        raise InvalidInput(
            f"This certificate was issued by {cert.issuer.rfc4514_string()}, not by this "
            "installation's CA; only its issuer can revoke it. Import that CA's CRL with "
            "`congvan keys import-crl FILE`.",
            field="fingerprint",
            issuer=cert.issuer.rfc4514_string(),
        )
    if not uow.signatures.revoke(rows[0].fingerprint, now, reason):
        raise NotFound("No such unrevoked certificate.", fingerprint=fp)
    return publish_crl(uow, passphrase=passphrase, now=now, days=crl_days)


@_naming_the_ca_passphrase()
def publish_crl(uow: UnitOfWork, *, passphrase: str, now: datetime, days: int = CRL_DAYS) -> bytes:
    """Sign and store a new CRL of our CA listing every revoked certificate it issued.

    ``passphrase`` is the CA key's.
    """
    uow.signatures.hold_ca()  # numbered one after another, each listing what was revoked
    row, ca = _ca(uow)
    ca_cert = ca.certificate
    listed: dict[int, tuple[int, datetime, x509.ReasonFlags | None]] = {}
    for r in uow.signatures.revoked():
        cert = x509.load_pem_x509_certificate(r.cert_pem.encode())
        if r.kind != "root" and r.revoked_at is not None and issued_by(cert, ca_cert):
            at = as_utc(r.revoked_at)
            listed[cert.serial_number] = (cert.serial_number, at, REASONS.get(r.revocation_reason))
    # A revocation never leaves our CRLs: what the last one we signed lists, the next lists
    # too, whatever the rows say now (a row un-revoked by SQL would else be published as
    # good again, under our CA's signature).
    for serial, entry in ourcrls.last_listed(uow, row.fingerprint, ca_cert).items():
        if serial not in listed:
            log.warning(
                "a revocation the database no longer records is kept on the CRL",
                extra={"action": "crl.revocation_kept", "serial": f"{serial:x}"},
            )
            listed[serial] = entry
    revoked = list(listed.values())
    number = uow.signatures.next_crl_number(row.fingerprint)
    der = pki.make_crl(
        ca,
        passphrase,
        revoked,
        this_update=now,
        next_update=now + timedelta(days=days),
        number=number,
    )
    uow.signatures.add_crl(
        {
            "issuer_fingerprint": row.fingerprint,
            "number": number,
            "der": der,
            "this_update": now,
            "next_update": now + timedelta(days=days),
        }
    )
    return der


def trust(
    uow: UnitOfWork, store: TrustStore, data: bytes, *, now: datetime, password: str | None = None
) -> list[x509.Certificate]:
    """Pin the CA certificates in ``data`` as trusted roots, and keep them in the database.

    A root out of date, or with a key too weak to trust what it signs, is refused: it
    would anchor no signature (a chain under it is refused at every verification).
    """
    certs = import_certificates(data, password)
    for cert in certs:
        _in_force_and_strong(cert, now, "The root", "anchors no signature now")
    for cert in certs:
        store.pin(cert)  # refuses anything but a CA certificate, before anything is kept
    for cert in certs:
        _store(uow, "root", cert, now, kept_ok=True)
    return certs


def trust_material(
    uow: UnitOfWork,
    store: TrustStore,
    agencies: Iterable[str] = (),
    *,
    noting_ignored: bool = False,
) -> TrustMaterial:
    """The pinned roots (never the database's), the newest CRL of every issuer, and the
    certificates listed for ``agencies`` (whose exchange messages are to be verified);
    with ``noting_ignored``, the roots the database holds unpinned, for a person to be
    told (no verifier looks at them: every message verified would read them for nothing).

    A CRL is only as good as its signature, which the verifier checks against the pinned
    root (or the CA on the path) that issued it; a CRL nobody trusted signed counts for
    nothing.
    """
    pins = store.pinned()  # one look at the directory for both
    pinned = {p.fingerprint for p in pins}
    unpinned = [(fp, pem) for fp, pem in uow.signatures.held_cas() if fp not in pinned]
    ignored = tuple(fp for fp, _ in unpinned) if noting_ignored else ()
    intermediates = tuple(
        ca for ca in (_held_ca(fp, pem) for fp, pem in unpinned) if ca.issuer != ca.subject
    )
    roots = [p.certificate for p in pins]
    listed = {agency: uow.signatures.listed_fingerprints(agency) for agency in set(agencies)}
    return TrustMaterial(
        roots=roots,
        crls=ourcrls.believed(uow, ourcrls.readable(uow.signatures.latest_crls()), _held_ca),
        ignored=ignored,
        listed=listed,
        intermediates=intermediates,
    )


# Held CA certificates as parsed, by fingerprint: every verification reads them.
_parsed_cas: dict[str, x509.Certificate] = {}


def _held_ca(fp: str, pem: str) -> x509.Certificate:
    cert = _parsed_cas.get(fp)
    if cert is None:
        if len(_parsed_cas) > 1024:
            _parsed_cas.clear()
        cert = _parsed_cas[fp] = x509.load_pem_x509_certificate(pem.encode())
    return cert
