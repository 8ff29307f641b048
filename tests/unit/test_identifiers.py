"""Agency identifiers are matched whole: a trailing newline is not part of one."""

from __future__ import annotations

import pytest

from congvan.states.policy import is_organ_id


@pytest.mark.parametrize("value", ["000.00.00.H57", "H37.02.02", "G22", "A" * 35])
def test_well_formed_agency_ids_are_accepted(value: str) -> None:
    assert is_organ_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "000.00.00.H57\n",  # `$` in a pattern would let this through
        "000.00.00.H57\r\n",
        "\n000.00.00.H57",
        "000.00.00.h57",
        "000..00.H57",
        ".000.00.H57",
        "000.00.00.H57.",
        "000 00 00 H57",
        "",
        "A" * 36,
    ],
)
def test_anything_else_is_refused(value: str) -> None:
    assert not is_organ_id(value)
