"""Signing with the signer's own tool, with the main PDF it signed too (``signed_pdf``).

The signer's token signs the manifest (detached CMS, ``cms``) and, with the same
certificate, the document's main PDF (PAdES, ``signed_pdf``): that PDF must be the main
file's exact bytes with the signature appended, verify against our trust roots and CRLs,
and carry the same certificate as the CMS; otherwise the upload is refused and nothing is
stored. Letters, PKI and CMS are made with the helpers of ``test_signing_api``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from congvan.actions.signing import keystore
from congvan.actions.signing.pades import verify_pdf
from congvan.storage.signatures import CertificateRow
from congvan.workflow.letters import sample_pdf
from tests.api.conftest import A, Api, MakeApi, assert_error
from tests.api.test_review_flow_api import SIGNER_NAME, SIGNER_USER, history
from tests.api.test_signing_api import (
    OTHER_SIGNER,
    PASS,
    add_other_signer,
    assert_every_point_holds,
    issue,
    key_and_cert,
    main_file,
    manifest_of,
    outsider_certificate,
    own_tool,
    reviewed_letter,
    roots,
    signature_rows,
    signature_valid,
    signed_by,
    signing_api,
    state_and_version,
)

POSITION = "PHÓ CHỦ TỊCH"
AGENCY_NAME = "Ủy ban nhân dân tỉnh Thừa Thiên Huế"
Body = dict[str, Any]


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture
def signed_api(make_api: MakeApi) -> tuple[Api, CertificateRow]:
    """The app with our CA and a certificate for the letters' signer (returned)."""
    api = signing_api(make_api)
    return api, issue(api)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def main_attachment(api: Api, doc_id: str) -> dict[str, Any]:
    document = api.get(f"/v1/documents/{doc_id}")
    assert document.status_code == 200, document.text
    (main,) = [a for a in document.json()["attachments"] if a["role"] == "main"]
    return dict(main)


def token_pdf(api: Api, row: CertificateRow, pdf: bytes) -> bytes:
    """``pdf`` signed by the signer's token holding the certificate of ``row``."""
    key, cert = key_and_cert(row)
    return signed_by(api, pdf, key, cert, roots(api))


def sign_with_pdf(api: Api, doc_id: str, body: Body) -> httpx.Response:
    """The named signer fires sign with ``body`` (``cms`` and ``signed_pdf``, base64)."""
    return api.fire(doc_id, "sign", role=SIGNER_USER, body=body)


def upload_body(api: Api, doc_id: str, row: CertificateRow, pdf: bytes | str) -> Body:
    """A good CMS of ``row`` over the manifest, and ``pdf`` (bytes, or text as sent)."""
    return {
        "cms": b64(own_tool(api, doc_id, row)),
        "signed_pdf": pdf if isinstance(pdf, str) else b64(pdf),
    }


def blob_stored(api: Api, sha256: str) -> bool:
    with api.runtime.db.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM blobs WHERE sha256 = :sha"), {"sha": sha256})
        return found.first() is not None


# -- the happy path ----------------------------------------------------------------------


