"""Each request's id: bound to its log lines, named in its answer."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote, urlsplit

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from congvan.storage.ids import new_id

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


class RequestIdMiddleware:
    """Bind a request id (the caller's ``X-Request-ID`` if well formed, else a new one) for
    the request's log lines, and answer it in ``X-Request-ID`` (with
    ``X-Content-Type-Options: nosniff`` on every answer).

    Plain ASGI: Starlette's ``@app.middleware("http")`` runs the rest of the app in a task
    of its own behind memory streams, a cost every request paid for two header lines.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(("http://", "https://")):
            scope = origin_form(scope)
        structlog.contextvars.clear_contextvars()
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else new_id()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                # A stored file is served with the type it was uploaded with: a browser
                # must not guess another (text/html from an attachment, say) from its bytes.
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        if _ENCODED_SLASH.search(scope.get("raw_path") or b""):
            await _not_found(send_with_id)
            return
        await self.app(scope, receive, send_with_id)


# An encoded slash in the request target: data, not a separator (RFC 3986 2.2), which the
# server decodes into the path the routes match (/v1/documents%2FID reached the document),
# past any proxy rule that reads the path as written.
_ENCODED_SLASH = re.compile(rb"%2f", re.IGNORECASE)
_NO_SUCH_PATH = json.dumps(
    {
        "code": "not_found",
        "message": "An encoded slash (%2F) in a path names nothing here: write / or nothing.",
        "details": {},
    }
).encode()


async def _not_found(send: Send) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_NO_SUCH_PATH)).encode()),
    ]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": _NO_SUCH_PATH})


def origin_form(scope: Scope) -> Scope:
    """A request naming its target in absolute form (``GET http://host/v1/health``), which
    a server must accept (RFC 9112 3.2.2), as the path it names: routes match paths."""
    raw = scope.get("raw_path") or scope["path"].encode()
    target = urlsplit(raw.decode("latin-1"))
    path = target.path or "/"
    return {**scope, "path": unquote(path), "raw_path": path.encode("latin-1")}
