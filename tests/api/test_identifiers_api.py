"""An agency id with a line break after it is refused at the door, not stored."""

from __future__ import annotations

import pytest

from tests.api.conftest import MakeApi, assert_error


@pytest.mark.parametrize("organ_id", ["000.00.01.H57\n", "000.00.01.H57\r\n"])
def test_a_recipient_id_with_a_trailing_line_break_is_refused(
    make_api: MakeApi, organ_id: str
) -> None:
    api = make_api()
    response = api.create(recipients=[{"organ_id": organ_id, "name": "Văn phòng UBND tỉnh"}])
    assert_error(response, 422, "invalid_input")
    assert api.get("/v1/documents").json()["items"] == []
