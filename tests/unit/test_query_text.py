"""A query's text reaches the routes in Unicode NFC, everything else in it as sent."""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import parse_qsl, quote

from congvan.workflow.api.encoding import check_target


def _after(query: bytes) -> bytes:
    scope: dict[str, Any] = {"type": "http", "query_string": query, "headers": []}
    check_target(scope)
    return bytes(scope["query_string"])


def test_decomposed_text_is_composed_and_the_rest_kept_as_sent() -> None:
    nfd = unicodedata.normalize("NFD", "Nguyễn Thảo")
    query = f"owner={quote(nfd)}&kind=a%2Bb+c&state=open&state=snoozed&flag".encode()

    after = _after(query)

    pairs = parse_qsl(after.decode(), keep_blank_values=True)
    assert pairs == [
        ("owner", "Nguyễn Thảo"),
        ("kind", "a+b c"),
        ("state", "open"),
        ("state", "snoozed"),
        ("flag", ""),
    ]
    assert unicodedata.is_normalized("NFC", pairs[0][1])
    assert after.endswith(b"&kind=a%2Bb+c&state=open&state=snoozed&flag")


def test_a_query_already_composed_is_left_byte_for_byte() -> None:
    query = f"owner={quote('Nguyễn')}&cursor=eyJhIjoxfQ&limit=2".encode()
    assert _after(query) == query
    assert _after(b"") == b""
