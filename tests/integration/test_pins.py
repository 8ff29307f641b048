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
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine

from congvan.storage import (
    audit,
    dispatches,
    documents,
    outbox,
    peers,
    received,
    signatures,
    timers,
)
from congvan.storage.prepared import Prepared
from congvan.workflow.bootstrap import Runtime

from ..factories import actor, create_document

_MODULES = (audit, dispatches, documents, outbox, peers, received, signatures, timers)


def _statements() -> dict[str, Prepared]:
    return {
        f"{module.__name__.rsplit('.', 1)[-1]}.{name}": value
        for module in _MODULES
        for name, value in vars(module).items()
        if isinstance(value, Prepared)
    }


def test_sqlalchemy_still_offers_what_prepared_statements_use() -> None:
    assert callable(getattr(Connection, "_handle_dbapi_exception", None))
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
