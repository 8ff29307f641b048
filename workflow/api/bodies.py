"""How JSON is read from a request: UTF-8 text only, each key of an object once.

``json.loads`` takes bytes in UTF-16 or UTF-32 too, and keeps the last of two equal keys
without a word; ``{"reason": "ok", "reason": ""}`` would then mean what nobody saw. Both
bodies and the create request's metadata part are read here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response, params
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from starlette.concurrency import run_in_threadpool

from congvan.states.errors import InvalidEncoding, InvalidInput, PayloadTooLarge, RepeatedField

from .auth import needs_principal, refuse_unknown_token
from .limits import BodyTooLarge
from .outputs import ErrorBody, errors

# The most values (objects, arrays, strings, numbers...) one JSON body or metadata part may
# hold: 500 recipients are some 1,500; each value costs Python objects to build and
# validate, and 48 MB of tiny ones took the server some 20 seconds.
MAX_JSON_VALUES = 10_000
# A body larger than this is read in a worker thread, not on the event loop.
READ_APART_BYTES = 64 * 1024


def _too_many(where: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The {where} holds more than {MAX_JSON_VALUES} JSON values.",
        field=where,
        max_values=MAX_JSON_VALUES,
    )


def _count_values(value: Any, where: str) -> None:
    """Refuse ``value`` once it is found to hold more than MAX_JSON_VALUES values."""
    left, stack = MAX_JSON_VALUES, [value]
    while stack:
        item = stack.pop()
        left -= 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        if left < 0 or len(stack) > left:
            raise _too_many(where)


def _object(pairs: list[tuple[str, Any]], where: str) -> dict[str, Any]:
    """A JSON object whose keys are all different."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise RepeatedField(
                f"The key {key!r} appears more than once in one object of the {where}.",
                field=key,
                location=where,
            )
        seen[key] = value
    return seen


def read_json(data: bytes | str, *, where: str) -> Any:
    """``data`` parsed as JSON; ``where`` names it in errors (``body``, ``metadata``...).

    Raises json.JSONDecodeError for text that is not JSON, as ``json.loads`` does.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEncoding(
                f"The {where} is not UTF-8 text, as JSON must be.", field=where, location="body"
            ) from exc
    # Values are separated by commas: far more commas than values allowed is refused
    # before anything is built (a count at C speed); what passes is counted exactly.
    if data.count(",") > 4 * MAX_JSON_VALUES:
        raise _too_many(where)
    value = json.loads(data, object_pairs_hook=lambda pairs: _object(pairs, where))
    _count_values(value, where)
    return value


class JsonRequest(Request):
    """A request whose JSON body is read by :func:`read_json`, and is at most ``max_body``
    bytes when one is set (read no further: a route anyone may call has its own cap)."""

    max_body: int | None = None

    async def body(self) -> bytes:
        limit = self.max_body
        if limit is None or hasattr(self, "_body"):
            return await super().body()
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
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

        async def route_handler(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if _has_body(request):
                if takes_json and not is_json_media_type(content_type):
                    raise HTTPException(415, "The body is sent as application/json.")
                if form_types is not None and _media_type(content_type) not in form_types:
                    raise HTTPException(415, f"The body is sent as {form_named}.")
            if authenticates:  # before a byte of the body is read or a parameter judged
                await refuse_unknown_token(request)
            wrapped = JsonRequest(request.scope, request.receive)
            wrapped.max_body = max_body
            return await handler(wrapped)

        return route_handler


class SmallJsonRoute(JsonRoute):
    """A JSON route anyone may call (a peer's status message): a megabyte at most, refused
    as it streams in, so that no caller makes the server hold the installation's 64 MiB."""

    max_body = 1024 * 1024
