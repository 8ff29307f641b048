"""Review over HTTP: submit runs the checks as a job, approve needs them cleared, waive.

A clean letter passes every check: agency A's abbreviation heads its symbol, the date is
today (in Vietnam), the signer is a user of A with the signer role, the same full name and
a signing authority, the one recipient is in the directory and the main file is a real PDF.
Nothing runs in the background: each test runs the queued jobs itself.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from congvan.states.policy import written_notation
from congvan.storage.authorities import AuthorityRow
from congvan.storage.ids import new_id
from congvan.storage.unit_of_work import UnitOfWork
from congvan.workflow import directory
from congvan.workflow.letters import reissued_pdf
from congvan.workflow.settings import Settings
from tests.api.conftest import LETTER, A, Api, B, assert_error

VIETNAM = timezone(timedelta(hours=7))
SIGNER_USER = "nvphuong"
SIGNER_NAME = "Nguyễn Văn Phương"
PDF = "application/pdf"


def today(api: Api) -> date:
    """The date in Vietnam by the app's clock: what the checks call today."""
    return api.clock().astimezone(VIETNAM).date()


def grant_signer(uow: UnitOfWork, at: datetime, valid_until: str | None = None) -> None:
    """Authority for the letter's signer to sign every type for A (KT. CHỦ TỊCH) since 2020."""
    uow.authorities.add(
        AuthorityRow(
            id=new_id(),
            agency_id=A,
            signer=SIGNER_USER,
            doc_types="*",
            competence="KT. CHỦ TỊCH",
            valid_from="2020-01-01",
            valid_until=valid_until,
            created_by="test",
            created_at=at,
        )
    )


def add_signer(api: Api) -> None:
    """The letter's signer: a user of A with the signer role and authority to sign.

    Once per app; ``api.auth(SIGNER_USER)`` then carries the signer's own token.
    """
    if SIGNER_USER in api.tokens[A]:
        return
    with api.runtime.uow() as uow:
        user_id = directory.ensure_user(
            uow,
            A,
            SIGNER_USER,
            ["signer"],
            api.clock(),
            full_name=SIGNER_NAME,
            position="PHÓ CHỦ TỊCH",
        )
        grant_signer(uow, api.clock())
        token = directory.create_token(uow, user_id, api.clock()).token
        uow.commit()
    api.users[A][SIGNER_USER] = user_id
    api.tokens[A][SIGNER_USER] = token


def clean_metadata(api: Api, **overrides: Any) -> dict[str, Any]:
    """The metadata of letter 1227/UBND-TĐKT that passes every check, dated today and
    signed by the letter's signer (added to the app)."""
    add_signer(api)
    return {
        **LETTER,
        "issued_on": today(api).isoformat(),
        "signer_name": SIGNER_NAME,
        "signer_user": SIGNER_USER,
        "recipients": [{"organ_id": B, "name": "Sở Nội vụ tỉnh Thừa Thiên Huế"}],
        **overrides,
    }


_numbers: dict[int, Iterator[int]] = {}


def next_number(api: Api, first: int) -> int:
    """A number from ``first`` on that no letter of this app took from here: numbers
    repeat from app to app, so their letters' PDFs (rendered once per notation) serve
    test after test."""
    return next(_numbers.setdefault(id(api.runtime), itertools.count(first)))


def clean_letter(api: Api, **overrides: Any) -> str:
    """A draft of letter 1227/UBND-TĐKT that passes every check; returns its id."""
    metadata = clean_metadata(api, **overrides)
    files = [("main", ("1227-UBND-TDKT.pdf", printing(metadata), PDF))]
    return str(api.draft(metadata=metadata, files=files)["id"])


def printing(metadata: dict[str, Any]) -> bytes:
    """Letter 1227 printing what ``metadata`` says: its notation, date, subject and signer
    (what it leaves out or cannot be printed, as letter 1227 prints it)."""
    number = metadata.get("number")
    return _printing(
        str(metadata.get("issued_on") or ""),
        written_notation(metadata) if isinstance(number, int) else "1227/UBND-TĐKT",
        str(metadata.get("subject") or LETTER["subject"]),
        str(metadata.get("signer_name") or SIGNER_NAME),
    )


