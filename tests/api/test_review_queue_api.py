"""The review queue and the check results of a document, per role and per agency.

``GET /v1/review-queue`` lists the caller's agency's drafts submitted at their current
revision, oldest first, each with a summary of its checks; only reviewers read it.
``GET /v1/documents/{id}/checks`` shows the results of the current revision to the
agency's reading roles. Nothing runs in the background: each test runs the jobs itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import A, Api, B, assert_error
from tests.api.test_review_flow_api import (
    SIGNER_NAME,
    SIGNER_USER,
    add_signer,
    printing,
    results,
    run_jobs,
    submit,
    today,
)

OTHER_ROLES = ["clerk", "signer", "supervisor", "operator"]
READERS = ["clerk", "reviewer", "signer", "supervisor"]


def codes(api: Api) -> list[str]:
    """Every check the installation runs, in the order it runs them."""
    return [c.code for c in api.runtime.review.checks]


def letter(api: Api, number: int = 1227, *, agency: str = A, **overrides: Any) -> str:
    """A draft letter that passes every check in agency A (call ``add_signer`` first)."""
    metadata = {
        "number": number,
        "symbol": "UBND-TĐKT",
        "doc_type": "CV",
        "subject": "V/v tăng cường gửi, nhận văn bản điện tử giữa các cơ quan hành chính nhà nước",
        "place": "Thừa Thiên Huế",
        "issued_on": today(api).isoformat(),
        "signer_name": SIGNER_NAME,
        "signer_position": "PHÓ CHỦ TỊCH",
        "signer_competence": "KT. CHỦ TỊCH",
        "signer_user": SIGNER_USER,
        "urgency": 0,
        "recipients": [{"organ_id": B, "name": "Sở Nội vụ tỉnh Thừa Thiên Huế"}],
        **overrides,
    }
    # A different file per number: the same main file twice is a duplicate of its own.
    files = [("main", (f"{number}.pdf", printing(metadata), "application/pdf"))]
    return str(api.draft(agency=agency, metadata=metadata, files=files)["id"])


def queue(api: Api, agency: str = A, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/v1/review-queue", role="reviewer", agency=agency, params=params)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"items", "next_cursor"}
    return list(response.json()["items"])


def ids(api: Api, agency: str = A, **params: Any) -> list[str]:
    return [item["id"] for item in queue(api, agency, **params)]


def item(api: Api, doc_id: str) -> dict[str, Any]:
    (found,) = [i for i in queue(api) if i["id"] == doc_id]
    return found


def checks_view(api: Api, doc_id: str, role: str = "reviewer", agency: str = A) -> Any:
    response = api.get(f"/v1/documents/{doc_id}/checks", role=role, agency=agency)
    assert response.status_code == 200, response.text
    return response.json()


def fire_ok(api: Api, doc_id: str, event: str, role: str = "clerk", **kwargs: Any) -> Any:
    response = api.fire(doc_id, event, role=role, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


# -- who reads the queue -----------------------------------------------------------------


@pytest.mark.parametrize("agency", [A, B])
@pytest.mark.parametrize("role", OTHER_ROLES)
def test_only_a_reviewer_reads_the_review_queue(api: Api, role: str, agency: str) -> None:
    add_signer(api)
    submit(api, letter(api))

    details = assert_error(api.get("/v1/review-queue", role=role, agency=agency), 403, "forbidden")

    assert details["needs"] == ["reviewer"]


def test_the_review_queue_needs_a_token(api: Api) -> None:
    assert_error(api.client.get("/v1/review-queue"), 401, "unauthenticated")


# -- what is in the queue ----------------------------------------------------------------


def test_the_queue_lists_only_submitted_drafts_of_the_callers_agency(api: Api) -> None:
    # Given a submitted and an unsubmitted draft in A, and a submitted draft in B
    add_signer(api)
    submitted = letter(api, 1)
    letter(api, 2)
    theirs = api.draft(agency=B, number=3)["id"]
    fire_ok(api, theirs, "submit", agency=B)
    submit(api, submitted)

    # Then each agency's reviewer sees its own submitted draft, and only that
    assert ids(api, A) == [submitted]
    assert ids(api, B) == [theirs]
    assert queue(api, B)[0]["agency_id"] == B
    # And the other agency's documents stay invisible through the checks route too
    for role in READERS:
        response = api.get(f"/v1/documents/{submitted}/checks", role=role, agency=B)
        assert_error(response, 404, "not_found")


def test_an_empty_queue_is_an_empty_list(api: Api) -> None:
    add_signer(api)
    letter(api)
    assert queue(api) == []
    assert queue(api, B) == []


def test_a_queue_item_before_and_after_the_checks_ran(api: Api) -> None:
    add_signer(api)
    doc_id = letter(api, 1227)
    jobs = submit(api, doc_id)

    # Before the job ran: every check pending, nothing counted, not ready
    before = item(api, doc_id)
    assert {k: before[k] for k in ("agency_id", "notation", "doc_type", "state", "revision")} == {
        "agency_id": A,
        "notation": "1227/UBND-TĐKT",
        "doc_type": "CV",
        "state": "draft",
        "revision": 2,
    }
    assert before["version"] == api.version(doc_id)
    assert before["checks"] == {"counts": {}, "pending": codes(api), "ready_to_approve": False}

    # After: every check cleared, ready to approve
    run_jobs(api, jobs)
    after = item(api, doc_id)
    assert after["checks"] == {
        "counts": {"cleared": len(codes(api))},
        "pending": [],
        "ready_to_approve": True,
    }


def test_a_failed_warning_counts_until_waived_and_a_failed_blocking_check_stays(
    api: Api,
) -> None:
    # Given a letter whose subject lacks 'V/v' (a warning) and one with an unknown
    # recipient (blocking)
    add_signer(api)
    warned = letter(api, 1, subject="Tăng cường gửi, nhận văn bản điện tử")
    unknown = {"organ_id": "000.00.31.H57", "name": "UBND thành phố Huế"}
    blocked = letter(api, 2, recipients=[{"organ_id": B, "name": "Sở Nội vụ"}, unknown])
    run_jobs(api, submit(api, warned) + submit(api, blocked))
    total = len(codes(api))

    # Then neither is ready, and the counts say why
    assert item(api, warned)["checks"] == {
        "counts": {"cleared": total - 1, "failed": 1},
        "pending": [],
        "ready_to_approve": False,
    }
    assert item(api, blocked)["checks"]["counts"] == {"cleared": total - 1, "failed": 1}
    assert item(api, blocked)["checks"]["ready_to_approve"] is False

    # When the reviewer accepts the warning, only that document becomes ready
    fire_ok(
        api,
        warned,
        "waive",
        role="reviewer",
        body={"code": "format.subject_prefix", "reason": "Công văn thông báo"},
    )
    assert item(api, warned)["checks"] == {
        "counts": {"cleared": total},
        "pending": [],
        "ready_to_approve": True,
    }
    assert item(api, blocked)["checks"]["ready_to_approve"] is False


# -- leaving and returning ---------------------------------------------------------------


def test_an_edited_document_leaves_the_queue_and_returns_when_submitted_again(
    api: Api,
) -> None:
    add_signer(api)
    doc_id = letter(api)
    run_jobs(api, submit(api, doc_id))
    assert ids(api) == [doc_id]

    assert item(api, doc_id)["revision"] == 2

    fire_ok(api, doc_id, "edit", body={"fields": {"urgency": 1}})
    assert ids(api) == []

    jobs = submit(api, doc_id)
    returned = item(api, doc_id)
    # Submitted as 2, edited into 3, submitted again as 4
    assert returned["revision"] == 4
    # The results of revision 2 do not count for revision 4
    assert returned["checks"] == {"counts": {}, "pending": codes(api), "ready_to_approve": False}
    run_jobs(api, jobs)
    assert item(api, doc_id)["checks"]["ready_to_approve"] is True


def test_a_rejected_document_leaves_the_queue_and_returns_when_submitted_again(
    api: Api,
) -> None:
    add_signer(api)
    doc_id = letter(api)
    run_jobs(api, submit(api, doc_id))

    assert item(api, doc_id)["revision"] == 2

    fire_ok(api, doc_id, "reject", role="reviewer", body={"reason": "Cần xin ý kiến"})
    assert ids(api) == []

    jobs = submit(api, doc_id)
    assert ids(api) == [doc_id]
    returned = item(api, doc_id)
    # The resubmission opens revision 3: revision 2's results do not count for it
    assert returned["revision"] == 3
    assert returned["checks"] == {"counts": {}, "pending": codes(api), "ready_to_approve": False}
    run_jobs(api, jobs)
    assert item(api, doc_id)["checks"]["ready_to_approve"] is True


def test_an_approved_document_leaves_the_queue(api: Api) -> None:
    add_signer(api)
    doc_id = letter(api, 1)
    other = letter(api, 2)
    run_jobs(api, submit(api, doc_id) + submit(api, other))
    assert ids(api) == [doc_id, other]

    assert fire_ok(api, doc_id, "approve", role="reviewer")["to_state"] == "reviewed"

    assert ids(api) == [other]


def test_the_queue_is_oldest_first_by_submission(api: Api) -> None:
    # Given three drafts submitted in an order other than the order they were created in
    add_signer(api)
    first, second, third = (letter(api, n) for n in (1, 2, 3))
    for doc_id in (second, third, first):
        api.clock.advance(minutes=5)
        submit(api, doc_id)

    # Then the one waiting longest comes first
    assert ids(api) == [second, third, first]
    assert [i["notation"] for i in queue(api)] == ["02/UBND-TĐKT", "03/UBND-TĐKT", "01/UBND-TĐKT"]


def test_limit_bounds_the_queue(api: Api) -> None:
    add_signer(api)
    docs = [letter(api, n) for n in (1, 2, 3)]
    for doc_id in docs:
        api.clock.advance(minutes=1)
        submit(api, doc_id)

    assert ids(api, limit=1) == docs[:1]
    assert ids(api, limit=2) == docs[:2]
    assert ids(api, limit=200) == docs  # the server's max_page_size
    assert ids(api) == docs


@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_a_limit_out_of_bounds_is_refused(api: Api, limit: str) -> None:
    response = api.get("/v1/review-queue", role="reviewer", params={"limit": limit})
    details = assert_error(response, 422, "invalid_input")
    assert [e["field"] for e in details["errors"]] == ["query.limit"]


def test_a_limit_over_the_page_size_is_refused(api: Api) -> None:
    response = api.get("/v1/review-queue", role="reviewer", params={"limit": "201"})
    assert {"field": "limit", "max": 200} == assert_error(response, 422, "invalid_input")


# -- the checks of a document ------------------------------------------------------------


@pytest.mark.parametrize("role", READERS)
def test_the_agencys_reading_roles_read_the_checks(api: Api, role: str) -> None:
    add_signer(api)
    doc_id = letter(api)
    run_jobs(api, submit(api, doc_id))

    view = checks_view(api, doc_id, role=role)

    assert set(view) == {
        "document_id",
        "version",
        "revision",
        "submitted_revision",
        "results",
        "pending",
        "awaiting",
        "cleared",
    }
    assert (view["document_id"], view["revision"], view["submitted_revision"]) == (doc_id, 2, 2)
    assert view["version"] == api.version(doc_id)
    assert (view["pending"], view["awaiting"], view["cleared"]) == ([], None, True)
    assert sorted(r["code"] for r in view["results"]) == sorted(codes(api))


def test_an_operator_does_not_read_the_checks(api: Api) -> None:
    add_signer(api)
    doc_id = letter(api)
    submit(api, doc_id)

    response = api.get(f"/v1/documents/{doc_id}/checks", role="operator")

    assert assert_error(response, 403, "forbidden")["needs"] == sorted(READERS)


@pytest.mark.parametrize("role", READERS)
def test_another_agencys_checks_are_not_found(api: Api, role: str) -> None:
    add_signer(api)
    doc_id = letter(api)
    run_jobs(api, submit(api, doc_id))

    response = api.get(f"/v1/documents/{doc_id}/checks", role=role, agency=B)

    assert assert_error(response, 404, "not_found") == {"document_id": doc_id}


def test_the_checks_of_an_unknown_document_are_not_found(api: Api) -> None:
    response = api.get("/v1/documents/no-such-document/checks", role="reviewer")
    assert_error(response, 404, "not_found")


def test_a_draft_never_submitted_has_every_check_pending(api: Api) -> None:
    add_signer(api)
    doc_id = letter(api)

    view = checks_view(api, doc_id, role="clerk")

    assert (view["revision"], view["submitted_revision"]) == (1, None)
    assert (view["results"], view["pending"], view["cleared"]) == ([], codes(api), False)
    # and what they wait for is said: its submission (no check runs before)
    assert view["awaiting"] == "submission"


def test_each_result_carries_its_code_severity_status_and_bilingual_message(api: Api) -> None:
    # Given a letter with a recipient missing from the directory
    add_signer(api)
    unknown = {"organ_id": "000.00.31.H57", "name": "UBND thành phố Huế"}
    doc_id = letter(api, recipients=[{"organ_id": B, "name": "Sở Nội vụ"}, unknown])
    jobs = submit(api, doc_id)
    pending = checks_view(api, doc_id)
    assert (pending["results"], pending["pending"], pending["cleared"]) == ([], codes(api), False)
    assert pending["awaiting"] == "checks"  # submitted: under way
    run_jobs(api, jobs)

    view = checks_view(api, doc_id)

    assert (view["pending"], view["cleared"], view["awaiting"]) == ([], False, None)
    severities = {c.code: c.severity for c in api.runtime.review.checks}
    for result in view["results"]:
        assert result["severity"] == severities[result["code"]]
        assert result["revision"] == 2
        assert result["status"] in {"passed", "failed"}
        assert result["cleared"] is (result["status"] == "passed")
        assert set(result["message"]) == {"vi", "en"}
        assert all(isinstance(m, str) and m for m in result["message"].values())
        assert isinstance(result["details"], dict)
        assert result["checked_at"]
        assert (result["waived_by"], result["waived_at"], result["waive_reason"]) == (
            None,
            None,
            None,
        )
    by_code = {r["code"]: r for r in view["results"]}
    agencies = by_code["metadata.agencies"]
    assert (agencies["severity"], agencies["status"], agencies["cleared"]) == (
        "blocking",
        "failed",
        False,
    )
    assert agencies["details"]["unknown"] == [unknown["organ_id"]]
    assert agencies["message"]["vi"] != agencies["message"]["en"]


def test_after_an_edit_the_checks_are_those_of_the_new_revision(api: Api) -> None:
    add_signer(api)
    doc_id = letter(api)
    run_jobs(api, submit(api, doc_id))
    assert checks_view(api, doc_id)["cleared"] is True

    fire_ok(api, doc_id, "edit", body={"fields": {"urgency": 1}})

    # Then revision 3 has every check pending: the submitted revision 2's results are not shown
    view = checks_view(api, doc_id, role="clerk")
    assert (view["revision"], view["submitted_revision"]) == (3, 2)
    assert (view["results"], view["pending"], view["cleared"]) == ([], codes(api), False)
    assert view["awaiting"] == "submission"  # edited: nothing runs until it is submitted

    # And once submitted (opening revision 4) and checked, the results are revision 4's
    run_jobs(api, submit(api, doc_id))
    view = checks_view(api, doc_id)
    assert (view["revision"], view["submitted_revision"]) == (4, 4)
    assert {r["revision"] for r in view["results"]} == {4}
    assert (view["pending"], view["cleared"]) == ([], True)


def test_a_waived_result_shows_who_waived_it_and_why(api: Api) -> None:
    add_signer(api)
    doc_id = letter(api, subject="Tăng cường gửi, nhận văn bản điện tử")
    run_jobs(api, submit(api, doc_id))
    assert checks_view(api, doc_id)["cleared"] is False
    reason = "Công văn thông báo, không cần 'V/v'"
    api.clock.advance(minutes=3)

    fire_ok(
        api,
        doc_id,
        "waive",
        role="reviewer",
        body={"code": "format.subject_prefix", "reason": reason},
    )

    for role in READERS:
        view = checks_view(api, doc_id, role=role)
        assert view["cleared"] is True
        waived = {r["code"]: r for r in view["results"]}["format.subject_prefix"]
        assert (waived["severity"], waived["status"], waived["cleared"]) == (
            "warning",
            "failed",
            True,
        )
        assert (waived["waived_by"], waived["waive_reason"]) == (f"reviewer@{A}", reason)
        assert waived["waived_at"] == api.clock().isoformat()
    others = [r for c, r in results(api, doc_id).items() if c != "format.subject_prefix"]
    assert all(r["waived_by"] is None for r in others)


def test_a_document_rejected_after_approval_returns_only_when_submitted_again(
    api: Api,
) -> None:
    add_signer(api)
    doc_id = letter(api)
    run_jobs(api, submit(api, doc_id))
    fire_ok(api, doc_id, "approve", role="reviewer")
    assert ids(api) == []

    # When the signer returns it, it is a draft again but nobody asked for a review yet
    returned = fire_ok(api, doc_id, "reject", role="signer", body={"reason": "Sửa nơi nhận"})
    assert (returned["from_state"], returned["to_state"]) == ("reviewed", "draft")
    assert ids(api) == []

    submit(api, doc_id)
    assert ids(api) == [doc_id]
    # As revision 3, with none of the checks that cleared revision 2 for approval
    back = item(api, doc_id)
    assert back["revision"] == 3
    assert back["checks"] == {"counts": {}, "pending": codes(api), "ready_to_approve": False}


def test_a_resubmitted_revision_has_every_check_pending_until_the_job_runs(api: Api) -> None:
    add_signer(api)
    doc_id = letter(api)
    run_jobs(api, submit(api, doc_id))
    fire_ok(api, doc_id, "reject", role="reviewer", body={"reason": "Cần xin ý kiến"})

    jobs = submit(api, doc_id)

    # Revision 2 cleared every check, yet none of its results count for revision 3
    assert item(api, doc_id)["revision"] == 3
    assert item(api, doc_id)["checks"] == {
        "counts": {},
        "pending": codes(api),
        "ready_to_approve": False,
    }
    view = checks_view(api, doc_id)
    assert (view["revision"], view["submitted_revision"]) == (3, 3)
    assert (view["results"], view["pending"], view["cleared"]) == ([], codes(api), False)
    approve = api.fire(doc_id, "approve", role="reviewer")
    details = assert_error(approve, 409, "guard_failed")
    assert details["failed"] == ["checks_cleared"]
    assert details["reasons"]["checks_cleared"].startswith("checks not finished")

    # Until the job runs again: then the results are revision 3's, and it is ready
    run_jobs(api, jobs)
    view = checks_view(api, doc_id)
    assert {r["revision"] for r in view["results"]} == {3}
    assert (view["pending"], view["cleared"]) == ([], True)
    assert item(api, doc_id)["checks"]["ready_to_approve"] is True
