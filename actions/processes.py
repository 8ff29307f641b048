"""One object per process, made on first use: a process started by fork makes its own.

A forked child inherits its parent's objects, but not the threads behind them (a watchdog's
thread) nor connections it may share (an HTTP pool's sockets): it must not use them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``get()`` returns this process's object, made by ``make`` the first time (once, however
    many threads ask at once)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: dict[int, T] = {}
        self._lock = threading.Lock()

    def get(self) -> T:
        pid = os.getpid()
        found = self._made.get(pid)
        if found is None:
            with self._lock:
                found = self._made.get(pid)
                if found is None:
                    found = self._made[pid] = self._make()
        return found
