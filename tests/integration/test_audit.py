"""Tampering with the audit trail in SQL is caught, and the first bad entry is named."""

# Asserts read `expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import ColumnElement, Connection, delete, update

from congvan.storage.audit_checks import ChainProblem, verify_chains
from congvan.storage.tables import AuditEntry, Document
from congvan.workflow.bootstrap import Runtime
from tests.factories import actor

CLERK = actor("clerk")
REVIEWER = actor("reviewer")
_audit = AuditEntry.__table__  # type: ignore[attr-defined]


@pytest.fixture
def documents(runtime: Runtime, make_document: Callable[..., str]) -> tuple[str, str]:
    """Two documents with four audit entries each: create, edit, reject, edit."""
    made = []
    for place in ("Huế", "Hương Thủy"):
        doc = make_document(runtime)
        runtime.engine.fire(doc, "edit", CLERK, data={"fields": {"place": place}})
        runtime.engine.fire(doc, "reject", REVIEWER, data={"reason": "Sai thể thức"})
        runtime.engine.fire(doc, "edit", CLERK, data={"fields": {"number": 1228}})
        made.append(doc)
    return made[0], made[1]


def verify(runtime: Runtime) -> dict[str, ChainProblem | None]:
    with runtime.uow(readonly=True) as uow:
        return dict(verify_chains(uow.conn))


def tamper(runtime: Runtime, change: Callable[[Connection], object]) -> None:
    """Change the audit table behind the engine's back, as somebody with SQL access could."""
    with runtime.uow() as uow:
        change(uow.conn)
        uow.commit()


def entry(document_id: str, version: int) -> ColumnElement[bool]:
    return (_audit.c.document_id == document_id) & (_audit.c.version == version)


def entry_id(runtime: Runtime, document_id: str, version: int) -> int:
    with runtime.uow(readonly=True) as uow:
        return int(uow.conn.execute(_audit.select().where(entry(document_id, version))).one().id)


def where(problem: ChainProblem | None) -> tuple[object, ...] | None:
    return None if problem is None else (problem.version, problem.problem)


def test_untouched_chains_verify(runtime: Runtime, documents: tuple[str, str]):
    assert {documents[0]: None, documents[1]: None} == verify(runtime)


def test_an_altered_payload_is_named(runtime: Runtime, documents: tuple[str, str]):
    doc, other = documents

    tamper(
        runtime,
        lambda c: c.execute(
            update(_audit).where(entry(doc, 3)).values(payload='{"reason":"Đồng ý"}')
        ),
    )

    found = verify(runtime)
    assert (3, "altered") == where(found[doc])
    assert entry_id(runtime, doc, 3) == found[doc].entry_id
    assert None is found[other]


def test_an_altered_actor_is_named(runtime: Runtime, documents: tuple[str, str]):
    doc, other = documents

    tamper(
        runtime,
        lambda c: c.execute(
            update(_audit).where(entry(doc, 2)).values(actor="giam-doc@000.00.00.H57")
        ),
    )

    found = verify(runtime)
    assert (2, "altered") == where(found[doc])
    assert "hash" in found[doc].detail
    assert None is found[other]


def test_an_altered_link_is_named(runtime: Runtime, documents: tuple[str, str]):
    doc, _other = documents

    tamper(
        runtime,
        lambda c: c.execute(update(_audit).where(entry(doc, 3)).values(prev_hash="f" * 64)),
    )

    assert (3, "altered") == where(verify(runtime)[doc])


def test_a_removed_middle_entry_is_named_at_the_entry_after_it(
    runtime: Runtime, documents: tuple[str, str]
):
    doc, other = documents

    tamper(runtime, lambda c: c.execute(delete(_audit).where(entry(doc, 2))))

    found = verify(runtime)
    assert (3, "removed") == where(found[doc])
    assert None is found[other]


def test_a_removed_last_entry_is_a_truncated_chain(runtime: Runtime, documents: tuple[str, str]):
    doc, other = documents

    tamper(runtime, lambda c: c.execute(delete(_audit).where(entry(doc, 4))))

    found = verify(runtime)
    assert (None, "truncated") == where(found[doc])
    assert None is found[other]


def test_swapped_versions_are_a_reordered_chain(runtime: Runtime, documents: tuple[str, str]):
    doc, other = documents

    # Swap versions 2 and 3 (through a free number: (document, version) is unique)
    def swap(c: Connection) -> None:
        c.execute(update(_audit).where(entry(doc, 2)).values(version=-2))
        c.execute(update(_audit).where(entry(doc, 3)).values(version=2))
        c.execute(update(_audit).where(entry(doc, -2)).values(version=3))

    tamper(runtime, swap)

    found = verify(runtime)
    assert (2, "reordered") == where(found[doc])
    assert None is found[other]


def test_all_entries_removed_is_a_missing_chain(runtime: Runtime, documents: tuple[str, str]):
    doc, other = documents

    tamper(runtime, lambda c: c.execute(delete(_audit).where(_audit.c.document_id == doc)))

    found = verify(runtime)
    assert (None, "missing") == where(found[doc])
    assert None is found[other]


def test_one_document_can_be_verified_alone(runtime: Runtime, documents: tuple[str, str]):
    doc, other = documents
    tamper(runtime, lambda c: c.execute(delete(_audit).where(entry(doc, 2))))

    with runtime.uow(readonly=True) as uow:
        assert [(other, None)] == list(verify_chains(uow.conn, other))
        assert [doc] == [d for d, problem in verify_chains(uow.conn, doc) if problem]


def test_verification_pages_through_many_documents(
    runtime: Runtime, make_document: Callable[..., str]
):
    docs = sorted(make_document(runtime) for _ in range(7))
    tamper(
        runtime,
        lambda c: c.execute(update(_audit).where(entry(docs[5], 1)).values(event="import")),
    )

    with runtime.uow(readonly=True) as uow:
        found = list(verify_chains(uow.conn, batch=2))

    assert docs == [d for d, _ in found]
    assert [docs[5]] == [d for d, problem in found if problem is not None]


@pytest.mark.parametrize(
    "moved",
    [{"state": "signed"}, {"version": 2}, {"version": 9}, {"state": "reviewed", "version": 3}],
    ids=["state", "version back", "version ahead", "both"],
)
def test_a_row_moved_outside_a_transition_is_named(
    runtime: Runtime, documents: tuple[str, str], moved: dict[str, object]
):
    # Given a document whose row is moved by SQL, its audit head left as it was
    doc, other = documents
    table = Document.__table__  # type: ignore[attr-defined]
    tamper(runtime, lambda c: c.execute(update(table).where(table.c.id == doc).values(**moved)))

    # Then its chain is altered at its head, naming where the row and the trail stand
    found = verify(runtime)
    assert (None, "altered") == where(found[doc])
    detail = found[doc].detail if found[doc] else ""
    assert "its trail ends at draft, version 4" in detail
    assert None is found[other]
