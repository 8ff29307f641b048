"""Trust over HTTP: pinned roots, certificate profiles, revocation, and what openssl says.

Each upload here is made the way an attacker or a careless tool would make it, refused with
its own code, and leaves the letter as it was; wherever ``openssl cms -verify`` can judge
(with the served roots, and our CRL under ``-crl_check``), it refuses too.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import text

from congvan.actions.checks.registry import CHECKS
from congvan.actions.signing import issuers, keystore, pki
from congvan.actions.signing.cms import sign_manifest
from congvan.states.errors import AlreadyExists, InvalidInput
from congvan.storage.signatures import CertificateRow
from congvan.workflow import cli
from tests.api.conftest import A, Api, MakeApi, assert_error
from tests.api.test_review_flow_api import (
    SIGNER_USER,
    approve,
    clean_metadata,
    failed,
    history,
    printing,
    submit_and_check,
)
from tests.api.test_signing_api import (
    PASS,
    issue,
    key_and_cert,
    manifest_of,
    needs_openssl,
    reviewed_letter,
    sign,
    signature_rows,
    signing_api,
    state_and_version,
    token_main,
)
from tests.factories import signed_with_sha1
from tests.pdf_edits import token_sign
from tests.tools import verify_with_openssl

# -- certificates as others make them ------------------------------------------------------


@dataclass(frozen=True)
class Made:
    """What an upload was made with: key, certificate, the chain it embeds."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    chain: list[x509.Certificate]


def our_ca(api: Api) -> tuple[x509.Certificate, Any]:
    with api.runtime.uow(readonly=True) as uow:
        row = next(r for r in uow.signatures.roots() if r.key_pem)
    return (
        x509.load_pem_x509_certificate(row.cert_pem.encode()),
        pki.load_private_key(row.key_pem.encode(), PASS),
    )


def certificate(
    api: Api,
    subject: x509.Name,
    issuer: x509.Name,
    issuer_key: Any,
    *,
    key: rsa.RSAPrivateKey | None = None,
    digest: hashes.HashAlgorithm | None = None,
    extended_usage: list[x509.ObjectIdentifier] | None = None,
    crl_url: str | None = "http://127.0.0.1:8000/v1/pki/crl",
    ca: bool = False,
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A certificate built by hand, as other tools (or an attacker) make them."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = api.clock()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            pki.CA_KEY_USAGE if ca else pki.SIGNING_KEY_USAGE,
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if extended_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_usage), critical=False)
    if crl_url is not None:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    return key, builder.sign(issuer_key, digest or hashes.SHA256())


def signer_subject(api: Api) -> x509.Name:
    """The subject of the signer's genuine certificate: the same person, post and agency."""
    return x509.load_pem_x509_certificate(_genuine(api).cert_pem.encode()).subject


def _genuine(api: Api) -> CertificateRow:
    """The stored row of the signer's genuine certificate (the newest)."""
    with api.runtime.uow(readonly=True) as uow:
        rows = [r for r in uow.signatures.certificates(A) if r.kind == "signer"]
    return rows[-1]


