"""Time rules as policy data, counted in working time (Decision 28/2018, Decree 30/2020).

Letter 1227/UBND-TĐKT, point 4, asks that sending and receiving keep to their time rules;
point 3 that the sender is warned in time when they do not. These are the rules:

- a signed document is sent by the cut-off (same day, at the latest the next working
  morning: :func:`states.timeliness.send_by`); an urgent one within ``send`` minutes;
- a dispatch is delivered (status 01) within ``deliver`` minutes of the send;
- the recipient registers it (03) the working day it arrives (Decree 30 Art. 21), the next
  working day when it arrives in the last ``register_grace`` working minutes of a day;
  urgent documents within ``register`` minutes, whichever comes first;
- a recall is answered (15 or 16) within ``recall_answer`` working minutes;
- an escalation left open ``escalate`` working minutes goes to the agency's leadership.

Each rule has one value per urgency level (0 thường, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc,
4 hỏa tốc hẹn giờ), never longer for a more urgent level. The province sets the rules
(the operator's settings); an agency may tighten them, never loosen them
(:meth:`TimeRules.tightened`). A hỏa tốc hẹn giờ document carries its appointed time,
which is its deadline to be sent, delivered and registered by whatever the rule says.

Rules count working minutes, except ``send``, ``deliver`` and ``register`` for an urgent
document (level 1 and up), which count minutes on the clock: urgent documents are sent
right after signing and handled right after receipt, never held over a night, a weekend
or a holiday (Decision 28/2018 Art. 6, Decree 30 Art. 18).

Working time is the working days of the calendar passed in (weekends, holidays, make-up
days: actions/calendar.py) and, on each, the working hours (Vietnam time). Every function
here is pure: the calendar and the hours are passed in, moments carry their time zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from .timeliness import VIETNAM, WorkingDays, in_vietnam

# QCVN 102 Priority codes.
URGENCY_LEVELS = (0, 1, 2, 3, 4)
URGENCY_NAMES = {
    0: "thường",
    1: "khẩn",
    2: "thượng khẩn",
    3: "hỏa tốc",
    4: "hỏa tốc hẹn giờ",
}

# A calendar with no working day for this long is broken, not merely long.
_SEARCH_DAYS = 3660


@dataclass(frozen=True)
class WorkingHours:
    """The working periods of a working day, Vietnam time, in order and apart.

    The default is the common office day of state agencies: 08:00–12:00, 13:00–17:00.
    A period includes both its ends: a deadline at 17:00 falls in working time.
    """

    periods: tuple[tuple[time, time], ...] = ((time(8), time(12)), (time(13), time(17)))

    def __post_init__(self) -> None:
        if not self.periods:
            raise ValueError("working hours need at least one period")
        last = time.min
        for i, (start, end) in enumerate(self.periods):
            if not start < end:
                raise ValueError(f"period {start:%H:%M}-{end:%H:%M} ends before it starts")
            if i and start == last:
                before = self.periods[i - 1][0]
                raise ValueError(
                    f"working periods {before:%H:%M}-{last:%H:%M} and {start:%H:%M}-{end:%H:%M} "
                    f"touch: write them as one, {before:%H:%M}-{end:%H:%M}"
                )
            if i and start < last:
                raise ValueError("working periods must be in order and not overlap")
            last = end

    @classmethod
    def parse(cls, text: str) -> WorkingHours:
        """``"08:00-12:00,13:00-17:00"`` → the periods (ValueError naming what is wrong)."""
        periods = []
        for part in text.split(","):
            found = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", part)
            if not found:
                raise ValueError(f"working period {part.strip()!r} is not HH:MM-HH:MM")
            h1, m1, h2, m2 = (int(g) for g in found.groups())
            try:
                periods.append((time(h1, m1), time(h2, m2)))
            except ValueError as exc:
                raise ValueError(f"working period {part.strip()!r}: {exc}") from None
        return cls(tuple(periods))

    def __str__(self) -> str:
        return ",".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in self.periods)

    @property
    def per_day(self) -> timedelta:
        return sum(
            (
                datetime.combine(date.min, e) - datetime.combine(date.min, s)
                for s, e in self.periods
            ),
            timedelta(),
        )


DEFAULT_HOURS = WorkingHours()


def _periods_on(
    day: date, calendar: WorkingDays, hours: WorkingHours
) -> list[tuple[datetime, datetime]]:
    if not calendar.is_working_day(day):
        return []
    return [
        (datetime.combine(day, s, VIETNAM), datetime.combine(day, e, VIETNAM))
        for s, e in hours.periods
    ]


def _days_from(day: date, calendar: WorkingDays) -> Iterator[date]:
    for n in range(_SEARCH_DAYS):
        yield day + timedelta(days=n)
    raise ValueError(f"the calendar has no working day for {_SEARCH_DAYS} days from {day}")


def _aware(moment: datetime, name: str) -> datetime:
    """``moment`` in Vietnam time, held within the days reckoned with (``in_vietnam``):
    a deadline kept at the end of year 9999 is "never", not an overflow at the next send."""
    if moment.tzinfo is None:
        raise ValueError(f"{name} must carry its time zone")
    return in_vietnam(moment)


def in_working_time(
    moment: datetime, calendar: WorkingDays, hours: WorkingHours = DEFAULT_HOURS
) -> bool:
    """Whether ``moment`` falls in a working period (both ends included)."""
    m = _aware(moment, "moment")
    return any(s <= m <= e for s, e in _periods_on(m.date(), calendar, hours))


def add_working_time(
    start: datetime,
    amount: timedelta,
    calendar: WorkingDays,
    hours: WorkingHours = DEFAULT_HOURS,
) -> datetime:
    """The moment ``amount`` of working time after ``start`` (Vietnam time).

    Time outside working periods does not count: 2 working hours from Friday 16:00 end on
    Monday at 09:00. With ``amount`` zero, the first working moment at or after ``start``.
    The answer always falls in working time.
    """
    if amount < timedelta(0):
        raise ValueError("amount must not be negative")
    m = _aware(start, "start")
    remaining = amount
    for day in _days_from(m.date(), calendar):
        for s, e in _periods_on(day, calendar, hours):
            if e < m:
                continue
            begin = max(s, m)
            if remaining <= e - begin:
                return begin + remaining
            remaining -= e - begin
    raise AssertionError("unreachable")  # pragma: no cover


def working_time_between(
    start: datetime, end: datetime, calendar: WorkingDays, hours: WorkingHours = DEFAULT_HOURS
) -> timedelta:
    """How much working time lies between ``start`` and ``end`` (negative if reversed)."""
    a, b = _aware(start, "start"), _aware(end, "end")
    if b < a:
        return -working_time_between(b, a, calendar, hours)
    total = timedelta(0)
    day = a.date()
    while day <= b.date():
        for s, e in _periods_on(day, calendar, hours):
            lo, hi = max(s, a), min(e, b)
            if lo < hi:
                total += hi - lo
        day += timedelta(days=1)
    return total


def end_of_working_day(
    moment: datetime, calendar: WorkingDays, hours: WorkingHours = DEFAULT_HOURS
) -> datetime:
    """The end of the working day ``moment`` falls in, or of the next one when it falls
    after the day's last period, on a day off or at night."""
    m = _aware(moment, "moment")
    for day in _days_from(m.date(), calendar):
        periods = _periods_on(day, calendar, hours)
        if periods and periods[-1][1] >= m:
            return periods[-1][1]
    raise AssertionError("unreachable")  # pragma: no cover


