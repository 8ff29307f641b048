"""The key store: our CA, certificates and CRLs in the database, checked by openssl."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import event, text

from congvan.actions.signing import issuers, keystore, pki
from congvan.actions.signing.description import describe
from congvan.states.errors import AlreadyExists, CongvanError, InvalidInput, NotFound
from congvan.storage import signatures as signatures_module
from congvan.storage.ids import new_id
from congvan.storage.signatures import CertificateRow
from congvan.workflow import directory
from congvan.workflow.bootstrap import Runtime
from tests.factories import signed_with_sha1

AGENCY = "000.00.00.H57"
PASS = "correct horse battery staple"
CRL_URL = "http://127.0.0.1:8000/v1/pki/crl"


def setup_signer(runtime: Runtime) -> None:
    with runtime.uow() as uow:
        now = runtime.clock()
        directory.add_agency(uow, AGENCY, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND", now)
        directory.ensure_user(
            uow,
            AGENCY,
            "pct",
            ["signer"],
            now,
            full_name="Nguyễn Văn Phương",
            position="Phó Chủ tịch",
        )
        directory.ensure_user(
            uow, AGENCY, "vanthu", ["clerk"], now, full_name="Trần Thị Lan", position="Văn thư"
        )
        keystore.init_ca(
            uow,
            "congvan test CA",
            "UBND tỉnh Thừa Thiên Huế",
            passphrase=PASS,
            now=now,
            store=runtime.trust,
        )
        uow.commit()


def pem(row: CertificateRow) -> bytes:
    return row.cert_pem.encode()


def test_a_signer_certificate_is_issued_revoked_and_listed_in_the_crl(
    runtime: Runtime, tmp_path: Path
) -> None:
    # Given our CA and a signer certificate
    setup_signer(runtime)
    with runtime.uow() as uow:
        signer = keystore.issue_signer(
            uow, AGENCY, "pct", passphrase=PASS, crl_url=CRL_URL, now=runtime.clock()
        )
        uow.commit()
    cert = x509.load_pem_x509_certificate(pem(signer))
    assert "Nguyễn Văn Phương" == describe(cert).common_name
    assert signer.key_pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")

    # When it is revoked (by a fingerprint prefix)
    with runtime.uow() as uow:
        der = keystore.revoke(
            uow,
            signer.fingerprint[:12],
            reason="key_compromise",
            passphrase=PASS,
            now=runtime.clock(),
        )
        uow.commit()
        trust = keystore.trust_material(uow, runtime.trust, noting_ignored=True)

    # Then the newest CRL lists it, and openssl refuses the certificate with that CRL
    crl = x509.load_der_x509_crl(der)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert [der] == trust.crls
    root = trust.roots[0].public_bytes(serialization.Encoding.PEM)
    (tmp_path / "root.pem").write_bytes(root)
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "signer.pem").write_bytes(pem(signer))
    done = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            "root.pem",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-attime",
            str(int(runtime.clock().timestamp()) + 60),
            "signer.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "revoked" in done.stdout + done.stderr


def revoked_signer(runtime: Runtime, *, crl_before: bool = False) -> CertificateRow:
    """pct's certificate, issued by our CA and revoked (a CRL published before it, too)."""
    setup_signer(runtime)
    with runtime.uow() as uow:
        signer = keystore.issue_signer(
            uow, AGENCY, "pct", passphrase=PASS, crl_url=CRL_URL, now=runtime.clock()
        )
        if crl_before:
            keystore.publish_crl(uow, passphrase=PASS, now=runtime.clock())
        uow.commit()
    runtime.clock.advance(minutes=1)
    with runtime.uow() as uow:
        keystore.revoke(
            uow, signer.fingerprint, reason="key_compromise", passphrase=PASS, now=runtime.clock()
        )
        uow.commit()
    return signer


