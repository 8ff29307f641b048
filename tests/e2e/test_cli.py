"""The congvan command as an operator uses it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path


def congvan(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "congvan.workflow.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_drives_the_sample_letter_and_exits_zero(tmp_path: Path) -> None:
    done = congvan("demo", data_dir=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1227/UBND-TĐKT" in done.stdout
    assert "3 chain(s) checked, 0 broken" in done.stdout
    assert "duplicates.number" in done.stdout
    assert "signer_matches ✓" in done.stdout
    assert "422 certificate_expired" in done.stdout
    assert "422 certificate_revoked" in done.stdout
    assert "501 action_unavailable: needs deliver_dispatches" in done.stdout
    assert "every step behaved as expected" in done.stdout


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    done = congvan("serve", data_dir=tmp_path)
    assert done.returncode == 2
    assert "database_not_migrated" in done.stderr
    assert "congvan migrate" in done.stderr


def test_operator_setup_and_audit_verify_catches_tampering(tmp_path: Path) -> None:
    # Given a migrated database with an agency, a clerk token and a document
    assert congvan("migrate", data_dir=tmp_path).returncode == 0
    added = congvan(
        "agencies",
        "add",
        "000.00.00.H57",
        "--name",
        "UBND tỉnh Thừa Thiên Huế",
        "--abbreviation",
        "UBND",
        data_dir=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    bad = congvan(
        "agencies", "add", "h57 lower", "--name", "x", "--abbreviation", "x", data_dir=tmp_path
    )
    assert bad.returncode == 2 and "invalid_input" in bad.stderr
    token = congvan(
        "tokens", "create", "--agency", "000.00.00.H57", "--role", "clerk", data_dir=tmp_path
    )
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().splitlines()[-1].startswith("cvt_")
    from congvan.actions.context import Actor
    from congvan.workflow.bootstrap import bootstrap
    from congvan.workflow.settings import Settings

    runtime = bootstrap(Settings(data_dir=tmp_path))
    clerk = Actor("vanthu@000.00.00.H57", "000.00.00.H57", frozenset({"clerk"}))
    created = runtime.engine.create_document(
        clerk, {"doc_type": "CV", "subject": "V/v thử"}, [{"organ_id": "000.00.11.H57"}], []
    )
    runtime.engine.fire(created["id"], "edit", clerk, data={"fields": {"subject": "V/v sửa"}})
    runtime.stop()
    assert congvan("audit", "verify", data_dir=tmp_path).returncode == 0

    # When somebody rewrites history in SQL
    with sqlite3.connect(tmp_path / "congvan.db") as db:
        db.execute("UPDATE audit_entries SET actor = 'someone-else' WHERE version = 2")

    # Then the verifier names the entry and fails
    done = congvan("audit", "verify", created["id"], data_dir=tmp_path)
    assert done.returncode == 1
    assert "altered at version 2" in done.stdout
