"""Engines for the embedded default (SQLite in WAL mode) and for PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, InterfaceError, OperationalError

from congvan.states.errors import InvalidInput

USABLE_URLS = "sqlite:///PATH or postgresql://USER@HOST:PORT/NAME"
# The drivers congvan is built and tested on, by backend ("": the backend's default).
_DRIVERS = {"sqlite": ("", "pysqlite"), "postgresql": ("psycopg",)}


def _unusable(message: str) -> InvalidInput:
    # Never the URL itself in the message: it may hold a password.
    return InvalidInput(message, field="database_url")


def _option_refused(exc: Exception) -> InvalidInput:
    return _unusable(f"An option of the database URL is not one its driver takes: {str(exc)[:200]}")


def normalise_url(url: str) -> str:
    """The database URL congvan connects with (psycopg 3 for ``postgresql://``), or
    InvalidInput: not a URL, another database or driver, SQLite in memory (each connection
    would see a database of its own, gone with it) or with options, or options its driver
    cannot take."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # a bad port is a ValueError
        raise _unusable(f"The database URL is not one congvan can use: {USABLE_URLS}.") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend, _, driver = parsed.drivername.partition("+")
    if driver not in _DRIVERS.get(backend, ()):
        raise _unusable(
            f"The database URL names {parsed.drivername[:40]!r}; congvan uses {USABLE_URLS}."
        )
    if backend == "sqlite" and (
        not parsed.database
        or parsed.database == ":memory:"
        or parsed.query.get("mode") == "memory"
        or "mode=memory" in parsed.database
    ):
        raise _unusable(
            "An SQLite database in memory would be a new, empty one on each connection and "
            "gone with the process: name its file, sqlite:///PATH."
        )
    if backend == "sqlite" and parsed.query:
        # pysqlite takes a few and SQLAlchemy drops the rest with a warning (mode=ro
        # would seem to open it read-only, and would not); congvan sets its own.
        raise _unusable(
            "An SQLite database URL takes no options (?...): congvan opens its file its own "
            f"way (WAL, foreign keys, a 30 s lock wait). Name the file only: sqlite:///PATH; "
            f"options given: {', '.join(sorted(parsed.query))[:200]}."
        )
    try:
        # The driver's options from the URL's query, as SQLAlchemy converts them.
        _, options = parsed.get_dialect()().create_connect_args(parsed)
    except (ArgumentError, ValueError, TypeError) as exc:
        raise _option_refused(exc) from exc
    if backend == "postgresql":
        import psycopg.conninfo  # only where PostgreSQL is used

        try:  # libpq's names for them, as psycopg checks them before connecting
            psycopg.conninfo.make_conninfo("", **options)
        except psycopg.ProgrammingError as exc:
            raise _option_refused(exc) from exc
    return parsed.render_as_string(hide_password=False)


# PostgreSQL's deadlock_detected and serialization_failure: it rolled the transaction back
# so that another could finish. Running the same transaction again is the answer.
_ROLLED_BACK_FOR_ANOTHER = frozenset({"40P01", "40001"})


def rolled_back_for_another(exc: BaseException) -> bool:
    """Whether ``exc`` is the database undoing this transaction to let another proceed."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _ROLLED_BACK_FOR_ANOTHER


# What a PostgreSQL server that is starting, stopping or recovering answers a connection:
# it takes connections again by itself.
_NOT_YET = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
)


def not_up_yet(exc: BaseException) -> bool:
    """Whether a connection failed because no PostgreSQL server takes connections at its
    address now (nothing listening, a name not resolving yet, one starting or stopping),
    rather than because the server refused this one (a wrong password, a role or database
    it does not have: its FATAL answer), which waiting does not mend."""
    if not isinstance(exc, OperationalError):
        return False
    said = str(exc.orig)
    return "FATAL:" not in said or any(reason in said for reason in _NOT_YET)


def wait_until_up(engine: Engine, said: Callable[[BaseException], None], every: float) -> None:
    """Return once ``engine`` connects; while its server is not up yet (``not_up_yet``),
    call ``said`` the first time and try again every ``every`` seconds, for as long as it
    takes (a signal ends the wait). Any other failure is raised at once."""
    told = False
    while True:
        try:
            with engine.connect():
                return
        except OperationalError as exc:
            if not not_up_yet(exc):
                raise
            if not told:
                said(exc)
                told = True
            time.sleep(every)


def passing_trouble(exc: BaseException) -> str | None:
    """What a background pass met that the next pass gets past by itself (the database
    restarting or unreachable, a transaction rolled back for another), in a few words; None
    for anything else, which is a fault worth its traceback."""
    if rolled_back_for_another(exc):
        return "rolled back for another transaction"
    if isinstance(exc, OperationalError | InterfaceError) or getattr(
        exc, "connection_invalidated", False
    ):
        return "the database is unavailable"
    return None


# A row with the same unique key is there already: PostgreSQL's unique_violation, and
# SQLite's extended codes for a UNIQUE or PRIMARY KEY constraint.
_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def duplicate_key(exc: BaseException) -> bool:
    """Whether ``exc`` says a row with the same unique key exists: a check-then-insert
    overtaken by another transaction that inserted the same row first."""
    orig = getattr(exc, "orig", None)
    return (
        getattr(orig, "sqlstate", None) == _UNIQUE_VIOLATION
        or getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE
    )


# PostgreSQL's disk_full and out_of_memory (class 53, insufficient resources).
_NO_ROOM = frozenset({"53100", "53200"})


def disk_trouble(exc: BaseException) -> str | None:
    """``disk_full`` when ``exc`` says the disk under the database filled (SQLite's
    SQLITE_FULL, PostgreSQL's class 53), ``disk_io`` when SQLite's write to it failed
    (SQLITE_IOERR: most often a full disk too); None for anything else. The transaction
    rolled back whole either way."""
    orig = getattr(exc, "orig", None)
    first = str(orig if orig is not None else exc).split("\n")[0]
    if "database or disk is full" in first or getattr(orig, "sqlstate", None) in _NO_ROOM:
        return "disk_full"
    if "disk I/O error" in first:
        return "disk_io"
    return None


# Query options a driver reads a secret from (libpq takes ``?password=``).
_SECRET_OPTIONS = frozenset({"password", "sslpassword"})


def shown_url(url: URL) -> str:
    """The URL as it may be shown: its password masked, before the host and in its query."""
    masked = {k: "***" for k in url.query if k.lower() in _SECRET_OPTIONS}
    return url.update_query_dict(masked).render_as_string(hide_password=True)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, synchronous: str = "FULL", pool_size: int = 10) -> Engine:
    """An engine whose transactions are safe to run from many threads.

    SQLite: WAL with ``synchronous=FULL`` (a committed transition survives power loss),
    foreign keys on, and ``BEGIN IMMEDIATE`` so that a writer takes the lock up front
    instead of failing on upgrade when another writer got there first.

    A statement's parameters are never part of an error's text (``hide_parameters``):
    a failed statement's values (a token's digest, a key, a letter's text) would reach
    the log with its traceback.
    """
    url = normalise_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_file(Path(database))
        engine = create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            pool_size=pool_size,
            # Writers queue for the file holding a connection each (the API's threads, the
            # workers, relay and scheduler): enough that a reader is never kept waiting for
            # one behind them. A connection to a local file costs little to open and is
            # closed once handed back beyond ``pool_size``.
            max_overflow=max(pool_size, SQLITE_OVERFLOW),
            hide_parameters=True,
        )
        _configure_sqlite(engine, synchronous, _writers_of(database))
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, hide_parameters=True)
    _ping_when_idle(engine)
    return engine


def _private_file(path: Path) -> None:
    """Create the database file, if new, readable by its owner only (0600; SQLite gives its
    -wal and -shm files the same mode): it holds encrypted keys and webhook secrets. A
    folder made for it is its owner's only (0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # An existing database keeps the mode its operator gave it.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


# Connections to a SQLite file beyond the pool's, at most (see make_engine).
SQLITE_OVERFLOW = 64

# A pooled connection used less than this long ago answered then: taken as alive.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection on checkout when it has been idle a while.

    What ``pool_pre_ping`` does, minus the round trip for a connection handed back
    moments ago (under load, every one): a server restarted or a connection dropped
    while it sat in the pool is found and replaced before a transaction uses it.
    A connection that fails its ping is discarded and another one made, as the
    SQLAlchemy pool does when a checkout listener raises ``DisconnectionError``.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["congvan_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("congvan_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # just made, or just used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever the driver says: not usable
            raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc


# A SQLite file's tables, and whether congvan's migrations recorded their revision there.
_WHOSE = (
    "SELECT count(*), count(*) FILTER (WHERE name = 'alembic_version') FROM sqlite_master "
    "WHERE type = 'table'"
)


def use_wal(engine: Engine) -> None:
    """Put a SQLite database in WAL mode (written into the file: every connection then
    uses it), outside any transaction, as a migration that made it ends."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[union-attr]
    finally:
        raw.close()


def _configure_sqlite(engine: Engine, synchronous: str, writers: _Writers) -> None:
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"unknown SQLite synchronous setting {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        # WAL, a mode written into the file, for a new database or congvan's: another
        # program's file is left as it is, byte for byte, by a command that reads it and
        # refuses it (`migrate` refuses it too, or writes the mode once it made it).
        tables, ours = cursor.execute(_WHOSE).fetchone()
        if not tables or ours:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.close()

    # BEGIN, COMMIT and ROLLBACK are the dialect's, not events': any Connection event makes
    # SQLAlchemy join the engine's listeners into every new connection and ask them at each
    # begin, commit and statement (about 25 µs a transaction, the statements' checks besides).
    dialect: Any = engine.dialect
    dialect.do_begin = types.MethodType(writers.begin, dialect)
    committing, rolling_back, closing = dialect.do_commit, dialect.do_rollback, dialect.do_close

    def do_commit(dbapi_connection: Any) -> None:
        try:
            committing(dbapi_connection)
        finally:
            writers.done(dbapi_connection.driver_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rolling_back(dbapi_connection)
        finally:
            writers.done(dbapi_connection.driver_connection)

    def do_close(dbapi_connection: Any) -> None:  # the driver's connection itself
        try:
            closing(dbapi_connection)
        finally:
            writers.done(dbapi_connection)

    dialect.do_commit, dialect.do_rollback, dialect.do_close = do_commit, do_rollback, do_close


# How long a writer waits for the write lock before SQLite says "database is locked".
BUSY_TIMEOUT_SECONDS = 30
# A writer queued longer than this (seconds) gives SQLite only what is left of that wait.
_QUEUED = 0.5


class _Writers:
    """The writers of one SQLite file in this process, one at a time, handed on at once.

    SQLite lets one writer in at a time; the others wait in its busy handler, which
    sleeps and polls (1, 2, 5, 10 … 100 ms): under load, most writers of a busy
    installation slept past the moment the lock came free (measured: 4 of the 8 write
    transactions of a delivered letter waited, 160 ms a letter in all). Here a writer
    first takes this process's lock for the file, which wakes the next one as soon as
    the last commits or rolls back; BEGIN IMMEDIATE then finds the file free, unless
    another process writes to it (the CLI beside ``serve``), which the busy handler waits
    for as before. A reader (plain BEGIN) takes neither.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: object = None  # the driver connection whose transaction holds it

    def begin(self, _dialect: Any, dbapi_connection: Any) -> None:
        """BEGIN IMMEDIATE, or a plain BEGIN for a reader (:func:`begin_readonly`).

        Readers need no write lock: WAL lets them run beside the writer.
        """
        driver = dbapi_connection.driver_connection
        if dbapi_connection.info.pop(_READONLY, False):
            driver.execute("BEGIN")
            return
        # One wait in all, here and in SQLite's busy handler (another process writing):
        # what this one spent in the queue is taken off what SQLite may wait after it.
        started = time.monotonic()
        if not self._lock.acquire(timeout=BUSY_TIMEOUT_SECONDS):
            # (a writer ahead of it waited that long for another process, or this thread
            # writes twice at once): SQLite's own answer, as its busy handler would give
            raise sqlite3.OperationalError("database is locked")
        self._holder = driver
        waited = time.monotonic() - started
        try:
            if waited < _QUEUED:
                driver.execute("BEGIN IMMEDIATE")
            else:
                left = max(1, int((BUSY_TIMEOUT_SECONDS - waited) * 1000))
                driver.execute(f"PRAGMA busy_timeout={left}")
                try:
                    driver.execute("BEGIN IMMEDIATE")
                finally:
                    driver.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        except BaseException:
            self.done(driver)
            raise

    def done(self, driver: object) -> None:
        """``driver``'s transaction ended, or its connection closed: the next writer's turn."""
        if driver is not None and self._holder is driver:
            self._holder = None
            self._lock.release()


_WRITERS: dict[str, _Writers] = {}
_WRITERS_GUARD = threading.Lock()


def _writers_of(database: str | None) -> _Writers:
    """One handoff per file in this process, whichever engine opens it."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return _Writers()  # a database of this engine's own
    with _WRITERS_GUARD:
        return _WRITERS.setdefault(os.path.realpath(database), _Writers())


_READONLY = "congvan_readonly"


def begin_readonly(conn: Connection) -> RootTransaction:
    """Begin ``conn``'s transaction as a reader: on SQLite a plain BEGIN, never the
    writers' lock (PostgreSQL needs no telling)."""
    conn.connection.info[_READONLY] = True
    return conn.begin()
