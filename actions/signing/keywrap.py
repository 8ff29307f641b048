"""Private keys at rest: passphrase encryption with a KDF cost that current guidance accepts.

A stored key is PKCS#8 ``ENCRYPTED PRIVATE KEY`` PEM, PBES2 (RFC 8018) with
PBKDF2-HMAC-SHA256 at ``KDF_ITERATIONS`` iterations and AES-256-CBC: what OWASP's Password
Storage Cheat Sheet accepts for PBKDF2 (600,000 iterations with HMAC-SHA256), which
``openssl pkey`` and ``cryptography`` both read.

Why not scrypt: OWASP's scrypt floor (N=2^17, r=8, p=1) needs 128 MiB, and OpenSSL 3.0
refuses scrypt over 32 MiB in PBES2, so ``openssl pkey`` could not read such a key.

Why not ``BestAvailableEncryption``: for PKCS#8, cryptography (42 to 48 at least) writes
PBKDF2-HMAC-SHA256 with 2,048 iterations, and its ``encryption_builder()`` does not serve
PKCS#8. So the PBES2 structure is built here with asn1crypto and cryptography's PBKDF2 and
AES; reading stays with cryptography's ``load_pem_private_key``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from asn1crypto import algos, core, keys, pem
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from congvan.states.errors import InvalidInput

# PBKDF2-HMAC-SHA256 iterations for new keys. Unlocking costs about 200 ms on one core at
# this cost, once per key per process (signing and anchoring cache unlocked keys).
DEFAULT_KDF_ITERATIONS = 600_000
# What ``wrap`` writes and ``current`` expects; read at each call, so the test suite lowers it
# for the keys of its fixtures (tests/conftest.py). Never lowered in service.
KDF_ITERATIONS = DEFAULT_KDF_ITERATIONS

# What counts as strong, whatever wrote the key (OWASP Password Storage Cheat Sheet, 2023):
# PBKDF2 iterations by HMAC hash, and scrypt's N*r*p (its weakest listed setting,
# N=2^14, r=8, p=5, gives 655,360; N=2^17, r=8, p=1 gives 1,048,576).
GUIDANCE_ITERATIONS = {"sha1": 1_300_000, "sha256": 600_000, "sha512": 210_000}
GUIDANCE_SCRYPT_COST = 655_360

_SALT_BYTES = 16
_SCRYPT_OID = "1.3.6.1.4.1.11591.4.11"  # id-scrypt, RFC 7914


class KeyUndecryptable(InvalidInput):
    """The private key could not be decrypted: the passphrase is wrong or the key is damaged."""


class _ScryptParams(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """RFC 7914 section 7.1; asn1crypto does not know scrypt."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("salt", core.OctetString),
        ("cost_parameter", core.Integer),
        ("block_size", core.Integer),
        ("parallelization_parameter", core.Integer),
        ("key_length", core.Integer, {"optional": True}),
    ]


@dataclass(frozen=True)
class KeyProtection:
    """How a stored private key is encrypted: scheme, KDF, its cost, and the cipher."""

    scheme: str  # pbes2 | pbes1 | legacy-pem | unencrypted | unknown
    kdf: str  # pbkdf2 | scrypt | md5-evp-bytestokey | none | unknown
    hmac: str | None = None  # PBKDF2's hash: sha1, sha256, sha512
    iterations: int | None = None  # PBKDF2
    scrypt: tuple[int, int, int] | None = None  # N, r, p
    cipher: str = "unknown"

    @property
    def meets_guidance(self) -> bool:
        """Whether the KDF cost is one OWASP's current guidance accepts."""
        if self.scheme != "pbes2":
            return False
        if self.kdf == "pbkdf2" and self.hmac in GUIDANCE_ITERATIONS:
            return (self.iterations or 0) >= GUIDANCE_ITERATIONS[self.hmac]
        if self.kdf == "scrypt" and self.scrypt is not None:
            n, r, p = self.scrypt
            return n * r * p >= GUIDANCE_SCRYPT_COST
        return False

    @property
    def current(self) -> bool:
        """Whether the key is as ``wrap`` writes it now: same scheme, at least today's cost."""
        return (
            self.scheme == "pbes2"
            and self.kdf == "pbkdf2"
            and self.hmac == "sha256"
            and self.cipher == "aes256_cbc"
            and (self.iterations or 0) >= KDF_ITERATIONS
        )

    def __str__(self) -> str:
        if self.kdf == "pbkdf2":
            cost = f"PBKDF2-HMAC-{(self.hmac or '?').upper()}, {self.iterations:,} iterations"
        elif self.kdf == "scrypt" and self.scrypt is not None:
            cost = "scrypt N={}, r={}, p={}".format(*self.scrypt)
        else:
            cost = self.kdf
        return f"{self.scheme.upper()} {cost}, {self.cipher.upper().replace('_', '-')}"


