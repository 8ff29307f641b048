"""Pooled PostgreSQL connections: pinged when idle a while, replaced when dropped."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from congvan.storage import database
from congvan.storage.database import make_engine

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
