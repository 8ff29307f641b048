"""What a document waits for: findings from hand-built snapshots, and their sentences."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from congvan.states import explanation as x
from congvan.states import snapshot as snap
from congvan.states import vocabulary
from congvan.states.phrasing import PHRASES, duration, moment, sentence
from congvan.states.timeliness import VIETNAM


@dataclass(frozen=True)
class Weekdays:
    """Monday to Friday, less the days named off."""

    off: frozenset[date] = field(default_factory=frozenset)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.off


WEEKDAYS = Weekdays()
# Monday 30 November 2026, 10:00 in Viet Nam.
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
SENT = snap.Snapshot(document_id="d1", state="sent", urgency=0, updated_at=NOW - timedelta(hours=2))


def dispatch(state: str = "pending", **overrides: object) -> snap.DispatchFacts:
    fields: dict[str, object] = {
        "id": "x1",
        "organ_id": "000.00.01.H57",
        "state": state,
        "attempts": 1,
        "last_error": "",
        "updated_at": NOW - timedelta(hours=1),
    }
    return snap.DispatchFacts(**{**fields, **overrides})  # type: ignore[arg-type]


def delivery_job(status: str, **overrides: object) -> snap.JobFacts:
    fields: dict[str, object] = {
        "id": "j1",
        "action": "deliver_dispatch",
        "status": status,
        "attempts": 1,
        "dispatch_id": "x1",
    }
    return snap.JobFacts(**{**fields, **overrides})  # type: ignore[arg-type]


def deadline(due_at: datetime, **overrides: object) -> snap.TimerFacts:
    return snap.TimerFacts(vocabulary.JOB_DEADLINE, "j1", due_at, **overrides)  # type: ignore[arg-type]


REFUSED_ATTEMPT = snap.AttemptFacts(
    attempt=1,
    finished_at=NOW - timedelta(minutes=1),
    outcome="transient",
    http_status=None,
    latency_ms=3,
    error="not sent: ConnectError: [Errno 111] Connection refused",
)


def codes(found: x.Explanation) -> list[tuple[str | None, str]]:
    return [(f.organ_id, f.code) for f in found.all()]


def test_a_failed_attempt_waits_for_its_retry_with_the_last_error() -> None:
    # Given a dispatch whose first attempt was refused and whose job waits on its backoff
    snapshot = replace(
        SENT,
        dispatches=(dispatch(last_attempt=REFUSED_ATTEMPT),),
        jobs=(delivery_job(vocabulary.JOB_WAITING),),
        timers=(deadline(NOW + timedelta(seconds=30), backoff=True),),
    )
    # When it is explained
    found = x.explain(snapshot, NOW, WEEKDAYS)
    # Then the recipient waits for its retry, and the last attempt is told
    organ = "000.00.01.H57"
    assert [
        (None, x.AWAITING_DELIVERY),
        (organ, x.WAITING_FOR_RETRY),
        (organ, x.LAST_ATTEMPT),
    ] == codes(found)
    wait = found.recipients[0].findings[0]
    assert NOW + timedelta(seconds=30) == wait.facts["due_at"]
    assert wait.facts["remaining_working"] is None  # a retry is on the clock
    assert "transient" == wait.facts["last_outcome"]
    said = sentence(wait)
    assert said["en"].startswith("Waiting for retry at 2026-11-30 10:00 ICT")
    assert "last attempt: not sent: ConnectError: [Errno 111] Connection refused" in said["en"]
    assert said["vi"].startswith("Đang chờ gửi lại lúc 10:00 ngày 30/11/2026 (giờ Việt Nam)")
    assert "chưa gửi đi được: ConnectError: [Errno 111] Connection refused" in said["vi"]
    assert "not sent" not in said["vi"]  # our own words, in the sentence's language
    assert x.WAITING_FOR_RETRY == found.headline().code


@pytest.mark.parametrize(
    ("job", "timer", "expected"),
    [
        (
            delivery_job("running", lease_until=NOW + timedelta(minutes=5)),
            None,
            x.ATTEMPT_IN_PROGRESS,
        ),
        (delivery_job("running", lease_until=NOW - timedelta(minutes=5)), None, x.LEASE_EXPIRED),
        (delivery_job("pending"), deadline(NOW + timedelta(minutes=10)), x.JOB_QUEUED),
        (delivery_job("enqueued"), deadline(NOW + timedelta(minutes=10)), x.JOB_QUEUED),
        (delivery_job("pending"), None, x.NOTHING_SCHEDULED),
        (
            delivery_job("waiting"),
            deadline(NOW, parked_at=NOW, attempts=8, last_error="boom"),
            x.JOB_PARKED,
        ),
        (delivery_job("failed"), None, x.JOB_GAVE_UP),
        (delivery_job("done"), None, x.NOTHING_SCHEDULED),
    ],
)
def test_a_recipients_job_says_where_it_stands(
    job: snap.JobFacts, timer: snap.TimerFacts | None, expected: str
) -> None:
    snapshot = replace(
        SENT, dispatches=(dispatch("sending"),), jobs=(job,), timers=(timer,) if timer else ()
    )
    found = x.explain(snapshot, NOW, WEEKDAYS)
    assert expected == found.recipients[0].findings[0].code


def test_the_newest_live_job_of_a_dispatch_counts() -> None:
    # Given a resend: the first job gave up, a new one is queued
    jobs = (delivery_job("failed", id="j0"), delivery_job("pending"))
    snapshot = replace(
        SENT,
        dispatches=(dispatch(),),
        jobs=jobs,
        timers=(deadline(NOW + timedelta(minutes=1)),),
    )
    assert x.JOB_QUEUED == x.explain(snapshot, NOW, WEEKDAYS).recipients[0].findings[0].code


@pytest.mark.parametrize(
    ("state", "reported", "expected", "status"),
    [
        ("delivered", (), x.AWAITING_ACKNOWLEDGEMENT, "01"),
        ("acknowledged", ("03", "05"), x.ACKNOWLEDGED_BY_RECIPIENT, "05"),
        ("rejected", ("02",), x.REFUSED_BY_RECIPIENT, "02"),
        ("failed", (), x.FAILED_FOR_GOOD, None),
    ],
)
def test_a_recipient_past_its_attempts_says_its_status(
    state: str, reported: tuple[str, ...], expected: str, status: str | None
) -> None:
    snapshot = replace(
        SENT, dispatches=(dispatch(state, reported=reported, refusal_reason="sai địa chỉ"),)
    )
    recipient = x.explain(snapshot, NOW, WEEKDAYS).recipients[0]
    assert (expected, status) == (recipient.findings[0].code, recipient.status_code)


def test_a_refusal_gives_its_reason_in_both_languages() -> None:
    snapshot = replace(
        SENT,
        state="failed",
        dispatches=(dispatch("rejected", reported=("02",), refusal_reason="sai địa chỉ"),),
    )
    refused = x.explain(snapshot, NOW, WEEKDAYS).recipients[0].findings[0]
    assert sentence(refused)["vi"].endswith(": sai địa chỉ.")
    assert sentence(refused)["en"].startswith("The recipient refused it (02)")


def test_a_document_failed_by_refusals_alone_needs_a_replacement_not_a_resend() -> None:
    refused = dispatch("rejected", reported=("02",), refusal_reason="sai địa chỉ")
    failed = dispatch("failed", id="x2", organ_id="000.00.02.H57", attempts=4)
    only_refused = replace(SENT, state="failed", dispatches=(refused,))
    both = replace(SENT, state="failed", dispatches=(refused, failed))

    headline = x.explain(only_refused, NOW, WEEKDAYS).document[0]
    assert (headline.code, headline.facts) == (
        x.REFUSED_AWAITING_REPLACEMENT,
        {"recipients": ["000.00.01.H57"]},
    )
    assert "000.00.01.H57" in sentence(headline)["en"] and "replacement" in sentence(headline)["en"]
    # A recipient that failed for good is still resent; the refusal is named beside it
    headline = x.explain(both, NOW, WEEKDAYS).document[0]
    assert (headline.code, headline.facts) == (
        x.AWAITING_RESEND,
        {"recipients": ["000.00.02.H57"], "refused": ["000.00.01.H57"]},
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"state": "draft"}, x.AWAITING_SUBMISSION),
        ({"state": "draft", "submitted_revision": 1}, x.CHECKS_RUNNING),
        (
            {
                "state": "draft",
                "submitted_revision": 1,
                "checks": (
                    snap.CheckFacts("signer_named", "blocking", "failed", cleared=False),
                    snap.CheckFacts("subject_length", "warning", "failed", cleared=False),
                ),
            },
            x.CHECKS_FAILING,
        ),
        (
            {
                "state": "draft",
                "submitted_revision": 1,
                "checks": (snap.CheckFacts("subject_length", "warning", "failed", cleared=False),),
            },
            x.CHECKS_AWAITING_WAIVER,
        ),
        (
            {
                "state": "draft",
                "submitted_revision": 1,
                "checks": (snap.CheckFacts("subject_length", "warning", "failed", cleared=True),),
            },
            x.AWAITING_APPROVAL,
        ),
        ({"state": "reviewed"}, x.AWAITING_SIGNATURE),
        ({"state": "signed"}, x.AWAITING_SENDING),
        ({"state": "signed", "send_by": NOW + timedelta(hours=2)}, x.AWAITING_SENDING),
        ({"state": "signed", "send_by": NOW - timedelta(hours=2)}, x.SEND_OVERDUE),
        # at the very moment it is still in time, as the rule judges a send then
        ({"state": "signed", "send_by": NOW}, x.AWAITING_SENDING),
        ({"state": "signed", "send_by": NOW - timedelta(microseconds=1)}, x.SEND_OVERDUE),
        ({"state": "acknowledged"}, x.COMPLETE),
    ],
)
def test_a_document_not_yet_sent_waits_in_its_own_state(
    changes: dict[str, object], expected: str
) -> None:
    found = x.explain(replace(SENT, **changes), NOW, WEEKDAYS)  # type: ignore[arg-type]
    assert expected == found.document[0].code
    assert all(sentence(f)["vi"] and sentence(f)["en"] for f in found.all())


@pytest.mark.parametrize(
    ("state", "code"), [("recalled", x.RECALLED_DONE), ("replaced", x.REPLACED_DONE)]
)
def test_a_recalled_or_replaced_document_awaits_nothing_whatever_its_dispatches(
    state: str, code: str
) -> None:
    # SENT's dispatches are still pending or delivered: none of that is awaited any more
    found = x.explain(replace(SENT, state=state), NOW, WEEKDAYS)

    assert (code, code) == (found.document[0].code, found.headline().code)
    assert "nothing is awaited" in sentence(found.headline())["en"]


@pytest.mark.parametrize("state", ["recalled", "replaced"])
def test_a_recalled_or_replaced_document_tells_when_it_became_so_not_when_its_row_moved(
    state: str,
) -> None:
    ended = NOW - timedelta(hours=5)
    found = x.explain(replace(SENT, state=state, ended_at=ended), NOW, WEEKDAYS)
    assert found.headline().facts["at"] == ended != SENT.updated_at


def test_failing_checks_are_named() -> None:
    checks = (snap.CheckFacts("signer_named", "blocking", "failed", cleared=False),)
    snapshot = replace(SENT, state="draft", revision=2, submitted_revision=2, checks=checks)
    failing = x.explain(snapshot, NOW, WEEKDAYS).document[0]
    assert (
        "Blocking checks failed: signer_named; the draft must be corrected."
        == (sentence(failing)["en"])
    )


def test_a_secret_letter_is_told_it_never_goes_by_this_channel() -> None:
    # Given a draft whose secrecy check failed (marked mật), beside another check
    checks = (
        snap.CheckFacts("format.secrecy", "blocking", "failed", cleared=False),
        snap.CheckFacts("signer_named", "blocking", "failed", cleared=False),
    )
    snapshot = replace(SENT, state="draft", revision=2, submitted_revision=2, checks=checks)
    said = sentence(x.explain(snapshot, NOW, WEEKDAYS).document[0])
    # Then it is told that such a letter is sent on paper, not only to be corrected
    assert "never goes by this channel" in said["en"] and "on paper" in said["en"]
    assert "không gửi qua mạng" in said["vi"] and "bằng giấy" in said["vi"]
    # (and a letter with no secrecy mark is not)
    plain = replace(snapshot, checks=checks[1:])
    assert "paper" not in sentence(x.explain(plain, NOW, WEEKDAYS).document[0])["en"]


def test_a_send_by_moment_counts_working_time_only() -> None:
    # Given a document signed on Friday, to be sent by Monday noon (Vietnam time)
    friday_5pm = datetime(2026, 11, 27, 17, 0, tzinfo=VIETNAM)
    monday_noon = datetime(2026, 11, 30, 12, 0, tzinfo=VIETNAM)
    snapshot = replace(SENT, state="signed", send_by=monday_noon)
    # When it is explained on Friday at 17:00
    step = x.explain(snapshot, friday_5pm, WEEKDAYS).document[0]
    # Then 67 hours remain, of which 4 are working hours (Monday 08:00–12:00)
    assert timedelta(hours=67) == step.facts["remaining"]
    assert timedelta(hours=4) == step.facts["remaining_working"]
    assert sentence(step)["en"] == (
        "Signed; must be sent by 2026-11-30 12:00 ICT, in 2 d 19 h (4 h 00 min of working time)."
    )


def test_the_sent_document_names_whom_it_waits_for() -> None:
    snapshot = replace(
        SENT,
        dispatches=(
            dispatch("delivered", id="x1", organ_id="A"),
            dispatch("acknowledged", id="x2", organ_id="B"),
        ),
    )
    step = x.explain(snapshot, NOW, WEEKDAYS).document[0]
    assert (x.AWAITING_ACKNOWLEDGEMENTS, ["A"]) == (step.code, step.facts["recipients"])


def test_there_are_no_escalations_unless_the_snapshot_carries_them() -> None:
    assert [] == [f for f in x.explain(SENT, NOW, WEEKDAYS).all() if f.code == x.ESCALATION_OPEN]


def test_an_open_escalation_is_told_with_its_owner_and_level() -> None:
    # Given one escalation on the recipient and one on the document
    escalations = (
        snap.EscalationFacts("e1", "not_acknowledged", 2, "tp.nguyen", NOW, dispatch_id="x1"),
        snap.EscalationFacts("e2", "not_sent_in_time", 1, "vt.le", NOW),
    )
    snapshot = replace(SENT, dispatches=(dispatch("delivered"),), escalations=escalations)
    found = x.explain(snapshot, NOW, WEEKDAYS)
    # Then each is where it belongs, and it is an alarm shown first
    assert [x.AWAITING_ACKNOWLEDGEMENTS, x.ESCALATION_OPEN] == [f.code for f in found.document]
    assert x.ESCALATION_OPEN == found.recipients[0].findings[-1].code
    said = sentence(found.recipients[0].findings[-1])
    assert "owned by tp.nguyen" in said["en"] and "(not_acknowledged, level 2)" in said["en"]
    # named in words, as the Vietnamese is, beside its code
    assert "“not registered by a recipient in time after it arrived”" in said["en"]
    assert "do tp.nguyen phụ trách" in said["vi"]
    assert x.ESCALATION_OPEN == found.headline().code


def test_an_open_escalation_about_a_recall_or_update_is_told_on_its_recipient() -> None:
    # Given a letter every recipient registered, whose recall failed to reach the first
    # and whose update a recipient that no longer has a dispatch listed refused
    escalations = (
        snap.EscalationFacts(
            "e1", "delivery_failed", 1, "", NOW, dispatch_id="r1",
            organ_id="000.00.01.H57", request_kind="recall",
        ),
        snap.EscalationFacts(
            "e2", "refused_by_recipient", 1, "vt.le", NOW, dispatch_id="r2",
            organ_id="000.00.09.H57", request_kind="update",
        ),
    )  # fmt: skip
    registered = NOW - timedelta(hours=3)
    snapshot = replace(
        SENT,
        state="acknowledged",
        dispatches=(dispatch("acknowledged", reported=("03",), registered_at=registered),),
        escalations=escalations,
    )

    # When it is explained
    found = x.explain(snapshot, NOW, WEEKDAYS)

    # Then each is an alarm: the recall's on the recipient it went to, the other on the
    # document, naming its recipient; the headline is one of them, not "complete"
    [recipient] = found.recipients
    assert [x.ACKNOWLEDGED_BY_RECIPIENT, x.ESCALATION_OPEN] == [f.code for f in recipient.findings]
    assert [(x.COMPLETE, None), (x.ESCALATION_OPEN, "000.00.09.H57")] == [
        (f.code, f.organ_id) for f in found.document
    ]
    assert all(f.alarm for f in found.all() if f.code == x.ESCALATION_OPEN)
    assert (x.ESCALATION_OPEN, "e2") == (
        found.headline().code,
        found.headline().facts["escalation_id"],
    )
    # And both languages say what the escalation is about
    said = sentence(recipient.findings[-1])
    assert "“delivery to a recipient failed for good” about the recall request" in said["en"]
    assert "về yêu cầu thu hồi" in said["vi"] and "recall" not in said["vi"]
    assert "about the update request" in sentence(found.document[1])["en"]
    assert "về yêu cầu cập nhật" in sentence(found.document[1])["vi"]
    # And the letter is done as of its registration, with escalations still open
    complete = sentence(found.document[0])
    assert registered == found.document[0].facts["at"]
    assert complete["en"].endswith("; 2 escalation(s) still open.")
    assert complete["vi"].endswith("; còn 2 cảnh báo đang mở.")
    assert "nothing is awaited" not in complete["en"]


def test_every_code_has_a_sentence_in_each_language() -> None:
    assert set(x.CODES) == set(PHRASES)
    assert len(set(x.CODES)) == len(x.CODES)


def test_a_moment_without_its_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        x.explain(SENT, NOW.replace(tzinfo=None), WEEKDAYS)
    with pytest.raises(ValueError, match="time zone"):
        x.working_time_between(WEEKDAYS, NOW.replace(tzinfo=None), NOW)


@pytest.mark.parametrize(
    ("span", "vi", "en"),
    [
        (timedelta(seconds=40), "40 giây", "40 s"),
        (timedelta(minutes=5, seconds=3), "5 phút", "5 min"),
        (timedelta(hours=1, minutes=5), "1 giờ 05 phút", "1 h 05 min"),
        (timedelta(days=2, hours=3), "2 ngày 3 giờ", "2 d 3 h"),
        (timedelta(days=10, minutes=25), "10 ngày 0 giờ 25 phút", "10 d 0 h 25 min"),
        (timedelta(seconds=-5), "0 giây", "0 s"),
    ],
)
def test_durations_read_in_both_languages(span: timedelta, vi: str, en: str) -> None:
    assert (vi, en) == (duration(span, "vi"), duration(span, "en"))


def test_working_time_is_told_in_hours_not_in_days_of_24_hours() -> None:
    # 24 working hours are three working days: "1 ngày" would read as one of them
    three_days = timedelta(hours=24)
    assert (
        duration(three_days, "vi", in_days=False),
        duration(three_days, "en", in_days=False),
    ) == (
        "24 giờ 00 phút",
        "24 h 00 min",
    )
    assert duration(timedelta(hours=1800, minutes=5), "en", in_days=False) == "1800 h 05 min"


def test_a_wait_in_working_time_is_said_in_working_hours() -> None:
    # Delivered on Monday 2 November 2026 at 08:00 (Viet Nam); explained four weeks on
    monday = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    snapshot = replace(SENT, dispatches=(dispatch("delivered", updated_at=monday),))

    [finding] = x.explain(snapshot, NOW, WEEKDAYS).recipients[0].findings
    said = sentence(finding)

    assert finding.facts["waited_working"] > timedelta(days=1)
    hours = int(finding.facts["waited_working"].total_seconds()) // 3600
    assert f"thời gian làm việc: {hours} giờ" in said["vi"], said["vi"]
    assert f"({hours} h" in said["en"], said["en"]


def test_the_wait_for_registration_counts_from_the_delivery_not_the_rows_last_change() -> None:
    # Delivered two hours ago (its attempt's end); the row was written since
    delivered = snap.AttemptFacts(
        attempt=1,
        finished_at=NOW - timedelta(hours=2),
        outcome="delivered",
        http_status=201,
        latency_ms=40,
        error="",
    )
    row = dispatch("delivered", updated_at=NOW - timedelta(minutes=5), last_attempt=delivered)

    found = x.explain(replace(SENT, dispatches=(row,)), NOW, WEEKDAYS).recipients[0].findings

    [finding] = [f for f in found if f.code == x.AWAITING_ACKNOWLEDGEMENT]
    assert (finding.facts["since"], finding.facts["waited"]) == (
        NOW - timedelta(hours=2),
        timedelta(hours=2),
    )


def test_an_acknowledgement_is_dated_by_the_first_report_of_registration() -> None:
    registered = NOW - timedelta(days=1)
    row = dispatch("acknowledged", registered_at=registered, reported=("04", "05"))

    found = x.explain(replace(SENT, dispatches=(row,)), NOW, WEEKDAYS).recipients[0].findings

    [finding] = [f for f in found if f.code == x.ACKNOWLEDGED_BY_RECIPIENT]
    assert finding.facts["at"] == registered


def test_moments_are_shown_in_vietnam_time() -> None:
    assert "2026-11-30 10:00 ICT" == moment(NOW, "en")
    assert "10:00 ngày 30/11/2026 (giờ Việt Nam)" == moment(NOW, "vi")


def test_a_moment_without_its_offset_is_shown_as_utc_whatever_the_machines_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As a database gives a stored moment back: UTC, not the machine's local time
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert "2026-11-30 10:00 ICT" == moment(NOW.astimezone(UTC).replace(tzinfo=None), "en")
    finally:
        monkeypatch.undo()
        time.tzset()


moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@given(moments, moments, moments)
def test_working_time_adds_up_and_never_exceeds_clock_time(
    a: datetime, b: datetime, c: datetime
) -> None:
    start, middle, end = sorted((a, b, c))
    whole = x.working_time_between(WEEKDAYS, start, end)
    assert whole == (
        x.working_time_between(WEEKDAYS, start, middle)
        + x.working_time_between(WEEKDAYS, middle, end)
    )
    assert timedelta(0) <= whole <= end - start
    assert timedelta(0) == x.working_time_between(WEEKDAYS, end, start) or start == end


@pytest.mark.parametrize("state", ["recalled", "replaced"])
def test_a_recalled_or_replaced_letter_awaits_no_recipients_registration(state: str) -> None:
    snapshot = replace(SENT, state=state, dispatches=(dispatch("delivered", reported=()),))

    explained = x.explain(snapshot, NOW, WEEKDAYS)

    assert explained.document[0].code in x.ENDED
    codes = [f.code for r in explained.recipients for f in r.findings]
    assert x.AWAITING_ACKNOWLEDGEMENT not in codes
    assert explained.headline().code in x.ENDED


def test_a_recall_half_answered_says_whose_answer_is_awaited() -> None:
    # Given a letter delivered to two recipients, recalled, one answer still to come
    snapshot = replace(
        SENT,
        state="delivered",
        dispatches=(dispatch("delivered"), dispatch("acknowledged", id="x2", organ_id="B2")),
        answers_awaited=(snap.AnswerAwaited("recall", "000.00.01.H57", NOW - timedelta(hours=1)),),
    )

    explained = x.explain(snapshot, NOW, WEEKDAYS)

    # Then the headline is the recall's awaited answer, not the registration
    headline = explained.headline()
    assert (headline.code, headline.facts["recipients"]) == (x.AWAITING_ANSWERS, ["000.00.01.H57"])
    assert "thu hồi" in sentence(headline)["vi"] and "recall" in sentence(headline)["en"]


def _said(code: str, **facts: Any) -> dict[str, str]:
    return sentence(x.Finding(code, facts))


@pytest.mark.parametrize(
    ("status", "vi", "en"),
    [
        (
            "03",
            "Nơi nhận đã vào sổ lúc 10:00 ngày 01/12/2026 (giờ Việt Nam): trạng thái 03 (đã",
            "registered it at 2026-12-01 10:00 ICT: status 03 (registered).",
        ),
        ("06", "ở trạng thái 06 (hoàn thành).", "at status 06 (completed)."),
        (
            "15",
            "đã trả lời yêu cầu thu hồi / cập nhật: trạng thái 15 (đồng ý",
            "answered the recall or update: status 15 (agreed",
        ),
    ],
)
def test_a_recipients_last_word_is_named_as_it_is_in_one_language(
    status: str, vi: str, en: str
) -> None:
    at = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    said = _said(x.ACKNOWLEDGED_BY_RECIPIENT, status_code=status, at=at)

    assert vi in said["vi"] and en in said["en"]
    # Vietnamese words only in the Vietnamese sentence, and the other way round
    assert "registered" not in said["vi"] and "completed" not in said["vi"]
    assert "vào sổ" not in said["en"] and "hoàn thành" not in said["en"]
    if status != "03":  # completion and an answer to a recall are not registration (03)
        assert "trạng thái 03" not in said["vi"]
    # and no status is told in brackets within brackets
    assert "))" not in said["vi"] and "))" not in said["en"]


def test_a_status_after_registration_is_told_at_its_own_moment() -> None:
    # Given a recipient that registered the letter (03) a week before completing it (06)
    registered, completed = NOW - timedelta(days=7), NOW - timedelta(hours=1)
    facts = dispatch(
        "acknowledged",
        reported=("01", "03", "06"),
        reported_at=(("01", registered), ("03", registered), ("06", completed)),
        registered_at=registered,
    )
    snapshot = replace(SENT, state="acknowledged", dispatches=(facts,))
    [recipient] = x.explain(snapshot, NOW, WEEKDAYS).recipients
    [said] = [f for f in recipient.findings if f.code == x.ACKNOWLEDGED_BY_RECIPIENT]

    # Then 06 is told with its own moment, and the registration with its own
    assert (said.facts["status_code"], said.facts["at"]) == ("06", completed)
    en = sentence(said)["en"]
    assert f"registered it at {moment(registered, 'en')}" in en
    assert f"since {moment(completed, 'en')} at status 06 (completed)" in en


def test_an_open_escalation_is_named_in_vietnamese_words_in_the_vietnamese_sentence() -> None:
    opened = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    said = _said(x.ESCALATION_OPEN, kind="not_acknowledged", level=2, opened_at=opened, owner=None)

    assert "Đơn vị nhận chưa tiếp nhận văn bản" in said["vi"]
    assert "not_acknowledged" not in said["vi"]
    assert "not_acknowledged" in said["en"]


def test_the_wait_for_registration_is_also_said_in_working_time() -> None:
    # Delivered on Friday 27 November 2026 at 16:50 (Viet Nam); explained on Monday at 10:00
    friday_late = datetime(2026, 11, 27, 9, 50, tzinfo=UTC)
    snapshot = replace(SENT, dispatches=(dispatch("delivered", updated_at=friday_late),))

    [finding] = x.explain(snapshot, NOW, WEEKDAYS).recipients[0].findings
    said = sentence(finding)

    # Three days by the calendar; the weekend is not the recipient's lateness
    assert finding.facts["waited"] == timedelta(days=2, hours=17, minutes=10)
    assert finding.facts["waited_working"] < timedelta(hours=3)
    assert "thời gian làm việc" in said["vi"] and "of working time" in said["en"]


def test_a_recipient_that_agreed_to_a_recall_stands_at_15_with_its_copy_cancelled() -> None:
    # Given a letter registered by two recipients, one of which since agreed to a recall
    snapshot = replace(
        SENT,
        state="acknowledged",
        dispatches=(
            dispatch("acknowledged", reported=("03",), recalled=True),
            dispatch("acknowledged", id="x2", organ_id="B2", reported=("03",)),
        ),
    )

    explained = x.explain(snapshot, NOW, WEEKDAYS)

    # Then it stands at 15, as the document's own view shows it, its copy cancelled
    gone, kept = explained.recipients
    assert (gone.status_code, kept.status_code) == ("15", "03")
    assert [f.code for f in gone.findings] == [x.COPY_RECALLED]
    assert "cancelled" in sentence(gone.findings[0])["en"]
    # And the headline says who holds it no more, not only that everyone registered it
    headline = explained.headline()
    assert headline.code == x.COMPLETE
    assert "000.00.01.H57" in sentence(headline)["en"]
    assert "thu hồi" in sentence(headline)["vi"]


@pytest.mark.parametrize("state", ["recalled", "replaced"])
def test_what_went_wrong_before_a_recall_or_replacement_is_told_but_is_no_alarm(
    state: str,
) -> None:
    # Given a letter one recipient never got (failed) and another refused, then ended
    failed = dispatch("failed", attempts=4, last_error="ConnectError")
    refused = dispatch("rejected", id="x2", organ_id="B2", reported=("02",), refusal_reason="sai")
    snapshot = replace(SENT, state=state, dispatches=(failed, refused))

    explained = x.explain(snapshot, NOW, WEEKDAYS)

    # Then both are told as what happened, no alarm: nothing is awaited of them
    told = [f for r in explained.recipients for f in r.findings]
    assert {f.code for f in told} == {x.FAILED_FOR_GOOD, x.REFUSED_BY_RECIPIENT}
    assert not any(f.alarm for f in explained.all())
    assert all("nothing is awaited" in sentence(f)["en"] for f in told)
    assert explained.headline().code in x.ENDED


def test_a_failure_after_an_update_asks_for_a_replacement_not_a_resend() -> None:
    failed = dispatch("failed", attempts=4)
    snapshot = replace(SENT, state="failed", dispatches=(failed,), updated=True)

    headline = x.explain(snapshot, NOW, WEEKDAYS).headline()

    assert headline.code == x.FAILED_AWAITING_REPLACEMENT and headline.alarm
    assert "replacement" in sentence(headline)["en"] and "resend" not in sentence(headline)["vi"]
    assert "thay thế" in sentence(headline)["vi"]


def test_an_attempt_after_a_resend_is_numbered_in_the_log_and_in_this_sending() -> None:
    # Given a dispatch delivered at its first attempt after a resend, its fifth in all
    fifth = replace(REFUSED_ATTEMPT, attempt=5, outcome="delivered", http_status=201, error="")
    again = dispatch("delivered", attempts=1, last_attempt=fifth, resent=True)
    resent = replace(SENT, dispatches=(again,))
    # When it is explained
    [last] = [f for f in x.explain(resent, NOW, WEEKDAYS).all() if f.code == x.LAST_ATTEMPT]
    # Then both numbers are told: the log's and this sending's (as the dispatch counts)
    assert (last.facts["attempt"], last.facts["since_resend"]) == (5, 1)
    assert sentence(last)["en"].startswith("Attempt 5 (1st since the resend) at ")
    assert sentence(last)["vi"].startswith("Lần gửi thứ 5 (lần 1 kể từ khi gửi lại) lúc ")
    # And a dispatch never resent is told its one number
    first = replace(REFUSED_ATTEMPT, attempt=1)
    once = replace(SENT, dispatches=(dispatch("delivered", attempts=1, last_attempt=first),))
    [last] = [f for f in x.explain(once, NOW, WEEKDAYS).all() if f.code == x.LAST_ATTEMPT]
    assert "since_resend" not in last.facts
    assert sentence(last)["en"].startswith("Attempt 1 at ")
    # nor one whose log holds more than its count without a resend (an attempt cut off and
    # recorded late, a receipt fetched again once a status settled it)
    logged = replace(REFUSED_ATTEMPT, attempt=2)
    never = replace(SENT, dispatches=(dispatch("delivered", attempts=1, last_attempt=logged),))
    [last] = [f for f in x.explain(never, NOW, WEEKDAYS).all() if f.code == x.LAST_ATTEMPT]
    assert "since_resend" not in last.facts
    assert sentence(last)["en"].startswith("Attempt 2 at ")


def test_an_urgent_documents_clock_rules_are_said_without_working_time() -> None:
    # Given a khẩn letter delivered on the eve of Tết at 19:45, its registration due on
    # the clock at 21:45 (nights and holidays count for an urgent document)
    delivered = datetime(2026, 2, 13, 19, 45, tzinfo=VIETNAM)
    due = delivered + timedelta(hours=2)
    now = delivered + timedelta(minutes=30)
    rule = snap.TimerFacts(vocabulary.RULE_DEADLINE, "x1", due, rule="not_acknowledged")
    urgent = replace(
        SENT,
        urgency=1,
        dispatches=(dispatch("delivered", updated_at=delivered),),
        timers=(rule,),
    )
    # When it is explained half an hour later
    waiting, due_by = x.explain(urgent, now, WEEKDAYS).recipients[0].findings
    # Then what is left and what was waited are clock time only: no "0 s of working time"
    assert (x.AWAITING_ACKNOWLEDGEMENT, x.DUE_BY) == (waiting.code, due_by.code)
    assert waiting.facts["waited_working"] is None
    assert due_by.facts["remaining_working"] is None
    assert timedelta(hours=1, minutes=30) == due_by.facts["remaining"]
    for finding in (waiting, due_by):
        said = sentence(finding)
        assert "working time" not in said["en"] and "làm việc" not in said["vi"], said
    assert sentence(due_by)["en"].endswith("by 2026-02-13 21:45 ICT, in 1 h 30 min.")
    # And the same letter at normal urgency still counts working time (none left tonight)
    normal = x.explain(replace(urgent, urgency=0), now, WEEKDAYS).recipients[0].findings
    assert timedelta(0) == normal[1].facts["remaining_working"]
    assert "0 s of working time" in sentence(normal[1])["en"]


def test_a_due_moment_is_overdue_only_once_it_has_passed() -> None:
    # Given a recipient's registration due at ``due`` (a rule's deadline)
    rule = snap.TimerFacts(vocabulary.RULE_DEADLINE, "x1", NOW, rule="not_acknowledged")
    waiting = replace(SENT, dispatches=(dispatch("delivered"),), timers=(rule,))

    def overdue(at: datetime) -> bool:
        [due_by] = [f for f in x.explain(waiting, at, WEEKDAYS).all() if f.code == x.DUE_BY]
        return bool(due_by.facts["overdue"])

    # Then at its very moment it is kept (a registration then is in time), past it late
    assert (False, False, True) == (
        overdue(NOW - timedelta(minutes=1)),
        overdue(NOW),
        overdue(NOW + timedelta(microseconds=1)),
    )


def test_an_urgent_document_awaiting_sending_counts_on_the_clock() -> None:
    signed_at = datetime(2026, 11, 27, 17, 0, tzinfo=VIETNAM)  # a Friday
    snapshot = replace(SENT, state="signed", urgency=2, send_by=signed_at + timedelta(hours=1))
    step = x.explain(snapshot, signed_at, WEEKDAYS).document[0]
    assert step.facts["remaining_working"] is None
    assert sentence(step)["en"].endswith("in 1 h 00 min.")


@pytest.mark.parametrize(
    "error", ["The signing time lies after the moment of verification.", "Is it?"]
)
def test_a_sentence_ending_in_a_message_that_ends_itself_has_one_stop(error: str) -> None:
    finding = x.Finding(x.FAILED_FOR_GOOD, {"attempts": 3, "error": error}, "000.00.01.H57")

    said = sentence(finding)

    assert said["en"].endswith(error) and said["vi"].endswith(error)
    assert not said["en"].endswith(("..", "?."))
