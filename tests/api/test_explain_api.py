"""What a document waits for over HTTP (GET /v1/documents/{id}/explain), and the stuck list
(GET /v1/stuck): findings in both languages, per-agency isolation, roles, bad parameters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from congvan.actions.context import TransitionContext
from tests.api.conftest import Api, B, MakeApi, assert_error
from tests.api.test_signing_api import issue, reviewed_letter, sign
from tests.api.test_signing_api import signing_api as real_signing_api


def explain(api: Api, doc_id: str, **kwargs: Any) -> dict[str, Any]:
    response = api.get(f"/v1/documents/{doc_id}/explain", **kwargs)
    assert response.status_code == 200, response.text
    return dict(response.json())


def codes(view: dict[str, Any]) -> list[str]:
    return [f["code"] for f in view["document"]]


def stuck(api: Api, **params: Any) -> list[str]:
    response = api.get("/v1/stuck", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_a_draft_waits_for_its_submission_then_for_its_checks(api: Api) -> None:
    # Given a fresh draft
    doc = api.draft()
    # When it is explained
    view = explain(api, doc["id"])
    # Then it waits for a clerk to submit it, said in both languages
    assert ["awaiting_submission"] == codes(view)
    first = view["document"][0]
    assert first["vi"].startswith("Dự thảo (bản 1) chưa được trình kiểm tra")
    assert first["en"] == "Draft (revision 1) not yet submitted for review."
    assert (doc["id"], "draft", [], False) == (
        view["document_id"],
        view["state"],
        view["recipients"],
        first["alarm"],
    )
    assert first == view["headline"]

    # When it is submitted: the review checks are a job that has not run yet
    assert 200 == api.fire(doc["id"], "submit").status_code
    view = explain(api, doc["id"])
    assert ["checks_running", "job_queued"] == codes(view)
    queued = view["document"][1]["facts"]
    assert ("run_review_checks", 0, False) == (
        queued["action"],
        queued["attempts"],
        queued["overdue"],
    )
    assert queued["due_at"].endswith("+07:00")  # shown in Vietnam time

    # When the checks ran: the draft says which of them block it
    api.runtime.relay.drain()
    assert "done" == api.runtime.runner.run(queued["job_id"])
    view = explain(api, doc["id"])
    assert ["checks_failing"] == codes(view)
    failing = view["document"][0]
    assert failing["alarm"] and failing["facts"]["checks"]
    assert all(code in failing["en"] for code in failing["facts"]["checks"])

    # When the draft is edited after its checks ran: it waits for its new revision to be
    # submitted (as approving it would say), not on the checks of the revision before
    edited = api.fire(doc["id"], "edit", body={"fields": {"subject": "V/v sửa sau khi trình"}})
    assert edited.status_code == 200, edited.text
    view = explain(api, doc["id"])
    assert ["awaiting_submission"] == codes(view)
    assert view["document"][0]["en"] == "Draft (revision 3) not yet submitted for review."


def _holds(_ctx: TransitionContext) -> tuple[bool, str]:
    return True, ""


def _signed_with_two_hours_to_send(ctx: TransitionContext) -> None:
    """Signs nothing; leaves the send-by moment a signing leaves, two hours on."""
    ctx.audit.update(
        {"signature_id": "fake", "send_by": (ctx.now + timedelta(hours=2)).isoformat()}
    )


@pytest.fixture
def signing_api(make_api: MakeApi) -> Api:
    holds = {k: _holds for k in ("checks_cleared", "dated_this_year", "signer_has_authority")}
    return make_api(guards=holds, effects={"attach_signature": _signed_with_two_hours_to_send})


def test_a_signed_document_counts_down_to_its_send_by_moment(signing_api: Api) -> None:
    # Given a document signed on a Monday afternoon, to be sent within two hours
    api = signing_api
    doc_id = api.draft()["id"]
    assert 200 == api.fire(doc_id, "approve", role="reviewer").status_code
    assert "awaiting_signature" == explain(api, doc_id)["headline"]["code"]
    assert 200 == api.fire(doc_id, "sign", role="signer").status_code
    # When it is explained half an hour later
    api.clock.advance(minutes=30)
    step = explain(api, doc_id)["document"][0]
    # Then it is to be sent by then, 90 minutes left, all of them working time
    assert ("awaiting_sending", 5400, 5400) == (
        step["code"],
        step["facts"]["remaining"],
        step["facts"]["remaining_working"],
    )
    assert "1 h 30 min" in step["en"] and "1 giờ 30 phút" in step["vi"]
    # When the moment passed, it is overdue: an alarm
    api.clock.advance(hours=2)
    step = explain(api, doc_id)["document"][0]
    assert ("send_overdue", True, 1800) == (step["code"], step["alarm"], step["facts"]["late_by"])


def test_the_working_time_left_counts_the_installations_working_hours(
    make_api: MakeApi,
) -> None:
    # Given working hours of 07:30-11:30 and 13:30-17:30, and a letter signed on Monday
    # 05/01/2026 at 15:00, to be sent by Tuesday's working morning's end (11:30, the cut-off
    # unset: noon falls in the break)
    api = real_signing_api(make_api, working_hours="07:30-11:30,13:30-17:30")
    issue(api)
    doc_id = reviewed_letter(api)
    assert 200 == sign(api, doc_id).status_code

    # When it is explained at once
    facts = explain(api, doc_id)["document"][0]["facts"]

    # Then the working time left is Monday 15:00-17:30 and Tuesday 07:30-11:30: 6 h 30
    # (the default hours would say 6 h)
    assert ("2026-01-06T11:30:00+07:00", 6.5 * 3600) == (
        facts["due_at"],
        facts["remaining_working"],
    )


def test_another_agencys_document_is_not_found_and_roles_apply(api: Api) -> None:
    doc_id = api.draft()["id"]
    # Another agency's clerk: not found, as for GET /v1/documents/{id}
    other = api.get(f"/v1/documents/{doc_id}/explain", agency=B)
    assert {"document_id": doc_id} == assert_error(other, 404, "not_found")
    assert_error(api.get("/v1/documents/no-such-id/explain"), 404, "not_found")
    # Roles that read documents read explanations; the operator does not
    for role in ("clerk", "reviewer", "signer", "supervisor"):
        assert 200 == api.get(f"/v1/documents/{doc_id}/explain", role=role).status_code
    assert_error(api.get(f"/v1/documents/{doc_id}/explain", role="operator"), 403, "forbidden")
    assert_error(api.client.get(f"/v1/documents/{doc_id}/explain"), 401, "unauthenticated")
    assert_error(api.client.get("/v1/stuck"), 401, "unauthenticated")
    assert_error(api.get("/v1/stuck", role="operator"), 403, "forbidden")


def test_the_stuck_list_holds_idle_documents_idlest_first_and_pages(api: Api) -> None:
    # Given two drafts made ten minutes apart, and one of another agency
    first = api.draft()["id"]
    api.clock.advance(minutes=10)
    second = api.draft()["id"]
    api.draft(agency=B)
    # When nothing happens for an hour and a bit
    api.clock.advance(minutes=55)
    # Then only the first is stuck past the default hour; both past half an hour
    assert [first] == stuck(api)
    assert [first, second] == stuck(api, older_than="PT30M")
    assert [first, second] == stuck(api, older_than="1800")
    assert [] == stuck(api, older_than="P1D")
    # And each says what it waits for and since when
    item = api.get("/v1/stuck").json()["items"][0]
    assert (first, 3900, "awaiting_submission", ["awaiting_submission"]) == (
        item["id"],
        item["idle_seconds"],
        item["headline"]["code"],
        item["codes"],
    )
    # And it pages one at a time with the same items
    page = api.get("/v1/stuck", params={"older_than": "PT30M", "limit": 1}).json()
    assert [first] == [i["id"] for i in page["items"]] and page["next_cursor"]
    params = {"older_than": "PT30M", "limit": 1, "cursor": page["next_cursor"]}
    last = api.get("/v1/stuck", params=params).json()
    assert ([second], None) == ([i["id"] for i in last["items"]], last["next_cursor"])
    # And the other agency sees only its own
    mine = api.get("/v1/stuck", agency=B, params={"older_than": "PT30M"}).json()["items"]
    assert 1 == len(mine) and mine[0]["agency_id"] == B

    # When the first makes progress, it leaves the list
    assert 200 == api.fire(first, "submit").status_code
    assert [second] == stuck(api, older_than="PT30M")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"older_than": "an hour"}, "older_than"),
        ({"older_than": "-PT1H"}, "older_than"),
        ({"older_than": "PT10S"}, "older_than"),
        ({"older_than": "59"}, "older_than"),
        ({"older_than": "P400D"}, "older_than"),
        ({"older_than": "9" * 40}, "older_than"),
        ({"older_than": "٣٦٠٠"}, "older_than"),  # Arabic-Indic digits are not seconds
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJ4IiwieSJd"}, "cursor"),  # ["x","y"]: not a moment
        ({"cursor": "WyIyMDI2LTAxLTA1VDA4OjAwOjAwIiwieSJd"}, "cursor"),  # a moment, no zone
        ({"limit": 201}, "limit"),
    ],
)
def test_bad_stuck_parameters_are_refused_by_name(
    api: Api, params: dict[str, Any], field: str
) -> None:
    details = assert_error(api.get("/v1/stuck", params=params), 422, "invalid_input")
    assert field == details["field"]


@pytest.mark.parametrize("older_than", ["PT1H1H", "PT30M1H", "P1DT", "PT1H1M1H", "P1D2H", "pt2h"])
def test_a_threshold_giving_a_part_twice_or_out_of_order_is_not_a_duration(
    api: Api, older_than: str
) -> None:
    # read leniently, PT1H1H would be two hours: refused, not guessed
    answer = api.get("/v1/stuck", params={"older_than": older_than})
    assert "older_than" == assert_error(answer, 422, "invalid_input")["field"]
    assert "ISO 8601 duration" in answer.json()["message"]


@pytest.mark.parametrize("older_than", ["PT1S", "P999999999Y", "P99999999999D", "P367D"])
def test_the_threshold_is_bounded_and_says_its_bounds(api: Api, older_than: str) -> None:
    # A duration too long to hold is out of bounds too, not "not a duration"
    answer = api.get("/v1/stuck", params={"older_than": older_than})
    details = assert_error(answer, 422, "invalid_input")
    assert {"field": "older_than", "min_seconds": 60, "max_seconds": 366 * 86400} == details
    assert "out of bounds" in answer.json()["message"]
