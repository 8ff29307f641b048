"""A new machine is a spec and a binding: the engine fires it like the document's own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pytest

from congvan.actions.context import SYSTEM, Actor, TransitionContext
from congvan.states.errors import Forbidden, NotFound, TransitionNotAllowed
from congvan.states.spec import MachineSpec, edge
from congvan.storage.unit_of_work import UnitOfWork
from congvan.workflow.bootstrap import NOT_YET_BUILT, Runtime
from congvan.workflow.engine import Engine
from congvan.workflow.engine.bindings import DocumentChain, Subject, load_document
from congvan.workflow.engine.stepping import Pending
from congvan.workflow.wiring import UnwiredCapability
from tests.factories import actor

CLERK = actor("clerk")

# A seal affixed to a document once, then broken: a machine of its own, stored beside it.
SEAL = MachineSpec(
    name="seal",
    states=("open", "sealed", "broken"),
    initial="open",
    finals=("broken",),
    transitions=(
        edge("affix", "open", "sealed", conditions=("seal_in_hand",), effects=("note_seal",)),
        edge("break", "sealed", "broken"),
    ),
)


class SealBinding(DocumentChain):
    """Seals kept in a mapping (a repository), their entries in their document's chain."""

    spec = SEAL
    holds_chain = False

    def __init__(self) -> None:
        self.states: dict[str, str] = {}

    def normalize(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(data)

    def load(self, uow: UnitOfWork, subject_id: str, actor: Actor, *, lock: bool) -> Subject:
        head = load_document(uow, subject_id, actor, lock=lock)
        return Subject(id=subject_id, state=self.states.get(subject_id, "open"), head=head)

    def authorize(
        self, actor: Actor, event: str, data: Mapping[str, Any], subject: Subject | None
    ) -> None:
        if not actor.is_system:
            raise Forbidden("Seals are the system's.")

    def context(self, subject: Subject, data: Mapping[str, Any]) -> Mapping[str, Any]:
        return data

    def audit(self, subject: Subject, event: str) -> tuple[str, dict[str, Any]]:
        return f"seal.{event}", {"seal": subject.id}

    def settle(
        self,
        uow: UnitOfWork,
        subject: Subject,
        pending: Pending,
        event: str,
        dest: str,
        data: Mapping[str, Any],
        now: datetime,
    ) -> None:
        self.states[subject.id] = dest


def _engine(runtime: Runtime, binding: SealBinding, **wiring: Any) -> Engine:
    base = runtime.engine

    def noted(ctx: TransitionContext) -> None:
        ctx.audit["noted"] = True

    return Engine(
        base.open_uow,
        guards=wiring.get("guards", {**base.guards, "seal_in_hand": lambda ctx: (True, "")}),
        effects={**base.effects, "note_seal": noted},
        jobs=sorted(base.jobs),
        clock=runtime.clock,
        job_deadline_seconds=300,
        unavailable=NOT_YET_BUILT,
        machines={"seal": binding},
    )


def test_a_bound_machine_moves_and_its_entries_join_the_documents_chain(
    runtime: Runtime, make_document: Callable[..., str]
) -> None:
    # Given a draft and an engine that also binds the seal machine
    doc = make_document(runtime)
    seals = SealBinding()
    engine = _engine(runtime, seals)

    # When the system affixes then breaks the seal
    affixed = engine.fire_on("seal", doc, "affix", SYSTEM)
    broken = engine.fire_on("seal", doc, "break", SYSTEM)

    # Then the seal moved, each step is an audit entry of the document, the chain verifies
    assert ("seal.affix", "open", "sealed", 2) == (
        affixed.event,
        affixed.from_state,
        affixed.to_state,
        affixed.version,
    )
    assert ("sealed", "broken", 3) == (broken.from_state, broken.to_state, broken.version)
    assert seals.states[doc] == "broken"
    with runtime.uow(readonly=True) as uow:
        entries = uow.audit.entries(doc, "seal.affix")
        assert [{"seal": doc, "noted": True}] == [e.payload for e in entries]
        assert [(doc, None)] == list(uow.audit.verify(doc))
        assert "draft" == uow.documents.head(doc).state  # the document itself did not move


def test_a_bound_machine_is_checked_like_the_others(
    runtime: Runtime, make_document: Callable[..., str]
) -> None:
    doc = make_document(runtime)
    engine = _engine(runtime, SealBinding())
    with pytest.raises(Forbidden):
        engine.fire_on("seal", doc, "affix", CLERK)
    with pytest.raises(TransitionNotAllowed):
        engine.fire_on("seal", doc, "break", SYSTEM)
    with pytest.raises(NotFound):
        engine.fire_on("seal", "no-such-document", "affix", SYSTEM)


def test_an_engine_does_not_start_when_a_bound_machine_names_an_unwired_guard(
    runtime: Runtime,
) -> None:
    with pytest.raises(UnwiredCapability, match="seal_in_hand"):
        _engine(runtime, SealBinding(), guards=dict(runtime.engine.guards))
