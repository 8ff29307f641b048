"""How a notification leaves: a signed webhook post (httpx) or an e-mail (smtplib).

Each send returns an :class:`Outcome` and never raises for what the other side does:
delivered; transient (not now: connection refused, HTTP 408/429/5xx, SMTP 4xx); unknown
(the request left and no answer came: it may have arrived, so it is sent again with the
same notification id, which the receiver deduplicates); permanent (never: HTTP 4xx, SMTP
5xx, a TLS certificate that does not verify, a server without STARTTLS when it is asked
for).

A webhook goes through the proxy the environment names (``HTTPS_PROXY``, ``HTTP_PROXY``,
``ALL_PROXY``, less the hosts in ``NO_PROXY``), as httpx itself reads them; that proxy then
decides where it may go. Posted directly, it connects only to an address the
installation allows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.message
import email.utils
import logging
import smtplib
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpcore
import httpx
from httpx._utils import get_environment_proxies

from congvan.states.networks import SETTING, Network, address_of, reachable
from congvan.states.text import printable
from congvan.states.vocabulary import (
    ATTEMPT_DELIVERED,
    ATTEMPT_PERMANENT,
    ATTEMPT_TRANSIENT,
    ATTEMPT_UNKNOWN,
)

from .notices import ID_HEADER, KIND_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from .posting import bounded_post, retry_after, tls
from .watchdog import addresses, holding, watched_client, within

log = logging.getLogger(__name__)

_RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended; ``status`` is the HTTP status or the SMTP reply code."""

    outcome: str
    status: int | None = None
    error: str = ""
    retry_after: timedelta | None = None  # what the receiver asked (Retry-After)

    @property
    def retry(self) -> bool:
        return self.outcome in (ATTEMPT_TRANSIENT, ATTEMPT_UNKNOWN)


# -- webhooks -----------------------------------------------------------------------------


_E = TypeVar("_E", bound=BaseException)


def _cause(exc: BaseException, kind: type[_E]) -> _E | None:
    """The exception of ``kind`` that ``exc`` is, or was raised from (httpx wraps the
    transport's own in its ConnectError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class TargetRefused(httpcore.ConnectError):
    """The webhook's host is, or resolves to, an address webhooks may not reach. ``why``
    says it of whatever the host is called: the name a route gives may reach the guard as
    the address it resolved to (the watchdog looks names up first), which a supervisor
    reading the error must not learn."""

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(message)
        self.why = why


class _Guarded(httpcore.NetworkBackend):
    """Connects only to addresses ``states.networks.reachable`` allows.

    The name is resolved here and the connection made to the address judged, so what was
    checked is what is reached (a name re-resolving to another address in between cannot
    slip past); TLS still checks the certificate against the name.
    """

    def __init__(self, allowed: Iterable[Network]) -> None:
        self._inner = httpcore.SyncBackend()
        self._allowed = tuple(allowed)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        refused: list[str] = []
        failed: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for *_, sockaddr in found:
            ip = str(sockaddr[0])
            address = address_of(ip)
            if address is None or not reachable(address, self._allowed):
                refused.append(ip)
                continue
            try:
                return self._inner.connect_tcp(
                    ip, port, timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        if failed is not None:
            raise failed
        # The addresses a name resolved to go to the operator's log, not into the error an
        # agency's supervisor reads: a name in the URL must not tell them what our network
        # calls by it.
        log.info(
            "webhook target refused",
            extra={"action": "notify.refused", "host": host, "addresses": refused},
        )
        why = (
            f"is at a private address webhooks may not reach ({SETTING} lists the networks "
            "they may)"
        )
        raise TargetRefused(f"{host} {why}", why=why)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - httpx never asks without uds=
        raise TargetRefused("webhooks do not go to local sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def guarded_transport(allowed: Iterable[Network]) -> httpx.HTTPTransport:
    """httpx's own transport, connecting only where webhooks may go."""
    transport = httpx.HTTPTransport(verify=tls())
    # httpx builds its pool without a way to pass a network backend: the same pool, with one.
    transport._pool = httpcore.ConnectionPool(ssl_context=tls(), network_backend=_Guarded(allowed))
    return transport


def proxied() -> dict[str, httpx.BaseTransport | None]:
    """The environment's proxies as httpx mounts: a URL pattern → a transport through
    its proxy, or None (``NO_PROXY``: directly, through the guarded transport).

    httpx mounts them itself only when no transport is given; the patterns are its own
    reading of the environment (``trust_env``). Through a proxy no address is checked
    here: the proxy resolves the name and decides.
    """
    return {
        pattern: None if proxy is None else httpx.HTTPTransport(proxy=proxy, verify=tls())
        for pattern, proxy in get_environment_proxies().items()
    }


