"""HTTP methods as RFC 9110 has them: HEAD wherever GET is, conditional reads, an honest
``Allow``.

FastAPI's routes answer only the methods they declare, so ``HEAD /v1/documents`` was 405
though ``GET`` is served there (RFC 9110 9.3.2: a server supporting GET supports HEAD);
and a 405 named in ``Allow`` only the methods of the first route whose path matched.
A read that names an entity tag (``If-None-Match``, ``If-Match``) is answered by the tag
the route sends (RFC 9110 13.1.1, 13.1.2): 304 with no body when the client holds it,
412 when it asked for another, or named one where the route sends none.
"""

from __future__ import annotations

import json
import re

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# One entity tag of a list, weak or strong, and the comma after it (RFC 9110 8.8.3).
_TAGS = re.compile(rb'[ \t]*(W/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?:,|$)')
# The headers a 304 keeps of the 200 it stands for (RFC 9110 15.4.5), besides our own.
_KEPT_BY_304 = frozenset({b"etag", b"cache-control", b"vary", b"date", b"expires"})


# Empty elements of a list, which a recipient must accept (RFC 9110 5.6.1): ", ,".
_EMPTY = re.compile(rb"[ \t]*,")


def entity_tags(value: bytes) -> list[tuple[bool, bytes]] | None:
    """The entity tags of an If-Match or If-None-Match value, each (weak, tag with its
    quotes), empty elements skipped; None: not a list of tags."""
    found, at = [], 0
    while at < len(value):
        empty = _EMPTY.match(value, at)
        if empty is not None:
            at = empty.end()
            continue
        tag = _TAGS.match(value, at)
        if tag is None or tag.end() == at:
            return None
        found.append((tag.group(1) is not None, tag.group(2)))
        at = tag.end()
    return found or None


def failed_precondition(if_match: bytes, etag: bytes) -> bool:
    """Whether ``If-Match`` fails against the representation's ``etag`` (strong); a value
    that is no list of tags is refused before it is asked (``_malformed``)."""
    if if_match.strip() == b"*":
        return False
    tags = entity_tags(if_match)
    return tags is not None and not any(not weak and tag == etag for weak, tag in tags)


def _not_modified(if_none_match: bytes, etag: bytes) -> bool:
    """Whether ``If-None-Match`` names what the client holds (weak comparison)."""
    if if_none_match.strip() == b"*":
        return True
    tags = entity_tags(if_none_match)
    plain = etag.removeprefix(b"W/")
    return tags is not None and any(tag == plain for _weak, tag in tags)


class HeadMiddleware:
    """Answer ``HEAD`` as ``GET`` would, headers and status alike, with no body; and a
    conditional ``GET`` or ``HEAD`` by the ETag its route sends.

    Plain ASGI: the request runs as a GET (its token, its checks, its errors), and the
    body the app sends is dropped; ``Content-Length`` says what a GET would have sent.
    A condition is judged when the route starts a 2xx answer (by its ETag, or its lack of
    one), before a byte of its body is sent; any other answer goes as it is.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = _lists_combined(scope)
        method = scope.get("method")
        if method not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if_match = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"if-match":
                if_match = value
            elif name == b"if-none-match":
                if_none_match = value
        head = method == "HEAD"
        if not head and if_match is None and if_none_match is None:
            await self.app(scope, receive, send)
            return
        dropping = False
        ended = False

        async def answer(message: Message) -> None:
            nonlocal dropping, ended
            if message["type"] == "http.response.start":
                message = _judged(message, if_match, if_none_match)
                dropping = head or message["status"] == 304
                if "congvan_body" in message:  # a 412 or 422 of the conditions: its own body
                    dropping = True  # (the route's)
                    body = message.pop("congvan_body")
                    await send(message)
                    await send({"type": "http.response.body", "body": b"" if head else body})
                    ended = True
                    return
                await send(message)
            elif message["type"] != "http.response.body" or not dropping:
                await send(message)
            elif not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET", HEAD_ONLY: head}, receive, answer)


# Set in the scope of a HEAD run as a GET: a route whose body is costly to make (a large
# file read from the database) may leave it out, its headers saying what it would be.
HEAD_ONLY = "congvan.head"


def head_only(scope: Scope) -> bool:
    """Whether the answer's body will be dropped (a HEAD)."""
    return bool(scope.get(HEAD_ONLY))


