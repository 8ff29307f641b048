"""One dramatiq actor per job kind, each with its own time limit, retries and concurrency.

A job kind's module (``review``, ``anchor``, ``timestamp``; delivery and escalation add
theirs) declares an :class:`ActorSpec`. :func:`install` registers one actor per spec on
the broker; each actor only hands the job id to the :class:`JobRunner`, which claims,
acts and records (actions/jobs.py). Retries are database timers counted in the job's
row, never the broker's: every actor has ``max_retries=0``. The relay sends a job to
the actor named after its action; a job kind with no spec of its own gets the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import dramatiq

from congvan.actions.jobs import FALLBACK_ACTOR, JobPolicy, JobRunner
from congvan.states.policy import Backoff

from .middleware import Concurrency, JobLogContext


@dataclass(frozen=True)
class ActorSpec:
    """How the jobs of one kind run: the actor's name is the job's action name."""

    job: str
    policy: JobPolicy = field(default_factory=JobPolicy)
    concurrency: int = 4  # at most this many at once in one worker process
    # its outside step may hang for long (a receiver that never answers): at most half
    # the worker threads of a process run it, whatever ``concurrency`` says
    may_hang: bool = False

    def tuned(self, *, backoff: Backoff, time_limit: timedelta) -> ActorSpec:
        """The same spec with its waits and time limit taken from configuration."""
        return replace(self, policy=replace(self.policy, backoff=backoff, time_limit=time_limit))


def install(
    broker: dramatiq.Broker,
    runner: JobRunner,
    specs: Iterable[ActorSpec],
    *,
    default: JobPolicy,
    threads: int = 4,
) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Register the middleware and one actor per job kind on ``broker``.

    ``default`` fills what a spec leaves unset (attempts, time limit) from the settings;
    ``threads``, the worker threads a process runs, bounds the kinds that ``may_hang``.
    The runner learns each kind's policy, so leases and retries follow the same numbers.
    """
    if not any(isinstance(m, JobLogContext) for m in broker.middleware):
        broker.add_middleware(JobLogContext())
        broker.add_middleware(Concurrency(threads))
    actors: dict[str, dramatiq.Actor[Any, Any]] = {}
    for spec in specs:
        policy = spec.policy.filled_from(default)
        runner.policies[spec.job] = policy
        actors[spec.job] = _actor(
            broker, runner, spec.job, policy, spec.concurrency, may_hang=spec.may_hang
        )
    # Messages for a kind no spec names, or queued by an earlier version under one name.
    actors[FALLBACK_ACTOR] = _actor(broker, runner, FALLBACK_ACTOR, default, 4)
    return actors


def specs_for(jobs: Iterable[str], known: Mapping[str, ActorSpec]) -> list[ActorSpec]:
    """A spec for every job kind: its own where declared, else the defaults."""
    return [known.get(job) or ActorSpec(job) for job in jobs]


def _actor(
    broker: dramatiq.Broker,
    runner: JobRunner,
    name: str,
    policy: JobPolicy,
    concurrency: int,
    *,
    may_hang: bool = False,
) -> dramatiq.Actor[Any, Any]:
    def run_job(job_id: str) -> None:
        runner.run(job_id)

    assert policy.time_limit is not None  # filled from the default
    return dramatiq.Actor(
        run_job,
        broker=broker,
        actor_name=name,
        queue_name="default",
        priority=0,
        options={
            "max_retries": 0,
            # dramatiq interrupts the thread a little after the lease ends: by then the
            # scheduler may have given the job to another worker.
            "time_limit": int(policy.time_limit.total_seconds() * 1000) + 5_000,
            "concurrency": concurrency,
            "may_hang": may_hang,
        },
    )
