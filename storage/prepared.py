"""The few statements every transition runs, compiled once and run on the driver's cursor.

``Connection.execute`` costs about 35 µs of Python per statement (execution context,
parameter processing, result setup, event dispatch) -- more than SQLite takes to run a
single-row INSERT, and a transition runs five statements. A :class:`Prepared` statement
is compiled by SQLAlchemy itself, once per dialect and set of parameter names, with the
same options ``Connection.execute`` uses, so the SQL text, the bind processors (SQLite's
datetime-as-text, for one) and the column defaults applied are SQLAlchemy's own; only
the per-execution bookkeeping is skipped. Driver errors go through SQLAlchemy's own
handler, so callers see the same ``sqlalchemy.exc`` classes and a lost connection is
invalidated as usual.

Several rows of one statement (an INSERT of a transition's audit entries, dispatches,
jobs) run as one ``executemany`` on the driver's cursor, each row's values prepared as
for one row, when every row names the same parameters.

Whenever that bookkeeping could matter, the statement goes through ``Connection.execute``
instead, unchanged: outside a transaction (autobegin), with echo/INFO logging on, with any
statement or cursor event listened for, with a schema translate map, for rows naming
different parameters, or when the statement needs something this path does not reproduce
(Python-side callable defaults, expanding or literal-execute parameters). A SELECT's rows are
converted by the result processors SQLAlchemy would pick for the same columns and the
same driver column types (SQLite's text-as-datetime, for one), chosen once per set of
driver types.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import Executable

_BindProcessor = Callable[[Any], Any]
_ResultProcessor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Plan:
    sql: str
    positional: bool
    names: tuple[str, ...]  # bind names, in order when positional
    processors: tuple[tuple[str, _BindProcessor], ...]
    defaults: tuple[tuple[str, Any], ...]  # column defaults and literals SQLAlchemy would add
    result_types: tuple[Any, ...]  # a SELECT's column types, in order
    # The result processors of result_types, by the driver's column types (see _convert).
    converters: dict[tuple[Any, ...], tuple[_ResultProcessor | None, ...] | None]


def unobserved(conn: Connection) -> bool:
    """Nobody would miss a statement run past SQLAlchemy: no echo, no connection events.

    The flags ``Connection.execute`` itself reads before dispatching any event or logging
    a statement: set when a connection event is listened for on the connection or its
    engine, and when echo (INFO logging) is on. Reading the event lists themselves costs
    about 17 calls into SQLAlchemy's event system per statement.
    """
    return not (conn._has_events or conn.engine._has_events or conn._echo)


def run_on_cursor(conn: Connection, cursor: Any, statement: str) -> None:
    """Run ``statement`` on a driver cursor of ``conn`` (nobody observes ``conn``: the
    caller checked), errors handled by SQLAlchemy as ``exec_driver_sql`` would."""
    try:
        cursor.execute(statement)
    except BaseException as exc:  # noqa: BLE001 -- handed on, as exec_driver_sql does
        conn._handle_dbapi_exception(exc, statement, (), cursor, None)


class Prepared:
    """A Core statement executed with plain driver calls inside the current transaction."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...], _Plan | None]]
        self._plans = weakref.WeakKeyDictionary()  # per engine dialect; gone with the engine
        self._lock = threading.Lock()

    # -- planning ------------------------------------------------------------------------

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
        by_keys = self._plans.get(dialect)
        if by_keys is not None and keys in by_keys:
            return by_keys[keys]
        with self._lock:
            by_keys = self._plans.setdefault(dialect, {})
            if keys not in by_keys:
                by_keys[keys] = self._compile(dialect, keys)
            return by_keys[keys]

    def _compile(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
        """Compile as ``Connection.execute`` would for one row; ``None``: not supported."""
        statement: Any = self.statement
        compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))
        if compiled.literal_execute_params or compiled.post_compile_params:
            return None
        if compiled.escaped_bind_names:
            return None
        defaults: dict[str, Any] = {}
        for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
            default = column.default if compiled.isinsert else column.onupdate
            bind = compiled.binds.get(column.key)
            if default is None or not default.is_scalar or bind is None:
                return None  # a callable or SQL default: leave it to SQLAlchemy
            defaults[compiled.bind_names[bind]] = default.arg
        for bind, name in compiled.bind_names.items():
            if name in keys or name in defaults:
                continue
            if bind.required or bind.callable is not None:
                return None  # a value is missing (let SQLAlchemy say which) or computed
            defaults[name] = bind.value  # a literal the statement carries: x = 'done'
        names = tuple(compiled.bind_names.values())
        processors: dict[str, _BindProcessor] = {}  # by name: one name may be bound twice
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors.setdefault(name, processor)
        return _Plan(
            sql=compiled.string,
            positional=bool(compiled.positional),
            names=tuple(compiled.positiontup) if compiled.positional else names,
            processors=tuple(processors.items()),
            defaults=tuple(defaults.items()),
            # What Connection.execute's result metadata reads: each column's type.
            result_types=tuple(entry[3] for entry in compiled._result_columns),
            converters={},
        )

    # -- execution -----------------------------------------------------------------------

    def _fast(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> _Plan | None:
        if not rows or not conn.in_transaction() or not unobserved(conn):
            return None
        if conn.get_execution_options().get("schema_translate_map"):
            return None
        keys = tuple(sorted(rows[0]))
        if len(rows) > 1 and any(tuple(sorted(row)) != keys for row in rows[1:]):
            return None  # rows naming different parameters: SQLAlchemy sorts them out
        return self._plan(conn.dialect, keys)

    @staticmethod
    def _params(plan: _Plan, row: Mapping[str, Any]) -> Any:
        """One row's parameters as the driver takes them: defaults added, values bound."""
        values = dict(row)
        for name, value in plan.defaults:
            values[name] = value
        for name, processor in plan.processors:
            values[name] = processor(values[name])
        if plan.positional:
            return tuple([values[n] for n in plan.names])
        return {n: values[n] for n in plan.names}

    def _run(self, conn: Connection, plan: _Plan, row: Mapping[str, Any]) -> Any:
        fairy = conn.connection  # raises as Connection.execute would on a dead transaction
        cursor: Any = None
        params: Any = None
        try:
            params = self._params(plan, row)
            cursor = fairy.cursor()
            cursor.execute(plan.sql, params)
        except BaseException as exc:  # noqa: BLE001 -- handed on, as Connection.execute does
            # SQLAlchemy's own handling: the same exception classes, and a connection
            # found dead is invalidated. It always raises.
            conn._handle_dbapi_exception(exc, plan.sql, params, cursor, None)
        return cursor

    def _run_many(self, conn: Connection, plan: _Plan, rows: Sequence[Mapping[str, Any]]) -> None:
        fairy = conn.connection
        cursor: Any = None
        params: Any = None
        try:
            params = [self._params(plan, row) for row in rows]
            cursor = fairy.cursor()
            cursor.executemany(plan.sql, params)
            cursor.close()
        except BaseException as exc:  # noqa: BLE001 -- handed on, as Connection.execute does
            conn._handle_dbapi_exception(exc, plan.sql, params, cursor, None)

    @staticmethod
    def _convert(conn: Connection, plan: _Plan, cursor: Any, rows: list[Any]) -> list[Any]:
        """``rows`` as tuples, each value through its column's result processor, if any."""
        if not plan.result_types:
            return [tuple(row) for row in rows]
        driver_types = tuple(column[1] for column in cursor.description)
        converters = plan.converters.get(driver_types, ())
        if converters == ():
            # As CursorResultMetaData picks them: by the column's type and the driver's.
            found = tuple(
                type_._cached_result_processor(conn.dialect, driver_type)
                for type_, driver_type in zip(plan.result_types, driver_types, strict=True)
            )
            converters = found if any(found) else None
            plan.converters[driver_types] = converters
        if converters is None:
            return [tuple(row) for row in rows]
        return [
            tuple(
                [convert(v) if convert else v for convert, v in zip(converters, row, strict=True)]
            )
            for row in rows
        ]

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute with ``rows`` (one dict per row), ignoring any result."""
        plan = self._fast(conn, rows)
        if plan is None:
            conn.execute(self.statement, list(rows))
        elif len(rows) == 1:
            self._run(conn, plan, rows[0]).close()
        else:
            self._run_many(conn, plan, rows)

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute a DML statement once; how many rows it matched."""
        plan = self._fast(conn, (params,))
        if plan is None:
            return int(conn.execute(self.statement, params).rowcount)
        cursor = self._run(conn, plan, params)
        count = int(cursor.rowcount)
        cursor.close()
        return count

    def first(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Execute a SELECT once; its first row as a tuple, or ``None``."""
        plan = self._fast(conn, (params,))
        if plan is None:
            row = conn.execute(self.statement, params).first()
            return tuple(row) if row is not None else None
        cursor = self._run(conn, plan, params)
        found = cursor.fetchone()
        rows = self._convert(conn, plan, cursor, [found]) if found is not None else [None]
        cursor.close()
        return rows[0]

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute a SELECT once; every row as a tuple."""
        plan = self._fast(conn, (params,))
        if plan is None:
            return [tuple(row) for row in conn.execute(self.statement, params)]
        cursor = self._run(conn, plan, params)
        rows = self._convert(conn, plan, cursor, cursor.fetchall())
        cursor.close()
        return rows
