"""How this process posts to other systems over HTTP: one pooled client, TLS made once.

Deliveries, status messages and webhooks all go out through here: ``post`` (a peer's
inbox or status route; a test's transport when given), ``tls`` (httpx's default TLS
settings, made once), which answers mean "not now" rather than "never", which answers are
a peer's refusal of what it was sent (``refusal_of``), and how long a ``Retry-After`` asks
to wait.
"""

from __future__ import annotations

import atexit
import email.utils
import functools
import json
import re
import ssl
import time
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

# httpx imports httpcore (and with it trio, when installed) only when its first client is
# made: about 50 ms of CPU, which a worker would otherwise spend inside its first post, on
# a peer's clock. Imported here, it is paid when the worker starts.
import httpcore  # noqa: F401
import httpx

from congvan.states.text import printable

from .processes import PerProcess
from .watchdog import watched_client, within

# Answers that say "not now" rather than "never" (5xx too).
NOT_NOW = frozenset({408, 425, 429})


@functools.cache
def tls() -> ssl.SSLContext:
    """httpx's default TLS settings, made once per process for every post to a peer.

    A new ``httpx.Client`` builds them by loading the CA bundle, about 35 ms of CPU: more
    than the rest of a delivery attempt to a peer on the same network.
    """
    return httpx.create_ssl_context()


def _pool() -> httpx.Client:
    """A client for posts to peers over the network (see :data:`_pooled`)."""
    client = watched_client(httpx.Client(verify=tls()))
    atexit.register(client.close)  # its kept-alive connections, at the end
    return client


# This process's client for posts to peers over the network, made on first use. Its
# connections stay open between posts (HTTP keep-alive), so a peer posted to again is not
# connected to anew each time: no TCP (and TLS) handshake on either side. httpx's connection
# pool is shared by threads; a process started by fork makes its own.
_pooled = PerProcess(_pool)


def post(
    transport: httpx.BaseTransport | None, url: str, *, timeout: float, **request: Any
) -> httpx.Response:
    """POST to a peer: through ``transport`` when one is given (tests), else the network.

    Over the network the process's pooled client is used, with this post's ``timeout``
    (which also bounds the wait for a free connection: ``httpx.PoolTimeout``).
    """
    if transport is not None:
        with httpx.Client(transport=transport, verify=tls(), timeout=timeout) as client:
            return bounded_post(client, url, timeout, request)
    return bounded_post(_pooled.get(), url, timeout, request)


# The most of a peer's answer read: a receipt, a status answer or an error body is a few
# kilobytes; what comes past this is left unread (the connection is closed).
MAX_ANSWER_BYTES = 1 << 20


def bounded_post(
    client: httpx.Client, url: str, timeout: float, request: dict[str, Any]
) -> httpx.Response:
    """POST and read at most ``MAX_ANSWER_BYTES`` of the answer, within ``timeout`` for
    the whole of it: a peer (or whatever answers at its address) cannot make this process
    hold a body of any size, inflate a small one into gigabytes, or keep it reading a byte
    at a time -- its head, its body, the TLS handshake before them, or its taking of the
    request (``watchdog``). A longer body is cut there, and so no receipt, refusal or status
    answer: it is tried again; an answer still coming at the end of ``timeout`` is one whose
    outcome is unknown (``httpx.ReadTimeout``); a connection not made by then, nothing sent
    (``httpx.ConnectTimeout``)."""
    with within(timeout) as exchange:
        try:
            return _read_bounded(client, url, timeout, request)
        except httpx.TransportError as exc:
            if not exchange.cut:
                raise
            # Its sockets were shut at the deadline (watchdog): over the time, not broken.
            if exchange.wrote:
                raise httpx.ReadTimeout(
                    f"no whole answer within {timeout:g} s", request=exc.request
                ) from exc
            raise httpx.ConnectTimeout(
                f"not connected within {timeout:g} s", request=exc.request
            ) from exc


