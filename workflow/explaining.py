"""What a document waits for, read from the database and told in words.

:func:`snapshot_of` reads the rows (jobs, timers, dispatches, their last attempts and
statuses, review checks, the send-by moment); ``states/explanation.py`` turns them into
findings and ``states/phrasing.py`` into sentences. The API's explain and stuck routes
and the CLI show what :func:`explanation_view` builds.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from congvan.actions import notifications
from congvan.actions.calendar import WorkingCalendar
from congvan.actions.exchange.receipts import arrived_at
from congvan.actions.recalls import cancelled, request_kind, was_updated
from congvan.states import explanation as x
from congvan.states import snapshot as snap
from congvan.states.dispatch import (
    ARRIVED,
    DECLINED,
    DELIVERED,
    PENDING,
    REJECTED,
    SENDING,
    TAKEN_CODES,
)
from congvan.states.errors import InvalidInput
from congvan.states.escalation import SNOOZED
from congvan.states.phrasing import sentence
from congvan.states.received import STATUS_LABEL
from congvan.states.timeliness import VIETNAM, WorkingDays
from congvan.storage.audit import AuditEvent, timestamp
from congvan.storage.clock import as_utc
from congvan.storage.dispatches import DispatchRow
from congvan.storage.documents import DocumentRow
from congvan.storage.unit_of_work import UnitOfWork

from .settings import Settings
from .views import notation, signing_timeliness, summary


def working_calendar(settings: Settings) -> WorkingCalendar:
    """Viet Nam's working days with the operator's extra days off and make-up days."""
    return WorkingCalendar(
        settings.extra_days_off, settings.extra_working_days, hours=settings.hours()
    )


def open_escalations(uow: UnitOfWork, document_id: str) -> tuple[snap.EscalationFacts, ...]:
    """The open escalations about the document, for its explanation: each becomes an
    ``escalation_open`` finding, on its recipient when it names a dispatch (the document's
    own, or one carrying a recall or update of it)."""
    requests = {d.id: d for d in uow.dispatches.for_requests(document_id)}
    return tuple(
        snap.EscalationFacts(
            id=e.id,
            kind=e.kind,
            level=e.level,
            owner=e.owner,
            opened_at=e.opened_at,
            dispatch_id=e.dispatch_id,
            due_at=e.due_at,
            organ_id=e.organ_id,
            request_kind=request_kind(uow, requests[e.dispatch_id])
            if e.dispatch_id in requests
            else None,
            snoozed_until=e.snoozed_until if e.state == SNOOZED else None,
        )
        for e in uow.escalations.active_of_document(document_id)
    )


# The stuck list's threshold: how long without progress, by default and at the extremes.
DEFAULT_OLDER_THAN = timedelta(hours=1)
MIN_OLDER_THAN = timedelta(minutes=1)
MAX_OLDER_THAN = timedelta(days=366)
_DURATION = TypeAdapter(timedelta)


# An ISO 8601 duration of weeks, or of years, months, days and a time (hours, minutes,
# seconds), each part at most once and in that order, a time with at least one part.
_NUMBER = r"\d+(?:\.\d+)?"
_ISO_DURATION = re.compile(
    rf"P(?!$)(?:\d+W|(?:\d+Y)?(?:\d+M)?(?:\d+D)?(?:T(?=\d)(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?)"
)


def parse_older_than(text: str | None) -> timedelta:
    """``PT2H``, ``P1D`` (ISO 8601) or whole seconds (``7200``), within the bounds."""
    if text is None:
        return DEFAULT_OLDER_THAN
    bounds = {
        "field": "older_than",
        "min_seconds": int(MIN_OLDER_THAN.total_seconds()),
        "max_seconds": int(MAX_OLDER_THAN.total_seconds()),
    }
    try:
        if not (text.isascii() and (text.isdigit() or _ISO_DURATION.fullmatch(text))):
            # pydantic reads PT1H1H as two hours and P1DT as a day: each part once, in order
            raise ValueError(text)
        value = timedelta(seconds=int(text)) if text.isdigit() else _DURATION.validate_python(text)
    except (ValidationError, ValueError, OverflowError) as exc:
        too_large = isinstance(exc, OverflowError) or "too large" in str(exc)
        raise InvalidInput(
            "older_than is out of bounds: from 1 minute to 366 days."
            if too_large  # a duration, and a long one: past the bounds, not malformed
            else "older_than must be an ISO 8601 duration (PT2H, P1D) or a number of seconds.",
            **bounds,
        ) from exc
    if not MIN_OLDER_THAN <= value <= MAX_OLDER_THAN:
        raise InvalidInput("older_than is out of bounds: from 1 minute to 366 days.", **bounds)
    return value


def _send_by(uow: UnitOfWork, document_id: str) -> datetime | None:
    judged = signing_timeliness(uow, document_id)
    text = judged.get("send_by") if judged else None
    return datetime.fromisoformat(text) if text else None


def _resent_to(entry: AuditEvent) -> list[str]:
    """The recipients a ``resend`` entry sent the document to again."""
    listed = entry.payload.get("resent_to")
    return [o for o in listed if isinstance(o, str)] if isinstance(listed, list) else []


def _aware(at: datetime | None) -> datetime | None:
    return as_utc(at) if at is not None else None


def _arrival(uow: UnitOfWork, dispatch: DispatchRow) -> datetime | None:
    """When its receipt says the package arrived, for a dispatch that has one."""
    return arrived_at(uow, dispatch.id) if dispatch.state in ARRIVED else None


def snapshot_of(uow: UnitOfWork, row: DocumentRow) -> snap.Snapshot:
    """What the database holds about the document now, as the explanation rules need it."""
    doc_id = row.id
    statuses = uow.dispatches.statuses_by_dispatch(doc_id)
    attempts = uow.dispatches.last_attempts(doc_id)
    recalled = cancelled(uow, doc_id)
    resent = {organ for entry in uow.audit.entries(doc_id, "resend") for organ in _resent_to(entry)}
    dispatches = []
    for d in uow.dispatches.for_document(doc_id):
        kept = statuses.get(d.id, [])
        last = attempts.get(d.id)
        reason = next((s.reason for s in kept if s.code == "02"), None)
        registered = min((s.received_at for s in kept if s.code in TAKEN_CODES), default=None)
        dispatches.append(
            snap.DispatchFacts(
                id=d.id,
                organ_id=d.organ_id,
                state=d.state,
                attempts=d.attempts,
                last_error=d.last_error,
                updated_at=as_utc(d.updated_at),
                reported=tuple(s.code for s in kept),
                reported_at=tuple((s.code, as_utc(s.received_at)) for s in kept),
                refusal_reason=reason if reason or d.state != REJECTED else d.last_error,
                registered_at=_aware(registered),
                recalled=d.organ_id in recalled,
                resent=d.organ_id in resent,
                arrived_at=_arrival(uow, d),
                last_attempt=None
                if last is None
                else snap.AttemptFacts(
                    attempt=last.attempt,
                    finished_at=as_utc(last.finished_at),
                    outcome=last.outcome,
                    http_status=last.http_status,
                    latency_ms=last.latency_ms,
                    error=last.error,
                ),
            )
        )
    jobs = tuple(
        snap.JobFacts(
            id=j.id,
            action=j.action,
            status=j.status,
            attempts=j.attempts,
            lease_until=j.lease_until,
            dispatch_id=str(j.payload["dispatch_id"]) if "dispatch_id" in j.payload else None,
        )
        for j in uow.outbox.for_document(doc_id)
        # Telling people of an escalation is not the document's own work: its retries
        # would read as the document's (``congvan notify`` shows them).
        if j.action != notifications.JOB
    )
    timers = tuple(
        snap.TimerFacts(
            kind=t.kind,
            ref_id=t.ref_id,
            due_at=t.deadline,
            backoff=t.payload.get("reason") == "backoff",
            attempts=t.attempts,
            last_error=t.last_error,
            parked_at=t.parked_at,
            rule=str(t.payload.get("escalation", "")),
        )
        for t in uow.timers.for_document(doc_id)
    )
    checks: tuple[snap.CheckFacts, ...] = ()
    if row.submitted_revision is not None:
        checks = tuple(
            snap.CheckFacts(c.code, c.severity, c.status, c.cleared)
            for c in uow.checks.for_revision(doc_id, row.submitted_revision)
        )
    awaited, declined = [], []
    # Each recipient's last request (ids grow with time): an earlier one's answer is history.
    latest: dict[str, DispatchRow] = {}
    for d in sorted(uow.dispatches.for_requests(doc_id), key=lambda r: r.id):
        latest[d.organ_id] = d
    # When each request was sent: the recall's or update's own entry names it.
    asked = {
        str(entry.payload.get("request", {}).get("id")): entry.at
        for event in ("recall", "update")
        for entry in uow.audit.entries(doc_id, event)
    }
    for d in latest.values():
        if d.state in (PENDING, SENDING, DELIVERED):
            awaited.append(
                snap.AnswerAwaited(
                    request_kind(uow, d),
                    d.organ_id,
                    asked.get(str(d.request_id)) or as_utc(d.updated_at),
                    dispatch_id=d.id,
                    arrived=d.state == DELIVERED,
                )
            )
        elif d.state == DECLINED:
            said = [s.reason for s in statuses.get(d.id, []) if s.code == "16"]
            reason = next((r for r in said if r), None) or d.last_error
            declined.append(
                snap.RequestDeclined(request_kind(uow, d), d.organ_id, as_utc(d.updated_at), reason)
            )
    return snap.Snapshot(
        document_id=doc_id,
        state=row.state,
        urgency=row.urgency,
        updated_at=as_utc(row.updated_at),
        revision=row.revision,
        submitted_revision=row.submitted_revision,
        checks=checks,
        send_by=_send_by(uow, doc_id) if row.state == "signed" else None,
        jobs=jobs,
        timers=timers,
        dispatches=tuple(dispatches),
        escalations=open_escalations(uow, doc_id),
        answers_awaited=tuple(awaited),
        answers_declined=tuple(declined),
        updated=row.state == "failed" and was_updated(uow, doc_id),
        ended_at=_ended_at(uow, doc_id, row.state),
    )


def _ended_at(uow: UnitOfWork, doc_id: str, state: str) -> datetime | None:
    """When a recalled or replaced document became so: its trail's entry of that event."""
    if state not in ("recalled", "replaced"):
        return None
    entries = uow.audit.entries(doc_id, state)  # the document's own derived transition
    return entries[-1].at if entries else None