def test_a_revocation_never_leaves_our_crls_whatever_the_rows_say(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a signer certificate revoked (CRL 1 lists it)
    signer = revoked_signer(runtime)
    serial = x509.load_pem_x509_certificate(pem(signer)).serial_number

    # When its row is un-revoked by SQL, and the next CRL is published
    with runtime.uow() as uow:
        query = "UPDATE certificates SET revoked_at = NULL, revocation_reason = ''"
        uow.conn.execute(text(query))
        uow.commit()
    runtime.clock.advance(minutes=1)
    with runtime.uow() as uow:
        der = keystore.publish_crl(uow, passphrase=PASS, now=runtime.clock())
        uow.commit()

    # Then our CA's signature does not make it good again: the next CRL lists it still, with
    # its reason, and the operators are told why
    entry = x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.key_compromise
    assert "a revocation the database no longer records" in caplog.text


def test_a_crl_older_than_a_revocation_recorded_here_is_not_taken(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a signer certificate issued under a first CRL, then revoked (a second lists it)
    revoked_signer(runtime, crl_before=True)
    with runtime.uow() as uow:
        query = text("SELECT der FROM revocation_lists ORDER BY number")
        *_, before, _listing = [bytes(der) for der in uow.conn.execute(query).scalars()]

    # When the CRL listing it is deleted by SQL, the one before it in force again
    with runtime.uow() as uow:
        newest = "SELECT max(number) FROM revocation_lists"
        uow.conn.execute(text(f"DELETE FROM revocation_lists WHERE number = ({newest})"))
        uow.commit()
        assert [bytes(c) for c in uow.signatures.latest_crls()] == [before]
        crls = keystore.trust_material(uow, runtime.trust).crls

    # Then that older CRL is not taken (the certificate would be good by it): no CRL of our
    # CA is, so its certificates' revocation cannot be told, and the operators are told
    assert crls == []
    assert "omits a revocation recorded here" in caplog.text

    # And once a CRL is published again (from the rows), it is in force
    runtime.clock.advance(minutes=1)
    with runtime.uow() as uow:
        again = keystore.publish_crl(uow, passphrase=PASS, now=runtime.clock())
        uow.commit()
        assert [bytes(c) for c in keystore.trust_material(uow, runtime.trust).crls] == [again]


def test_the_crls_in_force_are_looked_up_each_time_and_their_der_read_once(
    runtime: Runtime,
) -> None:
    setup_signer(runtime)
    der_reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "revocation_lists.der" in statement:
            der_reads.append(statement)

    def in_force() -> list[bytes]:
        with runtime.uow(readonly=True) as uow:
            return keystore.trust_material(uow, runtime.trust).crls

    with runtime.uow() as uow:
        first = keystore.publish_crl(uow, passphrase=PASS, now=runtime.clock())
        uow.commit()
    event.listen(runtime.db, "before_cursor_execute", count)
    try:
        once, again = in_force(), in_force()
        assert once == again == [first]
        assert len(der_reads) == 1  # which CRL is in force is asked every time; its DER once
        # each comes with its digest, as verifiers key their verdicts by it
        assert [getattr(c, "sha256", None) for c in again] == [hashlib.sha256(first).digest()]

        # A newer CRL of the issuer is in force at once: its DER is read, the old one left
        with runtime.uow() as uow:
            newer = keystore.publish_crl(uow, passphrase=PASS, now=runtime.clock())
            uow.commit()
        assert newer != first
        assert in_force() == [newer]
        # (publishing read the CRL before it, whose revocations the next one keeps)
        assert len(der_reads) == 3
    finally:
        event.remove(runtime.db, "before_cursor_execute", count)


def test_a_crl_damaged_in_the_database_counts_as_none_not_a_traceback(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given our CA's CRL published, then its DER damaged by SQL (or a bad disk)
    setup_signer(runtime)
    with runtime.uow() as uow:
        keystore.publish_crl(uow, passphrase=PASS, now=runtime.clock())
        uow.commit()
    with runtime.uow() as uow:
        uow.conn.execute(text("UPDATE revocation_lists SET der = :junk"), {"junk": b"0\x82junk"})
        uow.commit()
    monkeypatch.setattr(signatures_module, "_CRL_CACHE", signatures_module._CrlCache())

    # Then the trust material holds no CRL of it (what it judged is revocation_unknown)
    with runtime.uow(readonly=True) as uow:
        assert keystore.trust_material(uow, runtime.trust).crls == []


def test_only_signers_with_a_name_and_position_get_certificates(runtime: Runtime) -> None:
    setup_signer(runtime)
    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        keystore.issue_signer(
            uow, AGENCY, "vanthu", passphrase=PASS, crl_url=CRL_URL, now=runtime.clock()
        )
    assert "username" == caught.value.details["field"]


def test_a_wrong_passphrase_is_refused_without_echoing_it(runtime: Runtime) -> None:
    setup_signer(runtime)
    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        keystore.issue_signer(
            uow,
            AGENCY,
            "pct",
            passphrase="not the passphrase",
            crl_url=CRL_URL,
            now=runtime.clock(),
        )
    assert "not the passphrase" not in str(caught.value.to_dict())


def test_one_ca_only_and_nothing_without_one(runtime: Runtime) -> None:
    with runtime.uow() as uow, pytest.raises(NotFound):
        keystore.publish_crl(uow, passphrase=PASS, now=runtime.clock())
    setup_signer(runtime)
    with runtime.uow() as uow, pytest.raises(AlreadyExists):
        keystore.init_ca(
            uow, "second", "x", passphrase=PASS, now=runtime.clock(), store=runtime.trust
        )


def test_a_root_made_elsewhere_is_trusted_only_once_pinned(runtime: Runtime) -> None:
    outside = pki.create_ca(
        "Root CA of elsewhere",
        "Ban Cơ yếu Chính phủ",
        passphrase="x" * 12,
        valid_from=runtime.clock(),
        valid_days=365,
    )
    fp = keystore.fingerprint(outside.certificate)
    # Imported into the database: kept, and ignored by every verifier
    with runtime.uow() as uow:
        rows = keystore.import_certificate(uow, outside.cert_pem, kind="root", now=runtime.clock())
        uow.commit()
        trust = keystore.trust_material(uow, runtime.trust, noting_ignored=True)
    assert "" == rows[0].key_pem
    assert [] == trust.roots
    assert (fp,) == trust.ignored
    # Pinned in the trust store: trusted
    with runtime.uow() as uow:
        keystore.trust(uow, runtime.trust, outside.cert_pem, now=runtime.clock())
        uow.commit()
        trust = keystore.trust_material(uow, runtime.trust, noting_ignored=True)
    assert [outside.certificate] == trust.roots
    assert () == trust.ignored
    assert (runtime.trust.directory / f"{fp}.pem").is_file()
    with runtime.uow() as uow, pytest.raises(AlreadyExists):
        keystore.import_certificate(uow, outside.cert_pem, kind="root", now=runtime.clock())
    with runtime.uow() as uow, pytest.raises(InvalidInput):
        keystore.import_certificate(uow, b"not a certificate", kind="root", now=runtime.clock())


def old_shape_row(cert: x509.Certificate, kind: str, now: datetime) -> dict[str, Any]:
    """A certificates row as stored before ``CertificateDescription``: other names for the
    agency id, serial, fingerprint and issuer, and null for text the certificate lacks."""
    signer = kind == "signer"
    subject = {
        "common_name": "Nguyễn Văn Phương" if signer else "Root CA of elsewhere",
        "title": "Phó Chủ tịch" if signer else None,
        "organization": "Ban Cơ yếu Chính phủ",
        "agency_id": AGENCY if signer else None,
        "user_id": f"pct@{AGENCY}" if signer else None,
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "key_usage": ["digital_signature", "non_repudiation"] if signer else ["key_cert_sign"],
        "is_ca": not signer,
        "profile": "signer" if signer else None,
        "issuer_common_name": "Root CA of elsewhere",
        "sha256_fingerprint": keystore.fingerprint(cert),
    }
    return {
        "id": new_id(),
        "kind": kind,
        "agency_id": AGENCY if signer else None,
        "username": "pct" if signer else None,
        "fingerprint": keystore.fingerprint(cert),
        "serial": format(cert.serial_number, "x"),
        "subject": json.dumps(subject, ensure_ascii=False),
        "cert_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "key_pem": "",
        "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc,
        "revocation_reason": "",
        "created_at": now,
    }


def test_rows_stored_in_the_old_shape_are_read_as_descriptions(runtime: Runtime) -> None:
    # Given a CA made elsewhere and a signer certificate it issued, stored by SQL alone in
    # the shape rows had before CertificateDescription
    now = runtime.clock()
    passphrase = "x" * 12
    outside = pki.create_ca(
        "Root CA of elsewhere",
        "Ban Cơ yếu Chính phủ",
        passphrase=passphrase,
        valid_from=now,
        valid_days=365,
    )
    leaf = pki.issue_signer_certificate(
        outside,
        passphrase,
        full_name="Nguyễn Văn Phương",
        position="Phó Chủ tịch",
        agency_id=AGENCY,
        agency_name="Ban Cơ yếu Chính phủ",
        user_id=f"pct@{AGENCY}",
        passphrase=passphrase,
        valid_from=now,
        valid_days=30,
        crl_url=CRL_URL,
    ).certificate
    columns = ", ".join(old_shape_row(leaf, "signer", now))
    values = ", ".join(f":{name}" for name in old_shape_row(leaf, "signer", now))
    with runtime.uow() as uow:
        for cert, kind in ((outside.certificate, "root"), (leaf, "signer")):
            uow.conn.execute(
                text(f"INSERT INTO certificates ({columns}) VALUES ({values})"),
                old_shape_row(cert, kind, now),
            )
        uow.commit()

    # When they are read the usual way
    with runtime.uow() as uow:
        signer = uow.signatures.certificate(keystore.fingerprint(leaf))
        listed = uow.signatures.certificates(AGENCY)

    # Then they are descriptions, equal to the certificate's own but for the issuer,
    # of which the old shape kept only the common name
    assert signer is not None
    fresh = describe(leaf)
    assert dataclasses.replace(fresh, issuer="Root CA of elsewhere") == signer.subject
    assert [signer.subject] == [r.subject for r in listed]
    # And what reads them decides by them: the old root row is a CA whose CRL is taken
    crl = pki.make_crl(
        outside, passphrase, [], this_update=now, next_update=now + timedelta(days=7), number=3
    )
    with runtime.uow() as uow:
        imported = issuers.import_crl(uow, runtime.trust, crl, now=runtime.clock())
    assert 3 == imported["number"]


def test_a_crl_out_of_force_or_undoing_a_revocation_is_refused(runtime: Runtime) -> None:
    # Given another installation's CA, pinned here
    now = runtime.clock()
    outside = pki.create_ca(
        "CA elsewhere", "Elsewhere", passphrase=PASS, valid_from=now - timedelta(days=1),
        valid_days=3650,
    )  # fmt: skip
    runtime.trust.pin(outside.certificate)
    compromised = pki.Revocation(0x1001, now - timedelta(hours=1), x509.ReasonFlags.key_compromise)
    held = pki.Revocation(0x1002, now - timedelta(hours=1), x509.ReasonFlags.certificate_hold)

    def crl(number: int, revoked: list[pki.Revocation], **moved: timedelta) -> bytes:
        this_update = now + moved.get("ahead", timedelta(0))
        return pki.make_crl(
            outside, PASS, revoked, this_update=this_update,
            next_update=this_update + moved.get("lasting", timedelta(days=7)), number=number,
        )  # fmt: skip

    def imported(data: bytes) -> dict[str, Any]:
        with runtime.uow() as uow:
            done = issuers.import_crl(uow, runtime.trust, data, now=now)
            uow.commit()
        return done

    # Then one dated ahead of the clock skew is not in force yet, one run out no longer
    for early, message in (
        (crl(1, [], ahead=timedelta(hours=1)), "ahead of this clock"),
        (crl(1, [], ahead=-timedelta(days=8)), "ran out"),
    ):
        with pytest.raises(InvalidInput, match=message):
            imported(early)
    # And one within the skew is taken, revoking for key compromise and holding another
    assert 2 == imported(crl(1, [compromised, held], ahead=timedelta(minutes=4)))["revoked"]

    # And a later one dropping the compromise undoes a revocation: refused, naming it
    with pytest.raises(InvalidInput) as caught:
        imported(crl(2, [held]))
    assert "1001" == caught.value.details["serial"]
    # While one releasing the hold is taken
    assert 1 == imported(crl(2, [compromised]))["revoked"]


def test_a_root_out_of_date_or_with_a_weak_key_is_not_pinned(runtime: Runtime) -> None:
    now = runtime.clock()
    ran_out = pki.create_ca(
        "Old root", "Elsewhere", passphrase=PASS, valid_from=now - timedelta(days=400),
        valid_days=365,
    )  # fmt: skip
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Weak root")])
    weak = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    for data, message in (
        (ran_out.cert_pem, "ran out"),
        (weak.public_bytes(serialization.Encoding.PEM), "1024 bits"),
    ):
        with runtime.uow() as uow, pytest.raises(InvalidInput, match=message):
            keystore.trust(uow, runtime.trust, data, now=now)
    assert [] == runtime.trust.roots()
    with runtime.uow() as uow:
        assert [] == uow.signatures.roots()


def test_a_delta_or_partial_crl_is_not_kept_as_the_issuers_crl(runtime: Runtime) -> None:
    # Given another installation's CA, pinned here
    now = runtime.clock()
    outside = pki.create_ca(
        "CA elsewhere", "Elsewhere", passphrase=PASS, valid_from=now - timedelta(days=1),
        valid_days=3650,
    )  # fmt: skip
    runtime.trust.pin(outside.certificate)
    ca_cert, ca_key = pki._ca_material(outside, PASS)

    def narrowed(extension: x509.ExtensionType) -> bytes:
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now)
            .next_update(now + timedelta(days=7))
            .add_extension(x509.CRLNumber(51), critical=False)
            .add_extension(extension, critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        return crl.public_bytes(serialization.Encoding.DER)

    # Then a delta CRL, or one an issuing distribution point narrows, is refused: kept as
    # the newest, it would stand for every certificate of that CA
    scoped = x509.IssuingDistributionPoint(None, None, False, True, None, False, False)
    for extension, said in ((x509.DeltaCRLIndicator(50), "delta"), (scoped, "CA certificates")):
        with runtime.uow() as uow, pytest.raises(InvalidInput, match=said):
            issuers.import_crl(uow, runtime.trust, narrowed(extension), now=now)


def test_a_signers_certificate_is_kept_only_if_a_signature_could_be_taken_under_it(
    runtime: Runtime,
) -> None:
    # Given our CA, its signer pct, and a CA of the same name nobody pinned
    setup_signer(runtime)
    now = runtime.clock()
    with runtime.uow() as uow:
        [ca_row] = uow.signatures.roots()
    ca = pki.Issued(ca_row.cert_pem.encode(), ca_row.key_pem.encode())
    ca_key = pki.load_private_key(ca_row.key_pem.encode(), PASS)
    unpinned = pki.create_ca(
        "congvan test CA", "UBND tỉnh Thừa Thiên Huế", passphrase=PASS,
        valid_from=now - timedelta(days=1), valid_days=365,
    )  # fmt: skip

    def signer(issuer: pki.Issued = ca, uid: str = f"pct@{AGENCY}", **terms: Any) -> bytes:
        terms = {"valid_from": now - timedelta(days=1), "valid_days": 365, **terms}
        issued = pki.issue_signer_certificate(
            issuer, PASS, full_name="Nguyễn Văn Phương", position="Phó Chủ tịch",
            agency_id=AGENCY, agency_name="UBND", user_id=uid, passphrase=PASS,
            crl_url=CRL_URL, **terms,
        )  # fmt: skip
        return issued.cert_pem

    good = x509.load_pem_x509_certificate(signer())

    def rebuilt(key: Any, digest: Any) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(good.subject)
            .issuer_name(good.issuer)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(good.not_valid_before_utc)
            .not_valid_after(good.not_valid_after_utc)
        )
        for extension in good.extensions:
            if extension.oid not in (
                x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER,
                x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
            ):
                builder = builder.add_extension(extension.value, extension.critical)
        return builder.sign(ca_key, digest).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]

    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    sha1_signed = signed_with_sha1(good, ca_key)
    refused = [
        (signer(unpinned), "does not chain to a pinned root"),
        (signer(valid_from=now - timedelta(days=400), valid_days=30), "ran out"),
        (rebuilt(weak_key, hashes.SHA256()), "1024 bits"),
        (signer(uid=f"vanthu@{AGENCY}"), f"names vanthu@{AGENCY} as its holder, not pct@"),
        (sha1_signed.public_bytes(serialization.Encoding.PEM), "signed with sha1"),
    ]
    for data, message in refused:
        # When each is imported as pct's
        with runtime.uow() as uow, pytest.raises(CongvanError, match=message):
            keystore.import_certificate(
                uow, data, kind="signer", now=now, agency_id=AGENCY, username="pct",
                store=runtime.trust,
            )  # fmt: skip

    # Then none is kept; one of our CA's, valid, strong and naming pct, is
    with runtime.uow() as uow:
        assert [r.kind for r in uow.signatures.certificates()] == ["root"]
        keystore.import_certificate(
            uow, signer(), kind="signer", now=now, agency_id=AGENCY, username="pct",
            store=runtime.trust,
        )  # fmt: skip
        uow.commit()


def test_an_agency_key_not_usable_says_why_of_its_newest_certificate(runtime: Runtime) -> None:
    # Given the agency's organisational certificate, issued now
    setup_signer(runtime)
    now = runtime.clock()
    keys = runtime.anchoring.keys
    with runtime.uow() as uow:
        row = keystore.issue_agency(uow, AGENCY, passphrase=PASS, crl_url=CRL_URL, now=now)
        uow.commit()

    def refusal(at: datetime) -> str:
        with runtime.uow(readonly=True) as uow, pytest.raises(NotFound) as caught:
            keys.require(uow, AGENCY, at)
        return caught.value.message

    # Then asked for a moment before it (a clock behind the one it was issued on), after
    # it ran out, and once it is revoked, each is said, never "none" with a key kept
    assert "is valid from" in refusal(now - timedelta(days=1))
    assert "only (issued on a clock ahead of this one's)" in refusal(now - timedelta(days=1))
    assert "expired at" in refusal(now + timedelta(days=4 * 365))
    with runtime.uow() as uow:
        keystore.revoke(uow, row.fingerprint, reason="superseded", passphrase=PASS, now=now)
        uow.commit()
    assert refusal(now + timedelta(minutes=1)).endswith(
        "organisational certificate is revoked: issue one valid now with "
        "`congvan keys issue-agency`."
    )
    # And an agency that never had one: none
    with runtime.uow() as uow:
        directory.add_agency(uow, "000.00.01.H57", "Sở Nội vụ", "SNV", now)
        uow.commit()
    with runtime.uow(readonly=True) as uow, pytest.raises(NotFound, match="has no usable"):
        keys.require(uow, "000.00.01.H57", now)
