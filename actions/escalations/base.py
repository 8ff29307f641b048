"""What every part of the watch shares: the rules it holds agencies to, the engine it fires
escalations through, where it tells people, and how it writes its timers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from congvan.states.deadlines import Deadlines, TimeRules, WorkingHours
from congvan.states.timeliness import WorkingDays
from congvan.storage.ids import new_id
from congvan.storage.unit_of_work import UnitOfWork

from ..context import Events

# queue_notifications(uow, agency_id=..., kind=..., event=...) -> how many were queued.
Notify = Callable[..., int]


class WatchBase:
    """The province's time rules, the working calendar, and where escalations are told."""

    def __init__(
        self,
        rules: TimeRules,
        calendar: WorkingDays,
        hours: WorkingHours,
        *,
        notify: Notify | None = None,
        job_deadline: timedelta = timedelta(minutes=5),
    ) -> None:
        self.rules = rules
        self.calendar = calendar
        self.hours = hours
        self.notify = notify
        # How long a job it writes (a resend from an escalation) waits for a worker.
        self.job_deadline = job_deadline
        # The engine (wired by bootstrap), to close and raise escalations in a transaction.
        self.events: Events | None = None

    def deadlines(self, uow: UnitOfWork, agency_id: str) -> Deadlines:
        """The province's rules, tightened by the agency's own."""
        overrides = uow.escalations.time_rules(agency_id)
        rules = self.rules.in_force(overrides) if overrides else self.rules
        return Deadlines(rules, self.calendar, self.hours)


def add_timer(
    uow: UnitOfWork,
    kind: str,
    ref_id: str,
    document_id: str | None,
    due: datetime,
    payload: Mapping[str, Any] | None = None,
    *,
    agency_id: str,
) -> None:
    """Write a timer of ``kind`` on ``ref_id``, due at ``due``, in this transaction: work
    of ``agency_id``."""
    uow.timers.add(
        [
            {
                "id": new_id(),
                "kind": kind,
                "ref_id": ref_id,
                "document_id": document_id,
                "agency_id": agency_id,
                "due_at": due,
                "payload": dict(payload or {}),
            }
        ]
    )
