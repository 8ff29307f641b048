"""The ``notify`` command: notification routes, the dead-letter list, and sending one again.

A webhook's secret is read from a file (or standard input), never from the command line
where other users of the machine could see it, and never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from congvan.states.errors import InvalidInput, NotFound
from congvan.states.vocabulary import NOTICE_DEAD, NOTIFICATION_CHANNELS

from ..settings import Settings
from . import files
from .files import read_text_bounded
from .runtime import Subparsers, runtime_for


def add_parser(sub: Subparsers) -> None:
    from ..notifications import ROUTE_KINDS

    p = sub.add_parser(
        "notify",
        help="notification routes (webhook, e-mail), dead letters, retries",
        description="Who each agency notifies of which escalations, by webhook (signed with "
        "HMAC-SHA256) or e-mail; notifications that could not be sent (dead letters).",
    )
    nsub = p.add_subparsers(dest="action", required=True)
    a = nsub.add_parser("add", help="add a route")
    a.add_argument("agency_id", metavar="AGENCY_ID")
    a.add_argument("kind", metavar="KIND", choices=ROUTE_KINDS, help="an escalation kind, or *")
    a.add_argument("channel", metavar="CHANNEL", choices=NOTIFICATION_CHANNELS)
    a.add_argument("target", metavar="TARGET", help="the webhook's URL or an e-mail address")
    a.add_argument(
        "--secret-file",
        metavar="FILE",
        help="a webhook's signing secret, read from FILE (- for standard input)",
    )
    a.add_argument("--disabled", action="store_true", help="add it switched off")
    a.add_argument(
        "--allow-http", action="store_true", help="accept a plain http URL to a non-loopback host"
    )
    a = nsub.add_parser("list", help="list the routes (the secrets are never shown)")
    a.add_argument("agency_id", metavar="AGENCY_ID", nargs="?", help="one agency's only")
    a.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    for name, what in (("remove", "remove"), ("enable", "switch on"), ("disable", "switch off")):
        a = nsub.add_parser(name, help=f"{what} a route")
        a.add_argument("route_id", metavar="ROUTE_ID")
    a = nsub.add_parser("dead-letters", help="notifications given up on, newest first")
    a.add_argument("--agency", metavar="AGENCY_ID", help="one agency's only")
    a.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    a.add_argument("--json", action="store_true", help="one JSON array instead of lines")
    a = nsub.add_parser("show", help="one notification with every attempt, as JSON")
    a.add_argument("notification_id", metavar="ID")
    a = nsub.add_parser("retry", help="send a dead or cancelled notification again")
    a.add_argument("notification_id", metavar="ID")
    p.set_defaults(func=cmd_notify)


def _secret(name: str | None) -> str | None:
    if name is None:
        return None
    if name == "-":
        text = sys.stdin.read(files.SECRET + 1)
        if len(text) > files.SECRET:
            raise InvalidInput(f"A secret is at most {files.SECRET} characters.", field="secret")
    else:
        text = read_text_bounded(name, "secret", files.SECRET)
    return text.strip()


def cmd_notify(args: argparse.Namespace, settings: Settings) -> int:
    from congvan.actions import notifications as notifying

    from .. import notifications as managing
    from ..directory import existing_agency

    with runtime_for(settings) as store, store.uow() as uow:
        now = store.clock()
        if args.action == "add":
            route = managing.add_route(
                uow,
                args.agency_id,
                kind=args.kind,
                channel=args.channel,
                target=args.target,
                secret=_secret(args.secret_file),
                enabled=not args.disabled,
                by="cli",
                now=now,
                allow_http=args.allow_http,
                networks=settings.private_networks(),
            )
            uow.commit()
            print(f"added route {route.id}: {_route_line(managing.route_view(route))}")
            return 0
        if args.action == "list":
            if args.agency_id is not None:
                existing_agency(uow, args.agency_id)
            views = [managing.route_view(r) for r in uow.notifications.routes(args.agency_id)]
            if args.json:
                print(json.dumps(views, ensure_ascii=False, indent=2))
            elif not views:
                print("no notification routes")
            for view in [] if args.json else views:
                print(f"{view['id']}  {_route_line(view)}")
            return 0
        if args.action in ("remove", "enable", "disable"):
            found = uow.notifications.route(args.route_id)
            if found is None:
                raise NotFound("No such notification route.", route_id=args.route_id[:36])
            now = store.clock()
            if args.action == "remove":
                managing.remove_route(uow, found.id, found.agency_id, now)
            else:
                on = args.action == "enable"
                managing.set_enabled(uow, found.id, found.agency_id, on, now)
            uow.commit()
            print(f"route {found.id}: {args.action}d")
            return 0
        if args.action == "dead-letters":
            if not 1 <= args.limit <= 10_000:
                raise InvalidInput("--limit is from 1 to 10000.", field="limit")
            if args.agency is not None:  # a typo is not "nothing dead"
                existing_agency(uow, args.agency)
            dead = uow.notifications.page(args.agency, NOTICE_DEAD, limit=args.limit)
            views = [managing.notice_view(n) for n in dead]
            if args.json:
                print(json.dumps(views, ensure_ascii=False, indent=2))
            elif not views:
                print("no dead notifications")
            for view in [] if args.json else views:
                print(
                    f"{view['id']}  {view['agency_id']}  {view['kind']:<20} {view['channel']:<7} "
                    f"{view['target']}  {view['attempts']} attempts"
                )
                print(f"    {view['last_error']}")
            return 0
        notice = managing.notice_of(uow, args.notification_id, None)
        if args.action == "show":
            view = managing.notice_view(notice, uow.notifications.attempts_of(notice.id))
            print(json.dumps(view, ensure_ascii=False, indent=2))
            return 0
        notifying.retry(uow, notice.id, None, now)
        uow.commit()
        print(f"notification {notice.id} will be sent again")
    return 0


def _route_line(view: dict[str, Any]) -> str:
    state = "" if view["enabled"] else " (disabled)"
    secret = " [signed]" if view["has_secret"] else ""
    return (
        f"{view['agency_id']}  {view['kind']:<20} {view['channel']:<7} {view['target']}"
        f"{secret}{state}"
    )