@functools.cache
def _printing(issued_on: str, notation: str, subject: str, signer: str) -> bytes:
    try:
        day = date.fromisoformat(issued_on)
    except ValueError:
        day = date(2021, 2, 6)
    return reissued_pdf(day, signer, notation=notation, subject=subject)


def submit(api: Api, doc_id: str) -> list[str]:
    """A clerk submits the draft; returns the jobs the answer names."""
    response = api.fire(doc_id, "submit")
    assert response.status_code == 200, response.text
    return list(response.json()["jobs"])


def run_jobs(api: Api, job_ids: list[str]) -> None:
    """Relay the queued jobs to the broker, then run each one here, to completion."""
    api.runtime.relay.drain()
    for job_id in job_ids:
        assert api.runtime.runner.run(job_id) == "done", job_id


def submit_and_check(api: Api, doc_id: str) -> dict[str, Any]:
    """Submit, run the checks and return their results by code."""
    run_jobs(api, submit(api, doc_id))
    return results(api, doc_id)


def results(api: Api, doc_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/documents/{doc_id}/checks", role="reviewer")
    assert response.status_code == 200, response.text
    return {r["code"]: r for r in response.json()["results"]}


def failed(checks: dict[str, Any]) -> set[str]:
    return {code for code, r in checks.items() if r["status"] != "passed"}


def history(api: Api, doc_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/documents/{doc_id}/history", role="reviewer")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def approve(api: Api, doc_id: str) -> Any:
    return api.fire(doc_id, "approve", role="reviewer")


def refused_approval(api: Api, doc_id: str) -> str:
    """Approve is refused by checks_cleared; returns the guard's reason."""
    version = api.version(doc_id)
    details = assert_error(approve(api, doc_id), 409, "guard_failed")
    # (a letter dated in another year fails dated_this_year as well)
    assert details["failed"][0] == "checks_cleared", details
    assert api.version(doc_id) == version
    assert api.get(f"/v1/documents/{doc_id}").json()["state"] == "draft"
    return str(details["reasons"]["checks_cleared"])


# -- submit ------------------------------------------------------------------------------


def test_a_clerk_submits_and_the_answer_names_one_review_job(api: Api) -> None:
    doc_id = clean_letter(api)

    response = api.fire(doc_id, "submit", if_match='"1"')

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from_state"], body["to_state"], body["version"]) == ("draft", "draft", 2)
    assert len(body["jobs"]) == 1
    doc = api.get(f"/v1/documents/{doc_id}").json()
    assert [(j["id"], j["action"]) for j in doc["jobs"]] == [(body["jobs"][0], "run_review_checks")]
    # The draft was created as revision 1; submitting opened revision 2 and sent it
    assert (doc["revision"], doc["submitted_revision"]) == (2, 2)
    entry = history(api, doc_id)[-1]
    assert (entry["event"], entry["actor"], entry["payload"]) == (
        "submit",
        f"clerk@{A}",
        {"revision": 2},
    )
    # And until the job has run, the checks are pending and approve waits for them
    assert refused_approval(api, doc_id).startswith("checks not finished")


@pytest.mark.parametrize("role", ["reviewer", "signer", "supervisor", "operator"])
def test_only_a_clerk_submits(api: Api, role: str) -> None:
    doc_id = clean_letter(api)
    details = assert_error(api.fire(doc_id, "submit", role=role), 403, "forbidden")
    assert details["needs"] == ["clerk"]
    assert api.version(doc_id) == 1


# -- approve -----------------------------------------------------------------------------


def test_a_clean_letter_passes_every_check_and_is_approved(api_any_db: Api) -> None:
    api = api_any_db
    doc_id = clean_letter(api)
    assert refused_approval(api, doc_id) == "the current revision was not submitted for review"

    checks = submit_and_check(api, doc_id)

    assert failed(checks) == set(), json.dumps(checks, ensure_ascii=False, indent=1)
    assert {r["revision"] for r in checks.values()} == {2}
    view = api.get(f"/v1/documents/{doc_id}/checks", role="reviewer").json()
    assert (view["revision"], view["submitted_revision"]) == (2, 2)
    assert (view["pending"], view["cleared"]) == ([], True)
    response = approve(api, doc_id)
    assert response.status_code == 200, response.text
    assert (response.json()["from_state"], response.json()["to_state"]) == ("draft", "reviewed")
    entry = history(api, doc_id)[-1]
    assert (entry["event"], entry["actor"]) == ("approve", f"reviewer@{A}")
    # And the named signer, with no certificate here, is told to upload a signature
    version = api.version(doc_id)
    refused = api.fire(doc_id, "sign", role=SIGNER_USER)
    details = assert_error(refused, 422, "invalid_input")
    assert (details["field"], details["signer"]) == ("cms", SIGNER_USER)
    after = api.get(f"/v1/documents/{doc_id}").json()
    assert (after["state"], after["version"]) == ("reviewed", version)
    assert history(api, doc_id)[-1]["event"] == "approve"
    assert_error(api.get(f"/v1/documents/{doc_id}/signature"), 404, "not_found")


def test_approve_is_refused_while_a_blocking_check_fails_until_an_edit_fixes_it(
    api: Api,
) -> None:
    # Given a letter with a recipient missing from the directory
    unknown = {"organ_id": "000.00.31.H57", "name": "UBND thành phố Huế"}
    doc_id = clean_letter(api, recipients=[{"organ_id": B, "name": "Sở Nội vụ"}, unknown])
    checks = submit_and_check(api, doc_id)
    assert failed(checks) == {"metadata.agencies"}
    assert checks["metadata.agencies"]["details"]["unknown"] == [unknown["organ_id"]]

    # Then approve is refused, naming the check
    assert refused_approval(api, doc_id) == "checks not cleared: metadata.agencies"

    # And a blocking check cannot be waived
    response = api.fire(
        doc_id, "waive", role="reviewer", body={"code": "metadata.agencies", "reason": "Gửi tay"}
    )
    details = assert_error(response, 422, "invalid_input")
    assert (details["code"], details["severity"]) == ("metadata.agencies", "blocking")
    assert results(api, doc_id)["metadata.agencies"]["waived_by"] is None

    # When the clerk fixes the recipients and submits the new revision
    fixed = api.fire(doc_id, "edit", body={"recipients": [{"organ_id": B, "name": "Sở Nội vụ"}]})
    assert fixed.status_code == 200, fixed.text
    assert refused_approval(api, doc_id) == "the current revision was not submitted for review"
    assert failed(submit_and_check(api, doc_id)) == set()

    # Then it is approved
    response = approve(api, doc_id)
    assert response.status_code == 200, response.text
    assert response.json()["to_state"] == "reviewed"


# -- waive -------------------------------------------------------------------------------


@pytest.mark.parametrize("issued_on", ["2025-12-30", "2025-01-05", "2027-01-04"])
def test_a_letter_dated_in_another_year_cannot_pass_review(api: Api, issued_on: str) -> None:
    # Given a letter reviewed in 2026 but dated in another year (Decree 30 Art. 15: a
    # document is dated and numbered in the year it is issued; that series is not open)
    doc_id = clean_letter(api, issued_on=issued_on)

    # Then the year check fails, blocking: approve is refused and no waiver takes it
    checks = submit_and_check(api, doc_id)
    assert "format.issue_year" in failed(checks)
    assert checks["format.issue_year"]["severity"] == "blocking"
    details = checks["format.issue_year"]["details"]
    assert (details["field"], details["value"], details["year"]) == ("issued_on", issued_on, 2026)
    assert "checks not cleared" in refused_approval(api, doc_id)
    response = api.fire(
        doc_id, "waive", role="reviewer", body={"code": "format.issue_year", "reason": "Ký muộn"}
    )
    assert_error(response, 422, "invalid_input")


def test_a_reviewer_waives_a_failed_warning_with_a_reason_and_then_approves(
    api_any_db: Api,
) -> None:
    # Given a letter dated a week ago, past the next working day after it: only the
    # timeliness warning fails (three days would not do: signed on a Friday, a letter
    # may still go out on Monday). Mid-January: a week back is still this year.
    api = api_any_db
    api.clock.advance(days=10)
    doc_id = clean_letter(api, issued_on=(today(api) - timedelta(days=7)).isoformat())
    checks = submit_and_check(api, doc_id)
    assert failed(checks) == {"format.timeliness"}
    assert checks["format.timeliness"]["severity"] == "warning"
    assert checks["format.timeliness"]["details"]["latest"] < today(api).isoformat()
    assert refused_approval(api, doc_id) == "checks not cleared: format.timeliness"

    # When a reviewer accepts it, saying why
    reason = "Văn bản ký ngày thứ Sáu, phát hành sau kỳ nghỉ"
    version = api.version(doc_id)
    response = api.fire(
        doc_id,
        "waive",
        role="reviewer",
        body={"code": "format.timeliness", "reason": reason},
        if_match=f'"{version}"',
    )

    # Then the waiver is recorded in the trail with the reviewer's identity
    assert response.status_code == 200, response.text
    assert (response.json()["to_state"], response.json()["version"]) == ("draft", version + 1)
    assert response.json()["jobs"] == []
    entry = history(api, doc_id)[-1]
    assert (entry["event"], entry["actor"], entry["from_state"], entry["to_state"]) == (
        "waive",
        f"reviewer@{A}",
        "draft",
        "draft",
    )
    assert entry["payload"] == {"code": "format.timeliness", "revision": 2, "reason": reason}
    # And on the check's result
    waived = results(api, doc_id)["format.timeliness"]
    assert (waived["status"], waived["cleared"]) == ("failed", True)
    assert (waived["waived_by"], waived["waive_reason"]) == (f"reviewer@{A}", reason)
    assert waived["waived_at"] is not None

    # And with every check cleared, approve succeeds
    approved = approve(api, doc_id)
    assert approved.status_code == 200, approved.text
    assert approved.json()["to_state"] == "reviewed"


@pytest.mark.parametrize("role", ["clerk", "signer", "supervisor", "operator"])
def test_only_a_reviewer_waives(api: Api, role: str) -> None:
    doc_id = clean_letter(api, subject="Tăng cường gửi, nhận văn bản điện tử")
    assert failed(submit_and_check(api, doc_id)) == {"format.subject_prefix"}
    version = api.version(doc_id)

    response = api.fire(
        doc_id, "waive", role=role, body={"code": "format.subject_prefix", "reason": "Đúng mẫu"}
    )

    details = assert_error(response, 403, "forbidden")
    assert (details["event"], details["needs"]) == ("waive", ["reviewer"])
    assert api.version(doc_id) == version
    assert results(api, doc_id)["format.subject_prefix"]["waived_by"] is None
    assert refused_approval(api, doc_id) == "checks not cleared: format.subject_prefix"


def test_a_check_waived_once_is_not_waived_again_by_another(api: Api) -> None:
    # Given a failed warning a reviewer accepted
    doc_id = clean_letter(api, subject="Tăng cường gửi, nhận văn bản điện tử")
    assert failed(submit_and_check(api, doc_id)) == {"format.subject_prefix"}
    body = {"code": "format.subject_prefix", "reason": "Đúng mẫu của tỉnh"}
    assert api.fire(doc_id, "waive", role="reviewer", body=body).status_code == 200
    version = api.version(doc_id)

    # When it is waived again, with another reason
    again = api.fire(doc_id, "waive", role="reviewer", body={**body, "reason": "Lý do khác"})

    # Then it is refused saying who accepted it, and the first waiver stands
    details = assert_error(again, 409, "conflict")
    assert details["code"] == "format.subject_prefix"
    assert details["waived_by"] == f"reviewer@{A}"
    assert api.version(doc_id) == version
    waived = results(api, doc_id)["format.subject_prefix"]
    assert waived["waive_reason"] == "Đúng mẫu của tỉnh"


@pytest.mark.parametrize(
    "body", [{"code": "format.subject_prefix"}, {"code": "format.subject_prefix", "reason": "  "}]
)
def test_a_waiver_needs_a_reason(api: Api, body: dict[str, Any]) -> None:
    doc_id = clean_letter(api, subject="Tăng cường gửi, nhận văn bản điện tử")
    submit_and_check(api, doc_id)
    version = api.version(doc_id)

    details = assert_error(
        api.fire(doc_id, "waive", role="reviewer", body=body), 422, "invalid_input"
    )

    assert details == {"event": "waive", "field": "reason"}
    assert api.version(doc_id) == version
    assert results(api, doc_id)["format.subject_prefix"]["waived_by"] is None


def test_a_passed_check_or_an_unknown_one_is_not_waived(api: Api) -> None:
    doc_id = clean_letter(api)
    assert failed(submit_and_check(api, doc_id)) == set()
    version = api.version(doc_id)

    passed = api.fire(
        doc_id, "waive", role="reviewer", body={"code": "format.timeliness", "reason": "x"}
    )
    details = assert_error(passed, 422, "invalid_input")
    assert (details["code"], details["status"]) == ("format.timeliness", "passed")
    unknown = api.fire(
        doc_id, "waive", role="reviewer", body={"code": "format.nope", "reason": "x"}
    )
    # A wrong check code is a mistake in the body (422), never "document not found"
    details = assert_error(unknown, 422, "invalid_input")
    assert (details["field"], details["code"]) == ("code", "format.nope")
    assert "format.timeliness" in details["known"]
    assert api.version(doc_id) == version


# -- leaving review ----------------------------------------------------------------------


def test_an_edit_after_submission_takes_the_document_out_of_review(api: Api) -> None:
    # Given a submitted letter whose checks all passed
    doc_id = clean_letter(api)
    assert failed(submit_and_check(api, doc_id)) == set()
    queue = api.get("/v1/review-queue", role="reviewer").json()["items"]
    assert [item["id"] for item in queue] == [doc_id]

    # When the clerk edits it
    edited = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}})
    assert edited.status_code == 200, edited.text

    # Then it is no longer under review: the results were for the revision before
    # (created as 1, submitted as 2, edited into 3)
    assert refused_approval(api, doc_id) == "the current revision was not submitted for review"
    doc = api.get(f"/v1/documents/{doc_id}").json()
    assert (doc["revision"], doc["submitted_revision"]) == (3, 2)
    assert results(api, doc_id) == {}
    assert api.get("/v1/review-queue", role="reviewer").json()["items"] == []


