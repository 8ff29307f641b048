"""What guards, effects and jobs are handed: frozen data plus the open unit of work."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from congvan.storage.chains import DocumentHead
from congvan.storage.outbox import Job
from congvan.storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Actor:
    """Who fires an event: a person's principal, or the system itself."""

    name: str
    agency_id: str | None
    roles: frozenset[str]
    is_system: bool = False


SYSTEM = Actor(name="system", agency_id=None, roles=frozenset(), is_system=True)


@dataclass
class TransitionContext:
    """A transition in progress, inside its one transaction."""

    uow: UnitOfWork
    document: DocumentHead
    event: str
    actor: Actor
    data: Mapping[str, Any]
    now: datetime
    # Effects add what the audit entry should record about them.
    audit: dict[str, Any] = field(default_factory=dict)
    # Effects add what the transition's jobs need to know (e.g. the revision to check).
    job_payload: dict[str, Any] = field(default_factory=dict)
    # What each effect's preparer computed before the transaction opened, by effect name
    # (absent when there was none, or when the transition runs inside another's).
    prepared: Mapping[str, Any] = field(default_factory=dict)
    # An effect may split a job its edge names into one job per item (one delivery per
    # dispatch): the job's name → the payload of each.
    fan_out: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Events this transition implies on another subject, fired by the engine in the same
    # transaction once this one is written: (machine, subject id, event, data).
    follow: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)


class Events(Protocol):
    """What a job may ask of the engine: fire events inside its own open transaction.

    The one interface from actions/ to the engine (which lives above, in workflow/), so a
    job records its outcome and the events it implies in one commit without importing
    upward.
    """

    def fire_on_within(
        self,
        uow: UnitOfWork,
        machine: str,
        subject_id: str,
        event: str,
        *,
        actor: Actor = ...,
        data: Mapping[str, Any] | None = None,
    ) -> Any:
        """Fire ``event`` on a subject of ``machine`` (document, dispatch, received)."""
        ...


@dataclass(frozen=True)
class JobContext:
    """A job being run by a worker, with its own transaction already open."""

    job: Job
    uow: UnitOfWork
    now: datetime
    open_uow: Callable[[], UnitOfWork]
    # The engine, to fire events in ``uow``'s transaction (None where none is wired).
    events: Events | None = None


Guard = Callable[[TransitionContext], tuple[bool, str]]
Effect = Callable[[TransitionContext], None]
# Heavy work an effect needs (CPU: signing a PDF), done before the transition's write
# transaction opens, in a read-only one, as of the document's version it is handed in
# ``ctx.document``; the engine runs the transition only if that version is still current.
Preparer = Callable[[TransitionContext], Any]


@dataclass(frozen=True)
class PreparedEffect:
    """An effect with its preparer: the engine runs ``prepare`` before the transaction
    and hands its result to ``effect`` as ``ctx.prepared[name]``. Replacing the effect
    (a test's fake) replaces its preparer with it."""

    effect: Effect
    prepare: Preparer

    def __call__(self, ctx: TransitionContext) -> None:
        self.effect(ctx)


JobAction = Callable[[JobContext], None]
