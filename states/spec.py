"""The vocabulary in which the state machines are declared: plain frozen data."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class Transition:
    """One edge: ``trigger`` moves ``source`` to ``dest`` when every condition holds.

    ``effects`` run inside the transition's database transaction (they touch rows only);
    ``actions`` are jobs written to the outbox and run after commit by workers.
    ``derived`` events are fired by the engine itself, never by a person.
    """

    trigger: str
    source: tuple[str, ...]
    dest: str
    conditions: tuple[str, ...] = ()
    effects: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    derived: bool = False

    def as_transitions_dict(self) -> dict[str, Any]:
        """The form the ``transitions`` library takes (``conditions`` are guard names)."""
        return {
            "trigger": self.trigger,
            "source": list(self.source),
            "dest": self.dest,
            "conditions": list(self.conditions),
        }


@dataclass(frozen=True)
class MachineSpec:
    """A whole machine: its states, where it starts and ends, and its edges."""

    name: str
    states: tuple[str, ...]
    initial: str
    finals: tuple[str, ...]
    transitions: tuple[Transition, ...]
    descriptions: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def events(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for t in self.transitions:
            seen.setdefault(t.trigger, None)
        return tuple(seen)

    def edges(self, trigger: str, source: str) -> tuple[Transition, ...]:
        """The edges ``trigger`` may take from ``source``, in declaration order."""
        return self._edges.get((trigger, source), ())

    @cached_property
    def _edges(self) -> dict[tuple[str, str], tuple[Transition, ...]]:
        """Every transition asks which edges it may take: looked up, not searched."""
        found: dict[tuple[str, str], list[Transition]] = {}
        for t in self.transitions:
            for source in dict.fromkeys(t.source):  # each edge once per source
                found.setdefault((t.trigger, source), []).append(t)
        return {key: tuple(edges) for key, edges in found.items()}

    def transition(self, trigger: str) -> tuple[Transition, ...]:
        return tuple(t for t in self.transitions if t.trigger == trigger)


def edge(
    trigger: str,
    source: str | tuple[str, ...],
    dest: str,
    *,
    conditions: tuple[str, ...] = (),
    effects: tuple[str, ...] = (),
    actions: tuple[str, ...] = (),
    derived: bool = False,
) -> Transition:
    """Shorthand for declaring a :class:`Transition`."""
    return Transition(
        trigger=trigger,
        source=(source,) if isinstance(source, str) else tuple(source),
        dest=dest,
        conditions=conditions,
        effects=effects,
        actions=actions,
        derived=derived,
    )
