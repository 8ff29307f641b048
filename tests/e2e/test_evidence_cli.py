"""``congvan evidence``: a bundle exported from the shell, then verified with no database.

The two installations are prepared in-process (``tests.installations``, SQLite); the
commands run as subprocesses: export against the sender's database, verify with only the
bundle and a root file.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from congvan.actions.signing import keystore
from congvan.actions.signing.truststore import fingerprint
from tests.databases import Databases
from tests.exchange_world import members, zipped
from tests.installations import PASS, A, B, make_pair, serving_inbox
from tests.receivers import self_signed


def congvan(
    *args: str, cwd: Path, passphrase: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONGVAN_")}
    if passphrase is not None:  # what unlocks the issuing agency's key, to sign the index
        env["CONGVAN_KEY_PASSPHRASE"] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "congvan.workflow.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )


def test_a_bundle_is_exported_then_verified_offline_and_a_tampered_one_is_not(
    boot: Any, databases: Databases, make_document: Callable[..., str], tmp_path: Path
) -> None:
    # Given A's letter delivered to B and anchored, in A's SQLite database
    url = databases.new("sqlite").url
    pair = make_pair(functools.partial(boot, url), boot, databases, "sqlite")
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "done"
    # The shell's clock is the real one: the CRL is as fresh as an installation keeps it,
    # so that the index signed at export is judged then.
    with pair.sender.uow() as uow:
        keystore.publish_crl(uow, passphrase=PASS, now=datetime.now(UTC))
        uow.commit()
    [root] = pair.sender.trust.roots()
    (tmp_path / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    data_dir = pair.sender.settings.data_dir

    # (Exported before its entries are anchored, the bundle is written, and the export
    # says it would not verify as it is, and what to do)
    early = congvan(
        "--data-dir", str(data_dir), "--database-url", url,
        "evidence", "export", doc, "-o", "early.zip",
        cwd=tmp_path, passphrase=PASS,
    )  # fmt: skip
    assert early.returncode == 0 and (tmp_path / "early.zip").is_file(), early.stderr
    assert "does not verify as it is" in early.stderr and "unanchored" in early.stderr
    assert "congvan audit anchor" in early.stderr
    pair.sender.anchoring.anchor(pair.sender.uow, pair.sender.clock())

    # When the bundle is exported from the shell
    exported = congvan(
        "--data-dir", str(data_dir), "--database-url", url,
        "evidence", "export", doc, "-o", "bundle.zip",
        cwd=tmp_path, passphrase=PASS,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("bundle.zip: ")
    assert "warning" not in exported.stderr, exported.stderr

    # (And where someone planted a link by the name a partial bundle once took, or named
    # a FIFO as the output, nothing is written through it or in its place)
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    (tmp_path / "again.zip.part").symlink_to(victim)
    again = congvan(
        "--data-dir", str(data_dir), "--database-url", url,
        "evidence", "export", doc, "-o", "again.zip",
        cwd=tmp_path, passphrase=PASS,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert victim.read_text() == "mine" and (tmp_path / "again.zip").is_file()
    assert (tmp_path / "again.zip.part").is_symlink()
    os.mkfifo(tmp_path / "pipe")
    into_fifo = congvan(
        "--data-dir", str(data_dir), "--database-url", url,
        "evidence", "export", doc, "-o", "pipe",
        cwd=tmp_path, passphrase=PASS,
    )  # fmt: skip
    assert into_fifo.returncode == 2 and "invalid_input" in into_fifo.stderr
    assert (tmp_path / "pipe").is_fifo()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")
                and not p.is_symlink()]  # fmt: skip

    # Then it verifies with no database, naming the pinned root that anchored it
    verified = congvan("evidence", "verify", "bundle.zip", "--trust", "root.pem", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VERIFIED" in verified.stdout.splitlines()[-1]
    assert f"{fingerprint(root)} (pinned by you; anchored signatures)" in verified.stdout
    # and with the root bound to each agency (pinned by the binding alone)
    bound = congvan(
        "evidence", "verify", "bundle.zip",
        "--trust-for", f"{A}=root.pem", "--trust-for", f"{B}=root.pem",
        cwd=tmp_path,
    )  # fmt: skip
    assert bound.returncode == 0, bound.stdout + bound.stderr
    assert f"roots bound to {A}, {B}" in bound.stdout

    # And a copy with the receipt changed fails, as JSON naming the member
    parts = members((tmp_path / "bundle.zip").read_bytes())
    receipt = f"dispatches/{B}/receipt.json"
    parts[receipt] = parts[receipt].replace(b'"01"', b'"02"')
    (tmp_path / "tampered.zip").write_bytes(zipped(parts))
    refused = congvan("evidence", "verify", "tampered.zip", "--json", cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    verdict = json.loads(refused.stdout)
    assert verdict["verified"] is False and verdict["trust"]["source"] == "bundle"
    failed = [(c["code"], c["member"]) for c in verdict["checks"] if not c["ok"]]
    assert ("member_digest", receipt) in failed

    # And a member named to drive a terminal (erase the line, print VERIFIED in green) is
    # named in the report as text, never obeyed
    parts["files/\r\x1b[2K\x1b[1;32mVERIFIED\x1b[0m"] = b"x"
    (tmp_path / "hostile.zip").write_bytes(zipped(parts))
    hostile = congvan("evidence", "verify", "hostile.zip", cwd=tmp_path)
    assert hostile.returncode == 1, hostile.stderr
    assert "\x1b" not in hostile.stdout
    assert "files/\\x0d\\x1b[2K\\x1b[1;32mVERIFIED" in hostile.stdout
    assert hostile.stdout.splitlines()[-1].startswith("NOT VERIFIED")


def test_a_trust_file_that_is_not_pem_text_is_refused_even_holding_a_root(tmp_path: Path) -> None:
    # A bundle holds its roots as PEM, stored: given as --trust, it would pin its own roots
    pem = self_signed(tmp_path).cert.read_bytes()
    (tmp_path / "binary.zip").write_bytes(b"PK\x03\x04\x00\x00" + pem + b"\x00\xff")
    (tmp_path / "root.pem").write_bytes(pem)
    (tmp_path / "folder").mkdir()

    binary = congvan("evidence", "verify", "folder", "--trust", "binary.zip", cwd=tmp_path)
    folder = congvan("evidence", "verify", "folder", "--trust", "root.pem", cwd=tmp_path)
    missing = congvan("evidence", "verify", "missing.zip", "--json", cwd=tmp_path)
    unnamed = congvan("evidence", "verify", "folder", "--trust-for", "root.pem", cwd=tmp_path)

    assert (2, 2, 2, 2) == (
        binary.returncode,
        folder.returncode,
        missing.returncode,
        unnamed.returncode,
    )
    assert "--trust-for takes AGENCY=ROOT.pem" in unnamed.stderr
    assert "binary.zip is not a PEM text file" in binary.stderr
    assert "bundle folder is a folder" in folder.stderr
    said = json.loads(missing.stdout)
    assert ("missing.zip", "invalid_input") == (said["bundle"], said["error"]["code"])
    assert "Traceback" not in binary.stderr + folder.stderr + missing.stderr


def test_a_trust_file_holding_a_certificate_that_is_no_cas_is_refused(tmp_path: Path) -> None:
    # Given an end entity's certificate (an agency's, say) given as a root
    (tmp_path / "leaf.pem").write_bytes(self_signed(tmp_path, ca=False).cert.read_bytes())
    (tmp_path / "b.zip").write_bytes(b"not looked at")

    # Then it is refused as `keys trust` refuses it, before the bundle is read
    done = congvan("evidence", "verify", "b.zip", "--trust", "leaf.pem", cwd=tmp_path)
    assert done.returncode == 2
    assert "leaf.pem holds a certificate that is no CA's" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_path_that_is_no_file_is_refused_saying_what_it_is(tmp_path: Path) -> None:
    # A device, a folder, nothing: each one coded line saying which, never "no such file"
    (tmp_path / "folder").mkdir()
    (tmp_path / "b.zip").write_bytes(b"not looked at")
    data = str(tmp_path / "data")
    assert congvan("--data-dir", data, "migrate", cwd=tmp_path).returncode == 0
    cases = {
        ("evidence", "verify", "/dev/zero"): "is not a regular file",
        ("evidence", "verify", "b.zip", "--trust", "/dev/null"): "is not a regular file",
        ("verify", "b.zip", "--content", "folder"): "content folder is a folder",
        ("verify", "b.zip", "--content", "/dev/zero"): "is not a regular file",
        ("verify", "folder"): "is a folder",
        ("keys", "untrust", "ab" * 32): "error [not_found]",
    }
    for args, said in cases.items():
        done = congvan("--data-dir", data, *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert said in done.stderr and "error [" in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_the_exports_warning_says_what_mends_it() -> None:
    from congvan.workflow.cli.evidence import export_hint

    # Entries after the last anchor: anchoring mends it
    assert "congvan audit anchor" in export_hint({"unanchored"})
    # A CRL or anchor dated after the clock's now (a demo's clock runs ahead): anchoring
    # again would not, only time does
    for codes in ({"crl_after_export"}, {"crl_after_export", "unanchored"}, {"clock_ahead"}):
        said = export_hint(codes)
        assert "audit anchor" not in said and "dated after this clock's now" in said, codes
    assert export_hint({"hash_mismatch"}) == ""