def test_a_pdf_signed_by_the_token_is_uploaded_with_the_cms_and_served(
    make_api_any_db: MakeApi,
) -> None:
    # Given an approved letter, a CMS the signer's token made over its manifest, and the
    # main PDF the same token signed with the same certificate
    api = signing_api(make_api_any_db)
    certificate = issue(api)
    doc_id = reviewed_letter(api)
    version = api.version(doc_id)
    main = main_attachment(api, doc_id)
    original = main_file(api, doc_id)
    cms = own_tool(api, doc_id, certificate)
    signed = token_pdf(api, certificate, original)
    digest = hashlib.sha256(signed).hexdigest()

    # When the signer uploads both
    response = sign_with_pdf(api, doc_id, {"cms": b64(cms), "signed_pdf": b64(signed)})

    # Then the letter is signed
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from_state"], body["to_state"], body["version"]) == (
        "reviewed",
        "signed",
        version + 1,
    )
    assert state_and_version(api, doc_id) == ("signed", version + 1)

    # And the signature is the uploaded one, verifies on every point and names the PDF
    signature = api.get(f"/v1/documents/{doc_id}/signature").json()
    assert signature["mode"] == "upload"
    assert signature["signed_pdf_sha256"] == digest
    assert_every_point_holds(signature, certificate.fingerprint)
    (stored,) = signature_rows(api, doc_id)
    assert bytes(stored["cms"]) == cms
    assert stored["signed_pdf_sha256"] == digest
    assert stored["certificate_fingerprint"] == certificate.fingerprint
    assert bytes(stored["manifest"]) == manifest_of(api, doc_id)

    # And the signed PDF served is exactly the uploaded one, and it verifies
    served = api.get(f"/v1/documents/{doc_id}/signed-pdf")
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "application/pdf"
    assert served.content == signed
    assert served.content.startswith(original)
    with api.runtime.uow() as uow:
        trust = keystore.trust_material(uow, api.runtime.trust)
    pdf_verdict = verify_pdf(
        served.content,
        trust_roots=trust.roots,
        crls=trust.crls,
        at=api.clock() + timedelta(minutes=1),
    )
    assert (pdf_verdict.intact, pdf_verdict.valid, pdf_verdict.trusted) == (True, True, True)
    assert pdf_verdict.covers_entire_file
    assert pdf_verdict.signature_count == 1
    assert pdf_verdict.signer.sha256 == certificate.fingerprint
    assert pdf_verdict.signer.common_name == SIGNER_NAME

    # And the main file stays the original, unsigned one
    assert main_attachment(api, doc_id) == main
    assert main_file(api, doc_id) == original

    # And the trail records the signed PDF with the signature
    entry = history(api, doc_id)[-1]
    assert (entry["event"], entry["actor"], entry["to_state"]) == (
        "sign",
        f"{SIGNER_USER}@{A}",
        "signed",
    )
    assert entry["payload"].pop("cms_sha256") == hashlib.sha256(cms).hexdigest()
    assert entry["payload"].pop("signature_id")
    assert entry["payload"] == {
        "mode": "upload",
        "manifest_sha256": signature["manifest_sha256"],
        "certificate": certificate.fingerprint,
        "signer": SIGNER_NAME,
        "signed_pdf_sha256": digest,
        "timeliness": entry["payload"]["timeliness"],
    }
    assert ("2026-01-06T12:00:00+07:00", False) == (
        entry["payload"]["timeliness"]["send_by"],
        entry["payload"]["timeliness"]["late"],
    )

    # And send's guard still holds the signature (and the PDF) valid
    assert signature_valid(api, doc_id) == (True, "")
    # And send passes its guards and stops only at the recipients' unknown inboxes
    send = api.fire(doc_id, "send")
    assert send.json()["code"] != "guard_failed", send.text
    details = assert_error(send, 422, "unknown_peer")
    assert details["organ_ids"]
    assert state_and_version(api, doc_id) == ("signed", version + 1)


def test_an_upload_without_the_signed_pdf_is_refused_and_nothing_is_kept(
    signed_api: tuple[Api, CertificateRow],
) -> None:
    # Given an approved letter and a good CMS from the signer's token
    api, certificate = signed_api
    doc_id = reviewed_letter(api)
    before = state_and_version(api, doc_id)

    # When the signer uploads the CMS alone
    response = sign_with_pdf(api, doc_id, {"cms": b64(own_tool(api, doc_id, certificate))})

    # Then it is refused, naming the signed PDF: the document a recipient reads shows who
    # signed it, as one signed on the server does (Decree 68 Art. 29)
    details = assert_error(response, 422, "invalid_input")
    assert details["field"] == "signed_pdf"
    assert state_and_version(api, doc_id) == before
    assert signature_rows(api, doc_id) == []


# -- refusals ----------------------------------------------------------------------------


def _without_cms(api: Api, doc_id: str, row: CertificateRow) -> Body:
    return {"signed_pdf": b64(token_pdf(api, row, main_file(api, doc_id)))}


def _garbage_base64(api: Api, doc_id: str, row: CertificateRow) -> Body:
    return upload_body(api, doc_id, row, "not base64 at all!")


def _empty(api: Api, doc_id: str, row: CertificateRow) -> Body:
    return upload_body(api, doc_id, row, "")


def _unsigned_append(api: Api, doc_id: str, row: CertificateRow) -> Body:
    # The main file with bytes appended, but no signature among them
    return upload_body(api, doc_id, row, main_file(api, doc_id) + b"\n% no signature here\n")


