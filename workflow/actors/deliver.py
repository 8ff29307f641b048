"""The delivery actor: one attempt to post one dispatch's package (actions/delivery.py).

Outside I/O (HTTP to a peer, within the peer's timeout): a time limit well above it. The
dispatch machine counts the attempts that reached a peer and decides when to give up; the
job's own limit only stops a job that keeps crashing. Backoff waits are database timers.
"""

from __future__ import annotations

from datetime import timedelta

from congvan.actions.jobs import JobPolicy
from congvan.states.policy import Backoff

from . import ActorSpec

SPEC = ActorSpec(
    "deliver_dispatches",
    JobPolicy(
        time_limit=timedelta(minutes=11),  # a peer's timeout is at most 10 minutes
        max_attempts=64,
        backoff=Backoff(first=timedelta(seconds=10), cap=timedelta(minutes=30)),
    ),
    concurrency=8,
)
