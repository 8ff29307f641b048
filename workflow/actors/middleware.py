"""dramatiq middleware for job actors: the job's log context, and a cap on concurrency.

Hooks of dramatiq's ``Middleware`` run around every message a worker thread processes;
metrics will hang on the same hooks.
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

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
    """At most ``concurrency`` messages of one actor at once in this process.

    A worker thread waits for a slot before processing; other actors' messages are not
    held up by a busy kind beyond the threads it occupies.
    """

    def __init__(self) -> None:
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._held: set[str] = set()
        self._lock = threading.Lock()

    @property
    def actor_options(self) -> set[str]:
        return {"concurrency"}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        limit = broker.get_actor(message.actor_name).options.get("concurrency")
        if not limit:
            return
        with self._lock:
            slots = self._slots.setdefault(
                message.actor_name, threading.BoundedSemaphore(int(limit))
            )
        slots.acquire()
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
