"""Fixtures for the HTTP API tests: the app on a seeded database, one token per role.

They build on the shared fixtures (tests/conftest.py): the runtime comes from ``boot`` with
the test's ``clock``, and the database is a copy of a template seeded with the directory of
``tests.factories.seed_directory``: agency A (the province) and agency B (a department) each
have one user per role, and each user one token. Nothing runs in the background: the runtime
is not started, so every answer is the request's own doing.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from congvan.storage.clock import FrozenClock
from congvan.workflow import directory
from congvan.workflow.api import create_app
from congvan.workflow.bootstrap import Runtime
from tests.conftest import Boot
from tests.databases import Databases
from tests.factories import LETTER, MAIN_PDF, A, B, seed_directory

__all__ = ["LETTER", "MAIN_PDF", "A", "Api", "B", "MakeApi", "assert_error", "sha256"]

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

    def by_a_role_it_takes(
        self, method: str, url: str, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        """The answer to a request by the first role of agency A that is not refused it
        (roles are judged before anything else a request says but its token)."""
        for role in self.tokens[A]:
            said = self.client.request(method, url, headers=self.auth(role, **headers), **kwargs)
            if said.status_code != 403:
                break
        return said

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


@pytest.fixture(scope="session")
def api_apps() -> dict[str, FastAPI]:
    """Apps already built, by the settings they were built with."""
    return {}


@pytest.fixture
def make_api(
    boot: Boot, databases: Databases, clock: FrozenClock, api_apps: dict[str, FastAPI]
) -> Iterator[MakeApi]:
    """Build the app on a fresh seeded database with ``boot``'s fakes and settings."""

    def app_for(runtime: Runtime) -> FastAPI:
        # FastAPI prepares its routes on an app's first request (~60 ms), so an app is
        # reused for the same settings: it reads its runtime from app.state per request.
        key = runtime.settings.model_dump_json(exclude={"data_dir", "database_url"})
        if key not in api_apps:
            api_apps[key] = create_app(runtime)
        api_apps[key].state.runtime = runtime
        return api_apps[key]

    clients: list[TestClient] = []

    def make(*, db_kind: str = "sqlite", **overrides: Any) -> Api:
        """The app on a fresh database of ``db_kind``; ``overrides`` go to ``boot``."""
        database = databases.new(db_kind, seed=seed_directory)
        runtime = boot(database.url, **overrides)
        client = TestClient(app_for(runtime))
        client.__enter__()  # one event loop thread for all of the test's requests
        clients.append(client)
        tokens, users = database.seeded
        return Api(runtime=runtime, client=client, clock=clock, tokens=tokens, users=users)

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)  # before ``boot`` stops the runtimes


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    """The app with default limits on SQLite."""
    return make_api()


@pytest.fixture
def make_api_any_db(make_api: MakeApi, db_kind: str) -> MakeApi:
    """``make_api`` on SQLite and on PostgreSQL (the test runs once on each)."""
    return functools.partial(make_api, db_kind=db_kind)


@pytest.fixture
def api_any_db(make_api_any_db: MakeApi) -> Api:
    """The app on SQLite and on PostgreSQL (which refuses some text SQLite takes)."""
    return make_api_any_db()
