"""A request gives only what its route takes, and once what the route takes once.

Starlette keeps the last of two equal query parameters or form parts and the first of two
equal headers; FastAPI then reads one and drops the other without a word, and ignores a
query parameter or form part that no route parameter names (``?limt=5``, a part named
``mian``). Each route's own parameters say what it takes and which are lists; anything
else is refused here, once for every route:

- a field given more than once where one is taken: 422 ``repeated_field``;
- a query parameter or form part the route does not take: 422 ``invalid_input``;
- a whole number written otherwise than in ASCII digits (an optional minus first):
  pydantic reads ``5_0`` as 50 and ``+5`` as 5, which no client means: 422
  ``invalid_input``;
- a query parameter given empty (``?doc_type=``): 422 ``invalid_input``;
- a change (not a read) with a body its route never reads: 422 ``invalid_input``;
- a change's If-Match or If-None-Match its route does not judge, judged: 412
  ``precondition_failed`` where it cannot hold.

Repeated keys in JSON are refused where JSON is read (:mod:`.bodies`).
"""

from __future__ import annotations

import re
import types
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Request, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from congvan.states.errors import InvalidInput, PreconditionFailed, RepeatedField

from .encoding import QUERY_PROBLEM
from .schemas import NUMBER_TEXT

# A whole number as a query parameter writes it: ASCII digits, a minus sign first or not.
_WHOLE = re.compile(r"-?[0-9]+", re.ASCII)

# Read by the API on every route that needs them, though no route parameter names them.
_HEADERS_READ_ONCE = ("Authorization", "Content-Type")