def test_a_rejected_document_leaves_review_until_submitted_again(api: Api) -> None:
    doc_id = clean_letter(api)
    assert failed(submit_and_check(api, doc_id)) == set()

    rejected = api.fire(doc_id, "reject", role="reviewer", body={"reason": "Cần xin ý kiến"})
    assert rejected.status_code == 200, rejected.text

    assert refused_approval(api, doc_id) == "the current revision was not submitted for review"
    doc = api.get(f"/v1/documents/{doc_id}").json()
    assert (doc["revision"], doc["submitted_revision"]) == (2, None)

    # Submitting again opens revision 3 and puts it back with every check pending:
    # revision 2's results do not count for it, although nothing changed in between
    jobs = submit(api, doc_id)
    doc = api.get(f"/v1/documents/{doc_id}").json()
    assert (doc["revision"], doc["submitted_revision"]) == (3, 3)
    assert results(api, doc_id) == {}
    assert refused_approval(api, doc_id).startswith("checks not finished")

    # And once the checks ran again, the results are revision 3's and approve succeeds
    run_jobs(api, jobs)
    checks = results(api, doc_id)
    assert failed(checks) == set()
    assert {r["revision"] for r in checks.values()} == {3}
    assert approve(api, doc_id).status_code == 200


def offered(api: Api, doc_id: str) -> set[str]:
    view = api.get(f"/v1/documents/{doc_id}").json()
    return set(view["allowed_events"]) & {"approve", "waive"}


