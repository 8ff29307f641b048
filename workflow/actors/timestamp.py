"""The timestamp actor: ask the TSA for an RFC 3161 token (actions/timestamping.py).

An HTTP call to an outside authority: a short time limit, a few at once, and more
attempts with a longer backoff, since a TSA may be away for a while.
"""

from __future__ import annotations

from datetime import timedelta

from congvan.actions.jobs import JobPolicy
from congvan.actions.timestamping import JOB
from congvan.states.policy import Backoff

from . import ActorSpec

SPEC = ActorSpec(
    JOB,
    JobPolicy(
        time_limit=timedelta(minutes=1),
        backoff=Backoff(first=timedelta(minutes=1), cap=timedelta(hours=2)),
    ),
    concurrency=2,
)
