"""The outbox relay: the only code that talks to the broker, and only after commit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import dramatiq

from congvan.actions.jobs import FALLBACK_ACTOR
from congvan.storage.clock import Clock
from congvan.storage.outbox import ENQUEUED
from congvan.storage.unit_of_work import UnitOfWork

log = logging.getLogger("congvan.relay")


class Relay:
    """Moves pending outbox jobs to the broker in batches.

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
        self._thread: threading.Thread | None = None

    def relay_once(self) -> int:
        """Send one batch of pending jobs; returns how many were sent.

        The batch is marked enqueued and committed first, so no transaction stays open
        while the broker is slow. A crash after that commit and before the send loses
        nothing: the job's deadline timer re-drives it.
        """
        with self.open_uow() as uow:
            jobs = uow.outbox.claim_pending(self.batch)
            if not jobs:
                return 0
            uow.outbox.mark([j.id for j in jobs], ENQUEUED, self.clock())
            uow.commit()
        unsent = []
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
            except Exception:  # noqa: BLE001 - the broker is down: the jobs wait in the table
                unsent.append(job.id)
        if unsent:
            log.warning(
                "broker refused jobs", extra={"action": "relay.unsent", "count": len(unsent)}
            )
            with self.open_uow() as uow:
                uow.outbox.requeue_many(unsent)
                uow.commit()
        return len(jobs) - len(unsent)

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

    def kick(self, _job_ids: list[str] | None = None) -> None:
        """Ask the background loop to relay now (called after a commit)."""
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="congvan-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            try:
                self.drain()
            except Exception:
                log.exception("relay pass failed", extra={"action": "relay.failed"})
