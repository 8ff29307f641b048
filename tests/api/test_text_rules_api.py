"""Text fields hold text: no control characters (line breaks only where text has lines),
and a reason must show something."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any, get_args

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from congvan.workflow.api.bodies import JsonRoute
from congvan.workflow.api.schemas import TextModel
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


@pytest.mark.parametrize(
    "reason",
    [
        "\u200b",
        "\ufeff",
        " \u200b\u00a0",
        "\u2028",
        "\u3164\u3164",  # Hangul fillers: letters that show nothing
        "\u2800",  # the blank braille pattern
        "\u034f",  # a combining grapheme joiner
        "\ufe0f",  # a variation selector
        "\u0301",  # a combining accent with no letter to sit on
    ],
)
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


# -- every way in ------------------------------------------------------------------------


def _routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # an included router, as FastAPI keeps it
            yield from _routes(route.original_router.routes)


def _models(annotation: Any) -> list[type[BaseModel]]:
    found = [a for a in (annotation, *get_args(annotation)) if isinstance(a, type)]
    return [a for a in found if issubclass(a, BaseModel)]


def test_every_body_the_api_reads_holds_only_storable_text(api: Api) -> None:
    app = api.client.app
    assert isinstance(app, FastAPI)
    bodies = {
        f"{sorted(route.methods)[0]} {route.path}": model
        for route in _routes(app.routes)
        for param in route.dependant.body_params
        for model in _models(param.field_info.annotation)
    }
    assert (
        "POST /v1/status" in bodies and "POST /v1/received/{received_id}/events/{event}" in bodies
    )
    assert {where: m.__name__ for where, m in bodies.items() if not issubclass(m, TextModel)} == {}

    # And every one of them, and every model nested in one, refuses a field it does not know
    def nested(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
        yield model
        for field in model.model_fields.values():
            for inner in _models(field.annotation):
                yield from nested(inner)
            for arg in get_args(field.annotation):
                for inner in _models(arg):
                    yield from nested(inner)

    lenient = {
        m.__name__
        for body in bodies.values()
        for m in nested(body)
        if m.model_config.get("extra") != "forbid"
    }
    assert lenient == set()


def test_a_field_the_route_does_not_take_is_refused_not_dropped(api: Api) -> None:
    body = {"id": "000.00.77.H57", "name": "Sở Tư pháp", "abbreviation": "STP"}
    response = api.client.post(
        "/v1/agencies",
        headers=api.auth("operator"),
        json={**body, "inbox_url": "https://stp.example.vn/v1/inbox"},
    )
    details = assert_error(response, 422, "invalid_input")
    assert "inbox_url" in json.dumps(details)
    assert "000.00.77.H57" not in {a["id"] for a in api.get("/v1/agencies").json()["items"]}


def test_every_body_the_api_reads_is_read_as_utf_8_with_each_key_once(api: Api) -> None:
    app = api.client.app
    assert isinstance(app, FastAPI)
    reading = [r for r in _routes(app.routes) if r.dependant.body_params]
    assert "/v1/status" in {r.path for r in reading}
    assert [f"{sorted(r.methods)} {r.path}" for r in reading if not isinstance(r, JsonRoute)] == []


@pytest.mark.parametrize(
    "path",
    [
        "/v1/received?sender=000.00.11%00H57",
        "/v1/documents?doc_type=C%C3%B4ng%0Avan",
        "/v1/escalations?document=x%00",
        "/v1/received?limit=5&sender=%0d%0a",
    ],
)
def test_a_control_character_in_the_query_is_refused(api_any_db: Api, path: str) -> None:
    response = api_any_db.get(path, role="supervisor")
    details = assert_error(response, 422, "invalid_input")
    assert "control characters" in response.json()["message"]
    assert details["location"] == "query parameter"


@pytest.mark.parametrize(
    "path", ["/v1/documents/abc%00def", "/v1/received/abc%0d%0adef", "/v1/escalations/%00"]
)
def test_a_path_holding_a_control_character_names_nothing(api_any_db: Api, path: str) -> None:
    assert_error(api_any_db.get(path, role="supervisor"), 404, "not_found")


@pytest.mark.parametrize(
    ("path", "said", "key"),
    [
        ("/v1/documents/a%00b", "No such document.", "document_id"),
        ("/v1/received/a%00b", "No such received document.", "received_id"),
        ("/v1/received/a%00b/files/x.pdf", "No such received document.", "received_id"),
        ("/v1/escalations/a%00b", "No such escalation.", "escalation_id"),
    ],
)
def test_an_id_holding_nul_is_not_found_as_any_other_id_of_its_kind(
    api_any_db: Api, path: str, said: str, key: str
) -> None:
    response = api_any_db.get(path, role="supervisor")
    details = assert_error(response, 404, "not_found")
    assert (response.json()["message"], list(details)) == (said, [key])


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_moment_the_databases_cannot_keep_is_refused(api_any_db: Api, moment: str) -> None:
    response = api_any_db.get("/v1/documents", params={"created_after": moment})
    assert_error(response, 422, "invalid_input")
    in_range = {"created_after": "2026-01-01T00:00:00+07:00"}
    assert api_any_db.get("/v1/documents", params=in_range).status_code == 200


def test_a_moment_past_the_microsecond_is_refused_not_cut(api: Api) -> None:
    # A seventh decimal of a second and beyond would be dropped without a word: what is
    # kept and signed would not be what was sent (the document's, a list's filter alike)
    late = "2026-12-31T10:00:00.123456789+07:00"
    details = assert_error(api.create(urgency=4, appointed_at=late), 422, "invalid_input")
    assert "microsecond" in json.dumps(details)
    assert api.get("/v1/documents").json()["items"] == []
    listed = api.get("/v1/documents", params={"created_after": "2026-01-01T00:00:00.1234567Z"})
    assert_error(listed, 422, "invalid_input")
    # To the microsecond, it is kept as given
    kept = api.create(urgency=4, appointed_at="2026-12-31T10:00:00.123456+07:00")
    assert kept.status_code == 201, kept.text
    assert kept.json()["appointed_at"] == "2026-12-31T10:00:00.123456+07:00"


@pytest.mark.parametrize(
    ("field", "value"), [("number", True), ("number", "7"), ("number", 5.0), ("urgency", True)]
)
def test_a_number_is_a_json_number_not_what_pydantic_would_turn_into_one(
    api: Api, field: str, value: object
) -> None:
    details = assert_error(api.create(**{field: value}), 422, "invalid_input")
    assert [e["field"] for e in details["errors"]] == [field]
    assert api.get("/v1/documents").json()["items"] == []


@pytest.mark.parametrize("field", ["doc_type", "subject"])
@pytest.mark.parametrize("value", ["", "   ", "\u200b"])
def test_what_a_draft_must_have_is_not_given_by_an_empty_text(
    api: Api, field: str, value: str
) -> None:
    details = assert_error(api.create(**{field: value}), 422, "invalid_input")
    # Named as the one refusal, or among the body's (a zero-width space hides what it shows)
    named = [details["field"]] if "field" in details else [e["field"] for e in details["errors"]]
    assert named == [field]
    assert api.get("/v1/documents").json()["items"] == []


class _Flags(TextModel):
    enabled: bool = True
    until: datetime | None = None
    on: date | None = None


@pytest.mark.parametrize(
    "body",
    [
        {"enabled": "off"},
        {"enabled": "yes"},
        {"enabled": 0},
        {"until": 1_700_000_000},
        {"until": "1767800000"},
        {"until": " 1.7e9 "},
        {"on": "20000"},
        {"until": 1.5},
        {"on": 20_000},
    ],
)
def test_a_yes_no_or_a_moment_is_written_as_one_not_coerced(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _Flags.model_validate(body)


def test_yes_no_and_moments_written_as_such_are_taken() -> None:
    taken = _Flags.model_validate(
        {"enabled": False, "until": "2026-12-01T08:00:00+07:00", "on": "2026-12-01"}
    )
    assert (taken.enabled, taken.on) == (False, date(2026, 12, 1))


def test_a_route_switched_by_a_word_instead_of_true_or_false_is_refused(api: Api) -> None:
    routes = "/v1/notification-routes"
    body = {
        "kind": "*",
        "channel": "email",
        "target": "van.thu@hue.gov.vn",
    }
    made = api.client.post(routes, headers=api.auth("operator"), json=body)
    assert made.status_code == 201, made.text
    patched = api.client.patch(
        f"{routes}/{made.json()['id']}", headers=api.auth("operator"), json={"enabled": "off"}
    )
    assert_error(patched, 422, "invalid_input")


# Dates and moments past the years the engine reckons with (1901 to 2100, in Vietnam time):
# the first the API took, and a send then crashed on converting it to Vietnam time.
BEYOND = {
    "issued_on": ["9999-12-31", "2101-01-01", "1900-12-31", "0001-01-01"],
    "due_date": ["9999-12-31", "2101-01-01"],
    "appointed_at": [
        "9999-12-31T17:00:00+00:00",
        "2100-12-31T17:00:00+00:00",  # 2101-01-01 in Vietnam
        "2100-12-31T23:00:00-05:00",
    ],
}


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in BEYOND.items() for v in values]
)
def test_a_date_or_moment_beyond_the_years_reckoned_with_is_refused_where_it_enters(
    api: Api, field: str, value: str
) -> None:
    # Given a draft, a time-bound authority's body and an escalation's snooze
    doc = api.draft()
    urgency = {"urgency": 4} if field == "appointed_at" else {}
    # When the value is given to a new draft, an edit and an update
    answers = [
        api.create(**urgency, **{field: value}),
        api.fire(doc["id"], "edit", body={"fields": {**urgency, field: value}}),
    ]
    if field != "appointed_at":  # an update corrects dates only
        body = {"reason": "sửa ngày", "fields": {field: value}}
        answers.append(
            api.client.post(
                f"/v1/documents/{doc['id']}/update", json=body, headers=api.auth("supervisor")
            )
        )
    # Then each is refused at the edge, naming the field, and nothing changes
    for response in answers:
        details = assert_error(response, 422, "invalid_input")
        assert [e["field"].rsplit(".", 1)[-1] for e in details["errors"]] == [field]
        assert "1901 to 2100" in details["errors"][0]["problem"]
    assert [d["id"] for d in api.get("/v1/documents").json()["items"]] == [doc["id"]]
    assert api.get(f"/v1/documents/{doc['id']}").json()[field] == doc[field]


@pytest.mark.parametrize("field", ["issued_on", "due_date"])
@pytest.mark.parametrize("value", ["2030-12-31T00:00:00+14:00", "2030-12-31T00:00:00Z"])
def test_a_day_written_as_a_moment_is_refused_not_cut_to_its_date(
    api: Api, field: str, value: str
) -> None:
    # 2030-12-31T00:00+14:00 is 30 December in Vietnam: a day is written as one, YYYY-MM-DD
    doc = api.draft()
    answers = [
        api.create(**{field: value}),
        api.fire(doc["id"], "edit", body={"fields": {field: value}}),
    ]
    for response in answers:
        assert_error(response, 422, "invalid_input")
    assert api.get(f"/v1/documents/{doc['id']}").json()[field] == doc[field]


@pytest.mark.parametrize(
    ("path", "role", "body"),
    [
        ("/v1/authorities", "supervisor", {"signer": "x", "valid_from": "1900-12-31"}),
        (
            "/v1/authorities",
            "supervisor",
            {"signer": "x", "valid_from": "2026-01-01", "valid_until": "9999-12-31"},
        ),
        (
            "/v1/escalations/01900000-0000-7000-8000-000000000000/events/snooze",
            "supervisor",
            {"until": "9999-12-31T17:00:00+00:00", "reason": "chờ"},
        ),
    ],
)
def test_an_authority_or_a_snooze_beyond_the_years_reckoned_with_is_refused(
    api: Api, path: str, role: str, body: dict[str, Any]
) -> None:
    details = assert_error(
        api.client.post(path, json=body, headers=api.auth(role)), 422, "invalid_input"
    )
    assert "1901 to 2100" in str(details)


def test_the_last_moment_reckoned_with_is_taken(api: Api) -> None:
    # Given the last day and the last moment of year 2100 in Vietnam time
    response = api.create(
        urgency=4, due_date="2100-12-31", appointed_at="2100-12-31T16:59:59+00:00"
    )
    # Then a draft holds them
    assert response.status_code == 201, response.text
    assert response.json()["due_date"] == "2100-12-31"
    filtered = api.get("/v1/documents", params={"created_before": "2100-12-31T23:59:59+07:00"})
    assert [d["id"] for d in filtered.json()["items"]] == [response.json()["id"]]
    too_late = {"created_before": "2101-01-01T00:00:00+07:00"}
    assert_error(api.get("/v1/documents", params=too_late), 422, "invalid_input")


@pytest.mark.parametrize(
    "blank", ["\u2800\u2800", " \u2800 ", "\u3164", "\u200b", "\u0301"], ids=repr
)
def test_an_agency_whose_name_shows_nothing_is_refused(api: Api, blank: str) -> None:
    response = api.client.post(
        "/v1/agencies",
        headers=api.auth("operator"),
        json={"id": "000.00.77.H57", "name": blank, "abbreviation": "STP"},
    )
    assert_error(response, 422, "invalid_input")
    assert "000.00.77.H57" not in {a["id"] for a in api.get("/v1/agencies").json()["items"]}
