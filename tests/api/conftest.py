"""Fixtures for the HTTP API tests: a migrated database, two agencies, one token per role.

Names here (``make_api``, ``api``, ``api_any_db``, ...) differ from those of
``tests/conftest.py`` on purpose, so the two sets never shadow each other.

Agency A (the province) and agency B (a department) each have one user per role, and each
user one token. Nothing runs in the background: the runtime is not started, so every
answer is the request's own doing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from congvan.actions.context import Effect, Guard, JobAction
from congvan.states.policy import ROLES
from congvan.storage.clock import FrozenClock
from congvan.storage.database import make_engine
from congvan.storage.schema import migrate
from congvan.storage.unit_of_work import UnitOfWork
from congvan.workflow import directory
from congvan.workflow.api import create_app
from congvan.workflow.bootstrap import Runtime, bootstrap
from congvan.workflow.settings import Settings

A = "000.00.00.H57"  # Ủy ban nhân dân tỉnh Thừa Thiên Huế
B = "000.00.11.H57"  # Sở Nội vụ tỉnh Thừa Thiên Huế
AGENCIES = {A: ("Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND"), B: ("Sở Nội vụ", "SNV")}

# Letter 1227/UBND-TĐKT as a clerk enters it.
LETTER: dict[str, Any] = {
    "number": 1227,
    "symbol": "UBND-TĐKT",
    "doc_type": "CV",
    "subject": "V/v tăng cường gửi, nhận văn bản điện tử giữa các cơ quan hành chính nhà nước",
    "place": "Thừa Thiên Huế",
    "issued_on": "2021-02-06",
    "signer_name": "Nguyễn Văn Phương",
    "signer_position": "PHÓ CHỦ TỊCH",
    "signer_competence": "KT. CHỦ TỊCH",
    "urgency": 0,
    "recipients": [
        {"organ_id": B, "name": "Sở Nội vụ tỉnh Thừa Thiên Huế"},
        {"organ_id": "000.00.31.H57", "name": "UBND thành phố Huế"},
    ],
}
MAIN_PDF = b"%PDF-1.4\n% 1227/UBND-TDKT\n" + bytes(range(256))

ERROR_KEYS = {"code", "message", "details"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check an error answer's status, shape and code; return its details."""
    assert (response.status_code, response.json().get("code")) == (status, code), response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    return dict(body["details"])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Api:
    """A client for the app, tokens by agency and role, and helpers for common calls."""

    runtime: Runtime
    client: TestClient
    clock: FrozenClock
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)

    def auth(self, role: str = "clerk", agency: str = A, **headers: str) -> dict[str, str]:
        """Headers carrying the token of ``role`` in ``agency`` (plus ``headers``)."""
        return {"Authorization": f"Bearer {self.tokens[agency][role]}", **headers}

    def create(
        self,
        *,
        role: str = "clerk",
        agency: str = A,
        metadata: Mapping[str, Any] | str | None = None,
        files: Sequence[tuple[str, tuple[str, bytes, str]]] | None = None,
        headers: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> httpx.Response:
        """POST a draft: ``metadata`` (or LETTER with ``overrides``) and ``files``."""
        if metadata is None:
            metadata = {**LETTER, **overrides}
        if not isinstance(metadata, str):
            metadata = json.dumps(metadata, ensure_ascii=False)
        if files is None:
            files = [("main", ("1227-UBND-TDKT.pdf", MAIN_PDF, "application/pdf"))]
        return self.client.post(
            "/v1/documents",
            headers=self.auth(role, agency, **(headers or {})),
            data={"metadata": metadata},
            files=list(files),
        )

    def draft(self, agency: str = A, **overrides: Any) -> dict[str, Any]:
        """A new draft's view; fails the test unless it was created."""
        response = self.create(agency=agency, **overrides)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def fire(
        self,
        document_id: str,
        event: str,
        *,
        role: str = "clerk",
        agency: str = A,
        body: Any = None,
        if_match: str | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        headers = self.auth(role, agency)
        if if_match is not None:
            headers["If-Match"] = if_match
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post(
            f"/v1/documents/{document_id}/events/{event}", headers=headers, json=body
        )

    def get(self, path: str, *, role: str = "clerk", agency: str = A, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.auth(role, agency), **kwargs)

    def raw(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]], body: bytes = b""
    ) -> httpx.Response:
        """A request whose header bytes reach the app untouched (TestClient re-encodes them)."""

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                request = client.build_request(method, path, content=body)
                request.headers = httpx.Headers([*request.headers.raw, *headers])
                return await client.send(request)

        return anyio.run(send)

    def version(self, document_id: str, agency: str = A) -> int:
        response = self.get(f"/v1/documents/{document_id}", agency=agency)
        assert response.status_code == 200, response.text
        return int(response.json()["version"])

    def new_token(self, role: str, agency: str = A, expires_in_days: int | None = None) -> Any:
        """Another token for the user of ``role`` in ``agency`` (an IssuedToken)."""
        with self.runtime.uow() as uow:
            issued = directory.create_token(
                uow, self.users[agency][role], self.clock(), expires_in_days=expires_in_days
            )
            uow.commit()
        return issued


