"""Managing notifications: each agency's routes, and the views of what was sent or died.

The API and the CLI both come here, so a route is checked the same way from either, and
a route's secret never leaves: views say only whether one is set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from email.errors import MessageError
from email.headerregistry import Address
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from email_validator import EmailNotValidError, validate_email

from congvan.states.errors import AlreadyExists, InvalidInput, NotFound
from congvan.states.inboxes import echoed, validate_inbox_url
from congvan.states.networks import SETTING, Network, refused_host
from congvan.states.vocabulary import (
    ESCALATION_KINDS,
    EVERY_KIND,
    NOTIFICATION_CHANNELS,
    NOTIFY_WEBHOOK,
    RISEN_KIND,
)
from congvan.storage.ids import new_id
from congvan.storage.notifications import AttemptRow, NoticeRow, RouteRow
from congvan.storage.unit_of_work import UnitOfWork

ROUTE_KINDS = (*ESCALATION_KINDS, EVERY_KIND, RISEN_KIND)
SECRET_MIN, SECRET_MAX = 32, 256
EMAIL_MAX = 254


def validate_secret(secret: str | None) -> str:
    """A webhook secret: printable ASCII without spaces, long enough not to be guessed."""
    if not secret:
        raise InvalidInput(
            f"A webhook route needs a secret of {SECRET_MIN} to {SECRET_MAX} characters "
            "(e.g. `openssl rand -hex 32`); it signs every post.",
            field="secret",
        )
    if not SECRET_MIN <= len(secret) <= SECRET_MAX:
        raise InvalidInput(
            f"The secret has {SECRET_MIN} to {SECRET_MAX} characters.",
            field="secret",
            min_length=SECRET_MIN,
            max_length=SECRET_MAX,
        )
    if not secret.isascii() or not secret.isprintable() or " " in secret:
        raise InvalidInput(
            "The secret is printable ASCII without spaces.", field="secret"
        )  # never echoed: the details name the field only
    return secret


def validate_address(address: str) -> str:
    """One e-mail address (user@domain), as an SMTP envelope takes it."""
    problem = ""
    if not address or len(address) > EMAIL_MAX:
        problem = f"is an e-mail address of at most {EMAIL_MAX} characters"
    elif not address.isascii() or any(
        c.isspace() or not c.isprintable() or c in "<>,;\"'()" for c in address
    ):
        problem = (
            "is one plain ASCII address (user@domain, a Vietnamese domain in its xn-- form), "
            "without spaces, names or brackets"
        )
    else:
        try:
            parsed = Address(addr_spec=address)
        except (ValueError, LookupError, MessageError):
            problem = "is not an e-mail address user@domain"
        else:
            if (
                parsed.addr_spec != address
                or not parsed.username
                or "." not in parsed.domain.strip(".")
            ):
                problem = "is an address user@domain with a domain such as so.gov.vn"
            elif any(c in parsed.username for c in "%!"):
                # user%host@relay, host!user@relay: the relay passes it on to another host
                problem = "is an address user@domain, not one routed on through another host"
            else:
                problem = _domain_problem(address)
    if problem:
        raise InvalidInput(f"target {problem}.", field="target", value=address[:100])
    user, domain = address.rsplit("@", 1)
    return f"{user}@{domain.lower().rstrip('.')}"  # a domain in one case: one address


def _domain_problem(address: str) -> str:
    """Why the domain of ``address`` is no domain mail may be sent to, or "": by
    ``email-validator`` (RFC 5321 4.1.2, 5322 3.4.1; no address literal such as
    ``[10.0.0.1]``, no bare IP address, no label starting or ending with a hyphen, no
    special-use name such as localhost). The relay would carry it to whatever host the
    address names, an internal one too."""
    try:
        validate_email(
            address,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            globally_deliverable=True,
        )
    except EmailNotValidError as exc:
        return f"is an address user@domain with a domain mail is sent to ({exc})"
    top = address.rsplit(".", 1)[-1].lower()
    if top in _PRIVATE_TOP_LEVEL or len(top) < 2:
        return f"is an address on a domain of the public internet, not .{top[:20]}"
    return ""


# Top-level names kept for private networks (ICANN reserved .internal in 2024; the others
# are never delegated and name office networks): mail there goes to an internal host.
_PRIVATE_TOP_LEVEL = frozenset({"internal", "intranet", "lan", "home", "corp", "private"})


def add_route(
    uow: UnitOfWork,
    agency_id: str,
    *,
    kind: str,
    channel: str,
    target: str,
    secret: str | None,
    enabled: bool = True,
    by: str,
    now: datetime,
    allow_http: bool = False,
    networks: Iterable[Network] = (),
) -> RouteRow:
    """Add a route of ``agency_id``; the same (kind, channel, target) twice is refused.

    A webhook whose host is written as a private address (or ``localhost``) is refused
    unless ``networks`` allows it; a name is judged at each post, on what it resolves to.
    """
    if uow.agencies.agency(agency_id) is None:
        raise NotFound("No such agency.", agency_id=agency_id[:35])
    if kind not in ROUTE_KINDS:
        raise InvalidInput(
            f"kind is one of {', '.join(ROUTE_KINDS)}.", field="kind", allowed=list(ROUTE_KINDS)
        )
    if channel not in NOTIFICATION_CHANNELS:
        raise InvalidInput(
            f"channel is {' or '.join(NOTIFICATION_CHANNELS)}.",
            field="channel",
            allowed=list(NOTIFICATION_CHANNELS),
        )
    if channel == NOTIFY_WEBHOOK:
        target = validate_inbox_url(target, allow_http=allow_http, field="target", path_shown=False)
        refused = refused_host(urlsplit(target).hostname or "", networks)
        if refused is not None:
            raise InvalidInput(
                f"target is at {refused}, a private address webhooks may not reach; the "
                f"installation lists the networks they may in {SETTING}.",
                field="target",
                value=echoed(target, path=False)[:100],
            )
        secret = validate_secret(secret)
    else:
        target = validate_address(target)
        if secret:
            raise InvalidInput("An e-mail route takes no secret.", field="secret")
        secret = None
    uow.notifications.hold_adding(agency_id)
    if uow.notifications.find_route(agency_id, kind, channel, target) is not None:
        raise AlreadyExists("The agency already has this route.", kind=kind, channel=channel)
    route_id = new_id()
    uow.notifications.add_route(
        {
            "id": route_id,
            "agency_id": agency_id,
            "kind": kind,
            "channel": channel,
            "target": target,
            "secret": secret,
            "enabled": enabled,
            "created_by": by[:200],
            "created_at": now,
        }
    )
    found = uow.notifications.route(route_id)
    assert found is not None
    return found


def route_of(uow: UnitOfWork, route_id: str, agency_id: str) -> RouteRow:
    """The agency's route; another agency's, or none, is not found."""
    route = uow.notifications.route(route_id, agency_id) if _plausible(route_id) else None
    if route is None:
        raise NotFound("No such notification route.", route_id=route_id[:36])
    return route


def remove_route(uow: UnitOfWork, route_id: str, agency_id: str, now: datetime) -> None:
    """Remove the agency's route; notifications it queued and not yet sent are cancelled
    (one whose attempt is out is recorded as it went). Of two removals at once, the second
    finds nothing to remove: not found."""
    route_of(uow, route_id, agency_id)
    if not uow.notifications.remove_route(route_id, agency_id):
        raise NotFound("No such notification route.", route_id=route_id[:36])
    uow.notifications.cancel_queued(route_id, "the route was removed", now)


def set_enabled(
    uow: UnitOfWork, route_id: str, agency_id: str, enabled: bool, now: datetime
) -> RouteRow:
    """Switch the agency's route on or off; off, what it queued and not yet sent is
    cancelled (retried by hand once it is on again)."""
    route_of(uow, route_id, agency_id)
    uow.notifications.set_enabled(route_id, agency_id, enabled)
    if not enabled:
        uow.notifications.cancel_queued(route_id, "the route is disabled", now)
    return route_of(uow, route_id, agency_id)


def notice_of(uow: UnitOfWork, notice_id: str, agency_id: str | None) -> NoticeRow:
    notice = uow.notifications.get(notice_id, agency_id) if _plausible(notice_id) else None
    if notice is None:
        raise NotFound("No such notification.", notification_id=notice_id[:36])
    return notice


def _plausible(row_id: str) -> bool:
    # An id no row can have is not found: never cut down to one that exists, nor a NUL
    # sent to PostgreSQL, which refuses it.
    return len(row_id) <= 36 and "\x00" not in row_id


# -- views ----------------------------------------------------------------------------------


def route_view(route: RouteRow) -> dict[str, Any]:
    """A route as shown: whether it has a secret, never the secret."""
    return {
        "id": route.id,
        "agency_id": route.agency_id,
        "kind": route.kind,
        "channel": route.channel,
        "target": route.target,
        "has_secret": bool(route.secret),
        "enabled": route.enabled,
        "created_by": route.created_by,
        "created_at": route.created_at.isoformat(),
    }


def shown_target(channel: str, target: str) -> str:
    """A webhook's address as those who may not read routes see it: its origin only (a
    path or query may carry the receiver's token). A mailbox is shown whole."""
    return echoed(target, path=False) if channel == "webhook" else target


