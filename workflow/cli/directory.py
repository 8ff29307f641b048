"""The directory commands: agencies, their signing authorities, API tokens."""

from __future__ import annotations

import argparse
import sys

from congvan.states import policy
from congvan.states.errors import InvalidInput, NotFound

from ..settings import Settings
from .runtime import Subparsers, runtime_for


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("agencies", help="manage the directory of agencies")
    asub = p.add_subparsers(dest="action", required=True)
    a = asub.add_parser("add", help="add an agency")
    a.add_argument("id", help="electronic identifier, e.g. 000.00.00.H57")
    a.add_argument("--name", required=True)
    a.add_argument("--abbreviation", required=True, help="e.g. UBND")
    a.add_argument(
        "--numbering",
        choices=sorted(policy.NUMBERING),
        default=policy.DEFAULT_NUMBERING,
        help="agency: one number series for all documents (Decree 30 Art. 15, the "
        "default); symbol: one series per symbol",
    )
    a = asub.add_parser("set", help="change an agency's settings")
    a.add_argument("id", help="electronic identifier, e.g. 000.00.00.H57")
    a.add_argument(
        "--numbering",
        choices=sorted(policy.NUMBERING),
        required=True,
        help="the series administrative documents are numbered in from now on; refused "
        "while this year's numbers would repeat in it",
    )
    asub.add_parser("list", help="list agencies")
    p.set_defaults(func=cmd_agencies)

    p = sub.add_parser("authorities", help="manage signing authorities")
    asub = p.add_subparsers(dest="action", required=True)
    a = asub.add_parser("add", help="grant a signer authority to sign for an agency")
    a.add_argument("--agency", required=True)
    a.add_argument("--signer", required=True, help="user name of a user with the signer role")
    a.add_argument("--doc-types", default="*", help="comma-separated types, or * (default)")
    a.add_argument("--competence", default="", help="e.g. 'KT. CHỦ TỊCH'")
    a.add_argument("--from", dest="valid_from", required=True, help="YYYY-MM-DD")
    a.add_argument("--until", dest="valid_until", help="YYYY-MM-DD (inclusive)")
    a = asub.add_parser("list", help="list an agency's authorities")
    a.add_argument("--agency", required=True)
    a = asub.add_parser("revoke", help="revoke an agency's authority (its id, as list shows)")
    a.add_argument("id")
    a.add_argument("--agency", required=True)
    p.set_defaults(func=cmd_authorities)

    p = sub.add_parser("tokens", help="create or revoke API tokens")
    tsub = p.add_subparsers(dest="action", required=True)
    t = tsub.add_parser("create", help="create a token (printed once; only its hash is kept)")
    t.add_argument("--agency", required=True)
    t.add_argument(
        "--role",
        required=True,
        action="append",
        help="clerk, reviewer, signer, supervisor or operator (repeatable)",
    )
    t.add_argument("--user", help="user name (default: the roles joined)")
    t.add_argument("--full-name", default="")
    t.add_argument("--position", default="")
    t.add_argument("--expires-days", type=int)
    r = tsub.add_parser(
        "revoke", help="revoke a token by the prefix `tokens create` printed (or the token)"
    )
    r.add_argument("prefix")
    p.set_defaults(func=cmd_tokens)


def cmd_agencies(args: argparse.Namespace, settings: Settings) -> int:
    from ..directory import add_agency, set_numbering

    with runtime_for(settings) as runtime, runtime.uow() as uow:
        if args.action == "add":
            add_agency(
                uow,
                args.id,
                args.name,
                args.abbreviation,
                runtime.clock(),
                numbering=args.numbering,
            )
            uow.commit()
            print(f"added agency {args.id}")
        elif args.action == "set":
            before = set_numbering(uow, args.id, args.numbering, runtime.clock())
            uow.commit()
            print(f"agency {args.id} numbering: {before} → {args.numbering}")
        else:
            listed = uow.agencies.agencies()
            if not listed:
                print("no agencies: `congvan agencies add` adds one")
            for a in listed:
                print(f"{a.id:<20} {a.abbreviation:<10} {a.numbering:<7} {a.name}")
    return 0


