"""What a document waits for, per recipient: findings with stable codes, from a snapshot.

A :class:`~congvan.states.snapshot.Snapshot` is what the database holds about one
document at one moment (``states/snapshot.py``); :func:`explain` turns it into
:class:`Finding` records, each a stable ``code`` with the facts behind it. Nothing here
reads a clock or a database: the caller passes ``now`` and the calendar of working days,
so a test builds a snapshot by hand.
Sentences for people come from ``states/phrasing.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import deadlines, vocabulary
from . import document as doc
from .dispatch import ACKNOWLEDGED, DELIVERED, FAILED, PENDING, REJECTED, SENDING, recipient_status
from .snapshot import (
    AttemptFacts,
    DispatchFacts,
    JobFacts,
    Snapshot,
    TimerFacts,
)
from .timeliness import WorkingDays

# The document's own step (one of these, or none once it is out of the sender's hands).
AWAITING_SUBMISSION = "awaiting_submission"  # a draft nobody submitted for review yet
CHECKS_RUNNING = "checks_running"  # submitted; the review checks have not all reported
CHECKS_FAILING = "checks_failing"  # a blocking check failed: the draft must be corrected
CHECKS_AWAITING_WAIVER = "checks_awaiting_waiver"  # failed warnings a reviewer may accept
AWAITING_APPROVAL = "awaiting_approval"  # every check cleared; a reviewer approves
AWAITING_SIGNATURE = "awaiting_signature"
AWAITING_SENDING = "awaiting_sending"  # signed; to be sent by its send-by moment
SEND_OVERDUE = "send_overdue"  # signed and past its send-by moment
AWAITING_DELIVERY = "awaiting_delivery"  # sent; some recipients do not have it yet
AWAITING_ACKNOWLEDGEMENTS = "awaiting_acknowledgements"  # all have it; some not registered
AWAITING_RESEND = "awaiting_resend"  # a recipient failed for good; a supervisor resends
# Failed by refusals (02) alone: a resend would be refused again; a replacement is the way.
REFUSED_AWAITING_REPLACEMENT = "refused_awaiting_replacement"
# A recipient failed for good after an update went out: a resend would carry the old
# values (actions/recalls.never_updated); a replacement is the way.
FAILED_AWAITING_REPLACEMENT = "failed_awaiting_replacement"
# A recall or update is out: what is awaited is each recipient's answer (15 or 16).
AWAITING_ANSWERS = "awaiting_answers"
COMPLETE = "complete"  # every recipient registered it
RECALLED_DONE = "recalled"  # taken back: every recipient that had it agreed (15)
REPLACED_DONE = "replaced"  # a corrected document replaced it

# A job and its timer (for a recipient, its delivery job; else the document's own jobs).
JOB_QUEUED = "job_queued"  # written, not yet claimed by a worker
ATTEMPT_IN_PROGRESS = "attempt_in_progress"  # a worker holds it under a live lease
LEASE_EXPIRED = "lease_expired"  # the worker's lease ended with no outcome recorded
WAITING_FOR_RETRY = "waiting_for_retry"  # an attempt failed; a backoff timer re-drives it
JOB_PARKED = "job_parked"  # its timer failed too often: an operator must retry it
JOB_GAVE_UP = "job_gave_up"  # the job spent its attempts
NOTHING_SCHEDULED = "nothing_scheduled"  # waiting, yet no job or timer will move it

# A recipient's dispatch.
LAST_ATTEMPT = "last_attempt"
AWAITING_ACKNOWLEDGEMENT = "awaiting_acknowledgement"  # delivered (01), not registered (03)
DUE_BY = "due_by"  # by when the time rules want the recipient's next step (01 or 03)
ACKNOWLEDGED_BY_RECIPIENT = "acknowledged"
COPY_RECALLED = "copy_recalled"  # the recipient agreed to a recall (15): its copy cancelled
REFUSED_BY_RECIPIENT = "refused_by_recipient"
FAILED_FOR_GOOD = "failed_for_good"
# A recall or update sent to it: its answer is awaited, or it refused (16, its reason
# said): the document stays in force there.
ANSWER_AWAITED = "answer_awaited"
REQUEST_DECLINED = "request_declined"

# An escalation a supervisor owns (filled in from the escalation records).
ESCALATION_OPEN = "escalation_open"

CODES = (
    AWAITING_SUBMISSION,
    CHECKS_RUNNING,
    CHECKS_FAILING,
    CHECKS_AWAITING_WAIVER,
    AWAITING_APPROVAL,
    AWAITING_SIGNATURE,
    AWAITING_SENDING,
    SEND_OVERDUE,
    AWAITING_DELIVERY,
    AWAITING_ACKNOWLEDGEMENTS,
    AWAITING_RESEND,
    REFUSED_AWAITING_REPLACEMENT,
    FAILED_AWAITING_REPLACEMENT,
    AWAITING_ANSWERS,
    COMPLETE,
    RECALLED_DONE,
    REPLACED_DONE,
    JOB_QUEUED,
    ATTEMPT_IN_PROGRESS,
    LEASE_EXPIRED,
    WAITING_FOR_RETRY,
    JOB_PARKED,
    JOB_GAVE_UP,
    NOTHING_SCHEDULED,
    LAST_ATTEMPT,
    AWAITING_ACKNOWLEDGEMENT,
    DUE_BY,
    ACKNOWLEDGED_BY_RECIPIENT,
    COPY_RECALLED,
    REFUSED_BY_RECIPIENT,
    FAILED_FOR_GOOD,
    ANSWER_AWAITED,
    REQUEST_DECLINED,
    ESCALATION_OPEN,
)

# Findings that say something is wrong or late, not only what comes next.
ALARMS = frozenset(
    {
        CHECKS_FAILING,
        SEND_OVERDUE,
        AWAITING_RESEND,
        REFUSED_AWAITING_REPLACEMENT,
        FAILED_AWAITING_REPLACEMENT,
        LEASE_EXPIRED,
        JOB_PARKED,
        JOB_GAVE_UP,
        NOTHING_SCHEDULED,
        REFUSED_BY_RECIPIENT,
        FAILED_FOR_GOOD,
        ESCALATION_OPEN,
    }
)


# What a recipient still waits for (a sent document's headline when nothing is wrong).
RECIPIENT_WAITS = frozenset(
    {WAITING_FOR_RETRY, ATTEMPT_IN_PROGRESS, JOB_QUEUED, AWAITING_ACKNOWLEDGEMENT}
)
# The document's own step in a final state: nothing is awaited of anyone any more.
ENDED = frozenset({RECALLED_DONE, REPLACED_DONE})


@dataclass(frozen=True)
class Finding:
    """One thing the document waits for: a stable code, whom it is about, and its facts."""

    code: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    organ_id: str | None = None  # None: about the document itself
    # What went wrong with a document since recalled or replaced (a failure, a refusal):
    # told as what happened, no longer an alarm (nothing is awaited of it).
    ended: str | None = None

    @property
    def alarm(self) -> bool:
        return self.code in ALARMS and self.ended is None


@dataclass(frozen=True)
class RecipientExplanation:
    organ_id: str
    dispatch_id: str
    state: str
    status_code: str | None  # QCVN 102 (states.dispatch.recipient_status)
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Explanation:
    document: tuple[Finding, ...]
    recipients: tuple[RecipientExplanation, ...]

    def all(self) -> tuple[Finding, ...]:
        return self.document + tuple(f for r in self.recipients for f in r.findings)

    def headline(self) -> Finding:
        """The finding to show first: the first alarm, else the first recipient's wait,
        else the document's own step (first when it is over, or awaits a recall's or an
        update's answers)."""
        every = self.all()
        if every[0].code in ENDED:
            return every[0]
        if every[0].code == AWAITING_ANSWERS:  # the recall's answers, not the registration
            return next((f for f in every if f.alarm), every[0])
        return next(
            (f for f in every if f.alarm),
            next((f for f in every if f.code in RECIPIENT_WAITS), every[0]),
        )


