"""The outbox relay: the only code that talks to the broker, and only after commit."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import dramatiq

from congvan.actions.jobs import FALLBACK_ACTOR
from congvan.states.text import printable
from congvan.storage.clock import Clock
from congvan.storage.outbox import ENQUEUED, Job
from congvan.storage.unit_of_work import UnitOfWork

from .logs import Passes

log = logging.getLogger("congvan.relay")


# While the broker keeps refusing jobs, the same reason is logged at most this often.
REFUSAL_LOG_SECONDS = 60.0


class Relay:
    """Moves outbox jobs to the broker, from memory or from the table.

    While its loop runs in this process, a unit of work writes its jobs as enqueued and,
    once it commits, hands them over (``hand_off``): the loop sends them with no
    transaction of its own. Jobs written where no loop runs (a command-line process), or
    handed back because the broker refused them, wait as pending, and the loop moves them
    in batches: when told (``kick``) and every ``poll_seconds``. ``start(poll=False)``
    (a worker process) sends what is handed over and leaves the table to the scheduler's
    relay.

    A job whose message is lost is not lost: its deadline timer re-drives it. A job sent
    twice runs once, because the runner is keyed by the job id.
    """

    def __init__(
        self,
        open_uow: Callable[[], UnitOfWork],
        broker: dramatiq.Broker,
        clock: Clock,
        *,
        batch: int = 200,
        poll_seconds: float = 0.5,
    ) -> None:
        self.open_uow = open_uow
        self.broker = broker
        self.clock = clock
        self.batch = batch
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Held while a pass takes jobs and gives them to the broker: a flush or a drain from
        # another thread (Runtime.join) waits for the loop's pass under way, instead of
        # finding nothing left to take while the loop has not sent what it took.
        self._passing = threading.Lock()
        self._thread: threading.Thread | None = None
        self._handed: deque[Job] = deque()
        self._kicked = False
        self._polling = True
        # Read by every unit of work as it opens: whether its jobs are handed over.
        self._live = False
        # While the broker refuses jobs: why, and when that was last logged.
        self._refusing: tuple[str, float] | None = None

    def handing_off(self) -> bool:
        return self._live

    def hand_off(self, jobs: Sequence[Job]) -> None:
        """Committed jobs, written as enqueued: the loop sends them soon."""
        if not self._live:  # stopped since their transaction began: the table has them
            try:
                self._requeue([j.id for j in jobs])
            except Exception:  # committed already: their deadline timers re-drive them
                log.exception("relay could not put back jobs", extra={"action": "relay.failed"})
            return
        self._handed.extend(jobs)
        self._wake.set()

    def flush(self) -> int:
        """Send what was handed over; returns how many the broker took."""
        with self._passing:
            jobs = self._take_handed()
            if not jobs:
                return 0
            return len(jobs) - len(self._send(jobs))

    def _take_handed(self) -> list[Job]:
        """What was handed over and not yet taken (safe beside a concurrent hand_off)."""
        jobs = []
        while True:
            try:
                jobs.append(self._handed.popleft())
            except IndexError:
                return jobs

    def relay_once(self) -> int:
        """Send one batch of pending jobs; returns how many were sent.

        The batch is marked enqueued and committed first, so no transaction stays open
        while the broker is slow. A crash after that commit and before the send loses
        nothing: the job's deadline timer re-drives it.
        """
        with self._passing:
            with self.open_uow() as uow:
                jobs = uow.outbox.claim_pending(self.batch)
                if not jobs:
                    return 0
                uow.outbox.mark([j.id for j in jobs], ENQUEUED, self.clock())
                uow.commit()
            return len(jobs) - len(self._send(jobs))

    def _send(self, jobs: Sequence[Job]) -> list[str]:
        """Give ``jobs`` to the broker; those it refuses go back to pending (their ids)."""
        unsent = []
        why = ""
        for job in jobs:
            try:
                self.broker.enqueue(
                    dramatiq.Message(
                        queue_name=job.queue,
                        actor_name=self._actor_for(job.action),
                        args=(job.id,),
                        kwargs={},
                        options={},
                    )
                )
            except Exception as exc:  # noqa: BLE001 - the broker is down: the jobs wait
                unsent.append(job.id)
                why = why or printable(f"{type(exc).__name__}: {exc}")[:300]
        self._tell(len(unsent), why)
        if unsent:
            self._requeue(unsent)
        return unsent

    def _tell(self, unsent: int, why: str) -> None:
        """Say the broker refuses jobs, and why: when it starts, when the reason changes,
        and at most once a minute while it goes on (a poll every half second would fill
        the log); and once when it takes them again."""
        now = time.monotonic()
        if not unsent:
            if self._refusing is not None:
                log.info("broker takes jobs again", extra={"action": "relay.resumed"})
                self._refusing = None
            return
        last = self._refusing
        if last is None or last[0] != why or now - last[1] >= REFUSAL_LOG_SECONDS:
            log.warning(
                "broker refused jobs",
                extra={"action": "relay.unsent", "count": unsent, "error": why},
            )
            self._refusing = (why, now)

    def _requeue(self, job_ids: list[str]) -> None:
        """Back to pending, for a relay pass to send (when the broker takes them)."""
        with self.open_uow() as uow:
            uow.outbox.requeue_many(job_ids)
            uow.commit()

    def _actor_for(self, kind: str) -> str:
        """The actor named after the job's kind; the fallback one for a kind with none."""
        return kind if kind in self.broker.actors else FALLBACK_ACTOR

    def drain(self) -> int:
        """Relay until nothing is pending: until a batch comes back short of full.

        A job committed after that batch was read sets the wake-up again, so the loop
        comes back for it without a pass that would find nothing.
        """
        total = 0
        while (sent := self.relay_once()) > 0:
            total += sent
            if sent < self.batch:
                break
        return total

    def kick(self) -> None:
        """Ask the background loop to look for pending jobs now (called after a commit)."""
        self._kicked = True
        self._wake.set()

    def start(self, *, poll: bool = True) -> None:
        """Run the loop; ``poll=False``: send what is handed over, never read the table."""
        self._stop.clear()
        self._polling = poll
        self._live = True
        self._thread = threading.Thread(target=self._loop, name="congvan-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._live = False
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            left = [j.id for j in self._take_handed()]
            if left:  # pending again, for the next start to send at once
                self._requeue(left)
        except Exception:
            log.exception("relay could not put back its jobs", extra={"action": "relay.failed"})

    def _loop(self) -> None:
        # The table is read when told to, and every poll_seconds however busy the hand-over
        # keeps the loop (a job written by another process is found no later than that).
        next_poll = time.monotonic()
        passes = Passes(log, "relay")
        while not self._stop.is_set():
            if self._polling:
                self._wake.wait(max(0.0, next_poll - time.monotonic()))
            else:
                self._wake.wait()
            self._wake.clear()
            # Reset before the table is read: a kick after the reset is seen next time.
            kicked = self._kicked
            if kicked:
                self._kicked = False
            try:
                self.flush()
                if self._polling and (kicked or time.monotonic() >= next_poll):
                    next_poll = time.monotonic() + self.poll_seconds
                    self.drain()
            except Exception as exc:  # noqa: BLE001 - the next pass tries again
                passes.failed(exc)
            else:
                passes.passed()
