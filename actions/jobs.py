"""Running one outbox job, idempotently, and the dramatiq actor that calls it."""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from congvan.states.policy import JOB_BACKOFF, Backoff
from congvan.states.text import printable
from congvan.storage.clock import Clock, ClockWatch
from congvan.storage.database import passing_trouble
from congvan.storage.ids import new_id
from congvan.storage.outbox import DONE, FAILED, PENDING, RUNNING, Job
from congvan.storage.timers import JOB_DEADLINE, DueTimer, TimerBusy
from congvan.storage.unit_of_work import UnitOfWork

from .context import Events, JobAction, JobContext

log = logging.getLogger("congvan.jobs")

# The actor for a job kind with no actor of its own (and for messages queued under the
# one name all jobs had before each kind got its actor: workflow/actors).
FALLBACK_ACTOR = "congvan_run_job"
# How long a job waits when this machine's clock is off the database's (ClockWatch).
CLOCK_OFF_WAIT = timedelta(seconds=30)
# Between two tries to keep what a job did while the database is away: the first soon, the
# later ones at most this far apart (seconds).
KEEP_FIRST_WAIT, KEEP_LONGEST_WAIT = 0.25, 5.0
QUEUES = ("urgent", "default")


@dataclass(frozen=True)
class JobPolicy:
    """How one kind of job runs: its lease (time limit), its attempts, its backoff.

    ``None`` means "the installation's default" (settings), filled in by
    :meth:`filled_from`.
    """

    time_limit: timedelta | None = None
    max_attempts: int | None = None
    backoff: Backoff = JOB_BACKOFF

    def filled_from(self, default: JobPolicy) -> JobPolicy:
        return replace(
            self,
            time_limit=self.time_limit or default.time_limit,
            max_attempts=self.max_attempts or default.max_attempts,
        )