def _outside_ca(api: Api, name: x509.Name | None = None) -> tuple[Any, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = name or x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Kẻ giả mạo CA")])
    _key, cert = certificate(api, name, name, key, key=key, ca=True, crl_url=None)
    return key, cert


def _root_row_written_with_sql(api: Api) -> Made:
    # Someone with SQL access adds a CA of their own to the certificates table
    ca_key, ca = _outside_ca(api)
    with api.runtime.uow() as uow:
        keystore._store(uow, "root", ca, api.clock())
        uow.commit()
    key, cert = certificate(api, signer_subject(api), ca.subject, ca_key)
    return Made(key, cert, [ca])


def _self_signed(api: Api) -> Made:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = signer_subject(api)
    _key, cert = certificate(api, subject, subject, key, key=key)
    return Made(key, cert, [])


def _same_name_as_our_ca(api: Api) -> Made:
    ours, _key = our_ca(api)
    ca_key, ca = _outside_ca(api, ours.subject)
    key, cert = certificate(api, signer_subject(api), ca.subject, ca_key)
    return Made(key, cert, [ca])


def _tls_server_only(api: Api) -> Made:
    ca, ca_key = our_ca(api)
    key, cert = certificate(
        api,
        signer_subject(api),
        ca.subject,
        ca_key,
        extended_usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    return Made(key, cert, [ca])


def _agency_certificate(api: Api) -> Made:
    with api.runtime.uow() as uow:
        row = keystore.issue_agency(
            uow, A, passphrase=PASS, crl_url=api.runtime.settings.crl_url, now=api.clock()
        )
        uow.commit()
    key, cert = key_and_cert(row)
    assert isinstance(key, rsa.RSAPrivateKey)
    ca, _ca_key = our_ca(api)
    return Made(key, cert, [ca])


def _sha1_certificate(api: Api) -> Made:
    ca, ca_key = our_ca(api)
    key, cert = certificate(api, signer_subject(api), ca.subject, ca_key)
    return Made(key, signed_with_sha1(cert, ca_key), [ca])


def _revoked_without_a_crl_pointer(api: Api) -> Made:
    # Our CA's certificate with no CRL distribution point, revoked in our CRL
    ca, ca_key = our_ca(api)
    key, cert = certificate(api, signer_subject(api), ca.subject, ca_key, crl_url=None)
    with api.runtime.uow() as uow:
        row = keystore._store(uow, "signer", cert, api.clock(), agency_id=A)
        keystore.revoke(
            uow, row.fingerprint, reason="key_compromise", passphrase=PASS, now=api.clock()
        )
        uow.commit()
    api.clock.advance(minutes=1)
    return Made(key, cert, [ca])


def _crl_expired(api: Api) -> Made:
    made = Made(*key_and_cert(_genuine(api)), chain=[our_ca(api)[0]])
    # Eight days on and nobody republished: our CRL (seven days) has run out
    api.clock.advance(days=8)
    return made


# Each case: how the upload is made, our code, and whether openssl refuses it too
# (None: openssl cannot judge it, e.g. our certificate profiles are not openssl's).
CASES: dict[str, tuple[Callable[[Api], Made], str, bool | None]] = {
    "root-row-written-with-sql": (_root_row_written_with_sql, "chain_untrusted", True),
    "self-signed": (_self_signed, "chain_untrusted", True),
    "same-name-as-our-ca": (_same_name_as_our_ca, "chain_untrusted", True),
    "tls-server-only": (_tls_server_only, "certificate_profile_invalid", True),
    "agency-certificate": (_agency_certificate, "certificate_profile_invalid", None),
    "sha1-certificate": (_sha1_certificate, "weak_algorithm", None),
    "revoked-without-crl-pointer": (_revoked_without_a_crl_pointer, "certificate_revoked", True),
    "crl-expired": (_crl_expired, "revocation_unknown", True),
}


@pytest.mark.parametrize("case", CASES)
def test_an_untrusted_or_unfit_signature_is_refused_by_its_own_code(
    make_api: MakeApi, tmp_path: Path, case: str
) -> None:
    # Given a reviewed letter and a signature made as the case says
    api = signing_api(make_api)
    issue(api)
    doc_id = reviewed_letter(api)
    before = state_and_version(api, doc_id)
    make, code, openssl_refuses = CASES[case]
    made = make(api)
    manifest = manifest_of(api, doc_id)
    cms = sign_manifest(
        manifest, key=made.key, cert=made.cert, chain=made.chain, signing_time=api.clock()
    )

    # When the signer uploads it
    response = sign(api, doc_id, cms)

    # Then it is refused by its own code and nothing is stored
    assert_error(response, 422, code)
    assert state_and_version(api, doc_id) == before
    assert signature_rows(api, doc_id) == []
    assert history(api, doc_id)[-1]["event"] == "approve"

    # And openssl, given the roots and the CRL we serve, refuses it too
    if openssl_refuses is not None:
        done = openssl_cms_verify(api, tmp_path, manifest, cms)
        assert (done.returncode != 0) is openssl_refuses, done.stderr


def openssl_cms_verify(
    api: Api, folder: Path, manifest: bytes, cms: bytes
) -> subprocess.CompletedProcess[bytes]:
    """``openssl cms -verify`` with our served roots and CRL, at the test clock's moment."""
    (folder / "manifest.json").write_bytes(manifest)
    (folder / "sig.p7s").write_bytes(cms)
    # openssl cms takes the CRLs beside the roots in -CAfile
    (folder / "ca.pem").write_bytes(
        api.client.get("/v1/pki/roots").content + api.client.get("/v1/pki/crl?format=pem").content
    )
    return verify_with_openssl(folder, "-crl_check", "-attime", str(int(api.clock().timestamp())))


@needs_openssl
def test_openssl_accepts_what_we_accept_with_the_crl_checked(
    make_api: MakeApi, tmp_path: Path
) -> None:
    # Given a letter signed by the signer's own token with a genuine certificate
    api = signing_api(make_api)
    row = issue(api)
    doc_id = reviewed_letter(api)
    key, cert = key_and_cert(row)
    manifest = manifest_of(api, doc_id)
    cms = sign_manifest(
        manifest, key=key, cert=cert, chain=[our_ca(api)[0]], signing_time=api.clock()
    )

    # Then both accept it, with the CRL checked
    assert 200 == sign(api, doc_id, cms, token_main(api, doc_id, key, cert)).status_code
    done = openssl_cms_verify(api, tmp_path, manifest, cms)
    assert done.returncode == 0, done.stderr


def test_the_crl_is_republished_by_its_timer_and_signing_keeps_working(
    make_api: MakeApi,
) -> None:
    # Given a signer, and the clock eight days on: our seven-day CRL has run out
    api = signing_api(make_api)
    issue(api)
    first = reviewed_letter(api)
    api.clock.advance(days=8)
    assert_error(sign(api, first, None), 422, "revocation_unknown")

    # When the scheduler fires the CRL timer (no sleeping: the clock is injected)
    with api.runtime.uow() as uow:
        api.runtime.revocation_lists.ensure_timer(uow, api.clock())
        uow.commit()
    assert api.runtime.scheduler.run_due() >= 1

    # Then a fresh CRL is served and signing works again
    crl = x509.load_der_x509_crl(api.client.get("/v1/pki/crl").content)
    assert crl.last_update_utc == api.clock()
    assert crl.next_update_utc == api.clock() + timedelta(days=7)
    assert 200 == sign(api, first, None).status_code

    # And the timer keeps coming: four days later (72 h before the end) it republishes again
    api.clock.advance(days=4, minutes=1)
    api.runtime.scheduler.run_due()
    newer = x509.load_der_x509_crl(api.client.get("/v1/pki/crl").content)
    assert newer.last_update_utc == api.clock()


def test_another_cas_crl_is_imported_and_its_revocations_count(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a root made elsewhere, pinned, and a signer certificate it issued
    api = signing_api(make_api)
    issue(api)
    doc_id = reviewed_letter(api)
    ca_key, ca = _outside_ca(api)
    key, cert = certificate(api, signer_subject(api), ca.subject, ca_key, crl_url=None)
    with api.runtime.uow() as uow:
        keystore.trust(
            uow, api.runtime.trust, ca.public_bytes(serialization.Encoding.PEM), now=api.clock()
        )
        uow.commit()

    # Then without any CRL of that CA, its revocation status is unknown
    def upload() -> Any:
        cms = sign_manifest(
            manifest_of(api, doc_id), key=key, cert=cert, chain=[ca], signing_time=api.clock()
        )
        return sign(api, doc_id, cms)

    assert_error(upload(), 422, "revocation_unknown")

    # When its CRL listing the certificate is imported
    def crl_of_outside(revoked: list[int], number: int, days: float) -> bytes:
        now = api.clock()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.subject)
            .last_update(now - timedelta(minutes=5))
            .next_update(now + timedelta(days=days))
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - timedelta(minutes=2))
                .build()
            )
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    with api.runtime.uow() as uow:
        issuers.import_crl(
            uow, api.runtime.trust, crl_of_outside([cert.serial_number], 7, 1), now=api.clock()
        )
        uow.commit()

    # Then the signature is refused as revoked
    assert_error(upload(), 422, "certificate_revoked")

    # And an older CRL of the same CA is not taken, nor one signed by another key
    with api.runtime.uow() as uow, pytest.raises(AlreadyExists):
        issuers.import_crl(uow, api.runtime.trust, crl_of_outside([], 6, 3), now=api.clock())
    with api.runtime.uow() as uow, pytest.raises(InvalidInput):
        forged = x509.load_der_x509_crl(crl_of_outside([], 9, 3))
        other_key, _other = _outside_ca(api, ca.subject)
        resigned = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(forged.issuer)
            .last_update(forged.last_update_utc)
            .next_update(forged.next_update_utc or api.clock())
            .sign(other_key, hashes.SHA256())
        )
        issuers.import_crl(
            uow,
            api.runtime.trust,
            resigned.public_bytes(serialization.Encoding.PEM),
            now=api.clock(),
        )

    # And the CRL timer warns that the imported CRL expires within a day
    with caplog.at_level("WARNING", logger="congvan.crl"), api.runtime.uow() as uow:
        outcome = api.runtime.revocation_lists.check(uow, api.clock())
    assert "expiring" in outcome.values()
    assert any(getattr(r, "action", "") == "crl.expiring" for r in caplog.records)


