"""``congvan verify``: a document's signature, or a signature file, checked from the shell.

The database is prepared in-process (a CA, a signer certificate, a document signed on the
server through the real ``sign`` transition); the command runs as a subprocess, without
the key passphrase: verifying never needs it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from congvan.actions.context import Actor, TransitionContext
from congvan.actions.signing import keystore, pades, pki
from congvan.actions.signing.cms import sign_manifest
from congvan.states import errors
from congvan.storage.database import make_engine
from congvan.storage.schema import migrate
from congvan.workflow import directory
from congvan.workflow.bootstrap import bootstrap
from congvan.workflow.cli import main
from congvan.workflow.cli.verdict import failed_point
from congvan.workflow.letters import sample_pdf
from congvan.workflow.settings import Settings
from tests.pdf_edits import token_sign, with_text_field

AGENCY = "000.00.00.H57"
OTHER = "000.00.00.H58"  # another agency of this installation
AGENCY_NAME = "Ủy ban nhân dân tỉnh Thừa Thiên Huế"
SIGNER_NAME, SIGNER_POSITION = "Nguyễn Văn Phương", "Phó Chủ tịch"
PASS = "correct horse battery staple"
POINTS = (
    "intact",
    "valid",
    "trusted",
    "not revoked",
    "key usage",
    "valid at signing time",
    "signer matches",
)


def congvan(
    *args: str, data_dir: Path, passphrase: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONGVAN_")}
    if passphrase is not None:
        env["CONGVAN_KEY_PASSPHRASE"] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "congvan.workflow.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def cleared(_ctx: TransitionContext) -> tuple[bool, str]:
    return True, ""


@dataclass(frozen=True)
class Installation:
    data_dir: Path
    signed: str  # a document moved to signed on the server
    draft: str  # a document never signed
    fingerprint: str  # of the signer's certificate
    manifest_sha256: str


@pytest.fixture
def installation(tmp_path: Path) -> Installation:
    settings = Settings(data_dir=tmp_path, key_passphrase=PASS)
    engine = make_engine(settings.db_url)
    migrate(engine)
    engine.dispose()
    runtime = bootstrap(settings, guards={"checks_cleared": cleared})
    try:
        now = runtime.clock()
        with runtime.uow() as uow:
            directory.add_agency(uow, AGENCY, AGENCY_NAME, "UBND", now)
            directory.ensure_user(
                uow,
                AGENCY,
                "pct",
                ["signer"],
                now,
                full_name=SIGNER_NAME,
                position=SIGNER_POSITION,
            )
            keystore.init_ca(
                uow, "congvan test CA", AGENCY_NAME, passphrase=PASS, now=now, store=runtime.trust
            )
            cert = keystore.issue_signer(
                uow, AGENCY, "pct", passphrase=PASS, crl_url=settings.crl_url, now=now
            )
            directory.add_authority(
                uow, AGENCY, "pct", ["*"], "KT. CHỦ TỊCH", date(2020, 1, 1), None, by="t", now=now
            )
            uow.commit()
        clerk = Actor(f"vanthu@{AGENCY}", AGENCY, frozenset({"clerk"}))
        reviewer = Actor(f"chuyenvien@{AGENCY}", AGENCY, frozenset({"reviewer"}))
        signer = Actor(f"pct@{AGENCY}", AGENCY, frozenset({"signer"}))
        fields = {
            "number": 1227,
            "symbol": "UBND-TĐKT",
            "doc_type": "CV",
            "subject": "V/v tăng cường gửi, nhận văn bản điện tử",
            "place": "Thừa Thiên Huế",
            "signer_name": SIGNER_NAME,
            "signer_position": "PHÓ CHỦ TỊCH",
            "signer_competence": "KT. CHỦ TỊCH",
            "signer_user": "pct",
        }
        recipients = [{"organ_id": "000.00.11.H57", "name": "Sở Nội vụ"}]
        signed = runtime.engine.create_document(clerk, fields, recipients, [])["id"]
        runtime.engine.fire(signed, "approve", reviewer)
        result = runtime.engine.fire(signed, "sign", signer)
        assert result.to_state == "signed"
        draft = runtime.engine.create_document(clerk, fields, recipients, [])["id"]
        with runtime.uow(readonly=True) as uow:
            stored = uow.signatures.latest_signature(signed)
        assert stored is not None
    finally:
        runtime.stop()
    return Installation(tmp_path, signed, draft, cert.fingerprint, stored.manifest_sha256)


def stored_signer(data_dir: Path) -> tuple[Any, x509.Certificate, list[x509.Certificate]]:
    """The signer's unlocked key, certificate and the roots, read in-process."""
    runtime = bootstrap(Settings(data_dir=data_dir, key_passphrase=PASS))
    try:
        with runtime.uow(readonly=True) as uow:
            row = uow.signatures.signing_certificate(AGENCY, "pct", runtime.clock())
            roots = runtime.trust.roots()
    finally:
        runtime.stop()
    assert row is not None
    key = pki.load_private_key(row.key_pem.encode(), PASS)
    return key, x509.load_pem_x509_certificate(row.cert_pem.encode()), roots


