"""A signed PDF that changes the reviewed main file is refused (``pdf_modified``).

The signer's token may add one signature to the reviewed PDF and what it needs (field,
widget, appearance), nothing else. Each upload below starts with the main file's exact
bytes and verifies, with a valid CMS by the same certificate: before this check they were
accepted and served. Uploads are made with the helpers of ``test_signed_pdf_upload_api``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from congvan.actions.signing import signing as signing_module
from tests.api.conftest import Api, MakeApi, assert_error
from tests.api.test_review_flow_api import (
    approve,
    clean_metadata,
    failed,
    history,
    next_number,
    printing,
    submit_and_check,
)
from tests.api.test_signed_pdf_upload_api import (
    blob_stored,
    main_file,
    sign_with_pdf,
    token_pdf,
    upload_body,
)
from tests.api.test_signing_api import (
    OTHER_SIGNER,
    add_other_signer,
    held_open,
    issue,
    key_and_cert,
    reviewed_letter,
    roots,
    sign,
    signature_rows,
    signing_api,
    state_and_version,
)
from tests.pdf_edits import (
    add_annotation,
    change_text_field,
    paint_over,
    token_sign,
    with_text_field,
)

Row = dict[str, Any]


@pytest.fixture
def signed_api(make_api: MakeApi) -> tuple[Api, Row]:
    """The app with our CA and a certificate for the letters' signer (returned)."""
    api = signing_api(make_api)
    return api, issue(api)


def reviewed_form_letter(api: Api) -> str:
    """A reviewed letter whose main PDF has a filled text field (its number and symbol)."""
    metadata = clean_metadata(api, number=next_number(api, 1900))
    pdf = with_text_field(printing(metadata), "so_ky_hieu", "1227/UBND-TDKT")
    files = [("main", ("1227-UBND-TDKT.pdf", pdf, "application/pdf"))]
    doc_id = str(api.draft(metadata=metadata, files=files)["id"])
    assert failed(submit_and_check(api, doc_id)) == set()
    assert approve(api, doc_id).status_code == 200
    return doc_id


def token_on(api: Api, row: Row, pdf: bytes, **kw: Any) -> bytes:
    """``pdf`` signed by another tool than congvan's, with the certificate of ``row``."""
    key, cert = key_and_cert(row)
    return token_sign(pdf, key=key, cert=cert, chain=roots(api), signing_time=api.clock(), **kw)


@pytest.mark.parametrize("made_by", ["token", "server"])
def test_a_signed_pdf_is_verified_before_the_transaction_so_others_commit_meanwhile(
    make_api_any_db: MakeApi, monkeypatch: pytest.MonkeyPatch, made_by: str
) -> None:
    # Given a reviewed letter signed by the signer's own tool (or to be signed on the
    # server), and the check of the signed PDF (its signature, its changes, the page under
    # its stamp drawn) held open
    api = signing_api(make_api_any_db)
    row = issue(api)
    doc_id = reviewed_letter(api)
    other = api.draft()["id"]
    body = (
        upload_body(api, doc_id, row, token_pdf(api, row, main_file(api, doc_id)))
        if made_by == "token"
        else None
    )

    def send() -> httpx.Response:
        return sign_with_pdf(api, doc_id, body) if body else sign(api, doc_id)

    with held_open(monkeypatch, signing_module, "verify_signed_main", send) as held:
        # When another transition runs meanwhile, it commits: no write lock is held
        # (SQLite) and no row locked (PostgreSQL) while the PDF is checked
        edited = api.fire(other, "edit", body={"fields": {"subject": "Về việc khác"}})
        assert edited.status_code == 200, edited.text
        if api.runtime.db.dialect.name == "postgresql":  # the letter's own row is free too
            with api.runtime.db.connect() as conn:
                lock = "SELECT id FROM documents WHERE id = :id FOR UPDATE NOWAIT"
                assert conn.execute(text(lock), {"id": doc_id}).first() is not None
                conn.rollback()

    # Then the letter is signed with that PDF, checked once (not again in the transaction)
    assert held.answers[0].status_code == 200, held.answers[0].text
    assert state_and_version(api, doc_id)[0] == "signed"
    [stored] = signature_rows(api, doc_id)
    assert stored["signed_pdf_sha256"]
    assert held.calls == 1


# -- refused -----------------------------------------------------------------------------


def _painted_over(api: Api, doc_id: str, row: Row) -> bytes:
    return token_pdf(api, row, paint_over(main_file(api, doc_id)))


def _square(api: Api, doc_id: str, row: Row) -> bytes:
    return token_pdf(api, row, add_annotation(main_file(api, doc_id), "/Square"))


def _free_text(api: Api, doc_id: str, row: Row) -> bytes:
    return token_pdf(api, row, add_annotation(main_file(api, doc_id), "/FreeText"))


def _two_signatures(api: Api, doc_id: str, row: Row) -> bytes:
    return token_pdf(api, row, token_pdf(api, row, main_file(api, doc_id)))


