"""Send-by moments (Decision 28/2018 Art. 6), with a fake calendar."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from congvan.states.timeliness import (
    FIRST_DAY,
    LAST_DAY,
    VIETNAM,
    end_of_day,
    in_vietnam,
    judge_sending,
    judge_signing,
    reckoned,
    send_by,
    send_by_date,
)


@dataclass(frozen=True)
class Weekdays:
    """Monday to Friday, less the days named off."""

    off: frozenset[date] = field(default_factory=frozenset)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.off


def vn(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=VIETNAM)


FRIDAY = date(2026, 4, 24)


@pytest.mark.parametrize(
    ("signed_at", "urgency", "off", "expected"),
    [
        (vn(2026, 4, 24, 16, 30), 0, (), vn(2026, 4, 27, 12)),  # Friday afternoon → Monday noon
        (vn(2026, 4, 24, 8), 0, (), vn(2026, 4, 27, 12)),
        (vn(2026, 4, 22, 9), 0, (), vn(2026, 4, 23, 12)),  # Wednesday → Thursday noon
        (vn(2026, 4, 25, 10), 0, (), vn(2026, 4, 27, 12)),  # signed on a Saturday
        # before 30/4 and 1/5: the next morning is after the break
        (vn(2026, 4, 29, 17), 0, (date(2026, 4, 30), date(2026, 5, 1)), vn(2026, 5, 4, 12)),
        (vn(2026, 4, 24, 16, 30), 1, (), vn(2026, 4, 24, 16, 30)),  # khẩn: at once
        (vn(2026, 4, 24, 16, 30), 4, (), vn(2026, 4, 24, 16, 30)),  # hỏa tốc hẹn giờ
        # 18:00 UTC on Friday is already Saturday in Viet Nam
        (datetime(2026, 4, 24, 18, tzinfo=UTC), 0, (), vn(2026, 4, 27, 12)),
        (datetime(2026, 4, 23, 16, 59, tzinfo=UTC), 0, (), vn(2026, 4, 24, 12)),
    ],
)
def test_the_send_by_moment(
    signed_at: datetime, urgency: int, off: tuple[date, ...], expected: datetime
) -> None:
    assert expected == send_by(signed_at, urgency, Weekdays(frozenset(off)))


def test_the_cutoff_is_the_operators() -> None:
    assert vn(2026, 4, 27, 10) == send_by(vn(2026, 4, 24, 16), 0, Weekdays(), time(10))


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        send_by(datetime(2026, 4, 24, 16), 0, Weekdays())


def test_an_urgent_document_known_only_by_its_date_is_due_that_day() -> None:
    assert end_of_day(FRIDAY) == send_by_date(FRIDAY, 2, Weekdays())
    assert vn(2026, 4, 27, 12) == send_by_date(FRIDAY, 0, Weekdays())


@given(
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.sets(st.dates(date(2020, 1, 1), date(2030, 2, 1)), max_size=30),
)
def test_the_deadline_is_the_first_working_morning_after_the_signing_day(
    signed_at: datetime, off: set[date]
) -> None:
    calendar = Weekdays(frozenset(off))

    due = send_by(signed_at, 0, calendar)

    signing_day = signed_at.astimezone(VIETNAM).date()
    assert time(12) == due.timetz().replace(tzinfo=None)
    assert calendar.is_working_day(due.date())
    assert due.date() > signing_day
    between = (signing_day + timedelta(days=k) for k in range(1, (due.date() - signing_day).days))
    assert not any(calendar.is_working_day(d) for d in between)


# -- judging a signing -------------------------------------------------------------------

MONDAY = date(2026, 4, 20)


def judged(
    signed_at: datetime,
    *,
    dated: date | None = MONDAY,
    reviewed_at: datetime | None = None,
    urgency: int = 0,
    within: int = 1,
) -> dict[str, object]:
    return judge_signing(
        signed_at,
        urgency=urgency,
        dated=dated,
        reviewed_at=reviewed_at,
        calendar=Weekdays(),
        sign_within_working_days=within,
    ).as_dict()


def test_a_letter_signed_the_day_it_is_dated_and_approved_is_timely() -> None:
    result = judged(vn(2026, 4, 20, 15), reviewed_at=vn(2026, 4, 20, 9))

    assert {
        "signed_at": "2026-04-20T15:00:00+07:00",
        "send_by": "2026-04-21T12:00:00+07:00",
        "reviewed_at": "2026-04-20T09:00:00+07:00",
        "dated_send_by": "2026-04-21T12:00:00+07:00",
        "late": False,
        "late_by_hours": None,
        "late_by_working_days": None,
        "review_to_signing_working_days": 0,
        "sign_within_working_days": 1,
        "signed_long_after_review": False,
    } == result


def test_a_letter_of_monday_approved_then_signed_on_wednesday_is_flagged_twice() -> None:
    # Dated and approved Monday; its date had it out by Tuesday noon; signed Wednesday 15:00
    result = judged(vn(2026, 4, 22, 15), reviewed_at=vn(2026, 4, 20, 10))

    assert (True, 27, 1, 2, True) == (
        result["late"],
        result["late_by_hours"],
        result["late_by_working_days"],
        result["review_to_signing_working_days"],
        result["signed_long_after_review"],
    )


def test_a_weekend_between_review_and_signing_does_not_count() -> None:
    # Approved Friday afternoon (dated Friday), signed Monday 10:00: one working day later
    result = judged(vn(2026, 4, 27, 10), dated=FRIDAY, reviewed_at=vn(2026, 4, 24, 16))

    assert (False, 1, False) == (
        result["late"],
        result["review_to_signing_working_days"],
        result["signed_long_after_review"],
    )


def test_waiting_after_review_is_flagged_apart_from_the_date() -> None:
    # With no day allowed: approved Monday 09:00, signed Tuesday 10:00, before its date's noon
    result = judged(vn(2026, 4, 21, 10), reviewed_at=vn(2026, 4, 20, 9), within=0)

    assert (False, 1, True) == (
        result["late"],
        result["review_to_signing_working_days"],
        result["signed_long_after_review"],
    )


def test_an_urgent_letter_signed_the_day_after_its_date_is_late_by_the_hours_since() -> None:
    result = judged(vn(2026, 4, 21, 9), urgency=1)

    assert (True, 9, 1, "2026-04-21T09:00:00+07:00") == (
        result["late"],
        result["late_by_hours"],
        result["late_by_working_days"],
        result["send_by"],
    )


def test_without_a_date_or_a_review_only_the_send_by_moment_is_judged() -> None:
    result = judged(vn(2026, 4, 20, 15), dated=None)

    assert (None, False, None, None) == (
        result["dated_send_by"],
        result["late"],
        result["review_to_signing_working_days"],
        result["signed_long_after_review"] or None,
    )


def test_a_moment_without_its_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="reviewed_at"):
        judged(vn(2026, 4, 20, 15), reviewed_at=datetime(2026, 4, 20, 9))


@given(
    st.datetimes(datetime(2024, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.timedeltas(timedelta(0), timedelta(days=40)),
    st.integers(0, 10),
)
def test_late_and_long_after_review_follow_their_definitions(
    reviewed_at: datetime, wait: timedelta, within: int
) -> None:
    signed_at = reviewed_at + wait
    dated = reviewed_at.astimezone(VIETNAM).date()

    result = judge_signing(
        signed_at,
        urgency=0,
        dated=dated,
        reviewed_at=reviewed_at,
        calendar=Weekdays(),
        sign_within_working_days=within,
    )

    assert result.late == (signed_at > send_by_date(dated, 0, Weekdays()))
    waited = sum(
        Weekdays().is_working_day(dated + timedelta(days=i))
        for i in range(1, (signed_at.astimezone(VIETNAM).date() - dated).days + 1)
    )
    assert (waited, waited > within) == (
        result.review_to_signing_working_days,
        result.signed_long_after_review,
    )


def test_a_send_is_late_only_after_its_send_by_and_unknown_without_one() -> None:
    send_by_ = datetime(2026, 1, 6, 12, 0, tzinfo=VIETNAM)

    on_time = judge_sending(send_by_, send_by_)
    assert (on_time["late"], on_time["late_by_hours"]) == (False, None)
    late = judge_sending(send_by_ + timedelta(hours=25, minutes=59), send_by_)
    assert (late["late"], late["late_by_hours"]) == (True, 25)
    unknown = judge_sending(send_by_, None)
    assert (unknown["send_by"], unknown["late"]) == (None, None)
    with pytest.raises(ValueError):
        judge_sending(datetime(2026, 1, 6, 12, 0), send_by_)


# Moments Python can write that Vietnam time (UTC+7) cannot: past its year 9999, or
# before its year 1.
EDGE_MOMENTS = [
    datetime(9999, 12, 31, 17, tzinfo=UTC),
    datetime.max.replace(tzinfo=UTC),
    datetime.min.replace(tzinfo=timezone(timedelta(hours=14))),
    datetime.min.replace(tzinfo=UTC),
]


@pytest.mark.parametrize("moment", EDGE_MOMENTS)
def test_a_moment_at_the_edge_of_python_converts_to_the_nearest_end_of_the_range(
    moment: datetime,
) -> None:
    # Given a moment kept before the API held moments to the years reckoned with
    # When it is converted to Vietnam time
    local = in_vietnam(moment)
    # Then it is the nearest end of the range, not an overflow
    first = datetime.combine(FIRST_DAY, time.min, VIETNAM)
    last = datetime.combine(LAST_DAY, time.max, VIETNAM)
    assert local == (last if moment.year > 2000 else first)
    assert local.utcoffset() == timedelta(hours=7)
    assert not reckoned(moment)


@pytest.mark.parametrize("dated", [date.max, date(9999, 12, 31), date.min, date(1900, 12, 31)])
@pytest.mark.parametrize("urgency", [0, 1])
def test_a_document_dated_at_the_edge_of_python_is_judged_not_crashed(
    dated: date, urgency: int
) -> None:
    # Given a document whose date lies outside the years reckoned with
    signed_at = vn(2026, 4, 24, 10)
    # When its send-by moment is worked out and its signing judged
    latest = send_by_date(dated, urgency, Weekdays())
    result = judge_signing(
        signed_at, urgency=urgency, dated=dated, reviewed_at=signed_at, calendar=Weekdays()
    )
    # Then one dated after the range is not late, one dated before it long since is
    assert result.late == (dated < FIRST_DAY)
    assert (latest > signed_at) == (dated > LAST_DAY)
    assert not reckoned(dated)


def test_a_send_judged_against_a_send_by_at_the_edge_of_python_is_not_late() -> None:
    judged = judge_sending(vn(2026, 4, 24, 10), datetime.max.replace(tzinfo=UTC))
    assert (judged["late"], judged["send_by"]) == (False, "2100-12-31T23:59:59.999999+07:00")


@pytest.mark.parametrize(
    ("value", "inside"),
    [
        (FIRST_DAY, True),
        (LAST_DAY, True),
        (FIRST_DAY - timedelta(days=1), False),
        (LAST_DAY + timedelta(days=1), False),
        (datetime(2100, 12, 31, 16, 59, 59, tzinfo=UTC), True),  # 23:59:59 in Vietnam
        (datetime(2100, 12, 31, 17, tzinfo=UTC), False),  # 2101-01-01 in Vietnam
        (datetime(1900, 12, 31, 17, tzinfo=UTC), True),  # 1901-01-01 00:00 in Vietnam
        (datetime(1900, 12, 31, 16, 59, tzinfo=UTC), False),
        (datetime(2100, 12, 31, 23, 59), True),  # no offset: as written
    ],
)
def test_the_range_reckoned_with_is_judged_in_vietnam_time(value: date, inside: bool) -> None:
    assert reckoned(value) == inside
