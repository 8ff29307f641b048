"""Rows a transaction holds locked are read once: their own writes, and only those, change
what later reads see; a rollback to a savepoint forgets what was read since."""

# Asserts read `expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from congvan.storage.unit_of_work import UnitOfWork
from congvan.workflow.bootstrap import Runtime
from tests.factories import create_document, pipeline, send_document


@pytest.fixture
def sent(make_runtime: Callable[..., Runtime]) -> tuple[Runtime, str, dict[str, str]]:
    runtime = make_runtime(**pipeline())
    document_id = create_document(runtime)
    return runtime, document_id, send_document(runtime, document_id)


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """Every statement run on the runtime's database while inside, as SQL text."""
    seen: list[str] = []

    def before(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(runtime.db, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(runtime.db, "before_cursor_execute", before)


@contextmanager
def locked(runtime: Runtime, document_id: str) -> Iterator[UnitOfWork]:
    """A transaction holding the document locked."""
    with runtime.uow() as uow:
        uow.documents.head(document_id, for_update=True)
        yield uow


def reads(seen: list[str], table: str) -> int:
    return sum(1 for s in seen if s.lstrip().startswith("SELECT") and f"FROM {table}" in s)


def test_a_locked_document_is_read_once_and_again_after_its_own_change(
    sent: tuple[Runtime, str, dict[str, str]],
) -> None:
    runtime, document_id, _ = sent
    with runtime.uow() as uow, statements(runtime) as seen:
        head = uow.documents.head(document_id, for_update=True)
        assert head is not None
        first = uow.documents.load(document_id)
        assert first is uow.documents.load(document_id)
        assert head is uow.documents.head(document_id)
        assert uow.documents.recipients(document_id) == uow.documents.recipients(document_id)
        assert 1 == reads(seen, "recipients")
        assert 2 == reads(seen, "documents")  # the head, then the row
        uow.documents.set_fields(document_id, {"subject": "Về việc khác"})
        assert "Về việc khác" == uow.documents.load(document_id).subject
        moved = uow.documents.advance(
            document_id,
            expected_version=head.version,
            state="sent",
            new_version=head.version + 1,
            audit_head="f" * 64,
            at=runtime.clock(),
        )
        assert moved
        after = uow.documents.head(document_id)
        assert after is not None and (head.version + 1, "f" * 64) == (
            after.version,
            after.audit_head,
        )
        assert head.version + 1 == uow.documents.load(document_id).version


def test_an_unlocked_document_is_read_every_time(
    sent: tuple[Runtime, str, dict[str, str]],
) -> None:
    runtime, document_id, _ = sent
    with runtime.uow(readonly=True) as uow, statements(runtime) as seen:
        uow.documents.head(document_id)
        uow.documents.head(document_id)
        uow.documents.load(document_id)
        uow.documents.load(document_id)
        uow.dispatches.for_document(document_id)
        uow.dispatches.for_document(document_id)
    assert 4 == reads(seen, "documents")
    assert 2 == reads(seen, "dispatches")


def test_a_dispatch_of_a_locked_document_shows_its_own_writes(
    sent: tuple[Runtime, str, dict[str, str]],
) -> None:
    runtime, document_id, dispatches = sent
    dispatch_id = next(iter(dispatches.values()))
    with runtime.uow() as uow, statements(runtime) as seen:
        uow.documents.head(document_id, for_update=True)
        row = uow.dispatches.get(dispatch_id)
        assert row is not None and "pending" == row.state
        assert row is uow.dispatches.get(dispatch_id)
        states = uow.dispatches.states(document_id)
        assert states == uow.dispatches.states(document_id)
        assert 2 == reads(seen, "dispatches")
        uow.dispatches.set_state(dispatch_id, state="sending", at=runtime.clock(), attempts=1)
        again = uow.dispatches.get(dispatch_id)
        assert again is not None and ("sending", 1) == (again.state, again.attempts)
        assert "sending" in uow.dispatches.states(document_id)
        assert (
            "sending"
            == {d.id: d for d in uow.dispatches.for_document(document_id)}[dispatch_id].state
        )
        uow.dispatches.posting(dispatch_id, until=runtime.clock())
        posted = uow.dispatches.get(dispatch_id)
        assert posted is not None and posted.posting_until is not None


def test_a_rollback_to_a_savepoint_forgets_what_was_read_inside(
    sent: tuple[Runtime, str, dict[str, str]],
) -> None:
    runtime, document_id, dispatches = sent
    dispatch_id = next(iter(dispatches.values()))
    with locked(runtime, document_id) as uow:
        with pytest.raises(RuntimeError), uow.savepoint():
            uow.dispatches.set_state(dispatch_id, state="sending", at=runtime.clock())
            inside = uow.dispatches.get(dispatch_id)
            assert inside is not None and "sending" == inside.state
            uow.documents.set_fields(document_id, {"subject": "Bỏ đi"})
            assert "Bỏ đi" == uow.documents.load(document_id).subject
            raise RuntimeError("undo")
        row = uow.dispatches.get(dispatch_id)
        assert row is not None and "pending" == row.state
        assert "Bỏ đi" != uow.documents.load(document_id).subject
        assert ["pending"] * len(dispatches) == uow.dispatches.states(document_id)


def test_another_transaction_sees_nothing_held(
    sent: tuple[Runtime, str, dict[str, str]],
) -> None:
    """What a transaction keeps is its own: the next one reads the database."""
    runtime, document_id, dispatches = sent
    dispatch_id = next(iter(dispatches.values()))
    with locked(runtime, document_id) as uow:
        assert "pending" == _state(uow, dispatch_id)
    with locked(runtime, document_id) as uow:
        uow.dispatches.set_state(dispatch_id, state="sending", at=runtime.clock())
        uow.commit()
    with locked(runtime, document_id) as uow:
        assert "sending" == _state(uow, dispatch_id)


def _state(uow: UnitOfWork, dispatch_id: str) -> str:
    row = uow.dispatches.get(dispatch_id)
    assert row is not None
    return row.state
