"""dramatiq middleware for job actors: the job's log context, and a cap on concurrency.

Hooks of dramatiq's ``Middleware`` run around every message a worker thread processes;
metrics will hang on the same hooks.
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware, SkipMessage

_LOG_KEYS = ("job_id", "job_kind", "message_id")


class JobLogContext(Middleware):
    """Binds the job id, its kind and the message id to every log line of the job."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.bind_contextvars(
            job_id=message.args[0] if message.args else None,
            job_kind=message.actor_name,
            message_id=message.message_id,
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        structlog.contextvars.unbind_contextvars(*_LOG_KEYS)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.unbind_contextvars(*_LOG_KEYS)


class Concurrency(Middleware):
    """At most ``concurrency`` messages of one actor at once in this process; of a kind
    whose outside step may hang (``may_hang``: a webhook receiver that never answers), at
    most half the worker threads, so that other kinds always have threads.

    A message of a kind whose slots are all taken does not wait in a worker thread (eight
    webhook receivers that never answered held every thread, and reviews and deliveries
    waited behind them): it goes back to the queue for ``AGAIN_MS`` and the thread takes
    the next one. Its job was not claimed, so nothing is counted.
    """

    AGAIN_MS = 500

    def __init__(self, threads: int = 4) -> None:
        self._half = max(1, threads // 2)
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._held: set[str] = set()
        self._lock = threading.Lock()

    @property
    def actor_options(self) -> set[str]:
        return {"concurrency", "may_hang"}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        options = broker.get_actor(message.actor_name).options
        limit = options.get("concurrency")
        if not limit:
            return
        if options.get("may_hang"):
            limit = min(int(limit), self._half)
        with self._lock:
            slots = self._slots.setdefault(message.actor_name, threading.BoundedSemaphore(limit))
        if not slots.acquire(blocking=False):
            broker.enqueue(message.copy(), delay=self.AGAIN_MS)
            raise SkipMessage(f"every slot of {message.actor_name} is taken: queued again")
        with self._lock:
            self._held.add(message.message_id)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._release(message)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._release(message)

    def _release(self, message: Any) -> None:
        with self._lock:
            if message.message_id not in self._held:
                return
            self._held.discard(message.message_id)
            slots = self._slots[message.actor_name]
        slots.release()
