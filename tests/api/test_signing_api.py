"""Signing over HTTP: the named signer signs on the server or uploads a CMS; both verify.

Every letter here is letter 1227/UBND-TĐKT made clean, submitted, checked and approved
through the API (helpers of ``test_review_flow_api``); the PKI is made with the key store
as ``congvan keys init-ca`` and ``congvan keys issue-signer`` would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text

from congvan.actions.context import SYSTEM, Actor, TransitionContext
from congvan.actions.signing import keystore, pki
from congvan.actions.signing import signing as signing_module
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.pades import sign_pdf, verify_pdf
from congvan.actions.signing.signing import Signing
from congvan.states.errors import ManifestMismatch
from congvan.states.phrasing import moment
from congvan.storage.audit_checks import verify_chains
from congvan.storage.dispatches import SealedDispatch
from congvan.storage.signatures import CertificateRow
from congvan.workflow import directory
from tests.api.conftest import A, Api, B, MakeApi, assert_error
from tests.api.test_review_flow_api import (
    SIGNER_NAME,
    SIGNER_USER,
    add_signer,
    approve,
    clean_letter,
    failed,
    grant_signer,
    history,
    next_number,
    submit_and_check,
)
from tests.factories import does_nothing, holds, job_done
from tests.tools import verify_with_openssl

PASS = "correct horse battery staple 1227"
OTHER_SIGNER, OTHER_NAME = "ltbinh", "Lê Thị Bình"
# A missing openssl fails these tests with the setup command to run, never skips them.
needs_openssl = pytest.mark.usefixtures("openssl_installed")
VERDICT_POINTS = (
    "intact",
    "valid",
    "trusted",
    "not_revoked",
    "key_usage_ok",
    "valid_at_signing_time",
    "signer_matches",
)

SECRETS = (b"PRIVATE KEY", PASS.encode())


# -- helpers -----------------------------------------------------------------------------


def signing_api(make: MakeApi, **settings: Any) -> Api:
    """The app (with the key passphrase unless told otherwise), its signer and our CA."""
    api = make(**{"key_passphrase": PASS, **settings})
    add_signer(api)
    with api.runtime.uow() as uow:
        keystore.init_ca(
            uow,
            "congvan test CA",
            "UBND tỉnh Thừa Thiên Huế",
            passphrase=PASS,
            now=api.clock(),
            store=api.runtime.trust,
        )
        uow.commit()
    return api


def issue(api: Api, username: str = SIGNER_USER, **validity: Any) -> CertificateRow:
    """A signer certificate with its stored key, as ``congvan keys issue-signer`` makes it."""
    with api.runtime.uow() as uow:
        row = keystore.issue_signer(
            uow,
            A,
            username,
            passphrase=PASS,
            crl_url=api.runtime.settings.crl_url,
            now=api.clock(),
            **validity,
        )
        uow.commit()
    return row


def add_other_signer(api: Api) -> None:
    """A second signer of A with a token, who is not the one the letters name."""
    with api.runtime.uow() as uow:
        user_id = directory.ensure_user(
            uow, A, OTHER_SIGNER, ["signer"], api.clock(), full_name=OTHER_NAME, position="CHỦ TỊCH"
        )
        api.tokens[A][OTHER_SIGNER] = directory.create_token(uow, user_id, api.clock()).token
        uow.commit()


def reviewed_letter(api: Api) -> str:
    """A clean letter (its own number), submitted, checked and approved; returns its id."""
    doc_id = clean_letter(api, number=next_number(api, 1300))
    checks = submit_and_check(api, doc_id)
    assert failed(checks) == set(), json.dumps(checks, ensure_ascii=False, indent=1)
    approved = approve(api, doc_id)
    assert approved.status_code == 200, approved.text
    return doc_id


def sign(
    api: Api,
    doc_id: str,
    cms: bytes | str | None = None,
    signed_pdf: bytes | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """The named signer fires sign: on the server, or with ``cms`` (DER, or text as sent)
    and the main PDF its token signed (``signed_pdf``)."""
    body = None
    if cms is not None:
        body = {"cms": cms if isinstance(cms, str) else base64.b64encode(cms).decode()}
        if signed_pdf is not None:
            body["signed_pdf"] = base64.b64encode(signed_pdf).decode()
    return api.fire(doc_id, "sign", role=SIGNER_USER, body=body, **kwargs)


def main_file(api: Api, doc_id: str) -> bytes:
    """The main PDF as the signer's tool downloads it."""
    document = api.get(f"/v1/documents/{doc_id}")
    assert document.status_code == 200, document.text
    (main,) = [a for a in document.json()["attachments"] if a["role"] == "main"]
    response = api.get(f"/v1/documents/{doc_id}/attachments/{main['sha256']}")
    assert response.status_code == 200, response.text
    assert hashlib.sha256(response.content).hexdigest() == main["sha256"]
    return bytes(response.content)


def signed_by(
    api: Api,
    pdf: bytes,
    key: pki.PrivateKey,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
) -> bytes:
    """``pdf`` signed (PAdES, visible stamp) as a token holding ``key`` and ``cert`` would."""
    return bytes(
        sign_pdf(
            pdf,
            key=key,
            cert=cert,
            chain=chain,
            signer_name=SIGNER_NAME,
            position="PHÓ CHỦ TỊCH",
            agency_name="Ủy ban nhân dân tỉnh Thừa Thiên Huế",
            signing_time=api.clock(),
        )
    )


def upload_by_token(api: Api, doc_id: str, row: CertificateRow, cms: bytes) -> httpx.Response:
    """``cms`` uploaded by the named signer, with the main PDF signed by the token holding
    the key of ``row``."""
    return sign(api, doc_id, cms, token_main(api, doc_id, *key_and_cert(row)))


def token_main(api: Api, doc_id: str, key: pki.PrivateKey, cert: x509.Certificate) -> bytes:
    """The document's main PDF signed by the signer's token holding ``key`` and ``cert``."""
    return signed_by(api, main_file(api, doc_id), key, cert, roots(api))


def manifest_of(api: Api, doc_id: str) -> bytes:
    response = api.get(f"/v1/documents/{doc_id}/manifest")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.content


def roots(api: Api) -> list[x509.Certificate]:
    response = api.client.get("/v1/pki/roots")
    assert response.status_code == 200, response.text
    return x509.load_pem_x509_certificates(response.content)


def key_and_cert(row: CertificateRow) -> tuple[pki.PrivateKey, x509.Certificate]:
    """What the signer's own token holds: the key and certificate of a stored row."""
    key = pki.load_private_key(row.key_pem.encode(), PASS)
    return key, x509.load_pem_x509_certificate(row.cert_pem.encode())