def test_approve_and_waive_are_offered_only_when_the_engine_takes_them(api: Api) -> None:
    # Given a letter dated a week ago (its timeliness warning fails), submitted: its
    # checks not run yet, then run
    api.clock.advance(days=10)
    doc_id = clean_letter(api, issued_on=(today(api) - timedelta(days=7)).isoformat())
    jobs = submit(api, doc_id)

    # Then while the checks run, neither approve nor waive is offered (both refused)
    assert offered(api, doc_id) == set()
    assert refused_approval(api, doc_id).startswith("checks not finished")

    # When they ran: the failed warning may be accepted, the letter not approved yet
    run_jobs(api, jobs)
    assert offered(api, doc_id) == {"waive"}
    assert refused_approval(api, doc_id) == "checks not cleared: format.timeliness"

    # When a reviewer accepts it: approve is offered, and nothing is left to accept
    waived = api.fire(
        doc_id, "waive", role="reviewer", body={"code": "format.timeliness", "reason": "Đã rõ"}
    )
    assert waived.status_code == 200, waived.text
    assert offered(api, doc_id) == {"approve"}
    # (a warning that passed says so, not that only a failed warning is accepted)
    passed = api.fire(
        doc_id, "waive", role="reviewer", body={"code": "format.secrecy", "reason": "x"}
    )
    assert "did not fail" in passed.json()["message"]

    # And once approved then returned, its checks no longer say it may be approved
    assert approve(api, doc_id).status_code == 200
    rejected = api.fire(doc_id, "reject", role="reviewer", body={"reason": "Cần xin ý kiến"})
    assert rejected.status_code == 200, rejected.text
    checks = api.get(f"/v1/documents/{doc_id}/checks", role="reviewer").json()
    assert (checks["submitted_revision"], checks["cleared"]) == (None, False)
    assert offered(api, doc_id) == set()


