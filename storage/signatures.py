"""SQL for signing material: certificates (with encrypted keys), CRLs and signatures.

A certificate row's ``subject`` is its ``CertificateDescription``: stored as JSON, read
back as the dataclass, also from rows stored in the shape before it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, insert, or_, select, update

from congvan.states.certificates import CertificateDescription

from .locks import hold
from .prepared import Prepared
from .tables import Certificate, RevocationList, Signature

_certs = Certificate.__table__  # type: ignore[attr-defined]
_crls = RevocationList.__table__  # type: ignore[attr-defined]
_signatures = Signature.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class CertificateRow:
    """An X.509 certificate as stored: a root, an agency's or a signer's, with its key.

    ``key_pem`` is the encrypted PKCS#8 key, ``""`` when the key lives elsewhere (a USB
    token); the record's repr leaves it out, so a row that reaches a log never shows it.
    """

    id: str
    kind: str  # root | agency | signer
    agency_id: str | None
    username: str | None
    fingerprint: str  # SHA-256 of the DER, hex
    serial: str  # hex
    subject: CertificateDescription
    cert_pem: str
    key_pem: str = field(repr=False)
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None
    revocation_reason: str
    created_at: datetime


CERTIFICATE_FIELDS = tuple(f.name for f in dataclasses.fields(CertificateRow))
_CERTIFICATE_COLUMNS = tuple(_certs.c[name] for name in CERTIFICATE_FIELDS)


@dataclass(frozen=True, slots=True)
class SignatureRow:
    """A detached CMS signature over one revision's manifest, as stored."""

    id: str
    document_id: str
    revision: int
    manifest: bytes
    manifest_sha256: str
    cms: bytes
    mode: str
    signer: str
    certificate_fingerprint: str
    signing_time: datetime
    signed_pdf_sha256: str
    created_at: datetime


SIGNATURE_FIELDS = tuple(f.name for f in dataclasses.fields(SignatureRow))
# Every column in SignatureRow's order, so that a row builds the record by position.
_SIGNATURE_COLUMNS = tuple(_signatures.c[name] for name in SIGNATURE_FIELDS)


@dataclass(frozen=True, slots=True)
class CrlRow:
    """A certificate revocation list one of our authorities published, as stored."""

    id: int
    issuer_fingerprint: str
    number: int  # the CRL number: the newest of an issuer is in force
    der: bytes
    this_update: datetime
    next_update: datetime


CRL_FIELDS = tuple(f.name for f in dataclasses.fields(CrlRow))
_CRL_COLUMNS = tuple(_crls.c[name] for name in CRL_FIELDS)


class Crl(bytes):
    """A CRL's DER, with its SHA-256 taken once (verifiers key their verdicts by it)."""

    sha256: bytes

    def __new__(cls, der: bytes) -> Crl:
        crl = super().__new__(cls, der)
        crl.sha256 = hashlib.sha256(der).digest()
        return crl


class _CrlCache:
    """The DER of the CRLs in force, kept in memory by (issuer, number, this update).

    A stored CRL is never changed (a newer one is a new row), and an issuer's CRL number
    names one list (RFC 5280 §5.2.3), so the DER read once for a key holds for good:
    every verification reads which CRLs are in force, and their DER -- hundreds of
    kilobytes for an authority that revoked many certificates -- only when a new one is
    published.
    """

    SIZE = 64  # issuers times a few numbers; the oldest entry goes first

    def __init__(self) -> None:
        self._der: dict[tuple[str, int, datetime], Crl] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, datetime]) -> Crl | None:
        return self._der.get(key)

    def put(self, key: tuple[str, int, datetime], der: bytes) -> Crl:
        crl = Crl(der)
        with self._lock:
            while len(self._der) >= self.SIZE:
                self._der.pop(next(iter(self._der)))
            self._der[key] = crl
        return crl


_CRL_CACHE = _CrlCache()


