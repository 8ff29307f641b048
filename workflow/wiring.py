"""The engine's wiring, checked when it is built: every capability a machine names exists.

A guard, effect or job named in states/ and wired nowhere used to surface to users as 501
on first use; now the engine refuses to start, naming it, unless the installation
declares it knowingly unavailable (workflow.bootstrap.NOT_YET_BUILT).
"""

from __future__ import annotations

from collections.abc import Iterable

from congvan.states.spec import MachineSpec


class UnwiredCapability(RuntimeError):
    """A guard, effect or job named by a machine in states/ is not wired, nor declared
    unavailable: a typo or a forgotten registration, refused when the engine is built."""


def check_wiring(
    machines: Iterable[MachineSpec],
    *,
    guards: Iterable[str],
    effects: Iterable[str],
    jobs: Iterable[str],
    unavailable: Iterable[str],
) -> None:
    """Raise :class:`UnwiredCapability` naming every capability the machines name that is
    neither provided nor declared unavailable (which answers 501 ``action_unavailable``)."""
    provided = {"guard": set(guards), "effect": set(effects), "job": set(jobs)}
    known_gaps = set(unavailable)
    missing = []
    for spec in machines:
        for t in spec.transitions:
            for kind, names in (("guard", t.conditions), ("effect", t.effects), ("job", t.actions)):
                for name in names:
                    if name not in provided[kind] and name not in known_gaps:
                        missing.append(f"{kind} {name!r} (machine {spec.name}, event {t.trigger})")
    if missing:
        raise UnwiredCapability(
            "Not wired and not declared unavailable: " + "; ".join(sorted(set(missing)))
        )
