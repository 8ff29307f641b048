"""Send-by moments (Decision 28/2018 Art. 6), with a fake calendar."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from congvan.states.timeliness import VIETNAM, end_of_day, send_by, send_by_date


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
