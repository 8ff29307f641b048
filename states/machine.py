"""Machines built from the declared data with ``transitions``, checked when built."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cache

from transitions import Machine

from . import dispatch as d
from . import document as doc
from .errors import GuardFailed, TransitionNotAllowed, UnknownEvent
from .spec import MachineSpec, Transition


class InvalidMachine(ValueError):
    """The declared graph is malformed (unreachable, trapped, or unknown states)."""


@dataclass(frozen=True)
class Step:
    """The outcome of resolving an event: the edge taken and where it leads."""

    event: str
    source: str
    dest: str
    edge: Transition


def check_graph(spec: MachineSpec) -> None:
    """Reject a graph with unknown, unreachable or trap states, or no way to a final state."""
    known = set(spec.states)
    if spec.initial not in known:
        raise InvalidMachine(f"{spec.name}: initial state {spec.initial!r} is not declared")
    for s in spec.finals:
        if s not in known:
            raise InvalidMachine(f"{spec.name}: final state {s!r} is not declared")
    for t in spec.transitions:
        for s in (*t.source, t.dest):
            if s not in known:
                raise InvalidMachine(f"{spec.name}: {t.trigger} names unknown state {s!r}")
    outgoing: dict[str, set[str]] = {s: set() for s in spec.states}
    for t in spec.transitions:
        for s in t.source:
            outgoing[s].add(t.dest)
    reachable = _closure({spec.initial}, outgoing)
    if unreachable := known - reachable:
        raise InvalidMachine(f"{spec.name}: unreachable states {sorted(unreachable)}")
    for s in spec.states:
        if s in spec.finals:
            continue
        if not (outgoing[s] - {s}):
            raise InvalidMachine(f"{spec.name}: {s!r} is a trap state")
        if not (_closure({s}, outgoing) & set(spec.finals)):
            raise InvalidMachine(f"{spec.name}: no path from {s!r} to a final state")


def _closure(start: set[str], outgoing: Mapping[str, set[str]]) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for nxt in outgoing[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@cache
def build(spec: MachineSpec) -> Machine:
    """The ``transitions`` machine for ``spec``, after checking its graph."""
    check_graph(spec)
    return Machine(
        model=None,
        states=list(spec.states),
        transitions=[t.as_transitions_dict() for t in spec.transitions],
        initial=spec.initial,
        auto_transitions=False,
        ignore_invalid_triggers=False,
    )


@cache
def _triggers(spec: MachineSpec, state: str) -> tuple[str, ...]:
    return tuple(sorted(build(spec).get_triggers(state)))


def allowed_events(
    spec: MachineSpec,
    state: str,
    *,
    include_derived: bool = False,
    failing: Collection[str] = (),
) -> list[str]:
    """Events declared from ``state``; guards are not evaluated, except that an event whose
    every edge from ``state`` needs one of the conditions ``failing`` (known not to hold,
    from what the caller read anyway) is left out."""
    triggers = _triggers(spec, state)
    if not include_derived:
        derived = {t.trigger for t in spec.transitions if t.derived}
        triggers = tuple(t for t in triggers if t not in derived)
    if not failing:
        return list(triggers)
    return [
        t
        for t in triggers
        if any(not set(edge.conditions) & set(failing) for edge in spec.edges(t, state))
    ]


def resolve(
    spec: MachineSpec,
    state: str,
    event: str,
    guard: Callable[[str], tuple[bool, str]],
) -> Step:
    """Pick the edge ``event`` takes from ``state``: the first whose conditions all hold.

    ``guard(name)`` answers ``(holds, reason)``. This mirrors how ``transitions`` itself
    tries an event's edges in declaration order.
    """
    machine = build(spec)
    if event not in machine.events:
        raise UnknownEvent(event, state, allowed_events(spec, state))
    if state not in machine.events[event].transitions:
        raise TransitionNotAllowed(event, state, allowed_events(spec, state))
    failed: list[str] = []
    reasons: dict[str, str] = {}
    for t in spec.edges(event, state):
        misses = []
        for name in t.conditions:
            holds, reason = guard(name)
            if not holds:
                misses.append(name)
                reasons[name] = reason
        if not misses:
            return Step(event=event, source=state, dest=t.dest, edge=t)
        failed.extend(m for m in misses if m not in failed)
    raise GuardFailed(event, state, failed, reasons)


def guard_names(spec: MachineSpec) -> set[str]:
    return {c for t in spec.transitions for c in t.conditions}


def derive_document_state(dispatch_states: Iterable[str]) -> str:
    """The state a sent document is in, given the states of its dispatches."""
    states = list(dispatch_states)
    if any(s in d.GIVEN_UP for s in states):
        return doc.FAILED
    if states and all(s == d.ACKNOWLEDGED for s in states):
        return doc.ACKNOWLEDGED
    if states and all(s in d.ARRIVED for s in states):
        return doc.DELIVERED
    return doc.SENT


# Which derived event leads to each derived state.
DERIVED_EVENT = {
    doc.FAILED: "failed",
    doc.ACKNOWLEDGED: "acknowledged",
    doc.DELIVERED: "delivered",
    doc.SENT: "recovered",
}

# The states in which a document's state is derived from its dispatches.
DISPATCHED = frozenset({doc.SENT, doc.DELIVERED, doc.ACKNOWLEDGED, doc.FAILED})
