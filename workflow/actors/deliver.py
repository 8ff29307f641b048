"""The delivery actors: a dispatch's package (actions/delivery.py), a status message back.

Outside I/O (HTTP to a peer, within the peer's timeout): a time limit well above it. The
dispatch machine counts the attempts that reached a peer and decides when to give up; the
job's own limit only stops a job that keeps crashing. Backoff waits are database timers.
"""

from __future__ import annotations

from datetime import timedelta

from congvan.actions.jobs import JobPolicy
from congvan.states.policy import Backoff

from . import ActorSpec

# The defaults; the settings (delivery_retry_*, delivery_lease_seconds) replace the waits
# between attempts and the time limit at bootstrap.
BACKOFF = Backoff(first=timedelta(seconds=10), cap=timedelta(minutes=30), jitter=0.2)

SPEC = ActorSpec(
    "deliver_dispatches",
    JobPolicy(
        time_limit=timedelta(minutes=11),  # a peer's timeout is at most 10 minutes
        max_attempts=64,
        backoff=BACKOFF,
    ),
    concurrency=8,
)

# Status messages back to a sender (actions/statuses.py): the same kind of work, lighter.
STATUS_SPEC = ActorSpec(
    "send_status",
    JobPolicy(
        time_limit=timedelta(minutes=11),
        max_attempts=64,
        backoff=BACKOFF,
    ),
    concurrency=4,
)
