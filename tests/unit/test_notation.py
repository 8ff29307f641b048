"""Số và ký hiệu as written: numbers below 10 take a leading zero (Decree 30/2020 Art. 15)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from congvan.states.policy import notation


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