def revoke_signer(data_dir: Path, fingerprint: str) -> None:
    runtime = bootstrap(Settings(data_dir=data_dir, key_passphrase=PASS))
    try:
        with runtime.uow() as uow:
            keystore.revoke(
                uow, fingerprint, reason="key_compromise", passphrase=PASS, now=runtime.clock()
            )
            uow.commit()
    finally:
        runtime.stop()


def assert_no_secret(done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    assert PASS not in output
    assert "PRIVATE KEY" not in output


def test_a_signed_document_verifies_point_by_point_without_the_passphrase(
    installation: Installation,
) -> None:
    done = congvan("verify", installation.signed, data_dir=installation.data_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VERIFIED" in done.stdout and "NOT VERIFIED" not in done.stdout
    for point in POINTS:
        assert f"✓ {point} " in done.stdout, point
    assert f"signer        {SIGNER_NAME}" in done.stdout
    assert f"position      {SIGNER_POSITION}" in done.stdout
    assert f"{AGENCY_NAME} ({AGENCY})" in done.stdout
    assert f"sha256 {installation.fingerprint}" in done.stdout
    assert f"sha256 {installation.manifest_sha256} (signed)" in done.stdout
    assert "signing time  " in done.stdout
    # Every moment in Vietnam time, the certificate's validity as the signing time
    moments = re.findall(r"\d{4}-\d\d-\d\dT[\d:.]+([+-]\d\d:\d\d|Z)", done.stdout)
    assert len(moments) >= 3 and set(moments) == {"+07:00"}, done.stdout
    assert_no_secret(done)

    # Having the passphrase in the environment changes nothing and leaks nothing
    again = congvan("verify", installation.signed, data_dir=installation.data_dir, passphrase=PASS)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_no_secret(again)


def test_a_document_changed_in_sql_fails_with_manifest_mismatch(
    installation: Installation,
) -> None:
    with sqlite3.connect(installation.data_dir / "congvan.db") as db:
        db.execute(
            "UPDATE documents SET subject = 'V/v nội dung đã bị sửa' WHERE id = ?",
            (installation.signed,),
        )
    done = congvan("verify", installation.signed, data_dir=installation.data_dir)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "NOT VERIFIED  error [manifest_mismatch]" in done.stdout
    assert "✓ valid " in done.stdout
    assert "✗ intact " in done.stdout
    assert "– trusted " in done.stdout  # not checked past the first failure
    assert f"sha256 {installation.manifest_sha256} (signed)" in done.stdout
    assert "(the document now)" in done.stdout
    assert f"signer        {SIGNER_NAME}" in done.stdout
    assert_no_secret(done)


def test_an_unknown_or_unsigned_document_exits_2(installation: Installation) -> None:
    unknown = congvan("verify", "no-such-document", data_dir=installation.data_dir)
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert "error [not_found]: No file 'no-such-document' and no document" in unknown.stderr
    # a path mistyped is said to be neither
    mistyped = congvan("verify", "/no/such/letter.p7s", data_dir=installation.data_dir)
    assert mistyped.returncode == 2
    assert "No file '/no/such/letter.p7s' and no document with that id." in mistyped.stderr
    unsigned = congvan("verify", installation.draft, data_dir=installation.data_dir)
    assert unsigned.returncode == 2, unsigned.stdout + unsigned.stderr
    assert "error [invalid_input]" in unsigned.stderr and "is not signed" in unsigned.stderr


def test_a_file_verify_does_not_read_is_said_what_to_do_with(
    installation: Installation, tmp_path: Path
) -> None:
    # An evidence bundle given to verify: its own command is named
    bundle = tmp_path / "ev.zip"
    bundle.write_bytes(b"PK\x03\x04" + b"\0" * 60)
    zipped = congvan("verify", str(bundle), data_dir=installation.data_dir)
    assert zipped.returncode == 2
    assert "is a ZIP archive" in zipped.stderr and "congvan evidence verify" in zipped.stderr
    # A PDF with a --content it would not read: refused, not ignored
    pdf = tmp_path / "letter.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%%EOF\n")
    with_content = congvan(
        "verify", str(pdf), "--content", "/no/such/manifest.json", data_dir=installation.data_dir
    )
    assert with_content.returncode == 2
    assert "error [invalid_input]: --content names the manifest" in with_content.stderr
    # A file that is no signature at all (a text, say): told so, not asked for --content
    text = tmp_path / "notes.txt"
    text.write_text("Kính gửi các sở, ban, ngành\n", encoding="utf-8")
    for extra in ([], ["--content", str(text)]):
        plain = congvan("verify", str(text), *extra, data_dir=installation.data_dir)
        assert plain.returncode == 2
        assert "is not a signature file" in plain.stderr, plain.stderr


def test_a_file_too_large_to_be_a_signature_or_a_manifest_is_refused_unread(
    installation: Installation, tmp_path: Path
) -> None:
    # Given a "signed PDF" larger than a main file with its signatures can be, and a
    # "manifest" of 17 MiB (sparse files: nothing is written)
    pdf, manifest, cms = tmp_path / "huge.pdf", tmp_path / "huge.json", tmp_path / "s.p7s"
    with pdf.open("wb") as file:
        file.write(b"%PDF-1.7\n")
        file.truncate(27 * 1024 * 1024)
    with manifest.open("wb") as file:
        file.truncate(17 * 1024 * 1024)
    cms.write_bytes(b"0\x80")

    # Then each is refused as too large, one coded line, before it is read whole
    for args in ([str(pdf)], [str(cms), "--content", str(manifest)]):
        done = congvan("verify", *args, data_dir=installation.data_dir)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "error [payload_too_large]" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "armour",
    [
        b"-----BEGIN CMS-----\nnot base64!\n-----END CMS-----\n",
        b"-----BEGIN PKCS7-----\nMIIB\n",  # no END line
    ],
    ids=["bad-base64", "no-end"],
)
def test_a_pem_signature_file_that_is_not_pem_is_a_usage_error(
    armour: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a migrated installation, a manifest and an armoured file that does not decode
    assert main(["--data-dir", str(tmp_path), "migrate"]) == 0
    (tmp_path / "manifest.json").write_bytes(b"{}")
    (tmp_path / "sig.pem").write_bytes(armour)

    # When it is verified against the manifest
    code = main(
        [
            "--data-dir",
            str(tmp_path),
            "verify",
            str(tmp_path / "sig.pem"),
            "--content",
            str(tmp_path / "manifest.json"),
        ]
    )

    # Then it is refused as bad input, with no verdict
    assert code == 2
    out, err = capsys.readouterr()
    assert "error [invalid_input]" in err
    assert "VERIFIED" not in out


def test_a_detached_cms_file_verifies_against_its_manifest_only(
    installation: Installation, tmp_path: Path
) -> None:
    # Given a detached CMS (DER, and the same as PEM) made with the signer's key
    manifest = '{"format":"congvan-manifest/1","subject":"V/v thử ký tách rời"}'.encode()
    key, cert, roots = stored_signer(installation.data_dir)
    cms = sign_manifest(manifest, key=key, cert=cert, chain=roots, signing_time=datetime.now(UTC))
    (tmp_path / "manifest.json").write_bytes(manifest)
    (tmp_path / "changed.json").write_bytes(manifest.replace("thử".encode(), "sửa".encode()))
    (tmp_path / "sig.p7s").write_bytes(cms)
    body = base64.encodebytes(cms).decode()
    (tmp_path / "sig.pem").write_text(f"-----BEGIN CMS-----\n{body}-----END CMS-----\n")

    # Then each verifies against the manifest, with the installation's roots and CRLs
    for name in ("sig.p7s", "sig.pem"):
        done = congvan(
            "verify",
            str(tmp_path / name),
            "--content",
            str(tmp_path / "manifest.json"),
            data_dir=installation.data_dir,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "VERIFIED" in done.stdout
        for point in POINTS[:-1]:
            assert f"✓ {point} " in done.stdout, point
        assert "– signer matches" in done.stdout
        assert f"sha256 {hashlib.sha256(manifest).hexdigest()}" in done.stdout
        assert f"sha256 {installation.fingerprint}" in done.stdout
        assert_no_secret(done)

    # And not against a modified manifest
    done = congvan(
        "verify",
        str(tmp_path / "sig.p7s"),
        "--content",
        str(tmp_path / "changed.json"),
        data_dir=installation.data_dir,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error [manifest_mismatch]" in done.stdout
    assert "✗ intact " in done.stdout

    # And a CMS file without its manifest is a usage error, not a verdict
    done = congvan("verify", str(tmp_path / "sig.p7s"), data_dir=installation.data_dir)
    assert done.returncode == 2
    assert "--content" in done.stderr

    # And once the certificate is revoked, the same file no longer verifies today
    revoke_signer(installation.data_dir, installation.fingerprint)
    done = congvan(
        "verify",
        str(tmp_path / "sig.p7s"),
        "--content",
        str(tmp_path / "manifest.json"),
        data_dir=installation.data_dir,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error [certificate_revoked]" in done.stdout
    assert "key_compromise" in done.stdout
    assert "✓ trusted " in done.stdout and "✗ not revoked " in done.stdout


def test_a_message_an_agency_signed_verifies_under_the_agency_profile(
    installation: Installation, tmp_path: Path
) -> None:
    # Given the agency's organisational key, and a receipt it signed (naming it)
    runtime = bootstrap(Settings(data_dir=installation.data_dir, key_passphrase=PASS))
    other = "000.00.18.H57"
    try:
        now = runtime.clock()
        with runtime.uow() as uow:
            directory.add_agency(uow, other, "Sở Tư pháp", "STP", now)
            row, other_row = (
                keystore.issue_agency(
                    uow, agency, passphrase=PASS, crl_url=runtime.settings.crl_url, now=now
                )
                for agency in (AGENCY, other)
            )
            uow.commit()
        roots = runtime.trust.roots()
    finally:
        runtime.stop()
    key = pki.load_private_key(row.key_pem.encode(), PASS)
    cert = x509.load_pem_x509_certificate(row.cert_pem.encode())
    receipt = (
        b'{"format":"congvan-receipt/1","message_id":"m-1","recipient":"'
        + AGENCY.encode()
        + b'","status":"01"}'
    )
    cms = sign_manifest(receipt, key=key, cert=cert, chain=roots, signing_time=now)
    (tmp_path / "receipt.json").write_bytes(receipt)
    (tmp_path / "receipt.p7s").write_bytes(cms)
    # and one the other agency of this installation signed (same root) in its name
    other_key = pki.load_private_key(other_row.key_pem.encode(), PASS)
    other_cert = x509.load_pem_x509_certificate(other_row.cert_pem.encode())
    (tmp_path / "forged.p7s").write_bytes(
        sign_manifest(receipt, key=other_key, cert=other_cert, chain=roots, signing_time=now)
    )
    manifest = receipt.replace(b"congvan-receipt/1", b"congvan-manifest/1")
    (tmp_path / "manifest.json").write_bytes(manifest)
    (tmp_path / "manifest.p7s").write_bytes(
        sign_manifest(manifest, key=key, cert=cert, chain=roots, signing_time=now)
    )

    # Then the receipt verifies, judged as an agency's signature (as openssl would)
    done = congvan(
        "verify", str(tmp_path / "receipt.p7s"), "--content", str(tmp_path / "receipt.json"),
        data_dir=installation.data_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{AGENCY}'s signature over congvan-receipt/1" in done.stdout
    assert "✓ signer matches" in done.stdout

    # While the other agency's signature over it does not speak for the agency it names
    done = congvan(
        "verify", str(tmp_path / "forged.p7s"), "--content", str(tmp_path / "receipt.json"),
        data_dir=installation.data_dir,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "✗ signer matches" in done.stdout

    # While a document's manifest signed with it is not: a manifest is a person's to sign
    done = congvan(
        "verify", str(tmp_path / "manifest.p7s"), "--content", str(tmp_path / "manifest.json"),
        data_dir=installation.data_dir,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error [certificate_profile_invalid]" in done.stdout


def test_a_signed_pdf_verifies_and_a_changed_one_does_not(
    installation: Installation, tmp_path: Path
) -> None:
    key, cert, roots = stored_signer(installation.data_dir)
    signed = pades.sign_pdf(
        sample_pdf("1227"),
        key=key,
        cert=cert,
        chain=roots,
        signer_name=SIGNER_NAME,
        position=SIGNER_POSITION,
        agency_name=AGENCY_NAME,
        signing_time=datetime.now(UTC),
    )
    (tmp_path / "signed.pdf").write_bytes(signed)
    (tmp_path / "appended.pdf").write_bytes(signed + b"\n% appended after signing\n")

    done = congvan("verify", str(tmp_path / "signed.pdf"), data_dir=installation.data_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    for point in (
        "intact",
        "valid",
        "trusted",
        "not revoked",
        "key usage",
        "only signatures added",
    ):
        assert f"✓ {point} " in done.stdout, point
    assert f"signer        {SIGNER_NAME}" in done.stdout
    assert f"sha256 {installation.fingerprint}" in done.stdout
    assert "signatures    1 in the file" in done.stdout
    assert_no_secret(done)

    done = congvan("verify", str(tmp_path / "appended.pdf"), data_dir=installation.data_dir)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error [pdf_modified]" in done.stdout
    assert "✗ only signatures added " in done.stdout
    assert f"signer        {SIGNER_NAME}" in done.stdout


def outside_signer(data_dir: Path) -> tuple[Any, x509.Certificate]:
    """A signer of another agency (000.00.00.H58) under the same CA: trusted, not ours."""
    runtime = bootstrap(Settings(data_dir=data_dir, key_passphrase=PASS))
    try:
        now = runtime.clock()
        with runtime.uow() as uow:
            directory.add_agency(uow, OTHER, "Ủy ban nhân dân tỉnh Quảng Trị", "UBND", now)
            directory.ensure_user(
                uow, OTHER, "ct", ["signer"], now, full_name="Võ Văn Hưng", position="Chủ tịch"
            )
            row = keystore.issue_signer(
                uow, OTHER, "ct", passphrase=PASS, crl_url="http://127.0.0.1/crl", now=now
            )
            keystore.publish_crl(uow, passphrase=PASS, now=now)
            uow.commit()
    finally:
        runtime.stop()
    key = pki.load_private_key(row.key_pem.encode(), PASS)
    return key, x509.load_pem_x509_certificate(row.cert_pem.encode())


def test_each_signature_of_a_pdf_is_named_and_none_taken_for_the_documents_signer(
    installation: Installation, tmp_path: Path
) -> None:
    # Given the letter signed by pct, then signed again by a signer of another agency
    key, cert, roots = stored_signer(installation.data_dir)
    signed = pades.sign_pdf(
        sample_pdf("1227"), key=key, cert=cert, chain=roots, signer_name=SIGNER_NAME,
        position=SIGNER_POSITION, agency_name=AGENCY_NAME, signing_time=datetime.now(UTC),
    )  # fmt: skip
    other_key, other_cert = outside_signer(installation.data_dir)
    twice = token_sign(
        signed, key=other_key, cert=other_cert, chain=roots, signing_time=datetime.now(UTC)
    )
    (tmp_path / "twice.pdf").write_bytes(twice)
    # And the letter whose form a later update rewrote without its signature (its stamp
    # still shown on page 1)
    (tmp_path / "unlisted.pdf").write_bytes(with_text_field(signed, "ghi_chu", "Da xem"))

    # Then both signatures verify, each is named in order, and the other agency's is told
    done = congvan("verify", str(tmp_path / "twice.pdf"), data_dir=installation.data_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "signatures    2 in the file, each checked, in the order they were added" in out
    first, second = out.index("-- signature 1 of 2"), out.index("-- signature 2 of 2")
    assert out.index(f"signer        {SIGNER_NAME}", first) < second
    assert out.index("signer        Võ Văn Hưng", second) > second
    assert f"note          signature 2 was added by Ủy ban nhân dân tỉnh Quảng Trị ({OTHER})" in out

    # And the rewritten form is a change after signing, naming whose signature it took off
    done = congvan("verify", str(tmp_path / "unlisted.pdf"), data_dir=installation.data_dir)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error [pdf_modified]: A revision after the signature in field 'Signature1'" in (
        done.stdout
    )
    assert "✗ only signatures added " in done.stdout
    assert f"signer        {SIGNER_NAME}" in done.stdout


@pytest.mark.parametrize(
    ("error", "point"),
    [
        (errors.SignatureError("The signature is malformed: x"), "valid"),
        (errors.SignatureMalformed(), "valid"),
        (errors.WeakAlgorithm(), "valid"),
        (errors.ManifestMismatch(), "intact"),
        (errors.PdfModified("The PDF was changed after its last signature."), "covers_entire_file"),
        (errors.PdfModified("Page 1 was painted over before signing."), "covers_entire_file"),
        (errors.ChainUntrusted(), "trusted"),
        (errors.CertificateExpired(), "trusted"),  # at the moment of checking
        (errors.CertificateNotYetValid(), "trusted"),
        (
            errors.SigningTimeInvalid(signing_time="2020-01-01T00:00:00+00:00"),
            "valid_at_signing_time",
        ),
        (errors.RevocationUnknown(), "not_revoked"),
        (errors.CertificateRevoked(), "not_revoked"),
        (errors.KeyUsageInvalid(), "key_usage_ok"),
        (errors.CertificateProfileInvalid(), "key_usage_ok"),
        (errors.TimestampInvalid(), "valid_at_signing_time"),
        # The class decides, never the words: a message naming another point changes nothing
        (errors.SignatureError("the revocation path after the time"), "valid"),
        (errors.SignerMismatch(), "signer_matches"),
    ],
)
def test_each_error_marks_the_point_it_failed(error: errors.SignatureError, point: str) -> None:
    assert point == failed_point(error)
