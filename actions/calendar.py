"""Working days in Viet Nam, as the Government announces them each year.

A working day is a weekday that is not a public holiday (Tết included) or a day off
swapped from another day, or a Saturday the Government made a make-up working day (e.g.
26/04/2025 for 02/05/2025, 04/05/2024 for 29/04/2024). The ``holidays`` package knows
the announcements up to its release; the operator adds later ones (``extra_days_off``,
``extra_working_days`` in the settings), and they win over the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import lru_cache

import holidays

from congvan.states.deadlines import DEFAULT_HOURS, WorkingHours
from congvan.states.timeliness import next_working_day as _next_working_day
from congvan.states.timeliness import working_days_between as _working_days_between


@lru_cache(maxsize=64)
def _vietnam(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """The package's days off and make-up working days of ``year``."""
    known = holidays.country_holidays("VN", years=year)
    return frozenset(known), frozenset(d for d in known.weekend_workdays if d.year == year)


def load_years(today: date) -> None:
    """Load this year's and next year's days off now: the first look at a year loads the
    package's country module and works out its lunar holidays (about 0.15 s), which a
    long-running process pays at its start rather than in its first transition."""
    for year in (today.year, today.year + 1):
        _vietnam(year)


class WorkingCalendar:
    """Viet Nam's working days, with the operator's extra days off and make-up days."""

    def __init__(
        self,
        extra_days_off: Iterable[date] = (),
        extra_working_days: Iterable[date] = (),
        hours: WorkingHours = DEFAULT_HOURS,
    ) -> None:
        self.hours = hours  # the working hours of each working day (Vietnam time)
        self.extra_days_off = frozenset(extra_days_off)
        self.extra_working_days = frozenset(extra_working_days)
        both = self.extra_days_off & self.extra_working_days
        if both:
            raise ValueError(
                f"days both off and working: {', '.join(sorted(d.isoformat() for d in both))}"
            )

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_working_days:
            return True
        if day in self.extra_days_off:
            return False
        days_off, make_up = _vietnam(day.year)
        if day in make_up:
            return True
        return day.weekday() < 5 and day not in days_off

    def next_working_day(self, day: date) -> date:
        """The first working day after ``day``."""
        return _next_working_day(self, day)

    def add_working_days(self, day: date, n: int) -> date:
        """The ``n``-th working day after ``day`` (``n`` ≥ 0; 0 is ``day`` itself)."""
        if n < 0:
            raise ValueError("n must not be negative")
        for _ in range(n):
            day = self.next_working_day(day)
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """How many working days fall after ``start``, up to and including ``end``."""
        return _working_days_between(self, start, end)


VIETNAM_CALENDAR = WorkingCalendar()


def is_working_day(day: date) -> bool:
    return VIETNAM_CALENDAR.is_working_day(day)


def next_working_day(day: date) -> date:
    """The first working day after ``day``, by the package's calendar alone."""
    return VIETNAM_CALENDAR.next_working_day(day)
