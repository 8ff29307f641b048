"""The ``documents`` command: a document as the API shows it."""

from __future__ import annotations

import argparse
import json

from congvan.actions.context import Actor
from congvan.states.document import UPDATABLE
from congvan.states.errors import InvalidInput, NotFound

from ..settings import Settings
from .runtime import Subparsers, runtime_for, whole_number


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("documents", help="read documents; recall, update or replace a sent one")
    dsub = p.add_subparsers(dest="action", required=True)
    d = dsub.add_parser("list", help="an agency's documents, newest first: id, notation, state")
    d.add_argument("--agency", required=True, help="the agency's id")
    d.add_argument("--state", action="append", default=[], help="only in this state (repeatable)")
    d.add_argument(
        "--limit",
        type=whole_number("a limit", 1, 500),
        default=50,
        help="at most this many (1 to 500; 50)",
    )
    d.add_argument("--json", action="store_true", help="as GET /v1/documents lists them")
    d.set_defaults(func=cmd_list)
    d = dsub.add_parser("show", help="a document, its signer and its signing's timeliness")
    d.add_argument("id", help="the document's id")
    d.add_argument("--json", action="store_true", help="the whole view, as GET returns it")
    d.set_defaults(func=cmd_documents)
    for action, text in (
        ("recall", "recall a sent document (thu hồi): its recipients are asked to take it back"),
        ("update", "correct a sent document's metadata (cập nhật): its recipients must agree"),
        ("replace", "draft the corrected document that replaces a sent one (thay thế)"),
    ):
        r = dsub.add_parser(action, help=text)
        r.add_argument("id", help="the document's id")
        r.add_argument("--reason", required=True, help="why (the recipients read it)")
        r.add_argument(
            "--as",
            dest="username",
            required=True,
            help="the user of the document's agency who does it (a supervisor or signer)",
        )
        if action == "update":
            r.add_argument(
                "--set",
                dest="changes",
                action="append",
                required=True,
                metavar="FIELD=VALUE",
                help=f"a corrected field ({', '.join(UPDATABLE)}); FIELD= clears it",
            )
        r.set_defaults(func=cmd_request)


def cmd_request(args: argparse.Namespace, settings: Settings) -> int:
    """Recall, update or replace a sent document as one of its agency's users.

    The request's delivery jobs are written to the outbox; the installation's workers
    deliver them as they deliver any document.
    """
    with runtime_for(settings, wired=True) as runtime:
        with runtime.uow(readonly=True) as uow:
            head = uow.documents.head(args.id)
            user = None if head is None else uow.agencies.user(head.agency_id, args.username)
        if head is None:
            raise NotFound("No such document.", document_id=args.id)
        if user is None:
            raise NotFound(f"No user {args.username} in {head.agency_id}.", username=args.username)
        actor = Actor(
            name=f"{user.username}@{user.agency_id}",
            agency_id=user.agency_id,
            roles=frozenset(r for r in user.roles.split(",") if r),
        )
        if args.action == "replace":
            view = runtime.engine.create_replacement(actor, args.id, args.reason)
            print(f"replacement   {view['id']} (draft) replaces {args.id}")
            return 0
        data: dict[str, object] = {"reason": args.reason}
        if args.action == "update":
            data["fields"] = _changes(args.changes)
        result = runtime.engine.fire(args.id, args.action, actor, data=data)
        print(f"{args.action:<13} {args.id} sent to its recipients (version {result.version})")
    return 0


def _changes(given: list[str]) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"--set takes FIELD=VALUE, not {item!r}.", field="set")
        changes[name.strip()] = value or None
    return changes


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """The agency's documents, newest first, one line each (their ids for ``show``)."""
    from congvan.states.document import DOCUMENT

    from ..directory import existing_agency
    from ..views import summary

    unknown = sorted(set(args.state) - set(DOCUMENT.states))
    if unknown:
        raise InvalidInput(
            f"No state {', '.join(unknown)}: a document is {', '.join(DOCUMENT.states)}.",
            field="state",
        )
    with runtime_for(settings) as runtime, runtime.uow(readonly=True) as uow:
        existing_agency(uow, args.agency)
        page = uow.documents.page(args.agency, states=args.state, limit=args.limit)
    items = [summary(row) for row in page.items]
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
        return 0
    if not items:
        print(f"no documents{' in ' + ', '.join(args.state) if args.state else ''}")
    for item in items:
        subject = " ".join(str(item["subject"]).split())
        print(f"{item['id']}  {item['notation'] or '—':<22} {item['state']:<13} {subject}")
    if page.next_cursor:
        print(f"(more: --limit {min(args.limit * 2, 500)}, or GET /v1/documents pages them all)")
    return 0


def cmd_documents(args: argparse.Namespace, settings: Settings) -> int:
    from ..showing import document_lines
    from ..views import document_view

    with runtime_for(settings) as runtime, runtime.uow(readonly=True) as uow:
        row = uow.documents.get(args.id)
        if row is None:
            raise NotFound(
                "No such document: give its id, as `congvan documents list --agency …` shows.",
                document_id=args.id,
            )
        view = document_view(uow, row)
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=2, default=str))
    else:
        print("\n".join(document_lines(view)))
    return 0
