"""What is known of one document at one moment, as ``states/explanation.py`` reads it.

The facts a :class:`Snapshot` holds: its state, review checks, jobs, timers, dispatches
and their last attempts, the answers to its recalls and updates, and its open
escalations. ``workflow/explaining.py`` fills one from the database; a test builds one by
hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class JobFacts:
    """An outbox job of the document; ``dispatch_id`` when it delivers to one recipient.

    A snapshot lists its jobs in the order they were written.
    """

    id: str
    action: str
    status: str
    attempts: int
    lease_until: datetime | None = None
    dispatch_id: str | None = None


@dataclass(frozen=True)
class TimerFacts:
    """A database timer of the document (``ref_id``: the job it re-drives)."""

    kind: str
    ref_id: str
    due_at: datetime
    backoff: bool = False  # the end of a chosen wait, not a missed deadline
    attempts: int = 0
    last_error: str | None = None
    parked_at: datetime | None = None
    rule: str = ""  # a rule's deadline: the escalation it opens once broken


@dataclass(frozen=True)
class AttemptFacts:
    """A logged delivery attempt."""

    attempt: int
    finished_at: datetime
    outcome: str  # delivered | refused | transient | unknown | bad_receipt
    http_status: int | None
    latency_ms: int
    error: str


@dataclass(frozen=True)
class DispatchFacts:
    """One recipient's dispatch, with the status codes it reported and its last attempt."""

    id: str
    organ_id: str
    state: str
    attempts: int
    last_error: str
    updated_at: datetime
    reported: tuple[str, ...] = ()
    refusal_reason: str | None = None
    last_attempt: AttemptFacts | None = None
    # When it was first reported registered: its 03, or a handling report (04–06) ahead
    # of it, which acknowledges it too.
    registered_at: datetime | None = None
    # When each code was last reported, in the order taken: (code, moment) pairs.
    reported_at: tuple[tuple[str, datetime], ...] = ()
    # Its recipient agreed to a recall (15): its copy is cancelled, nothing more comes.
    recalled: bool = False
    # A supervisor sent the document to it again (resend), its attempts counted anew.
    resent: bool = False
    # When its receipt says the package arrived (a retry may have fetched it much later).
    arrived_at: datetime | None = None


@dataclass(frozen=True)
class AnswerAwaited:
    """A recall or update (``kind``) sent to a recipient, not yet answered (15/16)."""

    kind: str
    organ_id: str
    since: datetime  # when the request was sent
    dispatch_id: str = ""  # the request's own dispatch to the recipient
    arrived: bool = True  # its package reached the recipient (01): the answer is owed


@dataclass(frozen=True)
class RequestDeclined:
    """A recipient refused the last recall or update (``kind``) sent to it (16)."""

    kind: str
    organ_id: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class CheckFacts:
    """A review check's result on the submitted revision."""

    code: str
    severity: str
    status: str
    cleared: bool


@dataclass(frozen=True)
class EscalationFacts:
    """An open escalation about the document (``dispatch_id``: about one recipient).

    ``request_kind`` (``recall`` or ``update``): its dispatch carries a request of the
    document, not the document itself; it is told on ``organ_id``, its recipient.
    """

    id: str
    kind: str
    level: int
    owner: str
    opened_at: datetime
    dispatch_id: str | None = None
    due_at: datetime | None = None
    organ_id: str = ""
    request_kind: str | None = None
    snoozed_until: datetime | None = None  # put aside (snoozed) until then


@dataclass(frozen=True)
class Snapshot:
    """What is known of one document at one moment, as the rules need it."""

    document_id: str
    state: str
    urgency: int
    updated_at: datetime
    revision: int = 1
    submitted_revision: int | None = None
    checks: tuple[CheckFacts, ...] = ()
    send_by: datetime | None = None  # set when it was signed
    jobs: tuple[JobFacts, ...] = ()
    timers: tuple[TimerFacts, ...] = ()
    dispatches: tuple[DispatchFacts, ...] = ()
    # Open escalations; empty until escalation records exist to fill it.
    escalations: tuple[EscalationFacts, ...] = ()
    # Recalled or replaced: when it was (the trail's moment; later events of its
    # dispatches move the row, not that moment).
    ended_at: datetime | None = None
    # Recipients whose answer to a recall or update is awaited, and those that refused
    # the last one sent to them.
    answers_awaited: tuple[AnswerAwaited, ...] = ()
    answers_declined: tuple[RequestDeclined, ...] = ()
    # An update of it was sent: what failed cannot be resent, only replaced.
    updated: bool = False
