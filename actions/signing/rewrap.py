"""Re-encrypting the stored private keys: today's KDF cost, or new passphrases.

The key store (``keystore``) keeps each key encrypted as ``keywrap`` writes it; a key
written at an older cost, or under a passphrase being changed, is rewrapped here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from congvan.states.errors import InvalidInput
from congvan.storage.signatures import CertificateRow
from congvan.storage.unit_of_work import UnitOfWork

from . import keywrap, pki

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rewrapped:
    """What ``rewrap_keys`` did: CA keys and other keys re-encrypted, keys left as they were."""

    ca: int
    keys: int
    unchanged: int


def stored_keys(uow: UnitOfWork) -> list[CertificateRow]:
    """The certificates whose private key we keep (encrypted), oldest first."""
    return [r for r in uow.signatures.certificates() if r.key_pem]


def rewrap_keys(
    uow: UnitOfWork,
    *,
    passphrase: str,
    ca_passphrase: str,
    new_passphrase: str | None = None,
    new_ca_passphrase: str | None = None,
    force: bool = False,
    progress: Callable[[], object] = lambda: None,
) -> Rewrapped:
    """Re-encrypt the stored private keys with today's KDF, optionally under new passphrases.

    A key already at today's cost whose passphrase does not change is left as it is unless
    ``force``. Every key is decrypted and re-encrypted before any is written, and the caller
    commits once: a passphrase that opens one key but not another changes nothing.
    """
    updates: list[tuple[str, str]] = []
    ca = keys = unchanged = 0
    for row in stored_keys(uow):
        is_ca = row.kind == "root"
        old, new = (ca_passphrase, new_ca_passphrase) if is_ca else (passphrase, new_passphrase)
        if not force and new is None and keywrap.protection(row.key_pem.encode()).current:
            _opened(row, old, is_ca)  # left as it is, and still said when it does not open
            unchanged += 1
            progress()
            continue
        updates.append((row.fingerprint, _rewrapped(row, old, new or old, is_ca)))
        ca, keys = (ca + 1, keys) if is_ca else (ca, keys + 1)
        progress()
    for fingerprint, key_pem in updates:
        uow.signatures.set_key_pem(fingerprint, key_pem)
    log.info(
        "keys rewrapped",
        extra={"action": "keys.rewrap", "ca": ca, "keys": keys, "unchanged": unchanged},
    )
    return Rewrapped(ca=ca, keys=keys, unchanged=unchanged)


def _rewrapped(row: CertificateRow, old: str, new: str, is_ca: bool) -> str:
    """The row's key re-encrypted under ``new``, checked to open again before it is kept."""
    key = _opened(row, old, is_ca)
    key_pem = pki.encrypt_key(key, new)
    # A key that would not open again is lost for good: read it back before it replaces the old.
    if _spki(pki.load_private_key(key_pem, new)) != _spki(key):
        raise InvalidInput("A re-encrypted key did not read back the same; nothing was changed.")
    return key_pem.decode()


def _opened(row: CertificateRow, passphrase: str, is_ca: bool) -> pki.PrivateKey:
    """The row's key, opened with ``passphrase``; refused, naming the setting, if it does
    not open."""
    setting = "CONGVAN_CA_KEY_PASSPHRASE" if is_ca else "CONGVAN_KEY_PASSPHRASE"
    try:
        return pki.load_private_key(row.key_pem.encode(), passphrase)
    except keywrap.KeyUndecryptable as exc:
        raise keywrap.KeyUndecryptable(
            f"The {row.kind} key {row.fingerprint[:16]} could not be decrypted: check "
            f"{setting}. No key was re-encrypted.",
            field=setting,
            fingerprint=row.fingerprint[:16],
        ) from exc


def _spki(key: pki.PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
