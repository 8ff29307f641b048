"""Shared fixtures: real databases (SQLite and PostgreSQL), a bootstrapped runtime, factories.

Every database is a copy of a migrated template (``databases``); ``boot`` is the one way to
build a runtime, with the test's ``clock``. Every test that asks for ``db_url`` (or
``runtime``, ``make_runtime``) runs twice: on a SQLite file and on a PostgreSQL database.
The PostgreSQL server starts once per session, and only when a PostgreSQL test runs; if its
binaries are missing, those tests fail rather than skip. The API tests build on ``boot``
too (tests/api/conftest.py).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from congvan.actions.checks import Check
from congvan.actions.context import Actor, Effect, Guard, JobAction
from congvan.actions.signing import keywrap
from congvan.storage.clock import FrozenClock
from congvan.workflow.bootstrap import Runtime, bootstrap
from congvan.workflow.settings import Settings
from tests.databases import Databases, Templates
from tests.factories import actor, add_agency, create_document
from tests.servers import start_postgres, start_redis
from tests.tools import require

# -- test ids ----------------------------------------------------------------------------

# pytest puts the running test's id in the environment (PYTEST_CURRENT_TEST), and Linux
# refuses to start a program when one environment string is over 128 KiB: a parameter of
# 60,000 bytes, shown as \x00 each, made every subprocess of that test -- and the session
# fixtures' teardown when it ran last (pg_ctl stop) -- fail with E2BIG.
LONGEST_ID = 40


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A long text or bytes parameter is named by its type, length and digest, not itself."""
    if isinstance(val, str | bytes) and len(val) > LONGEST_ID:
        data = val.encode("utf-8", "surrogatepass") if isinstance(val, str) else val
        return f"{type(val).__name__}{len(val)}-{hashlib.sha256(data).hexdigest()[:8]}"
    return None


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


@pytest.fixture(autouse=True)
def own_log_handlers() -> Iterator[None]:
    """Each test starts and ends with the root logger as it found it.

    A command run in-process (``serve``, ``demo``) or a logging test puts its own handler on
    the root logger, writing to that test's captured stream; left there, it would write a
    later test's records to a closed stream ("--- Logging error ---" in that test's stderr).
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def full_kdf_cost(monkeypatch: pytest.MonkeyPatch) -> int:
    """Keys made during the test cost what they cost in service; returns that cost."""
    monkeypatch.setattr(keywrap, "KDF_ITERATIONS", keywrap.DEFAULT_KDF_ITERATIONS)
    return keywrap.DEFAULT_KDF_ITERATIONS


# -- databases ---------------------------------------------------------------------------

DB_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One PostgreSQL server for the session; yields the URL of its admin database."""
    with start_postgres(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    """The session's migrated databases that each test's databases are copied from."""
    return Templates(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def databases(
    request: pytest.FixtureRequest, templates: Templates, tmp_path: Path
) -> Iterator[Databases]:
    """Fresh databases for this test; PostgreSQL's server starts on the first one asked."""
    made = Databases(templates, tmp_path, lambda: str(request.getfixturevalue("postgres_server")))
    yield made
    made.drop_all()


@pytest.fixture(params=DB_KINDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    """Each kind of database in turn: the test runs once on each."""
    return str(request.param)


@pytest.fixture
def db_url(databases: Databases, db_kind: str) -> str:
    """The URL of a fresh, migrated database of each kind."""
    return databases.new(db_kind).url


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
    """The test's time; every runtime of the test reads it."""
    return FrozenClock()


# -- runtime -----------------------------------------------------------------------------

Boot = Callable[..., Runtime]
MakeRuntime = Callable[..., Runtime]


@pytest.fixture
def boot(
    databases: Databases, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Boot]:
    """Bootstrap congvan on a database URL with fakes; every runtime is stopped after.

    The one place tests build a runtime: ``make_runtime`` binds it to ``db_url``, and the API
    fixtures to a database seeded with their directory. Runtimes read the test's ``clock``
    unless given another (the engine walk gives each example its own).
    """
    for name in list(os.environ):
        if name.startswith("CONGVAN_"):  # the tests choose every setting themselves
            monkeypatch.delenv(name)
    started: list[Runtime] = []

    def make(
        database_url: str,
        *,
        guards: Mapping[str, Guard] | None = None,
        effects: Mapping[str, Effect] | None = None,
        jobs: Mapping[str, JobAction] | None = None,
        checks: Sequence[Check] | None = None,
        clock: FrozenClock = clock,
        check_schema: bool = True,
        **settings: Any,
    ) -> Runtime:
        # No fsync per commit: durability across power cuts is not under test.
        settings.setdefault("sqlite_synchronous", "NORMAL")
        # The tests' webhook receivers listen on this machine.
        settings.setdefault("notify_private_networks", ["127.0.0.0/8", "::1/128"])
        runtime = bootstrap(
            Settings(data_dir=tmp_path, database_url=database_url, **settings),
            clock=clock,
            guards=guards,
            effects=effects,
            jobs=jobs,
            checks=checks,
            check_schema=check_schema,
        )
        started.append(runtime)
        return runtime

    yield make
    for runtime in reversed(started):
        runtime.stop()  # before ``databases`` drops what they were connected to


@pytest.fixture
def make_runtime(boot: Boot, db_url: str) -> MakeRuntime:
    """congvan on the test's database of each kind; takes ``boot``'s fakes and settings."""
    return functools.partial(boot, db_url)


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