def new_job(
    action: str,
    now: datetime,
    *,
    agency_id: str | None,
    document_id: str | None = None,
    queue: str = "default",
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The outbox row of a job to run ``action`` for ``agency_id`` (None: the
    installation's own work): pending, never tried."""
    return {
        "id": new_id(),
        "action": action,
        "document_id": document_id,
        "agency_id": agency_id,
        "queue": queue,
        "status": PENDING,
        "attempts": 0,
        "created_at": now,
        "payload": payload or {},
    }


def deadline_timer(
    job_id: str,
    document_id: str | None,
    due_at: datetime,
    *,
    agency_id: str | None,
    backoff: bool = False,
) -> dict[str, Any]:
    """The database timer that re-drives a job not confirmed done by ``due_at``.

    ``backoff``: a wait chosen (after a failure already counted, or for the job's turn);
    its end is not a missed deadline.
    """
    timer: dict[str, Any] = {
        "id": new_id(),
        "kind": JOB_DEADLINE,
        "ref_id": job_id,
        "document_id": document_id,
        "agency_id": agency_id,
        "due_at": due_at,
    }
    if backoff:
        timer["payload"] = {"reason": "backoff"}
    return timer


def enqueue(uow: UnitOfWork, jobs: Sequence[dict[str, Any]], due_at: datetime) -> None:
    """Write ``jobs`` to the outbox, each with its deadline timer, in ``uow``'s transaction."""
    uow.outbox.add(list(jobs))
    uow.timers.add(
        [deadline_timer(j["id"], j["document_id"], due_at, agency_id=j["agency_id"]) for j in jobs]
    )


class Busy(Exception):
    """The job cannot start now: a limit outside it is reached (a peer already has as many
    deliveries in flight as it takes). Raised by ``prepare``; nothing it wrote is kept,
    no attempt is counted, and the job takes its turn again after ``retry_in``."""

    def __init__(self, message: str, *, retry_in: timedelta) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class RetryLater(Exception):
    """The job wrote what it could and must run again after a backoff.

    ``not_before``: the least wait the other side asked for (an HTTP Retry-After); the
    job waits the longer of it and its backoff.
    """

    def __init__(self, message: str, *, not_before: timedelta | None = None) -> None:
        super().__init__(message)
        self.not_before = not_before


Work = TypeVar("Work")
Kept = TypeVar("Kept")


class StagedJob(ABC, Generic[Work]):
    """A job with a step outside the database: claim, act, record (DESIGN principle 8).

    ``prepare`` runs in a short transaction and returns what ``act`` needs (None: nothing
    left to do, the job is done). ``act`` runs with no transaction open (HTTP to a peer)
    and raises to fail the attempt. ``record`` keeps the outcome in another short
    transaction, the one that marks the job done. A failed attempt is counted as for any
    job, and ``failed`` writes what it means in that same transaction (``final`` on the
    last attempt). A message delivered twice while the job is running is skipped; one
    delivered after the lease ended may act again, and ``record`` of the stale one finds the
    job no longer its own and writes nothing.
    """

    @abstractmethod
    def prepare(self, ctx: JobContext) -> Work | None:
        """Read what the outside step needs."""

    @abstractmethod
    def act(self, work: Work) -> Any:
        """Do the outside step; its result goes to ``record``."""

    @abstractmethod
    def record(self, ctx: JobContext, work: Work, outcome: Any) -> None:
        """Keep the outcome."""

    def failed(self, ctx: JobContext, error: str, *, final: bool) -> None:
        """An attempt failed with ``error``; ``final``: the job gives up."""
        return None


AnyJob = JobAction | StagedJob[Any]


class JobRunner:
    """Runs a job at most once to completion, however often its message arrives.

    Every job takes three steps: claim (a short transaction marks it running, leased to
    this worker until its time limit, with its deadline timer moved to the lease's end),
    act (a ``StagedJob``'s outside step, with no transaction open), record (a short
    transaction keeps the outcome and marks the job done, if the lease is still ours). A
    plain action writes rows only and runs in the record step, so it takes effect exactly
    once. A failure is counted in the row and the job's database timer is moved to the
    backoff time: the scheduler re-drives it, never the broker.
    """

    def __init__(
        self,
        open_uow: Callable[[], UnitOfWork],
        actions: Mapping[str, AnyJob],
        clock: Clock,
        *,
        max_attempts: int,
        deadline_seconds: int = 300,
        clock_watch: ClockWatch | None = None,
    ) -> None:
        self.open_uow = open_uow
        self.clock_watch = clock_watch
        self.actions = actions
        self.clock = clock
        self.deadline = timedelta(seconds=deadline_seconds)
        self.default = JobPolicy(time_limit=self.deadline, max_attempts=max_attempts)
        # Each kind's own policy (workflow/actors installs them); others get the default.
        self.policies: dict[str, JobPolicy] = {}
        # The engine, for jobs that fire events (wired by bootstrap).
        self.events: Events | None = None
        # Set when the process stops: a job waiting for the database to keep its outcome
        # stops waiting (its lease's end takes it up again).
        self.stopping = threading.Event()
        # How long at most a job waits for the database to keep its outcome (never past
        # its lease): after that its lease's end takes it up again.
        self.keeping = self.deadline

    def stop(self) -> None:
        self.stopping.set()

    def _context(self, job: Job, uow: UnitOfWork, now: datetime) -> JobContext:
        return JobContext(job=job, uow=uow, now=now, open_uow=self.open_uow, events=self.events)

    def run(self, job_id: str) -> str:
        """Run the job; returns ``done``, ``skipped`` (nothing to do), ``waiting`` (its turn
        comes later) or ``failed``."""
        action: AnyJob | None = None
        lease: datetime | None = None
        try:
            claimed = self._claim(job_id)
            if isinstance(claimed, str):
                return claimed
            lease, action, work = claimed
            outcome = None
            if isinstance(action, StagedJob):
                try:
                    outcome = action.act(work)  # no transaction open: see _claim
                except Exception as exc:  # noqa: BLE001 - a failed outside step is an attempt
                    error = f"{type(exc).__name__}: {exc}"
                    self._keep(
                        job_id, lease, lambda: self.record_failure(job_id, error, action, lease)
                    )
                    return "failed"
            taken = action
            return self._keep(
                job_id, lease, lambda: self._record(job_id, lease, taken, work, outcome)
            )
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is lost
            trouble = passing_trouble(exc)
            try:
                self.record_failure(job_id, f"{type(exc).__name__}: {exc}", action, lease)
            except Exception as again:
                if trouble is None or passing_trouble(again) is None:
                    raise
                log.warning(
                    "job put off: %s; its deadline takes it up again",
                    trouble,
                    extra={"action": "job.put_off", "job_id": job_id, "error": str(exc)[:200]},
                )
            return "failed"

    def _keep(self, job_id: str, lease: datetime, step: Callable[[], Kept]) -> Kept:
        """Run ``step``, the transaction that keeps what the job did (its outcome, or its
        failure), again while the database is away for a while, until the job's lease ends.

        What the outside step did (a package posted, a peer's answer) is kept as soon as the
        database is back: left to the lease's end, a ten-second restart of the database held
        a delivery for the whole delivery lease and logged its attempt as interrupted.
        """
        wait = KEEP_FIRST_WAIT
        until = time.monotonic() + min(
            (lease - self.clock()).total_seconds(), self.keeping.total_seconds()
        )
        while True:
            try:
                return step()
            except Exception as exc:
                trouble = passing_trouble(exc)
                left = until - time.monotonic()
                if trouble is None or left <= wait or self.stopping.is_set():
                    raise
                log.info(
                    "job waits for the database to keep its outcome: %s",
                    trouble,
                    extra={"action": "job.keeping", "job_id": job_id, "retry_in": wait},
                )
                if self.stopping.wait(wait):
                    raise
                wait = min(wait * 2, KEEP_LONGEST_WAIT)

    def _claim(self, job_id: str) -> str | tuple[datetime, AnyJob, Any]:
        """Step 1, a short transaction: take the job, running, leased to this worker.

        The job's deadline timer moves to the lease's end: a worker that dies mid-job is
        re-driven from the database then. A job another worker holds a live lease on, or
        that is over, is skipped; one that is ``Busy`` waits its turn.
        """
        try:
            return self._take(job_id)
        except Busy as busy:
            return self._wait_turn(job_id, busy)

    def _wait_turn(self, job_id: str, busy: Busy) -> str:
        """The job waits on its timer (its claim was rolled back); no attempt counted."""
        with self.open_uow() as uow:
            job = uow.outbox.get(job_id, for_update=True)
            now = self.clock()
            if job is None or job.status in (DONE, FAILED) or job.leased(now):
                return "skipped"
            uow.outbox.wait(job_id)
            due = now + busy.retry_in
            uow.timers.reset(
                deadline_timer(job_id, job.document_id, due, agency_id=job.agency_id, backoff=True)
            )
            uow.commit()
        log.info("job waits its turn", extra={"action": "job.busy", "job_id": job_id})
        return "waiting"

    def _take(self, job_id: str) -> str | tuple[datetime, AnyJob, Any]:
        with self.open_uow() as uow:
            watch = self.clock_watch
            if watch is not None and (off := watch.off(uow.timers.server_now)) is not None:
                # A lease set by a clock stepped since the process started would be judged
                # ended (or live) wrongly: the job waits its turn, no attempt counted.
                raise Busy(
                    f"this machine's clock is {off.total_seconds():+.0f} s off the database's",
                    retry_in=CLOCK_OFF_WAIT,
                )
            job = uow.outbox.get(job_id, for_update=True)
            now = self.clock()
            if job is None or job.status in (DONE, FAILED) or job.leased(now):
                return "skipped"
            action = self.actions.get(job.action)
            if action is None:
                raise LookupError(f"no action named {job.action!r} is installed")
            work: Any = None
            if isinstance(action, StagedJob):
                work = action.prepare(self._context(job, uow, now))
                if work is None:
                    return self._finish(uow, job_id, now)
            lease = now + (self.policy(job.action).time_limit or self.deadline)
            uow.outbox.claim(job_id, lease)
            uow.timers.reset(
                deadline_timer(job_id, job.document_id, lease, agency_id=job.agency_id)
            )
            uow.commit()
        return lease, action, work

    def _record(self, job_id: str, lease: datetime, action: AnyJob, work: Any, outcome: Any) -> str:
        """Step 3, a short transaction: keep the outcome and end the job, if still ours.

        A plain action (rows only, no outside I/O) runs here, in this transaction.
        """
        with self.open_uow() as uow:
            job = uow.outbox.get(job_id, for_update=True)
            if job is None or job.status != RUNNING or job.lease_until != lease:
                return "skipped"  # ended, or re-driven after our lease: not ours any more
            now = self.clock()
            ctx = self._context(job, uow, now)
            try:
                if isinstance(action, StagedJob):
                    action.record(ctx, work, outcome)
                else:
                    action(ctx)
            except RetryLater as exc:
                # Keep what the action wrote, count the attempt, wait, run again.
                self._count_failure(uow, job, str(exc), now, at_least=exc.not_before)
                uow.commit()
                return "failed"
            return self._finish(uow, job_id, now)

    def _finish(self, uow: UnitOfWork, job_id: str, now: datetime) -> str:
        if not uow.outbox.finish(job_id, now):
            return "skipped"
        uow.timers.cancel(JOB_DEADLINE, job_id)
        uow.commit()
        log.info("job done", extra={"action": "job.done", "job_id": job_id})
        return "done"

    def policy(self, kind: str) -> JobPolicy:
        return self.policies.get(kind, self.default)

    def record_failure(
        self,
        job_id: str,
        error: str,
        action: AnyJob | None = None,
        lease: datetime | None = None,
    ) -> None:
        """Count a failed attempt of this worker's: under ``lease`` when it claimed the job,
        or before it could. A job that is no longer its own is left as it is: ended (done
        or given up), or taken by another worker once the lease ended (the scheduler
        counted this attempt then, as one whose outcome is unknown)."""
        with self.open_uow() as uow:
            job = uow.outbox.get(job_id, for_update=True)
            now = self.clock()
            if job is None or job.status in (DONE, FAILED):
                return
            if (job.lease_until != lease) if lease is not None else job.leased(now):
                return
            self._count_failure(uow, job, error, now, action)
            uow.commit()

    def on_deadline(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        """A scheduler timer: the job was not confirmed done in time, or its backoff ended.

        A lease that ended with no outcome recorded (the worker died mid-job) counts as a
        failed attempt, and may give up. A job no worker took meanwhile (the broker down or
        its message lost, every worker stopped) has not been tried: waiting is not an
        attempt, however long it lasts, and it is queued again as it is, never given up.
        Either way a job still to do is queued again with a new deadline.
        """
        # The scheduler holds this timer; a worker recording the job holds its row and
        # is about to delete the timer: waiting for the row would wait for each other.
        job = uow.outbox.get_unless_held(timer.ref_id)
        if job is None and uow.outbox.get(timer.ref_id) is not None:
            raise TimerBusy(f"job {timer.ref_id} is held by another transaction")
        if job is None or job.status in (DONE, FAILED):
            return
        if timer.payload.get("reason") != "backoff" and job.status == RUNNING:
            error = "the worker's lease ended with no outcome recorded"
            if self._count_failure(uow, job, error, now, self.actions.get(job.action)):
                return
        elif timer.payload.get("reason") != "backoff":
            log.warning(
                "job not taken by a worker in time; queued again",
                extra={"action": "job.untaken", "job_id": job.id, "job_kind": job.action},
            )
        uow.outbox.requeue(job.id)
        # Cancel and add, not reset: the scheduler deletes the timer that fired by its id
        # once this returns, and a reset keeps the id.
        uow.timers.cancel(JOB_DEADLINE, job.id)
        uow.timers.add(
            [deadline_timer(job.id, job.document_id, now + self.deadline, agency_id=job.agency_id)]
        )

    def _count_failure(
        self,
        uow: UnitOfWork,
        job: Job,
        error: str,
        now: datetime,
        action: AnyJob | None = None,
        *,
        at_least: timedelta | None = None,
    ) -> bool:
        """Count a failed attempt: wait on a backoff timer, or give up for good (True).

        The one place where a job's failure is counted; a staged job's ``failed`` hook
        writes what the failure means in the same transaction.
        """
        policy = self.policy(job.action)
        error = printable(error)  # an exception's text may quote a peer's answer
        attempts = uow.outbox.record_failure(job.id, error)
        uow.timers.cancel(JOB_DEADLINE, job.id)
        gave_up = attempts >= (policy.max_attempts or 1)
        if gave_up:
            uow.outbox.mark([job.id], FAILED, now)
        else:
            uow.outbox.wait(job.id)
            wait = max(policy.backoff.after(attempts, random.random()), at_least or timedelta(0))
            uow.timers.add(
                [
                    deadline_timer(
                        job.id, job.document_id, now + wait, agency_id=job.agency_id, backoff=True
                    )
                ]
            )
        # Its hook runs whichever step failed: claim (prepare) included, where the caller
        # had not yet been given the action.
        action = action or self.actions.get(job.action)
        if isinstance(action, StagedJob):
            ctx = self._context(job, uow, now)
            action.failed(ctx, error, final=gave_up)
        extra = {"action": "job.gave_up" if gave_up else "job.failed", "job_id": job.id}
        log.warning(
            "job gave up" if gave_up else "job failed",
            extra={**extra, "attempts": attempts, "error": error},
        )
        return gave_up
