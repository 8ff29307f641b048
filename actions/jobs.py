"""Running one outbox job, idempotently, and the dramatiq actor that calls it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import dramatiq
import structlog

from congvan.states.policy import job_backoff_seconds
from congvan.storage.clock import Clock
from congvan.storage.ids import new_id
from congvan.storage.outbox import DONE, FAILED
from congvan.storage.timers import JOB_DEADLINE
from congvan.storage.unit_of_work import UnitOfWork

from .context import JobAction, JobContext

log = logging.getLogger("congvan.jobs")

ACTOR_NAME = "congvan_run_job"
QUEUES = ("urgent", "default")


class RetryLater(Exception):
    """The job wrote what it could and must run again after a backoff."""


class JobRunner:
    """Runs a job at most once to completion, however often its message arrives.

    The action runs inside the transaction that marks the job done, so an action that
    only writes rows takes effect exactly once; one that talks to the outside world must
    itself be idempotent, keyed by the job id. A failure is counted in the row and the
    job's database timer is moved to the backoff time: the scheduler re-drives it, never
    the broker.
    """

    def __init__(
        self,
        open_uow: Callable[[], UnitOfWork],
        actions: Mapping[str, JobAction],
        clock: Clock,
        *,
        max_attempts: int,
    ) -> None:
        self.open_uow = open_uow
        self.actions = actions
        self.clock = clock
        self.max_attempts = max_attempts

    def run(self, job_id: str) -> str:
        """Run the job; returns ``done``, ``skipped`` (nothing to do) or ``failed``."""
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            return self._run(job_id)

    def _run(self, job_id: str) -> str:
        try:
            with self.open_uow() as uow:
                job = uow.outbox.get(job_id, for_update=True)
                if job is None or job.status in (DONE, FAILED):
                    return "skipped"
                action = self.actions.get(job.action)
                if action is None:
                    raise LookupError(f"no action named {job.action!r} is installed")
                now = self.clock()
                try:
                    action(JobContext(job=job, uow=uow, now=now, open_uow=self.open_uow))
                except RetryLater as exc:
                    # Keep what the action wrote, count the attempt, wait, run again.
                    self._schedule_retry(uow, job_id, str(exc), now)
                    uow.commit()
                    return "failed"
                if not uow.outbox.finish(job_id, now):
                    return "skipped"
                uow.timers.cancel(JOB_DEADLINE, job_id)
                uow.commit()
                log.info("job done", extra={"action": "job.done", "job_id": job_id})
                return "done"
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is lost
            self.record_failure(job_id, f"{type(exc).__name__}: {exc}")
            return "failed"

    def record_failure(self, job_id: str, error: str) -> None:
        with self.open_uow() as uow:
            self._schedule_retry(uow, job_id, error, self.clock())
            uow.commit()

    def _schedule_retry(self, uow: UnitOfWork, job_id: str, error: str, now: datetime) -> None:
        """Count a failed attempt; wait on a database timer, or give up for good."""
        attempts = uow.outbox.record_failure(job_id, error)
        uow.timers.cancel(JOB_DEADLINE, job_id)
        job = uow.outbox.get(job_id)
        if job is None:
            return
        if attempts >= self.max_attempts:
            uow.outbox.mark([job_id], FAILED, now)
        else:
            uow.timers.add(
                [
                    {
                        "id": new_id(),
                        "kind": JOB_DEADLINE,
                        "ref_id": job_id,
                        "document_id": job.document_id,
                        "due_at": now + timedelta(seconds=job_backoff_seconds(attempts)),
                        # The failure is counted already: the scheduler must not count
                        # the end of the wait as a missed deadline.
                        "payload": {"reason": "backoff"},
                    }
                ]
            )
        log.warning(
            "job failed", extra={"action": "job.failed", "job_id": job_id, "attempts": attempts}
        )


def install_actor(broker: dramatiq.Broker, runner: JobRunner) -> dramatiq.Actor[Any, Any]:
    """Register the one actor that runs outbox jobs on ``broker``.

    Broker retries are off: retries and deadlines are database timers.
    """

    def run_job(job_id: str) -> None:
        runner.run(job_id)

    return dramatiq.Actor(
        run_job,
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name="default",
        priority=0,
        options={"max_retries": 0, "time_limit": 10 * 60 * 1000},
    )