def _plain(value: Any) -> Any:
    """A fact as JSON: moments in Vietnam time (ISO 8601), spans in whole seconds."""
    if isinstance(value, datetime):
        return value.astimezone(VIETNAM).isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def finding_view(finding: x.Finding) -> dict[str, Any]:
    """A finding as the API shows it: code, both sentences, its facts as JSON."""
    return {
        "code": finding.code,
        "alarm": finding.alarm,
        **sentence(finding),
        "facts": {k: _plain(v) for k, v in finding.facts.items()},
    }


def explain_row(
    uow: UnitOfWork, row: DocumentRow, now: datetime, calendar: WorkingDays
) -> x.Explanation:
    return x.explain(snapshot_of(uow, row), now, calendar)


def explanation_view(row: DocumentRow, found: x.Explanation, now: datetime) -> dict[str, Any]:
    """The whole explanation of one document."""
    headline = found.headline()
    return {
        "document_id": row.id,
        "notation": notation(row),
        "state": row.state,
        "version": row.version,
        "at": _plain(now),
        "headline": finding_view(headline),
        "document": [finding_view(f) for f in found.document],
        "recipients": [
            {
                "organ_id": r.organ_id,
                "dispatch_id": r.dispatch_id,
                "state": r.state,
                "status_code": r.status_code,
                "status_label": STATUS_LABEL[r.status_code] if r.status_code else None,
                "findings": [finding_view(f) for f in r.findings],
            }
            for r in found.recipients
        ],
    }


def stalled_view(row: DocumentRow, found: x.Explanation, now: datetime) -> dict[str, Any]:
    """One line of the stuck list: the document, how long it has been idle, and why."""
    return {
        **summary(row),
        "idle_since": timestamp(row.updated_at),
        "idle_seconds": int((now - as_utc(row.updated_at)).total_seconds()),
        "headline": finding_view(found.headline()),
        "codes": sorted({f.code for f in found.all()}),
    }