def _no_main_pdf(api: Api, doc_id: str, row: CertificateRow) -> Body:
    # The document's main file is not (any more) a PDF; the CMS covers it as it now stands
    signed = token_pdf(api, row, main_file(api, doc_id))
    with api.runtime.db.begin() as conn:
        changed = conn.execute(
            text(
                "UPDATE attachments SET media_type = 'application/octet-stream' "
                "WHERE document_id = :id AND role = 'main'"
            ),
            {"id": doc_id},
        )
        assert changed.rowcount == 1
    return upload_body(api, doc_id, row, signed)


def _other_file(api: Api, doc_id: str, row: CertificateRow) -> Body:
    # Another PDF of the same letter (one more line), signed by the right certificate
    other = sample_pdf("Bản sao khác")
    assert other != main_file(api, doc_id)
    return upload_body(api, doc_id, row, token_pdf(api, row, other))


def _main_changed_before_signing(api: Api, doc_id: str, row: CertificateRow) -> Body:
    original = main_file(api, doc_id)
    changed = original.replace(b"/Producer (congvan)", b"/Producer (congvam)")
    assert changed != original and len(changed) == len(original)
    return upload_body(api, doc_id, row, token_pdf(api, row, changed))


def _changed_after_signing(api: Api, doc_id: str, row: CertificateRow) -> Body:
    # One byte of the signed revision changed: a letter of the /Producer the signature's
    # revision wrote, so the file still parses and still starts with the main file
    original = main_file(api, doc_id)
    signed = bytearray(token_pdf(api, row, original))
    at = signed.index(b"/Producer (congvan", len(original)) + len(b"/Producer (congva")
    signed[at] = ord("m")
    return upload_body(api, doc_id, row, bytes(signed))


def _appended_after_signing(api: Api, doc_id: str, row: CertificateRow) -> Body:
    signed = token_pdf(api, row, main_file(api, doc_id))
    return upload_body(api, doc_id, row, signed + b"%")


def _untrusted_ca(api: Api, doc_id: str, row: CertificateRow) -> Body:
    key, cert, ca = outsider_certificate(api)
    pdf = signed_by(api, main_file(api, doc_id), key, cert, [ca])
    return upload_body(api, doc_id, row, pdf)


def _revoked(api: Api, doc_id: str, row: CertificateRow) -> Body:
    # The CMS by the signer's good certificate; the PDF by another of theirs, revoked
    other = issue(api)
    with api.runtime.uow() as uow:
        keystore.revoke(
            uow, other.fingerprint, reason="key_compromise", passphrase=PASS, now=api.clock()
        )
        uow.commit()
    # Later than the revocation: a CRL entry counts only for moments after its date
    api.clock.advance(minutes=1)
    return upload_body(api, doc_id, row, token_pdf(api, other, main_file(api, doc_id)))


def _expired(api: Api, doc_id: str, row: CertificateRow) -> Body:
    # The PDF by a certificate of the same signer that ran out yesterday
    old = issue(api, valid_from=api.clock() - timedelta(days=31), valid_days=30)
    return upload_body(api, doc_id, row, token_pdf(api, old, main_file(api, doc_id)))


def _another_certificate(api: Api, doc_id: str, row: CertificateRow) -> Body:
    # A second, valid certificate of the same signer signs the PDF
    other = issue(api)
    assert other.fingerprint != row.fingerprint
    return upload_body(api, doc_id, row, token_pdf(api, other, main_file(api, doc_id)))


def _another_signer(api: Api, doc_id: str, row: CertificateRow) -> Body:
    add_other_signer(api)
    other = issue(api, OTHER_SIGNER)
    return upload_body(api, doc_id, row, token_pdf(api, other, main_file(api, doc_id)))


