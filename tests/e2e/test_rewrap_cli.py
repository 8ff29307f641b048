"""`congvan keys` as an operator runs it: keys at the full KDF cost, a CA passphrase of its
own, and `keys rewrap`. Each command is a fresh process, so every key here costs what it
costs in service (no test lowers it)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from congvan.actions.signing import keywrap, pki

AGENCY = "000.00.00.H57"
CA_PASS = "e2e CA passphrase, kept offline"
KEY_PASS = "e2e signer passphrase"
NEW_CA_PASS = "e2e next CA passphrase"
NEW_KEY_PASS = "e2e next signer passphrase"
SECRETS = (CA_PASS, KEY_PASS, NEW_CA_PASS, NEW_KEY_PASS, "PRIVATE KEY")


def congvan(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONGVAN_")}
    return subprocess.run(
        [sys.executable, "-m", "congvan.workflow.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, **env},
    )


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert 0 == done.returncode, done.stdout + done.stderr
    assert not [s for s in SECRETS if s in done.stdout + done.stderr]
    return done


def stored_keys(data_dir: Path) -> dict[str, bytes]:
    """Each stored key PEM by certificate kind."""
    with sqlite3.connect(data_dir / "congvan.db") as db:
        rows = db.execute("SELECT kind, key_pem FROM certificates WHERE key_pem != ''")
        return {kind: key_pem.encode() for kind, key_pem in rows}


def openssl_reads(tmp_path: Path, key_pem: bytes, passphrase: str) -> bool:
    (tmp_path / "key.pem").write_bytes(key_pem)
    done = subprocess.run(
        ["openssl", "pkey", "-in", str(tmp_path / "key.pem"), "-passin", "env:P", "-noout"],
        capture_output=True,
        timeout=60,
        env={"P": passphrase},
    )
    return done.returncode == 0


def add_document(data_dir: Path) -> None:
    """A document, so that its agency has a head to anchor."""
    from congvan.actions.context import Actor
    from congvan.workflow.bootstrap import bootstrap
    from congvan.workflow.settings import Settings

    runtime = bootstrap(Settings(data_dir=data_dir, key_passphrase=None))
    try:
        clerk = Actor(f"vanthu@{AGENCY}", AGENCY, frozenset({"clerk"}))
        runtime.engine.create_document(
            clerk, {"doc_type": "CV", "subject": "V/v thử"}, [{"organ_id": "000.00.11.H57"}], []
        )
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA under its own passphrase, and a signer and agency key under the key passphrase."""
    data = tmp_path_factory.mktemp("keys") / "data"
    both = {"CONGVAN_KEY_PASSPHRASE": KEY_PASS, "CONGVAN_CA_KEY_PASSPHRASE": CA_PASS}
    ok(congvan("migrate", data_dir=data))
    ok(
        congvan(
            "agencies",
            "add",
            AGENCY,
            "--name",
            "UBND tỉnh",
            "--abbreviation",
            "UBND",
            data_dir=data,
        )
    )
    ok(
        congvan(
            *("tokens", "create", "--agency", AGENCY, "--role", "signer", "--user", "pct"),
            *("--full-name", "Nguyễn Văn Phương", "--position", "Phó Chủ tịch"),
            data_dir=data,
        )
    )
    ok(
        congvan(
            "keys",
            "init-ca",
            "--name",
            "e2e CA",
            "--organization",
            "UBND tỉnh",
            data_dir=data,
            **both,
        )
    )
    ok(congvan("keys", "issue-signer", "--agency", AGENCY, "--user", "pct", data_dir=data, **both))
    ok(congvan("keys", "issue-agency", "--agency", AGENCY, data_dir=data, **both))
    return data


@pytest.fixture
def installation(built: Path, tmp_path: Path) -> Path:
    """A copy of the built installation for one test (making one costs six processes)."""
    return Path(shutil.copytree(built, tmp_path / "data"))


