"""What a notification says: its content rendered when queued, its e-mail text, its webhook
body, and the HMAC signature over that body.

Content is rendered from the event when the notification is queued, inside the transition's
transaction, so the message says what was true then; only the installation's public URL is
put in front of the link path when it is sent.

Webhook signatures: ``X-Congvan-Signature: sha256=<hex>`` is HMAC-SHA256 with the route's
secret over ``<timestamp>.<body>``, where ``<timestamp>`` is ``X-Congvan-Timestamp`` (Unix
seconds, the attempt's time) and ``<body>`` the exact bytes posted. A receiver recomputes
it, compares in constant time, refuses a timestamp more than :data:`REPLAY_WINDOW` away
from its own clock, and drops a ``X-Congvan-Notification-Id`` it has already taken (every
retry of one notification carries the same id).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from congvan.states.errors import InvalidInput
from congvan.states.escalation import RECEIVED_KINDS
from congvan.states.policy import written_notation
from congvan.states.timeliness import VIETNAM
from congvan.states.vocabulary import ESCALATION_KINDS, KIND_WORDS

# The headers of a webhook post.
SIGNATURE_HEADER = "X-Congvan-Signature"
TIMESTAMP_HEADER = "X-Congvan-Timestamp"
ID_HEADER = "X-Congvan-Notification-Id"
KIND_HEADER = "X-Congvan-Kind"
SIGNATURE_PREFIX = "sha256="
# How far a receiver should let a signed timestamp stray from its own clock.
REPLAY_WINDOW = timedelta(minutes=5)


# What an event may carry, each text cut to its length (a subject is at most the longest
# trích yếu a document may have).
EVENT_TEXT: dict[str, int] = {
    "escalation_id": 36,
    "severity": 30,
    "document_id": 36,
    "number_symbol": 100,
    "subject": 1000,
    "recipient_id": 35,
    "recipient_name": 300,
    # (an escalation about a document that arrived here: whom it came from)
    "received_id": 36,
    "sender_id": 35,
    "sender_name": 300,
    "what_to_do": 1000,
    "link": 500,
}
REQUIRED = ("escalation_id", "level", "severity", "what_to_do")


def render(kind: str, event: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """The content of a notification of ``kind`` about ``event``, as of ``at``.

    ``event`` carries ``escalation_id``, ``level`` (1, 2…), ``severity``, ``what_to_do`` and,
    when there is a document, ``document_id``, ``number_symbol`` (or ``number`` and
    ``symbol``, with ``legal_normative`` and ``issued_on`` for a legal normative
    document's year: written as ``states.policy.written_notation`` writes them),
    ``subject`` (trích yếu), ``recipient_id``, ``recipient_name`` and ``link`` (a path
    under the public URL).
    """
    if kind not in ESCALATION_KINDS:
        raise InvalidInput(f"No kind of escalation is named {kind!r}.", field="kind")
    missing = [name for name in REQUIRED if event.get(name) in (None, "")]
    if missing:
        raise InvalidInput(f"The event lacks {', '.join(missing)}.", field="event", missing=missing)
    level = event["level"]
    if not isinstance(level, int) or isinstance(level, bool) or level < 1:
        raise InvalidInput("The event's level is a whole number from 1.", field="level")
    fields: dict[str, Any] = {"kind": kind, "level": level}
    if not event.get("number_symbol") and (event.get("number") or event.get("symbol")):
        fields["number_symbol"] = written_notation(event)
    for name, longest in EVENT_TEXT.items():
        value = fields.get(name, event.get(name))
        if value is None:
            continue
        fields[name] = " ".join(str(value).split())[:longest]
    link = fields.get("link", "")
    if link and not link.startswith("/"):
        raise InvalidInput("The event's link is a path, e.g. /v1/documents/…", field="link")
    fields["kind_words"] = kind_words(kind, received="received_id" in fields)
    fields["at"] = at.isoformat()
    return fields


def kind_words(kind: str, *, received: bool = False) -> str:
    """The kind in Vietnamese words; about a document that arrived here (``received``),
    as its own agency is told (its clerks must register it, not wait for someone to)."""
    said = RECEIVED_KINDS.get(kind) if received else None
    if said is None:
        return KIND_WORDS[kind]
    return said[1][:1].upper() + said[1][1:]


# An escalation's severity (states/escalation.py) in the words of the e-mail's reader.
_SEVERITY_WORDS = {"normal": "bình thường", "high": "cao", "critical": "nghiêm trọng"}


def _vietnam(at: str) -> str:
    """The moment a notification was made as its Vietnamese reader counts time."""
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return at
    if moment.tzinfo is None:
        return at
    return moment.astimezone(VIETNAM).strftime("%H:%M ngày %d/%m/%Y (giờ Việt Nam)")


def email_subject(content: Mapping[str, Any]) -> str:
    """One line: the kind in words and the document, for the inbox list."""
    about = content.get("number_symbol") or content.get("subject", "")
    line = f"[congvan] {content['kind_words']}"
    return f"{line}: {about}"[:250] if about else line


def email_text(content: Mapping[str, Any], base_url: str) -> str:
    """The plain-text body in Vietnamese: what happened, to which document, what to do."""
    severity = _SEVERITY_WORDS.get(str(content["severity"]), content["severity"])
    lines = [f"{content['kind_words']} (mức {content['level']}, {severity}).", ""]
    if content.get("number_symbol"):
        lines.append(f"Số, ký hiệu văn bản: {content['number_symbol']}")
    if content.get("subject"):
        lines.append(f"Trích yếu: {content['subject']}")
    for role, label in (("recipient", "Đơn vị nhận"), ("sender", "Đơn vị gửi")):
        if content.get(f"{role}_name") or content.get(f"{role}_id"):
            name = content.get(f"{role}_name") or content[f"{role}_id"]
            code = f" ({content[f'{role}_id']})" if content.get(f"{role}_id") else ""
            lines.append(f"{label}: {name}{code}")
    lines += ["", f"Việc cần làm: {content['what_to_do']}"]
    if content.get("link"):
        lines.append(f"Xem chi tiết: {link_url(content, base_url)}")
    lines += [
        "",
        f"Mã cảnh báo: {content['escalation_id']}",
        f"Thời điểm: {_vietnam(content['at'])}",
    ]
    lines += ["", "Thư này do hệ thống congvan gửi tự động; xin đừng trả lời thư này."]
    return "\n".join(lines) + "\n"


def link_url(content: Mapping[str, Any], base_url: str) -> str:
    link = str(content.get("link") or "")
    return f"{base_url.rstrip('/')}{link}" if link else ""


def webhook_body(
    notice_id: str, agency_id: str, content: Mapping[str, Any], base_url: str
) -> bytes:
    """The JSON posted to a webhook: the same bytes on every attempt."""
    body = {
        "id": notice_id,
        "agency_id": agency_id,
        "kind": content["kind"],
        "kind_words": content["kind_words"],
        "event": {k: v for k, v in content.items() if k not in ("kind", "kind_words")},
        "url": link_url(content, base_url) or None,
        "text": email_text(content, base_url),
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


# -- signatures ---------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` posted at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


@dataclass(frozen=True)
class Verified:
    """Whether a webhook post is ours, and if not, why."""

    valid: bool
    reason: str = ""


# Seconds since 1970 up to the year 33658: more digits are no moment a sender signs.
MAX_TIMESTAMP_DIGITS = 12


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    *,
    window: timedelta = REPLAY_WINDOW,
) -> Verified:
    """Check a received post as a receiver should: signature, then the replay window.

    ``headers`` is looked up by the exact names above (pass a case-insensitive mapping,
    as web frameworks give).
    """
    signature, stamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
    if not signature or not stamp:
        return Verified(False, "missing signature or timestamp")
    # As it was signed: decimal digits (int() takes "+1", "1_000", "١"), no leading zero
    # (the signed text is the number's own), and few enough for a moment of this world
    # (int() of thousands of digits raises, as anyone may send them).
    if not (
        stamp.isascii()
        and stamp.isdigit()
        and len(stamp) <= MAX_TIMESTAMP_DIGITS
        and (stamp == "0" or not stamp.startswith("0"))
    ):
        return Verified(False, "the timestamp is not a whole number of seconds")
    timestamp = int(stamp)
    # As bytes: compare_digest refuses str holding non-ASCII, which anyone can send.
    expected = sign(secret, timestamp, body).encode()
    if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape")):
        return Verified(False, "the signature does not match")
    if abs(now.timestamp() - timestamp) > window.total_seconds():
        return Verified(False, "the timestamp is outside the replay window")
    return Verified(True)
