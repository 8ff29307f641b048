"""When a signed document must be sent: Decision 28/2018/QĐ-TTg Art. 6, Decree 30/2020 Art. 18.

"Send on the signing day, at the latest the morning of the next working day"; urgent
documents (khẩn and above) are sent right after signing. Timeliness is judged when it
happens: at signing, a document whose own date's deadline has passed, or that waited too
long after review, is flagged. The rules are pure: the calendar of working days is passed
in, and the moments carry their own time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, Protocol

# Dates and cut-offs on documents are Vietnamese: UTC+7 all year, no daylight saving.
VIETNAM = timezone(timedelta(hours=7), "ICT")

# The days the engine reckons with. Every date and moment the API takes falls within them:
# the years whose days off the working calendar knows (the ``holidays`` package works out
# Viet Nam's lunar holidays, Tết among them, for 1901 to 2100: a deadline counted in
# working time on a day outside them would count Tết as work), well inside Python's own
# limits (years 1 to 9999), so that a moment converts to Vietnam time and working days
# count on from any of them without running out of calendar.
FIRST_DAY = date(1901, 1, 1)
LAST_DAY = date(2100, 12, 31)
_FIRST_MOMENT = datetime.combine(FIRST_DAY, time.min, VIETNAM)
_LAST_MOMENT = datetime.combine(LAST_DAY, time.max, VIETNAM)


def reckoned(value: date) -> bool:
    """Whether a date, or a moment (in Vietnam time; as written when it has no offset),
    falls within the days the engine reckons with (``FIRST_DAY`` to ``LAST_DAY``)."""
    if isinstance(value, datetime):
        if value.utcoffset() is not None:
            return _FIRST_MOMENT <= value <= _LAST_MOMENT
        value = value.date()
    return FIRST_DAY <= value <= LAST_DAY


def in_vietnam(moment: datetime) -> datetime:
    """``moment`` in Vietnam time; one outside the days reckoned with as the nearest end
    of them. None comes in through the API; one kept before the API held to the range
    (a deadline at the end of year 9999, which Vietnam time cannot even write) still
    converts and counts, as the "never" or "long ago" it means to a deadline."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the moment must carry its time zone")
    return min(max(moment, _FIRST_MOMENT), _LAST_MOMENT).astimezone(VIETNAM)


def shown_exactly(moment: datetime) -> str:
    """``moment`` as every command and report writes one where it is evidence (verify,
    explain, evidence bundles): ISO 8601 in Vietnam time, to the second. A moment without
    an offset is UTC, as databases give stored ones back and CRLs carry theirs."""
    return in_vietnam(utc_unless_said(moment)).replace(microsecond=0).isoformat()


def shown_on_the_clock(moment: datetime) -> str:
    """``moment`` as every command writes one for people: the Vietnam clock time, then the
    date, as Vietnamese writes them ("14:30 05/12/2026"). A moment without an offset is UTC."""
    return in_vietnam(utc_unless_said(moment)).strftime("%H:%M %d/%m/%Y")


def utc_unless_said(moment: datetime) -> datetime:
    """``moment``, UTC when it has no offset (as databases give stored ones back)."""
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


def reckoned_day(day: date) -> date:
    """``day``, or the nearest end of the days reckoned with when it is outside them."""
    return min(max(day, FIRST_DAY), LAST_DAY)


# "The morning of the next working day" ends at noon unless the operator says otherwise.
DEFAULT_CUTOFF = time(12, 0)

# Urgency codes (QCVN 102 Priority) from khẩn upwards are due as soon as they are signed.
URGENT_FROM = 1


class WorkingDays(Protocol):
    """A calendar that knows which days are working days."""

    def is_working_day(self, day: date) -> bool: ...


def next_working_day(calendar: WorkingDays, day: date) -> date:
    """The first working day after ``day``."""
    nxt = day + timedelta(days=1)
    while not calendar.is_working_day(nxt):
        nxt += timedelta(days=1)
    return nxt


def working_days_between(calendar: WorkingDays, start: date, end: date) -> int:
    """How many working days fall after ``start``, up to and including ``end``."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        count += calendar.is_working_day(day)
    return count


def is_urgent(urgency: int) -> bool:
    return urgency >= URGENT_FROM


def send_by(
    signed_at: datetime,
    urgency: int,
    calendar: WorkingDays,
    cutoff: time = DEFAULT_CUTOFF,
) -> datetime:
    """The latest moment a document signed at ``signed_at`` may be sent.

    Urgent: the signing moment itself (send at once). Otherwise ``cutoff`` (Vietnam time)
    on the first working day after the Vietnamese signing day: a document signed on a
    Friday afternoon may wait until Monday noon, one signed before Tết until noon of the
    first day back.
    """
    if signed_at.tzinfo is None:
        raise ValueError("signed_at must carry its time zone")
    if is_urgent(urgency):
        return signed_at
    day = in_vietnam(signed_at).date()
    return datetime.combine(next_working_day(calendar, day), cutoff, VIETNAM)


_send_by = send_by  # judge_signing's parameter of that name shadows it


def appointed_moment(text: str | None) -> datetime | None:
    """A hỏa tốc hẹn giờ document's appointed time as stored (ISO 8601 with its offset)."""
    return datetime.fromisoformat(text) if text else None