def working_time_between(calendar: WorkingDays, start: datetime, end: datetime) -> timedelta:
    """How much working time (working hours of working days, as the time rules count it:
    states/deadlines.py) lies from ``start`` to ``end``; zero if ``end`` is not after it.
    The calendar's own working hours count when it has them (the installation's
    ``CONGVAN_WORKING_HOURS``), else the default ones."""
    hours = getattr(calendar, "hours", deadlines.DEFAULT_HOURS)
    return max(deadlines.working_time_between(start, end, calendar, hours), timedelta(0))


def _until(
    calendar: WorkingDays, now: datetime, due_at: datetime, *, on_the_clock: bool = False
) -> dict[str, Any]:
    """A due moment with what is left of it: calendar time and working time (None for a
    rule that runs on the clock, where working time says nothing of what is left)."""
    return {
        "due_at": due_at,
        "remaining": max(due_at - now, timedelta(0)),
        "remaining_working": None if on_the_clock else working_time_between(calendar, now, due_at),
        # A deadline is kept by what happens at its very moment (rules.PASSED): past it, late.
        "overdue": due_at < now,
    }


def _on_the_clock(rule: str, urgency: int) -> bool:
    """An urgent document's send, deliver and register run on the clock, nights, weekends
    and holidays included (states/deadlines.py)."""
    return urgency >= 1 and rule in deadlines.ON_THE_CLOCK


