"""Certificates, and a key with its chain, read from the files other tools make.

PEM (one certificate or many), DER, PKCS#7 (PEM or DER) and PKCS#12. Errors never quote a
password or a key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from congvan.states.errors import InvalidInput

from .pki import Passphrase, PrivateKey, passphrase_bytes, same_public_key, signing_key


class Pkcs12Bundle(NamedTuple):
    """What a PKCS#12 file holds: the key, its certificate and the rest of the chain."""

    key: PrivateKey
    cert: x509.Certificate
    chain: list[x509.Certificate]


def import_certificates(data: bytes, password: Passphrase | None = None) -> list[x509.Certificate]:
    """Read certificates from PEM (one or many), DER, PKCS#7 (PEM or DER) or PKCS#12 bytes.

    The order in the input is kept, each certificate once (a bundle that repeats one
    is the same certificate). A PKCS#12 file yields its certificate, then its chain.
    """
    return list({c.fingerprint(hashes.SHA256()): c for c in _read(data, password)}.values())


def _read(data: bytes, password: Passphrase | None) -> list[x509.Certificate]:
    if b"-----BEGIN PKCS7-----" in data:
        return _try_parse(pkcs7.load_pem_pkcs7_certificates, data)
    if b"-----BEGIN" in data:
        return _try_parse(x509.load_pem_x509_certificates, data)
    for parse in (
        lambda d: [x509.load_der_x509_certificate(d)],
        pkcs7.load_der_pkcs7_certificates,
    ):
        try:
            return parse(data)
        except ValueError:
            pass
    try:
        p12 = pkcs12.load_pkcs12(data, None if password is None else passphrase_bytes(password))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            "No certificate found: expected PEM, DER, PKCS#7, or PKCS#12 with its right "
            "password (a wrong or missing one reads as this too)."
        ) from exc
    certs = [p12.cert.certificate] if p12.cert else []
    certs += [c.certificate for c in p12.additional_certs]
    if not certs:
        raise InvalidInput("The PKCS#12 file holds no certificate.")
    key = p12.key
    if key is not None and not any(same_public_key(key, c) for c in certs):  # type: ignore[arg-type]
        # A token's export pairs its key with its certificate: a file whose key is of
        # another is not what it says (its certificates are kept, its key never is).
        raise InvalidInput(
            "The PKCS#12 file's private key belongs to none of its certificates: export the "
            "certificate with its own key, or give the certificate alone (PEM or DER)."
        )
    return certs


def import_pkcs12(data: bytes, password: Passphrase) -> Pkcs12Bundle:
    """Read a private key, its certificate and the chain from a PKCS#12 file."""
    try:
        p12 = pkcs12.load_pkcs12(data, passphrase_bytes(password))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            "The PKCS#12 file could not be read: the password is wrong or the file is damaged."
        ) from exc
    if p12.key is None or p12.cert is None:
        raise InvalidInput("The PKCS#12 file must hold a private key and its certificate.")
    key = signing_key(p12.key)
    cert = p12.cert.certificate
    if not same_public_key(key, cert):
        raise InvalidInput("The PKCS#12 private key does not match its certificate.")
    return Pkcs12Bundle(key, cert, [c.certificate for c in p12.additional_certs])


def _try_parse(
    parse: Callable[[bytes], list[x509.Certificate]], data: bytes
) -> list[x509.Certificate]:
    try:
        certs = parse(data)
    except ValueError as exc:
        raise InvalidInput("The PEM data holds no readable certificate.") from exc
    if not certs:
        raise InvalidInput("The PEM data holds no certificate.")
    return certs
