"""/v1/documents/{id}/recall, /update and /replace: who may, when, and with what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from congvan.states.errors import FieldTooLong, InvalidInput
from congvan.states.timeliness import in_vietnam
from tests.api.conftest import Api, MakeApi, assert_error
from tests.factories import MAIN_PDF, B, actor, pipeline


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    """The app with the checks, the signature, sealing and delivery faked."""
    return make_api(**pipeline())


def issued(api: Api) -> str:
    """A's letter, approved, signed and sent (checks, signature and sealing faked)."""
    doc_id = str(api.draft()["id"])
    for step, by in [("approve", "reviewer"), ("sign", "signer"), ("send", "clerk")]:
        done = api.fire(doc_id, step, role=by)
        assert done.status_code == 200, done.text
    return doc_id


def post(api: Api, path: str, role: str = "supervisor", agency: str = "", **kwargs: Any) -> Any:
    headers = api.auth(role, agency) if agency else api.auth(role)
    return api.client.post(path, headers=headers, **kwargs)


def test_a_supervisor_drafts_the_replacement_with_its_corrected_file(api: Api) -> None:
    # Given A's sent letter
    doc_id = issued(api)

    # When a supervisor asks for its replacement with a corrected main file
    response = post(
        api,
        f"/v1/documents/{doc_id}/replace",
        data={"reason": "Sai nội dung"},
        files={"main": ("thu-sua.pdf", MAIN_PDF, "application/pdf")},
    )

    # Then a draft names the original, with the original's recipients and the new file
    assert response.status_code == 201, response.text
    draft = response.json()
    assert response.headers["Location"] == f"/v1/documents/{draft['id']}"
    assert (draft["state"], draft["replaces"], draft["replace_reason"]) == (
        "draft",
        doc_id,
        "Sai nội dung",
    )
    assert [a["filename"] for a in draft["attachments"]] == ["thu-sua.pdf"]
    original = api.get(f"/v1/documents/{doc_id}").json()
    assert (original["state"], original["replaced_by"]) == ("sent", [draft["id"]])


def test_a_replacement_without_a_new_file_keeps_the_originals(api: Api) -> None:
    doc_id = issued(api)
    before = api.get(f"/v1/documents/{doc_id}").json()["attachments"]

    response = post(api, f"/v1/documents/{doc_id}/replace", data={"reason": "Sai số"})

    assert response.status_code == 201, response.text
    after = response.json()["attachments"]
    assert [(a["filename"], a["sha256"]) for a in after] == [
        (a["filename"], a["sha256"]) for a in before
    ]


@pytest.mark.parametrize(
    "fields", [{"doc_type": "TB", "symbol": "TB-UBND"}, {"legal_normative": True}]
)
def test_a_replacement_stays_of_the_kind_it_replaces(api: Api, fields: dict[str, Any]) -> None:
    # Given the draft replacing A's letter (a công văn)
    doc_id = issued(api)
    draft = post(api, f"/v1/documents/{doc_id}/replace", data={"reason": "Sai nội dung"})
    assert draft.status_code == 201, draft.text
    replacement = draft.json()["id"]

    # When its clerk makes it another kind of document (a notice, a legal normative one)
    edit = api.fire(replacement, "edit", body={"fields": fields}, if_match='"1"')

    # Then it is refused (Decree 30: a document is replaced by one of its kind), unchanged
    assert_error(edit, 422, "invalid_input")
    assert edit.json()["details"]["field"] == sorted(fields)[0]
    kept = api.get(f"/v1/documents/{replacement}").json()
    assert (kept["doc_type"], kept["version"]) == ("CV", 1)
    # While its other fields may still be corrected
    fixed = api.fire(replacement, "edit", body={"fields": {"subject": "V/v sửa"}}, if_match='"1"')
    assert fixed.status_code == 200, fixed.text


@pytest.mark.parametrize("reason", ["a\x00b", "a\x07b", "\x1b[2J", "a\x7fb", "a\x85b"])
def test_a_replacement_reason_that_is_not_storable_text_is_invalid_input(
    make_api_any_db: MakeApi, reason: str
) -> None:
    api = make_api_any_db(**pipeline())
    doc_id = issued(api)

    response = post(api, f"/v1/documents/{doc_id}/replace", data={"reason": reason})

    details = assert_error(response, 422, "invalid_input")
    assert ["reason"] == [e["field"] for e in details["errors"]]
    assert [] == api.get(f"/v1/documents/{doc_id}").json()["replaced_by"]


