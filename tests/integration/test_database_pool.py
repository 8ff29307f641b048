"""Pooled connections: PostgreSQL's pinged when idle a while and replaced when dropped;
SQLite's begin as writers or readers."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from congvan.storage import database
from congvan.storage.database import make_engine
from congvan.storage.unit_of_work import UnitOfWork

from ..databases import Databases


def _backend(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.postgres
def test_a_connection_dropped_while_idle_is_replaced_on_checkout(
    databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pool holding one connection, ended by the server while it sat idle
    url = databases.new("postgres").url
    engine, admin = make_engine(url, pool_size=1), make_engine(url, pool_size=1)
    try:
        first = _backend(engine)
        with admin.connect() as conn:
            ended = conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            assert ended.scalar_one() is True
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)  # idle long enough

        # When the pool hands out a connection again, Then it is a new one that works
        assert _backend(engine) != first
    finally:
        engine.dispose()
        admin.dispose()


@pytest.mark.postgres
def test_only_a_connection_idle_a_while_is_pinged(
    databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pool holding one connection, and its pings counted
    engine = make_engine(databases.new("postgres").url, pool_size=1)
    pings: list[Any] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(c) or ping(c))
    try:
        first = _backend(engine)
        # When it is handed out again at once: no ping
        assert _backend(engine) == first
        assert pings == []
        # And when it has been idle long enough: one ping, and the same connection
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert _backend(engine) == first
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_a_new_sqlite_database_is_its_owners_only_whatever_the_umask(tmp_path: Path) -> None:
    # It holds encrypted private keys and webhook secrets
    path = tmp_path / "data" / "congvan.db"
    previous = os.umask(0o002)
    try:
        engine = make_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        engine.dispose()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for side in path.parent.glob("congvan.db-*"):  # SQLite's -wal and -shm, as the database
        assert stat.S_IMODE(side.stat().st_mode) == 0o600, side.name


def test_an_existing_database_keeps_the_mode_its_operator_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "congvan.db"
    make_engine(f"sqlite:///{path}").dispose()
    path.chmod(0o640)
    make_engine(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def _other_writer_waits(path: Path) -> bool:
    """Whether a writer on another connection finds the write lock taken."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return True
    else:
        other.execute("ROLLBACK")
        return False
    finally:
        other.close()


def test_a_sqlite_writer_takes_the_lock_at_begin_and_a_reader_never(tmp_path: Path) -> None:
    # A transition reads before it writes: were the lock taken at the first write, two
    # transitions that both read could not both upgrade, and one would fail.
    path = tmp_path / "congvan.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        with UnitOfWork(engine) as uow:
            assert _other_writer_waits(path)  # taken before any statement
            uow.conn.execute(text("INSERT INTO t VALUES (1)"))
        assert not _other_writer_waits(path)  # left without commit: rolled back, released
        with UnitOfWork(engine, readonly=True) as uow:
            assert uow.conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
            assert not _other_writer_waits(path)
            with UnitOfWork(engine) as writer:  # beside the reader, as WAL allows
                writer.conn.execute(text("INSERT INTO t VALUES (2)"))
                writer.commit()
            # The reader's snapshot: taken at its first read, before the writer committed
            assert uow.conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
        with UnitOfWork(engine) as uow:  # the reader's mark did not outlive its transaction
            assert _other_writer_waits(path)
    finally:
        engine.dispose()


