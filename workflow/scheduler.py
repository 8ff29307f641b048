"""The scheduler: fires database timers that are due, in batches, cost ∝ what is due."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from congvan.states.policy import Backoff
from congvan.storage.clock import Clock, ClockWatch
from congvan.storage.timers import JOB_DEADLINE, DueTimer, TimerBusy
from congvan.storage.unit_of_work import UnitOfWork

from .logs import Passes

log = logging.getLogger("congvan.scheduler")

# How much of a failed handler's error a timer row keeps.
_ERROR_CHARS = 1000

TimerHandler = Callable[[UnitOfWork, DueTimer, datetime], None]


class Scheduler:
    """Takes due timers (skipping rows another scheduler holds) and runs their handler.

    Several schedulers may run at once: on PostgreSQL each takes rows the others have not
    locked (``FOR UPDATE SKIP LOCKED``); on SQLite a tick is one writer (``BEGIN
    IMMEDIATE``) and the next sees the timers the last one fired already gone.
    """

    def __init__(
        self,
        open_uow: Callable[[], UnitOfWork],
        clock: Clock,
        *,
        max_attempts: int = 8,
        retry_seconds: float = 30.0,
        retry_cap_seconds: float = 3600.0,
        batch: int = 200,
        poll_seconds: float = 1.0,
        on_requeue: Callable[[], None] | None = None,
        handlers: Mapping[str, TimerHandler] | None = None,
        clock_watch: ClockWatch | None = None,
    ) -> None:
        self.open_uow = open_uow
        self.clock = clock
        self.clock_watch = clock_watch
        self.max_attempts = max_attempts
        self.retries = Backoff(
            timedelta(seconds=retry_seconds), timedelta(seconds=retry_cap_seconds)
        )
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.on_requeue = on_requeue
        self.handlers: dict[str, TimerHandler] = dict(handlers or {})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        """Take one batch of due timers, fire them, remove those fired.

        A handler that raises undoes only its own timer's work: the failure is counted on
        the timer's row, which is taken again after a backoff, or parked after
        ``max_attempts``; the timers behind it fire all the same. Returns how many were taken:
        none while this machine's clock is off the database server's.
        """
        requeued = False
        with self.open_uow() as uow:
            watch = self.clock_watch
            if watch is not None and watch.off(uow.timers.server_now) is not None:
                return 0  # a clock stepped since: every lease would look ended (ClockWatch)
            now = self.clock()
            due = uow.timers.take_due(now, self.batch)
            fired = self._fire_batch(uow, due, now)
            # One DELETE for the batch: a timer that failed stays, counted by _failed.
            uow.timers.remove([timer.id for timer in fired])
            requeued = any(timer.kind == JOB_DEADLINE for timer in fired)
            uow.commit()
        if requeued and self.on_requeue is not None:
            self.on_requeue()
        return len(due)

    def _fire_batch(self, uow: UnitOfWork, due: list[DueTimer], now: datetime) -> list[DueTimer]:
        """Fire ``due`` in one savepoint; if a handler fails, undo them all and fire each
        in a savepoint of its own, so that only the failing ones are undone and counted.

        One savepoint per timer costs two round trips each on PostgreSQL, more than the
        timer's own work; failures are rare. Running a handler again after its savepoint
        was rolled back is running it once: handlers write to the database only (nothing
        leaves the process inside a transaction), though what they log is logged again.
        """
        try:
            with uow.savepoint():
                for timer in due:
                    self._handle(uow, timer, now)
        except Exception:  # noqa: BLE001 - which one failed is found out one by one below
            return [timer for timer in due if self._fire(uow, timer, now)]
        return list(due)

    def _handle(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        handler = self.handlers.get(timer.kind)
        if handler is None:
            raise LookupError(f"no handler for timers of kind {timer.kind!r}")
        handler(uow, timer, now)

    def _fire(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> bool:
        """Run one timer's handler; True if it fired, False if it failed (and was counted)."""
        try:
            with uow.savepoint():
                self._handle(uow, timer, now)
        except TimerBusy as busy:
            uow.timers.later(timer.id, now + busy.RETRY)
            log.info("timer's subject busy", extra={"action": "timer.busy", "timer_id": timer.id})
            return False
        except Exception as exc:  # noqa: BLE001 - any handler failure is counted, not raised
            self._failed(uow, timer, now, exc)
            return False
        return True

    def _failed(self, uow: UnitOfWork, timer: DueTimer, now: datetime, exc: Exception) -> None:
        attempts = timer.attempts + 1
        error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
        context = {"timer_id": timer.id, "kind": timer.kind, "attempts": attempts}
        if attempts >= self.max_attempts:
            uow.timers.park(timer.id, attempts, error, now)
            log.error("timer parked", extra={"action": "timer.parked", "error": error, **context})
            return
        retry_at = now + self.backoff(attempts)
        uow.timers.retry_later(timer.id, attempts, error, retry_at)
        log.warning(
            "timer failed",
            exc_info=exc,
            extra={"action": "timer.failed", "retry_at": retry_at.isoformat(), **context},
        )

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failure of a timer."""
        return self.retries.after(attempts)

    def run_due(self) -> int:
        """Fire everything due now."""
        total = 0
        while (fired := self.tick()) > 0:
            total += fired
            if fired < self.batch:
                break
        return total

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="congvan-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        passes = Passes(log, "scheduler")
        while not self._stop.wait(self.poll_seconds):
            try:
                self.run_due()
            except Exception as exc:  # noqa: BLE001 - the next pass tries again
                passes.failed(exc)
            else:
                passes.passed()
