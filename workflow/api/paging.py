"""One way to page through every list: ``?cursor=&limit=`` in, ``items`` and ``next_cursor`` out.

A cursor is the sort key of the last item seen, as base64url JSON; the next page starts
after it, so rows added or removed meanwhile never shift a page. The database sorts and
cuts each page (keyset paging): a page costs the same however long the list is.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query

from congvan.states.errors import InvalidInput
from congvan.states.text import in_utc, unstorable

from .deps import SettingsDep

T = TypeVar("T")
Key = tuple[str | int, ...]

# The longest cursor taken: longer than any the server issues (a key holds a few texts of
# at most a few hundred letters, up to 4 bytes each in UTF-8, base64 adds a third), short
# enough that a made-up one costs nothing to refuse.
MAX_CURSOR = 4096


@dataclass(frozen=True)
class Paging:
    """Where a page starts (after ``after``, or at the top) and how long it is."""

    after: Key | None
    limit: int


def encode_key(key: Key) -> str:
    text = json.dumps(list(key), ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_key(cursor: str, types: Sequence[type]) -> Key:
    """The key a cursor holds; :class:`InvalidInput` unless ``next_cursor`` made it."""
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
        key = json.loads(raw.decode())
    except (ValueError, RecursionError):  # bad base64, bytes that are not UTF-8, bad JSON
        key = None
    valid = (
        isinstance(key, list)
        and len(key) == len(types)
        and all(type(v) is t and _storable(v) for v, t in zip(key, types, strict=True))
    )
    if not valid or encode_key(tuple(key)) != cursor:
        raise InvalidInput("The cursor is not valid.", field="cursor")
    return tuple(key)


def _storable(value: object) -> bool:
    """A key value the databases can compare: an integer column's range, text without NUL
    or control characters (no key the server issues holds one)."""
    if isinstance(value, int):
        return -(2**31) <= value < 2**31
    return isinstance(value, str) and unstorable(value, multi_line=False) is None


def cursor_moment(value: str | int) -> datetime:
    """A moment a cursor holds, as the databases can keep it; else the cursor is not valid."""
    try:
        moment = in_utc(datetime.fromisoformat(str(value)))
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidInput("The cursor is not valid.", field="cursor")
    return moment


def check_limit(limit: int, max_page_size: int) -> None:
    if limit > max_page_size:
        raise InvalidInput(f"limit is at most {max_page_size}.", field="limit", max=max_page_size)


async def _paging(
    settings: SettingsDep,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR, description="next_cursor of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, description="At most the server's max_page_size")] = 50,
) -> tuple[str | None, int]:
    check_limit(limit, settings.max_page_size)
    return cursor, limit


PagingDep = Annotated[tuple[str | None, int], Depends(_paging)]


def paging(params: tuple[str | None, int], types: Sequence[type]) -> Paging:
    cursor, limit = params
    return Paging(decode_key(cursor, types) if cursor is not None else None, limit)


def page(
    fetch: Callable[[Key | None, int], Sequence[T]], key: Callable[[T], Key], at: Paging
) -> dict[str, Any]:
    """One page: ``fetch(after, n)`` reads (in SQL) at most n rows sorted by ``key`` after it.

    One row more than the page is read, to know whether another page follows.
    """
    rows = fetch(at.after, at.limit + 1)
    items = list(rows[: at.limit])
    more = len(rows) > at.limit
    return {"items": items, "next_cursor": encode_key(key(items[-1])) if more else None}
