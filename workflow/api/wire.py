"""HTTP/1.1 as the API serves it: uvicorn's h11 protocol, answering a request it cannot
parse with the API's JSON error, not its own plain text.

A request line or header the parser refuses (a raw space or non-ASCII byte in the target,
a header line without a colon, a request head past the parser's bound) never reaches the
app: uvicorn answers it ``400 text/plain`` on its own. A client that reads every error as
``{"code", "message", "details"}`` gets that shape here too (``bad_request``). Pinned to
h11 (not httptools when it happens to be installed) so that every installation answers
the same bytes.
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_BODY = json.dumps(
    {
        "code": "bad_request",
        "message": (
            "The request cannot be read as HTTP/1.1: its request line or a header is "
            "malformed, or its head is too long (a space or a non-ASCII character in the "
            "path or query is sent percent-encoded)."
        ),
        "details": {"location": "request"},
    }
).encode()


class JsonErrorsH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:  # uvicorn's name; ``msg`` is its text
        headers = [
            (b"content-type", b"application/json"),
            (b"x-content-type-options", b"nosniff"),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=_BODY),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()