def own_tool(api: Api, doc_id: str, row: CertificateRow, manifest: bytes | None = None) -> bytes:
    """A detached CMS over the document's manifest (or ``manifest``) made off the server."""
    key, cert = key_and_cert(row)
    return sign_manifest(
        manifest_of(api, doc_id) if manifest is None else manifest,
        key=key,
        cert=cert,
        chain=roots(api),
        signing_time=api.clock(),
    )


def signature_rows(api: Api, doc_id: str) -> list[dict[str, Any]]:
    with api.runtime.db.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM signatures WHERE document_id = :id"), {"id": doc_id}
        )
        return [dict(r._mapping) for r in rows]


def state_and_version(api: Api, doc_id: str) -> tuple[str, int]:
    doc = api.get(f"/v1/documents/{doc_id}").json()
    return doc["state"], doc["version"]


def record_bodies(api: Api) -> list[bytes]:
    """Every response body the test's client receives from now on."""
    bodies: list[bytes] = []

    def keep(response: httpx.Response) -> None:
        bodies.append(response.read())

    api.client.event_hooks = {"request": [], "response": [keep]}
    return bodies


def assert_no_secrets(bodies: list[bytes], records: list[logging.LogRecord]) -> None:
    assert bodies
    for body in bodies:
        for secret in SECRETS:
            assert secret not in body, body[:200]
    for record in records:
        line = f"{record.getMessage()} {record.__dict__!r}"
        for secret in SECRETS:
            assert secret.decode() not in line, line[:200]


def assert_every_point_holds(signature: dict[str, Any], fingerprint: str) -> None:
    verdict = signature["verdict"]
    assert verdict["ok"] is True, verdict
    assert {point: verdict[point] for point in VERDICT_POINTS} == dict.fromkeys(
        VERDICT_POINTS, True
    )
    assert verdict["signer"]["common_name"] == SIGNER_NAME
    assert verdict["signer"]["organizational_unit"] == A
    assert verdict["signer"]["user_id"] == f"{SIGNER_USER}@{A}"
    assert verdict["signer"]["sha256"] == fingerprint == signature["certificate"]


# -- signing on the server ---------------------------------------------------------------


@pytest.mark.parametrize("approved", ["on 31 December", "on 2 January"])
def test_a_letter_dated_last_year_is_neither_approved_nor_signed_in_the_new_one(
    make_api: MakeApi, approved: str
) -> None:
    # Given letter 1301 dated and numbered 31/12/2025, checked clean that afternoon (and
    # approved then, or not yet)
    api = make_api(key_passphrase=PASS)
    api.clock.now = datetime(2025, 12, 31, 8, 0, tzinfo=UTC)  # 15:00 in Viet Nam
    api = signing_api(lambda **_: api)
    issue(api)
    doc_id = clean_letter(api, number=1301)
    assert failed(submit_and_check(api, doc_id)) == set()
    if approved == "on 31 December":
        assert approve(api, doc_id).status_code == 200

    # When the New Year comes (2 January 2026, 09:00) and it is approved or signed
    api.clock.now = datetime(2026, 1, 2, 2, 0, tzinfo=UTC)
    version = api.version(doc_id)
    answer = approve(api, doc_id) if approved == "on 2 January" else sign(api, doc_id)

    # Then it is refused, saying why: 2025's series is closed, nothing is written
    details = assert_error(answer, 409, "guard_failed")
    assert details["failed"] == ["dated_this_year"]
    assert "numbered in 2025's series" in details["reasons"]["dated_this_year"]
    assert api.version(doc_id) == version

    # And returned, dated anew and checked again, it is approved and signed this year:
    # its PDF still prints the old number and date, which a reviewer accepts (the warning)
    assert api.fire(doc_id, "reject", role="reviewer", body={"reason": "Năm mới"}).is_success
    edited = api.fire(doc_id, "edit", body={"fields": {"issued_on": "2026-01-02", "number": 1}})
    assert edited.status_code == 200, edited.text
    checks = submit_and_check(api, doc_id)
    assert failed(checks) == {"format.printed"}
    assert [d["field"] for d in checks["format.printed"]["details"]["differences"]] == [
        "number",
        "issued_on",
    ]
    body = {"code": "format.printed", "reason": "Số và ngày mới ghi trên bản in lại"}
    assert api.fire(doc_id, "waive", role="reviewer", body=body).is_success
    assert approve(api, doc_id).status_code == 200
    assert sign(api, doc_id).status_code == 200


def test_the_named_signer_signs_on_the_server_and_the_signature_verifies(
    make_api_any_db: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    # Given our CA, a certificate for the letter's signer and an approved letter
    api = signing_api(make_api_any_db)
    certificate = issue(api)
    doc_id = reviewed_letter(api)
    version = api.version(doc_id)
    bodies = record_bodies(api)

    # When the signer the letter names signs it, with no signature of their own
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="pyhanko")
    caplog.set_level(logging.DEBUG, logger="pyhanko_certvalidator")
    response = sign(api, doc_id, if_match=f'"{version}"')

    # Then the server signed it with the stored key, and it is signed
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from_state"], body["to_state"], body["version"]) == (
        "reviewed",
        "signed",
        version + 1,
    )
    assert state_and_version(api, doc_id) == ("signed", version + 1)
    assert any(r.getMessage() == "transition" for r in caplog.records)

    # And the signature names its mode, signer and certificate, and verifies on every point
    signature = api.get(f"/v1/documents/{doc_id}/signature").json()
    assert signature["mode"] == "server"
    assert signature["signer"] == f"{SIGNER_USER}@{A}"
    assert signature["revision"] == signature["current_revision"]
    assert_every_point_holds(signature, certificate.fingerprint)

    # And the manifest served is canonical JSON of this revision, the bytes that were signed
    manifest = manifest_of(api, doc_id)
    assert hashlib.sha256(manifest).hexdigest() == signature["manifest_sha256"]
    assert rfc8785.dumps(json.loads(manifest)) == manifest
    described = json.loads(manifest)
    assert (described["document_id"], described["revision"], described["format"]) == (
        doc_id,
        signature["revision"],
        "congvan-manifest/1",
    )
    assert described["signer_name"] == SIGNER_NAME
    (stored,) = signature_rows(api, doc_id)
    assert bytes(stored["manifest"]) == manifest

    # And the trail records the signature
    entry = history(api, doc_id)[-1]
    assert (entry["event"], entry["actor"], entry["to_state"]) == (
        "sign",
        f"{SIGNER_USER}@{A}",
        "signed",
    )
    assert entry["payload"] == {
        "signature_id": stored["id"],
        "cms_sha256": hashlib.sha256(bytes(stored["cms"])).hexdigest(),
        "mode": "server",
        "manifest_sha256": signature["manifest_sha256"],
        "certificate": certificate.fingerprint,
        "signer": SIGNER_NAME,
        "signed_pdf_sha256": signature["signed_pdf_sha256"],
        # approved and signed on Monday 05/01/2026 at 15:00 (Vietnam), the letter's date:
        # sent by the next morning's noon, on time
        "timeliness": {
            "signed_at": "2026-01-05T15:00:00+07:00",
            "send_by": "2026-01-06T12:00:00+07:00",
            "reviewed_at": "2026-01-05T15:00:00+07:00",
            "dated_send_by": "2026-01-06T12:00:00+07:00",
            "late": False,
            "late_by_hours": None,
            "late_by_working_days": None,
            "review_to_signing_working_days": 0,
            "sign_within_working_days": 1,
            "signed_long_after_review": False,
        },
    }

    # And the main PDF was signed too (PAdES, visible stamp), and it verifies
    signed_pdf = api.client.get(f"/v1/documents/{doc_id}/signed-pdf", headers=api.auth())
    assert 200 == signed_pdf.status_code
    assert hashlib.sha256(signed_pdf.content).hexdigest() == signature["signed_pdf_sha256"]
    with api.runtime.uow() as uow:
        trust = keystore.trust_material(uow, api.runtime.trust)
    pdf_verdict = verify_pdf(
        signed_pdf.content,
        trust_roots=trust.roots,
        crls=trust.crls,
        at=api.runtime.clock() + timedelta(minutes=1),
    )
    assert (True, True, True) == (pdf_verdict.intact, pdf_verdict.valid, pdf_verdict.trusted)
    assert SIGNER_NAME == pdf_verdict.signer.common_name

    # And sending waits for the recipients' inboxes to be known
    details = assert_error(api.fire(doc_id, "send"), 422, "unknown_peer")
    assert details["organ_ids"]
    assert state_and_version(api, doc_id) == ("signed", version + 1)

    # And no key and no passphrase showed in any answer or log line
    api.get(f"/v1/documents/{doc_id}/history")
    api.client.get("/v1/pki/roots")
    assert_no_secrets(bodies, caplog.records)


