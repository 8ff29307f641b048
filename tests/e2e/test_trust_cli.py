"""The trust store and CRLs as an operator runs them: keys init-ca / trust / untrust /
import / import-crl / revoke / list, through the real command."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from congvan.actions.signing import pki
from congvan.states.timeliness import VIETNAM
from congvan.workflow.cli import main
from tests.e2e.test_cli import congvan

PASS = {"CONGVAN_KEY_PASSPHRASE": "trust store passphrase 1227"}


def outside_ca(tmp_path: Path) -> tuple[pki.Issued, Path]:
    ca = pki.create_ca(
        "Root CA of elsewhere",
        "Ban Cơ yếu Chính phủ",
        passphrase="outside passphrase",
        valid_from=datetime.now(UTC) - timedelta(days=1),
        valid_days=365,
    )
    path = tmp_path / "outside.pem"
    path.write_bytes(ca.cert_pem)
    return ca, path


def test_roots_are_trusted_only_when_pinned_in_the_trust_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert congvan("migrate", data_dir=data).returncode == 0

    # init-ca pins our root in the trust store
    done = congvan(
        "keys", "init-ca", "--name", "CA", "--organization", "UBND", data_dir=data, env=PASS
    )
    assert done.returncode == 0, done.stderr
    assert f"root pinned in {data / 'trust'}" in done.stdout
    (pinned,) = (data / "trust").glob("*.pem")

    # A root imported into the database only is stored, and said not to be trusted
    ca, path = outside_ca(tmp_path)
    done = congvan("keys", "import", str(path), "--kind", "root", data_dir=data, env=PASS)
    assert done.returncode == 0, done.stderr
    assert "NOT trusted" in done.stdout
    listed = congvan("keys", "list", data_dir=data).stdout
    assert "NOT pinned" in listed
    assert listed.count(", pinned") == 1

    # keys trust pins it; keys untrust removes it again
    done = congvan("keys", "trust", str(path), data_dir=data)
    assert done.returncode == 0, done.stderr
    fingerprint = ca.certificate.fingerprint(hashes.SHA256()).hex()
    assert (data / "trust" / f"{fingerprint}.pem").is_file()
    assert "NOT pinned" not in congvan("keys", "list", data_dir=data).stdout
    assert congvan("keys", "untrust", fingerprint, data_dir=data).returncode == 0
    assert not (data / "trust" / f"{fingerprint}.pem").exists()
    assert pinned.is_file()

    # ...by its fingerprint only: a path never reaches a file outside the trust store
    victim = data / "victim.pem"
    victim.write_text("not a root")
    refused = congvan("keys", "untrust", "../victim", data_dir=data)
    assert refused.returncode == 2 and "invalid_input" in refused.stderr, refused.stderr
    assert victim.is_file()

    # A root that ran out is listed as such, not as valid
    old = pki.create_ca(
        "Old root of elsewhere", "Ban Cơ yếu Chính phủ", passphrase="outside passphrase",
        valid_from=datetime.now(UTC) - timedelta(days=400), valid_days=365,
    )  # fmt: skip
    (tmp_path / "old.pem").write_bytes(old.cert_pem)
    done = congvan("keys", "import", str(tmp_path / "old.pem"), "--kind", "root", data_dir=data)
    assert done.returncode == 0, done.stderr
    [line] = [x for x in congvan("keys", "list", data_dir=data).stdout.splitlines() if "Old" in x]
    assert "expired, NOT pinned" in line, line

    # Names longer than any other keep the columns aligned; the end date is Vietnam's
    long = pki.create_ca(
        "Root CA of the Government Cipher Committee (second generation)",
        "Ban Cơ yếu Chính phủ", passphrase="outside passphrase",
        valid_from=datetime.now(UTC) - timedelta(days=1), valid_days=30,
    )  # fmt: skip
    (tmp_path / "long.pem").write_bytes(long.cert_pem)
    assert congvan("keys", "import", str(tmp_path / "long.pem"), "--kind", "root", data_dir=data)
    listed = congvan("keys", "list", data_dir=data).stdout.splitlines()
    ends = {re.search(r"\d\d/\d\d/\d{4}", x).start() for x in listed}  # type: ignore[union-attr]
    assert len(listed) >= 3 and len(ends) == 1, listed
    ending = long.certificate.not_valid_after_utc.astimezone(VIETNAM)
    assert f"{ending:%d/%m/%Y}" in next(x for x in listed if "second generation" in x)

    # A leaf certificate can never be pinned as a root
    leaf = pki.issue_signer_certificate(
        ca,
        "outside passphrase",
        full_name="Nguyễn Văn A",
        position="Chuyên viên",
        agency_id="000.00.00.H57",
        agency_name="UBND",
        user_id="a",
        passphrase="x" * 12,
        valid_from=datetime.now(UTC),
        valid_days=30,
        crl_url="http://elsewhere/crl",
    )
    (tmp_path / "leaf.pem").write_bytes(leaf.cert_pem)
    done = congvan("keys", "trust", str(tmp_path / "leaf.pem"), data_dir=data)
    assert done.returncode == 2
    assert "Only a CA certificate" in done.stderr

    # audit verify says which database roots are not pinned
    done = congvan("audit", "verify", data_dir=data)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is in the database but not pinned" in done.stdout


def test_another_cas_crl_is_imported_and_its_certificates_cannot_be_revoked_here(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    assert congvan("migrate", data_dir=data).returncode == 0
    assert (
        congvan(
            "keys", "init-ca", "--name", "CA", "--organization", "U", data_dir=data, env=PASS
        ).returncode
        == 0
    )
    ca, path = outside_ca(tmp_path)
    assert congvan("keys", "trust", str(path), data_dir=data).returncode == 0

    # A signer certificate of that CA, imported
    now = datetime.now(UTC)
    leaf = pki.issue_signer_certificate(
        ca,
        "outside passphrase",
        full_name="Nguyễn Văn A",
        position="Chuyên viên",
        agency_id="000.00.00.H57",
        agency_name="UBND",
        user_id="a",
        passphrase="x" * 12,
        valid_from=now,
        valid_days=30,
        crl_url="http://elsewhere/crl",
    )
    (tmp_path / "leaf.pem").write_bytes(leaf.cert_pem)
    importing = ("keys", "import", str(tmp_path / "leaf.pem"), "--kind", "signer")
    # held for the agency it names, once that agency is in the directory
    done = congvan(*importing, data_dir=data)
    assert (2, True) == (done.returncode, "error [invalid_input]" in done.stderr), done.stderr
    adding = ("agencies", "add", "000.00.00.H57", "--name", "UBND", "--abbreviation", "UBND")
    assert congvan(*adding, data_dir=data).returncode == 0
    done = congvan(*importing, "--agency", "000.00.00.H57", data_dir=data)
    assert done.returncode == 0, done.stderr

    # Revoking it here is refused: only its issuer can
    fingerprint = leaf.certificate.fingerprint(hashes.SHA256()).hex()
    done = congvan("keys", "revoke", fingerprint, data_dir=data, env=PASS)
    assert done.returncode == 2
    assert "only its issuer can revoke it" in done.stderr
    assert "import-crl" in done.stderr

    # Its issuer's CRL comes in instead (PEM), and an older one is refused
    def crl(number: int) -> Path:
        der = pki.make_crl(
            ca,
            "outside passphrase",
            [(leaf.certificate.serial_number, now, x509.ReasonFlags.key_compromise)],
            this_update=now,
            next_update=now + timedelta(days=7),
            number=number,
        )
        out = tmp_path / f"crl{number}.pem"
        out.write_bytes(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
        return out

    done = congvan("keys", "import-crl", str(crl(5)), data_dir=data)
    assert done.returncode == 0, done.stderr
    assert "CRL 5 of" in done.stdout
    assert "1 revoked" in done.stdout
    # (its next update as every command tells a moment to people: the Vietnam clock)
    due = (now + timedelta(days=7)).astimezone(timezone(timedelta(hours=7)))
    assert f"next update {due:%H:%M %d/%m/%Y}, Vietnam time" in done.stdout, done.stdout
    done = congvan("keys", "import-crl", str(crl(4)), data_dir=data)
    assert done.returncode == 2
    assert "already_exists" in done.stderr
    # The very CRL held, imported again (a scheduled import with nothing new): unchanged
    done = congvan("keys", "import-crl", str(tmp_path / "crl5.pem"), data_dir=data)
    assert done.returncode == 0, done.stderr
    assert "CRL 5 of" in done.stdout and "held already, unchanged" in done.stdout


def test_a_root_pinned_that_runs_out_soon_is_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given roots of elsewhere: one valid a year on, one running out in ten days
    data = ["--data-dir", str(tmp_path / "data")]
    assert main([*data, "migrate"]) == 0
    _ca, year = outside_ca(tmp_path)
    soon = pki.create_ca(
        "Root CA of elsewhere, old", "Ban Cơ yếu Chính phủ", passphrase="outside passphrase",
        valid_from=datetime.now(UTC) - timedelta(days=355), valid_days=365,
    )  # fmt: skip
    (tmp_path / "soon.pem").write_bytes(soon.cert_pem)
    capsys.readouterr()

    # When each is pinned, the one running out is pinned with a warning naming when
    assert main([*data, "keys", "trust", str(year)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main([*data, "keys", "trust", str(tmp_path / "soon.pem")]) == 0
    said = capsys.readouterr().err
    assert "warning: this root runs out in 9 day(s)" in said, said  # 9 days 23:59 and some
