"""When a signed document must be sent: Decision 28/2018/QĐ-TTg Art. 6, Decree 30/2020 Art. 18.

"Send on the signing day, at the latest the morning of the next working day"; urgent
documents (khẩn and above) are sent right after signing. The rule is pure: the calendar
of working days is passed in, and the moments carry their own time zone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Protocol

# Dates and cut-offs on documents are Vietnamese: UTC+7 all year, no daylight saving.
VIETNAM = timezone(timedelta(hours=7), "ICT")

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
    day = signed_at.astimezone(VIETNAM).date()
    return datetime.combine(next_working_day(calendar, day), cutoff, VIETNAM)


def end_of_day(day: date) -> datetime:
    """The last moment of a Vietnamese day: when only a document's date is known."""
    return datetime.combine(day, time.max, VIETNAM)


def send_by_date(
    day: date, urgency: int, calendar: WorkingDays, cutoff: time = DEFAULT_CUTOFF
) -> datetime:
    """The latest send moment for a document dated ``day``, its signing time unknown.

    It may be signed as late as the end of its date, so an urgent one is due by then.
    """
    return send_by(end_of_day(day), urgency, calendar, cutoff)