def end_of_day(day: date) -> datetime:
    """The last moment of a Vietnamese day: when only a document's date is known."""
    return datetime.combine(day, time.max, VIETNAM)


def send_by_date(
    day: date, urgency: int, calendar: WorkingDays, cutoff: time = DEFAULT_CUTOFF
) -> datetime:
    """The latest send moment for a document dated ``day``, its signing time unknown.

    It may be signed as late as the end of its date, so an urgent one is due by then.
    """
    return send_by(end_of_day(reckoned_day(day)), urgency, calendar, cutoff)


# A document reviewed (approved) is signed within this many working days unless the
# operator says otherwise: the law sets no figure; one day matches the day Decision 28
# gives from signing to sending.
DEFAULT_SIGN_WITHIN_WORKING_DAYS = 1


@dataclass(frozen=True)
class SigningTimeliness:
    """How timely a signing was, judged at that moment."""

    signed_at: datetime
    send_by: datetime  # when the signed document must go out
    reviewed_at: datetime | None
    dated_send_by: datetime | None  # when a document of its date had to go out
    late_by: timedelta | None  # past ``dated_send_by``: its date is stale
    late_by_working_days: int | None
    review_to_signing_working_days: int | None
    sign_within_working_days: int

    @property
    def late(self) -> bool:
        """Signed after its own date's deadline: dated long before it was signed."""
        return self.late_by is not None

    @property
    def signed_long_after_review(self) -> bool:
        days = self.review_to_signing_working_days
        return days is not None and days > self.sign_within_working_days

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON: moments in ISO 8601 with their offset, ``late_by`` in whole hours."""

        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "signed_at": iso(self.signed_at),
            "send_by": iso(self.send_by),
            "reviewed_at": iso(self.reviewed_at),
            "dated_send_by": iso(self.dated_send_by),
            "late": self.late,
            "late_by_hours": int(self.late_by // timedelta(hours=1)) if self.late_by else None,
            "late_by_working_days": self.late_by_working_days,
            "review_to_signing_working_days": self.review_to_signing_working_days,
            "sign_within_working_days": self.sign_within_working_days,
            "signed_long_after_review": self.signed_long_after_review,
        }


def judge_signing(
    signed_at: datetime,
    *,
    urgency: int,
    dated: date | None,
    reviewed_at: datetime | None,
    calendar: WorkingDays,
    cutoff: time = DEFAULT_CUTOFF,
    sign_within_working_days: int = DEFAULT_SIGN_WITHIN_WORKING_DAYS,
    send_by: datetime | None = None,
) -> SigningTimeliness:
    """Judge a signing at ``signed_at`` of a document dated ``dated``, approved at
    ``reviewed_at``; ``send_by`` is when it must go out by the time rules in force
    (``Deadlines.send_by``), else :func:`send_by` here says.

    Late: signed after the moment a document of its date had to be sent (its date no
    longer fits the signing), by so many hours and working days (those after the
    deadline's day, up to the signing day, Vietnamese days). Long after review: more
    working days from the review day to the signing day than ``sign_within_working_days``.
    """
    for name, moment in (("signed_at", signed_at), ("reviewed_at", reviewed_at)):
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"{name} must carry its time zone")
    signing_day = in_vietnam(signed_at).date()
    dated_send_by = late_by = late_days = waited = None
    if dated is not None:
        dated_send_by = send_by_date(dated, urgency, calendar, cutoff)
        if signed_at > dated_send_by:
            late_by = signed_at - dated_send_by
            late_days = working_days_between(calendar, dated_send_by.date(), signing_day)
    if reviewed_at is not None:
        review_day = in_vietnam(reviewed_at).date()
        waited = working_days_between(calendar, review_day, signing_day)
    return SigningTimeliness(
        signed_at=in_vietnam(signed_at),
        send_by=in_vietnam(send_by or _send_by(signed_at, urgency, calendar, cutoff)),
        reviewed_at=in_vietnam(reviewed_at) if reviewed_at else None,
        dated_send_by=dated_send_by,
        late_by=late_by,
        late_by_working_days=late_days,
        review_to_signing_working_days=waited,
        sign_within_working_days=sign_within_working_days,
    )


def judge_sending(sent_at: datetime, send_by: datetime | None) -> dict[str, Any]:
    """The send at ``sent_at`` judged against the moment its signing set (``send_by``,
    None when the signing kept none): plain JSON for the trail and the document view."""
    if sent_at.tzinfo is None:
        raise ValueError("sent_at must carry its time zone")
    late_by = sent_at - send_by if send_by is not None and sent_at > send_by else None
    return {
        "sent_at": in_vietnam(sent_at).isoformat(),
        "send_by": in_vietnam(send_by).isoformat() if send_by else None,
        "late": None if send_by is None else late_by is not None,
        "late_by_hours": int(late_by // timedelta(hours=1)) if late_by else None,
    }