def test_keys_are_stored_at_the_full_cost_and_openssl_reads_them(
    installation: Path, tmp_path: Path
) -> None:
    keys = stored_keys(installation)
    assert {"root", "signer", "agency"} == set(keys)
    for kind, key_pem in keys.items():
        protection = keywrap.protection(key_pem)
        assert protection.current and protection.meets_guidance, kind
        assert (keywrap.DEFAULT_KDF_ITERATIONS, "sha256") == (
            protection.iterations,
            protection.hmac,
        )
    assert 600_000 == keywrap.DEFAULT_KDF_ITERATIONS
    assert openssl_reads(tmp_path, keys["root"], CA_PASS)
    assert not openssl_reads(tmp_path, keys["root"], KEY_PASS)
    assert openssl_reads(tmp_path, keys["signer"], KEY_PASS)
    assert openssl_reads(tmp_path, keys["agency"], KEY_PASS)


def test_issuing_with_only_the_signers_passphrase_names_the_ca_setting(
    installation: Path,
) -> None:
    # When a certificate is issued with the key passphrase only (the CA's falls back to it)
    done = congvan(
        "keys",
        "issue-agency",
        "--agency",
        AGENCY,
        data_dir=installation,
        CONGVAN_KEY_PASSPHRASE=KEY_PASS,
    )

    # Then it is refused, naming the setting, and nothing is stored
    assert 2 == done.returncode
    assert "CONGVAN_CA_KEY_PASSPHRASE" in done.stderr
    assert not [s for s in SECRETS if s in done.stdout + done.stderr]
    assert 3 == len(stored_keys(installation))


def test_rewrap_under_new_passphrases_then_the_old_ones_no_longer_sign(
    installation: Path, tmp_path: Path
) -> None:
    old = {"CONGVAN_KEY_PASSPHRASE": KEY_PASS, "CONGVAN_CA_KEY_PASSPHRASE": CA_PASS}
    new = {"CONGVAN_KEY_PASSPHRASE": NEW_KEY_PASS, "CONGVAN_CA_KEY_PASSPHRASE": NEW_CA_PASS}
    renames = ("--new-passphrase-env", "NEXT_KEY", "--new-ca-passphrase-env", "NEXT_CA")
    targets = {"NEXT_KEY": NEW_KEY_PASS, "NEXT_CA": NEW_CA_PASS}

    # Given keys already at the current cost: a plain rewrap has nothing to do
    idle = ok(congvan("keys", "rewrap", data_dir=installation, **old))
    assert "0 key(s) re-encrypted" in idle.stdout
    assert "3 key(s) already at" in idle.stdout

    # When the CA passphrase given is wrong, nothing changes
    before = stored_keys(installation)
    wrong = congvan(
        "keys",
        "rewrap",
        *renames,
        data_dir=installation,
        **{**old, "CONGVAN_CA_KEY_PASSPHRASE": "not the CA's"},
        **targets,
    )
    assert 2 == wrong.returncode
    assert "CONGVAN_CA_KEY_PASSPHRASE" in wrong.stderr
    assert before == stored_keys(installation)

    # And a named variable that is not set is refused before any work
    unset = congvan(
        "keys", "rewrap", "--new-passphrase-env", "NOT_SET", data_dir=installation, **old
    )
    assert 2 == unset.returncode and "NOT_SET" in unset.stderr

    # When the keys are rewrapped under new passphrases, with a progress bar
    done = ok(
        congvan("keys", "rewrap", *renames, "--progress", data_dir=installation, **old, **targets)
    )
    assert "3 key(s) re-encrypted (1 CA, 2 agency or signer)" in done.stdout
    assert "3/3" in done.stderr

    # Then each key opens with its new passphrase, at the full cost, and not with the old
    after = stored_keys(installation)
    assert openssl_reads(tmp_path, after["root"], NEW_CA_PASS)
    assert not openssl_reads(tmp_path, after["root"], CA_PASS)
    assert openssl_reads(tmp_path, after["agency"], NEW_KEY_PASS)
    assert not openssl_reads(tmp_path, after["signer"], KEY_PASS)
    assert all(keywrap.protection(pem).current for pem in after.values())
    pki.load_private_key(after["signer"], NEW_KEY_PASS)

    # And the agency key signs anchors with the new passphrase, not the old
    add_document(installation)
    refused = congvan("audit", "anchor", data_dir=installation, **old)
    assert 2 == refused.returncode and "could not be decrypted" in refused.stderr
    ok(congvan("audit", "anchor", data_dir=installation, **new))
    ok(congvan("keys", "crl", "--out", str(tmp_path / "ca.crl"), data_dir=installation, **new))