def test_a_reason_too_long_for_the_exchange_is_refused_however_it_comes(api: Api) -> None:
    # Given A's sent letter; the engine is what the command line calls, past the API's
    # bodies: a reason travels in the recall's or replacement's package, 2000 at most
    doc_id = issued(api)
    supervisor = actor("supervisor")
    long = "x" * 2001

    # When a replacement, a recall or a waiver gives a longer one, then it is refused
    with pytest.raises(FieldTooLong):
        api.runtime.engine.create_replacement(supervisor, doc_id, long)
    with pytest.raises(FieldTooLong):
        api.runtime.engine.fire(doc_id, "recall", supervisor, data={"reason": long})
    # and nothing was made of it; at the bound it is taken
    assert api.get(f"/v1/documents/{doc_id}").json()["replaced_by"] == []
    made = api.runtime.engine.create_replacement(supervisor, doc_id, "x" * 2000)
    assert made is not None


@pytest.mark.parametrize("reason", ["Sai\u202eố liệu", "Sai\x1b[31m số", "a\x00b", "a\ud800b"])
def test_a_reason_the_api_refuses_is_refused_however_it_comes(api: Api, reason: str) -> None:
    # The engine is what the command line calls: a replacement's reason meets the rules of
    # a recall's, which travel in its package
    doc_id = issued(api)
    supervisor = actor("supervisor")

    for attempt in (
        lambda: api.runtime.engine.create_replacement(supervisor, doc_id, reason),
        lambda: api.runtime.engine.fire(doc_id, "recall", supervisor, data={"reason": reason}),
    ):
        with pytest.raises(InvalidInput) as refused:
            attempt()
        assert refused.value.details["field"] == "reason"
    assert api.get(f"/v1/documents/{doc_id}").json()["replaced_by"] == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("recall", {"json": {"reason": "Gửi nhầm"}}),
        ("update", {"json": {"reason": "Sai", "fields": {"subject": "V/v"}}}),
        ("replace", {"data": {"reason": "Sai"}}),
    ],
)
def test_another_agency_and_a_clerk_may_not(api: Api, path: str, body: dict[str, Any]) -> None:
    doc_id = issued(api)

    theirs = post(api, f"/v1/documents/{doc_id}/{path}", agency=B, **body)
    clerk = post(api, f"/v1/documents/{doc_id}/{path}", role="clerk", **body)

    assert_error(theirs, 404, "not_found")
    assert_error(clerk, 403, "forbidden")


def test_a_draft_cannot_be_recalled_nor_a_field_outside_the_list_updated(api: Api) -> None:
    draft = api.draft()["id"]
    doc_id = issued(api)

    recalled = post(api, f"/v1/documents/{draft}/recall", json={"reason": "Gửi nhầm"})
    numbered = post(
        api, f"/v1/documents/{doc_id}/update", json={"reason": "Sai", "fields": {"number": 7}}
    )
    blank = post(api, f"/v1/documents/{doc_id}/recall", json={"reason": ""})
    replaced = post(api, f"/v1/documents/{draft}/replace", data={"reason": "Sai"})

    assert_error(recalled, 409, "invalid_transition")
    assert numbered.status_code == 422 and blank.status_code == 422
    assert_error(replaced, 409, "invalid_transition")


@pytest.mark.parametrize(
    "name", ["subject", "issued_on", "signer_name", "signer_position", "place"]
)
def test_an_update_cannot_clear_what_review_requires(api: Api, name: str) -> None:
    doc_id = issued(api)

    cleared = post(
        api, f"/v1/documents/{doc_id}/update", json={"reason": "Sai", "fields": {name: None}}
    )

    # The recipient would refuse it: a signed document keeps what review made it have
    assert assert_error(cleared, 422, "invalid_input") == {"field": f"fields.{name}"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("due_date", "2021-W09-1"),  # a week date, which Python's own parser takes
        ("due_date", "20210301"),
        ("due_date", "2030-12-31T00:00:00+14:00"),  # a moment: its day in Vietnam is the 30th
        ("issued_on", "2021-02-06T00:00:00Z"),
        ("issued_on", "2021-W05-5"),
        ("due_date", "9999-12-31"),  # outside the years reckoned with
        ("due_date", "1900-12-31"),
    ],
)
def test_an_update_holds_its_dates_to_yyyy_mm_dd_within_the_years_reckoned_with(
    api: Api, name: str, value: str
) -> None:
    doc_id = issued(api)

    corrected = post(
        api, f"/v1/documents/{doc_id}/update", json={"reason": "Sai", "fields": {name: value}}
    )

    # Refused, naming the field, before anything is kept or sealed
    details = assert_error(corrected, 422, "invalid_input")
    named = [e["field"] for e in details["errors"]] if "errors" in details else [details["field"]]
    assert named == [f"fields.{name}"]
    shown = api.get(f"/v1/documents/{doc_id}")
    assert shown.status_code == 200 and shown.json()["state"] != "updating"


