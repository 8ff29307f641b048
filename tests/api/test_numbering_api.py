"""An agency's number series over HTTP: set when it is added, changed by an operator.

Decree 30/2020 Art. 15.1: a number with its symbol is used once a year, and the agency's
head decides how administrative documents are numbered: in one series for all (the
default) or in one per symbol. A change applies to the numbers checked from then on, so
one series for all is refused while this year's documents already hold a number under
two symbols (409 numbering_conflict); legal normative documents, numbered by type, never
stand in the way.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from congvan.states.policy import ROLES
from tests.api.conftest import A, Api, assert_error
from tests.api.test_review_flow_api import clean_letter, submit, submit_and_check, today
from tests.factories import B


def change(api: Api, numbering: Any, agency: str = A, role: str = "operator") -> Any:
    return api.client.patch(
        f"/v1/agencies/{agency}", headers=api.auth(role), json={"numbering": numbering}
    )


def series_of(api: Api, agency: str = A) -> str:
    items = api.get("/v1/agencies").json()["items"]
    return str(next(a["numbering"] for a in items if a["id"] == agency))


def in_review(api: Api, **fields: Any) -> str:
    doc_id = clean_letter(api, **fields)
    submit(api, doc_id)
    return doc_id


def test_an_operator_changes_the_series_both_ways(api: Api) -> None:
    # Given agency A, numbering all its documents in one series (the default)
    assert "agency" == series_of(api)

    # When an operator moves it to a series per symbol, and back
    to_symbol = change(api, "symbol")
    after_symbol = series_of(api)
    back = change(api, "agency")

    # Then each change answers with the agency and shows in the directory
    assert (200, "symbol", "symbol") == (
        to_symbol.status_code,
        to_symbol.json()["numbering"],
        after_symbol,
    )
    assert (200, "agency", "agency") == (back.status_code, back.json()["numbering"], series_of(api))


def test_the_new_series_applies_to_the_next_check(api: Api) -> None:
    # Given letter 1227/UBND-TĐKT in review in A's one series
    in_review(api)

    # When A moves to a series per symbol and letter 1227/UBND-KT is checked
    assert 200 == change(api, "symbol").status_code
    checks = submit_and_check(api, clean_letter(api, symbol="UBND-KT"))

    # Then 1227 is free with the other symbol
    assert ("passed", "symbol") == (
        checks["duplicates.number"]["status"],
        checks["duplicates.number"]["details"]["numbering"],
    )


def test_one_series_is_refused_while_this_years_numbers_would_repeat(api_any_db: Api) -> None:
    api = api_any_db
    # Given A numbering per symbol, with 1227/UBND-TĐKT and 1227/UBND-KT in review
    assert 200 == change(api, "symbol").status_code
    in_review(api)
    in_review(api, symbol="UBND-KT")

    # When an operator moves A back to one series for all
    response = change(api, "agency")

    # Then it is refused, naming the number, and A keeps its series per symbol
    details = assert_error(response, 409, "numbering_conflict")
    year = str(today(api).year)
    assert [{"year": year, "number": 1227, "symbols": 2}] == details["numbers"]
    assert "1227" in response.json()["message"]
    assert "symbol" == series_of(api)


def test_last_years_numbers_and_abandoned_drafts_do_not_stand_in_the_way(api_any_db: Api) -> None:
    api = api_any_db
    # Given A numbering per symbol; last year's 1227 under two symbols; this year's
    # 1227/UBND-KT a draft never submitted; 05/YYYY/QĐ-UBND legal normative next to 05/UBND-KT
    assert 200 == change(api, "symbol").status_code
    last_year = date(today(api).year - 1, 6, 1).isoformat()
    in_review(api, issued_on=last_year)
    in_review(api, issued_on=last_year, symbol="UBND-KT")
    in_review(api)
    clean_letter(api, symbol="UBND-KT")
    in_review(api, number=5, symbol="UBND-KT")
    in_review(api, number=5, doc_type="QĐ", symbol="QĐ-UBND", legal_normative=True)

    # When an operator moves A to one series for all
    response = change(api, "agency")

    # Then nothing this year would repeat in it
    assert 200 == response.status_code, response.text


def test_a_draft_refused_for_its_number_does_not_stand_in_the_way(api_any_db: Api) -> None:
    api = api_any_db
    # Given A in one series for all: 1227/UBND-TĐKT in review, then 1227/UBND-KT refused
    # for repeating its number
    in_review(api)
    checks = submit_and_check(api, clean_letter(api, symbol="UBND-KT"))
    assert checks["duplicates.number"]["status"] == "failed"

    # When an operator moves A to a series per symbol by mistake, and back at once
    assert 200 == change(api, "symbol").status_code
    back = change(api, "agency")

    # Then it is back: the refused draft holds no number, as it held none before
    assert 200 == back.status_code, back.text
    assert "agency" == series_of(api)


def test_an_agency_is_added_with_its_series(api: Api) -> None:
    body = {"id": "000.00.31.H57", "name": "UBND thành phố Huế", "abbreviation": "UBND"}

    added = api.client.post(
        "/v1/agencies", headers=api.auth("operator"), json={**body, "numbering": "symbol"}
    )

    assert (201, "symbol") == (added.status_code, added.json()["numbering"])
    assert "symbol" == series_of(api, body["id"])


@pytest.mark.parametrize("role", [r for r in ROLES if r != "operator"])
def test_only_an_operator_changes_the_series(api: Api, role: str) -> None:
    assert_error(change(api, "symbol", role=role), 403, "forbidden")
    assert "agency" == series_of(api)


@pytest.mark.parametrize(
    "body", [{"numbering": "year"}, {"numbering": None}, {}, {"numbering": "symbol", "name": "x"}]
)
def test_an_unknown_series_or_field_is_invalid_input(api: Api, body: dict[str, Any]) -> None:
    response = api.client.patch(f"/v1/agencies/{A}", headers=api.auth("operator"), json=body)

    assert_error(response, 422, "invalid_input")
    assert "agency" == series_of(api)


@pytest.mark.parametrize("agency", [B, "000.00.99.H57", "000.00.00.H57%0A", "H57%00", "h57"])
def test_an_operator_changes_no_series_but_their_own_agencys(api_any_db: Api, agency: str) -> None:
    assert_error(change(api_any_db, "symbol", agency=agency), 403, "forbidden")
    assert ("agency", "agency") == (series_of(api_any_db), series_of(api_any_db, B))


def test_another_agencys_operator_cannot_change_the_series(api: Api) -> None:
    response = api.client.patch(
        f"/v1/agencies/{A}", headers=api.auth("operator", B), json={"numbering": "symbol"}
    )

    assert_error(response, 403, "forbidden")
    assert "agency" == series_of(api)
