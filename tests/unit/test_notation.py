"""Số và ký hiệu as written: numbers below 10 take a leading zero (Decree 30/2020 Art. 15)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from congvan.states.policy import notation, written_notation


@pytest.mark.parametrize(
    ("number", "symbol", "written"),
    [
        (5, "UBND-TĐKT", "05/UBND-TĐKT"),
        (1, "QĐ-UBND", "01/QĐ-UBND"),
        (10, "UBND-TĐKT", "10/UBND-TĐKT"),
        (1227, "UBND-TĐKT", "1227/UBND-TĐKT"),
        (7, "", "07"),
        (None, "UBND-TĐKT", "UBND-TĐKT"),
        (None, None, ""),
    ],
)
def test_the_written_number_and_symbol(
    number: int | None, symbol: str | None, written: str
) -> None:
    assert written == notation(number, symbol)


@given(st.integers(1, 100_000))
def test_the_written_number_reads_back_as_the_number(number: int) -> None:
    written = notation(number, "UBND-TĐKT").split("/")[0]

    assert number == int(written)
    assert 2 == len(written) if number < 10 else str(number) == written


@pytest.mark.parametrize(
    ("document", "written"),
    [
        ({"number": 5, "symbol": "QĐ-UBND", "legal_normative": True, "issued_on": "2024-03-01"},
         "05/2024/QĐ-UBND"),
        ({"number": 30, "symbol": "NĐ-CP", "legal_normative": True, "issued_on": "2020-03-05"},
         "30/2020/NĐ-CP"),
        ({"number": 5, "symbol": "QĐ-UBND", "legal_normative": False, "issued_on": "2024-03-01"},
         "05/QĐ-UBND"),
        ({"number": 5, "symbol": "QĐ-UBND", "issued_on": "2024-03-01"}, "05/QĐ-UBND"),
        ({"number": 5, "symbol": "QĐ-UBND", "legal_normative": True, "issued_on": None},
         "05/QĐ-UBND"),  # no date yet: no year to write
    ],
)  # fmt: skip
def test_a_legal_normative_document_is_written_with_its_year(
    document: dict[str, object], written: str
) -> None:
    # The Law on promulgating legal normative documents: number/year/symbol.
    assert written == written_notation(document)
