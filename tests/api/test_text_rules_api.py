"""Text fields hold text: no control characters (line breaks only where text has lines),
and a reason must show something."""

from __future__ import annotations

import pytest

from tests.api.conftest import LETTER, Api, MakeApi, assert_error


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("symbol", "UBND-TĐKT\r\n"),
        ("symbol", "UBND\nTĐKT"),
        ("subject", "V/v thi đua\x07"),
        ("place", "Huế\x1b[31m"),
        ("signer_name", "Nguyễn Văn\tPhương"),
        ("content", "Kính gửi\x0c các sở"),
    ],
)
def test_control_characters_are_refused(api: Api, field: str, value: str) -> None:
    response = api.create(**{field: value})
    details = assert_error(response, 422, "invalid_input")
    assert [e["field"] for e in details["errors"]] == [field]
    assert "control characters" in details["errors"][0]["problem"]
    assert api.get("/v1/documents").json()["items"] == []


def test_the_content_keeps_its_lines(api: Api) -> None:
    content = "Kính gửi:\n\t- Các sở, ban, ngành;\r\n\t- UBND các huyện."
    response = api.create(content=content)
    assert response.status_code == 201, response.text
    assert response.json()["content"] == content


@pytest.mark.parametrize("reason", ["\u200b", "\ufeff", " \u200b\u00a0", "\u2028"])
def test_an_invisible_reason_is_no_reason(api: Api, reason: str) -> None:
    doc_id = api.draft(**LETTER)["id"]
    assert api.fire(doc_id, "submit").status_code == 200
    version = api.get(f"/v1/documents/{doc_id}").json()["version"]

    response = api.fire(doc_id, "reject", role="reviewer", body={"reason": reason})

    details = assert_error(response, 422, "invalid_input")
    assert details["field"] == "reason"
    assert api.get(f"/v1/documents/{doc_id}").json()["version"] == version


@pytest.mark.parametrize(
    ("event", "body", "unused"),
    [
        ("submit", {"fields": {"place": "Huế"}}, "fields"),
        ("submit", {"code": "format.subject_prefix"}, "code"),
        ("edit", {"cms": "AAAA"}, "cms"),
        ("approve", {"recipients": []}, "recipients"),
    ],
)
def test_a_part_the_event_does_not_use_is_refused_not_ignored(
    api: Api, event: str, body: dict[str, object], unused: str
) -> None:
    doc_id = api.draft(**LETTER)["id"]
    role = "reviewer" if event == "approve" else "clerk"
    version = api.get(f"/v1/documents/{doc_id}").json()["version"]

    response = api.fire(doc_id, event, role=role, body=body)

    details = assert_error(response, 422, "invalid_input")
    assert (details["event"], details["field"]) == (event, unused)
    assert "reason" in details["takes"]
    assert api.get(f"/v1/documents/{doc_id}").json()["version"] == version
