"""A cap on request bodies, enforced while they stream in (Content-Length may lie), a pace
they must keep (one that stops coming would hold its connection, and the temporary file
it spills to, for as long as its client likes), and one way to tell where a body ends."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body


def declares_more(declared: str | bytes | None, limit: int) -> bool:
    """Whether a ``Content-Length`` of ASCII digits says more than ``limit`` bytes (read by
    its digits first: ``int`` refuses a text of thousands of them)."""
    if declared is None or not (declared.isascii() and declared.isdigit()):
        return False
    digits = declared.decode("ascii") if isinstance(declared, bytes) else declared
    digits = digits.lstrip("0")
    return len(digits) > len(str(limit)) or int(digits or 0) > limit


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so body parsers let it through. On the
    inbox it refuses the package (``package_too_large``, with its reason), as the
    middleware's own answer does."""

    def __init__(self, max_bytes: int, *, package: bool = False) -> None:
        if package:
            super().__init__(413, "The package is larger than this inbox takes.")
            self.code = "package_too_large"
            self.details: dict[str, Any] = {"max_bytes": max_bytes, "reason": "total_too_large"}
        else:
            super().__init__(413, f"The request body is larger than allowed ({max_bytes} bytes).")
            self.code = "payload_too_large"
            self.details = {"max_bytes": max_bytes}  # as the middleware's own answer has


class BodyTimedOut(HTTPException):
    """Raised from ``receive`` when a body stops coming: 408, the connection closed. A
    peer delivering a package takes it as a failure to try again (it may be its link)."""

    code = "request_timeout"

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__(408, "The request body stopped coming; send it again.")
        self.details = details


# Where a body is a peer's package: a 413 there refuses it for good, with the reason a
# refusal gives (README, exchange formats), so that its sender records it as one.
_PACKAGE_PATHS = frozenset({"/v1/inbox", "/v1/inbox/"})


class BodyLimitMiddleware:
    """Answer 413 ``payload_too_large`` once a body passes ``max_bytes`` (on the inbox,
    ``package_too_large`` with reason ``total_too_large``: a refusal of the package), and
    408 ``request_timeout`` once it stops coming: no byte for ``idle_seconds``, or, once
    it has taken that long, fewer than ``min_bytes_per_second`` on average."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        idle_seconds: float = 30.0,
        min_bytes_per_second: int = 0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.min_rate = min_bytes_per_second

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and b"transfer-encoding" in headers:
            await _framed_twice(send)
            return
        package = scope["path"] in _PACKAGE_PATHS
        if declares_more(declared, self.max_bytes):
            await self._reject(send, package)
            return
        seen = 0
        started = False
        complete = False  # the body is in: what the app waits for next is the client leaving
        dropped = False  # the body stopped coming: the answer closes the connection
        # A body the answer comes before, unread, would be read as the next request: the
        # connection closes after it (RFC 9112 9.6), as after one that stopped coming.
        has_body = (declared is not None and declared != b"0") or b"transfer-encoding" in headers
        began = time.monotonic()

        def drop(details: dict[str, Any]) -> BodyTimedOut:
            nonlocal dropped
            dropped = True
            return BodyTimedOut({"received_bytes": seen, **details})

        async def limited_receive() -> Message:
            nonlocal seen, complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout(self.idle_seconds):
                    message = await receive()
            except TimeoutError:
                raise drop({"idle_seconds": self.idle_seconds}) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes, package=package)
                complete = not message.get("more_body", False)
                taken = time.monotonic() - began
                if not complete and taken > self.idle_seconds and seen < self.min_rate * taken:
                    raise drop({"min_bytes_per_second": self.min_rate})
            else:
                complete = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if dropped or (has_body and not complete):
                    headers = [h for h in message.get("headers", []) if h[0] != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send, package)
        except BodyTimedOut as exc:
            if not started:
                answer = error_body(exc.code, str(exc.detail), exc.details)
                await _answer_and_close(send, 408, answer)

    async def _reject(self, send: Send, package: bool) -> None:
        if package:
            answer = error_body(
                "package_too_large",
                "The package is larger than this inbox takes.",
                {"max_bytes": self.max_bytes, "reason": "total_too_large"},
            )
        else:
            answer = error_body(
                "payload_too_large",
                "The request body is larger than allowed.",
                {"max_bytes": self.max_bytes},
            )
        await _answer_and_close(send, 413, answer)


async def _framed_twice(send: Send) -> None:
    """Refuse a request giving both Content-Length and Transfer-Encoding, and close the
    connection (RFC 9112 6.1: a proxy in front may have framed it by the other one, and
    what it took for the body would be read here as the next request: smuggled past it)."""
    answer = error_body(
        "bad_request",
        "The request gives both Content-Length and Transfer-Encoding: its body ends in "
        "one place or the other; send one of them.",
        {"location": "header", "field": "Content-Length"},
    )
    await _answer_and_close(send, 400, answer)


async def _answer_and_close(send: Send, status: int, answer: dict[str, Any]) -> None:
    """Answer the error before the body was read, and close the connection (what is left
    of the body would be read as the next request)."""
    body = json.dumps(answer).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
