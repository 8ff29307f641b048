"""A database that is down or not migrated: every route that reads it answers 503 with a code.

The app is built as the server builds it, but without the start-up schema check, as if the
database went away (or was replaced by an empty one) while the server ran.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from congvan.storage import database
from congvan.workflow.api import create_app
from congvan.workflow.serving import free_port
from tests.api.conftest import Api, assert_error
from tests.conftest import Boot
from tests.databases import Databases

MakeClient = Callable[[str], TestClient]

# A request for every route that reads the database; each carries a (made-up) token.
READS = [
    ("get", "/v1/health"),
    ("get", "/v1/pki/crl"),
    ("get", "/v1/documents"),
    ("get", "/v1/documents/some-id"),
    ("get", "/v1/agencies"),
    ("get", "/v1/review-queue"),
    ("post", "/v1/documents/some-id/events/submit"),
]


@pytest.fixture
def client_for(boot: Boot) -> Iterator[MakeClient]:
    """A test client of the app on ``database_url``, its schema unchecked at start."""
    opened: list[TestClient] = []

    def make(database_url: str) -> TestClient:
        runtime = boot(database_url, check_schema=False)
        opened.append(TestClient(create_app(runtime), raise_server_exceptions=False))
        return opened[-1]

    yield make
    for client in opened:
        client.close()  # before ``boot`` stops the runtimes


def _answers(client: TestClient) -> list[tuple[str, Any]]:
    headers = {"Authorization": "Bearer not-looked-up-yet"}
    answers = [(path, client.request(m, path, headers=headers)) for m, path in READS]
    create = client.post(
        "/v1/documents",
        headers=headers,
        data={"metadata": '{"doc_type": "CV", "subject": "x"}'},
        files=[("main", ("a.pdf", b"%PDF-1.4", "application/pdf"))],
    )
    return [*answers, ("/v1/documents (create)", create)]


def test_a_database_that_is_down_is_503_database_unavailable(client_for: MakeClient) -> None:
    # Given a server whose PostgreSQL does not answer (nothing listens on its port)
    client = client_for(f"postgresql://congvan:secret@127.0.0.1:{free_port()}/congvan")
    # When each route is asked
    for path, response in _answers(client):
        # Then it is 503 database_unavailable, with when to try again, and no secret
        assert {} == assert_error(response, 503, "database_unavailable"), path
        assert "10" == response.headers["Retry-After"], path
        assert "secret" not in response.text and "127.0.0.1" not in response.text


def test_a_database_not_migrated_is_503_database_not_migrated(
    client_for: MakeClient, databases: Databases, tmp_path: Path
) -> None:
    # Given a server whose SQLite file is empty: never migrated
    client = client_for(databases.empty())
    for path, response in _answers(client):
        if path == "/v1/health":  # alive, and says what is wrong
            assert "outdated" == response.json()["schema"]
            continue
        # Then each route says so, naming the revision wanted but not the database
        details = assert_error(response, 503, "database_not_migrated")
        assert None is details["current"] and details["head"], path
        assert "congvan migrate" in response.json()["message"]
        assert str(tmp_path) not in response.text, path


def test_every_route_that_reads_the_database_declares_503(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    without = [
        (method, path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "503" not in operation["responses"]
    ]
    assert [("get", "/v1/pki/roots")] == without  # the pinned roots are files, not rows
    answer = spec["paths"]["/v1/documents"]["get"]["responses"]["503"]
    assert "Retry-After" in answer["headers"]


def test_a_database_another_process_writes_to_still_answers_reads_and_health(
    client_for: MakeClient, databases: Databases
) -> None:
    # Given a server on a SQLite file another process holds a write transaction on
    db = databases.new("sqlite")
    client = client_for(db.url)
    holder = sqlite3.connect(make_url(db.url).database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        # When the health check and a read are asked: Then they answer, never queued
        # behind the file's writers (WAL lets readers in beside the writer)
        health = client.get("/v1/health")
        assert health.status_code == 200, health.text
        assert health.json()["database"] == "ok"
        read = client.get("/v1/documents", headers={"Authorization": "Bearer unknown"})
        assert_error(read, 401, "unauthenticated")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_every_connection_of_the_pool_taken_is_503_not_500(
    client_for: MakeClient, databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a server whose connections are all taken (writers queued behind another
    # process would hold them), and a pool that waits for one only briefly
    monkeypatch.setattr(database, "SQLITE_OVERFLOW", 0)
    client = client_for(databases.new("sqlite").url)
    engine = client.app.state.runtime.db  # type: ignore[attr-defined]
    engine.pool._timeout = 0.05
    taken = [engine.connect() for _ in range(engine.pool.size() + engine.pool._max_overflow)]
    try:
        # When a route needs one
        answer = client.get("/v1/documents", headers={"Authorization": "Bearer unknown"})
        # Then it is 503 database_unavailable (try again), with when to
        details = assert_error(answer, 503, "database_unavailable")
        assert details["reason"] == "pool_exhausted"
        assert answer.headers["Retry-After"] == "10"
    finally:
        for conn in taken:
            conn.close()


def test_a_full_disk_is_said_as_such_and_reads_go_on(api: Api) -> None:
    # Given a draft, then a database whose file may grow no further (SQLite answers
    # SQLITE_FULL, "database or disk is full", as on a disk with no room left)
    from sqlalchemy import event

    doc_id = api.draft()["id"]
    engine = api.runtime.db
    if engine.dialect.name != "sqlite":
        pytest.fail("the api fixture runs on SQLite")

    @event.listens_for(engine, "connect")
    def _no_room(dbapi_connection: Any, _record: Any) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    engine.dispose()  # every connection from now on is made so
    # When a clerk writes (a new draft with a file of 1 MiB, past the pages left free)
    big = b"%PDF-1.4\n" + b"%" * (1024 * 1024) + b"\n%%EOF\n"
    answer = api.create(files=[("main", ("big.pdf", big, "application/pdf"))])
    # Then it is 503 database_unavailable saying why, nothing kept, and reads still answer
    details = assert_error(answer, 503, "database_unavailable")
    assert details == {"reason": "disk_full"}
    assert "disk is full" in answer.json()["message"]
    listed = api.get("/v1/documents").json()["items"]
    assert [doc_id] == [d["id"] for d in listed]
