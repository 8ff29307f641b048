"""The stuck list's query: what counts as progress, and that an index serves it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import insert, text, update

from congvan.storage.clock import FrozenClock
from congvan.storage.ids import new_id
from congvan.storage.stalls import stalled, stalled_query
from congvan.storage.tables import Dispatch, DispatchAttempt, DispatchStatus, Document
from congvan.workflow.bootstrap import Runtime
from tests.databases import Databases
from tests.factories import actor

_documents = Document.__table__  # type: ignore[attr-defined]
AGENCY = actor("clerk").agency_id or ""
OTHER = "000.00.99.H57"


def _set(runtime: Runtime, doc: str, **values: object) -> None:
    with runtime.uow() as uow:
        uow.conn.execute(update(_documents).where(_documents.c.id == doc).values(**values))
        uow.commit()


def _dispatch(runtime: Runtime, doc: str, at: datetime) -> str:
    dispatch_id = new_id()
    with runtime.uow() as uow:
        uow.conn.execute(
            insert(Dispatch.__table__),  # type: ignore[attr-defined]
            [
                {
                    "id": dispatch_id,
                    "document_id": doc,
                    "organ_id": OTHER,
                    "state": "delivered",
                    "updated_at": at,
                }
            ],
        )
        uow.commit()
    return dispatch_id


def _ids(runtime: Runtime, cutoff: datetime, agency: str | None = AGENCY) -> list[str]:
    with runtime.uow(readonly=True) as uow:
        return [r.id for r in stalled(uow.conn, agency, cutoff, after=None, limit=50)]


def test_progress_is_a_move_an_attempt_or_a_status(
    runtime: Runtime, clock: FrozenClock, make_document: Callable[..., str]
) -> None:
    # Given seven documents left alone for two hours
    docs = [make_document(runtime) for _ in range(7)]
    moving, finished, attempted, reported, idle, recalled, replaced = docs
    start = clock()
    clock.advance(hours=2)
    cutoff = clock() - timedelta(hours=1)
    # When one moves, one is finished, one's dispatch logs an attempt and one's a status
    runtime.engine.fire(moving, "submit", actor("clerk"))
    _set(runtime, finished, state="acknowledged")
    _set(runtime, recalled, state="recalled")  # taken back, or replaced: awaits nothing
    _set(runtime, replaced, state="replaced")
    attempted_dispatch = _dispatch(runtime, attempted, start)
    reported_dispatch = _dispatch(runtime, reported, start)
    with runtime.uow() as uow:
        uow.conn.execute(
            insert(DispatchAttempt.__table__),  # type: ignore[attr-defined]
            [
                {
                    "dispatch_id": attempted_dispatch,
                    "attempt": 1,
                    "started_at": clock(),
                    "finished_at": clock(),
                    "outcome": "transient",
                }
            ],
        )
        uow.conn.execute(
            insert(DispatchStatus.__table__),  # type: ignore[attr-defined]
            [
                {
                    "dispatch_id": reported_dispatch,
                    "code": "05",
                    "at": clock(),
                    "body": b"{}",
                    "cms": b"",
                    "received_at": clock(),
                }
            ],
        )
        uow.commit()
    # Then only the one nothing happened to is stuck, for its agency and across agencies
    assert [idle] == _ids(runtime, cutoff)
    assert [idle] == _ids(runtime, cutoff, agency=None)
    assert [] == _ids(runtime, cutoff, agency=OTHER)
    # And none of them was idle for three hours
    assert [] == _ids(runtime, clock() - timedelta(hours=3))


def test_pages_continue_after_the_last_one_seen(
    runtime: Runtime, clock: FrozenClock, make_document: Callable[..., str]
) -> None:
    # Given three documents, two of them last moved at the same moment
    first = make_document(runtime)
    clock.advance(minutes=1)
    twins = sorted([make_document(runtime), make_document(runtime)])
    for doc in twins:
        _set(runtime, doc, updated_at=clock())
    clock.advance(hours=2)
    # When read one at a time from after each
    seen: list[str] = []
    after = None
    while True:
        with runtime.uow(readonly=True) as uow:
            page = stalled(uow.conn, AGENCY, clock(), after=after, limit=1)
        if not page:
            break
        seen.append(page[0].id)
        after = (page[0].updated_at, page[0].id)
    # Then each comes once, in order of (idle since, id)
    assert [first, *twins] == seen


def test_postgresql_reads_the_unfinished_documents_index(
    boot: Callable[..., Runtime],
    databases: Databases,
    make_document: Callable[..., str],
    clock: FrozenClock,
) -> None:
    # Given documents on PostgreSQL, the statistics up to date
    runtime = boot(databases.new("postgresql").url)
    for _ in range(3):
        make_document(runtime)
    clock.advance(hours=2)
    query = stalled_query(AGENCY, clock(), after=(clock(), "x"), limit=51)
    # When the planner may not scan the whole table
    with runtime.uow() as uow:
        uow.conn.execute(text("ANALYZE documents"))
        uow.conn.execute(text("SET LOCAL enable_seqscan = off"))
        statement = query.compile(dialect=uow.conn.dialect, compile_kwargs={"literal_binds": True})
        plan = "\n".join(row[0] for row in uow.conn.execute(text(f"EXPLAIN {statement}")))
    # Then it answers the stuck list from the partial index (its predicate is implied)
    assert "ix_documents_unfinished" in plan, plan