def test_an_update_cannot_set_a_due_date_already_gone(api: Api) -> None:
    # Given A's sent letter (issued 2021-02-06), corrected on the test clock's day
    doc_id = issued(api)
    today = in_vietnam(api.clock()).date()

    def update(due: str) -> Any:
        body = {"reason": "Đính chính hạn xử lý", "fields": {"due_date": due}}
        return post(api, f"/v1/documents/{doc_id}/update", json=body)

    # Then a due date before today, or before the date of issue, is refused, naming it
    for gone in ("1901-01-01", "2021-02-05", str(today - timedelta(days=1))):
        details = assert_error(update(gone), 422, "invalid_input")
        assert details == {"field": "fields.due_date"}
    # And one from today on passes (the letter, on its way still, waits for its dispatches)
    failed = assert_error(update(str(today)), 409, "guard_failed")["failed"]
    assert failed == ["nothing_under_way", "a_recipient_holds_it"]  # none has it yet


def test_a_replacement_is_made_on_the_version_if_match_names(api: Api) -> None:
    # Given A's sent letter and its ETag
    doc_id = issued(api)
    etag = api.client.get(f"/v1/documents/{doc_id}", headers=api.auth()).headers["ETag"]

    def replace(if_match: str) -> Any:
        headers = {**api.auth("supervisor"), "If-Match": if_match}
        return api.client.post(
            f"/v1/documents/{doc_id}/replace", headers=headers, data={"reason": "Sai"}
        )

    # When its replacement names another version, then one that is no ETag of ours
    stale, bogus = replace('"999"'), replace("bogus")

    # Then neither is drafted: a version conflict, and a malformed condition
    assert assert_error(stale, 409, "version_conflict")["current_version"] == int(
        etag[1:].split(".")[0]
    )
    assert "If-Match" in str(assert_error(bogus, 422, "invalid_input"))
    assert api.get(f"/v1/documents/{doc_id}").json()["replaced_by"] == []
    # And on the version it holds, it is
    assert replace(etag).status_code == 201


def test_a_read_is_not_told_unchanged_when_what_it_shows_changed_with_its_version(
    api: Api,
) -> None:
    # Given A's sent letter, as a client read it (its ETag)
    doc_id = issued(api)
    path = f"/v1/documents/{doc_id}"
    before = api.client.get(path, headers=api.auth())

    # When its replacement is drafted (the letter's version stays: it is not changed)
    drafted = post(api, f"{path}/replace", data={"reason": "Sai"})
    assert drafted.status_code == 201, drafted.text

    # Then a read naming the tag held is answered in full, showing the replacement
    again = api.client.get(path, headers={**api.auth(), "If-None-Match": before.headers["ETag"]})
    assert again.status_code == 200
    assert again.json()["version"] == before.json()["version"]
    assert again.json()["replaced_by"] == [drafted.json()["id"]]
    assert again.headers["ETag"] != before.headers["ETag"]
    # And a change made on the version read still is: the tag names that version
    held = {**api.auth("supervisor"), "If-Match": before.headers["ETag"]}
    another = api.client.post(f"{path}/replace", headers=held, data={"reason": "Sai lần nữa"})
    assert another.status_code == 201, another.text


def test_a_replacement_repeated_with_its_key_is_answered_as_the_first_whatever_came_since(
    make_api_any_db: MakeApi,
) -> None:
    # Given A's sent letter, and its replacement drafted with a key and the version seen
    api = make_api_any_db(**pipeline())
    doc_id = issued(api)
    seen = f'"{api.version(doc_id)}"'
    headers = api.auth("supervisor", **{"Idempotency-Key": "rep-1", "If-Match": seen})
    first = api.client.post(
        f"/v1/documents/{doc_id}/replace", headers=headers, data={"reason": "Sai"}
    )
    assert first.status_code == 201, first.text

    # When the original moves on (delivered: its version changes) and the client, whose
    # answer was lost, sends the very same request again
    for dispatch in api.get(f"/v1/documents/{doc_id}").json()["dispatches"]:
        for event in ("start", "deliver"):
            api.runtime.engine.fire_dispatch(dispatch["id"], event)
    assert f'"{api.version(doc_id)}"' != seen
    again = api.client.post(
        f"/v1/documents/{doc_id}/replace", headers=headers, data={"reason": "Sai"}
    )

    # Then it is answered as the first was, and nothing more is drafted
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
    assert again.content == first.content
    assert [first.json()["id"]] == api.get(f"/v1/documents/{doc_id}").json()["replaced_by"]

    # But the key with another If-Match is another request: refused, not replayed
    other = api.auth("supervisor", **{"Idempotency-Key": "rep-1", "If-Match": '"1"'})
    reused = api.client.post(
        f"/v1/documents/{doc_id}/replace", headers=other, data={"reason": "Sai"}
    )
    assert_error(reused, 422, "idempotency_key_reused")
