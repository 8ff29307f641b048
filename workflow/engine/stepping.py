"""The steps of one transition inside its transaction: resolve, run effects, audit, persist.

The same for every machine: a step resolves an event on a machine spec, runs its effects,
appends an audit entry to the chain of the document it belongs to and gathers the jobs its
edge names; ``persist`` writes the chain, the document's new version and the jobs at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from congvan.actions.context import SYSTEM, Actor, Effect, Guard, TransitionContext
from congvan.actions.jobs import enqueue, new_job
from congvan.actions.recalls import derived_state
from congvan.states import DOCUMENT
from congvan.states.errors import ActionUnavailable, VersionConflict
from congvan.states.machine import (
    DERIVED_EVENT,
    DISPATCHED,
    Step,
    allowed_events,
    resolve,
)
from congvan.states.spec import MachineSpec, Transition
from congvan.storage.audit import NewEntry, make_entry
from congvan.storage.chains import DocumentHead
from congvan.storage.unit_of_work import UnitOfWork

from .results import FireResult

# The members of an event's data its audit entry records.
_RECORDED = ("reason", "replaced_by", "request_id", "status")

# Points at which a test may inject a failure; each one must leave no trace.
STEPS = ("loaded", "resolved", "effects", "audited", "advanced", "outboxed", "remembered")


@dataclass
class Pending:
    """What one transaction will write to a document's chain, gathered step by step."""

    head: DocumentHead
    state: str
    version: int
    audit_head: str
    entries: list[NewEntry] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)
    # Events on other subjects the effects asked for (TransitionContext.follow).
    follow: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    @staticmethod
    def of(head: DocumentHead) -> Pending:
        return Pending(
            head=head, state=head.state, version=head.version, audit_head=head.audit_head
        )


class Chain(Protocol):
    """Where a machine's audit chain and version live (a document's row, for instance)."""

    def advance(self, uow: UnitOfWork, pending: Pending, now: datetime) -> bool:
        """Write the chain head's new state, version and audit head; False if overtaken."""
        ...

    def current_version(self, uow: UnitOfWork, chain_id: str) -> int | None:
        """The chain head's version now (None when it is gone)."""
        ...


class Stepper:
    """Runs the steps of transitions with the guards, effects and jobs an installation wired."""

    def __init__(
        self,
        *,
        guards: Mapping[str, Guard],
        effects: Mapping[str, Effect],
        jobs: frozenset[str],
        job_deadline: timedelta,
        fault: Callable[[str], None],
    ) -> None:
        self.guards = guards
        self.effects = effects
        self.jobs = jobs
        self.job_deadline = job_deadline
        self.fault = fault

    def step(
        self,
        uow: UnitOfWork,
        spec: MachineSpec,
        pending: Pending,
        state: str,
        event: str,
        actor: Actor,
        data: Mapping[str, Any],
        now: datetime,
        *,
        audit_event: str | None = None,
        audit_extra: Mapping[str, Any] | None = None,
        prepared: Mapping[str, Any] | None = None,
    ) -> Step:
        """Move ``state`` by ``event`` on ``spec``: effects run, one audit entry, its jobs."""
        ctx = TransitionContext(
            uow=uow,
            document=pending.head,
            event=event,
            actor=actor,
            data=data,
            now=now,
            prepared=prepared or {},
        )
        self.require_capabilities(event, spec.edges(event, state))

        def guard(name: str) -> tuple[bool, str]:
            return self.guards[name](ctx)

        step = resolve(spec, state, event, guard)
        self.fault("resolved")
        for name in step.edge.effects:
            self.effects[name](ctx)
        pending.follow.extend(ctx.follow)
        self.fault("effects")
        pending.version += 1
        payload = {**(audit_extra or {}), **ctx.audit}
        # What the trail keeps of the event's data: why, what a consequence follows from
        # (the replacement, the recall whose answers all agreed), and the recipient's
        # status message that moved a dispatch (its code).
        for key in _RECORDED:
            if key in data:
                payload[key] = data[key]
        entry = make_entry(
            prev_hash=pending.audit_head,
            document_id=pending.head.id,
            version=pending.version,
            actor=actor.name,
            event=audit_event or event,
            from_state=state,
            to_state=step.dest,
            at=now,
            payload=payload,
        )
        pending.entries.append(entry)
        pending.audit_head = entry.hash
        queue = "urgent" if pending.head.urgency > 0 else "default"
        base = {**ctx.job_payload, "event": event, "version": pending.version}
        for action in step.edge.actions:
            for item in ctx.fan_out.get(action, [{}]):
                pending.jobs.append(
                    new_job(
                        action,
                        now,
                        agency_id=pending.head.agency_id,
                        document_id=pending.head.id,
                        queue=queue,
                        payload={**base, **item},
                    )
                )
        return step

    def require_capabilities(self, event: str, edges: Sequence[Transition]) -> None:
        """Refuse (501) an event whose edges need what this installation does not provide."""
        missing = sorted(
            {c for t in edges for c in t.conditions if c not in self.guards}
            | {e for t in edges for e in t.effects if e not in self.effects}
            | {a for t in edges for a in t.actions if a not in self.jobs}
        )
        if missing:
            raise ActionUnavailable(
                f"Event {event!r} needs {', '.join(missing)}, which this installation "
                "does not provide yet.",
                event=event,
                missing=missing,
            )

    def follow_derived(self, uow: UnitOfWork, pending: Pending, now: datetime) -> None:
        """Move a sent document to the state its dispatches imply, as derived events."""
        if pending.state not in DISPATCHED:
            return
        target = derived_state(uow, pending.head.id)
        if target == pending.state:
            return
        event = DERIVED_EVENT.get(target)
        if event is None or event not in allowed_events(
            DOCUMENT, pending.state, include_derived=True
        ):
            return
        step = self.step(uow, DOCUMENT, pending, pending.state, event, SYSTEM, {}, now)
        pending.state = step.dest
        pending.derived.append(event)

    def persist(
        self,
        uow: UnitOfWork,
        chain: Chain,
        pending: Pending,
        event: str,
        *,
        from_state: str,
        to_state: str,
        now: datetime,
    ) -> FireResult:
        """Write the chain's new entries, its head's new version and state, the jobs."""
        uow.audit.append(pending.entries)
        self.fault("audited")
        if not chain.advance(uow, pending, now):
            current = chain.current_version(uow, pending.head.id) or pending.head.version
            raise VersionConflict(pending.head.version, current)
        self.fault("advanced")
        enqueue(uow, pending.jobs, now + self.job_deadline)
        self.fault("outboxed")
        return FireResult(
            document_id=pending.head.id,
            event=event,
            from_state=from_state,
            to_state=to_state,
            version=pending.version,
            jobs=[j["id"] for j in pending.jobs],
            derived=pending.derived,
        )