# -- the rules -------------------------------------------------------------------------------

# Minutes per urgency level 0..4 (see the module's docstring for which run on the clock).
# The province's defaults; an agency may tighten.
RULES: dict[str, str] = {
    "send": "an urgent signed document is sent within (minutes on the clock); a normal one "
    "by the cut-off of the next working morning",
    "deliver": "a dispatch is delivered (01) within this much time of the send (working "
    "minutes; minutes on the clock for an urgent document)",
    "register": "an urgent received document is registered (03) within this many minutes on "
    "the clock of its arrival (a normal one: the working day it arrives, and within this many "
    "working minutes when an agency sets fewer than the province)",
    "register_grace": "a document arriving in the last minutes of a working day may be "
    "registered the next working day",
    "recall_answer": "a recipient answers a recall, update or replacement (15/16) within",
    "escalate": "an escalation left open this long goes to the agency's leadership",
}

_DEFAULTS: dict[str, tuple[int, ...]] = {
    "send": (0, 60, 30, 15, 15),
    "deliver": (240, 60, 30, 15, 15),
    "register": (480, 120, 60, 30, 30),
    "register_grace": (60, 60, 60, 30, 30),
    "recall_answer": (480, 240, 120, 60, 60),
    "escalate": (480, 240, 120, 60, 60),
}

