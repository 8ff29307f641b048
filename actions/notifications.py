"""Notifications: queued with the transition that causes them, sent after it commits.

:func:`queue_notifications` is the one entry point for the rest of the engine: inside a
transition's transaction it writes, for each of the agency's enabled routes of the kind
(or of every kind), a notification row with its content rendered then, and an outbox job.
After commit the job (:class:`Notifying`, a ``StagedJob``) reads the notification and its
route in a short transaction, posts the signed webhook or sends the e-mail with none open,
and records the attempt in another. A transient failure waits on a database timer and is
tried again; a permanent one, or the last attempt, leaves the notification ``dead``:
listed for operators, who may :func:`retry` it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from congvan.states.errors import Conflict, NotFound
from congvan.states.networks import Network
from congvan.states.vocabulary import (
    ATTEMPT_DELIVERED,
    ATTEMPT_PERMANENT,
    ATTEMPT_TRANSIENT,
    ATTEMPT_UNKNOWN,
    EVERY_KIND,
    NOTIFY_EMAIL,
    RISEN_KIND,
)
from congvan.storage.clock import as_utc, utcnow
from congvan.storage.ids import new_id
from congvan.storage.notifications import (
    CANCELLED,
    DEAD,
    PENDING,
    SENT,
    AttemptRow,
    NoticeRow,
    RouteRow,
)
from congvan.storage.unit_of_work import UnitOfWork

from .context import JobContext
from .jobs import RetryLater, StagedJob, enqueue, new_job
from .messengers import Outcome, Smtp, compose, post_webhook, send_mail
from .notices import email_subject, email_text, render, webhook_body

log = logging.getLogger("congvan.notifications")

JOB = "send_notification"
# The job's deadline timer: a message the broker lost is re-driven from the database then.
JOB_DEADLINE = timedelta(minutes=5)
# What starts the error of a failure ``record`` already logged as an attempt (RetryLater):
# ``failed`` then only counts it, where it logs the failures nothing recorded (a crash in
# the outside step, a lease that ran out).
_RECORDED = "attempt recorded: "
NO_SMTP = "no SMTP server is configured (CONGVAN_SMTP_HOST)"


def queue_notifications(
    uow: UnitOfWork, *, agency_id: str, kind: str, event: Mapping[str, Any]
) -> int:
    """In the caller's transaction: one notification and its job per matching route.

    A route matches when it is the agency's, enabled, and names ``kind`` or ``*``. The
    content is rendered now (see :func:`congvan.actions.notices.render` for what ``event``
    carries). ``event["at"]`` is the calling transition's time (``ctx.now``, the engine's
    clock): the notifications are dated by it and their jobs' deadline timers run from it
    (the real clock when absent). Returns how many notifications were queued.
    """
    at = _time(event.get("at"))
    content = render(kind, event, at)  # an unknown kind or a bad event fails the caller
    routes = _one_per_receiver(
        uow.notifications.matching(agency_id, kind, risen=_risen(event.get("level")))
    )
    if not routes:
        return 0
    text = json.dumps(content, ensure_ascii=False, sort_keys=True)
    notices, jobs = [], []
    for route in routes:
        notice_id = new_id()
        job = new_job(
            JOB,
            at,
            agency_id=agency_id,
            document_id=content.get("document_id"),
            payload={"notification_id": notice_id},
        )
        jobs.append(job)
        notices.append(
            {
                "id": notice_id,
                "agency_id": agency_id,
                "route_id": route.id,
                "kind": kind,
                "channel": route.channel,
                "target": route.target,
                "escalation_id": content["escalation_id"],
                "document_id": content.get("document_id"),
                "content": text,
                "state": PENDING,
                "job_id": job["id"],
                "attempts": 0,
                "last_error": "",
                "created_at": at,
                "updated_at": at,
            }
        )
    uow.notifications.add(notices)
    enqueue(uow, jobs, at + JOB_DEADLINE)
    return len(notices)


def _risen(level: Any) -> bool:
    """An escalation of ``level`` has risen to the leadership (the second level)."""
    return isinstance(level, int) and not isinstance(level, bool) and level >= 2


def _one_per_receiver(routes: list[RouteRow]) -> list[RouteRow]:
    """The routes (oldest first) with one for each receiver: a webhook, or a mailbox in any
    case, routed both for the kind and for every kind (or the risen) gets the event once."""
    kept: dict[tuple[str, str], RouteRow] = {}
    for route in routes:
        receiver = route.target.lower() if route.channel == NOTIFY_EMAIL else route.target
        kept.setdefault((route.channel, receiver), route)
    return list(kept.values())


def _route_again(uow: UnitOfWork, notice: NoticeRow) -> RouteRow | None:
    """The agency's route to the receiver of ``notice`` for its kind, every kind or (an
    escalation risen to the leadership) the risen ones: an enabled one first."""
    risen = [RISEN_KIND] if _risen(json.loads(notice.content).get("level")) else []
    routes = uow.notifications
    found = [
        route
        for kind in (notice.kind, EVERY_KIND, *risen)
        if (route := routes.find_route(notice.agency_id, kind, notice.channel, notice.target))
    ]
    return next((route for route in found if route.enabled), found[0] if found else None)


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str) and value:
        return as_utc(datetime.fromisoformat(value))
    return utcnow()


def retry(uow: UnitOfWork, notice_id: str, agency_id: str | None, now: datetime) -> NoticeRow:
    """A dead or cancelled notification goes again: pending, with a new job and a fresh set
    of attempts, through its route -- or, its route removed, through the agency's route of
    its kind (or of every kind) to the same receiver, added since.

    With ``agency_id``, only that agency's (another's is not found). Its row is locked
    while it is judged: of two retries at once, the second finds it pending (409).
    """
    notice = uow.notifications.get(notice_id, agency_id, for_update=True)
    if notice is None:
        raise NotFound("No such notification.", notification_id=notice_id[:36])
    if notice.state not in (DEAD, CANCELLED):
        raise Conflict(
            f"Only a dead or cancelled notification can be retried; this one is {notice.state}.",
            state=notice.state,
        )
    route = uow.notifications.route(notice.route_id)
    if route is None or not route.enabled:  # another route to the receiver, enabled first
        route = _route_again(uow, notice) or route
    if route is None or not route.enabled:
        # Its job would cancel it unsent: said now, not as a retry that never goes.
        why = "removed" if route is None else "disabled"
        raise Conflict(
            f"The notification's route is {why}: enable it, or route its kind to the same "
            f"{'webhook' if notice.channel != NOTIFY_EMAIL else 'mailbox'} again, first.",
            state=notice.state,
            route=why,
        )
    if route.id != notice.route_id:
        uow.notifications.update(notice.id, route_id=route.id)
    job = new_job(
        JOB,
        now,
        agency_id=notice.agency_id,
        document_id=notice.document_id,
        payload={"notification_id": notice.id},
    )
    uow.notifications.update(
        notice.id, state=PENDING, job_id=job["id"], last_error="", updated_at=now
    )
    enqueue(uow, [job], now + JOB_DEADLINE)
    log.info(
        "notification retried", extra={"action": "notification.retry", "notification_id": notice.id}
    )
    found = uow.notifications.get(notice.id)
    assert found is not None
    return found


# -- the job ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parcel:
    """What one attempt sends, read when the job was claimed."""

    notice_id: str
    agency_id: str
    kind: str
    channel: str
    target: str
    content: dict[str, Any]
    attempt: int
    started_at: datetime
    secret: str | None = field(default=None, repr=False)


class Notifying(StagedJob[Parcel]):
    """The ``send_notification`` job: one attempt to send one notification."""

    def __init__(
        self,
        *,
        base_url: str,
        smtp: Smtp | None,
        webhook_timeout: float,
        max_attempts: int,
        networks: tuple[Network, ...] = (),
    ) -> None:
        self.base_url = base_url  # put in front of a notification's link path
        self.smtp = smtp  # None: no SMTP server is configured
        self.webhook_timeout = webhook_timeout
        self.networks = networks  # the private networks webhooks may reach besides global ones
        # The job's own limit (its actor's policy): a failure ``record`` keeps on the last
        # attempt leaves the notification dead there, since the runner calls no hook then.
        self.max_attempts = max_attempts

    def prepare(self, ctx: JobContext) -> Parcel | None:
        uow = ctx.uow
        notice = _current(ctx)
        if notice is None:
            return None  # sent, dead or retried under another job
        route = uow.notifications.route(notice.route_id)
        if route is None or not route.enabled:
            why = "the route was removed" if route is None else "the route is disabled"
            uow.notifications.update(notice.id, state=CANCELLED, last_error=why, updated_at=ctx.now)
            return None
        return Parcel(
            notice_id=notice.id,
            agency_id=notice.agency_id,
            kind=notice.kind,
            channel=notice.channel,
            target=notice.target,
            content=json.loads(notice.content),
            attempt=notice.attempts + 1,
            started_at=ctx.now,
            secret=route.secret,
        )

    def act(self, work: Parcel) -> Outcome:
        if work.channel == NOTIFY_EMAIL:
            if self.smtp is None:  # an attempt that failed, recorded as any other
                return Outcome(ATTEMPT_TRANSIENT, None, NO_SMTP)
            message = compose(
                self.smtp,
                work.target,
                email_subject(work.content),
                email_text(work.content, self.base_url),
                notice_id=work.notice_id,
            )
            return send_mail(self.smtp, message)
        return post_webhook(
            work.target,
            webhook_body(work.notice_id, work.agency_id, work.content, self.base_url),
            secret=work.secret or "",
            notice_id=work.notice_id,
            kind=work.kind,
            timestamp=int(work.started_at.timestamp()),
            timeout=self.webhook_timeout,
            networks=self.networks,
        )

    def record(self, ctx: JobContext, work: Parcel, outcome: Any) -> None:
        assert isinstance(outcome, Outcome)
        notice = _current(ctx, cancelled_too=True)
        if notice is None:
            return
        self._attempt(ctx, notice, outcome.outcome, outcome.status, outcome.error, work.started_at)
        if outcome.outcome == ATTEMPT_DELIVERED:
            ctx.uow.notifications.update(notice.id, state=SENT, sent_at=ctx.now)
        self._log(notice, outcome.outcome, outcome.status)
        if notice.state == CANCELLED:
            return  # its route disabled or removed while the attempt was out: no other
        if outcome.outcome == ATTEMPT_PERMANENT or (
            outcome.retry and ctx.job.attempts + 1 >= self.max_attempts
        ):
            self._dead(ctx, notice)
        if outcome.retry:  # counted by the runner: a wait, or the job's end
            raise RetryLater(_RECORDED + outcome.error, not_before=outcome.retry_after)

    def failed(self, ctx: JobContext, error: str, *, final: bool) -> None:
        notice = _current(ctx, cancelled_too=True)
        if notice is None:
            return
        if not error.startswith(_RECORDED):  # nothing logged this attempt yet
            # A crash of the outside step, or a worker gone: it may have left.
            self._attempt(ctx, notice, ATTEMPT_UNKNOWN, None, error, ctx.now)
            self._log(notice, ATTEMPT_UNKNOWN, None)
        if final and notice.state != CANCELLED:
            self._dead(ctx, notice)

    @staticmethod
    def _dead(ctx: JobContext, notice: NoticeRow) -> None:
        """Given up: on the dead-letter list until an operator retries it."""
        ctx.uow.notifications.update(notice.id, state=DEAD, updated_at=ctx.now)
        log.warning(
            "notification dead", extra={"action": "notification.dead", "notification_id": notice.id}
        )

    @staticmethod
    def _attempt(
        ctx: JobContext,
        notice: NoticeRow,
        outcome: str,
        status: int | None,
        error: str,
        started_at: datetime,
    ) -> None:
        attempt = notice.attempts + 1
        ctx.uow.notifications.add_attempt(
            AttemptRow(
                notification_id=notice.id,
                attempt=attempt,
                started_at=started_at,
                finished_at=ctx.now,
                outcome=outcome,
                status=status,
                error=error,
            )
        )
        ctx.uow.notifications.update(
            notice.id, attempts=attempt, last_error=error[:1000], updated_at=ctx.now
        )

    @staticmethod
    def _log(notice: NoticeRow, outcome: str, status: int | None) -> None:
        level = logging.INFO if outcome == ATTEMPT_DELIVERED else logging.WARNING
        log.log(
            level,
            "notification attempt",
            extra={
                "action": "notification.attempt",
                "notification_id": notice.id,
                "channel": notice.channel,
                "outcome": outcome,
                "status": status,
                "retry": outcome in (ATTEMPT_TRANSIENT, ATTEMPT_UNKNOWN),
            },
        )


def _current(ctx: JobContext, *, cancelled_too: bool = False) -> NoticeRow | None:
    """The job's notification while it is pending under this job (``cancelled_too``: or
    was cancelled under it, its attempt out); None otherwise (locked, as what the job
    writes of it depends on what it reads)."""
    notice = ctx.uow.notifications.get(str(ctx.job.payload["notification_id"]), for_update=True)
    states = (PENDING, CANCELLED) if cancelled_too else (PENDING,)
    if notice is None or notice.state not in states or notice.job_id != ctx.job.id:
        return None
    return notice