def test_a_sqlite_begin_that_finds_the_lock_taken_fails_as_sqlalchemy_says(
    tmp_path: Path,
) -> None:
    path = tmp_path / "congvan.db"
    engine = make_engine(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        holder.execute("BEGIN IMMEDIATE")
        with engine.connect() as conn:
            conn.connection.driver_connection.execute("PRAGMA busy_timeout=0")
            with pytest.raises(OperationalError, match="locked"):
                conn.begin()
            assert not conn.in_transaction()
        holder.execute("ROLLBACK")
        with UnitOfWork(engine) as uow:  # the pool's connection still works
            uow.conn.execute(text("INSERT INTO t VALUES (1)"))
            uow.commit()
    finally:
        holder.close()
        engine.dispose()


def _table(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    return engine


def _writes_without_busy_wait(engine: Engine, value: int) -> None:
    """A write whose BEGIN IMMEDIATE would fail at once if the file were locked."""
    with engine.connect() as conn:
        conn.connection.driver_connection.execute("PRAGMA busy_timeout=0")
        with conn.begin():
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": value})


def test_a_writer_of_this_process_waits_its_turn_and_gets_the_file_when_the_last_commits(
    tmp_path: Path,
) -> None:
    # Given a write transaction open in this process, and two engines on the same file
    path = tmp_path / "congvan.db"
    engine, other = _table(path), make_engine(f"sqlite:///{path}")
    waiting: list[Exception | None] = []
    try:
        first = UnitOfWork(engine).__enter__()
        first.conn.execute(text("INSERT INTO t VALUES (1)"))
        # When another thread writes, with SQLite's busy handler off: it waits for the
        # first to end instead of finding the file locked
        thread = threading.Thread(target=_run, args=(waiting, _writes_without_busy_wait, other, 2))
        thread.start()
        thread.join(0.2)
        assert thread.is_alive() and not waiting
        first.commit()
        first.__exit__(None, None, None)
        thread.join()

        # Then both writes are there, neither refused
        assert waiting == [None]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 2]
    finally:
        engine.dispose()
        other.dispose()


def _run(outcomes: list[Exception | None], function: Any, *args: Any) -> None:
    try:
        function(*args)
        outcomes.append(None)
    except Exception as exc:  # noqa: BLE001 -- whatever it was, the test shows it
        outcomes.append(exc)


@pytest.mark.parametrize("ending", ["rollback", "error", "invalidated", "closed"])
def test_the_next_writer_gets_its_turn_however_the_last_transaction_ended(
    tmp_path: Path, ending: str
) -> None:
    engine = _table(tmp_path / "congvan.db")
    try:
        # Given a write transaction that ends without a commit
        conn = engine.connect()
        conn.begin()
        conn.execute(text("INSERT INTO t VALUES (1)"))
        if ending == "rollback":
            conn.rollback()
        elif ending == "error":
            with pytest.raises(OperationalError):
                conn.execute(text("INSERT INTO no_such_table VALUES (1)"))
            conn.rollback()
        elif ending == "invalidated":  # the pool drops the connection: no ROLLBACK is sent
            conn.invalidate()
        conn.close()
        if ending == "closed":
            engine.dispose()

        # Then the file is free for the next writer of this process, who is let in at once
        assert not database._writers_of(str(tmp_path / "congvan.db"))._lock.locked()
        _writes_without_busy_wait(engine, 2)
        with engine.connect() as check:
            assert check.execute(text("SELECT x FROM t")).scalars().all() == [2]
    finally:
        engine.dispose()


def test_a_begin_refused_by_another_process_lets_the_next_writer_in(tmp_path: Path) -> None:
    # Given another process's write transaction on the file (here: a plain connection)
    path = tmp_path / "congvan.db"
    engine = _table(path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        # When a writer of ours is refused ("database is locked")
        with pytest.raises(OperationalError, match="locked"):
            _writes_without_busy_wait(engine, 1)
        holder.execute("ROLLBACK")
        # Then the turn it took is given back: the next writer is not kept waiting
        assert not database._writers_of(str(path))._lock.locked()
        _writes_without_busy_wait(engine, 2)
    finally:
        holder.close()
        engine.dispose()


def test_a_reader_does_not_wait_for_this_process_writer(tmp_path: Path) -> None:
    engine = _table(tmp_path / "congvan.db")
    try:
        with UnitOfWork(engine) as writer:
            writer.conn.execute(text("INSERT INTO t VALUES (1)"))
            with engine.connect() as conn, database.begin_readonly(conn):
                assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
            writer.commit()
    finally:
        engine.dispose()


def test_a_writer_queued_past_the_busy_timeout_is_told_the_database_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a write transaction of this process that stays open (as one waiting for
    # another process's lock would), and a short busy timeout
    monkeypatch.setattr(database, "BUSY_TIMEOUT_SECONDS", 0.2)
    engine = _table(tmp_path / "congvan.db")
    outcomes: list[Exception | None] = []
    try:
        with UnitOfWork(engine) as first:
            first.conn.execute(text("INSERT INTO t VALUES (1)"))
            # When another writer of this process waits its turn past that timeout
            thread = threading.Thread(target=_run, args=(outcomes, _writes, engine, 2))
            thread.start()
            thread.join()
            first.commit()
        # Then it is told the database is locked (as SQLite says it), not let in to wait
        # all over again in SQLite's busy handler; nothing it meant to write is there
        [refused] = outcomes
        assert isinstance(refused, OperationalError) and "locked" in str(refused)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM t")).scalars().all() == [1]
    finally:
        engine.dispose()


def _writes(engine: Engine, value: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": value})