@needs_openssl
def test_openssl_verifies_the_stored_signature_over_the_served_manifest(
    make_api_any_db: MakeApi, tmp_path: Path
) -> None:
    # Given a letter signed on the server
    api = signing_api(make_api_any_db)
    issue(api)
    doc_id = reviewed_letter(api)
    assert sign(api, doc_id).status_code == 200

    # When the manifest, the stored CMS and our CA are exported
    manifest = manifest_of(api, doc_id)
    (tmp_path / "manifest.json").write_bytes(manifest)
    (tmp_path / "sig.p7s").write_bytes(bytes(signature_rows(api, doc_id)[0]["cms"]))
    (tmp_path / "ca.pem").write_bytes(api.client.get("/v1/pki/roots").content)

    # Then openssl verifies them, and refuses the manifest with one byte changed
    verified = verify_with_openssl(tmp_path)
    assert verified.returncode == 0, verified.stderr
    changed = bytearray(manifest)
    changed[len(changed) // 2] ^= 0x01
    (tmp_path / "manifest.json").write_bytes(bytes(changed))
    refused = verify_with_openssl(tmp_path)
    assert refused.returncode != 0
    assert b"verification failure" in refused.stderr.lower() + refused.stdout.lower()


def test_without_a_certificate_the_signer_is_asked_for_a_signature(make_api: MakeApi) -> None:
    api = signing_api(make_api)
    doc_id = reviewed_letter(api)
    before = state_and_version(api, doc_id)

    details = assert_error(sign(api, doc_id), 422, "invalid_input")

    assert (details["field"], details["signer"]) == ("cms", SIGNER_USER)
    assert before[0] == "reviewed"
    assert state_and_version(api, doc_id) == before
    assert signature_rows(api, doc_id) == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"key_passphrase": None}, "Set CONGVAN_KEY_PASSPHRASE"),
        ({"key_passphrase": "not the passphrase"}, "could not be decrypted"),
    ],
    ids=["no-passphrase", "wrong-passphrase"],
)
def test_without_the_right_passphrase_the_server_does_not_sign(
    make_api: MakeApi, settings: dict[str, Any], message: str
) -> None:
    # Given a stored key, and an app configured without its passphrase
    api = signing_api(make_api, **settings)
    issue(api)
    doc_id = reviewed_letter(api)
    before = state_and_version(api, doc_id)

    # When the signer signs on the server, it is refused without echoing a passphrase
    response = sign(api, doc_id)

    assert_error(response, 422, "invalid_input")
    assert message in response.json()["message"]
    for secret in (PASS, "not the passphrase"):
        assert secret not in response.text
    assert b"PRIVATE KEY" not in response.content
    assert state_and_version(api, doc_id) == before
    assert signature_rows(api, doc_id) == []


# -- signing with the signer's own tool --------------------------------------------------


@pytest.fixture
def signed_api(make_api: MakeApi) -> tuple[Api, CertificateRow]:
    """The app with our CA and a certificate for the letters' signer (returned)."""
    api = signing_api(make_api)
    return api, issue(api)


def test_a_signature_made_with_the_signers_own_tool_is_uploaded(
    signed_api: tuple[Api, CertificateRow],
) -> None:
    # Given an approved letter, and a CMS the signer's own tool made over its manifest
    api, certificate = signed_api
    doc_id = reviewed_letter(api)
    upload = own_tool(api, doc_id, certificate)

    # When the signer uploads it, with the main PDF the same token signed
    response = upload_by_token(api, doc_id, certificate, upload)

    # Then it is accepted as it came, and verifies on every point
    assert response.status_code == 200, response.text
    assert response.json()["to_state"] == "signed"
    signature = api.get(f"/v1/documents/{doc_id}/signature").json()
    assert signature["mode"] == "upload"
    assert_every_point_holds(signature, certificate.fingerprint)
    (stored,) = signature_rows(api, doc_id)
    assert bytes(stored["cms"]) == upload
    assert stored["manifest_sha256"] == hashlib.sha256(manifest_of(api, doc_id)).hexdigest()
    assert history(api, doc_id)[-1]["payload"]["mode"] == "upload"


def _garbage_base64(api: Api, doc_id: str, row: CertificateRow) -> str:
    return "not base64 at all!"


def _empty(api: Api, doc_id: str, row: CertificateRow) -> str:
    # Sent but empty: refused, never taken for "sign on the server"
    return ""


def _too_large(api: Api, doc_id: str, row: CertificateRow) -> bytes:
    # Within the field's length in base64, past the bytes a signature may take
    return b"\x30" * (256 * 1024 + 1)


