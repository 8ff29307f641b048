"""One way to page through every list: ``?cursor=&limit=`` in, ``items`` and ``next_cursor`` out.

A cursor is the list's name (its path) and the sort key of the last item seen, as
base64url JSON: a list takes its own cursors only. The next page starts after it, so rows
added or removed meanwhile never shift a page. The database sorts and
cuts each page (keyset paging): a page costs the same however long the list is.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request

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
    listing: str  # the list's name: its path


Params = tuple[str | None, int, str]  # cursor, limit, the list's name


def encode_key(key: Key, listing: str) -> str:
    text = json.dumps([listing, *key], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_key(cursor: str, types: Sequence[type], listing: str) -> Key:
    """The key a cursor of ``listing`` holds; :class:`InvalidInput` unless its
    ``next_cursor`` made it."""
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
        named = json.loads(raw.decode())
    except (ValueError, RecursionError):  # bad base64, bytes that are not UTF-8, bad JSON
        named = None
    key = named[1:] if isinstance(named, list) and named[:1] == [listing] else None
    valid = (
        key is not None
        and len(key) == len(types)
        and all(type(v) is t and _storable(v) for v, t in zip(key, types, strict=True))
    )
    if key is None or not valid or encode_key(tuple(key), listing) != cursor:
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
    request: Request,
    settings: SettingsDep,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR, description="next_cursor of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, description="At most the server's max_page_size")] = 50,
) -> Params:
    check_limit(limit, settings.max_page_size)
    # The list's own path, ids and all: one document's history is not another's.
    return cursor, limit, request.url.path


PagingDep = Annotated[Params, Depends(_paging)]


def paging(params: Params, types: Sequence[type]) -> Paging:
    cursor, limit, listing = params
    after = decode_key(cursor, types, listing) if cursor is not None else None
    return Paging(after, limit, listing)


def page(
    fetch: Callable[[Key | None, int], Sequence[T]], key: Callable[[T], Key], at: Paging
) -> dict[str, Any]:
    """One page: ``fetch(after, n)`` reads (in SQL) at most n rows sorted by ``key`` after it.

    One row more than the page is read, to know whether another page follows.
    """
    rows = fetch(at.after, at.limit + 1)
    items = list(rows[: at.limit])
    more = len(rows) > at.limit
    return {"items": items, "next_cursor": encode_key(key(items[-1]), at.listing) if more else None}