def _another_signature_first(api: Api, doc_id: str, row: Row) -> bytes:
    # A valid signature by another signer of the agency, then the signer's own, last
    add_other_signer(api)
    other = issue(api, OTHER_SIGNER)
    return token_pdf(api, row, token_on(api, other, main_file(api, doc_id), field_name="Other"))


def _widget_over_the_page(api: Api, doc_id: str, row: Row) -> bytes:
    return token_on(api, row, main_file(api, doc_id), box=(0, 0, 595, 842))


REFUSED: dict[str, tuple[Callable[[Api, str, Row], bytes], dict[str, Any]]] = {
    "page-painted-over": (_painted_over, {"revision": 1, "modification_level": "OTHER"}),
    "square-annotation": (_square, {"revision": 1, "modification_level": "OTHER"}),
    "free-text-annotation": (_free_text, {"revision": 1, "modification_level": "OTHER"}),
    "two-new-signatures": (_two_signatures, {"signatures_before": 0, "signatures_after": 2}),
    "another-signature-first": (
        _another_signature_first,
        {"new_signatures": ["Other", "Signature1"]},
    ),
    "widget-over-the-page": (_widget_over_the_page, {"signature_field": "TokenSignature"}),
}


def assert_refused_and_nothing_stored(
    api: Api, doc_id: str, row: Row, signed: bytes, expected: dict[str, Any]
) -> None:
    before = state_and_version(api, doc_id)
    assert signed.startswith(main_file(api, doc_id))

    # When the named signer uploads it with a good CMS
    response = sign_with_pdf(api, doc_id, upload_body(api, doc_id, row, signed))

    # Then it is refused as a modified PDF, saying where
    details = assert_error(response, 422, "pdf_modified")
    assert details["field"] == "signed_pdf"
    assert {key: details.get(key) for key in expected} == expected, details

    # And the letter stays reviewed, with no signature and no signed PDF kept
    assert state_and_version(api, doc_id) == before == ("reviewed", before[1])
    assert signature_rows(api, doc_id) == []
    assert history(api, doc_id)[-1]["event"] == "approve"
    assert_error(api.get(f"/v1/documents/{doc_id}/signed-pdf"), 404, "not_found")
    assert not blob_stored(api, hashlib.sha256(signed).hexdigest())


@pytest.mark.parametrize("case", REFUSED)
def test_a_signed_pdf_that_changes_the_reviewed_file_is_refused(
    signed_api: tuple[Api, Row], case: str
) -> None:
    # Given a reviewed letter, and its main PDF changed or over-signed by the token
    api, row = signed_api
    doc_id = reviewed_letter(api)
    make, expected = REFUSED[case]
    assert_refused_and_nothing_stored(api, doc_id, row, make(api, doc_id, row), expected)


def test_a_form_value_changed_before_signing_is_refused(signed_api: tuple[Api, Row]) -> None:
    # Given a reviewed letter whose PDF shows its number in a form field
    api, row = signed_api
    doc_id = reviewed_form_letter(api)

    # And the token's upload with that field's value changed before signing
    changed = change_text_field(main_file(api, doc_id), "so_ky_hieu", "9999/UBND-TDKT")
    signed = token_pdf(api, row, changed)

    # Then it is refused, and nothing is stored
    expected = {"revision": 2, "modification_level": "OTHER"}
    assert_refused_and_nothing_stored(api, doc_id, row, signed, expected)


# -- accepted ----------------------------------------------------------------------------


def test_a_token_signature_with_its_widget_on_page_two_is_accepted(
    signed_api: tuple[Api, Row],
) -> None:
    # Given a reviewed letter signed by another tool, its widget on the second page
    api, row = signed_api
    doc_id = reviewed_letter(api)
    signed = token_on(api, row, main_file(api, doc_id), page=1)

    # When the signer uploads it
    response = sign_with_pdf(api, doc_id, upload_body(api, doc_id, row, signed))

    # Then the letter is signed and that PDF is served
    assert response.status_code == 200, response.text
    assert state_and_version(api, doc_id)[0] == "signed"
    served = api.get(f"/v1/documents/{doc_id}/signed-pdf")
    assert served.content == signed
    # With its integrity headers, as every stored file: the digest, and its hex as the ETag
    digest = hashlib.sha256(signed).digest()
    assert served.headers["etag"] == f'"{digest.hex()}"'
    assert served.headers["repr-digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    conditional = {**api.auth(), "If-None-Match": served.headers["etag"]}
    held = api.client.get(f"/v1/documents/{doc_id}/signed-pdf", headers=conditional)
    assert held.status_code == 304


def test_a_clean_signature_of_a_letter_with_a_form_is_accepted(
    signed_api: tuple[Api, Row],
) -> None:
    api, row = signed_api
    doc_id = reviewed_form_letter(api)
    signed = token_pdf(api, row, main_file(api, doc_id))
    response = sign_with_pdf(api, doc_id, upload_body(api, doc_id, row, signed))
    assert response.status_code == 200, response.text
    assert api.get(f"/v1/documents/{doc_id}/signed-pdf").content == signed
