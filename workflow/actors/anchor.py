"""The audit anchor's actor: sign every agency's changed chain heads (actions/anchoring.py).

One at a time in a process: anchors of one agency form a sequence.
"""

from __future__ import annotations

from datetime import timedelta

from congvan.actions.anchoring import JOB
from congvan.actions.jobs import JobPolicy

from . import ActorSpec

SPEC = ActorSpec(JOB, JobPolicy(time_limit=timedelta(minutes=5)), concurrency=1)