def cmd_authorities(args: argparse.Namespace, settings: Settings) -> int:
    from congvan.states.text import calendar_day

    from ..directory import add_authority, existing_agency

    with runtime_for(settings) as runtime, runtime.uow() as uow:
        if args.action == "add":
            try:
                valid_from = calendar_day(args.valid_from)
                valid_until = calendar_day(args.valid_until) if args.valid_until else None
            except ValueError as exc:
                raise InvalidInput(f"Dates are YYYY-MM-DD: {exc}") from exc
            row = add_authority(
                uow,
                args.agency,
                args.signer,
                [t.strip() for t in args.doc_types.split(",")],  # the CLI's list syntax
                args.competence,
                valid_from,
                valid_until,
                by="cli",
                now=runtime.clock(),
            )
            uow.commit()
            print(
                f"authority {row.id}: {args.signer} signs {row.doc_types} for "
                f"{args.agency} from {row.valid_from} until {row.valid_until or '—'}"
            )
        elif args.action == "revoke":
            existing_agency(uow, args.agency)
            if not uow.authorities.revoke(args.id, args.agency, runtime.clock()):
                raise NotFound(
                    f"No active authority {args.id[:36]} of {args.agency}: `congvan authorities "
                    f"list --agency {args.agency}` shows them.",
                    authority_id=args.id[:36],
                )
            uow.commit()
            print(f"authority {args.id} revoked")
        else:
            existing_agency(uow, args.agency)
            held = uow.authorities.for_agency(args.agency)
            if not held:
                print("no signing authorities")
            for a in held:
                state = "revoked" if a.revoked_at else "active"
                print(
                    f"{a.id}  {a.signer:<20} {a.doc_types:<12} "
                    f"{a.competence:<20} {a.valid_from} → {a.valid_until or '—'} "
                    f"{state}"
                )
    return 0


def cmd_tokens(args: argparse.Namespace, settings: Settings) -> int:
    from ..directory import create_token, ensure_user, token_prefix, validate_roles
    from . import _flush_stdout

    with runtime_for(settings) as runtime, runtime.uow() as uow:
        now = runtime.clock()
        if args.action == "revoke":
            prefix = token_prefix(args.prefix)  # the printed prefix, or the whole token
            count = uow.agencies.revoke_token(prefix, now)
            uow.commit()
            if not count:
                raise NotFound(
                    f"No live token has the prefix {prefix!r} (`tokens create` prints it).",
                    prefix=prefix,
                )
            print(f"revoked {count} token(s)")
            return 0
        roles = validate_roles(args.role)  # each once, in order
        username = "-".join(roles) if args.user is None else args.user
        known = policy.is_organ_id(args.agency)  # else ensure_user says what is wrong
        before = uow.agencies.user(args.agency, username) if known else None
        user_id = ensure_user(
            uow,
            args.agency,
            username,
            roles,
            now,
            full_name=args.full_name,
            position=args.position,
        )
        issued = create_token(uow, user_id, now, args.expires_days, roles=roles)
        if before is not None and not set(roles) <= set(before.roles.split(",")):
            held = sorted(set(before.roles.split(",")) | set(roles))
            print(
                f"note: {username}@{args.agency} held {before.roles.replace(',', ', ')}; "
                f"now {', '.join(held)}",
                file=sys.stderr,
            )
        # Shown before it is kept: a token nobody could read (the output a full disk, a
        # closed pipe) is not kept either, as the error then says.
        print(
            f"token for {username}@{args.agency} ({', '.join(roles)}), prefix {issued.prefix} "
            "(`congvan tokens revoke PREFIX`); shown only once:"
        )
        print(issued.token)
        _flush_stdout()
        uow.commit()
    return 0