# No rule may be set longer than this (20 working days), nor to nothing.
_LONGEST = 20 * 8 * 60

# The rules an urgent document's deadlines count on the clock (the module's docstring).
ON_THE_CLOCK = frozenset({"send", "deliver", "register"})


class RuleError(ValueError):
    """A time rule that cannot be: unknown, out of range, loosened or disordered."""

    def __init__(self, message: str, *, rule: str, **details: Any) -> None:
        super().__init__(message)
        self.rule = rule
        self.details = details


@dataclass(frozen=True)
class TimeRules:
    """Every rule's working minutes per urgency level, and the send cut-off."""

    minutes: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: dict(_DEFAULTS))
    send_cutoff: time = time(12, 0)

    def __post_init__(self) -> None:
        if self.send_cutoff.tzinfo is not None:
            # Combined with a date in Vietnam time, its offset would be dropped unseen.
            raise RuleError(
                "The send cut-off is a Vietnam clock time, without an offset.",
                rule="send_cutoff",
            )
        for rule in RULES:
            if rule not in self.minutes:
                raise RuleError(f"rule {rule!r} has no values", rule=rule)
        for rule, values in self.minutes.items():
            _check(rule, values)

    def of(self, rule: str, urgency: int) -> timedelta:
        """Rule ``rule``'s working time at ``urgency`` (levels past 4 count as 4)."""
        values = self.minutes[rule]
        return timedelta(minutes=values[min(max(urgency, 0), len(values) - 1)])

    def tightened(self, overrides: Mapping[str, Any]) -> TimeRules:
        """These rules with an agency's ``overrides`` (rule → five values, or a mapping of
        urgency level → value), each no longer than the province's. RuleError otherwise."""
        minutes = dict(self.minutes)
        for rule, given in overrides.items():
            if rule not in RULES:
                raise RuleError(
                    f"There is no time rule {rule!r}; the rules are {', '.join(RULES)}.",
                    rule=rule,
                )
            values = list(minutes[rule])
            if isinstance(given, Mapping):
                items = [(_level(rule, k), v) for k, v in given.items()]
            elif isinstance(given, list | tuple) and len(given) == len(URGENCY_LEVELS):
                items = list(enumerate(given))
            else:
                raise RuleError(
                    f"Rule {rule!r} takes five values (one per urgency level 0–4) or a "
                    "mapping of level to value.",
                    rule=rule,
                )
            for level, value in items:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise RuleError(
                        f"Rule {rule!r} at level {level} must be whole minutes.",
                        rule=rule,
                        level=level,
                    )
                if rule == "send" and level == 0 and value != 0:
                    # (not minutes: a normal document goes out by the cut-off's clock time)
                    raise RuleError(
                        "Rule 'send' at level 0 is the send cut-off: a normal document goes "
                        f"out by {self.send_cutoff:%H:%M} of the next working day, as the "
                        "province sets it, and takes 0 here; tighten the urgent levels (1–4).",
                        rule=rule,
                        level=level,
                        send_cutoff=f"{self.send_cutoff:%H:%M}",
                    )
                if value > self.minutes[rule][level]:
                    raise RuleError(
                        f"Rule {rule!r} at level {level} may be at most "
                        f"{self.minutes[rule][level]} minutes, as the province sets it.",
                        rule=rule,
                        level=level,
                        limit=self.minutes[rule][level],
                    )
                values[level] = value
            minutes[rule] = tuple(values)
        return replace(self, minutes=minutes)

    def in_force(self, stored: Mapping[str, Any]) -> TimeRules:
        """These rules with an agency's ``stored`` overrides, as far as they still hold.

        They were checked when set (``tightened``); the province may have tightened its
        own since, below some of them, or dropped a rule. A value now longer than the
        province's is the province's, a rule or value that no longer reads is left out:
        the agency's work goes on by the tighter of the two, never stops on what it set.
        """
        minutes = dict(self.minutes)
        for rule, given in stored.items():
            if rule not in RULES:
                continue
            values = list(minutes[rule])
            if isinstance(given, Mapping):
                items = [(k, v) for k, v in given.items()]
            elif isinstance(given, list | tuple) and len(given) == len(URGENCY_LEVELS):
                items = list(enumerate(given))
            else:
                continue
            for key, value in items:
                try:
                    level = _level(rule, key) if isinstance(given, Mapping) else int(key)
                except RuleError:
                    continue
                floor = 0 if rule == "send" else 1
                if isinstance(value, int) and not isinstance(value, bool) and value >= floor:
                    values[level] = min(value, self.minutes[rule][level])
            # A level the agency tightened below the province's more urgent ones (set when
            # the province gave those more) binds them too: a more urgent document is never
            # given longer. ("send" at level 0 is the cut-off's, outside that order.)
            first = 2 if rule == "send" else 1
            for level in range(first, len(values)):
                values[level] = min(values[level], values[level - 1])
            minutes[rule] = tuple(values)
        return replace(self, minutes=minutes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "send_cutoff": self.send_cutoff.strftime("%H:%M"),
            "minutes": {rule: list(v) for rule, v in self.minutes.items()},
        }