# What every verification and every signing by an agency reads, built once: building a
# statement and its cache key costs more than SQLite takes to run it.
# Every delivery, inbox and status message reads these (see prepared.py).
_HELD_CAS = Prepared(select(_certs.c.fingerprint, _certs.c.cert_pem).where(_certs.c.kind == "root"))
_newest_crl = (
    select(_crls.c.issuer_fingerprint, func.max(_crls.c.number).label("number"))
    .group_by(_crls.c.issuer_fingerprint)
    .subquery()
)
_IN_FORCE = (
    (_newest_crl.c.issuer_fingerprint == _crls.c.issuer_fingerprint)
    & (_newest_crl.c.number == _crls.c.number),
)
_LATEST_CRLS = Prepared(
    select(*_CRL_COLUMNS).join(_newest_crl, *_IN_FORCE).order_by(_crls.c.issuer_fingerprint)
)
# Which CRLs are in force, without their DER (see _CrlCache); then the DER of one.
_LATEST_CRL_KEYS = Prepared(
    select(_crls.c.id, _crls.c.issuer_fingerprint, _crls.c.number, _crls.c.this_update)
    .join(_newest_crl, *_IN_FORCE)
    .order_by(_crls.c.issuer_fingerprint)
)
_CRL_DER = Prepared(select(_crls.c.der).where(_crls.c.id == bindparam("id")))
# An agency's or a signer's newest unrevoked certificate with its key, valid at ``at``.
_USABLE_WHERE = (
    _certs.c.agency_id == bindparam("agency_id"),
    _certs.c.kind == bindparam("kind"),
    _certs.c.key_pem != "",
    _certs.c.revoked_at.is_(None),
    _certs.c.not_before <= bindparam("at"),
    _certs.c.not_after > bindparam("at"),
)
_USABLE = Prepared(
    select(*_CERTIFICATE_COLUMNS)
    .where(*_USABLE_WHERE)
    .order_by(_certs.c.not_before.desc())
    .limit(1)
)
_USABLE_FINGERPRINT = Prepared(  # what every signing by an agency asks first
    select(_certs.c.fingerprint).where(*_USABLE_WHERE).order_by(_certs.c.not_before.desc()).limit(1)
)
_keyed = Certificate.__table__.alias("keyed")  # type: ignore[attr-defined]
_LISTED = Prepared(  # every verification of an exchange message runs it
    select(_certs.c.fingerprint).where(
        _certs.c.agency_id == bindparam("agency_id"),
        _certs.c.kind == "agency",
        # An agency whose key is held here is ours: its messages are taken under its own
        # certificates alone (a certificate stored without a key beside them, imported by
        # mistake or by malice, names it and speaks for nobody).
        or_(
            _certs.c.key_pem != "",
            ~exists().where(
                _keyed.c.agency_id == bindparam("agency_id"),
                _keyed.c.kind == "agency",
                _keyed.c.key_pem != "",
            ),
        ),
    )
)
_LATEST_SIGNATURE = Prepared(  # every delivery's claim runs it (see prepared.py)
    select(*_SIGNATURE_COLUMNS)
    .where(_signatures.c.document_id == bindparam("document_id"))
    .order_by(_signatures.c.created_at.desc(), _signatures.c.id.desc())
    .limit(1)
)


class SignatureRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def hold_certificate(self, fingerprint: str) -> None:
        """Hold the certificate's fingerprint until the transaction ends: whether it is
        stored, then storing it, is one step for two callers at once (an import and a
        trust of the same root, say)."""
        hold(self.conn, f"congvan.certificate:{fingerprint}")

    def hold_ca(self) -> None:
        """Hold our certification authority until the transaction ends: one creates it,
        and its CRLs are numbered (and list the revocations) one after another."""
        hold(self.conn, "congvan.ca")

    # certificates ---------------------------------------------------------------------------

    def add_certificate(self, row: CertificateRow) -> None:
        """Store a certificate, its ``subject`` as JSON."""
        stored = {name: getattr(row, name) for name in CERTIFICATE_FIELDS}
        stored["subject"] = json.dumps(row.subject.as_dict(), ensure_ascii=False)
        self.conn.execute(insert(_certs), [stored])

    def certificate(self, fingerprint: str) -> CertificateRow | None:
        query = select(*_CERTIFICATE_COLUMNS).where(_certs.c.fingerprint == fingerprint)
        row = self.conn.execute(query).first()
        return _certificate(row) if row else None

    def certificates(self, agency_id: str | None = None) -> list[CertificateRow]:
        query = select(*_CERTIFICATE_COLUMNS).order_by(_certs.c.created_at)
        if agency_id is not None:
            query = query.where(_certs.c.agency_id == agency_id)
        return [_certificate(r) for r in self.conn.execute(query)]

    def roots(self) -> list[CertificateRow]:
        rows = self.conn.execute(select(*_CERTIFICATE_COLUMNS).where(_certs.c.kind == "root"))
        return [_certificate(r) for r in rows]

    def held_cas(self) -> list[tuple[str, str]]:
        """The CA certificates stored here, roots or intermediates, pinned or not:
        (fingerprint, PEM) each."""
        return [(str(fp), str(pem)) for fp, pem in _HELD_CAS.all(self.conn, {})]

    def signing_certificate(
        self, agency_id: str, username: str, at: datetime
    ) -> CertificateRow | None:
        """The newest unrevoked certificate with a stored key for this signer, valid ``at``."""
        return self._usable("signer", agency_id, at, _certs.c.username == username)

    def an_agency_key(self) -> CertificateRow | None:
        """The newest unrevoked organisational certificate of any agency with a stored key:
        what background work unlocks (to check, as a process starts, that it can)."""
        c = _certs.c
        row = self.conn.execute(
            select(*_CERTIFICATE_COLUMNS)
            .where(c.kind == "agency", c.key_pem != "", c.revoked_at.is_(None))
            .order_by(c.created_at.desc())
            .limit(1)
        ).first()
        return _certificate(row) if row else None

    def a_kept_key(self) -> CertificateRow | None:
        """The newest certificate of a signer or an agency with its key kept here, revoked
        or not: a key under the one passphrase every key here is locked with."""
        c = _certs.c
        row = self.conn.execute(
            select(*_CERTIFICATE_COLUMNS)
            .where(c.kind.in_(("agency", "signer")), c.key_pem != "")
            .order_by(c.created_at.desc())
            .limit(1)
        ).first()
        return _certificate(row) if row else None

    def listed_fingerprints(self, agency_id: str) -> frozenset[str]:
        """The fingerprints of the organisational certificates held for ``agency_id``: its
        own (with their keys) when it is ours, those of its directory entry when a peer."""
        return frozenset(str(row[0]) for row in _LISTED.all(self.conn, {"agency_id": agency_id}))

    def agency_certificate(self, agency_id: str, at: datetime) -> CertificateRow | None:
        """The agency's newest unrevoked organisational certificate with a stored key."""
        params = {"agency_id": agency_id, "kind": "agency", "at": at}
        row = _USABLE.first(self.conn, params)
        return _certificate(row) if row else None

    def agency_fingerprint(self, agency_id: str, at: datetime) -> str | None:
        """The fingerprint of what ``agency_certificate`` would return (none of its text)."""
        params = {"agency_id": agency_id, "kind": "agency", "at": at}
        row = _USABLE_FINGERPRINT.first(self.conn, params)
        return str(row[0]) if row else None

    def _usable(
        self, kind: str, agency_id: str, at: datetime, *conditions: Any
    ) -> CertificateRow | None:
        c = _certs.c
        row = self.conn.execute(
            select(*_CERTIFICATE_COLUMNS)
            .where(
                c.agency_id == agency_id,
                c.kind == kind,
                c.key_pem != "",
                c.revoked_at.is_(None),
                c.not_before <= at,
                c.not_after > at,
                *conditions,
            )
            .order_by(c.not_before.desc())
            .limit(1)
        ).first()
        return _certificate(row) if row else None

    def revoke(self, fingerprint: str, at: datetime, reason: str) -> bool:
        c = _certs.c
        result = self.conn.execute(
            update(_certs)
            .where(c.fingerprint == fingerprint, c.revoked_at.is_(None))
            .values(revoked_at=at, revocation_reason=reason)
        )
        return result.rowcount == 1

    def set_key_pem(self, fingerprint: str, key_pem: str) -> None:
        """Replace a stored (encrypted) private key, e.g. re-encrypted at a higher cost."""
        self.conn.execute(
            update(_certs).where(_certs.c.fingerprint == fingerprint).values(key_pem=key_pem)
        )

    def revoked_pems(self) -> list[tuple[str, str]]:
        """(fingerprint, PEM) of each certificate revoked here: what every CRL of their
        issuer must list."""
        query = select(_certs.c.fingerprint, _certs.c.cert_pem).where(
            _certs.c.revoked_at.is_not(None)
        )
        return [(str(fp), str(pem)) for fp, pem in self.conn.execute(query)]

    def revoked(self) -> list[CertificateRow]:
        """Certificates revoked so far; the CRL of their issuer lists them all."""
        query = select(*_CERTIFICATE_COLUMNS).where(_certs.c.revoked_at.is_not(None))
        rows = self.conn.execute(query)
        return [_certificate(r) for r in rows]

    # revocation lists -----------------------------------------------------------------------

    def add_crl(self, row: dict[str, Any]) -> None:
        self.conn.execute(insert(_crls), [row])

    def next_crl_number(self, issuer_fingerprint: str) -> int:
        value = self.conn.execute(
            select(func.max(_crls.c.number)).where(_crls.c.issuer_fingerprint == issuer_fingerprint)
        ).scalar()
        return int(value or 0) + 1

    def latest_crls(self) -> list[bytes]:
        """The newest CRL of every issuer (each a :class:`Crl`, its digest taken)."""
        crls: list[bytes] = []
        for crl_id, issuer, number, this_update in _LATEST_CRL_KEYS.all(self.conn, {}):
            key = (issuer, number, this_update)
            crl = _CRL_CACHE.get(key)
            if crl is None:
                row = _CRL_DER.first(self.conn, {"id": crl_id})
                if row is None:  # gone since it was listed: not in force
                    continue
                crl = _CRL_CACHE.put(key, bytes(row[0]))
            crls.append(crl)
        return crls

    def latest_crl_rows(self) -> list[CrlRow]:
        """The newest CRL row of every issuer, in issuer order."""
        return [CrlRow(*r) for r in _LATEST_CRLS.all(self.conn, {})]

    # signatures -----------------------------------------------------------------------------

    def add_signature(self, row: SignatureRow) -> None:
        self.conn.execute(insert(_signatures), [dataclasses.asdict(row)])

    def signature(self, signature_id: str) -> SignatureRow | None:
        query = select(*_SIGNATURE_COLUMNS).where(_signatures.c.id == signature_id)
        row = self.conn.execute(query).first()
        return SignatureRow(*row) if row else None

    def latest_signature(self, document_id: str) -> SignatureRow | None:
        row = _LATEST_SIGNATURE.first(self.conn, {"document_id": document_id})
        return SignatureRow(*row) if row else None


def _certificate(row: Sequence[Any]) -> CertificateRow:
    """A row of ``_CERTIFICATE_COLUMNS`` with its ``subject`` read into a description."""
    values = dict(zip(CERTIFICATE_FIELDS, row, strict=True))
    values["subject"] = _description(values["subject"])
    return CertificateRow(**values)


@functools.lru_cache(maxsize=256)
def _description(subject: str) -> CertificateDescription:
    """A stored ``subject`` read (the same few certificates are read on every delivery)."""
    return CertificateDescription.from_dict(json.loads(subject))