def _garbage_der(api: Api, doc_id: str, row: CertificateRow) -> bytes:
    return b"0\x82 certainly not a CMS"


def _other_manifest(api: Api, doc_id: str, row: CertificateRow) -> bytes:
    changed = manifest_of(api, doc_id).replace(b'"place":"', b'"place":"TP. ')
    return own_tool(api, doc_id, row, manifest=changed)


def outsider_certificate(
    api: Api,
) -> tuple[pki.PrivateKey, x509.Certificate, x509.Certificate]:
    """The same person and agency, certified by a CA this installation does not trust:
    the key, the certificate and the CA's certificate."""
    now = api.clock()
    ca = pki.create_ca(
        "Outsider CA", "Không tin cậy", passphrase=PASS, valid_from=now, valid_days=365
    )
    issued = pki.issue_signer_certificate(
        ca,
        PASS,
        full_name=SIGNER_NAME,
        position="PHÓ CHỦ TỊCH",
        agency_id=A,
        agency_name="Ủy ban nhân dân tỉnh Thừa Thiên Huế",
        user_id=f"{SIGNER_USER}@{A}",
        passphrase=PASS,
        valid_from=now,
        valid_days=365,
        crl_url="http://outsider.example/ca.crl",
    )
    return pki.load_private_key(issued.key_pem, PASS), issued.certificate, ca.certificate


def _untrusted_ca(api: Api, doc_id: str, row: CertificateRow) -> bytes:
    key, cert, ca = outsider_certificate(api)
    return sign_manifest(
        manifest_of(api, doc_id), key=key, cert=cert, chain=[ca], signing_time=api.clock()
    )


def _revoked(api: Api, doc_id: str, row: CertificateRow) -> bytes:
    with api.runtime.uow() as uow:
        keystore.revoke(
            uow, row.fingerprint, reason="key_compromise", passphrase=PASS, now=api.clock()
        )
        uow.commit()
    # Later than the revocation: a CRL entry counts only for moments after its date
    # (pyhanko-certvalidator compares strictly), and this clock stands still.
    api.clock.advance(minutes=1)
    return own_tool(api, doc_id, row)


def _expired(api: Api, doc_id: str, row: CertificateRow) -> bytes:
    # A certificate of the same signer that ran out yesterday
    old = issue(api, valid_from=api.clock() - timedelta(days=31), valid_days=30)
    return own_tool(api, doc_id, old)


def _another_signers_certificate(api: Api, doc_id: str, row: CertificateRow) -> bytes:
    add_other_signer(api)
    return own_tool(api, doc_id, issue(api, OTHER_SIGNER))


def _namesakes_certificate(api: Api, doc_id: str, row: CertificateRow) -> bytes:
    # Another signer of the agency of the same name and position, with a certificate
    # registered to them: a name and a position are no one's alone
    with api.runtime.uow() as uow:
        directory.ensure_user(
            uow, A, "namesake", ["signer"], api.clock(), full_name=SIGNER_NAME,
            position="PHÓ CHỦ TỊCH",
        )  # fmt: skip
        uow.commit()
    return own_tool(api, doc_id, issue(api, "namesake"))


def unregistered_certificate(api: Api, user_id: str) -> tuple[pki.PrivateKey, x509.Certificate]:
    """A certificate of the installation's CA in the named signer's name, position and
    agency, with ``user_id`` as its UID, registered to no one here."""
    with api.runtime.uow() as uow:
        (root,) = [r for r in uow.signatures.roots() if r.key_pem]
    issued = pki.issue_signer_certificate(
        pki.Issued(cert_pem=root.cert_pem.encode(), key_pem=root.key_pem.encode()),
        PASS,
        full_name=SIGNER_NAME,
        position="PHÓ CHỦ TỊCH",
        agency_id=A,
        agency_name="Ủy ban nhân dân tỉnh Thừa Thiên Huế",
        user_id=user_id,
        passphrase=PASS,
        valid_from=api.clock() - timedelta(minutes=5),
        valid_days=365,
        crl_url=api.runtime.settings.crl_url,
    )
    return pki.load_private_key(issued.key_pem, PASS), issued.certificate


def _unregistered(user_id: str) -> Callable[[Api, str, CertificateRow], bytes]:
    def made(api: Api, doc_id: str, row: CertificateRow) -> bytes:
        key, cert = unregistered_certificate(api, user_id)
        manifest = manifest_of(api, doc_id)
        return sign_manifest(
            manifest, key=key, cert=cert, chain=roots(api), signing_time=api.clock()
        )

    return made


REFUSED_UPLOADS: dict[str, tuple[Callable[[Api, str, CertificateRow], bytes | str], str]] = {
    # Not a signature that fails to verify: input malformed, or too long
    "garbage-base64": (_garbage_base64, "invalid_input"),
    "empty": (_empty, "invalid_input"),
    "too-large": (_too_large, "field_too_long"),
    "garbage-der": (_garbage_der, "signature_malformed"),
    "other-manifest": (_other_manifest, "manifest_mismatch"),
    "untrusted-ca": (_untrusted_ca, "chain_untrusted"),
    "revoked": (_revoked, "certificate_revoked"),
    "expired": (_expired, "certificate_expired"),
    "another-signer": (_another_signers_certificate, "signer_mismatch"),
    "namesake": (_namesakes_certificate, "signer_mismatch"),
    "unregistered-naming-another": (_unregistered(f"{OTHER_SIGNER}@{A}"), "signer_mismatch"),
    "unregistered-naming-no-user": (_unregistered("CCCD:046090001234"), "signer_mismatch"),
}


def test_a_certificate_registered_to_no_one_that_names_the_signer_by_uid_is_theirs(
    signed_api: tuple[Api, CertificateRow],
) -> None:
    # Given a certificate of the trusted CA naming the signer by their UID (user@agency),
    # not registered here (issued elsewhere, by this CA's operator)
    api, _ = signed_api
    doc_id = reviewed_letter(api)

    key, cert = unregistered_certificate(api, f"{SIGNER_USER}@{A}")
    upload = sign_manifest(
        manifest_of(api, doc_id), key=key, cert=cert, chain=roots(api), signing_time=api.clock()
    )

    # When the signer uploads a CMS made with it, the signature is theirs
    response = sign(api, doc_id, upload, token_main(api, doc_id, key, cert))
    assert response.status_code == 200, response.text


