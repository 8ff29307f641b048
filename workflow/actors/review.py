"""The review checks' actor: every check on a submitted revision (actions/review.py).

Rows and CPU only, no outside I/O: a short time limit; several at once.
"""

from __future__ import annotations

from datetime import timedelta

from congvan.actions.jobs import JobPolicy

from . import ActorSpec

SPEC = ActorSpec(
    "run_review_checks",
    JobPolicy(time_limit=timedelta(minutes=2)),
    concurrency=4,
)
