"""JSON read as congvan takes it wherever it comes from (a request's body, a form's metadata
part, a directory file): UTF-8 text only, each key of an object once, a bounded number of
values.

``json.loads`` takes bytes in UTF-16 or UTF-32 too, and keeps the last of two equal keys
without a word; ``{"reason": "ok", "reason": ""}`` would then mean what nobody saw.
"""

from __future__ import annotations

import json
from typing import Any

from congvan.states.errors import InvalidEncoding, PayloadTooLarge, RepeatedField

# The most values (objects, arrays, strings, numbers...) one JSON body or metadata part may
# hold: 500 recipients are some 1,500; each value costs Python objects to build and
# validate, and 48 MB of tiny ones took the server some 20 seconds.
MAX_JSON_VALUES = 10_000


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