MakeApi = Callable[..., Api]
Directory = tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]


def seed_directory(uow: UnitOfWork, now: datetime) -> Directory:
    """Agencies A and B, one user per role in each, one token per user: (tokens, users)."""
    tokens: dict[str, dict[str, str]] = {}
    users: dict[str, dict[str, str]] = {}
    for agency, (name, abbreviation) in AGENCIES.items():
        directory.add_agency(uow, agency, name, abbreviation, now)
        tokens[agency], users[agency] = {}, {}
        for role in ROLES:
            users[agency][role] = directory.ensure_user(uow, agency, role, [role], now)
            tokens[agency][role] = directory.create_token(uow, users[agency][role], now).token
    return tokens, users


@pytest.fixture(scope="session")
def api_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Directory]:
    """A migrated and seeded SQLite file, copied for each test, and its tokens."""
    path = tmp_path_factory.mktemp("api-sqlite-template") / "congvan.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with UnitOfWork(engine) as uow:
        seeded = seed_directory(uow, FrozenClock()())  # the time every test's clock starts at
        uow.commit()
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path, seeded


@pytest.fixture(scope="session")
def api_apps() -> dict[str, FastAPI]:
    """Apps already built, by the settings they were built with."""
    return {}


@pytest.fixture
def make_api(
    tmp_path: Path,
    api_sqlite_template: tuple[Path, Directory],
    api_apps: dict[str, FastAPI],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[MakeApi]:
    """Build the app on a fresh database with ``Settings`` overrides; stopped after."""

    def app_for(runtime: Runtime) -> FastAPI:
        # FastAPI prepares its routes on an app's first request (~60 ms), so an app is
        # reused for the same settings: it reads its runtime from app.state per request.
        key = runtime.settings.model_dump_json(exclude={"data_dir", "database_url"})
        if key not in api_apps:
            api_apps[key] = create_app(runtime)
        api_apps[key].state.runtime = runtime
        return api_apps[key]

    for name in list(os.environ):
        if name.startswith("CONGVAN_"):  # the tests choose every setting themselves
            monkeypatch.delenv(name)
    built: list[tuple[Runtime, TestClient]] = []

    def make(
        *,
        database_url: str | None = None,
        guards: Mapping[str, Guard] | None = None,
        effects: Mapping[str, Effect] | None = None,
        jobs: Mapping[str, JobAction] | None = None,
        **settings: Any,
    ) -> Api:
        """The app on a fresh database; ``guards``, ``effects`` and ``jobs`` add fakes."""
        seeded: Directory | None = None
        if database_url is None:
            template, seeded = api_sqlite_template
            path = tmp_path / f"congvan-{len(built)}.db"
            shutil.copyfile(template, path)
            database_url = f"sqlite:///{path}"
        clock = FrozenClock()
        # No fsync per commit: these tests are about answers, not about power cuts.
        settings.setdefault("sqlite_synchronous", "NORMAL")
        runtime = bootstrap(
            Settings(data_dir=tmp_path, database_url=database_url, **settings),
            clock=clock,
            guards=guards,
            effects=effects,
            jobs=jobs,
        )
        client = TestClient(app_for(runtime))
        client.__enter__()  # one event loop thread for all of the test's requests
        built.append((runtime, client))
        if seeded is None:
            with runtime.uow() as uow:
                seeded = seed_directory(uow, clock())
                uow.commit()
        tokens, users = copy.deepcopy(seeded)
        return Api(runtime=runtime, client=client, clock=clock, tokens=tokens, users=users)

    yield make
    for runtime, client in reversed(built):
        client.__exit__(None, None, None)
        runtime.stop()


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    """The app with default limits on SQLite."""
    return make_api()


def _admin(server_url: str) -> Any:
    engine = create_engine(
        make_url(server_url).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )
    return engine.connect()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_api_any_db(request: pytest.FixtureRequest, make_api: MakeApi) -> Iterator[MakeApi]:
    """``make_api`` on SQLite and on PostgreSQL; call it once per test (one database)."""
    if request.param == "sqlite":
        yield make_api
        return
    # The session's server and migrated template come from tests/conftest.py.
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template")
    name = f"api_{uuid.uuid4().hex[:16]}"
    with _admin(server) as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    built: list[Api] = []

    def make(**settings: Any) -> Api:
        built.append(make_api(database_url=url, **settings))
        return built[-1]

    yield make
    for api in built:
        api.runtime.db.dispose()  # make_api stops the runtime only after this teardown
    with _admin(server) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def api_any_db(make_api_any_db: MakeApi) -> Api:
    """The app on SQLite and on PostgreSQL (which refuses some text SQLite takes)."""
    return make_api_any_db()
