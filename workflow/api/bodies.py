"""How JSON is read from a request: UTF-8 text only, each key of an object once.

``json.loads`` takes bytes in UTF-16 or UTF-32 too, and keeps the last of two equal keys
without a word; ``{"reason": "ok", "reason": ""}`` would then mean what nobody saw. Both
bodies and the create request's metadata part are read here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from congvan.states.errors import InvalidEncoding, RepeatedField


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
    return json.loads(data, object_pairs_hook=lambda pairs: _object(pairs, where))


class JsonRequest(Request):
    """A request whose JSON body is read by :func:`read_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = read_json(await self.body(), where="body")
        return self._json


class JsonRoute(APIRoute):
    """A route that reads its JSON body with :class:`JsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(JsonRequest(request.scope, request.receive))

        return route_handler
