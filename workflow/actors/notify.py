"""The notification actor: one webhook post or one e-mail (actions/notifications.py).

Outside I/O bounded by its own timeout (webhook_timeout_seconds, smtp_timeout_seconds): a
time limit well above it, many at once. Attempts and the waits between them come from the
settings (notify_*); the waits are database timers.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from congvan.actions.jobs import JobPolicy
from congvan.actions.notifications import JOB
from congvan.states.policy import Backoff

from . import ActorSpec

SPEC = ActorSpec(
    JOB,
    JobPolicy(
        time_limit=timedelta(minutes=5),
        max_attempts=8,
        backoff=Backoff(first=timedelta(seconds=30), cap=timedelta(hours=1), jitter=0.2),
    ),
    concurrency=8,
    may_hang=True,  # a receiver that never answers holds its thread to the timeout
)


def configured(*, max_attempts: int, first: float, cap: float) -> ActorSpec:
    """The spec with its attempts and waits taken from the settings."""
    backoff = Backoff(timedelta(seconds=first), timedelta(seconds=max(cap, first)), jitter=0.2)
    return replace(SPEC, policy=replace(SPEC.policy, max_attempts=max_attempts, backoff=backoff))
