"""Whatever JSON a peer puts in any member of a message, the readers refuse it with an
error of the taxonomy (an answer 4xx with its code), never a Python error (a 500).

Each reader is given its format's documented example with one member, or one member of a
nested object, replaced by a value of every JSON kind. Signatures are checked elsewhere;
these readers run on what arrived before or after them, so both orders are covered.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from congvan.actions.exchange import acceptance, package, receipts, status
from congvan.actions.signing.manifest import build_manifest
from congvan.states.errors import CongvanError

from .test_exchange_formats import example
from .test_manifest import make_attachments, make_document

# Every kind JSON has, and the shapes that break careless code: unhashable, empty, nested,
# a bool where a number goes, a number where text goes, text far too long.
CONFUSED: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    10**30,
    1.5,
    "",
    "x" * 100_000,
    [],
    ["03"],
    [[]],
    {},
    {"a": []},
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every member's path in a parsed message, objects' and lists' members included."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*path, key)
            yield from _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield (*path, index)
            yield from _paths(inner, (*path, index))


def _replaced(content: Any, path: tuple[Any, ...], value: Any) -> Any:
    changed = copy.deepcopy(content)
    inner = changed
    for step in path[:-1]:
        inner = inner[step]
    inner[path[-1]] = value
    return changed


def _documented(module: Any) -> Any:
    """The format's documented example, its digests (shortened there with "…") whole."""

    def whole(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "ab" * 32 if k.endswith("sha256") else whole(v) for k, v in value.items()}
        if isinstance(value, list):
            return [whole(v) for v in value]
        return value

    return whole(example(module))


def _manifest() -> dict[str, Any]:
    return dict(json.loads(build_manifest(make_document(), make_attachments())))


def _read_manifest(content: dict[str, Any]) -> None:
    # What the inbox asks of a manifest once its signature holds, in its order
    acceptance._check_members(content)
    acceptance._check_metadata(content)
    acceptance._check_roles(content["attachments"])


READERS: dict[str, tuple[Callable[[Any], Any], Callable[[], Any]]] = {
    "status": (status._read, lambda: _documented(status)),
    "receipt": (receipts._read, lambda: _documented(receipts)),
    "package": (package.read_header, lambda: _documented(package)),
    "manifest": (_read_manifest, _manifest),
}


def _cases() -> Iterator[Any]:
    for name, (_read, base) in READERS.items():
        for path in _paths(base()):
            yield pytest.param(name, path, id=f"{name}:{'.'.join(map(str, path))}")


@pytest.mark.parametrize(("reader", "path"), list(_cases()))
def test_a_member_of_any_json_kind_is_refused_or_read_never_a_crash(
    reader: str, path: tuple[Any, ...]
) -> None:
    read, base = READERS[reader]
    read(base())  # the example itself is read
    for value in CONFUSED:
        with contextlib.suppress(CongvanError):  # refused, with its code
            read(_replaced(base(), path, value))


def test_a_status_code_that_is_a_list_or_an_object_is_malformed() -> None:
    for code in ([], ["03"], {}, {"03": 1}):
        content = {**example(status), "code": code}
        with pytest.raises(CongvanError) as refused:
            status._read(content)
        assert refused.value.code == "message_malformed"
        assert refused.value.details["reason"] == "status_code"