def _timer_of(snapshot: Snapshot, job_id: str) -> TimerFacts | None:
    found = [t for t in snapshot.timers if t.kind == vocabulary.JOB_DEADLINE and t.ref_id == job_id]
    return min(found, key=lambda t: t.due_at) if found else None


def _job_findings(
    snapshot: Snapshot,
    job: JobFacts,
    now: datetime,
    calendar: WorkingDays,
    organ_id: str | None,
    last: AttemptFacts | None,
) -> list[Finding]:
    """Where a job stands: queued, running under its lease, waiting, parked, given up."""
    timer = _timer_of(snapshot, job.id)
    base: dict[str, Any] = {"job_id": job.id, "action": job.action, "attempts": job.attempts}
    if timer is not None and timer.parked_at is not None:
        facts = {**base, "parked_at": timer.parked_at, "error": timer.last_error or ""}
        return [Finding(JOB_PARKED, facts, organ_id)]
    if job.status == vocabulary.JOB_FAILED:
        return [Finding(JOB_GAVE_UP, base, organ_id)]
    if job.status == vocabulary.JOB_RUNNING:
        lease = job.lease_until
        if lease is not None and now < lease:
            # A job's lease, retry and deadline are the machine's, on the clock.
            facts = {
                **base,
                **_until(calendar, now, lease, on_the_clock=True),
                "lease_until": lease,
            }
            return [Finding(ATTEMPT_IN_PROGRESS, facts, organ_id)]
        facts = {**base, "lease_until": lease}
        if timer is not None:
            facts["redrive_at"] = timer.due_at
        return [Finding(LEASE_EXPIRED, facts, organ_id)]
    if timer is None:
        return [Finding(NOTHING_SCHEDULED, base, organ_id)]
    if job.status == vocabulary.JOB_WAITING or timer.backoff:
        facts = {**base, **_until(calendar, now, timer.due_at, on_the_clock=True)}
        if last is not None:
            facts |= {"last_outcome": last.outcome, "last_error": last.error}
        return [Finding(WAITING_FOR_RETRY, facts, organ_id)]
    # pending or enqueued: a worker takes it soon; the deadline re-drives it otherwise.
    queued = _until(calendar, now, timer.due_at, on_the_clock=True)
    return [Finding(JOB_QUEUED, {**base, **queued}, organ_id)]


def _live_job(snapshot: Snapshot, dispatch_id: str | None) -> JobFacts | None:
    """The newest job of the dispatch (None: of the document itself) not done."""
    live = [
        j for j in snapshot.jobs if j.dispatch_id == dispatch_id and j.status != vocabulary.JOB_DONE
    ]
    return live[-1] if live else None


def _homes(snapshot: Snapshot) -> dict[str, str | None]:
    """Where each open escalation is told: the id of the dispatch to its recipient (its
    own, or the document's to the recipient its request went to), else None (the
    document itself)."""
    own = {d.id for d in snapshot.dispatches}
    by_organ = {d.organ_id: d.id for d in snapshot.dispatches}
    homes: dict[str, str | None] = {}
    for e in snapshot.escalations:
        if e.dispatch_id is None or e.dispatch_id in own:
            homes[e.id] = e.dispatch_id
        else:  # a recall's or update's dispatch, or one no longer listed
            homes[e.id] = by_organ.get(e.organ_id)
    return homes


