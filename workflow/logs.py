"""Logging: one JSON (or console) line per event, with context bound once per request/job.

Every line carries a stable ``action`` key; ``request_id``, ``agency``, ``document_id`` and
``job_id`` are bound where they become known. Secrets never reach a line: values under
keys that name one are replaced before rendering.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog

from congvan.storage.database import passing_trouble

SECRET_WORDS = ("token", "passphrase", "password", "secret", "private", "authorization", "key_pem")
REDACTED = "[redacted]"


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any key that names a secret."""
    for key in list(event_dict):
        if any(word in key.lower() for word in SECRET_WORDS):
            event_dict[key] = REDACTED
    return event_dict


_URL_LOGGERS = ("httpx", "httpcore")
# Libraries that narrate their own work at INFO (fontTools lists every glyph it keeps
# when a stamp's font is subset, some thirty lines a signature): warnings only.
# fontTools names glyphs as a PDF is stamped; alembic says which plugins it set up each
# time a process checks its schema at start.
_CHATTY_LOGGERS = ("fontTools", "alembic")
# What a library adds to a record for a terminal's sake: uvicorn's ``color_message``, the
# line again with ANSI colours, which a JSON line would carry as escapes.
_FOR_TERMINALS = ("color_message",)


def drop_terminal_copies(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Leave out what a record carries only for a terminal."""
    for key in _FOR_TERMINALS:
        event_dict.pop(key, None)
    return event_dict


class BrokerOutage(logging.Filter):
    """dramatiq's consumers say a lost connection to the broker at CRITICAL, each thread
    every few seconds, and each restart at INFO: an outage the worker rides out by
    itself (work waits in the database, README) read as a disaster, a dozen lines a
    second for as long as Redis is away. Said instead as a warning in plain words, once
    a minute; whatever else a consumer says passes as it is. And a worker thread's
    "Message … was skipped." is left out: a job whose kind has every slot taken is queued
    again (``actors.middleware.Concurrency``), routine under load."""

    EVERY_SECONDS = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._said = -math.inf
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_WORKERS) and record.msg == _SKIPPED:
            # a message of a kind whose slots are all taken, queued again (Concurrency)
            return False
        if not record.name.startswith(_CONSUMERS):
            return True
        said = str(record.msg)
        if said.startswith(_RESTARTING):
            return False
        if not said.startswith(_CONNECTION_LOST):
            return True
        now = time.monotonic()
        with self._lock:
            if now - self._said < self.EVERY_SECONDS:
                return False
            self._said = now
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = (
            "the broker is not reachable: this worker's jobs wait for it, and it tries "
            "again every few seconds (said once a minute meanwhile): %s"
        )
        record.action = "broker.unreachable"
        return True


_CONSUMERS = "dramatiq.worker.ConsumerThread"
_WORKERS = "dramatiq.worker.WorkerThread"
_SKIPPED = "Message %s was skipped."
_CONNECTION_LOST = "Consumer encountered a connection error"
_RESTARTING = "Restarting consumer"


def configure_logging(
    level: str = "INFO", *, json: bool = True, stream: TextIO | None = None
) -> None:
    """Route stdlib and structlog records through one renderer (stderr by default)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        drop_terminal_copies,
        redact_secrets,
    ]
    # A JSON line carries a record's exception as text, its traceback included (the
    # console renderer lays it out itself); else it would be the repr of exc_info's tuple.
    rendering: list[Any] = (
        [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
        if json
        else [structlog.dev.ConsoleRenderer(colors=False)]
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(BrokerOutage())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The HTTP client logs each request's whole URL (at INFO, and more at DEBUG): a
    # webhook's path or query may hold its receiver's token. Our own lines say what was
    # posted where, by origin; the client's say nothing below a warning, at any level.
    for quiet in (*_URL_LOGGERS, *_CHATTY_LOGGERS):
        logging.getLogger(quiet).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class Passes:
    """How a background loop's passes (``what``: relay, scheduler) went, said in the log.

    A pass ended by what the next gets past by itself (the database restarting or away, a
    transaction rolled back for another) is a warning; anything else an error with its
    traceback. Either is said when it starts, when what goes wrong changes, and at most
    once a minute while it goes on, with the passes put off since: a loop polling twice a
    second would write thousands of lines an hour of a database outage. The first pass
    that goes through again says so, once.
    """

    EVERY_SECONDS = 60.0

    def __init__(
        self, logger: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.what = what
        self.clock = clock
        self._said: tuple[str, float] | None = None  # what was said last, and when
        self._since = 0.0  # when the passes began to fail
        self._unsaid = 0  # failed passes not said since the last line

    def failed(self, exc: Exception) -> None:
        now = self.clock()
        trouble = passing_trouble(exc)
        what_went_wrong = trouble or f"{type(exc).__name__}: {exc}"[:200]
        last = self._said
        if last is not None and last[0] == what_went_wrong and now - last[1] < self.EVERY_SECONDS:
            self._unsaid += 1
            return
        if last is None:
            self._since = now
        extra = {"passes_put_off": self._unsaid} if self._unsaid else {}
        self._said, self._unsaid = (what_went_wrong, now), 0
        if trouble is None:
            self.logger.error(
                f"{self.what} pass failed",
                exc_info=exc,
                extra={"action": f"{self.what}.failed", **extra},
            )
            return
        self.logger.warning(
            f"{self.what} pass put off: %s",
            trouble,
            extra={"action": f"{self.what}.put_off", "error": str(exc)[:200], **extra},
        )

    def passed(self) -> None:
        if self._said is None:
            return
        self.logger.info(
            f"{self.what} passes again",
            extra={
                "action": f"{self.what}.resumed",
                "seconds_put_off": round(self.clock() - self._since, 1),
            },
        )
        self._said, self._unsaid = None, 0
