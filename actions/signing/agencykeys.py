"""An agency's organisational key, unlocked once per process, for what the agency signs.

Audit anchors, outgoing packages, receipts and status messages are signed by the agency
itself (Decree 30 Art. 33), with its newest unrevoked organisational certificate whose key
is stored here (encrypted with the key passphrase). Unlocking costs the KDF (about 250 ms),
so a key is unlocked once per process and kept by its certificate's fingerprint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from congvan.states.errors import NotFound
from congvan.states.phrasing import moment
from congvan.storage.clock import as_utc
from congvan.storage.signatures import CertificateRow
from congvan.storage.unit_of_work import UnitOfWork

from . import pki, profiles
from .cms import SigningKey, sign_manifest
from .truststore import TrustStore


@dataclass(frozen=True)
class AgencyKey:
    """An agency's organisational key, its certificate and the CA certificates to embed."""

    agency_id: str
    key: SigningKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        # Refused here rather than by every peer later: what it signed would bounce.
        units = self.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        if [str(u.value) for u in units] != [self.agency_id]:
            raise ValueError(f"the certificate does not name agency {self.agency_id}")
        if profiles.profile_of(self.cert) != "agency":
            raise ValueError("what an agency signs is signed with the agency's certificate")

    def sign(self, body: bytes, at: datetime) -> bytes:
        """A detached CMS signature over ``body`` made at ``at``."""
        return sign_manifest(
            body, key=self.key, cert=self.cert, chain=list(self.chain), signing_time=at
        )


class AgencyKeys:
    """Unlocks agencies' organisational keys on first use; thread-safe."""

    def __init__(self, passphrase: Callable[[], str], trust: TrustStore) -> None:
        self.passphrase = passphrase
        self.trust = trust
        self._keys: dict[str, pki.PrivateKey] = {}
        # Signers made so far, by everything they were made from: the certificate (by
        # its fingerprint) and the pinned roots its chain was taken from.
        self._signers: dict[tuple[str, ...], AgencyKey] = {}
        self._lock = threading.Lock()

    def find(self, uow: UnitOfWork, agency_id: str, at: datetime) -> AgencyKey | None:
        """The agency's signer as of ``at``, or None when it has no usable key."""
        # Which certificate first (a short row): its signer is most often made already.
        fingerprint = uow.signatures.agency_fingerprint(agency_id, at)
        if fingerprint is None:
            return None
        with self._lock:
            found = self._signers.get(self._made_from(agency_id, fingerprint))
        if found is not None:
            return found
        row = uow.signatures.agency_certificate(agency_id, at)
        return None if row is None else self.signer(agency_id, row)

    def _made_from(self, agency_id: str, fingerprint: str) -> tuple[str, ...]:
        """What a signer is made from: the certificate (its fingerprint is its DER's
        digest) and the pinned roots its chain is taken from."""
        return (agency_id, fingerprint, *(p.fingerprint for p in self.trust.pinned()))

    def require(self, uow: UnitOfWork, agency_id: str, at: datetime) -> AgencyKey:
        """The agency's signer; a clear error when it has no organisational key usable at
        ``at``, saying why of the newest it keeps (revoked, expired, not valid yet)."""
        found = self.find(uow, agency_id, at)
        if found is None:
            raise _no_usable_key(uow, agency_id, at)
        return found

    def signer(self, agency_id: str, certificate: CertificateRow) -> AgencyKey:
        """The signer for a stored certificate row (its certificate and encrypted key).

        Made once per row and set of pinned roots: parsing and checking the certificate
        again for every package, receipt and status would give the same signer.
        """
        pem, fingerprint = certificate.cert_pem, certificate.fingerprint
        pinned = self.trust.pinned()
        made_from = (agency_id, fingerprint, *(p.fingerprint for p in pinned))
        with self._lock:
            found = self._signers.get(made_from)
        if found is not None:
            return found
        cert = x509.load_pem_x509_certificate(pem.encode())
        with self._lock:
            key = self._keys.get(fingerprint)
            if key is None:
                key = pki.load_private_key(certificate.key_pem.encode(), self.passphrase())
                self._keys[fingerprint] = key
        chain = tuple(p.certificate for p in pinned if p.certificate.subject == cert.issuer)
        signer = AgencyKey(agency_id, key, cert, chain)
        with self._lock:
            if len(self._signers) >= 256:  # rows replaced over a long life: start again
                self._signers.clear()
            self._signers[made_from] = signer
        return signer


def _no_usable_key(uow: UnitOfWork, agency_id: str, at: datetime) -> NotFound:
    """Why the agency has no organisational key to sign with at ``at``: none kept, or the
    newest kept revoked, run out, or valid only later (issued on a clock ahead of this
    one's: a demo's, say)."""
    kept = [r for r in uow.signatures.certificates(agency_id) if r.kind == "agency" and r.key_pem]
    newest = max(kept, key=lambda r: r.created_at, default=None)
    renew = "issue one valid now with `congvan keys issue-agency`"
    if newest is None or (
        newest.revoked_at is None and as_utc(newest.not_before) <= at <= as_utc(newest.not_after)
    ):
        return NotFound(
            f"Agency {agency_id} has no usable organisational certificate with a key: {renew}.",
            agency_id=agency_id,
        )
    whose = f"Agency {agency_id}'s organisational certificate"
    details = {"agency_id": agency_id, "sha256": newest.fingerprint}
    if newest.revoked_at is not None:
        return NotFound(f"{whose} is revoked: {renew}.", **details)
    if as_utc(newest.not_after) < at:
        said = moment(as_utc(newest.not_after), "en")
        return NotFound(f"{whose} expired at {said}: {renew}.", **details)
    said = moment(as_utc(newest.not_before), "en")
    return NotFound(
        f"{whose} is valid from {said} only (issued on a clock ahead of this one's): wait "
        f"until then, or {renew}.",
        not_before=as_utc(newest.not_before).isoformat(),
        **details,
    )
