"""Heavy work a transition needs, done before its write transaction opens.

An effect may come with a preparer (``PreparedEffect``): CPU-heavy work (a PAdES
signature) computed in a read-only transaction as of the subject's current version. The
transition then checks that version under its lock: if another transition came first,
what was prepared is stale and is prepared again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from congvan.actions.context import (
    Actor,
    Effect,
    PreparedEffect,
    Preparer,
    TransitionContext,
)
from congvan.states.errors import CongvanError
from congvan.states.machine import resolve
from congvan.states.spec import MachineSpec
from congvan.storage.clock import Clock
from congvan.storage.unit_of_work import UnitOfWork

from .bindings import Binding
from .stepping import Stepper

# How many times a transition's preparation is redone when another transition came first.
PREPARE_ROUNDS = 3


class Stale(Exception):
    """What was prepared is for a version of the document that is no longer current."""


@dataclass(frozen=True)
class Prepared:
    version: int
    results: dict[str, Any]


class Preparation:
    """The preparers of the wired effects, and which events of which machine need them."""

    def __init__(self, specs: Iterable[MachineSpec], effects: Mapping[str, Effect]) -> None:
        self.preparers: dict[str, Preparer] = {
            name: e.prepare for name, e in effects.items() if isinstance(e, PreparedEffect)
        }
        self.events = frozenset(
            (spec.name, t.trigger)
            for spec in specs
            for t in spec.transitions
            if set(t.effects) & set(self.preparers)
        )

    def prepare(
        self,
        open_uow: Callable[..., UnitOfWork],
        clock: Clock,
        stepper: Stepper,
        binding: Binding,
        subject_id: str,
        event: str,
        actor: Actor,
        data: Mapping[str, Any],
    ) -> Prepared | None:
        """Run the preparers of the effects ``event`` will run, before any write lock.

        Only when the caller may fire the event (otherwise the transition itself gives the
        answer, and no heavy work was wasted). The guards are evaluated here only where
        they choose between two or more edges: the transition evaluates them all again
        under its lock, so evaluating them twice (``not_duplicate``'s look-ups, a
        signature verification) would cost every transition to spare the rare one its
        guards refuse. None: nothing to prepare.
        """
        if (binding.spec.name, event) not in self.events:
            return None  # no edge of this event has an effect to prepare: no extra read
        with open_uow(readonly=True) as uow:
            try:
                subject = binding.load(uow, subject_id, actor, lock=False)
            except CongvanError:
                return None
            edges = binding.spec.edges(event, subject.state)
            names = [e for t in edges for e in t.effects if e in self.preparers]
            if not names:
                return None
            ctx = TransitionContext(
                uow=uow,
                document=subject.head,
                event=event,
                actor=actor,
                data=binding.context(subject, data),
                now=clock(),
            )
            try:
                binding.authorize(actor, event, data, subject)
                stepper.require_capabilities(event, edges)
                choose = len(edges) > 1
                step = resolve(
                    binding.spec,
                    subject.state,
                    event,
                    lambda name: stepper.guards[name](ctx) if choose else (True, ""),
                )
            except CongvanError:
                return None  # the transition answers this, with nothing prepared
            try:
                results = {
                    name: self.preparers[name](ctx) for name in step.edge.effects if name in names
                }
            except CongvanError:
                # Refused while preparing (no key for this signer, an unknown peer): the
                # transition answers, its guards first, as if nothing had been prepared.
                return None
        return Prepared(version=subject.head.version, results=results)