# -- time rules: the working calendar and the morning's end --------------------------------

# The app's clock starts on Monday 05/01/2026 at 15:00 in Vietnam; Friday 02/01/2026 is
# the working day before it (Thursday 01/01 is New Year's Day).
FRIDAY = "2026-01-02"


def timeliness(api: Api, **overrides: Any) -> dict[str, Any]:
    checks = submit_and_check(api, clean_letter(api, **overrides))
    return dict(checks["format.timeliness"])


def test_a_letter_signed_on_friday_is_late_on_monday_afternoon(api: Api) -> None:
    # Given a letter dated Friday, reviewed on Monday at 15:00 (Vietnam)
    # When the checks run
    result = timeliness(api, issued_on=FRIDAY)

    # Then the morning of the next working day has passed: noon on Monday
    assert "failed" == result["status"]
    assert "2026-01-05T12:00:00+07:00" == result["details"]["latest"]


@pytest.mark.parametrize(
    ("settings", "latest"),
    [
        ({"send_cutoff": "16:00"}, "2026-01-05T16:00:00+07:00"),
        ({"extra_days_off": ["2026-01-05"]}, "2026-01-06T12:00:00+07:00"),
    ],
    ids=["a later cut-off", "a day off announced after the package"],
)
def test_the_operators_time_rules_apply(
    make_api: Any, settings: dict[str, Any], latest: str
) -> None:
    # Given the operator's cut-off or an extra day off
    api = make_api(**settings)

    # When a letter dated Friday is checked on Monday afternoon
    result = timeliness(api, issued_on=FRIDAY)

    # Then the deadline moves with them
    assert ("passed", latest) == (result["status"], result["details"]["latest"])