def _escalations(
    snapshot: Snapshot, dispatch_id: str | None, organ_id: str | None
) -> list[Finding]:
    homes = _homes(snapshot)
    found = []
    for e in snapshot.escalations:
        if homes[e.id] != dispatch_id:
            continue
        facts: dict[str, Any] = {
            "escalation_id": e.id,
            "kind": e.kind,
            "level": e.level,
            "owner": e.owner,
            "opened_at": e.opened_at,
            "due_at": e.due_at,
        }
        if e.request_kind is not None:
            facts["request_kind"] = e.request_kind
        if e.snoozed_until is not None:
            facts["snoozed_until"] = e.snoozed_until
        found.append(Finding(ESCALATION_OPEN, facts, organ_id or e.organ_id or None))
    return found


def _attempt_facts(last: AttemptFacts, this_sending: int, resent: bool) -> dict[str, Any]:
    """The last attempt, numbered over the dispatch's life (as its log is); after a resend,
    ``since_resend`` numbers it among this sending's attempts, as the dispatch counts them.
    (The log also keeps what no attempt counts: an attempt cut off and recorded late, the
    receipt fetched again for a package the recipient's status had settled.)"""
    facts: dict[str, Any] = {}
    if resent and 0 < this_sending < last.attempt:
        facts["since_resend"] = this_sending
    return {
        **facts,
        "attempt": last.attempt,
        "at": last.finished_at,
        "outcome": last.outcome,
        "http_status": last.http_status,
        "latency_ms": last.latency_ms,
        "error": last.error,
    }


def _arrived_at(d: DispatchFacts) -> datetime:
    """When the package reached the recipient: as its receipt says, else its delivered
    attempt's end (the row's last change may be later)."""
    if d.arrived_at is not None:  # what the recipient's signed receipt says
        return d.arrived_at
    last = d.last_attempt
    if last is not None and last.outcome == "delivered":  # the attempt's outcome
        return last.finished_at
    return d.updated_at


# The rule a dispatch's deadline watches, by the escalation it opens: the step it awaits,
# and the time rule that sets it.
# A rule's next step of a recipient: the document's (01, 03), or its answer to a request.
_RULE_STEPS = {"not_delivered": "01", "not_acknowledged": "03", "recall_unanswered": "15"}
_RULE_OF = {
    "not_delivered": "deliver",
    "not_acknowledged": "register",
    "recall_unanswered": "recall_answer",
}


def _due_by(
    snapshot: Snapshot, dispatch_id: str, organ_id: str, now: datetime, calendar: WorkingDays
) -> list[Finding]:
    """By when the time rules want this recipient's next step on a dispatch (the
    document's, or a request's): the deadline its rule's timer waits for (none once the
    rule is kept, or broken and escalated)."""
    due = [
        t
        for t in snapshot.timers
        if t.kind == vocabulary.RULE_DEADLINE and t.ref_id == dispatch_id and t.rule in _RULE_STEPS
    ]
    if not due:
        return []
    first = min(due, key=lambda t: t.due_at)
    clock = _on_the_clock(_RULE_OF[first.rule], snapshot.urgency)
    facts = {
        "step": _RULE_STEPS[first.rule],
        **_until(calendar, now, first.due_at, on_the_clock=clock),
    }
    return [Finding(DUE_BY, facts, organ_id)]


