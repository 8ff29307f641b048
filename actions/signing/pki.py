"""Issuing certificates, keys and CRLs for signing official documents, as pure functions.

A certification authority issues two kinds of signing certificate (Decree 68/2024/NĐ-CP):

- the **agency** (organisational) certificate: ``CN = O = agency name``, ``OU = agency id``;
- the **signer** (personal) certificate: ``CN = full name``, ``title = position``,
  ``O = agency name``, ``OU = agency id``, ``UID = user id`` (e.g. ``CCCD:027090001234``).

The agency id (mã định danh, e.g. ``000.00.00.H57``) is always the OU, so a verifier reads it
from either kind of certificate the same way. Both kinds carry the key usages
digitalSignature and nonRepudiation (critical) and a CRL distribution point, because
pyhanko-certvalidator consults revocation data only for certificates that declare one.

Keys are RSA-2048 by default or ECDSA P-256, signed with SHA-256, and only ever leave this
module as encrypted PKCS#8 PEM (PBKDF2-HMAC-SHA256 at 600,000 iterations: ``keywrap``).
Errors never quote a passphrase or a key. Certificates made elsewhere are read by
``certfiles``, and any certificate is described by ``description``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, NotRequired, TypedDict, Unpack

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from congvan.states.errors import InvalidInput
from congvan.states.text import nfc, unstorable
from congvan.states.timeliness import LAST_DAY

from . import keywrap, profiles

KeyType = Literal["rsa", "ec"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Passphrase = bytes | str

COUNTRY = "VN"
RSA_KEY_SIZE = 2048
# The last moment a certificate made here may be valid: the end of the days reckoned with.
_LAST_MOMENT = datetime.combine(LAST_DAY, datetime.max.time(), UTC)

# The bits of KeyUsage in cryptography's names (nonRepudiation is "content_commitment").
_KEY_USAGE_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


@dataclass(frozen=True)
class Issued:
    """A certificate (PEM) and its private key (encrypted PKCS#8 PEM)."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


class Revocation(NamedTuple):
    """One entry of a CRL; ``reason=None`` leaves the reason code out."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None


def make_key_usage(**usages: bool) -> x509.KeyUsage:
    """A KeyUsage with the named bits set (cryptography's names) and all others clear."""
    bits = dict.fromkeys(_KEY_USAGE_BITS, False)
    unknown = set(usages) - set(bits)
    if unknown:
        raise InvalidInput(f"Unknown key usage: {', '.join(sorted(unknown))}.")
    bits.update(usages)
    return x509.KeyUsage(**bits)


SIGNING_KEY_USAGE = make_key_usage(digital_signature=True, content_commitment=True)
CA_KEY_USAGE = make_key_usage(key_cert_sign=True, crl_sign=True)


# -- issuing ----------------------------------------------------------------------------


def create_ca(
    common_name: str,
    organization: str,
    *,
    passphrase: Passphrase,
    valid_from: datetime,
    valid_days: int,
    key_type: KeyType = "rsa",
    path_length: int = 0,
) -> Issued:
    """Create a self-signed root CA that issues end-entity certificates directly."""
    key = _new_key(key_type)
    subject = _name((NameOID.ORGANIZATION_NAME, organization), (NameOID.COMMON_NAME, common_name))
    builder = (
        _builder(subject, subject, key.public_key(), valid_from, valid_days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
    )
    cert = builder.sign(key, hashes.SHA256())
    return Issued(_pem(cert), encrypt_key(key, passphrase))


class Terms(TypedDict):
    """What an end-entity certificate is issued with, besides its subject and profile."""

    passphrase: Passphrase  # encrypts the new key
    valid_from: datetime
    valid_days: int
    crl_url: str  # an absolute URI
    key_type: NotRequired[KeyType]  # "rsa" when not given
    key_usage: NotRequired[x509.KeyUsage]  # SIGNING_KEY_USAGE when not given


def issue_agency_certificate(
    ca: Issued,
    ca_passphrase: Passphrase,
    *,
    agency_id: str,
    agency_name: str,
    profile: profiles.Profile | None = "agency",
    **terms: Unpack[Terms],
) -> Issued:
    """Issue an agency's organisational signing certificate (``profile=None``: no profile
    extensions, as some other CAs make them)."""
    subject = _name(
        (NameOID.ORGANIZATION_NAME, agency_name),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, agency_id),
        (NameOID.COMMON_NAME, agency_name),
    )
    return _issue(ca, ca_passphrase, subject, profile, **terms)


def issue_signer_certificate(
    ca: Issued,
    ca_passphrase: Passphrase,
    *,
    full_name: str,
    position: str,
    agency_id: str,
    agency_name: str,
    user_id: str,
    profile: profiles.Profile | None = "signer",
    **terms: Unpack[Terms],
) -> Issued:
    """Issue a person's signing certificate for their position in an agency."""
    subject = _name(
        (NameOID.ORGANIZATION_NAME, agency_name),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, agency_id),
        (NameOID.TITLE, position),
        (NameOID.USER_ID, user_id),
        (NameOID.COMMON_NAME, full_name),
    )
    return _issue(ca, ca_passphrase, subject, profile, **terms)


def make_crl(
    ca: Issued,
    ca_passphrase: Passphrase,
    revoked: Sequence[tuple[int, datetime, x509.ReasonFlags | None]],
    *,
    this_update: datetime,
    next_update: datetime,
    number: int,
) -> bytes:
    """Sign a CRL (DER) listing the revoked serials with their dates and reasons."""
    ca_cert, ca_key = _ca_material(ca, ca_passphrase)
    this_update, next_update = _utc(this_update), _utc(next_update)
    if next_update <= this_update:
        raise InvalidInput("A CRL's next update must come after its this update.")
    if number < 0:
        raise InvalidInput("A CRL number must not be negative.")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )
    for entry in revoked:
        serial, revoked_at, reason = Revocation(*entry)
        revoked_builder = (
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_utc(revoked_at))
        )
        if reason is not None:
            revoked_builder = revoked_builder.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(revoked_builder.build())
    crl = builder.sign(ca_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


# -- keys -------------------------------------------------------------------------------


# The shortest passphrase a key is stored under (NIST SP 800-63B asks 8 of a person's
# secret; a key anyone who copies the database may attack offline deserves more). Keys
# stored before under a shorter one still open: the floor is for storing.
MIN_PASSPHRASE_CHARS = 12


def encrypt_key(key: PrivateKey, passphrase: Passphrase) -> bytes:
    """Serialise a private key as passphrase-encrypted PKCS#8 PEM at today's KDF cost;
    a passphrase shorter than MIN_PASSPHRASE_CHARS is refused."""
    secret = passphrase_bytes(passphrase)
    if len(secret.decode("utf-8", "replace")) < MIN_PASSPHRASE_CHARS:
        raise InvalidInput(
            f"A passphrase that protects a key is at least {MIN_PASSPHRASE_CHARS} characters: "
            "whoever copies the database can try passphrases offline as fast as they like.",
            field="passphrase",
            min_length=MIN_PASSPHRASE_CHARS,
        )
    return keywrap.wrap(key, secret)


def load_private_key(key_pem: bytes, passphrase: Passphrase) -> PrivateKey:
    """Decrypt an encrypted PEM private key (RSA or EC), at whatever KDF cost it was stored."""
    secret = passphrase_bytes(passphrase)
    try:
        key = serialization.load_pem_private_key(key_pem, password=secret)
    except TypeError as exc:  # cryptography's way of saying "this key is not encrypted"
        raise InvalidInput(
            "The private key is not encrypted; keys are stored only as encrypted PKCS#8."
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise keywrap.KeyUndecryptable(
            "The private key could not be decrypted: the passphrase is wrong (an "
            "installation's keys open with CONGVAN_KEY_PASSPHRASE) or the key is damaged.",
            setting="CONGVAN_KEY_PASSPHRASE",
        ) from exc
    return signing_key(key)


def same_public_key(key: PrivateKey, cert: x509.Certificate) -> bool:
    """Whether the private key is the one the certificate names."""

    def spki(public_key: Any) -> bytes:
        return bytes(
            public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    return spki(key.public_key()) == spki(cert.public_key())


def signing_key(key: object) -> PrivateKey:
    """The key, if it is one that can sign documents (RSA or ECDSA)."""
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key
    raise InvalidInput("Only RSA and ECDSA private keys can sign documents.")


def passphrase_bytes(passphrase: Passphrase) -> bytes:
    """A passphrase as bytes; an empty one is refused."""
    secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
    if not secret:
        raise InvalidInput("A passphrase must not be empty.")
    return secret


# -- helpers ----------------------------------------------------------------------------


def _issue(
    ca: Issued,
    ca_passphrase: Passphrase,
    subject: x509.Name,
    profile: profiles.Profile | None,
    *,
    passphrase: Passphrase,
    valid_from: datetime,
    valid_days: int,
    crl_url: str,
    key_type: KeyType = "rsa",
    key_usage: x509.KeyUsage = SIGNING_KEY_USAGE,
) -> Issued:
    if "://" not in crl_url:
        raise InvalidInput("The CRL URL must be an absolute URI, e.g. http://ca.example/ca.crl.")
    ca_cert, ca_key = _ca_material(ca, ca_passphrase)
    _within_the_ca(ca_cert, _utc(valid_from), valid_days)
    key = _new_key(key_type)
    distribution_point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(crl_url)],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), valid_from, valid_days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(_authority_key_id(ca_cert), critical=False)
        .add_extension(x509.CRLDistributionPoints([distribution_point]), critical=False)
    )
    for extension in profiles.extensions(profile) if profile else ():
        builder = builder.add_extension(extension, critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(_pem(cert), encrypt_key(key, passphrase))


def _ca_material(ca: Issued, passphrase: Passphrase) -> tuple[x509.Certificate, PrivateKey]:
    """The CA's certificate and decrypted key, after checking they belong together."""
    cert = ca.certificate
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise InvalidInput("The issuing certificate is not a CA certificate.")
    key = load_private_key(ca.key_pem, passphrase)
    if not same_public_key(key, cert):
        raise InvalidInput("The CA private key does not match the CA certificate.")
    return cert, key


def _within_the_ca(ca_cert: x509.Certificate, not_before: datetime, valid_days: int) -> None:
    """A certificate never outlives the CA that issues it: past the CA's own validity a
    verifier finds no valid path for it."""
    most = (ca_cert.not_valid_after_utc - not_before).days
    if valid_days > most:
        raise InvalidInput(
            f"A certificate cannot outlive its CA, valid until "
            f"{ca_cert.not_valid_after_utc:%Y-%m-%d}: at most {most} days from "
            f"{not_before:%Y-%m-%d}.",
            field="valid_days",
            max_days=most,
        )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    valid_from: datetime,
    valid_days: int,
) -> x509.CertificateBuilder:
    if valid_days <= 0:
        raise InvalidInput("A certificate must be valid for at least one day.")
    not_before = _utc(valid_from)
    # The days the engine reckons with end with states.timeliness.LAST_DAY.
    most = (_LAST_MOMENT - not_before).days
    if valid_days > most:
        raise InvalidInput(
            f"A certificate is valid until {LAST_DAY.year} at the latest: at most {most} days from "
            f"{not_before:%Y-%m-%d}.",
            field="valid_days",
            max_days=most,
        )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=valid_days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