def _level(rule: str, key: Any) -> int:
    # One ASCII digit, as the levels are written: not " 0", "00" or an Arabic-Indic "٠",
    # which int() reads as 0 too (two keys for one level, the last silently winning).
    if isinstance(key, int) and not isinstance(key, bool):
        level = key
    elif isinstance(key, str) and len(key) == 1 and key.isascii() and key.isdigit():
        level = int(key)
    else:
        level = -1
    if level not in URGENCY_LEVELS:
        raise RuleError(f"Rule {rule!r}: urgency levels are 0 to 4, not {key!r}.", rule=rule)
    return level


def _check(rule: str, values: tuple[int, ...]) -> None:
    if len(values) != len(URGENCY_LEVELS):
        raise RuleError(f"Rule {rule!r} needs one value per urgency level 0–4.", rule=rule)
    if rule == "send" and values[0] != 0:
        # (not minutes: a normal document goes out by the send cut-off's clock time)
        raise RuleError(
            "Rule 'send' at level 0 is the send cut-off: a normal document goes out by "
            "the cut-off's clock time on the next working day, and takes 0 here; the "
            "urgent levels (1–4) take minutes.",
            rule=rule,
            level=0,
        )
    floor = 0 if rule == "send" else 1
    for level, value in enumerate(values):
        if not floor <= value <= _LONGEST:
            raise RuleError(
                f"Rule {rule!r} at level {level} must be {floor} to {_LONGEST} minutes.",
                rule=rule,
                level=level,
            )
    for level in range(1, len(values)):
        if rule != "send" and values[level] > values[level - 1]:
            raise RuleError(
                f"Rule {rule!r}: a more urgent level may not be given longer "
                f"(level {level} has {values[level]}, level {level - 1} {values[level - 1]}).",
                rule=rule,
                level=level,
            )
    # "send" at level 0 is the cut-off rule; the urgent levels must not be loosened in order.
    for level in range(2, len(values)):
        if rule == "send" and values[level] > values[level - 1]:
            raise RuleError(
                f"Rule 'send': level {level} may not be given longer than level {level - 1}.",
                rule=rule,
                level=level,
            )