def _recipient(
    snapshot: Snapshot, d: DispatchFacts, now: datetime, calendar: WorkingDays
) -> RecipientExplanation:
    code = recipient_status(d.state, d.reported, recalled=d.recalled)
    o = d.organ_id
    ended = snapshot.state if snapshot.state in (doc.RECALLED, doc.REPLACED) else None
    found: list[Finding] = []
    if d.state in (PENDING, SENDING):
        job = _live_job(snapshot, d.id)
        if job is None:
            found.append(Finding(NOTHING_SCHEDULED, {"attempts": d.attempts}, o))
        else:
            found += _job_findings(snapshot, job, now, calendar, o, d.last_attempt)
    elif d.state == DELIVERED and not d.recalled and ended is None:
        # (taken back or replaced, or this recipient's copy recalled, its registration
        # is awaited no more)
        since = _arrived_at(d)
        facts = {
            "since": since,
            "status_code": code,
            "waited": now - since,
            # What the time rules count: a weekend or Tết is waiting, not lateness -- but
            # for an urgent document, whose registration runs on the clock.
            "waited_working": None
            if _on_the_clock("register", snapshot.urgency)
            else working_time_between(calendar, since, now),
        }
        found.append(Finding(AWAITING_ACKNOWLEDGEMENT, facts, o))
    # A recall awaiting this recipient's answer asks it to cancel its copy, not to register
    # it: the registration's time is not told meanwhile (nor escalated: rules.py).
    recalling = any(a.kind == "recall" and a.organ_id == o for a in snapshot.answers_awaited)
    if d.state in (PENDING, SENDING) or (d.state == DELIVERED and not recalling):
        found += _due_by(snapshot, d.id, o, now, calendar)
    if d.recalled:
        found.append(Finding(COPY_RECALLED, {"status_code": code}, o))
    elif d.state == ACKNOWLEDGED:
        registered = d.registered_at or d.updated_at
        # The moment of the status told (06 a week after the 03), not the registration's.
        said = [at for c, at in d.reported_at if c == code]
        facts = {"status_code": code, "at": said[-1] if said else registered}
        found.append(Finding(ACKNOWLEDGED_BY_RECIPIENT, {**facts, "registered_at": registered}, o))
    elif d.state == REJECTED:
        reason = d.refusal_reason or d.last_error
        refused = {"reason": reason, "at": d.updated_at}
        found.append(Finding(REFUSED_BY_RECIPIENT, refused, o, ended))
    elif d.state == FAILED:
        failed: dict[str, Any] = {"attempts": d.attempts, "error": d.last_error}
        found.append(Finding(FAILED_FOR_GOOD, {**failed, "at": d.updated_at}, o, ended))
    if d.last_attempt is not None:
        found.append(Finding(LAST_ATTEMPT, _attempt_facts(d.last_attempt, d.attempts, d.resent), o))
    found += _answer(snapshot, o, ended, now, calendar)
    found += _escalations(snapshot, d.id, o)
    return RecipientExplanation(o, d.id, d.state, code, tuple(found))


def _answer(
    snapshot: Snapshot, organ_id: str, ended: str | None, now: datetime, calendar: WorkingDays
) -> list[Finding]:
    """The recipient's answer to a recall or update: awaited (once its request arrives,
    and by when), or refused (16)."""
    found = []
    for awaited in snapshot.answers_awaited:
        if awaited.organ_id == organ_id:
            facts = {"kind": awaited.kind, "since": awaited.since, "arrived": awaited.arrived}
            found.append(Finding(ANSWER_AWAITED, facts, organ_id))
            job = None if awaited.arrived else _live_job(snapshot, awaited.dispatch_id)
            if job is not None:  # the request on its way: what its delivery is doing
                found += _job_findings(snapshot, job, now, calendar, organ_id, None)
            found += _due_by(snapshot, awaited.dispatch_id, organ_id, now, calendar)
    for declined in snapshot.answers_declined:
        if declined.organ_id == organ_id:
            facts = {"kind": declined.kind, "at": declined.at, "reason": declined.reason}
            found.append(Finding(REQUEST_DECLINED, facts, organ_id, ended))
    return found


def _review(snapshot: Snapshot) -> Finding:
    """Where a draft stands in review."""
    if snapshot.submitted_revision != snapshot.revision:
        # Never submitted, or edited since it was: the checks of an earlier revision say
        # nothing of this one, which is submitted before anyone may approve it.
        return Finding(AWAITING_SUBMISSION, {"revision": snapshot.revision})
    checks = snapshot.checks
    facts: dict[str, Any] = {"revision": snapshot.submitted_revision}
    if not checks:
        return Finding(CHECKS_RUNNING, facts)
    blocking = [c.code for c in checks if not c.cleared and c.severity == vocabulary.BLOCKING]
    if blocking:
        return Finding(CHECKS_FAILING, {**facts, "checks": blocking})
    warnings = [c.code for c in checks if not c.cleared]
    if warnings:
        return Finding(CHECKS_AWAITING_WAIVER, {**facts, "checks": warnings})
    return Finding(AWAITING_APPROVAL, facts)