# X.520's upper bound of each name this module writes (RFC 5280 Appendix A: 64 characters;
# ub-common-name, ub-organization-name...). cryptography holds a common name to 64 bytes of
# UTF-8 instead, where a Vietnamese letter takes 2 or 3: "Sở Lao động - Thương binh và Xã
# hội tỉnh Thừa Thiên Huế", 55 characters, takes 73. The name is written as X.520 bounds it
# (the package's ``__init__`` quiets the warning cryptography gives each time it reads one).
NAME_LENGTH = 64


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    """A subject of these names, each one line of text as the API keeps it (NFC, no
    control or hidden character) and within X.520's bound, or InvalidInput naming it."""
    names = []
    for oid, value in attributes:
        field = oid._name
        problem = unstorable(value, multi_line=False)
        if problem is not None:
            raise InvalidInput(f"The certificate's {field} {problem}.", field=field)
        value = str(nfc(value.strip()))
        if not value:
            raise InvalidInput(f"The certificate's {field} must not be empty.", field=field)
        if len(value) > NAME_LENGTH:
            raise InvalidInput(
                f"The certificate's {field} holds at most {NAME_LENGTH} characters (X.520); "
                f"{value[:40]!r}... takes {len(value)}.",
                field=field,
                max_length=NAME_LENGTH,
                length=len(value),
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            names.append(x509.NameAttribute(oid, value, _validate=False))
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY), *names])


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise InvalidInput(f"Unknown key type {key_type!r}; use 'rsa' or 'ec'.")


def _utc(moment: datetime) -> datetime:
    # A naive datetime would silently be read as UTC; in Vietnam that is 7 hours off.
    if moment.tzinfo is None:
        raise InvalidInput("Datetimes must carry a time zone.")
    return moment.astimezone(UTC)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