# Fields whose value is a list: several lines of one are that list (RFC 9110 5.3, 13.1.1).
_LISTS = (b"if-match", b"if-none-match")


def _lists_combined(scope: Scope) -> Scope:
    """``scope`` with the lines of an ``If-Match`` or ``If-None-Match`` given on several
    lines combined into one, in order, separated by commas, as RFC 9110 5.3 lets a
    recipient do with a list field: ``If-Match: "1"`` and ``If-Match: "2"`` are
    ``If-Match: "1", "2"``, not a field repeated, and every reader sees all of them."""
    headers = scope["headers"]
    names = [name for name, _ in headers if name in _LISTS]
    if len(names) == len(set(names)):
        return scope
    combined: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name not in _LISTS:
            combined.append((name, value))
            continue
        at = next((i for i, (n, _) in enumerate(combined) if n == name), None)
        if at is None:
            combined.append((name, value))
        else:
            combined[at] = (name, combined[at][1] + b", " + value)
    return {**scope, "headers": combined}


# The one shape of every error (errors.error_body, which imports this module).
_PRECONDITION_FAILED = json.dumps(
    {
        "code": "precondition_failed",
        "message": "If-Match names no tag of what is here now: read it again (its ETag) and retry.",
        "details": {},
    }
).encode()


def _malformed(condition: bytes | None) -> bool:
    """A condition given that is neither ``*`` nor a list of entity tags (``3`` unquoted,
    an empty value): refused on a read as on a change, never silently not evaluated."""
    return condition is not None and condition.strip() != b"*" and entity_tags(condition) is None


def _condition_refused(name: str) -> bytes:
    return json.dumps(
        {
            "code": "invalid_input",
            "message": f'{name} takes the ETag as it was sent, quotes included, e.g. "3" (or *).',
            "details": {"field": name},
        }
    ).encode()


def _judged(start: Message, if_match: bytes | None, if_none_match: bytes | None) -> Message:
    """The response start as the request's conditions make it: as it is, 304, 412, or
    422 for a condition that is no list of tags."""
    status = start["status"]
    if not 200 <= status < 300 or (if_match is None and if_none_match is None):
        return start
    headers = start.get("headers", [])
    etag = next((v for k, v in headers if k == b"etag"), None)
    for name, condition in (("If-Match", if_match), ("If-None-Match", if_none_match)):
        if _malformed(condition):
            body = _condition_refused(name)
            return {
                **start,
                "status": 422,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
                "congvan_body": body,
            }
    # What a route sends with no entity tag has none an If-Match can name (RFC 9110
    # 13.1.1: only * holds, it exists), and none an If-None-Match holds but * (13.1.2).
    if if_match is not None and (
        if_match.strip() != b"*" if etag is None else failed_precondition(if_match, etag)
    ):
        return {
            **start,
            "status": 412,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_PRECONDITION_FAILED)).encode()),
                *((k, v) for k, v in headers if k == b"etag"),
            ],
            "congvan_body": _PRECONDITION_FAILED,
        }
    if if_none_match is not None and (
        if_none_match.strip() == b"*" if etag is None else _not_modified(if_none_match, etag)
    ):
        kept = [(k, v) for k, v in headers if k in _KEPT_BY_304 or k.startswith(b"x-")]
        return {**start, "status": 304, "headers": kept}
    return start


# The methods the API declares routes for (HEAD comes with GET; OPTIONS is served nowhere).
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> str:
    """Every method the routes serve at the request's path, as ``Allow`` lists them.

    Each method is asked of the routes as the router would (``matches``), so included
    routers answer for their own routes whatever their structure.
    """
    methods = {
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    }
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