def test_a_make_up_saturday_the_operator_adds_is_the_next_working_day(make_api: Any) -> None:
    api = make_api(extra_working_days=["2026-01-03"])

    result = timeliness(api, issued_on=FRIDAY)

    assert ("failed", "2026-01-03T12:00:00+07:00") == (
        result["status"],
        result["details"]["latest"],
    )


def test_an_urgent_letter_dated_the_last_working_day_is_late(api: Api) -> None:
    # Given a khẩn letter dated Friday: it was due right after signing, that day
    result = timeliness(api, issued_on=FRIDAY, urgency=1)

    assert ("failed", 1) == (result["status"], result["details"]["urgency"])


def test_a_day_both_off_and_working_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="2026-01-05"):
        Settings(extra_days_off=["2026-01-05"], extra_working_days=["2026-01-05"])


# -- the signer block ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("competence", "status"),
    [
        ("TM. ỦY BAN NHÂN DÂN", "failed"),
        ("TM. ỦY BAN NHÂN DÂN\nKT. CHỦ TỊCH", "passed"),
        ("KT. GIÁM ĐỐC", "failed"),
    ],
    ids=["TM. without KT.", "TM. then KT.", "KT. for another head"],
)
def test_a_deputy_signs_for_the_head_only(api: Api, competence: str, status: str) -> None:
    # Given a letter the deputy chairman (PHÓ CHỦ TỊCH) signs with this competence
    doc_id = clean_letter(api, signer_competence=competence)

    # When the checks run
    result = submit_and_check(api, doc_id)["format.signer_block"]

    # Then only KT. for his own head passes
    assert status == result["status"], result


