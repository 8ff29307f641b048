"""Vietnamese text typed decomposed or precomposed is one text; look-alike capitals are not.

Input methods and macOS send Vietnamese decomposed (NFD: "ệ" as e + ̣ + ̂); Windows and
most back-office systems precomposed (NFC). The API stores NFC, so the same symbol, name or
subject typed either way is the same to the duplicate checks and the signed manifest. A
capital of another script that looks Latin (Cyrillic "Т") is refused by the symbol check.
"""

from __future__ import annotations

import json
import unicodedata

import pytest

from tests.api.conftest import MAIN_PDF, Api, assert_error
from tests.api.test_review_flow_api import clean_letter, failed, submit_and_check

NFD_SUBJECT = unicodedata.normalize("NFD", "V/v tăng cường gửi, nhận văn bản điện tử")
NFD_PLACE = unicodedata.normalize("NFD", "Thừa Thiên Huế")


def test_decomposed_text_is_stored_precomposed(api: Api) -> None:
    # Given metadata, a recipient name and a file name typed decomposed
    assert NFD_SUBJECT != unicodedata.normalize("NFC", NFD_SUBJECT)
    recipient = {"organ_id": "000.00.11.H57", "name": unicodedata.normalize("NFD", "Sở Nội vụ")}
    name = unicodedata.normalize("NFD", "Công văn số 1227.pdf")
    files = [("main", (name, b"%PDF-1.4 stand-in", "application/pdf"))]

    # When the draft is created
    view = api.draft(subject=NFD_SUBJECT, place=NFD_PLACE, recipients=[recipient], files=files)

    # Then every text comes back precomposed, equal to the same text typed precomposed
    assert view["subject"] == "V/v tăng cường gửi, nhận văn bản điện tử"
    assert view["place"] == "Thừa Thiên Huế"
    assert [r["name"] for r in view["recipients"]] == ["Sở Nội vụ"]
    assert [a["filename"] for a in view["attachments"]] == ["Công văn số 1227.pdf"]


def test_an_edit_typed_decomposed_is_stored_precomposed(api: Api) -> None:
    doc = api.draft()
    response = api.fire(doc["id"], "edit", body={"fields": {"subject": NFD_SUBJECT}})
    assert response.status_code == 200, response.text
    assert api.get(f"/v1/documents/{doc['id']}").json()["subject"] == unicodedata.normalize(
        "NFC", NFD_SUBJECT
    )


def test_a_length_is_counted_in_letters_whether_typed_decomposed_or_not(api: Api) -> None:
    # Given a recall reason of 1,500 letters (the limit is 2,000), typed decomposed: three
    # code points for "ệ"
    reason = unicodedata.normalize("NFD", "ệ" * 1500)
    assert len(reason) == 4500
    doc = api.draft()

    # When it is sent, then it is judged by its letters: no length refusal (only the state's)
    response = api.client.post(
        f"/v1/documents/{doc['id']}/recall", json={"reason": reason}, headers=api.auth("supervisor")
    )
    assert response.json()["code"] not in ("field_too_long", "invalid_input"), response.text


def test_a_symbol_with_a_cyrillic_look_alike_fails_the_symbol_check(api: Api) -> None:
    # Given a clean letter whose drafting unit is written with a Cyrillic Т (U+0422)
    doc_id = clean_letter(api, symbol="UBND-TĐK\u0422")

    # When it is submitted and checked
    checks = submit_and_check(api, doc_id)

    # Then the symbol check fails (blocking), and only it
    assert failed(checks) == {"format.number_symbol"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Về việc khen thưởng\u202e"),  # a right-to-left override
        ("subject", "Về việc \u2067khen\u2069 thưởng"),  # an isolate
        ("symbol", "UBND-T\u200bĐKT"),  # a zero-width space: shows as UBND-TĐKT
        ("signer_name", "Nguyễn Văn\u2060 Phương"),
        ("place", "\ufeffThừa Thiên Huế"),
        ("subject", "Về việc khen thưởng \u200f5 cá nhân"),  # a right-to-left mark
        ("symbol", "UBND-\u200eTĐKT"),  # a left-to-right mark
        ("signer_name", "Nguyễn\u061c Văn Phương"),  # the Arabic letter mark
        # Whatever else shows nothing, in a one-line field: an invisible separator, a soft
        # hyphen, the grapheme joiner, a tag letter, a variation selector, the Mongolian
        # vowel separator, a Hangul filler between words
        ("place", "Hu\u2063ế"),
        ("symbol", "UBND-T\u00adĐKT"),
        ("signer_name", "Nguyễn Văn\u034f Phương"),
        ("place", "Thừa Thiên Huế\U000e0041"),
        ("symbol", "UBND-TĐKT\ufe0f"),
        ("signer_name", "Nguyễn\u180e Văn Phương"),
        ("place", "Thừa\u3164Thiên Huế"),
        ("signer_name", "Nguyễn Thanh\u2800Bình"),  # the blank braille pattern: a space
    ],
)
def test_text_that_shows_other_than_it_reads_is_refused(api: Api, field: str, value: str) -> None:
    body = assert_error(api.create(**{field: value}), 422, "invalid_input")
    assert "reorder or hide" in json.dumps(body, ensure_ascii=False)
    assert api.get("/v1/documents").json()["items"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("symbol", "UBND-T\ue000KT"),  # private use: a font's own glyph, or none
        ("place", "Thừa Thiên\ufdd0Huế"),  # a noncharacter
        ("signer_name", "Nguyễn Văn \U0010fffd"),
        ("place", "Thừa Thiên \ufffc"),  # the object replacement character
        ("signer_name", "Nguy\ufffdn Văn Phương"),  # what a decoder left of a letter
        ("place", "Thừa Thiên \u0378"),  # unassigned
    ],
)
def test_a_one_line_field_holding_a_character_no_reader_can_read_is_refused(
    api: Api, field: str, value: str
) -> None:
    body = assert_error(api.create(**{field: value}), 422, "invalid_input")
    assert "no reader can read" in json.dumps(body, ensure_ascii=False)
    assert api.get("/v1/documents").json()["items"] == []