def current() -> KeyProtection:
    """How ``wrap`` protects a key now."""
    return KeyProtection("pbes2", "pbkdf2", "sha256", KDF_ITERATIONS, None, "aes256_cbc")


def wrap(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    passphrase: bytes,
    *,
    iterations: int | None = None,
) -> bytes:
    """Encrypt a private key as PKCS#8 PEM: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC."""
    rounds = KDF_ITERATIONS if iterations is None else iterations
    if rounds < 1:
        raise InvalidInput("The KDF needs at least one iteration.")
    plain = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt, iv = os.urandom(_SALT_BYTES), os.urandom(16)
    secret = PBKDF2HMAC(hashes.SHA256(), 32, salt, rounds).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    info = keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": algos.Pbkdf2Salt(name="specified", value=salt),
                            "iteration_count": rounds,
                            "prf": {"algorithm": "sha256", "parameters": core.Null()},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": encrypted,
        }
    )
    armoured: bytes = pem.armor("ENCRYPTED PRIVATE KEY", info.dump())
    return armoured


def protection(key_pem: bytes) -> KeyProtection:
    """Read how a PEM private key is protected, without decrypting it."""
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in key_pem:
        if b"DEK-Info:" in key_pem:  # OpenSSL's traditional format: one MD5 round
            line = key_pem.split(b"DEK-Info:", 1)[1].split(b"\n", 1)[0]
            cipher = line.split(b",", 1)[0].strip().decode("ascii", "replace").lower()
            return KeyProtection("legacy-pem", "md5-evp-bytestokey", iterations=1, cipher=cipher)
        if b"PRIVATE KEY-----" in key_pem:
            return KeyProtection("unencrypted", "none", cipher="none")
        raise InvalidInput("This is not a PEM private key.")
    try:
        _kind, _headers, der = pem.unarmor(key_pem)
        algorithm = keys.EncryptedPrivateKeyInfo.load(der)["encryption_algorithm"]
        name = algorithm["algorithm"].native
        if name != "pbes2":
            return KeyProtection("pbes1", name, cipher=name)
        params = algorithm["parameters"]
        cipher = params["encryption_scheme"]["algorithm"].native
        kdf = params["key_derivation_func"]
        if kdf["algorithm"].dotted == _SCRYPT_OID:
            s = _ScryptParams.load(kdf["parameters"].dump())
            cost = tuple(
                int(s[f].native)
                for f in ("cost_parameter", "block_size", "parallelization_parameter")
            )
            return KeyProtection(
                "pbes2", "scrypt", scrypt=(cost[0], cost[1], cost[2]), cipher=cipher
            )
        if kdf["algorithm"].native != "pbkdf2":
            return KeyProtection("pbes2", "unknown", cipher=cipher)
        pbkdf2: algos.Pbkdf2Params = kdf["parameters"]
        return KeyProtection(
            "pbes2",
            "pbkdf2",
            hmac=pbkdf2["prf"]["algorithm"].native,
            iterations=int(pbkdf2["iteration_count"].native),
            cipher=cipher,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput("The encrypted private key is damaged.") from exc
