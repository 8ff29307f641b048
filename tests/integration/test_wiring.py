"""The engine refuses to start when a machine names a capability nobody wired."""

from __future__ import annotations

import re

import pytest

from congvan.states import MACHINES
from congvan.states.spec import MachineSpec, edge
from congvan.workflow.bootstrap import NOT_YET_BUILT, Runtime
from congvan.workflow.engine import Engine
from congvan.workflow.wiring import UnwiredCapability, check_wiring

TYPO = MachineSpec(
    name="letter",
    states=("draft", "sent"),
    initial="draft",
    finals=("sent",),
    transitions=(
        edge("send", "draft", "sent", conditions=("is_signed",), effects=("stamp_it",)),
        edge("resend", "sent", "sent", actions=("deliver_it",)),
    ),
)


def test_every_unwired_capability_is_named_with_its_machine_and_event() -> None:
    with pytest.raises(UnwiredCapability) as raised:
        check_wiring([TYPO], guards=["is_signd"], effects=[], jobs=[], unavailable=[])
    message = str(raised.value)
    assert "guard 'is_signed' (machine letter, event send)" in message
    assert "effect 'stamp_it' (machine letter, event send)" in message
    assert "job 'deliver_it' (machine letter, event resend)" in message


def test_a_capability_declared_unavailable_is_no_startup_error() -> None:
    check_wiring(
        [TYPO],
        guards=["is_signed"],
        effects=["stamp_it"],
        jobs=[],
        unavailable=["deliver_it"],
    )


def test_the_installation_wires_every_capability_the_machines_name(runtime: Runtime) -> None:
    engine = runtime.engine
    wired = {"guards": engine.guards, "effects": engine.effects, "jobs": engine.jobs}
    assert NOT_YET_BUILT == frozenset()
    check_wiring(MACHINES.values(), **wired, unavailable=[])
    without_statuses = {**wired, "jobs": sorted(set(engine.jobs) - {"send_status"})}
    with pytest.raises(UnwiredCapability, match="send_status"):
        check_wiring(MACHINES.values(), **without_statuses, unavailable=[])


def test_an_engine_missing_a_guard_does_not_start(runtime: Runtime) -> None:
    # Given the installation's wiring with one guard forgotten
    engine = runtime.engine
    guards = {k: v for k, v in engine.guards.items() if k != "checks_cleared"}

    # When an engine is built from it, it refuses, naming the guard and where it is used
    with pytest.raises(
        UnwiredCapability, match=re.escape("guard 'checks_cleared' (machine document")
    ):
        Engine(
            runtime.uow,
            guards=guards,
            effects=engine.effects,
            jobs=sorted(engine.jobs),
            clock=runtime.clock,
            job_deadline_seconds=300,
            unavailable=NOT_YET_BUILT,
        )