# A receiver's answer begins its error with the HTTP status (``404: Cannot POST /hooks/…``).
_ANSWERED = re.compile(r"(\d{3}): ")


def _error_shown(channel: str, target: str, error: str) -> str:
    """An attempt's error as those who see a webhook by its origin see it: the receiver's
    answer (which may repeat the path it was posted to, token and all, in any form) by its
    status alone, and the address, written any way, by its origin."""
    if channel != "webhook":
        return error
    answered = _ANSWERED.match(error)
    if answered:
        return f"{answered.group(1)}: the receiver's answer is shown to operators"
    origin = shown_target(channel, target)
    parts = urlsplit(target)
    hidden = [target, parts.path + (f"?{parts.query}" if parts.query else ""), parts.query]
    for secret in sorted({h for h in hidden if len(h) > 1}, key=len, reverse=True):
        for written in {secret, unquote(secret), quote(unquote(secret), safe="/")}:
            error = error.replace(written, origin if secret == target else "…")
    return error


def notice_view(
    notice: NoticeRow, attempts: list[AttemptRow] | None = None, *, whole_target: bool = True
) -> dict[str, Any]:
    """A notification as shown; ``whole_target`` False: its webhook's origin only, in its
    errors too (for those who may read notifications but not the routes they went by)."""
    content = json.loads(notice.content)
    target = notice.target if whole_target else shown_target(notice.channel, notice.target)

    def said(error: str) -> str:
        return error if whole_target else _error_shown(notice.channel, notice.target, error)

    view: dict[str, Any] = {
        "id": notice.id,
        "agency_id": notice.agency_id,
        "route_id": notice.route_id,
        "kind": notice.kind,
        "channel": notice.channel,
        "target": target,
        "escalation_id": notice.escalation_id,
        "document_id": notice.document_id,
        "state": notice.state,
        "attempts": notice.attempts,
        "last_error": said(notice.last_error),
        "created_at": notice.created_at.isoformat(),
        "updated_at": notice.updated_at.isoformat(),
        "sent_at": notice.sent_at.isoformat() if notice.sent_at else None,
        "content": content,
    }
    if attempts is not None:
        view["attempt_log"] = [
            {
                "attempt": a.attempt,
                "started_at": a.started_at.isoformat(),
                "finished_at": a.finished_at.isoformat(),
                "outcome": a.outcome,
                "status": a.status,
                "error": said(a.error),
            }
            for a in attempts
        ]
    return view
