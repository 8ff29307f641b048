"""Time as an injectable dependency, so timers and tests agree on "now"."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]

log = logging.getLogger("congvan.clock")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Read a stored timestamp back as aware UTC (SQLite returns it naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class FrozenClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class MovableClock:
    """The real time, plus however far it was moved forward: the demo's installations
    share one, so a deadline days away passes in a moment and every timer sees it."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **delta: float) -> datetime:
        self.offset += timedelta(**delta)
        return self()


class ClockWatch:
    """Whether this machine's clock still agrees with the database server's.

    Leases are set by a worker's clock and judged by the scheduler's; the database server's
    clock is their common reference. A process checks it as it starts (``congvan serve``,
    ``worker``, ``scheduler``); a clock stepped later (an NTP step, a virtual machine
    resumed) would have a scheduler take every lease as ended and count each delivery in
    flight as interrupted, its receipt thrown away. The scheduler and the workers ask
    ``off`` before judging or setting a lease, and wait while it is not None.

    ``server_now`` is read at most every ``every`` seconds (the last verdict meanwhile); it
    returns None where the database has no clock of its own (SQLite: a file read on this
    machine, by this clock). The wall clock is the machine's, whatever clock the caller
    was given (a test's frozen one follows no machine).
    """

    def __init__(self, allowed: timedelta, *, every: float = 5.0, wall: Clock = utcnow) -> None:
        self.allowed = allowed
        self.every = every
        self.wall = wall
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._off: timedelta | None = None

    def off(self, server_now: Callable[[], datetime | None]) -> timedelta | None:
        """How far this clock is off the server's when more than allowed (ahead: positive);
        None when they agree, or when there is no server clock to tell."""
        with self._lock:
            if time.monotonic() - self._checked < self.every:
                return self._off
            before = self.wall()
            server = server_now()
            after = self.wall()
            self._checked = time.monotonic()
            was = self._off
            skew = None if server is None else before + (after - before) / 2 - server
            self._off = skew if skew is not None and abs(skew) > self.allowed else None
        if self._off is not None and was is None:
            log.error(
                "this machine's clock is %.0f s %s the database server's: leases are neither "
                "set nor judged until it agrees again (set the clock: NTP)",
                abs(self._off.total_seconds()),
                "ahead of" if self._off > timedelta(0) else "behind",
                extra={"action": "clock.off", "skew_seconds": round(self._off.total_seconds(), 1)},
            )
        elif self._off is None and was is not None:
            log.warning(
                "this machine's clock agrees with the database server's again",
                extra={"action": "clock.agrees"},
            )
        return self._off
