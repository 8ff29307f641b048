"""Working days in Viet Nam: make-up Saturdays, swapped days off, the operator's own days."""

from __future__ import annotations

from datetime import date, timedelta

import holidays
import pytest
from hypothesis import given
from hypothesis import strategies as st

from congvan.actions.calendar import VIETNAM_CALENDAR, WorkingCalendar
from congvan.states.timeliness import FIRST_DAY, LAST_DAY

# Holidays the Government announced, each with the days around it.
TET_2025 = date(2025, 1, 29)  # Mùng một; off 25/01–02/02/2025
REUNIFICATION = date(2025, 4, 30)
NATIONAL_DAY = date(2025, 9, 2)
NEW_YEAR = date(2026, 1, 1)
AROUND = st.sampled_from([TET_2025, REUNIFICATION, NATIONAL_DAY, NEW_YEAR, date(2024, 5, 1)])
NEAR_HOLIDAYS = st.builds(
    lambda day, shift: day + timedelta(days=shift), AROUND, st.integers(-15, 15)
)
ANY_DAY = st.dates(date(2019, 1, 1), date(2027, 12, 31))
DAYS = st.one_of(NEAR_HOLIDAYS, ANY_DAY)
# The operator's announcements, disjoint: days off first, make-up days from the rest.
EXTRA = st.sets(st.dates(date(2025, 1, 1), date(2026, 2, 28)), max_size=8).flatmap(
    lambda off: st.tuples(
        st.just(off),
        st.sets(st.dates(date(2025, 1, 1), date(2026, 2, 28)), max_size=8).map(lambda on: on - off),
    )
)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2025, 4, 26), True),  # make-up Saturday for 02/05/2025
        (date(2024, 5, 4), True),  # make-up Saturday for 29/04/2024
        (date(2025, 5, 2), False),  # the swapped day off
        (date(2024, 4, 29), False),
        (date(2025, 4, 30), False),
        (date(2025, 5, 1), False),
        (date(2025, 9, 1), False),  # the day next to 2/9 (since 2021)
        (date(2025, 9, 2), False),
        (date(2025, 1, 27), False),  # Tết 2025
        (date(2025, 2, 3), True),  # first day back
        (date(2025, 4, 19), False),  # an ordinary Saturday
        (date(2025, 4, 28), True),
    ],
)
def test_the_governments_working_days(day: date, working: bool) -> None:
    assert working == VIETNAM_CALENDAR.is_working_day(day)


def test_the_operators_days_win_over_the_package() -> None:
    calendar = WorkingCalendar(
        extra_days_off=[date(2025, 4, 28)], extra_working_days=[date(2025, 5, 2)]
    )

    assert calendar.is_working_day(date(2025, 5, 2))
    assert not calendar.is_working_day(date(2025, 4, 28))
    assert date(2025, 5, 2) == calendar.next_working_day(date(2025, 4, 29))


def test_a_day_both_off_and_working_is_refused() -> None:
    with pytest.raises(ValueError, match="2025-05-02"):
        WorkingCalendar(extra_days_off=[date(2025, 5, 2)], extra_working_days=[date(2025, 5, 2)])


@given(DAYS, st.integers(0, 40))
def test_n_working_days_later_counts_back_to_n(day: date, n: int) -> None:
    later = VIETNAM_CALENDAR.add_working_days(day, n)

    assert n == VIETNAM_CALENDAR.working_days_between(day, later)
    assert n == 0 or VIETNAM_CALENDAR.is_working_day(later)


@given(DAYS, st.integers(1, 40), EXTRA)
def test_counting_holds_with_the_operators_days(
    day: date, n: int, extra: tuple[set[date], set[date]]
) -> None:
    off, on = extra
    calendar = WorkingCalendar(extra_days_off=off, extra_working_days=on)

    later = calendar.add_working_days(day, n)

    assert n == calendar.working_days_between(day, later)
    assert calendar.is_working_day(later)
    assert not off & {later} and all(calendar.is_working_day(d) for d in on)


@given(DAYS)
def test_the_next_working_day_skips_only_days_off(day: date) -> None:
    nxt = VIETNAM_CALENDAR.next_working_day(day)

    assert VIETNAM_CALENDAR.is_working_day(nxt)
    assert all(
        not VIETNAM_CALENDAR.is_working_day(day + timedelta(days=k))
        for k in range(1, (nxt - day).days)
    )


def test_tet_counts_no_working_days() -> None:
    # 24/01/2025 (Friday) to 03/02/2025: the whole Tết break, one working day after it
    assert 1 == VIETNAM_CALENDAR.working_days_between(date(2025, 1, 24), date(2025, 2, 3))


@pytest.mark.parametrize("year", [FIRST_DAY.year, 2026, 2028, LAST_DAY.year])
def test_every_year_reckoned_with_has_its_tet_off(year: int) -> None:
    # The days reckoned with are the years whose days off the calendar knows: in each, the
    # first day of the lunar year (a weekday falling on it) is a day off, and so are 30/4
    # and 2/9 (a deadline counted across them does not count them as work)
    known = holidays.country_holidays("VN", years=year)
    tet = next(day for day, name in sorted(known.items()) if name == "Lunar New Year")
    assert not VIETNAM_CALENDAR.is_working_day(tet)
    for fixed in (date(year, 4, 30), date(year, 9, 2)):
        assert fixed in known and not VIETNAM_CALENDAR.is_working_day(fixed)
