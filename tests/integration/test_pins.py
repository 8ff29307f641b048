"""What the fast paths rely on in libraries' internals still holds in the installed versions.

``storage/prepared.py`` compiles statements with SQLAlchemy's compiler attributes and hands
driver errors to ``Connection._handle_dbapi_exception``; on an upgrade that changed them it
would quietly fall back to the slow path, or misbehave. These tests make such an upgrade
fail loudly instead. (The signing hot path's reliance on pyHanko's output is pinned by
tests/integration/test_cms_hotpath.py, which compares signatures byte for byte.)
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine

from congvan.actions.context import TransitionContext
from congvan.states.policy import number_series
from congvan.storage import (
    agencies,
    audit,
    dispatches,
    documents,
    duplicates,
    outbox,
    peers,
    received,
    signatures,
    timers,
)
from congvan.storage.clock import as_utc
from congvan.storage.prepared import Prepared
from congvan.workflow.bootstrap import Runtime

from ..factories import SAMPLE_RECIPIENTS, actor, create_document, sample_file

_MODULES = (
    agencies,
    audit,
    dispatches,
    documents,
    duplicates,
    outbox,
    peers,
    received,
    signatures,
    timers,
)


def _statements() -> dict[str, Prepared]:
    return {
        f"{module.__name__.rsplit('.', 1)[-1]}.{name}": value
        for module in _MODULES
        for name, value in vars(module).items()
        if isinstance(value, Prepared)
    }


def test_sqlalchemy_still_offers_what_prepared_statements_use() -> None:
    assert callable(getattr(Connection, "_handle_dbapi_exception", None))
    # unobserved() reads the flags Connection.execute reads before events and echo
    for flag in ("_has_events", "_echo"):
        assert hasattr(Connection, flag) or flag in Connection.__init__.__code__.co_names
    assert callable(getattr(TypeEngine, "_cached_result_processor", None))
    for name, statement in _statements().items():
        compiled: Any = statement.statement.compile()
        for attribute in (
            "literal_execute_params",
            "post_compile_params",
            "escaped_bind_names",
            "insert_prefetch",
            "update_prefetch",
            "binds",
            "bind_names",
            "positional",
            "isinsert",
            "string",
            "_result_columns",
        ):
            assert hasattr(compiled, attribute), f"{name}: SQLAlchemy dropped {attribute}"


def test_a_transition_runs_every_prepared_statement_on_the_fast_path(runtime: Runtime) -> None:
    # Given a document created and submitted (the statements every transition runs)
    document_id = create_document(runtime)
    runtime.engine.fire(document_id, "submit", actor("clerk"))

    # Then each statement those used was planned for this database, none fell back
    dialect = runtime.db.dialect
    planned = {
        name: plans
        for name, statement in _statements().items()
        if (plans := statement._plans.get(dialect))
    }
    assert {"audit._INSERT", "outbox._INSERT", "documents._ADVANCE"} <= set(planned)
    fell_back = {name for name, plans in planned.items() if None in plans.values()}
    assert fell_back == set()


@pytest.mark.parametrize("watcher", ["engine listener", "connection listener", "echo"])
def test_a_statement_anyone_watches_goes_through_sqlalchemy(
    runtime: Runtime, watcher: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a created document, and someone watching statements on the database
    document_id = create_document(runtime)
    seen: list[str] = []

    def before(*args: Any) -> None:
        seen.append(str(args[2]))

    def watch_connection(conn: Connection) -> None:
        event.listen(conn, "before_cursor_execute", before)

    if watcher == "engine listener":
        event.listen(runtime.db, "before_cursor_execute", before)
    elif watcher == "connection listener":
        event.listen(runtime.db.pool, "checkout", lambda *a: None)  # a pool event: unwatched
        event.listen(runtime.db, "engine_connect", watch_connection)
    else:
        runtime.db.echo = True
    try:
        # When a transition runs
        runtime.engine.fire(document_id, "submit", actor("clerk"))
    finally:
        runtime.db.echo = False
        for name, fn in (("before_cursor_execute", before), ("engine_connect", watch_connection)):
            if event.contains(runtime.db, name, fn):
                event.remove(runtime.db, name, fn)

    # Then every statement it ran was seen: the audit entry's INSERT among them
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    shown = seen if watcher != "echo" else logged
    assert any(sql.lstrip().upper().startswith("INSERT INTO AUDIT_ENTRIES") for sql in shown)


def test_a_driver_error_on_the_fast_path_is_sqlalchemys_own_exception(runtime: Runtime) -> None:
    # Given a timer row, inserted again with the same primary key through the fast path
    row = {"id": "t-1", "kind": "k", "ref_id": "r", "due_at": runtime.clock(), "payload": "{}"}
    statement = timers._INSERT
    with runtime.uow() as uow:
        statement.execute(uow.conn, [row])
        # Then the driver's error reaches us as SQLAlchemy's IntegrityError, as from execute()
        with pytest.raises(IntegrityError):
            statement.execute(uow.conn, [row])
    assert None not in statement._plans[runtime.db.dialect].values()


def test_rows_on_the_fast_path_are_converted_as_sqlalchemy_converts_them(runtime: Runtime) -> None:
    # Given a job row, whose lease is a timestamp (stored as text by SQLite)
    lease = runtime.clock()
    row = {"id": "j-1", "action": "a", "queue": "default", "status": "pending"}
    row |= {"attempts": 0, "created_at": lease, "payload": "{}"}
    with runtime.uow() as uow:
        outbox._INSERT.execute(uow.conn, [row])
        outbox._CLAIM.rowcount(uow.conn, {"job_id": "j-1", "lease_until": lease})
        # When it is read on the fast path and through Connection.execute
        fast = outbox._GET.first(uow.conn, {"job_id": "j-1"})
        slow = uow.conn.execute(outbox._GET.statement, {"job_id": "j-1"}).first()
        # Then both read the same values, of the same types
        assert slow is not None and fast is not None
        assert [(v, type(v)) for v in fast] == [(v, type(v)) for v in tuple(slow)]
        assert outbox._GET.all(uow.conn, {"job_id": "j-1"}) == [fast]


def test_the_duplicate_guard_reads_on_the_fast_path(runtime: Runtime) -> None:
    # Given a numbered draft with a main file and its recipients
    document_id = create_document(runtime, files=[sample_file()])

    # When send's not_duplicate guard looks for an earlier number or file
    with runtime.uow(readonly=True) as uow:
        head = uow.documents.head(document_id)
        assert head is not None
        ctx = TransitionContext(uow, head, "send", actor("clerk"), {}, runtime.clock())
        assert runtime.engine.guards["not_duplicate"](ctx) == (True, "")
        doc = uow.documents.load(document_id)
        agency = uow.agencies.agency(doc.agency_id)
        assert agency is not None
        series = number_series(agency.numbering, doc.as_dict())

    # Then every statement it ran was planned for this database, none fell back
    dialect = runtime.db.dialect
    built = {
        "sent_with_number": duplicates._sent_with_number(
            bool(series.legal_normative), series.doc_type is not None, series.symbol is not None
        ),
        "sent_with_file": duplicates._sent_with_file(len(SAMPLE_RECIPIENTS)),
        "agency": agencies._AGENCY,
        "document": documents._GET,
        "attachments": documents._ATTACHMENTS,
    }
    plans = {name: statement._plans.get(dialect) for name, statement in built.items()}
    assert {name for name, found in plans.items() if not found} == set()
    assert {name for name, found in plans.items() if None in found.values()} == set()


def test_several_rows_run_at_once_on_the_fast_path(runtime: Runtime) -> None:
    # Given three timer rows, inserted in one call
    due = runtime.clock()
    rows = [
        {"id": f"t-{i}", "kind": "k", "ref_id": "r", "due_at": due, "payload": "{}"}
        for i in range(3)
    ]
    statement = timers._INSERT
    with runtime.uow() as uow:
        statement.execute(uow.conn, rows)
        # Then each row is stored as Connection.execute would store it, due at its time
        stored = uow.conn.execute(
            timers._INSERT.statement.table.select().order_by("id")  # type: ignore[attr-defined]
        ).all()
        assert [(r.id, as_utc(r.due_at)) for r in stored] == [(f"t-{i}", due) for i in range(3)]
        # And a second row with a taken key is SQLAlchemy's IntegrityError, as from execute()
        again = [{**rows[0], "id": "t-9"}, rows[1]]
        with pytest.raises(IntegrityError):
            statement.execute(uow.conn, again)
    assert None not in statement._plans[runtime.db.dialect].values()


def test_rows_naming_different_parameters_are_stored_as_sqlalchemy_stores_them(
    runtime: Runtime,
) -> None:
    # Given two pairs of job rows, the second of each naming a lease the first does not
    now = runtime.clock()
    base = {"action": "a", "queue": "default", "status": "pending", "attempts": 0}

    def jobs(first: str, second: str) -> list[dict[str, Any]]:
        return [
            {**base, "id": first, "created_at": now, "payload": "{}"},
            {**base, "id": second, "created_at": now, "payload": "{}", "lease_until": now},
        ]

    with runtime.uow() as uow:
        # When one pair goes through Prepared and the other through Connection.execute
        outbox._INSERT.execute(uow.conn, jobs("j-1", "j-2"))
        uow.conn.execute(outbox._INSERT.statement, jobs("j-3", "j-4"))
        # Then both pairs are stored alike
        read = [outbox._GET.first(uow.conn, {"job_id": f"j-{i}"}) for i in range(1, 5)]
    assert [r[1:] for r in read[:2] if r] == [r[1:] for r in read[2:] if r]
    assert len([r for r in read if r]) == 4


def test_a_name_bound_twice_is_converted_once(runtime: Runtime) -> None:
    # Given the agency certificate query, which compares one moment with two columns
    statement = signatures._USABLE
    params = {"agency_id": "000.00.00.H57", "kind": "agency", "at": runtime.clock()}
    with runtime.uow(readonly=True) as uow:
        # When it runs on the fast path and through Connection.execute
        fast = statement.first(uow.conn, params)
        slow = uow.conn.execute(statement.statement, params).first()
    # Then both answer alike (SQLite binds a datetime as text: converting twice would fail)
    assert fast == (tuple(slow) if slow is not None else None)
    assert None not in statement._plans[runtime.db.dialect].values()