def test_revoking_a_certificate_of_another_ca_is_refused(make_api: MakeApi) -> None:
    api = signing_api(make_api)
    issue(api)
    ca_key, ca = _outside_ca(api)
    _key, cert = certificate(api, signer_subject(api), ca.subject, ca_key)
    with api.runtime.uow() as uow:
        row = keystore._store(uow, "signer", cert, api.clock(), agency_id=A)
        uow.commit()
    with api.runtime.uow() as uow, pytest.raises(InvalidInput, match="only its issuer"):
        keystore.revoke(
            uow, row.fingerprint, reason="key_compromise", passphrase=PASS, now=api.clock()
        )
    with api.runtime.uow(readonly=True) as uow:
        held = uow.signatures.certificate(row.fingerprint)
    assert held is not None and held.revoked_at is None


def test_a_certificate_revoked_after_signing_is_named_in_the_verdict(
    make_api: MakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a letter signed on the server
    api = signing_api(make_api)
    row = issue(api)
    doc_id = reviewed_letter(api)
    assert 200 == sign(api, doc_id, None).status_code

    # When, an hour later, the signer's key is reported compromised and revoked
    api.clock.advance(hours=1)
    with api.runtime.uow() as uow:
        keystore.revoke(
            uow, row.fingerprint, reason="key_compromise", passphrase=PASS, now=api.clock()
        )
        uow.commit()

    # Then the signature still stands as of when it was made, but the verdict says so
    verdict = api.get(f"/v1/documents/{doc_id}/signature").json()["verdict"]
    assert verdict["ok"] is True, verdict
    later = verdict["later_revocation"]
    assert later["reason"] == "key_compromise"
    assert datetime.fromisoformat(later["revoked_at"]) == api.clock()

    # And so does `congvan verify`
    settings = api.runtime.settings
    code = cli.main(
        ["--data-dir", str(settings.data_dir), "--database-url", settings.db_url, "verify", doc_id]
    )
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err
    assert "VERIFIED, BUT" in out
    assert "key_compromise" in out


def test_outsiders_get_the_exact_signed_bytes_and_check_them_with_openssl(
    make_api: MakeApi, tmp_path: Path
) -> None:
    # Given a letter signed on the server
    api = signing_api(make_api)
    issue(api)
    doc_id = reviewed_letter(api)
    assert 200 == sign(api, doc_id, None).status_code
    (stored,) = signature_rows(api, doc_id)

    # Then the signature's times carry their UTC offset
    described = api.get(f"/v1/documents/{doc_id}/signature").json()
    for moment in (described["signing_time"], described["verdict"]["checked_at"]):
        assert datetime.fromisoformat(moment).utcoffset() is not None, moment

    # Then the signed manifest and the CMS are served byte for byte, with their types
    manifest = api.get(f"/v1/documents/{doc_id}/signature/manifest")
    cms = api.get(f"/v1/documents/{doc_id}/signature/cms")
    assert (manifest.status_code, manifest.headers["content-type"]) == (200, "application/json")
    assert manifest.content == bytes(stored["manifest"])
    assert cms.headers["content-type"] == "application/pkcs7-signature"
    assert cms.content == bytes(stored["cms"])
    # each with its digest and its hex as the ETag, as every stored file, read conditionally
    current = api.get(f"/v1/documents/{doc_id}/manifest")
    for served in (manifest, cms, current):
        digest = hashlib.sha256(served.content).digest()
        assert served.headers["etag"] == f'"{digest.hex()}"'
        assert served.headers["repr-digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
        conditional = {**api.auth(), "If-None-Match": served.headers["etag"]}
        held = api.client.get(served.request.url, headers=conditional)
        assert (held.status_code, held.content) == (304, b"")

    # And the roots and CRL come in PEM and DER, the same certificates and list
    pem_roots = x509.load_pem_x509_certificates(api.client.get("/v1/pki/roots").content)
    der_root = api.client.get("/v1/pki/roots?format=der")
    assert der_root.headers["content-type"] == "application/pkix-cert"
    assert [x509.load_der_x509_certificate(der_root.content)] == pem_roots
    der_crl = api.client.get("/v1/pki/crl")
    pem_crl = api.client.get("/v1/pki/crl?format=pem")
    assert der_crl.headers["content-type"] == "application/pkix-crl"
    assert x509.load_pem_x509_crl(pem_crl.content) == x509.load_der_x509_crl(der_crl.content)

    # And openssl verifies them with the CRL checked, as README shows
    done = openssl_cms_verify(api, tmp_path, manifest.content, cms.content)
    assert done.returncode == 0, done.stderr


# -- what SQL can change behind the engine -------------------------------------------------


def signed_letter(make_api: MakeApi) -> tuple[Api, str]:
    api = signing_api(make_api)
    issue(api)
    doc_id = reviewed_letter(api)
    assert 200 == sign(api, doc_id, None).status_code
    return api, doc_id


def sql(api: Api, statement: str, **params: Any) -> None:
    with api.runtime.db.begin() as conn:
        assert conn.execute(text(statement), params).rowcount >= 1


def test_a_byte_changed_in_a_stored_attachment_fails_verification_and_is_not_served(
    make_api: MakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a signed letter whose main file's bytes are then changed in the database,
    # keeping the digest it is stored and listed under
    api, doc_id = signed_letter(make_api)
    assert api.get(f"/v1/documents/{doc_id}/signature").json()["verdict"]["ok"] is True
    (main,) = [
        a for a in api.get(f"/v1/documents/{doc_id}").json()["attachments"] if a["role"] == "main"
    ]
    with api.runtime.db.connect() as conn:
        data = bytearray(
            conn.execute(
                text("SELECT data FROM blobs WHERE sha256 = :d"), {"d": main["sha256"]}
            ).scalar_one()
        )
    data[len(data) // 2] ^= 0x01
    sql(api, "UPDATE blobs SET data = :data WHERE sha256 = :d", data=bytes(data), d=main["sha256"])

    # Then the signature's verdict names the attachment
    verdict = api.get(f"/v1/documents/{doc_id}/signature").json()["verdict"]
    assert (verdict["ok"], verdict["code"]) == (False, "manifest_mismatch")
    assert verdict["details"]["sha256"] == main["sha256"]

    # And the attachment is not served under its old digest
    assert_error(
        api.get(f"/v1/documents/{doc_id}/attachments/{main['sha256']}"), 422, "manifest_mismatch"
    )

    # And `congvan verify` says NOT VERIFIED
    settings = api.runtime.settings
    code = cli.main(
        ["--data-dir", str(settings.data_dir), "--database-url", settings.db_url, "verify", doc_id]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "NOT VERIFIED  error [manifest_mismatch]" in out


@pytest.mark.parametrize("reason", ["key_compromise", "superseded"])
def test_a_letter_whose_signer_was_revoked_after_signing_is_not_sent_but_signed_again(
    make_api: MakeApi, reason: str
) -> None:
    # Given a letter signed on the server, and the signer's certificate revoked an hour
    # later (whatever the reason: every recipient judges it as the package arrives)
    api = signing_api(make_api)
    row = issue(api)
    doc_id = reviewed_letter(api)
    assert 200 == sign(api, doc_id, None).status_code
    api.clock.advance(hours=1)
    with api.runtime.uow() as uow:
        keystore.revoke(uow, row.fingerprint, reason=reason, passphrase=PASS, now=api.clock())
        uow.commit()

    # Then send refuses it, saying why and what to do, and nothing is sent
    refused = api.fire(doc_id, "send")
    details = assert_error(refused, 422, "certificate_revoked")
    assert details["revocation_reason"] == reason and "sign it again" in refused.json()["message"]
    assert "signed" == state_and_version(api, doc_id)[0]

    # And the letter is returned, approved again and signed with a new certificate,
    # whose signature send's guard takes (what stops it now is its unknown recipients)
    returned = api.fire(doc_id, "reject", role=SIGNER_USER, body={"reason": "Ký lại"})
    assert 200 == returned.status_code, returned.text
    assert failed(submit_and_check(api, doc_id)) == set()
    assert 200 == approve(api, doc_id).status_code
    issue(api)
    assert 200 == sign(api, doc_id, None).status_code
    assert_error(api.fire(doc_id, "send"), 422, "unknown_peer")


def test_a_letter_whose_signers_certificate_ran_out_since_signing_is_not_sent(
    make_api: MakeApi,
) -> None:
    # Given a letter signed on the server under a certificate valid for one more day
    api = signing_api(make_api)
    issue(api, valid_days=1)
    doc_id = reviewed_letter(api)
    assert 200 == sign(api, doc_id, None).status_code

    # When send comes after it ran out (its signature stands as of its signing, but a
    # package carries no timestamp: every recipient judges it as it arrives)
    api.clock.advance(hours=25)
    refused = api.fire(doc_id, "send")

    # Then send refuses it, saying why and what to do, and nothing is sent
    details = assert_error(refused, 422, "certificate_expired")
    assert "sign it again" in refused.json()["message"] and details["checked_at"]
    assert "signed" == state_and_version(api, doc_id)[0]


def test_the_acceptance_time_and_signature_come_from_the_audit_trail_not_the_row(
    make_api: MakeApi,
) -> None:
    # Given a signed letter, and the signer's certificate revoked an hour later
    api, doc_id = signed_letter(make_api)
    api.clock.advance(hours=1)
    (row,) = [r for r in signature_rows(api, doc_id)]
    with api.runtime.uow() as uow:
        fingerprint = row["certificate_fingerprint"]
        keystore.revoke(uow, fingerprint, reason="key_compromise", passphrase=PASS, now=api.clock())
        uow.commit()
    assert api.get(f"/v1/documents/{doc_id}/signature").json()["verdict"]["ok"] is True

    # When someone moves the row's acceptance time to after the revocation, or back
    # before the certificate existed, the verdict does not move with it
    for moved in (api.clock() + timedelta(days=1), api.clock() - timedelta(days=400)):
        sql(api, "UPDATE signatures SET created_at = :at WHERE id = :id", at=moved, id=row["id"])
        verdict = api.get(f"/v1/documents/{doc_id}/signature").json()["verdict"]
        assert verdict["ok"] is True, verdict
        assert verdict["later_revocation"]["reason"] == "key_compromise"

    # And a CMS swapped in the row (another valid signature of the same manifest) is refused
    key, cert = key_and_cert(_genuine(api))
    other = sign_manifest(
        bytes(row["manifest"]),
        key=key,
        cert=cert,
        chain=[our_ca(api)[0]],
        signing_time=api.clock() - timedelta(minutes=90),
    )
    sql(api, "UPDATE signatures SET cms = :cms WHERE id = :id", cms=other, id=row["id"])
    verdict = api.get(f"/v1/documents/{doc_id}/signature").json()["verdict"]
    assert (verdict["ok"], verdict["code"]) == (False, "signature_invalid")
    assert "audit trail" in verdict["message"]


@pytest.mark.parametrize("reviewed", ["by every check", "without attachments.pdf"])
def test_a_main_pdf_already_signed_by_someone_untrusted_is_not_signed_on_the_server(
    make_api: MakeApi, reviewed: str
) -> None:
    # Given a letter whose main PDF already carries a signature in the signer's name, made
    # with a certificate of a CA nobody pinned
    checks = None
    if reviewed != "by every check":  # a review that let it pass: sign still refuses it
        checks = [c for c in CHECKS if c.code != "attachments.pdf"]
        assert len(checks) == len(CHECKS) - 1 > 10
    api = signing_api(make_api, checks=checks)
    issue(api)
    ca_key, ca = _outside_ca(api)
    key, cert = certificate(api, signer_subject(api), ca.subject, ca_key)
    metadata = clean_metadata(api, number=4242)
    forged = token_sign(
        printing(metadata),
        key=key,
        cert=cert,
        chain=[ca],
        signing_time=api.clock(),
        field_name="Old",
    )
    files = [("main", ("1227.pdf", forged, "application/pdf"))]
    doc_id = api.draft(metadata=metadata, files=files)["id"]
    if checks is None:
        # Then review refuses it: the signer signs the unsigned original
        assert failed(submit_and_check(api, doc_id)) == {"attachments.pdf"}
        return
    assert failed(submit_and_check(api, doc_id)) == set()
    assert approve(api, doc_id).status_code == 200
    before = state_and_version(api, doc_id)

    # When the signer signs it on the server
    response = sign(api, doc_id)

    # Then the signed PDF it made is verified before it is kept, as an uploaded one is
    assert_error(response, 422, "chain_untrusted")
    assert state_and_version(api, doc_id) == before


@pytest.mark.parametrize("reason", keystore.REVOKE_REASONS)
def test_a_certificate_revoked_for_any_reason_offered_is_revoked_to_openssl(
    make_api: MakeApi, tmp_path: Path, reason: str
) -> None:
    # Given a signer's certificate of our CA, revoked for one of the reasons offered
    api = signing_api(make_api)
    row = issue(api)
    with api.runtime.uow() as uow:
        crl = keystore.revoke(uow, row.fingerprint, reason=reason, passphrase=PASS, now=api.clock())
        uow.commit()

    # Then openssl, given our root and the CRL published, says it is revoked
    ca, _ = our_ca(api)
    pem = x509.load_der_x509_crl(crl).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM) + pem)
    (tmp_path / "cert.pem").write_text(row.cert_pem)
    checked = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", "ca.pem", "cert.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode != 0 and "revoked" in checked.stdout + checked.stderr


@pytest.mark.parametrize("reason", ["remove_from_crl", "certificate_hold", "compromised"])
def test_revoking_for_a_reason_a_full_crl_cannot_hold_for_good_is_refused(
    make_api: MakeApi, reason: str
) -> None:
    # removeFromCRL belongs to delta CRLs (RFC 5280 §5.3.1: openssl takes it as not
    # revoked); a hold would need releasing, which nothing here does
    api = signing_api(make_api)
    row = issue(api)
    with api.runtime.uow() as uow, pytest.raises(InvalidInput, match="key_compromise"):
        keystore.revoke(uow, row.fingerprint, reason=reason, passphrase=PASS, now=api.clock())
    with api.runtime.uow(readonly=True) as uow:
        assert uow.signatures.revoked() == []