def test_a_tokens_certificate_registered_to_the_signer_is_theirs_whatever_its_uid(
    signed_api: tuple[Api, CertificateRow],
) -> None:
    # Given a certificate naming its holder by a citizen's number (as a national CA writes
    # the UID), registered to the signer here (keys import --kind signer --user)
    api, _ = signed_api
    doc_id = reviewed_letter(api)
    key, cert = unregistered_certificate(api, "CCCD:046090001234")
    with api.runtime.uow() as uow:
        pem = cert.public_bytes(serialization.Encoding.PEM)
        keystore.import_certificate(
            uow,
            pem,
            kind="signer",
            now=api.clock(),
            agency_id=A,
            username=SIGNER_USER,
            store=api.runtime.trust,
        )
        uow.commit()
    upload = sign_manifest(
        manifest_of(api, doc_id), key=key, cert=cert, chain=roots(api), signing_time=api.clock()
    )

    # When the signer uploads a CMS made with it, the signature is theirs
    response = sign(api, doc_id, upload, token_main(api, doc_id, key, cert))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("case", REFUSED_UPLOADS)
def test_an_upload_that_does_not_verify_is_refused_and_nothing_is_stored(
    signed_api: tuple[Api, CertificateRow], case: str
) -> None:
    # Given an approved letter and an upload that does not verify
    api, certificate = signed_api
    doc_id = reviewed_letter(api)
    before = state_and_version(api, doc_id)
    make_upload, code = REFUSED_UPLOADS[case]
    upload = make_upload(api, doc_id, certificate)

    # When the named signer uploads it
    response = sign(api, doc_id, upload)

    # Then it is refused by its own code, and the letter is as it was, unsigned
    assert_error(response, 422, code)
    assert b"PRIVATE KEY" not in response.content
    assert state_and_version(api, doc_id) == before
    assert signature_rows(api, doc_id) == []
    assert history(api, doc_id)[-1]["event"] == "approve"
    assert_error(api.get(f"/v1/documents/{doc_id}/signature"), 404, "not_found")


