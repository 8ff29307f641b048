"""The timeliness of a signing, judged when it is signed, shown with the document.

Decision 28/2018 Art. 6 runs from the signing: send on the signing day, at the latest the
next working morning. A letter whose own date's deadline has passed when it is signed is
late; one signed more working days after its approval than the operator allows
(``CONGVAN_SIGN_WITHIN_WORKING_DAYS``, 1 by default) waited too long. GET document and
``congvan documents show`` show both, with the moments they rest on. The app's clock
starts on Monday 05/01/2026 at 15:00 in Vietnam.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from congvan.workflow.cli import main
from congvan.workflow.settings import Settings
from tests.api.conftest import A, Api, MakeApi
from tests.api.test_review_flow_api import approve, clean_letter, failed, submit_and_check
from tests.api.test_signing_api import issue, reviewed_letter, sign, signing_api

_urgent = iter(range(1700, 1800))  # numbers of their own


def signed_after(make_api: MakeApi, days: int, **settings: Any) -> tuple[Api, str]:
    """A letter dated and approved on Monday, signed ``days`` later; returns (api, id)."""
    api = signing_api(make_api, **settings)
    issue(api)
    doc_id = reviewed_letter(api)
    api.clock.advance(days=days)
    response = sign(api, doc_id)
    assert 200 == response.status_code, response.text
    return api, doc_id


def timeliness(api: Api, doc_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/documents/{doc_id}")
    assert 200 == response.status_code, response.text
    return dict(response.json()["timeliness"])


def test_a_letter_signed_the_day_it_was_approved_is_timely(make_api: MakeApi) -> None:
    api, doc_id = signed_after(make_api, 0)

    assert {
        "signed_at": "2026-01-05T15:00:00+07:00",
        "send_by": "2026-01-06T12:00:00+07:00",
        "reviewed_at": "2026-01-05T15:00:00+07:00",
        "dated_send_by": "2026-01-06T12:00:00+07:00",
        "late": False,
        "late_by_hours": None,
        "late_by_working_days": None,
        "review_to_signing_working_days": 0,
        "sign_within_working_days": 1,
        "signed_long_after_review": False,
    } == timeliness(api, doc_id)


@pytest.mark.parametrize(
    ("urgency", "rules", "send_by"),
    [
        (1, {}, "2026-01-05T16:00:00+07:00"),  # khẩn: the province's 60 working minutes
        (3, {}, "2026-01-05T15:15:00+07:00"),  # hỏa tốc: 15
        (1, {"send": {"1": 30}}, "2026-01-05T15:30:00+07:00"),  # the agency's tighter rule
    ],
)
def test_an_urgent_letter_goes_out_within_the_send_rule_of_its_signing(
    make_api: MakeApi, urgency: int, rules: dict[str, Any], send_by: str
) -> None:
    # Given an urgent letter approved and signed on Monday at 15:00 (Vietnam time)
    api = signing_api(make_api)
    issue(api)
    if rules:
        saved = api.client.put(
            "/v1/time-rules",
            headers={**api.auth("supervisor"), "If-Match": "*"},
            json={"rules": rules},
        )
        assert 200 == saved.status_code, saved.text
    doc_id = clean_letter(api, number=next(_urgent), urgency=urgency)
    assert failed(submit_and_check(api, doc_id)) == set()
    assert 200 == approve(api, doc_id).status_code
    assert 200 == sign(api, doc_id).status_code

    # Then it must go out within the time rule the escalations apply, not at the very
    # moment it was signed; and what explain says agrees
    assert send_by == timeliness(api, doc_id)["send_by"]
    api.clock.advance(minutes=1)
    [step] = api.get(f"/v1/documents/{doc_id}/explain").json()["document"]
    assert ("awaiting_sending", send_by) == (step["code"], step["facts"]["due_at"])


def test_a_letter_approved_on_monday_and_signed_on_wednesday_is_flagged(
    make_api: MakeApi,
) -> None:
    # Given a letter dated and approved Monday, signed Wednesday 15:00
    api, doc_id = signed_after(make_api, 2)

    # When its document is read
    judged = timeliness(api, doc_id)

    # Then it was due out Tuesday noon: late by 27 hours, one working day; and it waited
    # two working days after review, more than the one allowed
    assert (True, "2026-01-06T12:00:00+07:00", 27, 1, 2, True) == (
        judged["late"],
        judged["dated_send_by"],
        judged["late_by_hours"],
        judged["late_by_working_days"],
        judged["review_to_signing_working_days"],
        judged["signed_long_after_review"],
    )
    assert "2026-01-08T12:00:00+07:00" == judged["send_by"]


def test_the_operator_allows_more_working_days_between_review_and_signing(
    make_api: MakeApi,
) -> None:
    api, doc_id = signed_after(make_api, 2, sign_within_working_days=3)

    judged = timeliness(api, doc_id)

    # The wait is allowed; the stale date is still flagged (the law, not the operator's)
    assert (False, 3, True) == (
        judged["signed_long_after_review"],
        judged["sign_within_working_days"],
        judged["late"],
    )


def test_an_unsigned_document_has_no_timeliness_yet(make_api: MakeApi) -> None:
    api = signing_api(make_api)
    doc_id = reviewed_letter(api)

    assert None is api.get(f"/v1/documents/{doc_id}").json()["timeliness"]


def test_the_allowance_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONGVAN_SIGN_WITHIN_WORKING_DAYS", "4")

    assert 4 == Settings().sign_within_working_days
    with pytest.raises(ValidationError, match="sign_within_working_days"):
        Settings(sign_within_working_days=-1)


def test_congvan_documents_show_prints_the_judgment_as_made(
    make_api: MakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the letter signed two days after its approval, when one day was allowed; the
    # operator allows five days since
    api, doc_id = signed_after(make_api, 2)
    settings = api.runtime.settings
    url = settings.db_url
    monkeypatch.setenv("CONGVAN_SIGN_WITHIN_WORKING_DAYS", "5")

    # When an operator shows it, as text and as JSON
    code = main(["--data-dir", str(settings.data_dir), "--database-url", url, "documents",
                 "show", doc_id])  # fmt: skip
    text = capsys.readouterr().out
    as_json = main(["--data-dir", str(settings.data_dir), "--database-url", url, "documents",
                    "show", doc_id, "--json"])  # fmt: skip
    shown = capsys.readouterr().out
    missing = main(["--data-dir", str(settings.data_dir), "--database-url", url, "documents",
                    "show", "no-such-document"])  # fmt: skip

    # Then the text names both flags with their moments, judged by the rule of the day it
    # was signed; the JSON is GET's view
    assert (0, 0, 2) == (code, as_json, missing)
    assert "reviewed at   15:00 05/01/2026" in text
    assert "signed at     15:00 07/01/2026" in text
    assert "send by       12:00 08/01/2026" in text
    assert "signed after 12:00 06/01/2026" in text and "by 27 hour(s), 1 working day(s)" in text
    assert "signed 2 working day(s) after review; at most 1" in text
    assert '"signed_long_after_review": true' in shown
    assert "documents list --agency" in capsys.readouterr().err  # the missing one says how


def test_congvan_documents_list_gives_the_ids_show_takes(
    make_api: MakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a signed letter of agency A
    api, doc_id = signed_after(make_api, 1)
    cli = ["--data-dir", str(api.runtime.settings.data_dir), "--database-url",
           api.runtime.settings.db_url, "documents", "list"]  # fmt: skip
    capsys.readouterr()

    # When an operator lists A's documents, all or signed ones, as text and as JSON
    assert main([*cli, "--agency", A]) == 0
    text = capsys.readouterr().out
    assert main([*cli, "--agency", A, "--state", "signed", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)

    # Then each line starts with the id `documents show` takes, and its notation and state
    assert text.split()[:3] == [doc_id, api.get(f"/v1/documents/{doc_id}").json()["notation"],
                                "signed"]  # fmt: skip
    assert [d["id"] for d in listed] == [doc_id]
    # and none for a state none is in, a state that is none, an agency that is none
    assert main([*cli, "--agency", A, "--state", "sent"]) == 0
    assert capsys.readouterr().out == "no documents in sent\n"
    assert main([*cli, "--agency", A, "--state", "posted"]) == 2
    assert "[invalid_input]" in capsys.readouterr().err
    assert main([*cli, "--agency", "000.00.99.H57"]) == 2
    assert "error [not_found]" in capsys.readouterr().err
