"""What guards, effects and jobs are handed: frozen data plus the open unit of work."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from congvan.storage.documents import DocumentHead
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


@dataclass(frozen=True)
class JobContext:
    """A job being run by a worker, with its own transaction already open."""

    job: Job
    uow: UnitOfWork
    now: datetime
    open_uow: Callable[[], UnitOfWork]


Guard = Callable[[TransitionContext], tuple[bool, str]]
Effect = Callable[[TransitionContext], None]
JobAction = Callable[[JobContext], None]
