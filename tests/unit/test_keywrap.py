"""Private keys at rest: PBES2 with PBKDF2-HMAC-SHA256, read back by cryptography and openssl."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from congvan.actions.signing import keywrap, pki
from congvan.states.errors import InvalidInput

PASS = "mật khẩu khoá Huế-2025"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def openssl_reads(
    tmp_path: Path, key_pem: bytes, passphrase: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "key.pem"
    path.write_bytes(key_pem)
    return subprocess.run(
        ["openssl", "pkey", "-in", str(path), "-passin", "env:KEY_PASS", "-noout"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"KEY_PASS": passphrase},
    )


def test_the_default_cost_is_what_current_guidance_accepts(
    rsa_key: rsa.RSAPrivateKey, full_kdf_cost: int, tmp_path: Path
) -> None:
    # Given a key encrypted the way congvan stores keys, at the full cost
    key_pem = pki.encrypt_key(rsa_key, PASS)

    # Then it is PKCS#8 PBES2, PBKDF2-HMAC-SHA256 at 600,000 iterations, AES-256-CBC
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    protection = keywrap.protection(key_pem)
    assert 600_000 == full_kdf_cost == protection.iterations
    assert ("pbes2", "pbkdf2", "sha256", "aes256_cbc") == (
        protection.scheme,
        protection.kdf,
        protection.hmac,
        protection.cipher,
    )
    assert protection.meets_guidance and protection.current
    assert "PBES2 PBKDF2-HMAC-SHA256, 600,000 iterations, AES256-CBC" == str(protection)

    # And both cryptography and openssl read it with the passphrase, and not without
    unlocked = pki.load_private_key(key_pem, PASS)
    assert rsa_key.private_numbers() == unlocked.private_numbers()  # type: ignore[union-attr]
    assert 0 == openssl_reads(tmp_path, key_pem, PASS).returncode
    refused = openssl_reads(tmp_path, key_pem, "wrong")
    assert 0 != refused.returncode


def test_an_ec_key_round_trips(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = keywrap.wrap(key, PASS.encode())
    unlocked = pki.load_private_key(key_pem, PASS)
    assert key.private_numbers() == unlocked.private_numbers()  # type: ignore[union-attr]
    assert 0 == openssl_reads(tmp_path, key_pem, PASS).returncode


def test_a_lowered_cost_is_written_and_reported_as_not_current(
    rsa_key: rsa.RSAPrivateKey, full_kdf_cost: int
) -> None:
    key_pem = keywrap.wrap(rsa_key, PASS.encode(), iterations=1_000)
    protection = keywrap.protection(key_pem)
    assert 1_000 == protection.iterations
    assert not protection.meets_guidance
    assert not keywrap.KeyProtection(
        "pbes2", "pbkdf2", "sha256", 599_999, None, "aes256_cbc"
    ).current


def test_keys_written_by_older_versions_are_read_and_reported_weak(
    rsa_key: rsa.RSAPrivateKey, full_kdf_cost: int
) -> None:
    # cryptography's BestAvailableEncryption: what congvan stored before
    best = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASS.encode()),
    )
    protection = keywrap.protection(best)
    assert ("pbkdf2", "sha256", 2048) == (protection.kdf, protection.hmac, protection.iterations)
    assert not protection.meets_guidance and not protection.current
    pki.load_private_key(best, PASS)

    # OpenSSL's traditional encrypted PEM: one MD5 round
    legacy = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(PASS.encode()),
    )
    protection = keywrap.protection(legacy)
    assert ("legacy-pem", "aes-256-cbc") == (protection.scheme, protection.cipher)
    assert not protection.meets_guidance
    pki.load_private_key(legacy, PASS)

    clear = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert "unencrypted" == keywrap.protection(clear).scheme


def test_scrypt_keys_are_inspected(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    # openssl writes scrypt PBES2 (it caps scrypt at 32 MiB, so N=2^14 is its largest at r=8)
    (tmp_path / "in.pem").write_bytes(pki.encrypt_key(rsa_key, PASS))
    scrypt = {}
    for n, p in ((16384, 1), (16384, 5)):
        out = tmp_path / f"scrypt-{p}.pem"
        subprocess.run(
            [
                *("openssl", "pkcs8", "-topk8", "-in", str(tmp_path / "in.pem")),
                *("-out", str(out), "-passin", "env:KEY_PASS", "-passout", "env:KEY_PASS"),
                *("-scrypt", "-scrypt_N", str(n), "-scrypt_r", "8", "-scrypt_p", str(p)),
            ],
            check=True,
            capture_output=True,
            timeout=60,
            env={"KEY_PASS": PASS},
        )
        scrypt[p] = keywrap.protection(out.read_bytes())
    assert ("scrypt", (16384, 8, 1)) == (scrypt[1].kdf, scrypt[1].scrypt)
    assert not scrypt[1].meets_guidance  # 16 MiB, one lane: below OWASP's settings
    assert scrypt[5].meets_guidance  # N=2^14, r=8, p=5 is one of them
    assert not scrypt[5].current  # congvan rewraps it to PBKDF2


def test_a_wrong_passphrase_names_no_secret(rsa_key: rsa.RSAPrivateKey) -> None:
    key_pem = keywrap.wrap(rsa_key, PASS.encode(), iterations=1_000)
    with pytest.raises(keywrap.KeyUndecryptable) as caught:
        pki.load_private_key(key_pem, "not it")
    assert isinstance(caught.value, InvalidInput)
    assert "invalid_input" == caught.value.code
    assert "not it" not in str(caught.value.to_dict())


def test_what_is_not_a_key_is_refused() -> None:
    with pytest.raises(InvalidInput):
        keywrap.protection(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    damaged = (
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    with pytest.raises(InvalidInput, match="damaged"):
        keywrap.protection(damaged)
    with pytest.raises(InvalidInput):
        keywrap.wrap(ec.generate_private_key(ec.SECP256R1()), b"x", iterations=0)