def _read_bounded(
    client: httpx.Client, url: str, timeout: float, request: dict[str, Any]
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    headers = {**request.pop("headers", {}), "Accept-Encoding": "identity"}
    with client.stream("POST", url, timeout=timeout, headers=headers, **request) as streamed:
        # As sent, decoded here within the bound; a test's transport may hand an answer
        # made whole in memory, read (and decoded) already: taken as it is.
        chunks: Iterable[bytes]
        if streamed.is_stream_consumed:
            chunks, coding = [streamed.content], "identity"
        else:
            chunks = streamed.iter_raw()
            coding = streamed.headers.get("Content-Encoding", "identity").strip().lower()
        inflate = _inflater(coding)
        body = bytearray()
        for chunk in chunks:
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout(
                    f"the answer was still coming after {timeout:g} s", request=streamed.request
                )
            if inflate is None:  # a coding not asked for nor known: not read
                continue
            body += inflate(chunk, MAX_ANSWER_BYTES + 1 - len(body))
            if len(body) > MAX_ANSWER_BYTES:
                del body[MAX_ANSWER_BYTES:]
                break
    # The body is kept decoded and perhaps cut: its length and coding are not the wire's.
    dropped = (b"content-length", b"content-encoding", b"transfer-encoding")
    kept = [(k, v) for k, v in streamed.headers.raw if k.lower() not in dropped]
    return httpx.Response(
        streamed.status_code, headers=kept, content=bytes(body), request=streamed.request
    )


def _inflater(coding: str) -> Callable[[bytes, int], bytes] | None:
    """How to decode an answer sent in ``coding`` a chunk at a time, never more than the
    room left; None for a coding not read (several at once, or one we did not ask for and
    do not know: the answer then has no body, as one cut short)."""
    if coding in ("", "identity"):
        return lambda chunk, _room: chunk
    if coding not in ("gzip", "x-gzip", "deflate"):
        return None
    # 16 + MAX_WBITS reads a gzip member; 32 + MAX_WBITS a zlib or gzip stream (deflate).
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in coding else 32 + zlib.MAX_WBITS)

    def inflate(chunk: bytes, room: int) -> bytes:
        try:
            return decoder.decompress(decoder.unconsumed_tail + chunk, max(room, 1))
        except zlib.error:
            return b""  # damaged: what was read stands, and is no receipt

    return inflate


def json_of(response: httpx.Response) -> Any:
    """A peer's answer read as JSON, or ValueError: it may hold anything, nested as deep as
    it likes (which ``json.loads`` answers with RecursionError)."""
    try:
        return json.loads(response.content)
    except RecursionError as exc:
        raise ValueError("the answer nests deeper than JSON is read here") from exc


def refusal_of(response: httpx.Response) -> str | None:
    """The peer's reason when a 4xx answer refuses what was posted; None for any other.

    A peer refuses a package or a status message with an error body whose ``code`` and
    ``details.reason`` say why (README, exchange formats). Any other 4xx -- a proxy's or a
    web server's page, a 404 or 405 for a path that is not the peer's inbox, a gateway's
    401 -- says nothing of what the peer thinks of the message: it is no refusal, and the
    message is posted again, as after a 5xx, until its attempts run out (failed, which a
    supervisor may resend once the address is right; a refusal stands for good).
    """
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = json_of(response)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("code"), str) or not body["code"]:
        return None
    details = body.get("details")
    reason = details.get("reason") if isinstance(details, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        return None
    return printable(reason)[:100]


def answer_said(response: httpx.Response) -> str:
    """What a peer answered, in a line we can store: its code, reason and message when it
    answered an error body, else the start of its text (a peer's answer may hold anything)."""
    try:
        body = json_of(response)
        details = body.get("details") or {}
        reason = details.get("reason", "")
        said = f"{response.status_code} {body.get('code', '')} {reason}: {body.get('message', '')}"
    except (ValueError, AttributeError):
        said = f"{response.status_code}: {response.text[:200]}"
    return printable(said)


# The longest wait a peer may impose through Retry-After.
_MAX_RETRY_AFTER = timedelta(hours=6)
# Its delay in seconds: ASCII digits (a minus sign taken as no wait at all).
_SECONDS = re.compile(r"-?[0-9]+", re.ASCII)


def retry_after(value: str | None) -> timedelta | None:
    """A Retry-After header (RFC 9110 10.2.3: seconds or an HTTP date), within 0 and six
    hours; None when absent or not either form."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        if value.startswith("-"):
            return timedelta(0)
        # Capped before it becomes a number: a peer's 30 digits overflow a timedelta, and
        # 5000 pass what Python converts at all.
        digits = value.lstrip("0") or "0"
        cap = int(_MAX_RETRY_AFTER.total_seconds())
        seconds = cap if len(digits) > len(str(cap)) else min(int(digits), cap)
        return timedelta(seconds=seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime's form, or "-0000": an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    wait = when - datetime.now(UTC)
    return min(max(wait, timedelta(0)), _MAX_RETRY_AFTER)