def post_webhook(
    url: str,
    body: bytes,
    *,
    secret: str,
    notice_id: str,
    kind: str,
    timestamp: int,
    timeout: float,
    networks: Iterable[Network] = (),
    transport: httpx.BaseTransport | None = None,
) -> Outcome:
    """POST ``body`` to ``url`` signed with ``secret`` at ``timestamp`` (Unix seconds).

    Through the environment's proxy when it names one for ``url``; else it connects to
    global addresses and to those in ``networks`` only (``transport``, for tests,
    replaces the network altogether).
    """
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "congvan-notifications/1",
        ID_HEADER: notice_id,
        KIND_HEADER: kind,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    try:
        if transport is None:
            through: httpx.BaseTransport = guarded_transport(networks)
            mounts = proxied()
        else:
            through, mounts = transport, {}
        client = watched_client(
            httpx.Client(transport=through, mounts=mounts, verify=tls(), timeout=timeout)
        )
    except (ValueError, ImportError, httpx.InvalidURL) as exc:  # a proxy URL httpx cannot use
        return Outcome(ATTEMPT_TRANSIENT, None, printable(f"not sent: proxy: {exc}"))
    try:
        with client:
            # At most 1 MiB of the receiver's answer, inflated within that, in the time
            # given for the whole of it (posting.bounded_post), as a peer's
            response = bounded_post(client, url, timeout, {"content": body, "headers": headers})
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        if refused := _cause(
            exc, TargetRefused
        ):  # the route's or the network's: no retry will change it
            # said of the route's own host name, never of the address it resolved to
            said = f"{httpx.URL(url).host} {refused.why}" if refused.why else str(refused)
            return Outcome(ATTEMPT_PERMANENT, None, printable(f"not sent: {said}"))
        said = printable(f"not sent: {type(exc).__name__}: {exc}")
        if _cause(
            exc, ssl.SSLCertVerificationError
        ):  # httpx wraps it in a ConnectError: it will not heal
            return Outcome(ATTEMPT_PERMANENT, None, said)
        return Outcome(ATTEMPT_TRANSIENT, None, said)
    except httpx.ProxyError as exc:  # the proxy would not open the way: nothing left
        return _proxy_refused(str(exc))
    except (httpx.TransportError, httpx.StreamError) as exc:  # it left; no answer came
        return Outcome(ATTEMPT_UNKNOWN, None, f"no answer: {type(exc).__name__}: {exc}")
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(ATTEMPT_DELIVERED, status)
    said = printable(f"{status}: {response.text[:200]}")
    if status >= 500 or status in _RETRYABLE_STATUSES:
        return Outcome(
            ATTEMPT_TRANSIENT, status, said, retry_after(response.headers.get("Retry-After"))
        )
    # 4xx: the receiver will never take it; 3xx: the URL is not where the receiver is.
    return Outcome(ATTEMPT_PERMANENT, status, said)


def _proxy_refused(answer: str) -> Outcome:
    """The proxy answered the tunnel's CONNECT with ``answer`` (``403 Forbidden``): its
    4xx is its decision (408 and 429 but wait), anything else may pass."""
    said = printable(f"not sent: the proxy answered {answer}")
    code = answer.split(" ", 1)[0]
    status = int(code) if code.isascii() and code.isdigit() else None
    if status is not None and 400 <= status < 500 and status not in _RETRYABLE_STATUSES:
        return Outcome(ATTEMPT_PERMANENT, None, said)
    return Outcome(ATTEMPT_TRANSIENT, None, said)


# -- e-mail -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Smtp:
    """Where and how e-mail is sent (from the settings); the password is never shown."""

    host: str
    port: int
    sender: str
    timeout: float
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None  # roots the server's certificate is checked against

    def __repr__(self) -> str:
        return f"Smtp({self.host}:{self.port}, starttls={self.starttls})"

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


def literal_header(text: str) -> str:
    """``text`` (a notation, a trích yếu: typed by a clerk or a peer) as a header's value
    that says just that. Python's e-mail package decodes an RFC 2047 encoded word in a
    value it is given ("=?utf-8?q?x=0D=0ABcc:_a@b?="), a CR LF in it included, and writes
    what it decoded: headers of the typist's choosing (Bcc, Reply-To). "=?" is written
    "= ?" so that no encoded word begins, and line breaks are spaces."""
    return " ".join(text.replace("=?", "= ?").split())