PROVINCE_DEFAULTS = TimeRules()


# -- deadlines -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadlines:
    """The deadlines of one installation: its rules, calendar and working hours."""

    rules: TimeRules
    calendar: WorkingDays
    hours: WorkingHours = DEFAULT_HOURS

    def after(self, start: datetime, rule: str, urgency: int) -> datetime:
        """``rule``'s time at ``urgency`` from ``start``: working time, or time on the clock
        for an urgent document's ``send``, ``deliver`` and ``register``."""
        amount = self.rules.of(rule, urgency)
        if urgency >= 1 and rule in ON_THE_CLOCK:
            return _aware(start, "start") + amount
        return add_working_time(start, amount, self.calendar, self.hours)

    def send_by(
        self, signed_at: datetime, urgency: int, appointed: datetime | None = None
    ) -> datetime:
        """When a document signed at ``signed_at`` must have gone out (a hỏa tốc hẹn giờ
        one by its appointed time when that comes first)."""
        day = _aware(signed_at, "signed_at").date()
        nxt = day + timedelta(days=1)
        while not self.calendar.is_working_day(nxt):
            nxt += timedelta(days=1)
        normal = datetime.combine(nxt, self.rules.send_cutoff, VIETNAM)
        if urgency >= 1:
            return _by_appointment(
                min(normal, self.after(signed_at, "send", urgency)), urgency, appointed
            )
        return normal

    def deliver_by(
        self, sent_at: datetime, urgency: int, appointed: datetime | None = None
    ) -> datetime:
        """When a dispatch sent at ``sent_at`` must have arrived (01); a hỏa tốc hẹn giờ
        document's appointed time when it has one and it comes first: an appointment
        days away does not make the most urgent level wait longer than its rule."""
        return _by_appointment(self.after(sent_at, "deliver", urgency), urgency, appointed)

    def register_by(
        self, arrived_at: datetime, urgency: int, appointed: datetime | None = None
    ) -> datetime:
        """When a document that arrived at ``arrived_at`` must be registered (03); a hỏa
        tốc hẹn giờ one by its appointed time when that comes first."""
        end = end_of_working_day(arrived_at, self.calendar, self.hours)
        grace = self.rules.of("register_grace", urgency)
        start = add_working_time(arrived_at, timedelta(0), self.calendar, self.hours)
        if working_time_between(start, end, self.calendar, self.hours) < grace:
            end = end_of_working_day(end + timedelta(microseconds=1), self.calendar, self.hours)
        if urgency >= 1:
            return _by_appointment(
                min(end, self.after(arrived_at, "register", urgency)), urgency, appointed
            )
        if self.rules.of("register", 0) < PROVINCE_DEFAULTS.of("register", 0):
            # An agency's own, tighter rule for normal documents: its working minutes too.
            return min(end, self.after(arrived_at, "register", 0))
        return end

    def remaining(self, now: datetime, due: datetime) -> timedelta:
        """Working time left from ``now`` until ``due`` (negative once past)."""
        return working_time_between(now, due, self.calendar, self.hours)


def _by_appointment(due: datetime, urgency: int, appointed: datetime | None) -> datetime:
    """``due``, or a hỏa tốc hẹn giờ document's appointed time when that comes first."""
    if urgency >= 4 and appointed is not None:
        return min(_aware(appointed, "appointed"), due)
    return due