# What each refusal answers: its code, and details it must hold. Every one names the
# body's field; a failure found by verifying the PDF names the PDF's signer too.
PDF_SIGNER = {"field": "signed_pdf", "signer": SIGNER_NAME}
REFUSED_PDFS: dict[str, tuple[Callable[[Api, str, CertificateRow], Body], str, dict[str, Any]]] = {
    "without-cms": (_without_cms, "invalid_input", {"field": "cms"}),
    "garbage-base64": (_garbage_base64, "invalid_input", {"field": "signed_pdf"}),
    "empty": (_empty, "invalid_input", {"field": "signed_pdf"}),
    "unsigned-append": (_unsigned_append, "signature_invalid", {"field": "signed_pdf"}),
    "no-main-pdf": (_no_main_pdf, "invalid_input", {"field": "signed_pdf"}),
    "other-file": (_other_file, "manifest_mismatch", {"field": "signed_pdf"}),
    "main-changed-before-signing": (
        _main_changed_before_signing,
        "manifest_mismatch",
        {"field": "signed_pdf"},
    ),
    "changed-after-signing": (_changed_after_signing, "manifest_mismatch", PDF_SIGNER),
    "appended-after-signing": (
        _appended_after_signing,
        "pdf_modified",
        {**PDF_SIGNER, "coverage": "ENTIRE_REVISION"},
    ),
    "untrusted-ca": (_untrusted_ca, "chain_untrusted", PDF_SIGNER),
    "revoked": (_revoked, "certificate_revoked", {**PDF_SIGNER, "reason": "key_compromise"}),
    "expired": (_expired, "certificate_expired", PDF_SIGNER),
    "another-certificate": (_another_certificate, "signer_mismatch", {"field": "signed_pdf"}),
    "another-signer": (_another_signer, "signer_mismatch", {"field": "signed_pdf"}),
}


@pytest.mark.parametrize("case", REFUSED_PDFS)
def test_a_signed_pdf_that_does_not_hold_is_refused_and_nothing_is_stored(
    signed_api: tuple[Api, CertificateRow], case: str
) -> None:
    # Given an approved letter, and an upload whose signed PDF does not hold
    api, certificate = signed_api
    doc_id = reviewed_letter(api)
    before = state_and_version(api, doc_id)
    main_sha256 = main_attachment(api, doc_id)["sha256"]
    make_body, code, expected = REFUSED_PDFS[case]
    body = make_body(api, doc_id, certificate)

    # When the named signer uploads it
    response = sign_with_pdf(api, doc_id, body)

    # Then it is refused by its own code, with the details that say why
    details = assert_error(response, 422, code)
    assert {key: details.get(key) for key in expected} == expected, details
    if case in ("other-file", "main-changed-before-signing"):
        assert details["main_sha256"] == main_sha256
    if code == "signer_mismatch":
        assert details["manifest_certificate"] == certificate.fingerprint
        assert details["pdf_certificate"] not in ("", certificate.fingerprint)
    assert b"PRIVATE KEY" not in response.content

    # And the letter is as it was, unsigned, with no signed PDF kept
    assert state_and_version(api, doc_id) == before
    assert signature_rows(api, doc_id) == []
    assert history(api, doc_id)[-1]["event"] == "approve"
    assert_error(api.get(f"/v1/documents/{doc_id}/signature"), 404, "not_found")
    assert_error(api.get(f"/v1/documents/{doc_id}/signed-pdf"), 404, "not_found")
    try:
        uploaded = base64.b64decode(body["signed_pdf"], validate=True)
    except ValueError:
        uploaded = b""
    if uploaded:
        assert not blob_stored(api, hashlib.sha256(uploaded).hexdigest())


def test_a_signed_pdf_larger_than_the_limit_is_refused(make_api: MakeApi) -> None:
    # Given an installation whose attachments are at most 64 kB (the main file is
    # smaller), so an uploaded signed PDF may be at most that plus 1 MiB
    api = signing_api(make_api, max_attachment_bytes=64_000)
    certificate = issue(api)
    doc_id = reviewed_letter(api)
    before = state_and_version(api, doc_id)
    original = main_file(api, doc_id)
    assert len(original) < 64_000
    limit = 64_000 + 1024 * 1024
    signed = token_pdf(api, certificate, original)
    too_large = signed + b"%" * (limit + 1 - len(signed))

    # When the signer uploads a signed PDF one byte over the limit
    response = sign_with_pdf(api, doc_id, upload_body(api, doc_id, certificate, too_large))

    # Then it is refused as too large, and nothing is stored
    details = assert_error(response, 422, "field_too_long")
    assert (details["field"], details["max_bytes"]) == ("signed_pdf", limit)
    assert state_and_version(api, doc_id) == before
    assert signature_rows(api, doc_id) == []
    assert not blob_stored(api, hashlib.sha256(too_large).hexdigest())

    # And the PDF as the token signed it, within the limit, is accepted
    response = sign_with_pdf(api, doc_id, upload_body(api, doc_id, certificate, signed))
    assert response.status_code == 200, response.text
    assert api.get(f"/v1/documents/{doc_id}/signed-pdf").content == signed