def compose(
    smtp: Smtp, to: str, subject: str, text: str, *, notice_id: str
) -> email.message.EmailMessage:
    """The message: UTF-8 text, headers encoded as RFC 2047 asks, one Message-ID for life."""
    message = email.message.EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = literal_header(subject)
    message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    domain = smtp.sender.rpartition("@")[2].strip(">") or "congvan"
    message["Message-ID"] = f"<{notice_id}@{domain}>"
    message[ID_HEADER] = notice_id
    # Quoted-printable: seven bits on the wire, the ASCII of the text still readable.
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    return message


# The whole of a message's exchange with the SMTP server takes at most this many times its
# timeout, which bounds each of its steps (each read and write on the connection).
SMTP_WHOLE = 3


def send_mail(smtp: Smtp, message: email.message.EmailMessage) -> Outcome:
    """Send ``message`` through ``smtp``; SMTP 4xx is transient, 5xx permanent.

    The whole exchange is over within ``SMTP_WHOLE`` times the timeout: a server answering a
    byte at a time, each within the timeout, does not hold the sending thread for longer."""
    whole = smtp.timeout * SMTP_WHOLE
    with within(whole) as exchange:
        outcome = _send_mail(smtp, message)
    if exchange.cut and outcome.outcome != ATTEMPT_DELIVERED:
        return dataclasses.replace(
            outcome, error=f"{outcome.error} (the exchange took longer than {whole:g} s)"
        )
    return outcome


def _send_mail(smtp: Smtp, message: email.message.EmailMessage) -> Outcome:
    try:
        with _Client(smtp.host, smtp.port, timeout=smtp.timeout) as client:
            client.ehlo()
            if smtp.starttls:
                client.starttls(context=smtp.tls_context())
                client.ehlo()
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            try:
                client.send_message(message)
            except smtplib.SMTPResponseException:
                raise  # the server answered (the message, say): its code says what became of it
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                if not _message_left(client):
                    raise
                # The whole message went; the server's answer to it did not come: it may
                # have taken it (RFC 5321 4.1.1.4), so this is no failure to send again.
                lost = f"no answer to the message sent: {type(exc).__name__}: {exc}"
                return Outcome(ATTEMPT_UNKNOWN, None, lost)
    except smtplib.SMTPRecipientsRefused as exc:
        code, said = next(iter(exc.recipients.values()))
        return _replied(code, said)
    except smtplib.SMTPResponseException as exc:
        return _replied(exc.smtp_code, exc.smtp_error)
    except smtplib.SMTPNotSupportedError as exc:
        return Outcome(ATTEMPT_PERMANENT, None, f"the server does not offer it: {exc}")
    except ssl.SSLCertVerificationError as exc:
        return Outcome(ATTEMPT_PERMANENT, None, f"TLS: {exc.verify_message or exc}")
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, cut off
        return Outcome(ATTEMPT_TRANSIENT, None, f"{type(exc).__name__}: {exc}")
    return Outcome(ATTEMPT_DELIVERED, 250)


def _message_left(client: smtplib.SMTP) -> bool:
    """Whether the message's end (``<CRLF>.<CRLF>``) was sent before the connection failed:
    ``smtplib`` sends it whole in ``data()``, then reads the answer."""
    return isinstance(client, _Client) and client.sent_end


class _Client(smtplib.SMTP):
    """``smtplib.SMTP`` that remembers whether a message's end went out, and tells the
    exchange (``watchdog``) of its connection."""

    sent_end = False

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # The name looked up within the exchange's time, then each address in turn.
        found = addresses(host, port, timeout) or [host]
        for address in found[:-1]:
            with contextlib.suppress(OSError):
                return self._connected(address, port, timeout)
        return self._connected(found[-1], port, timeout)

    def _connected(self, address: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(address, port, timeout)  # type: ignore[misc]  # untyped
        holding(sock)  # shut at the exchange's deadline (watchdog), the greeting's read too
        return sock  # type: ignore[no-any-return]

    def starttls(self, *args: Any, **kwargs: Any) -> Any:
        answer = super().starttls(*args, **kwargs)
        holding(self.sock)  # the same connection, now under TLS
        return answer

    def send(self, s: Any) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.sent_end = True


def _replied(code: int, said: bytes | str) -> Outcome:
    if not 200 <= code <= 599 or isinstance(said, str):
        # smtplib's own reading, not a code the server sent: a reply that is no SMTP (-1),
        # or a line past its limit ("500 Line too long." is smtplib's): nothing it decided.
        error = printable(f"the server's reply is not SMTP: {said!r}"[:300])
        return Outcome(ATTEMPT_TRANSIENT, None, error)
    text = said.decode("utf-8", "replace")
    error = printable(f"{code} {text}")
    if 400 <= code < 500:
        return Outcome(ATTEMPT_TRANSIENT, code, error)
    return Outcome(ATTEMPT_PERMANENT, code, error)
