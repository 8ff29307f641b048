"""The request target in each of its forms (RFC 9112 3.2), over a real server: a server
must accept the absolute form (``GET http://host/path``), as a proxy sends it."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from congvan.workflow.api import create_app
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.serving import serve_in_thread


def _ask(base: str, target: str) -> bytes:
    return _raw(base, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())


@pytest.mark.parametrize(
    "target",
    ["/v1/health", "http://x/v1/health", "https://x:8443/v1/health", "http://x/v1/%68ealth"],
)
def test_the_absolute_form_is_answered_as_the_path_it_names(runtime: Runtime, target: str) -> None:
    with serve_in_thread(create_app(runtime)) as base:
        answer = _ask(base, target)
    status = answer.split(b"\r\n", 1)[0]
    assert status == b"HTTP/1.1 200 OK", answer[:300]
    assert b'"status"' in answer


def _raw(base: str, head: bytes) -> bytes:
    host, port = urlsplit(base).hostname, urlsplit(base).port
    with socket.create_connection((str(host), int(port or 80)), timeout=10) as conn:
        conn.sendall(head)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "head",
    [
        b"GET /v1/documents?subject=a b HTTP/1.1\r\nHost: x\r\n\r\n",  # a raw space
        "GET /v1/documents?subject=thư HTTP/1.1\r\nHost: x\r\n\r\n".encode(),  # raw UTF-8
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",  # two hosts
        b"BREW /v1/health HTCPCP/1.0\r\n\r\n",
    ],
)
def test_a_request_the_server_cannot_read_is_answered_in_the_apis_error_shape(
    runtime: Runtime, head: bytes
) -> None:
    # Refused by the HTTP parser before the app runs, it is still answered as the API answers
    with serve_in_thread(create_app(runtime)) as base:
        answer = _raw(base, head)
    status, rest = answer.split(b"\r\n", 1)
    headers, body = rest.split(b"\r\n\r\n", 1)
    assert status == b"HTTP/1.1 400 Bad Request", answer[:300]
    assert b"content-type: application/json" in headers.lower()
    error = json.loads(body)
    assert ("bad_request", {"location": "request"}) == (error["code"], error["details"])
    assert error["message"]


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ],
)
def test_a_body_framed_both_ways_is_refused_and_what_follows_is_never_read(
    runtime: Runtime, framing: bytes
) -> None:
    # Given a request giving both Content-Length and Transfer-Encoding (a proxy in front
    # may frame it by the one, the server by the other), a second request behind it
    first = b"POST /v1/documents HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n0\r\n\r\n"
    behind = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
    with serve_in_thread(create_app(runtime)) as base:
        answer = _raw(base, first + behind)

    # Then one answer, 400 in the API's shape, and the connection closed after it
    # (RFC 9112 6.1): the bytes behind it are never taken for a request
    assert answer.count(b"HTTP/1.1 ") == 1, answer[:600]
    status, rest = answer.split(b"\r\n", 1)
    headers, body = rest.split(b"\r\n\r\n", 1)
    assert status == b"HTTP/1.1 400 Bad Request", answer[:300]
    assert b"connection: close" in headers.lower()
    assert json.loads(body)["code"] == "bad_request"