# -- who signs ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["signer", OTHER_SIGNER])
def test_another_signer_of_the_agency_cannot_sign_even_with_a_valid_signature(
    signed_api: tuple[Api, CertificateRow], who: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an approved letter naming its signer, and another signer of the same agency
    # (the seeded one, or one with a certificate of their own)
    api, certificate = signed_api
    add_other_signer(api)
    issue(api, OTHER_SIGNER)
    doc_id = reviewed_letter(api)
    before = state_and_version(api, doc_id)
    made: list[str] = []  # what the server makes or checks in the named signer's name
    for name in ("sign_manifest", "sign_pdf", "verify_signed_main"):
        real = getattr(signing_module, name)
        monkeypatch.setattr(
            signing_module, name, lambda *a, _n=name, _r=real, **k: made.append(_n) or _r(*a, **k)
        )

    # When that other signer signs, on the server or with the named signer's good CMS
    for body in (None, {"cms": base64.b64encode(own_tool(api, doc_id, certificate)).decode()}):
        response = api.fire(doc_id, "sign", role=who, body=body)

        # Then the guard refuses, naming whom the letter waits for
        details = assert_error(response, 409, "guard_failed")
        assert details["failed"] == ["signer_has_authority"]
        assert details["reasons"] == {
            "signer_has_authority": f"only {SIGNER_USER} signs this document"
        }
    assert state_and_version(api, doc_id) == before
    assert signature_rows(api, doc_id) == []
    # and nothing was made with the named signer's key, not even before the transaction
    assert made == []


def test_an_authority_that_lapsed_before_the_signing_day_is_refused(make_api: MakeApi) -> None:
    # Given a letter dated Monday, approved that day, whose signer's authority (KT.) ran
    # until that Monday only
    api = signing_api(make_api)
    issue(api)
    doc_id = reviewed_letter(api)
    with api.runtime.uow() as uow:
        for held in uow.authorities.for_agency(A, SIGNER_USER):
            uow.authorities.revoke(held.id, A, api.clock())
        grant_signer(uow, api.clock(), valid_until="2026-01-05")
        uow.commit()
    before = state_and_version(api, doc_id)

    # When the signer signs it on Tuesday, the letter still dated Monday
    api.clock.advance(days=1)
    response = sign(api, doc_id)

    # Then the date on the letter does not lend the lapsed authority: refused, unsigned
    details = assert_error(response, 409, "guard_failed")
    assert details["reasons"] == {
        "signer_has_authority": f"{SIGNER_USER} holds no authority to sign CV on 2026-01-06 "
        "(the signing day)"
    }
    assert state_and_version(api, doc_id) == before


@pytest.mark.parametrize(
    ("why", "code"),
    [
        ("revoked", "certificate_revoked"),
        ("expired", "certificate_expired"),
        ("not_yet_valid", "certificate_not_yet_valid"),
        ("none", "invalid_input"),
    ],
)
def test_signing_on_the_server_says_why_the_signers_stored_certificate_cannot_sign(
    make_api: MakeApi, why: str, code: str
) -> None:
    # Given an approved letter whose signer's only stored certificate cannot sign now
    api = signing_api(make_api)
    now = api.clock()
    if why == "expired":
        issue(api, valid_from=now - timedelta(days=10), valid_days=5)
    elif why == "not_yet_valid":
        issue(api, valid_from=now + timedelta(days=3))
    elif why == "revoked":
        row = issue(api)
        with api.runtime.uow() as uow:
            keystore.revoke(uow, row.fingerprint, reason="key_compromise", passphrase=PASS, now=now)
            uow.commit()
    doc_id = reviewed_letter(api)
    before = state_and_version(api, doc_id)

    # When the signer signs on the server
    response = sign(api, doc_id)

    # Then it is refused with the certificate's own reason, nothing written
    details = assert_error(response, 422, code)
    assert state_and_version(api, doc_id) == before
    assert signature_rows(api, doc_id) == []
    # And the moment it starts or ended is told to the minute in Vietnam time, and given
    # (a date alone, in UTC, reads as "today" for a certificate valid from tonight)
    if why in ("expired", "not_yet_valid"):
        bound = datetime.fromisoformat(details["not_after" if why == "expired" else "not_before"])
        assert bound.tzinfo is not None
        assert moment(bound, "en") in response.json()["message"]
        assert "ICT" in response.json()["message"]


def test_the_grant_of_the_competence_the_letter_is_signed_under_is_the_one_that_counts(
    make_api: MakeApi,
) -> None:
    # Given a letter signed "KT. CHỦ TỊCH", approved, whose signer also holds a grant to
    # sign "TUQ. CHỦ TỊCH" (grants of two competences may stand at once)
    api = signing_api(make_api)
    issue(api)
    doc_id = reviewed_letter(api)
    with api.runtime.uow() as uow:
        [kt] = uow.authorities.for_agency(A, SIGNER_USER)
        directory.add_authority(
            uow, A, SIGNER_USER, ["*"], "TUQ. CHỦ TỊCH", date(2020, 1, 1), None,
            by="operator@" + A, now=api.clock(),
        )  # fmt: skip
        uow.commit()
    before = state_and_version(api, doc_id)

    # When the grant of KT. is revoked before the signing
    with api.runtime.uow() as uow:
        assert uow.authorities.revoke(kt.id, A, api.clock())
        uow.commit()
    response = sign(api, doc_id)

    # Then the letter is not signed as KT. under the grant of TUQ.: refused, unsigned
    details = assert_error(response, 409, "guard_failed")
    assert details["reasons"] == {
        "signer_has_authority": f"{SIGNER_USER} holds no authority to sign CV as KT. CHỦ TỊCH "
        "on 2026-01-05 (the document's date)"
    }
    assert state_and_version(api, doc_id) == before


def test_a_letter_signed_after_its_own_deadline_is_flagged_in_the_trail(
    make_api: MakeApi,
) -> None:
    # Given a letter dated and approved on Monday 05/01/2026
    api = signing_api(make_api)
    issue(api)
    doc_id = reviewed_letter(api)

    # When it is signed only on Wednesday afternoon
    api.clock.advance(days=2)
    response = sign(api, doc_id)

    # Then it is signed, and the trail says it was due out by Tuesday noon, and when the
    # signed document must now go: Thursday noon
    assert response.status_code == 200, response.text
    judged = history(api, doc_id)[-1]["payload"]["timeliness"]
    assert (True, "2026-01-06T12:00:00+07:00", "2026-01-08T12:00:00+07:00") == (
        judged["late"],
        judged["dated_send_by"],
        judged["send_by"],
    )


def test_only_the_signer_role_fires_sign(signed_api: tuple[Api, CertificateRow]) -> None:
    api, _certificate = signed_api
    doc_id = reviewed_letter(api)
    details = assert_error(api.fire(doc_id, "sign", role="clerk"), 403, "forbidden")
    assert details["needs"] == ["signer"]


# -- after signing -----------------------------------------------------------------------


TAMPERING = {
    "metadata changed": "UPDATE documents SET subject = 'V/v nội dung đã bị sửa' WHERE id = :id",
    # The main file swapped for other bytes (here the PDF that carries the signature stamp).
    "attachment swapped": (
        "UPDATE attachments SET sha256 = "
        "(SELECT signed_pdf_sha256 FROM signatures WHERE document_id = :id) "
        "WHERE document_id = :id AND role = 'main'"
    ),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_a_signed_letter_changed_behind_the_engine_no_longer_verifies(
    signed_api: tuple[Api, CertificateRow], tampering: str
) -> None:
    # Given a letter signed on the server, whose signature holds for sending
    api, _certificate = signed_api
    doc_id = reviewed_letter(api)
    assert sign(api, doc_id).status_code == 200
    assert signature_valid(api, doc_id) == (True, "")
    signed_manifest = manifest_of(api, doc_id)

    # When its metadata or main file is changed in the database, past the engine
    with api.runtime.db.begin() as conn:
        changed = conn.execute(text(TAMPERING[tampering]), {"id": doc_id})
        assert 1 == changed.rowcount

    # Then the manifest differs, and the signature's verdict says so
    assert manifest_of(api, doc_id) != signed_manifest
    signature = api.get(f"/v1/documents/{doc_id}/signature")
    assert signature.status_code == 200, signature.text
    verdict = signature.json()["verdict"]
    assert set(verdict) == {"ok", "code", "message", "details"}
    assert (verdict["ok"], verdict["code"]) == (False, "manifest_mismatch")
    assert verdict["details"]["signer"] == SIGNER_NAME

    # And send's guard would refuse it
    with pytest.raises(ManifestMismatch):
        signature_valid(api, doc_id)
    # And send's own check of the signature refuses it, saying why
    assert_error(api.fire(doc_id, "send"), 422, "manifest_mismatch")
    assert api.get(f"/v1/documents/{doc_id}").json()["state"] == "signed"


def signature_valid(api: Api, doc_id: str) -> tuple[bool, str]:
    """Send's guard, run on its own as the engine would run it for a clerk."""
    with api.runtime.uow(readonly=True) as uow:
        head = uow.documents.head(doc_id)
        assert head is not None
        ctx = TransitionContext(
            uow=uow,
            document=head,
            event="send",
            actor=Actor(name=f"clerk@{A}", agency_id=A, roles=frozenset({"clerk"})),
            data={},
            now=api.clock(),
        )
        return Signing(api.runtime.settings.passphrase, api.runtime.trust).signature_valid(ctx)


def test_the_manifest_and_signature_are_read_only_by_the_owning_agency(
    signed_api: tuple[Api, CertificateRow],
) -> None:
    api, _certificate = signed_api
    doc_id = reviewed_letter(api)

    # Before signing there is a manifest but no signature
    assert manifest_of(api, doc_id)
    assert_error(api.get(f"/v1/documents/{doc_id}/signature"), 404, "not_found")
    assert sign(api, doc_id).status_code == 200

    # Another agency finds neither, and nobody reads them without a token
    for path in ("manifest", "signature"):
        url = f"/v1/documents/{doc_id}/{path}"
        assert_error(api.get(url, agency=B), 404, "not_found")
        assert_error(api.client.get(url), 401, "unauthenticated")
        assert api.get(url, role="reviewer").status_code == 200


# -- our PKI -----------------------------------------------------------------------------


def test_the_crl_and_the_roots_are_published_without_a_token(make_api: MakeApi) -> None:
    # Before a CA exists there is no CRL and no root
    api = make_api(key_passphrase=PASS)
    assert_error(api.client.get("/v1/pki/crl"), 404, "not_found")
    assert api.client.get("/v1/pki/roots").content == b""
    assert_error(api.client.get("/v1/pki/roots?format=der"), 404, "not_found")

    # Once it exists, its root is published as PEM, and its CRL as DER, signed by it
    api = signing_api(make_api)
    certificate = issue(api)
    root_answer = api.client.get("/v1/pki/roots")
    assert root_answer.status_code == 200
    assert root_answer.headers["content-type"] == "application/x-pem-file"
    (root,) = x509.load_pem_x509_certificates(root_answer.content)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    crl = published_crl(api)
    assert crl.issuer == root.subject
    assert crl.is_signature_valid(root.public_key())
    assert list(crl) == []

    # And after a revocation, the newest CRL lists the certificate
    with api.runtime.uow() as uow:
        keystore.revoke(
            uow, certificate.fingerprint, reason="superseded", passphrase=PASS, now=api.clock()
        )
        uow.commit()
    newer = published_crl(api)
    serial = int(certificate.serial, 16)
    assert newer.get_revoked_certificate_by_serial_number(serial) is not None
    number = x509.CRLNumber
    assert (
        newer.extensions.get_extension_for_class(number).value.crl_number
        > crl.extensions.get_extension_for_class(number).value.crl_number
    )
    for answer in (root_answer, api.client.get("/v1/pki/crl")):
        assert b"PRIVATE KEY" not in answer.content
        assert PASS.encode() not in answer.content
    assert root.public_bytes(serialization.Encoding.PEM) == root_answer.content


def published_crl(api: Api) -> x509.CertificateRevocationList:
    response = api.client.get("/v1/pki/crl")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(response.content)


@dataclass
class Held:
    """What a request sent while a function was held open answered, and how often the
    function was called."""

    answers: list[httpx.Response] = field(default_factory=list)
    calls: int = 0


@contextmanager
def held_open(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, send: Callable[[], httpx.Response]
) -> Iterator[Held]:
    """``send`` in a thread of its own, ``module.name`` held open once it is called: the
    body of the ``with`` runs meanwhile; leaving it lets the call go on and waits for the
    answer."""
    entered, release = threading.Event(), threading.Event()
    real = getattr(module, name)
    held = Held()

    def holding(*args: Any, **kwargs: Any) -> Any:
        held.calls += 1
        entered.set()
        release.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, holding)
    sender = threading.Thread(target=lambda: held.answers.append(send()))
    sender.start()
    try:
        assert entered.wait(120), f"{name} was never called"
        yield held
    finally:
        release.set()
        sender.join()


def test_the_pdf_is_signed_before_the_transaction_so_others_commit_meanwhile(
    make_api_any_db: MakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a letter ready to sign, and PAdES signing held open (a barrier)
    api = signing_api(make_api_any_db)
    issue(api)
    doc_id = reviewed_letter(api)
    other = api.draft()["id"]
    with held_open(monkeypatch, signing_module, "sign_pdf", lambda: sign(api, doc_id)) as held:
        # When another transition runs while the PDF is being signed, it commits: no
        # write lock is held (SQLite) and no row is locked (PostgreSQL) meanwhile
        edited = api.fire(other, "edit", body={"fields": {"subject": "Về việc khác"}})
        assert edited.status_code == 200, edited.text
        assert state_and_version(api, doc_id)[0] == "reviewed"

    # Then the signing ends as ever: signed, with the stamped PDF stored
    answers = held.answers
    assert answers[0].status_code == 200, answers[0].text
    assert state_and_version(api, doc_id)[0] == "signed"
    [row] = signature_rows(api, doc_id)
    assert row["signed_pdf_sha256"]


def test_a_signing_prepared_for_a_version_overtaken_is_prepared_again(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a letter ready to sign, and a change that lands while its PDF is being signed
    api = signing_api(make_api)
    issue(api)
    doc_id = reviewed_letter(api)
    real_sign_pdf = signing_module.sign_pdf
    calls: list[int] = []

    def sign_pdf_then_change(data: bytes, **kwargs: Any) -> bytes:
        calls.append(1)
        if len(calls) == 1:  # a reviewer's comment lands meanwhile (a new version)
            with api.runtime.uow() as uow:
                head = uow.documents.head(doc_id)
                assert head is not None
                uow.documents.advance(
                    doc_id,
                    expected_version=head.version,
                    state=head.state,
                    new_version=head.version + 1,
                    audit_head=head.audit_head,
                    at=api.clock(),
                )
                uow.commit()
        return real_sign_pdf(data, **kwargs)

    monkeypatch.setattr(signing_module, "sign_pdf", sign_pdf_then_change)

    # When the signer signs
    response = sign(api, doc_id)

    # Then what was prepared for the old version is thrown away and made again
    assert response.status_code == 200, response.text
    assert len(calls) == 2


def test_a_signature_claiming_a_time_before_the_document_existed_is_refused(
    make_api: MakeApi,
) -> None:
    # Given a signer whose certificate was valid days before the letter was written
    api = signing_api(make_api)
    row = issue(api, valid_from=api.clock() - timedelta(days=2))
    doc_id = reviewed_letter(api)
    key, cert = key_and_cert(row)

    def signed_at(moment: datetime) -> bytes:
        manifest = manifest_of(api, doc_id)
        return sign_manifest(manifest, key=key, cert=cert, chain=roots(api), signing_time=moment)

    # When the signer's own tool says it signed twelve hours before the letter existed
    refused = sign(api, doc_id, signed_at(api.clock() - timedelta(hours=12)))

    # Then the signature is refused, and nothing is kept
    details = assert_error(refused, 422, "signing_time_invalid")
    assert details["field"] == "cms"
    assert signature_rows(api, doc_id) == []
    # While one within the clock skew of its creation is taken
    within = signed_at(api.clock() - timedelta(minutes=4))
    assert 200 == sign(api, doc_id, within, token_main(api, doc_id, key, cert)).status_code


def test_a_signature_stays_valid_in_the_api_after_an_update_corrected_the_metadata(
    make_api: MakeApi,
) -> None:
    # Given a letter signed on the server for real, sent and delivered (sealing faked)
    api = signing_api(
        make_api,
        guards={name: holds for name in ("signature_valid", "not_duplicate")},
        effects={"seal_packages": does_nothing, "seal_requests": does_nothing},
        jobs={"deliver_dispatches": job_done},
    )
    issue(api)
    doc_id = reviewed_letter(api)
    assert sign(api, doc_id).status_code == 200
    assert api.fire(doc_id, "send", role="clerk").status_code == 200
    with api.runtime.uow() as uow:
        [dispatch] = uow.dispatches.for_document(doc_id)
        uow.dispatches.seal(dispatch.id, SealedDispatch("m-1227", b"{}", b""))  # (faked)
        uow.commit()
    for event in ("start", "deliver"):  # its moves through the engine, as a worker's are
        api.runtime.engine.fire_on("dispatch", dispatch.id, event, SYSTEM)

    # When a supervisor corrects its subject (cập nhật)
    corrected = api.client.post(
        f"/v1/documents/{doc_id}/update",
        headers=api.auth("supervisor"),
        json={"reason": "Sai trích yếu", "fields": {"subject": "V/v khen thưởng (đính chính)"}},
    )
    assert corrected.status_code == 200, corrected.text

    # Then the API's verdict is the signature's, over the document as signed (as `congvan
    # verify` has it), not "changed after signing"
    verdict = api.get(f"/v1/documents/{doc_id}/signature").json()["verdict"]
    assert verdict["ok"] is True, verdict
    # and its chain verifies: the row says what was signed, corrected as its trail records
    with api.runtime.uow(readonly=True) as uow:
        assert [p for _, p in verify_chains(uow.conn) if p is not None] == []

    # While the old subject written back by SQL (the correction undone) breaks it
    with api.runtime.uow() as uow:
        sql = "UPDATE documents SET subject = 'V/v khen thưởng' WHERE id = :doc"
        uow.conn.execute(text(sql), {"doc": doc_id})
        uow.commit()
    with api.runtime.uow(readonly=True) as uow:
        problems = {d: p for d, p in verify_chains(uow.conn) if p is not None}
    assert list(problems) == [doc_id]
    assert "its subject says 'V/v khen thưởng'" in problems[doc_id].detail
    assert "V/v khen thưởng (đính chính)" in problems[doc_id].detail


def _signed_then(api: Api, sql: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A letter signed on the server (its chains verifying), then ``sql`` run on its
    database (``:doc`` its id): the letter and the chains that no longer verify."""
    doc = reviewed_letter(api)
    assert sign(api, doc).status_code == 200
    with api.runtime.uow(readonly=True) as uow:
        assert [p for _, p in verify_chains(uow.conn) if p is not None] == []
    with api.runtime.uow() as uow:
        uow.conn.execute(text(sql), {"doc": doc, **params})
        uow.commit()
    with api.runtime.uow(readonly=True) as uow:
        return doc, {d: p for d, p in verify_chains(uow.conn) if p is not None}


@pytest.mark.parametrize(
    ("sql", "detail"),
    [
        ("UPDATE documents SET subject = 'V/v giả mạo' WHERE id = :doc", "its subject says"),
        ("UPDATE documents SET number = number + 1 WHERE id = :doc", "its number says"),
        ("UPDATE documents SET urgency = 3 WHERE id = :doc", "its urgency says 3"),
        ("UPDATE documents SET due_date = '2030-01-01' WHERE id = :doc", "its due_date says"),
        ("UPDATE documents SET signer_name = 'Ai Khác' WHERE id = :doc", "its signer_name says"),
        (
            "UPDATE documents SET legal_normative = 1 WHERE id = :doc",
            "its legal_normative says True",
        ),
        (
            "DELETE FROM recipients WHERE document_id = :doc AND position = 0",
            "its recipients are",
        ),
        (
            "UPDATE recipients SET organ_id = '000.00.99.H57' WHERE document_id = :doc",
            "its recipients are 000.00.99.H57",
        ),
        (
            "UPDATE signatures SET manifest = CAST(replace(CAST(manifest AS TEXT), "
            "'UBND', 'UBNX') AS BLOB) WHERE document_id = :doc",
            "covers another manifest than its trail accepted",
        ),
        (
            "UPDATE attachments SET filename = 'khac.pdf' WHERE document_id = :doc",
            "its files are listed as khac.pdf",
        ),
        (
            "UPDATE blobs SET data = CAST('%PDF-1.7 other' AS BLOB) WHERE sha256 = "
            "(SELECT sha256 FROM attachments WHERE document_id = :doc AND role = 'main')",
            "is not the bytes signed",
        ),
        (
            "UPDATE blobs SET data = CAST('%PDF-1.7 other' AS BLOB) WHERE sha256 = "
            "(SELECT signed_pdf_sha256 FROM signatures WHERE document_id = :doc)",
            "signed PDF is not the bytes signed",
        ),
        ("DELETE FROM signatures WHERE document_id = :doc", "and its row is gone"),
        (
            "UPDATE signatures SET certificate_fingerprint = 'ab' || substr("
            "certificate_fingerprint, 3) WHERE document_id = :doc",
            "(certificate differ)",
        ),
        ("UPDATE signatures SET mode = 'upload' WHERE document_id = :doc", "(mode differ)"),
        (
            "UPDATE signatures SET manifest = CAST(manifest AS TEXT) WHERE document_id = :doc",
            "holds text in manifest",
        ),
    ],
    ids=[
        "subject",
        "number",
        "urgency",
        "due-date",
        "signer",
        "legal-normative",
        "recipient-removed",
        "recipient-changed",
        "manifest",
        "file-renamed",
        "file-bytes",
        "signed-pdf-bytes",
        "signature-deleted",
        "certificate",
        "mode",
        "manifest-as-text",
    ],
)
def test_a_signed_documents_row_changed_by_sql_breaks_its_chain(
    signed_api: tuple[Api, CertificateRow], sql: str, detail: str
) -> None:
    # Given a letter signed on the server, its chain verifying; when SQL changes what its
    # row says of what was signed
    api, _ = signed_api
    doc, problems = _signed_then(api, sql, {})

    # Then its chain is altered there, naming what changed (`congvan audit verify` says it)
    assert list(problems) == [doc]
    assert problems[doc].problem == "altered"
    assert detail in problems[doc].detail, problems[doc].detail


def test_a_drafts_row_is_not_held_to_a_signature_it_no_longer_has(
    signed_api: tuple[Api, CertificateRow],
) -> None:
    # Given a letter signed, then returned to draft and edited (as a clerk may)
    api, _ = signed_api
    doc = reviewed_letter(api)
    assert sign(api, doc).status_code == 200
    returned = api.fire(doc, "reject", role="reviewer", body={"reason": "Sửa trích yếu"})
    assert returned.status_code == 200, returned.text
    edited = api.fire(doc, "edit", body={"fields": {"subject": "V/v khen thưởng năm 2026"}})
    assert edited.status_code == 200, edited.text

    # Then its chain verifies: a draft says what its edits made it, not what was signed
    with api.runtime.uow(readonly=True) as uow:
        assert [p for _, p in verify_chains(uow.conn) if p is not None] == []


@pytest.mark.parametrize(
    ("sql", "detail"),
    [
        (
            "UPDATE signatures SET cms = :other WHERE document_id = :doc",
            "is not the one its trail accepted (cms_sha256 differ)",
        ),
        (
            "INSERT INTO signatures (id, document_id, revision, manifest, manifest_sha256, "
            "cms, mode, signer, certificate_fingerprint, signing_time, signed_pdf_sha256, "
            "created_at) SELECT 'sql-made', document_id, revision, manifest, manifest_sha256, "
            ":other, mode, signer, certificate_fingerprint, signing_time, signed_pdf_sha256, "
            "created_at FROM signatures WHERE document_id = :doc",
            "its signature sql-made was accepted by no entry of its trail",
        ),
    ],
    ids=["swapped", "added"],
)
def test_a_signature_swapped_or_added_by_sql_breaks_its_documents_chain(
    signed_api: tuple[Api, CertificateRow], sql: str, detail: str
) -> None:
    # Given a letter signed on the server, its chain verifying; when a signature row is
    # swapped for another CMS (or one added) by SQL
    api, _ = signed_api
    doc, problems = _signed_then(api, sql, {"other": b"0\x80forged"})

    # Then its document's chain is altered, naming the signature
    assert list(problems) == [doc]
    assert problems[doc].problem == "altered"
    assert detail in problems[doc].detail
