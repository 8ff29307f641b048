"""Number series on SQL (SQLite and PostgreSQL): which documents a number is unique among.

Decree 30/2020 Art. 15.1: a number is used once a year within its series. Legal normative
documents take a series per type (point a), apart from administrative documents, which
the agency numbers in one series by default or in one per symbol (point c).
"""

from __future__ import annotations

from typing import Any

import pytest

from congvan.actions.checks import Finding
from congvan.workflow.bootstrap import Runtime
from tests.integration import test_checks
from tests.integration.test_checks import (
    AGENCY_ID,
    assert_explained,
    main_pdf,
    number_free,
    numbering,
    run,
    submit,
    write,
)

# The letter's directory and clock, on SQLite and PostgreSQL, as test_checks builds them.
clock = test_checks.clock
runtime = test_checks.runtime

# Decision 05/2021/QĐ-UBND, a legal normative decision of the province.
DECISION: dict[str, Any] = {
    "doc_type": "QĐ",
    "symbol": "QĐ-UBND",
    "subject": "Ban hành Quy chế gửi, nhận văn bản điện tử",
    "legal_normative": True,
    "number": 5,
}


def in_review(runtime: Runtime, fields: dict[str, Any], variant: str) -> str:
    document_id = write(runtime, fields, files=[main_pdf(variant)])
    submit(runtime, document_id)
    return document_id


def checked(runtime: Runtime, fields: dict[str, Any], variant: str) -> Finding:
    return run(runtime, "duplicates.number", write(runtime, fields, files=[main_pdf(variant)]))


def in_the_legal_normative_series() -> Finding:
    return Finding(True, details={"numbering": "legal_normative"})


def test_a_legal_normative_number_is_taken_once_a_year_in_its_type(runtime: Runtime) -> None:
    # Given decision 05/2021/QĐ-UBND (legal normative) in review
    earlier = in_review(runtime, DECISION, "quyết định")

    # When another legal normative decision numbered 05 that year is checked
    finding = checked(runtime, DECISION, "quyết định khác")

    # Then the number is taken, and the earlier one is named as written, with its year
    assert (False, earlier, "05/2021/QĐ-UBND", "legal_normative") == (
        finding.passed,
        finding.details["earlier_document"],
        finding.details["earlier_notation"],
        finding.details["numbering"],
    )
    assert_explained(finding)


def test_legal_normative_and_administrative_documents_number_apart(runtime: Runtime) -> None:
    # Given decision 05/2021/QĐ-UBND (legal normative) and letter 07/UBND-TĐKT in review
    in_review(runtime, DECISION, "quyết định")
    in_review(runtime, {"number": 7}, "công văn")

    # When an administrative decision 05/QĐ-UBND and a legal normative decision 07 are
    # checked
    administrative = checked(runtime, {**DECISION, "legal_normative": False}, "cá biệt")
    normative = checked(runtime, {**DECISION, "number": 7}, "quy phạm")

    # Then neither collides: each is the first of its number in its own series
    assert (number_free(), in_the_legal_normative_series()) == (administrative, normative)


def test_each_legal_normative_type_has_its_own_series(runtime: Runtime) -> None:
    # Given decision 05/2021/QĐ-UBND (legal normative) in review
    in_review(runtime, DECISION, "quyết định")

    # When the council's legal normative resolution 05/2021/NQ-UBND is checked
    resolution = checked(runtime, {**DECISION, "doc_type": "NQ", "symbol": "NQ-UBND"}, "nq")

    # Then number 05 is free in the resolutions' series
    assert in_the_legal_normative_series() == resolution


def test_numbering_by_symbol_leaves_the_legal_normative_series_alone(runtime: Runtime) -> None:
    # Given an agency numbering its administrative documents by symbol, and decision 05
    numbering(runtime, AGENCY_ID, "symbol")
    in_review(runtime, DECISION, "quyết định")

    # When a second legal normative decision 05 of that year is checked
    finding = checked(runtime, DECISION, "quyết định khác")

    # Then it is still refused: the law, not the agency, sets that series
    assert (False, "legal_normative") == (finding.passed, finding.details["numbering"])


@pytest.mark.parametrize("year", ["2020", "2022"])
def test_a_legal_normative_number_returns_the_next_year(runtime: Runtime, year: str) -> None:
    in_review(runtime, DECISION, "quyết định")

    finding = checked(runtime, {**DECISION, "issued_on": f"{year}-02-06"}, year)

    assert in_the_legal_normative_series() == finding


@pytest.mark.parametrize("missing", ["number", "issued_on"])
def test_a_number_with_nothing_to_compare_by_is_said_so_not_taken_for_a_duplicate(
    runtime: Runtime, missing: str
) -> None:
    # Given a letter whose number, or whose issue date, is not written yet
    fields = {**DECISION, "legal_normative": False, "symbol": "UBND-TĐKT", missing: None}

    # When its number is checked
    finding = checked(runtime, fields, f"thiếu {missing}")

    # Then it does not pass, naming what is missing, and names no earlier document
    assert (finding.passed, finding.details) == (False, {"field": missing, "missing": missing})
    assert "used by" not in finding.en and missing in finding.en
    assert_explained(finding)
