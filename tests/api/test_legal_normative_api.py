"""Legal normative documents over HTTP: marked by the clerk, written with their year.

A decision (QĐ) or resolution (NQ) may be a legal normative document (văn bản quy phạm
pháp luật) or an administrative one; the clerk says which with ``legal_normative``. A
legal normative one is written ``05/2026/QĐ-UBND`` wherever it is shown, says so in the
signed manifest, and is numbered in its type's own series.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import Api, assert_error
from tests.api.test_review_flow_api import clean_letter, failed, submit_and_check, today

DECISION: dict[str, Any] = {
    "number": 5,
    "doc_type": "QĐ",
    "symbol": "QĐ-UBND",
    "subject": "Ban hành Quy chế gửi, nhận văn bản điện tử",
    "signer_competence": "KT. CHỦ TỊCH",
    "legal_normative": True,
}


def shown(api: Api, doc_id: str) -> tuple[str, bool, str]:
    """The notation and the mark as GET shows them, and the notation as the list shows it."""
    view = api.get(f"/v1/documents/{doc_id}").json()
    listed = api.get("/v1/documents").json()["items"]
    in_list = next(d["notation"] for d in listed if d["id"] == doc_id)
    return view["notation"], view["legal_normative"], in_list


def test_a_legal_normative_decision_is_written_with_its_year(api: Api) -> None:
    # Given a legal normative decision numbered 5
    doc_id = clean_letter(api, **DECISION)
    year = today(api).year

    # When it is read, checked and its manifest fetched
    notation = f"05/{year}/QĐ-UBND"
    checks = submit_and_check(api, doc_id)
    manifest = json.loads(api.get(f"/v1/documents/{doc_id}/manifest", role="reviewer").content)

    # Then every place writes it with its year, every check passes, and the signature
    # covers the mark
    assert (notation, True, notation) == shown(api, doc_id)
    assert notation == checks["format.number_symbol"]["details"]["notation"]
    assert set() == failed(checks), checks
    assert (True, 5, "QĐ-UBND") == (
        manifest["legal_normative"],
        manifest["number"],
        manifest["symbol"],
    )


def test_an_administrative_decision_is_written_without_a_year(api: Api) -> None:
    doc_id = clean_letter(api, **{**DECISION, "legal_normative": False})

    manifest = json.loads(api.get(f"/v1/documents/{doc_id}/manifest", role="reviewer").content)

    assert ("05/QĐ-UBND", False, "05/QĐ-UBND") == shown(api, doc_id)
    assert "legal_normative" not in manifest


def test_the_mark_is_edited_and_cleared_like_any_field(api: Api) -> None:
    # Given an administrative decision
    doc_id = clean_letter(api, **{**DECISION, "legal_normative": False})

    # When the clerk marks it legal normative, then clears the mark with null
    marked = api.fire(doc_id, "edit", body={"fields": {"legal_normative": True}})
    after_mark = shown(api, doc_id)
    cleared = api.fire(doc_id, "edit", body={"fields": {"legal_normative": None}})

    # Then it is written with its year, then without
    assert (200, 200) == (marked.status_code, cleared.status_code)
    year = today(api).year
    assert (f"05/{year}/QĐ-UBND", True) == after_mark[:2]
    assert ("05/QĐ-UBND", False) == shown(api, doc_id)[:2]


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_the_mark_is_true_or_false(api: Api, value: Any) -> None:
    response = api.create(**{**DECISION, "legal_normative": value})

    assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"legal_normative": True}, "failed"),  # a công văn never is
        ({**DECISION, "doc_type": "TT", "symbol": "TT-UBND", "legal_normative": False}, "failed"),
        ({**DECISION, "doc_type": "TT", "symbol": "TT-UBND"}, "passed"),
    ],
    ids=["letter marked", "circular not marked", "circular marked"],
)
def test_the_type_decides_whether_the_mark_may_be_given(
    api: Api, fields: dict[str, Any], status: str
) -> None:
    result = submit_and_check(api, clean_letter(api, **fields))["format.doc_type"]

    assert status == result["status"], result
