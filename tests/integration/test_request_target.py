"""The request target in each of its forms (RFC 9112 3.2), over a real server: a server
must accept the absolute form (``GET http://host/path``), as a proxy sends it."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from congvan.workflow.api import create_app
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.serving import serve_in_thread


def _ask(base: str, target: str) -> bytes:
    host, port = urlsplit(base).hostname, urlsplit(base).port
    with socket.create_connection((str(host), int(port or 80)), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


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
