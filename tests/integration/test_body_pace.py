"""A request body that stops coming, or comes too slowly, is dropped (408), and the inbox,
which anybody may post to, reads only so many packages at once (503): over a real server,
clients speaking raw HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

from congvan.workflow.api import create_app
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.serving import serve_in_thread

PACED = {"body_idle_seconds": 0.5, "body_min_bytes_per_second": 4096, "inbox_concurrency": 1}


def _head(path: str, length: int) -> bytes:
    media_type = "application/zip" if path == "/v1/inbox" else "application/json"
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {media_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@contextmanager
def _connected(base: str) -> Iterator[socket.socket]:
    host, port = urlsplit(base).hostname, urlsplit(base).port
    with socket.create_connection((str(host), int(port or 80)), timeout=10) as conn:
        yield conn


def _answer(conn: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """The status, headers and JSON body the server answered; then it closed."""
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.fixture
def paced(make_runtime: Callable[..., Runtime]) -> Iterator[str]:
    with serve_in_thread(create_app(make_runtime(**PACED))) as base:
        yield base


@pytest.mark.parametrize("path", ["/v1/inbox", "/v1/status"])
def test_a_body_that_stops_coming_is_dropped_and_its_connection_closed(
    paced: str, path: str
) -> None:
    # Given a client that declares 100 kB, sends 10 bytes, and then nothing
    with _connected(paced) as conn:
        conn.sendall(_head(path, 100_000) + b"PK\x03\x04" + b"\0" * 6)

        # Then the server answers 408 once no byte came for the idle time, and closes
        status, headers, body = _answer(conn)
    assert (status, body["code"]) == (408, "request_timeout")
    assert body["details"] == {"received_bytes": 10, "idle_seconds": 0.5}
    assert headers["connection"] == "close"


def test_a_body_trickling_in_below_the_pace_is_dropped(paced: str) -> None:
    # Given a client sending a byte every 0.3 s: never idle, far slower than 4 kB/s
    with _connected(paced) as conn:
        conn.sendall(_head("/v1/inbox", 100_000))
        conn.settimeout(0.3)
        sent = 0
        answer = b""
        while not answer and sent < 40:
            conn.sendall(b"x")
            sent += 1
            try:
                answer = conn.recv(65536)
            except TimeoutError:
                continue
        conn.settimeout(10)
        while chunk := conn.recv(65536):
            answer += chunk

    # Then it is dropped soon after the idle time, as too slow
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert answer.startswith(b"HTTP/1.1 408 ") and sent < 10, (sent, answer[:200])
    assert (body["code"], body["details"]["min_bytes_per_second"]) == ("request_timeout", 4096)


def test_the_inbox_reads_so_many_packages_at_once_and_answers_the_next_busy(paced: str) -> None:
    # Given a package coming in slowly (the inbox reads one at a time here)
    with _connected(paced) as first:
        first.sendall(_head("/v1/inbox", 100_000) + b"PK")
        time.sleep(0.1)

        # When another comes meanwhile, it is answered 503 server_busy at once, unread
        with _connected(paced) as second:
            second.sendall(_head("/v1/inbox", 100_000) + b"PK")
            status, headers, body = _answer(second)
        assert (status, body["code"]) == (503, "server_busy")
        assert int(headers["retry-after"]) > 0
        assert headers["connection"] == "close"  # its body unread

        # and once the first is dropped, the inbox reads the next
        assert _answer(first)[0] == 408
    with _connected(paced) as third:
        third.sendall(_head("/v1/inbox", 4) + b"PK\x03\x04")
        status, _, body = _answer_or_keep(third)
    assert status == 422, body


def _answer_or_keep(conn: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """The first answer on a connection the server may keep open: read up to its body."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += conn.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += conn.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_an_answer_to_a_request_read_whole_keeps_the_connection(paced: str) -> None:
    # Given one connection, and requests whose body (none, or a refused status) was read
    with _connected(paced) as conn:
        answers = []
        for request in (
            b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
            _head("/v1/status", 2) + b"{}",
            b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
        ):
            conn.sendall(request)
            answers.append(_answer_or_keep(conn))

    # Then each is answered on it in turn, none closing it
    assert [(a[0], "connection" in a[1]) for a in answers] == [
        (200, False),
        (422, False),
        (200, False),
    ]
