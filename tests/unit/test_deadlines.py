"""Time rules in working time: every deadline falls in working time, adding then counting
back gives what was added, urgent levels are never later than normal ones, and agencies
may tighten the province's rules but never loosen them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from congvan.actions.calendar import WorkingCalendar
from congvan.states.deadlines import (
    PROVINCE_DEFAULTS,
    Deadlines,
    RuleError,
    TimeRules,
    WorkingHours,
    add_working_time,
    end_of_working_day,
    in_working_time,
    working_time_between,
)
from congvan.states.timeliness import LAST_DAY, VIETNAM

CALENDAR = WorkingCalendar()
HOURS = WorkingHours()
DEADLINES = Deadlines(PROVINCE_DEFAULTS, CALENDAR, HOURS)

moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
amounts = st.integers(min_value=0, max_value=20 * 8 * 60).map(lambda m: timedelta(minutes=m))
levels = st.integers(min_value=0, max_value=4)
rules = st.sampled_from(["deliver", "register", "recall_answer", "escalate"])


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VIETNAM)  # type: ignore[misc]


@settings(max_examples=300, deadline=None)
@given(moments, amounts)
def test_every_deadline_falls_in_working_time(start: datetime, amount: timedelta) -> None:
    assert in_working_time(add_working_time(start, amount, CALENDAR, HOURS), CALENDAR, HOURS)


@settings(max_examples=300, deadline=None)
@given(moments, amounts)
def test_adding_working_time_then_counting_back_gives_what_was_added(
    start: datetime, amount: timedelta
) -> None:
    due = add_working_time(start, amount, CALENDAR, HOURS)
    assert due >= start
    assert working_time_between(start, due, CALENDAR, HOURS) == amount
    assert working_time_between(due, start, CALENDAR, HOURS) == -amount


@settings(max_examples=200, deadline=None)
@given(moments, rules, levels)
def test_a_more_urgent_level_is_never_due_later(start: datetime, rule: str, level: int) -> None:
    assert DEADLINES.after(start, rule, min(level + 1, 4)) <= DEADLINES.after(start, rule, level)
    more = min(level + 1, 4)
    assert DEADLINES.send_by(start, more) <= DEADLINES.send_by(start, level)
    assert DEADLINES.register_by(start, more) <= DEADLINES.register_by(start, level)
    assert DEADLINES.deliver_by(start, more) <= DEADLINES.deliver_by(start, level)


@settings(max_examples=200, deadline=None)
@given(moments, levels)
def test_registration_is_due_in_working_time_the_day_it_arrives_or_the_next(
    arrived: datetime, level: int
) -> None:
    due = DEADLINES.register_by(arrived, level)
    if level == 0:
        assert in_working_time(due, CALENDAR, HOURS)
    else:  # urgent: within its minutes on the clock, nights and days off included
        assert due <= arrived + PROVINCE_DEFAULTS.of("register", level)
    assert due > arrived
    # Never past the end of the next working day after the one it arrived in.
    first_end = end_of_working_day(arrived, CALENDAR, HOURS)
    assert due <= end_of_working_day(first_end + timedelta(seconds=1), CALENDAR, HOURS)


def test_working_time_skips_nights_weekends_and_tet() -> None:
    # Friday 16:00 + 2 working hours: Monday 09:00.
    assert add_working_time(vn(2026, 1, 9, 16), timedelta(hours=2), CALENDAR) == vn(2026, 1, 12, 9)
    # The lunch break does not count: 11:30 + 1 hour is 13:30.
    assert add_working_time(vn(2026, 1, 7, 11, 30), timedelta(hours=1), CALENDAR) == vn(
        2026, 1, 7, 13, 30
    )
    # Before Tết 2026 (16–20 February off): the first working day back is 23 February.
    due = add_working_time(vn(2026, 2, 13, 16, 30), timedelta(hours=1), CALENDAR)
    assert due.date() > date(2026, 2, 20)
    assert in_working_time(due, CALENDAR)
    # Zero: the first working moment at or after the start.
    assert add_working_time(vn(2026, 1, 10, 9), timedelta(0), CALENDAR) == vn(2026, 1, 12, 8)


def test_registration_is_due_the_same_working_day_or_the_next_late_in_the_day() -> None:
    # Arrived Tuesday 09:00: due Tuesday 17:00 (Decree 30 Art. 21).
    assert DEADLINES.register_by(vn(2026, 1, 6, 9), 0) == vn(2026, 1, 6, 17)
    # Arrived Tuesday 16:30, in the day's last working hour: due Wednesday 17:00.
    assert DEADLINES.register_by(vn(2026, 1, 6, 16, 30), 0) == vn(2026, 1, 7, 17)
    # Arrived on Saturday: due Monday 17:00.
    assert DEADLINES.register_by(vn(2026, 1, 10, 10), 0) == vn(2026, 1, 12, 17)
    # Hỏa tốc: within 30 minutes.
    assert DEADLINES.register_by(vn(2026, 1, 6, 9), 3) == vn(2026, 1, 6, 9, 30)


def test_an_agency_tightening_registration_of_normal_documents_has_its_working_minutes() -> None:
    tight = TimeRules(minutes={**PROVINCE_DEFAULTS.minutes, "register": (60, 60, 60, 30, 30)})
    deadlines = Deadlines(tight, CALENDAR, HOURS)
    # Arrived Tuesday 09:00: due within 60 working minutes, not at the day's end
    assert deadlines.register_by(vn(2026, 1, 6, 9), 0) == vn(2026, 1, 6, 10)
    # Arrived Saturday: 60 working minutes into Monday
    assert deadlines.register_by(vn(2026, 1, 10, 10), 0) == vn(2026, 1, 12, 9)
    # Never later than the day's rule: arrived 16:30 (in the grace), still 60 working minutes
    assert deadlines.register_by(vn(2026, 1, 6, 16, 30), 0) == vn(2026, 1, 7, 8, 30)


def test_urgent_documents_wait_for_no_working_morning() -> None:
    # Decision 28/2018 Art. 6, Decree 30 Art. 18: sent right after signing, handled right
    # after receipt. Signed or arrived on a Friday evening, an urgent document is due that
    # evening, a normal one on Monday.
    friday_evening = vn(2026, 5, 15, 18)
    assert DEADLINES.send_by(friday_evening, 0) == vn(2026, 5, 18, 12)
    assert DEADLINES.send_by(friday_evening, 1) == vn(2026, 5, 15, 19)
    assert DEADLINES.send_by(friday_evening, 3) == vn(2026, 5, 15, 18, 15)
    assert DEADLINES.deliver_by(friday_evening, 0) == vn(2026, 5, 18, 12)
    assert DEADLINES.deliver_by(friday_evening, 2) == vn(2026, 5, 15, 18, 30)
    assert DEADLINES.register_by(friday_evening, 0) == vn(2026, 5, 18, 17)
    assert DEADLINES.register_by(friday_evening, 1) == vn(2026, 5, 15, 20)
    # On the eve of Tết 2026 (16-20 February off) too.
    assert DEADLINES.register_by(vn(2026, 2, 13, 23, 50), 3) == vn(2026, 2, 14, 0, 20)
    # The other rules still count working time: an urgent recall answered by Monday.
    assert DEADLINES.after(friday_evening, "recall_answer", 3) == vn(2026, 5, 18, 9)


def test_a_hoa_toc_hen_gio_document_is_sent_and_registered_by_its_appointment() -> None:
    # Signed Friday 21:00, appointment Saturday 08:00: sent within 15 minutes, and never
    # after the appointment however long the rule would give.
    signed = vn(2027, 1, 15, 21)
    saturday_eight = vn(2027, 1, 16, 8)
    assert DEADLINES.send_by(signed, 4, saturday_eight) == vn(2027, 1, 15, 21, 15)
    soon = vn(2027, 1, 15, 21, 5)
    assert DEADLINES.send_by(signed, 4, soon) == soon
    assert DEADLINES.register_by(signed, 4, soon) == soon
    assert DEADLINES.register_by(signed, 4, saturday_eight) == vn(2027, 1, 15, 21, 30)
    # An appointment already past is a deadline already past.
    assert DEADLINES.send_by(signed, 4, vn(2027, 1, 15, 20)) == vn(2027, 1, 15, 20)
    # Below level 4 an appointment means nothing.
    assert DEADLINES.send_by(signed, 3, soon) == vn(2027, 1, 15, 21, 15)


def test_send_by_is_the_next_working_morning_and_sooner_when_urgent() -> None:
    signed = vn(2026, 1, 9, 15)  # a Friday afternoon
    assert DEADLINES.send_by(signed, 0) == vn(2026, 1, 12, 12)
    assert DEADLINES.send_by(signed, 1) == vn(2026, 1, 9, 16)
    assert DEADLINES.send_by(signed, 3) == vn(2026, 1, 9, 15, 15)


def test_a_hoa_toc_hen_gio_document_is_due_at_its_appointed_time_or_its_rule() -> None:
    sent_at = vn(2026, 1, 6, 9)
    rule = DEADLINES.deliver_by(sent_at, 4)
    assert rule <= DEADLINES.deliver_by(sent_at, 3) == vn(2026, 1, 6, 9, 15)
    # An appointment before the rule's end is the deadline, even out of working hours
    appointed = vn(2026, 1, 6, 9, 5)
    assert DEADLINES.deliver_by(sent_at, 4, appointed) == appointed
    # One later (this evening, or in two weeks) does not loosen the most urgent level
    for later in (vn(2026, 1, 6, 20), vn(2026, 1, 20, 9)):
        assert DEADLINES.deliver_by(sent_at, 4, later) == rule
    # And an appointment means nothing below level 4
    assert DEADLINES.deliver_by(sent_at, 3, appointed) == vn(2026, 1, 6, 9, 15)


def test_an_agency_may_tighten_the_provinces_rules_but_not_loosen_them() -> None:
    tighter = PROVINCE_DEFAULTS.tightened(
        {"deliver": [120, 60, 30, 15, 15], "escalate": {"0": 240}}
    )
    assert tighter.of("deliver", 0) == timedelta(hours=2)
    assert tighter.of("escalate", 0) == timedelta(hours=4)
    assert tighter.of("escalate", 1) == PROVINCE_DEFAULTS.of("escalate", 1)
    with pytest.raises(RuleError, match="at most 240"):
        PROVINCE_DEFAULTS.tightened({"deliver": {"0": 300}})
    with pytest.raises(RuleError, match="no time rule"):
        PROVINCE_DEFAULTS.tightened({"deliverr": [1, 1, 1, 1, 1]})
    with pytest.raises(RuleError, match="more urgent level"):
        PROVINCE_DEFAULTS.tightened({"deliver": [30, 60, 30, 15, 15]})
    with pytest.raises(RuleError, match="urgency levels are 0 to 4"):
        PROVINCE_DEFAULTS.tightened({"deliver": {"7": 10}})
    with pytest.raises(RuleError, match="whole minutes"):
        PROVINCE_DEFAULTS.tightened({"deliver": {"0": "soon"}})
    with pytest.raises(RuleError, match="must be 1 to"):
        PROVINCE_DEFAULTS.tightened({"deliver": {"4": 0}})
    # "send" at level 0 is the cut-off (a clock time), not minutes: said so, not "at most 0"
    with pytest.raises(RuleError, match="'send' at level 0 is the send cut-off") as caught:
        PROVINCE_DEFAULTS.tightened({"send": [600, 60, 30, 15, 15]})
    assert caught.value.details["send_cutoff"] == "12:00"
    assert PROVINCE_DEFAULTS.tightened({"send": [0, 45, 30, 15, 15]}).of("send", 1) == timedelta(
        minutes=45
    )


def test_working_hours_are_read_and_checked() -> None:
    hours = WorkingHours.parse("07:30-11:30, 13:30-17:00")
    assert hours.periods == ((time(7, 30), time(11, 30)), (time(13, 30), time(17)))
    assert hours.per_day == timedelta(hours=7, minutes=30)
    assert str(hours) == "07:30-11:30,13:30-17:00"
    for bad in ("8-12", "12:00-08:00", "08:00-12:00,11:00-17:00", "25:00-26:00", ""):
        with pytest.raises(ValueError):
            WorkingHours.parse(bad)


def test_working_periods_that_touch_are_told_to_be_written_as_one() -> None:
    with pytest.raises(ValueError, match="touch: write them as one, 08:00-17:00"):
        WorkingHours.parse("08:00-12:00,12:00-17:00")


def test_a_send_cut_off_with_an_offset_is_refused_by_the_rules() -> None:
    # Combined with a date in Vietnam time, its offset would be dropped unseen
    with pytest.raises(RuleError, match="without an offset"):
        TimeRules(send_cutoff=time(5, 0, tzinfo=UTC))


def test_settings_read_a_cut_off_in_vietnam_time_and_keep_it_in_the_working_day() -> None:
    from congvan.workflow.settings import Settings

    # A clock time written with an offset is the Vietnam time it names
    for written in ("05:00Z", "05:00+00:00", "12:00+07:00", "12:00"):
        assert time(12, 0) == Settings(send_cutoff=written).send_cutoff, written
    assert time(16, 0) == Settings(send_cutoff="16:00").send_cutoff
    # One outside working time (before, after, or in the lunch break between its periods)
    # would make every normal letter due outside it
    for outside in ("07:59", "12:01", "12:30", "12:59", "17:01", "18:00", "23:59", "00:00"):
        with pytest.raises(ValueError, match="falls outside working time"):
            Settings(send_cutoff=outside)
    for edge in ("08:00", "12:00", "13:00", "17:00"):  # a period's ends are its moments
        assert time.fromisoformat(edge) == Settings(send_cutoff=edge).send_cutoff
    # Unset, it is noon, or the working morning's end when the hours end it before noon
    for hours, cutoff in (
        ("08:00-12:00,13:00-17:00", time(12)),
        ("07:30-11:30,13:30-17:30", time(11, 30)),
        ("08:00-17:00", time(12)),
        ("13:00-17:00", time(17)),  # no morning: the first period's end
    ):
        assert cutoff == Settings(working_hours=hours).send_cutoff, hours
    with pytest.raises(ValueError, match="falls outside working time"):
        Settings(working_hours="07:30-11:30,13:30-17:30", send_cutoff="12:00")
    assert time(7, 30) == Settings(send_cutoff="07:30", working_hours="07:30-11:30").send_cutoff
    # A registration grace as long as the working day would never let a letter be early
    with pytest.raises(ValueError, match="shorter than the working day"):
        Settings(time_rules={"register_grace": [480, 60, 60, 30, 30]})
    with pytest.raises(ValueError, match="shorter than the working day"):
        Settings(working_hours="11:30-12:15")  # the default grace is 60 minutes


def test_moments_without_a_time_zone_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        add_working_time(datetime(2026, 1, 5, 9), timedelta(hours=1), CALENDAR)
    with pytest.raises(ValueError, match="negative"):
        add_working_time(vn(2026, 1, 5, 9), timedelta(hours=-1), CALENDAR)


def test_the_provinces_send_rule_takes_no_minutes_for_a_normal_document() -> None:
    from congvan.workflow.settings import Settings

    # Level 0 of "send" is the cut-off's clock time: minutes there would be dropped unseen
    with pytest.raises(ValueError, match="'send' at level 0 is the send cut-off"):
        Settings(time_rules={"send": [30, 60, 30, 15, 15]}).province_rules()
    with pytest.raises(RuleError, match="'send' at level 0 is the send cut-off"):
        TimeRules(minutes={**PROVINCE_DEFAULTS.minutes, "send": (1, 60, 30, 15, 15)})
    rules = Settings(time_rules={"send": [0, 60, 30, 15, 15]}).province_rules()
    assert rules.minutes["send"] == (0, 60, 30, 15, 15)


def test_rules_need_every_value_and_a_sane_range() -> None:
    with pytest.raises(RuleError, match="no values"):
        TimeRules(minutes={"deliver": (1, 1, 1, 1, 1)})
    with pytest.raises(RuleError, match="one value per urgency"):
        TimeRules(minutes={**PROVINCE_DEFAULTS.minutes, "deliver": (1, 1)})


def test_an_agencys_stored_rules_hold_as_far_as_the_province_now_allows() -> None:
    # Set when the province allowed 240 for deliver at level 0; it now allows 100 only
    province = PROVINCE_DEFAULTS.tightened({"deliver": [100, 60, 30, 15, 15]})
    stored = {"deliver": [120, 60, 30, 10, 10], "retired_rule": [1] * 5, "escalate": {"4": 5}}

    in_force = province.in_force(stored)

    # The tighter of the two, value by value; what no longer reads is left out, never raised
    assert [in_force.of("deliver", level).seconds // 60 for level in range(5)] == [
        100,
        60,
        30,
        10,
        10,
    ]
    assert in_force.of("escalate", 4) == min(timedelta(minutes=5), province.of("escalate", 4))
    assert province.in_force({"deliver": "junk", "escalate": {"9": 1, "0": True}}) == province


@pytest.mark.parametrize("level", [" 0", "00", "٠", "0.0", True, "+1"])
def test_an_urgency_level_is_written_as_one_digit(level: object) -> None:
    with pytest.raises(RuleError, match="urgency levels are 0 to 4"):
        PROVINCE_DEFAULTS.tightened({"deliver": {level: 10}})


@pytest.mark.parametrize(
    "appointed",
    [datetime(9999, 12, 31, 17, tzinfo=UTC), datetime.max.replace(tzinfo=UTC)],
)
def test_an_appointed_time_past_what_vietnam_time_can_write_is_a_deadline_never_reached(
    appointed: datetime,
) -> None:
    # Given a hỏa tốc hẹn giờ document whose appointed time was kept before the API held
    # moments to the years reckoned with, sent now
    sent_at = vn(2026, 4, 24, 10)
    # When its delivery deadline is worked out, and counted from
    due = DEADLINES.deliver_by(sent_at, 4, appointed)
    # Then it is the rule's (the appointment, read as the end of the last day reckoned
    # with, comes later), which every rule counts with
    assert due == DEADLINES.deliver_by(sent_at, 4) < datetime.combine(LAST_DAY, time.max, VIETNAM)
    assert DEADLINES.remaining(sent_at, due) > timedelta(0)
    assert add_working_time(appointed, timedelta(hours=1), CALENDAR, HOURS) > due
    assert end_of_working_day(appointed, CALENDAR, HOURS) > due
    assert not in_working_time(appointed, CALENDAR, HOURS)


def test_an_agency_rule_the_province_loosened_around_still_holds_in_order() -> None:
    # Given an agency's normal deliver tightened to 100, under the province's 240 and above
    # its khẩn 60; the province later gives khẩn 200 (its own order still holds)
    kept = {"deliver": {"0": 100}}
    assert (100, 60, 30, 15, 15) == PROVINCE_DEFAULTS.tightened(kept).minutes["deliver"]
    loosened = TimeRules(minutes={**PROVINCE_DEFAULTS.minutes, "deliver": (240, 200, 30, 15, 15)})
    # Then the agency's rules in force never stop on it: khẩn is no longer than normal
    assert (100, 100, 30, 15, 15) == loosened.in_force(kept).minutes["deliver"]
