"""One JSON shape for every error: ``{"code", "message", "details"}`` with a stable code."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from congvan.states.errors import (
    AlreadyExists,
    CongvanError,
    DatabaseNotReady,
    DatabaseUnavailable,
    FieldTooLong,
    InvalidInput,
    MessageMalformed,
    PayloadTooLarge,
    TooManyAttachments,
)
from congvan.storage.database import disk_trouble, duplicate_key
from congvan.storage.schema import ensure_migrated

from .deps import runtime_of
from .methods import allowed_methods

log = logging.getLogger("congvan.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _said(error: Mapping[str, Any]) -> dict[str, Any]:
    """One validation error as the API tells it: the field it is about, dotted; a body
    that is not JSON is about the body, at the character its reading stopped (FastAPI
    gives that position where a field would stand)."""
    loc = tuple(error.get("loc", ()))
    said: dict[str, Any] = {
        "field": ".".join(str(p) for p in loc if p != "body"),
        "problem": error.get("msg", ""),
        "type": error.get("type", ""),
    }
    if said["type"] == "json_invalid":
        said["field"] = "body"
        if len(loc) == 2 and isinstance(loc[1], int):
            said["position"] = loc[1]
    return said


def _too_long(found: Sequence[Any]) -> FieldTooLong | None:
    """The one validation error of a body, when it is a text over its length,
    as ``field_too_long`` (with ``max_length`` and ``length``), the code every other text
    over its limit is answered with; None for anything else."""
    if len(found) != 1 or found[0].get("type") not in ("string_too_long", "too_long"):
        return None
    error = found[0]
    if tuple(error.get("loc", ()))[:1] != ("body",):  # a header or a query: not a field
        return None
    given = error.get("input")
    if isinstance(given, SecretStr):
        given = given.get_secret_value()  # (its length only: never its text)
    if not isinstance(given, str):
        return None  # too_long: a list of too many items (a secret's text is too_long too)
    field = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    limit = (error.get("ctx") or {}).get("max_length")
    length = len(given) if isinstance(given, str) else None
    return FieldTooLong(
        f"{field} is {length} characters long; at most {limit}.",
        field=field,
        max_length=limit,
        length=length,
    )


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or {}}


def _writable(value: Any) -> Any:
    """``value`` as JSON can carry it: text that is not Unicode (a lone surrogate, which a
    JSON escape such as \\ud800 reads as) written as its escape, a number JSON has no
    form for (NaN, which Python's JSON reader takes) as text."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {_writable(str(k)): _writable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_writable(v) for v in value]
    return value


class ErrorResponse(JSONResponse):
    """An error's JSON body, answered whatever it repeats of the request.

    Details name what was refused, often by repeating it (a peer's ``format``, a rule's
    name, a field's path); a value JSON or UTF-8 cannot carry would make the answer
    itself fail, a 500 instead of the refusal. Such a value is written as its escape.
    """

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except (UnicodeEncodeError, ValueError):
            return super().render(_writable(content))


def _form_error(request: Request, cause: MultiPartException) -> CongvanError | None:
    """The multipart parser's refusal in our words: the same mistake, the same code."""
    settings = runtime_of(request).settings
    message = str(cause.message)
    if message.startswith("Too many files"):
        return TooManyAttachments(
            f"At most {settings.max_attachments} attachments.", max_items=settings.max_attachments
        )
    if "exceeded maximum size" in message:
        return PayloadTooLarge(
            "A part of the form is larger than allowed.", max_bytes=settings.max_request_bytes
        )
    parsing = str(cause.__cause__ or "")
    if parsing.startswith("Maximum header size exceeded"):
        # A header line of a part past the parser's bound (some 4 KiB): a file name of
        # thousands of bytes, as one of hundreds is answered (255 characters at most)
        return FieldTooLong(
            "A header of a form part is too long: a file name is at most 255 characters.",
            field="filename",
            max_length=255,
        )
    if parsing.startswith("Maximum header count exceeded"):
        return InvalidInput(
            "A form part carries more header lines than a part needs.", field="part headers"
        )
    return None  # a malformed body (no boundary...): 400 bad_request, with the parser's words


# The most validation errors one answer lists (the rest are counted).
MAX_ERRORS_SHOWN = 20

# Seconds a client waits before asking again while the database is unavailable.
RETRY_AFTER = 10


def database_error(
    request: Request, cause: DBAPIError
) -> DatabaseUnavailable | AlreadyExists | None:
    """What a failed statement says: a row already there (another request added it
    between our look and our insert), the database unreachable or not migrated, or
    nothing (``None``: the statement itself was wrong, which is our bug)."""
    if duplicate_key(cause):
        return AlreadyExists("This would duplicate an existing record; it was added meanwhile.")
    trouble = disk_trouble(cause)
    if trouble is not None:  # the database answers reads; writes fail until space is freed
        return DatabaseUnavailable(
            "The database cannot write: its disk is full (or failing); nothing was "
            "changed. Reads still work; the operator frees space.",
            reason=trouble,
        )
    try:
        ensure_migrated(runtime_of(request).db)
    except DatabaseNotReady as not_ready:  # its message names the database: not for clients
        return DatabaseNotReady(**not_ready.details)
    except SQLAlchemyError:
        return DatabaseUnavailable()
    if isinstance(cause, OperationalError):  # reachable again, or locked: try again
        return DatabaseUnavailable()
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CongvanError)
    async def _congvan(_request: Request, exc: CongvanError) -> ErrorResponse:
        headers = None
        if exc.http_status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        elif exc.http_status == 503:
            headers = {"Retry-After": str(RETRY_AFTER)}
        return ErrorResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> ErrorResponse:
        # Every route reads the database (a token, at least): one that is down or not
        # migrated is 503 with a code, never a 500.
        mapped = await run_in_threadpool(database_error, request, exc)
        if mapped is None:
            return await _unexpected(request, exc)
        if isinstance(mapped, AlreadyExists):
            return await _congvan(request, mapped)
        log.warning(
            "database unavailable",
            extra={
                "action": "api.database_unavailable",
                "code": mapped.code,
                "reason": mapped.details.get("reason"),
            },
        )
        return await _congvan(request, mapped)

    @app.exception_handler(PoolTimeout)
    async def _no_connection(request: Request, _exc: PoolTimeout) -> ErrorResponse:
        # Every connection of the pool stayed taken past its timeout (writers queued for a
        # database another process holds): not now, nothing done; never a 500.
        log.warning(
            "database connections all in use",
            extra={"action": "api.database_unavailable", "code": "pool_exhausted"},
        )
        busy = DatabaseUnavailable(
            "Every connection to the database stayed in use: try again shortly; nothing "
            "was changed.",
            reason="pool_exhausted",
        )
        return await _congvan(request, busy)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> ErrorResponse:
        found = exc.errors()
        too_long = _too_long(found)
        errors = [_said(e) for e in found[:MAX_ERRORS_SHOWN]]
        details: dict[str, Any] = {"errors": errors}
        if len(found) > MAX_ERRORS_SHOWN:  # a body of 45,000 unknown keys: not 45,000 lines
            details["more_errors"] = len(found) - MAX_ERRORS_SHOWN
        if "exchange" in getattr(request.scope.get("route"), "tags", ()):
            # A peer's message in a wrapper its format never has: refused for good with a
            # reason, as every refusal of a message is (a 4xx naming none reads to the
            # sender as another server's page, and is posted again).
            return await _congvan(
                request,
                MessageMalformed(
                    "The message's JSON is not what its format sends.",
                    reason="wrapper",
                    **details,
                ),
            )
        if too_long is not None:  # as every other text over its limit is answered
            return ErrorResponse(too_long.to_dict(), status_code=too_long.http_status)
        return ErrorResponse(
            error_body("invalid_input", "The request is not valid.", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> ErrorResponse:
        if isinstance(exc.__cause__, CongvanError):
            # FastAPI answers 400 to any failure while reading the body, the cause
            # attached; when the cause is ours (text not UTF-8, a key given twice...)
            # it has its own answer.
            return await _congvan(request, exc.__cause__)
        # Starlette raises it while handling the parser's own error (the context, not a cause)
        parser_error = exc.__cause__ or exc.__context__
        if isinstance(parser_error, MultiPartException):
            mapped = _form_error(request, parser_error)
            if mapped is not None:
                return await _congvan(request, mapped)
        code = getattr(exc, "code", None) or _HTTP_CODES.get(exc.status_code, "http_error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # every method served at the path, not the first route's
            allowed = allowed_methods(request.app.routes, request.scope)
            headers = {**(headers or {}), "Allow": allowed or (headers or {}).get("Allow", "")}
        return ErrorResponse(
            error_body(code, str(exc.detail), getattr(exc, "details", None)),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _exc: ClientDisconnect) -> ErrorResponse:
        # The client closed the connection before its body was in: nothing to answer and
        # nothing wrong on our side (a line, not a traceback, however many clients do it).
        log.info("client went away", extra={"action": "api.disconnect", "path": request.url.path})
        return ErrorResponse(
            error_body("client_disconnected", "The client closed the connection mid-request."),
            status_code=400,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> ErrorResponse:
        log.exception("unexpected error", extra={"action": "api.error", "path": request.url.path})
        return ErrorResponse(
            error_body("internal_error", "Something went wrong on our side; nothing was changed."),
            status_code=500,
        )
