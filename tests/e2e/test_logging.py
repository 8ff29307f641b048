"""Log lines carry their context and never a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from fastapi.testclient import TestClient

from congvan.storage.database import make_engine
from congvan.storage.schema import migrate
from congvan.workflow.api import create_app
from congvan.workflow.bootstrap import bootstrap
from congvan.workflow.directory import add_agency, create_token, ensure_user
from congvan.workflow.logs import configure_logging
from congvan.workflow.settings import Settings

AGENCY = "000.00.00.H57"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    yield stream
    logging.getLogger().handlers[:] = []
    structlog.reset_defaults()


def test_requests_log_json_with_context_and_no_token(
    json_logs: io.StringIO, tmp_path: Path
) -> None:
    # Given a running API and a clerk's token
    settings = Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL")
    migrate(make_engine(settings.db_url))
    runtime = bootstrap(settings)
    with runtime.uow() as uow:
        add_agency(uow, AGENCY, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND", runtime.clock())
        user = ensure_user(uow, AGENCY, "vanthu", ["clerk"], runtime.clock())
        token = create_token(uow, user, runtime.clock()).token
        uow.commit()
    client = TestClient(create_app(runtime))
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "req-42"}

    # When the clerk creates and edits a document, and a secret is logged by mistake
    created = client.post(
        "/v1/documents",
        headers=headers,
        data={"metadata": json.dumps({"doc_type": "CV", "subject": "V/v thử"})},
    )
    doc_id = created.json()["id"]
    edited = client.post(
        f"/v1/documents/{doc_id}/events/edit",
        headers=headers,
        json={"fields": {"subject": "V/v sửa"}},
    )
    logging.getLogger("congvan.test").warning(
        "oops", extra={"action": "test.leak", "api_token": token}
    )
    runtime.stop()

    # Then every line is JSON with a stable action, the request's context is bound,
    # and the token appears nowhere
    assert (201, 200) == (created.status_code, edited.status_code)
    assert edited.headers["X-Request-ID"] == "req-42"
    err = json_logs.getvalue()
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    transitions = [x for x in lines if x.get("action") == "document.transition"]
    assert transitions, err
    assert {"req-42"} == {x["request_id"] for x in transitions}
    assert {AGENCY} == {x["agency"] for x in transitions}
    assert doc_id == transitions[0]["document_id"]
    leak = next(x for x in lines if x.get("action") == "test.leak")
    assert leak["api_token"] == "[redacted]"
    assert token not in err
    assert token[4:20] not in err


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_a_posts_url_never_reaches_the_log_at_any_level(level: str) -> None:
    # A webhook's query may hold its receiver's token; the HTTP client logs every URL
    import httpx

    stream = io.StringIO()
    configure_logging(level, json=True, stream=stream)
    try:
        answer = httpx.Response(200, text="ok")
        with httpx.Client(transport=httpx.MockTransport(lambda _request: answer)) as client:
            client.post("http://receiver.example.vn/hook?token=RECEIVER-TOKEN-42", content=b"x")
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    assert "RECEIVER-TOKEN-42" not in stream.getvalue()


def test_a_librarys_chatter_and_terminal_colours_stay_out_of_the_log(
    json_logs: io.StringIO,
) -> None:
    # fontTools narrates each glyph it keeps at INFO; uvicorn adds a coloured copy of its
    # lines (a logger of ours stands for it: uvicorn's own may be set apart by a server
    # another test ran)
    logging.getLogger("fontTools.subset").info("Glyph names: ['.notdef', 'A', 'B']")
    logging.getLogger("congvan.tests.server").info(
        "Started server process [%d]", 42, extra={"color_message": "\x1b[1mStarted\x1b[0m"}
    )

    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["Started server process [42]"]
    assert "color_message" not in lines[0]


@pytest.mark.parametrize("origin", ["stdlib", "structlog"])
def test_an_error_logged_with_its_exception_carries_its_traceback_as_text(
    json_logs: io.StringIO, origin: str
) -> None:
    # Given an error a library (stdlib logging) or congvan (structlog) logs with its
    # exception, as dramatiq's consumer and the scheduler's passes do
    def fails() -> None:
        raise RuntimeError("DB index is out of range")

    try:
        fails()
    except RuntimeError:
        if origin == "stdlib":
            logging.getLogger("dramatiq.worker").critical("Consumer failed.", exc_info=True)
        else:
            structlog.get_logger("congvan.test").error("pass failed", exc_info=True)

    # Then its JSON line holds the exception's message and where it was raised, as text
    [line] = [json.loads(x) for x in json_logs.getvalue().splitlines()]
    assert "exc_info" not in line
    assert "RuntimeError: DB index is out of range" in line["exception"]
    assert "in fails" in line["exception"] and "Traceback" in line["exception"]


def test_a_failed_statements_values_never_reach_an_errors_text(tmp_path: Path) -> None:
    # Given the engine congvan makes, and a statement that fails holding a secret value
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    secret = "a-webhook-secret-0123456789"
    try:
        with engine.connect() as conn, pytest.raises(Exception) as caught:
            conn.exec_driver_sql("INSERT INTO no_such_table VALUES (?)", (secret,))
    finally:
        engine.dispose()

    # Then the error says what failed, not with which values (its traceback is logged)
    assert "no_such_table" in str(caught.value)
    assert secret not in str(caught.value)


def test_a_broker_out_of_reach_is_one_warning_in_plain_words_not_a_stream_of_criticals(
    json_logs: io.StringIO,
) -> None:
    # Given a worker's four consumers losing Redis, each saying so every few seconds
    consumers = [logging.getLogger(f"dramatiq.worker.ConsumerThread(q{i})") for i in range(4)]
    for _ in range(3):
        for consumer in consumers:
            consumer.critical(
                "Consumer encountered a connection error: %s", "Error 111 connecting to Redis"
            )
            consumer.info("Restarting consumer in %0.2f seconds.", 3.0)
    # and one failing otherwise, which stays as it is
    consumers[0].critical("Consumer encountered an unexpected error.")

    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    # Then the outage is one warning that says what it means; the other error stands
    assert [(line["level"], line.get("action")) for line in lines] == [
        ("warning", "broker.unreachable"),
        ("critical", None),
    ]
    assert "not reachable" in lines[0]["event"] and "Error 111" in lines[0]["event"]
