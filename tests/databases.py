"""Test databases: migrated templates made once per session, copied for each test.

A template is a migrated database, optionally seeded (the API tests' directory of agencies,
users and tokens). Copying it is much faster than migrating: a file copy on SQLite,
``CREATE DATABASE ... TEMPLATE`` on PostgreSQL.
"""

from __future__ import annotations

import copy
import itertools
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from congvan.storage.clock import FrozenClock
from congvan.storage.database import make_engine
from congvan.storage.schema import migrate
from congvan.storage.unit_of_work import UnitOfWork

Seed = Callable[[UnitOfWork, datetime], Any]
"""Fills a migrated template; what it returns is handed to every copy (e.g. its tokens)."""


@dataclass(frozen=True)
class Database:
    """A fresh database of one test, and what its template's seed returned."""

    url: str
    seeded: Any = None


class Templates:
    """The session's migrated (and seeded) databases, made on first use, by kind and seed."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._sqlite: dict[Seed | None, tuple[Path, Any]] = {}
        self._postgres: dict[Seed | None, tuple[str, Any]] = {}

    def sqlite(self, seed: Seed | None) -> tuple[Path, Any]:
        """The template file for ``seed``, and what the seed returned."""
        if seed not in self._sqlite:
            path = self._directory / f"sqlite-{len(self._sqlite)}.db"
            engine = make_engine(f"sqlite:///{path}")
            seeded = _prepare(engine, seed)
            engine.dispose()  # the last connection checkpoints the WAL into the file
            self._sqlite[seed] = path, seeded
        return self._sqlite[seed]

    def postgres(self, server: str, seed: Seed | None) -> tuple[str, Any]:
        """The name of the template database for ``seed``, and what the seed returned."""
        if seed not in self._postgres:
            name = f"congvan_template_{len(self._postgres)}"
            with admin(server) as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            engine = make_engine(with_database(server, name))
            seeded = _prepare(engine, seed)
            engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template to be idle
            self._postgres[seed] = name, seeded
        return self._postgres[seed]


def _prepare(engine: Engine, seed: Seed | None) -> Any:
    migrate(engine)
    if seed is None:
        return None
    with UnitOfWork(engine) as uow:
        seeded = seed(uow, FrozenClock()())  # the time every test's clock starts at
        uow.commit()
    return seeded


class Databases:
    """Fresh databases for one test: copies of templates, or empty ones; dropped after."""

    def __init__(
        self, templates: Templates, directory: Path, postgres_server: Callable[[], str]
    ) -> None:
        self._templates = templates
        self._directory = directory
        self._postgres_server = postgres_server
        self._numbers = itertools.count()
        self._made: list[str] = []

    def new(self, kind: str = "sqlite", *, seed: Seed | None = None) -> Database:
        """A migrated database of ``kind`` ("sqlite" or "postgres"), seeded by ``seed``."""
        if kind == "sqlite":
            template, seeded = self._templates.sqlite(seed)
            path = self._directory / f"congvan-{next(self._numbers)}.db"
            shutil.copyfile(template, path)
            url = f"sqlite:///{path}"
        else:
            server = self._postgres_server()
            template, seeded = self._templates.postgres(server, seed)
            url = self._create(server, f'TEMPLATE "{template}"')
        self._made.append(url)
        return Database(url, copy.deepcopy(seeded))

    def empty(self, kind: str = "sqlite") -> str:
        """The URL of an empty database of ``kind``: no table, not even alembic_version."""
        if kind == "sqlite":
            url = f"sqlite:///{self._directory / f'empty-{next(self._numbers)}.db'}"
        else:
            url = self._create(self._postgres_server(), "")
        self._made.append(url)
        return url

    def drop(self, url: str) -> None:
        """Remove the database at ``url``; its connections must be closed (or are cut)."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            path = Path(str(parsed.database))
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        else:
            with admin(url) as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))

    def drop_all(self) -> None:
        """Drop the PostgreSQL databases made (SQLite files go with the test's tmp_path)."""
        for url in self._made:
            if make_url(url).get_backend_name() != "sqlite":
                self.drop(url)
        self._made.clear()

    def _create(self, server: str, options: str) -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        with admin(server) as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" {options}'))
        return with_database(server, name)


def admin(url: str) -> Connection:
    """A connection to the server of ``url``, outside any database's transactions."""
    engine = create_engine(
        make_url(url).set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )
    return engine.connect()


def with_database(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)
