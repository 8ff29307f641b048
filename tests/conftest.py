"""Shared fixtures: real databases (SQLite and PostgreSQL), a bootstrapped runtime, factories.

Every test that asks for ``db_url`` (or ``runtime``) runs twice: on a SQLite file and on a
fresh PostgreSQL database copied from a migrated template. The PostgreSQL server starts
once per session, and only when a PostgreSQL test runs; if its binaries are missing, those
tests fail rather than skip.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from congvan.actions.context import Actor, Effect, Guard, JobAction
from congvan.actions.signing import keywrap
from congvan.storage.clock import FrozenClock
from congvan.storage.database import make_engine
from congvan.storage.schema import migrate
from congvan.workflow.bootstrap import Runtime, bootstrap
from congvan.workflow.settings import Settings
from tests.factories import actor, add_agency, create_document
from tests.servers import start_postgres, start_redis
from tests.tools import require

# -- keys ------------------------------------------------------------------------------

# The suite makes hundreds of keys; at 600,000 PBKDF2 rounds each would cost about 0.5 s to
# make and unlock. Keys made in the test process use this; the CLI runs as a subprocess at the
# full cost, and a test that asks for ``full_kdf_cost`` gets it too.
TEST_KDF_ITERATIONS = 1_000


@pytest.fixture(autouse=True, scope="session")
def cheap_key_wrapping() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keywrap, "KDF_ITERATIONS", TEST_KDF_ITERATIONS)
        yield


@pytest.fixture
def full_kdf_cost(monkeypatch: pytest.MonkeyPatch) -> int:
    """Keys made during the test cost what they cost in service; returns that cost."""
    monkeypatch.setattr(keywrap, "KDF_ITERATIONS", keywrap.DEFAULT_KDF_ITERATIONS)
    return keywrap.DEFAULT_KDF_ITERATIONS


# -- databases ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "congvan.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One PostgreSQL server for the session; yields the URL of its admin database."""
    with start_postgres(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    """The name of a migrated database that each test's database is copied from."""
    name = "congvan_template"
    with _admin(postgres_server) as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(_with_database(postgres_server, name))
    migrate(engine)
    engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template to be idle
    return name


def _admin(server_url: str) -> Connection:
    engine = create_engine(
        make_url(server_url).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )
    return engine.connect()


def _with_database(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, migrated database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "congvan.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template")
    name = f"test_{uuid.uuid4().hex[:16]}"
    with _admin(server) as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _with_database(server, name)
    with _admin(server) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Redis server for the session (no persistence); yields its URL."""
    with start_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied: no message of an earlier test is left in a queue."""
    import redis

    client = redis.Redis.from_url(redis_server)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


# -- runtime -----------------------------------------------------------------------------

MakeRuntime = Callable[..., Runtime]


@pytest.fixture
def make_runtime(db_url: str, tmp_path: Path, clock: FrozenClock) -> Iterator[MakeRuntime]:
    """Bootstrap congvan on the test database with fakes; every runtime is stopped after."""
    started: list[Runtime] = []

    def make(
        *,
        guards: Mapping[str, Guard] | None = None,
        effects: Mapping[str, Effect] | None = None,
        jobs: Mapping[str, JobAction] | None = None,
        **settings: Any,
    ) -> Runtime:
        runtime = bootstrap(
            Settings(data_dir=tmp_path, database_url=db_url, **settings),
            clock=clock,
            guards=guards,
            effects=effects,
            jobs=jobs,
        )
        started.append(runtime)
        return runtime

    yield make
    for runtime in reversed(started):
        runtime.stop()


@pytest.fixture
def runtime(make_runtime: MakeRuntime) -> Runtime:
    """congvan as installed: review checks and signing, but no delivery yet."""
    return make_runtime()


@pytest.fixture
def make_agency() -> Callable[..., str]:
    return add_agency


@pytest.fixture
def make_actor() -> Callable[..., Actor]:
    return actor


@pytest.fixture
def make_document() -> Callable[..., str]:
    return create_document


@pytest.fixture
def openssl_installed() -> str:
    """The openssl program; fails (naming README's setup step) when it is missing."""
    return require("openssl")