# -- the written number ----------------------------------------------------------------------


def test_a_number_below_ten_is_shown_with_a_leading_zero(api: Api) -> None:
    # Given letter number 5 of the year
    doc_id = clean_letter(api, number=5)

    # When it is read and checked
    shown = api.get(f"/v1/documents/{doc_id}").json()["notation"]
    checked = submit_and_check(api, doc_id)["format.number_symbol"]

    # Then it is written 05/UBND-TĐKT, and the signed metadata keeps the number 5
    assert ("05/UBND-TĐKT", "05/UBND-TĐKT") == (shown, checked["details"]["notation"])
    manifest = api.get(f"/v1/documents/{doc_id}/manifest", role="reviewer")
    assert 200 == manifest.status_code, manifest.text
    assert 5 == json.loads(manifest.content)["number"]


def test_a_letter_printing_another_number_than_its_metadata_is_flagged_until_they_agree(
    api: Api,
) -> None:
    # Given a draft whose metadata says 1228 while its PDF prints 1227
    metadata = clean_metadata(api, number=1228)
    files = [("main", ("1227-UBND-TDKT.pdf", printing({**metadata, "number": 1227}), PDF))]
    doc_id = str(api.draft(metadata=metadata, files=files)["id"])

    # When it is submitted and checked
    checks = submit_and_check(api, doc_id)

    # Then format.printed fails as a warning naming the difference, and approve waits
    assert failed(checks) == {"format.printed"}
    printed = checks["format.printed"]
    assert printed["severity"] == "warning"
    assert printed["details"]["differences"] == [
        {"field": "number", "printed": "1227/UBND-TĐKT", "document": "1228/UBND-TĐKT"}
    ]
    for said in printed["message"].values():
        assert "1227/UBND-TĐKT" in said and "1228/UBND-TĐKT" in said
    assert refused_approval(api, doc_id) == "checks not cleared: format.printed"

    # And once the clerk corrects the number to the one printed, it passes and is approved
    edited = api.fire(doc_id, "edit", body={"fields": {"number": 1227}})
    assert edited.status_code == 200, edited.text
    assert failed(submit_and_check(api, doc_id)) == set()
    assert approve(api, doc_id).status_code == 200


def test_approve_takes_the_version_the_checks_were_read_at(api: Api) -> None:
    # Given a letter whose warning a reviewer read, then waived
    doc_id = clean_letter(api, subject="Tăng cường gửi, nhận văn bản điện tử")
    run_jobs(api, submit(api, doc_id))
    read = api.get(f"/v1/documents/{doc_id}/checks", role="reviewer")
    assert read.json()["version"] == api.version(doc_id)
    body = {"code": "format.subject_prefix", "reason": "Đúng mẫu"}
    assert api.fire(doc_id, "waive", role="reviewer", body=body).status_code == 200

    # When it is approved on the checks as read before the waiver
    stale = api.fire(doc_id, "approve", role="reviewer", if_match=read.headers["ETag"])

    # Then that is a version conflict: the waiver came since
    assert_error(stale, 409, "version_conflict")

    # And the checks read again name the version (and ETag) approve takes
    again = api.get(f"/v1/documents/{doc_id}/checks", role="reviewer")
    assert again.json()["version"] == read.json()["version"] + 1
    assert again.headers["ETag"] != read.headers["ETag"]
    unchanged = api.client.get(
        f"/v1/documents/{doc_id}/checks",
        headers={**api.auth("reviewer"), "If-None-Match": again.headers["ETag"]},
    )
    assert unchanged.status_code == 304
    approved = api.fire(doc_id, "approve", role="reviewer", if_match=again.headers["ETag"])
    assert approved.status_code == 200, approved.text