@dataclass(frozen=True)
class _Takes:
    """What one route takes: names by where they come from, and which of them are lists."""

    query: frozenset[str]
    headers: frozenset[str]
    form: frozenset[str]
    lists: frozenset[str]
    integers: frozenset[str]  # query parameters that are whole numbers
    moments: frozenset[str]  # query parameters that are moments
    body: bool = True  # whether it reads a body (its parameters, or the request itself)
    # whether it takes a token (a bearer): the inbox and POST /v1/status take none, their
    # messages are signed
    token: bool = True


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_list(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return isinstance(origin, type) and issubclass(origin, (Sequence, set, frozenset))


def _is_a(annotation: Any, kind: type) -> bool:
    """Whether ``annotation`` admits ``kind`` (``int | None``, ``list[int]``...)."""
    if annotation is kind:
        return True
    origin = get_origin(annotation)
    if origin is Annotated or origin in (Union, types.UnionType) or _is_list(annotation):
        return any(_is_a(arg, kind) for arg in get_args(annotation))
    return False


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _takes(route: APIRoute) -> _Takes:
    query: set[str] = set()
    headers: set[str] = set(_HEADERS_READ_ONCE)
    form: set[str] = set()
    lists: set[str] = set()
    integers: set[str] = set()
    moments: set[str] = set()
    for dependant in _dependants(route.dependant):
        fields = [
            *((query, f) for f in dependant.query_params),
            *((headers, f) for f in dependant.header_params),
            *((form, f) for f in dependant.body_params if isinstance(f.field_info, params.Form)),
        ]
        for names, field in fields:
            name = field.alias
            if names is headers and getattr(field.field_info, "convert_underscores", False):
                name = name.replace("_", "-")  # as FastAPI reads the header
            names.add(name)
            if _is_list(field.field_info.annotation):
                lists.add(name)
            if names is query and _is_a(field.field_info.annotation, int):
                integers.add(name)
            if names is query and _is_a(field.field_info.annotation, datetime):
                moments.add(name)
    return _Takes(
        frozenset(query),
        frozenset(headers),
        frozenset(form),
        frozenset(lists),
        frozenset(integers),
        frozenset(moments),
        # A route handed the request itself may read its body (the inbox streams it).
        body=route.body_field is not None or route.dependant.request_param_name is not None,
        token=any(isinstance(d.call, HTTPBearer) for d in _dependants(route.dependant)),
    )


def _check(
    given: Iterable[str], takes: frozenset[str], lists: frozenset[str], location: str
) -> None:
    counts = Counter(given)
    unused = sorted(name for name in counts if name not in takes)
    if unused:
        raise InvalidInput(
            f"This request does not use the {location} {unused[0]!r}; it takes "
            f"{', '.join(sorted(takes)) or 'none'}.",
            field=unused[0],
            location=location,
            takes=sorted(takes),
        )
    for name, count in sorted(counts.items()):
        if count > 1 and name not in lists:
            raise RepeatedField(
                f"The {location} {name!r} is given {count} times; it is taken once.",
                field=name,
                location=location,
                count=count,
            )


_TAKES = "_congvan_takes"  # the attribute of a route that keeps what it takes
_SAFE = ("GET", "HEAD")


def _carries_body(request: Request) -> bool:
    """Whether the request says it carries content (RFC 9112 6.1: a length, or chunks)."""
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


def _check_conditions(request: Request, takes: _Takes) -> None:
    """A change's conditions, where its route does not judge them, judged as RFC 9110 13.1
    has them, never dropped: what such a route changes has no entity tag, so an
    ``If-Match`` naming tags fails (``*`` holds: it exists); an ``If-None-Match: *`` fails
    (it exists), one naming tags holds, except on a route whose changes are versioned
    (its If-Match names them), where it is refused: say the version held with If-Match.
    An ``Idempotency-Key`` a route would not keep is refused too."""
    if_match = request.headers.get("if-match")
    if if_match is not None and "If-Match" not in takes.headers and if_match.strip() != "*":
        raise PreconditionFailed(
            "What this request changes has no entity tag for If-Match to name: nothing "
            "was done. Send it without If-Match.",
            field="If-Match",
        )
    if "idempotency-key" in request.headers and "Idempotency-Key" not in takes.headers:
        # Taken and not kept, a repeat after a lost answer would be done twice.
        raise InvalidInput(
            "This change is not replayed by an Idempotency-Key: send it without one (a "
            "repeat of it is refused as a conflict, or changes nothing more).",
            field="Idempotency-Key",
            location="header",
        )
    given = request.headers.getlist("if-none-match")
    if not given:
        return
    # (given twice, or as a list: RFC 9110 5.3 reads them as one list; * among them holds
    # for whatever exists, as * alone)
    if_none_match = ", ".join(given)
    if any(tag.strip() == "*" for tag in if_none_match.split(",")):
        raise PreconditionFailed(
            "If-None-Match: * asks that nothing exist yet, and this request changes "
            "something that is already there (or is not there to change): nothing was done.",
            field="If-None-Match",
        )
    if "If-Match" in takes.headers:
        raise InvalidInput(
            "A change names the version it is made on with If-Match (its ETag), not with "
            "If-None-Match.",
            field="If-None-Match",
        )


async def check_parameters(request: Request) -> None:
    """Refuse what the route does not take and repeats of what it takes once (and a query
    that is not text, which ``encoding.check_target`` found)."""
    problem = request.scope.get(QUERY_PROBLEM)
    if problem is not None:
        raise problem
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    takes: _Takes | None = getattr(route, _TAKES, None)
    if takes is None:  # worked out once per route (kept on it): routes do not change
        takes = _takes(route)
        setattr(route, _TAKES, takes)
    query = request.query_params.multi_items()
    _check((k for k, _ in query), takes.query, takes.lists, "query parameter")
    for name, value in query:
        if not value:
            # "?doc_type=" filters on nothing, or on the empty text? Neither is guessed.
            raise InvalidInput(
                f"The query parameter {name!r} is empty: give it a value, or leave it out.",
                field=name,
                location="query parameter",
            )
        if name in takes.moments and NUMBER_TEXT.fullmatch(value):
            # Pydantic reads 1764547200 as Unix seconds; a body's moment is refused so too.
            problem = "must be written as a moment (ISO 8601) with its offset, not a number"
            raise InvalidInput(
                "The request is not valid.",
                errors=[{"field": f"query.{name}", "problem": problem, "type": "datetime_type"}],
            )
        if name in takes.integers and not _WHOLE.fullmatch(value):
            # The shape of the validation errors the same parameter gets for other values.
            problem = "Input should be a whole number, written in ASCII digits"
            raise InvalidInput(
                "The request is not valid.",
                errors=[{"field": f"query.{name}", "problem": problem, "type": "int_parsing"}],
            )
    headers = {name.lower().encode("latin-1"): name for name in takes.headers}
    given = [headers[k] for k, _ in request.headers.raw if k in headers]
    _check(given, takes.headers, takes.lists, "header")
    if request.method not in _SAFE and ("authorization" in request.headers or not takes.token):
        # (a route that takes a token and is given none answers 401 first)
        _check_conditions(request, takes)
    if request.method not in _SAFE and not takes.body and _carries_body(request):
        # (a body on a read has no meaning, RFC 9110 9.3.1, and is left unread)
        raise InvalidInput(
            "This request takes no body: send it without one (nothing in it would be read).",
            field="body",
        )
    if takes.form:
        form = await request.form()  # parsed, with the route's limits, before this runs
        _check((k for k, _ in form.multi_items()), takes.form, takes.lists, "form part")
