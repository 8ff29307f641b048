"""Identifiers that sort by creation time (UUID version 7 layout)."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_sequence = 0


def new_id() -> str:
    """A UUIDv7 string: 48 bits of Unix milliseconds, a 12-bit counter, then randomness.

    Within one process, ids are strictly increasing even inside one millisecond (the
    counter, RFC 9562 method 1), so "newest first" listings keep creation order.
    """
    global _last_ms, _sequence
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _sequence = ms, 0
        else:
            _sequence += 1
            if _sequence > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms, _sequence = _last_ms + 1, 0
        ms, seq = _last_ms, _sequence
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0x2 << 62 | rand
    return str(uuid.UUID(int=value))
