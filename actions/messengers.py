"""How a notification leaves: a signed webhook post (httpx) or an e-mail (smtplib).

Each send returns an :class:`Outcome` and never raises for what the other side does:
delivered; transient (not now: connection refused, HTTP 408/429/5xx, SMTP 4xx); unknown
(the request left and no answer came: it may have arrived, so it is sent again with the
same notification id, which the receiver deduplicates); permanent (never: HTTP 4xx, SMTP
5xx, a TLS certificate that does not verify, a server without STARTTLS when it is asked
for).
"""

from __future__ import annotations

import email.message
import email.utils
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from congvan.states.text import printable
from congvan.states.vocabulary import (
    ATTEMPT_DELIVERED,
    ATTEMPT_PERMANENT,
    ATTEMPT_TRANSIENT,
    ATTEMPT_UNKNOWN,
)

from .delivery import _retry_after as retry_after
from .delivery import tls
from .notices import ID_HEADER, KIND_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

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


def _certificate_refused(exc: BaseException) -> bool:
    """Whether the connection failed because the receiver's TLS certificate did not verify."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def post_webhook(
    url: str,
    body: bytes,
    *,
    secret: str,
    notice_id: str,
    kind: str,
    timestamp: int,
    timeout: float,
    transport: httpx.BaseTransport | None = None,
) -> Outcome:
    """POST ``body`` to ``url`` signed with ``secret`` at ``timestamp`` (Unix seconds)."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "congvan-notifications/1",
        ID_HEADER: notice_id,
        KIND_HEADER: kind,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    try:
        with httpx.Client(transport=transport, verify=tls(), timeout=timeout) as client:
            response = client.post(url, content=body, headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        said = printable(f"not sent: {type(exc).__name__}: {exc}")
        if _certificate_refused(exc):  # httpx wraps it in a ConnectError: it will not heal
            return Outcome(ATTEMPT_PERMANENT, None, said)
        return Outcome(ATTEMPT_TRANSIENT, None, said)
    except httpx.TransportError as exc:  # the request left; its answer did not come
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


def compose(
    smtp: Smtp, to: str, subject: str, text: str, *, notice_id: str
) -> email.message.EmailMessage:
    """The message: UTF-8 text, headers encoded as RFC 2047 asks, one Message-ID for life."""
    message = email.message.EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    domain = smtp.sender.rpartition("@")[2].strip(">") or "congvan"
    message["Message-ID"] = f"<{notice_id}@{domain}>"
    message[ID_HEADER] = notice_id
    # Quoted-printable: seven bits on the wire, the ASCII of the text still readable.
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    return message


def send_mail(smtp: Smtp, message: email.message.EmailMessage) -> Outcome:
    """Send ``message`` through ``smtp``; SMTP 4xx is transient, 5xx permanent."""
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
            client.ehlo()
            if smtp.starttls:
                client.starttls(context=smtp.tls_context())
                client.ehlo()
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(message)
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


def _replied(code: int, said: bytes | str) -> Outcome:
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    error = printable(f"{code} {text}")
    if 400 <= code < 500:
        return Outcome(ATTEMPT_TRANSIENT, code, error)
    return Outcome(ATTEMPT_PERMANENT, code, error)