@pytest.mark.parametrize("hidden", ["\u2063", "\u00ad", "\U000e0041", "\u3164"])
def test_an_agency_name_that_hides_a_character_is_refused(api: Api, hidden: str) -> None:
    body = {"id": "000.00.31.H57", "name": f"Sở Nội{hidden} vụ"}
    answer = api.client.post("/v1/agencies", headers=api.auth("operator"), json=body)
    assert_error(answer, 422, "invalid_input")


@pytest.mark.parametrize("hidden", ["\u2063", "\u00ad", "\U000e0041", "\ufe0f"])
def test_a_file_name_hiding_a_character_is_kept_without_it(api: Api, hidden: str) -> None:
    files = [("main", (f"Công văn{hidden} 1227.pdf", MAIN_PDF, "application/pdf"))]
    created = api.create(files=files)
    assert created.status_code == 201, created.text
    [attachment] = created.json()["attachments"]
    assert attachment["filename"] == "Công văn 1227.pdf"


def test_a_multi_line_field_may_hold_a_zero_width_joiner_but_no_override(api: Api) -> None:
    assert api.create(content="Dòng một\nDòng\u200d hai").status_code == 201
    assert_error(api.create(content="Dòng một\n\u202eDòng hai"), 422, "invalid_input")


def test_a_file_name_that_would_show_reversed_is_kept_as_it_reads(api: Api) -> None:
    files = [("main", ("\u202egpj.pdf", MAIN_PDF, "application/pdf"))]
    created = api.create(files=files)
    assert created.status_code == 201, created.text
    [attachment] = created.json()["attachments"]
    assert attachment["filename"] == "gpj.pdf"


@pytest.mark.parametrize("mark", ["\u200e", "\u200f", "\u061c"])
def test_a_file_name_with_a_direction_mark_is_kept_without_it(api: Api, mark: str) -> None:
    files = [("main", (f"Công văn{mark} 1227.pdf", MAIN_PDF, "application/pdf"))]
    created = api.create(files=files)
    assert created.status_code == 201, created.text
    [attachment] = created.json()["attachments"]
    assert attachment["filename"] == "Công văn 1227.pdf"


@pytest.mark.parametrize("blank", ["\u3164", "\u115f\u1160"])
def test_a_place_of_fillers_only_is_refused_at_once(api: Api, blank: str) -> None:
    assert_error(api.create(place=blank), 422, "invalid_input")


def test_a_place_that_shows_nothing_is_refused_at_once(api: Api) -> None:
    blank = "\u2800"  # the blank braille pattern: a symbol, shown as nothing
    # When a letter is made whose place is only a character that shows nothing
    body = assert_error(api.create(place=blank), 422, "invalid_input")

    # Then it is refused as any character that hides what a one-line field shows
    assert "U+2800" in json.dumps(body)
    assert api.get("/v1/documents").json()["items"] == []


def test_an_authoritys_competence_that_shows_other_than_it_reads_is_refused(api: Api) -> None:
    body = {"signer": "signer", "competence": "KT. CHỦ TỊCH\u202e", "valid_from": "2020-01-01"}
    answer = api.client.post("/v1/authorities", headers=api.auth("supervisor"), json=body)
    assert_error(answer, 422, "invalid_input")