def _own_step(
    snapshot: Snapshot, now: datetime, calendar: WorkingDays, recipients: list[RecipientExplanation]
) -> Finding:
    """What the document as a whole waits for, by its state."""
    state = snapshot.state
    if state == doc.DRAFT:
        return _review(snapshot)
    if state == doc.REVIEWED:
        return Finding(AWAITING_SIGNATURE, {"urgency": snapshot.urgency})
    if state == doc.SIGNED:
        if snapshot.send_by is None:
            return Finding(AWAITING_SENDING, {"due_at": None})
        if now > snapshot.send_by:  # sent at the very moment, it is in time
            return Finding(
                SEND_OVERDUE, {"due_at": snapshot.send_by, "late_by": now - snapshot.send_by}
            )
        clock = _on_the_clock("send", snapshot.urgency)
        return Finding(
            AWAITING_SENDING, _until(calendar, now, snapshot.send_by, on_the_clock=clock)
        )
    if snapshot.answers_awaited and state in doc.ISSUED:
        awaited = snapshot.answers_awaited
        return Finding(
            AWAITING_ANSWERS,
            {
                "kind": awaited[0].kind,
                "recipients": [a.organ_id for a in awaited],
                "since": min(a.since for a in awaited),
            },
        )
    if state == doc.FAILED:
        failed = [r.organ_id for r in recipients if r.state == FAILED]
        refused = [r.organ_id for r in recipients if r.state == REJECTED]
        if failed and snapshot.updated:
            return Finding(FAILED_AWAITING_REPLACEMENT, {"recipients": failed, "refused": refused})
        if failed:
            return Finding(AWAITING_RESEND, {"recipients": failed, "refused": refused})
        return Finding(REFUSED_AWAITING_REPLACEMENT, {"recipients": refused})
    if state == doc.ACKNOWLEDGED:
        # Done when the last recipient registered it; what came since (its handling
        # reported, a recall or update of it) moves the document's row, not that moment.
        done = [d.registered_at or d.updated_at for d in snapshot.dispatches]
        at = max(done, default=snapshot.updated_at)
        # Those that agreed to a recall since hold it no more (their 15 is theirs to show).
        gone = [d.organ_id for d in snapshot.dispatches if d.recalled]
        facts = {
            "at": at,
            "open_escalations": len(snapshot.escalations),
            "recalled": gone,
            # Those that refused the last request sent to them (16) hold it in force.
            "declined": [a.organ_id for a in snapshot.answers_declined],
        }
        return Finding(COMPLETE, facts)
    if state in (doc.RECALLED, doc.REPLACED):
        ended = RECALLED_DONE if state == doc.RECALLED else REPLACED_DONE
        at = snapshot.ended_at or snapshot.updated_at
        return Finding(ended, {"at": at, "open_escalations": len(snapshot.escalations)})
    missing = [r.organ_id for r in recipients if r.state in (PENDING, SENDING, FAILED)]
    if missing:
        return Finding(AWAITING_DELIVERY, {"recipients": missing, "total": len(recipients)})
    recalled = {d.organ_id for d in snapshot.dispatches if d.recalled}
    waiting = [
        r.organ_id for r in recipients if r.state == DELIVERED and r.organ_id not in recalled
    ]
    return Finding(AWAITING_ACKNOWLEDGEMENTS, {"recipients": waiting, "total": len(recipients)})


def explain(snapshot: Snapshot, now: datetime, calendar: WorkingDays) -> Explanation:
    """Every finding about ``snapshot`` at ``now``: the document's own, then per recipient."""
    if now.tzinfo is None:
        raise ValueError("now must carry its time zone")
    recipients = [_recipient(snapshot, d, now, calendar) for d in snapshot.dispatches]
    findings = [_own_step(snapshot, now, calendar, recipients)]
    job = _live_job(snapshot, None)
    if job is not None:
        findings += _job_findings(snapshot, job, now, calendar, None, None)
    findings += _escalations(snapshot, None, None)
    return Explanation(tuple(findings), tuple(recipients))
