"""The scheduler: fires database timers that are due, in batches, cost ∝ what is due."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from congvan.storage.clock import Clock
from congvan.storage.ids import new_id
from congvan.storage.outbox import DONE, FAILED
from congvan.storage.timers import JOB_DEADLINE, DueTimer
from congvan.storage.unit_of_work import UnitOfWork

log = logging.getLogger("congvan.scheduler")

TimerHandler = Callable[[UnitOfWork, DueTimer, datetime], None]


class Scheduler:
    """Takes due timers (skipping rows another scheduler holds) and runs their handler."""

    def __init__(
        self,
        open_uow: Callable[[], UnitOfWork],
        clock: Clock,
        *,
        job_deadline_seconds: int,
        job_max_attempts: int,
        batch: int = 200,
        poll_seconds: float = 1.0,
        on_requeue: Callable[[], None] | None = None,
        handlers: Mapping[str, TimerHandler] | None = None,
    ) -> None:
        self.open_uow = open_uow
        self.clock = clock
        self.job_deadline = timedelta(seconds=job_deadline_seconds)
        self.job_max_attempts = job_max_attempts
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.on_requeue = on_requeue
        self.handlers: dict[str, TimerHandler] = {JOB_DEADLINE: self.redrive_job}
        self.handlers.update(handlers or {})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        """Fire one batch of due timers in one transaction; returns how many fired."""
        requeued = False
        with self.open_uow() as uow:
            now = self.clock()
            due = uow.timers.take_due(now, self.batch)
            for timer in due:
                handler = self.handlers.get(timer.kind)
                if handler is None:
                    log.error(
                        "no handler for timer",
                        extra={"action": "timer.unknown", "kind": timer.kind},
                    )
                    continue
                handler(uow, timer, now)
                requeued = requeued or timer.kind == JOB_DEADLINE
            uow.timers.remove([t.id for t in due])
            uow.commit()
        if requeued and self.on_requeue is not None:
            self.on_requeue()
        return len(due)

    def run_due(self) -> int:
        """Fire everything due now."""
        total = 0
        while (fired := self.tick()) > 0:
            total += fired
            if fired < self.batch:
                break
        return total

    def redrive_job(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        """A job was not confirmed done in time, or its backoff wait ended: run it again."""
        job = uow.outbox.get(timer.ref_id, for_update=True)
        if job is None or job.status in (DONE, FAILED):
            return
        attempts = job.attempts
        if timer.payload.get("reason") != "backoff":
            attempts = uow.outbox.record_failure(job.id, "deadline passed with no confirmation")
        if attempts >= self.job_max_attempts:
            uow.outbox.mark([job.id], FAILED, now)
            log.warning("job gave up", extra={"action": "job.gave_up", "job_id": job.id})
            return
        uow.outbox.requeue(job.id)
        uow.timers.add(
            [
                {
                    "id": new_id(),
                    "kind": JOB_DEADLINE,
                    "ref_id": job.id,
                    "document_id": job.document_id,
                    "due_at": now + self.job_deadline,
                }
            ]
        )

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="congvan-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.run_due()
            except Exception:
                log.exception("scheduler pass failed", extra={"action": "scheduler.failed"})
