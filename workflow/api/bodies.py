"""How a request's JSON body is read: by ``jsontext.read_json`` (UTF-8 text only, each key
of an object once, a bounded number of values), at most as many bytes as the route takes,
a large one beside the event loop. The create request's metadata part is read so too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response, params
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from starlette.concurrency import run_in_threadpool

from congvan.states.errors import InvalidInput

from ..jsontext import read_json
from .auth import needs_principal, refuse_unknown_token, role_checks
from .limits import BodyTooLarge, declares_more
from .outputs import ErrorBody, errors

# A body larger than this is read in a worker thread, not on the event loop.
READ_APART_BYTES = 64 * 1024


class JsonRequest(Request):
    """A request whose JSON body is read by :func:`read_json`, and is at most ``max_body``
    bytes when one is set (read no further: a route anyone may call has its own cap)."""

    max_body: int | None = None

    async def body(self) -> bytes:
        limit = self.max_body
        if limit is None or hasattr(self, "_body"):
            return await super().body()
        if declares_more(self.headers.get("content-length"), limit):
            raise BodyTooLarge(limit)
        chunks, size = [], 0
        async for chunk in self.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
        self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                body = await self.body()
                if len(body) > READ_APART_BYTES:  # the event loop serves others meanwhile
                    self._json = await run_in_threadpool(read_json, body, where="body")
                else:
                    self._json = read_json(body, where="body")
            except json.JSONDecodeError:
                raise  # FastAPI's own answer: 422 json_invalid, with where
            except (ValueError, RecursionError) as exc:
                # json.loads' other refusals: a number of more than 4300 digits, nesting
                # deeper than the interpreter's stack.
                raise InvalidInput(
                    "The body is JSON too deeply nested or with a number too long to read.",
                    field="body",
                ) from exc
            if self._json is None:
                # Read as "no body" by the route, which it is not: every body is an object.
                raise InvalidInput(
                    "The body is a JSON object; null is not one (send {} or no body).",
                    field="body",
                )
        return self._json


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or a ``+json`` type, whatever its case and parameters."""
    media_type = _media_type(content_type)
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


# The media types a form route takes (a form with no file in it may come URL-encoded).
_FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})


class JsonRoute(APIRoute):
    """A route that reads its JSON body with :class:`JsonRequest`; a body of another media
    type (or of none named) is 415 ``unsupported_media_type``, not read as JSON. A form
    route (multipart) is held to its own media types the same way."""

    max_body: int | None = None  # bytes; None: the installation's request limit

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None and 415 not in self.responses:
            # What it answers to another media type, in the OpenAPI document too: the
            # answer and its model, as FastAPI makes them from ``responses=``.
            self.responses = {**self.responses, **errors(415)}
            self.response_fields[415] = create_model_field(
                name=f"Response_415_{self.unique_id}", type_=ErrorBody, mode="serialization"
            )

    def _form_types(self) -> frozenset[str] | None:
        """The media types of a form route; None for a JSON route (or one with no body)."""
        params_ = self.dependant.body_params
        if not any(isinstance(field.field_info, params.Form) for field in params_):
            return None
        return _FORM_TYPES

    def _takes_json(self) -> bool:
        # Form and file routes (multipart) share routers with JSON ones.
        return self.body_field is not None and self._form_types() is None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        max_body = self.max_body
        takes_json = self._takes_json()
        form_types = self._form_types()
        form_named = " or ".join(sorted(form_types or (), reverse=True))
        authenticates = needs_principal(self.dependant)
        roles = role_checks(self.dependant)

        async def route_handler(request: Request) -> Response:
            if authenticates:  # before a byte of the body is read or anything judged
                principal = await refuse_unknown_token(request)
                for check in roles:
                    check.judge(principal, request.path_params)
            content_type = request.headers.get("content-type")
            if _has_body(request):
                if takes_json and not is_json_media_type(content_type):
                    raise HTTPException(415, "The body is sent as application/json.")
                if form_types is not None and _media_type(content_type) not in form_types:
                    raise HTTPException(415, f"The body is sent as {form_named}.")
            wrapped = JsonRequest(request.scope, request.receive)
            wrapped.max_body = max_body
            return await handler(wrapped)

        return route_handler


class SmallJsonRoute(JsonRoute):
    """A JSON route anyone may call (a peer's status message): a megabyte at most, refused
    as it streams in, so that no caller makes the server hold the installation's 64 MiB."""

    max_body = 1024 * 1024
