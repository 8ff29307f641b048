"""The ``escalations`` and ``time-rules`` commands: the supervisors' board from a shell.

Steps on an escalation are taken in the name of a user of its agency (``--user``), who
must hold a supervisor's or leader's role there, exactly as over the API.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from congvan.actions.context import Actor
from congvan.states import escalation as e
from congvan.states.errors import Forbidden, InvalidInput, NotFound
from congvan.states.policy import ESCALATION_HANDLERS, ESCALATION_REASON_REQUIRED
from congvan.states.timeliness import shown_exactly, shown_on_the_clock
from congvan.storage.escalations import Escalation

from ..jsontext import read_json
from ..settings import Settings
from .runtime import Subparsers, runtime_for


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "escalations",
        help="the escalation board: list, show, claim, comment, snooze, act, resolve",
        description="Escalations warn that a time rule was broken or delivery went wrong; "
        "supervisors and the agency's leadership own and resolve them.",
    )
    esub = p.add_subparsers(dest="action", required=True)
    ls = esub.add_parser("list", help="an agency's escalations (active ones by default)")
    ls.add_argument("agency", help="the agency's identifier")
    ls.add_argument("--state", action="append", choices=e.ESCALATION.states)
    ls.add_argument("--kind", action="append", choices=sorted(e.KINDS))
    ls.add_argument("--limit", type=int, default=50)
    show = esub.add_parser("show", help="one escalation and every step taken on it")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    for name, helps in (
        ("claim", "take it: you own it now"),
        ("comment", "add a comment"),
        ("snooze", "put it aside until a moment, with a reason"),
        ("act", "resend, recall or contact the recipient, with a reason"),
        ("resolve", "resolve it with an outcome and a reason"),
    ):
        step = esub.add_parser(name, help=helps)
        step.add_argument("id")
        step.add_argument("--user", required=True, help="who does it (a user of its agency)")
        needed = name in ESCALATION_REASON_REQUIRED
        step.add_argument("--reason", required=needed, help="why (needed)" if needed else "why")
        if name in e.HOLDER_EVENTS:
            step.add_argument(
                "--take-over",
                action="store_true",
                help="take it from the supervisor who holds it",
            )
        if name == "comment":
            step.add_argument("text")
        if name == "snooze":
            step.add_argument("until", help="ISO 8601 with offset, e.g. 2026-12-01T08:00+07:00")
        if name == "act":
            step.add_argument("what", choices=e.ACTIONS)
            step.add_argument("--note")
        if name == "resolve":
            step.add_argument("outcome", choices=e.OUTCOMES)
    p.set_defaults(func=cmd_escalations)

    r = sub.add_parser("time-rules", help="an agency's time rules (show; tighten with set)")
    rsub = r.add_subparsers(dest="action", required=True)
    rshow = rsub.add_parser("show", help="the rules in force for an agency")
    rshow.add_argument("agency")
    rset = rsub.add_parser(
        "set", help="tighten: --rules '{\"deliver\": [120, 60, 30, 15, 15]}' ({} clears)"
    )
    rset.add_argument("agency")
    rset.add_argument("--rules", required=True, help="JSON: rule → five working-minute values")
    rset.add_argument("--user", required=True)
    r.set_defaults(func=cmd_time_rules)


def _line(row: Escalation) -> str:
    opened = shown_on_the_clock(row.opened_at)
    about = row.document_id or row.received_id or "-"
    owner = row.owner or "(nobody)"
    return (
        f"{row.id}  {row.kind:<20} {row.state:<8} level {row.level}  {row.severity:<8} "
        f"{opened}  {about}  {row.organ_id or '-'}  {owner}"
    )


def _handler(uow: Any, agency_id: str, username: str) -> Actor:
    from ..directory import existing_agency

    existing_agency(uow, agency_id)  # an agency not here is said as such, not as its user
    user = uow.agencies.user(agency_id, username)
    if user is None:
        raise NotFound("No such user in that agency.", user=username, agency=agency_id)
    roles = frozenset(r for r in user.roles.split(",") if r)
    if not roles & ESCALATION_HANDLERS:
        raise Forbidden(
            f"{username} needs the role {' or '.join(sorted(ESCALATION_HANDLERS))} for this.",
            needs=sorted(ESCALATION_HANDLERS),
        )
    return Actor(name=f"{username}@{agency_id}", agency_id=agency_id, roles=roles)


def _vietnam_time(value: object) -> object:
    """A moment of a step (kept as ISO 8601, in UTC or Vietnam time) as the CLI prints every
    moment: in Vietnam time; anything else as it is."""
    if not isinstance(value, str) or len(value) < 20 or value[4:5] != "-":
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return value if moment.tzinfo is None else shown_exactly(moment)


def cmd_escalations(args: argparse.Namespace, settings: Settings) -> int:
    from ..directory import existing_agency

    if args.action in ("list", "show"):
        with runtime_for(settings) as store, store.uow(readonly=True) as uow:
            if args.action == "list":
                # As the API's page size: a wrong bound is said, never quietly changed.
                if not 1 <= args.limit <= settings.max_page_size:
                    raise InvalidInput(
                        f"--limit is from 1 to {settings.max_page_size}.", field="limit"
                    )
                existing_agency(uow, args.agency)
                page = uow.escalations.page(
                    args.agency,
                    states=args.state or list(e.ACTIVE),
                    kinds=args.kind or [],
                    limit=args.limit,
                )
                for row in page.items:
                    print(_line(row))
                if not page.items:
                    print("no escalations")
                return 0
            found = uow.escalations.get(args.id)
            if found is None:
                raise NotFound("No such escalation.", escalation_id=args.id)
            row = found
            trail = uow.audit.history(row.id)
        if args.json:
            from ..api.escalations import EscalationDetailOut, escalation_detail

            # as GET /v1/escalations/{id} answers: every step, moments in ISO 8601
            shown = EscalationDetailOut.model_validate(escalation_detail(row, trail))
            print(json.dumps(shown.model_dump(mode="json"), ensure_ascii=False, indent=2))
            return 0
        en, vi, todo_en, todo_vi = e.texts(row.kind, row.received_id is not None)
        print(_line(row))
        print(f"  {vi} — {en}")
        print(f"  Cần làm: {todo_vi} — {todo_en}")
        for t in trail:
            at = shown_exactly(t.at)  # a step is evidence: to the second
            extra = {
                k: _vietnam_time(v) for k, v in t.payload.items() if k not in ("kind", "cause")
            }
            print(f"  v{t.version} {at} {t.actor}: {t.event} → {t.to_state}  "
                  f"{json.dumps(extra, ensure_ascii=False)}")  # fmt: skip
        return 0
    data: dict[str, Any] = {}
    for key in ("reason", "text", "until", "note", "outcome"):
        if getattr(args, key, None) is not None:
            data[key] = getattr(args, key)
    if args.action == "act":
        data["action"] = args.what
    if getattr(args, "take_over", False):
        data["take_over"] = True
    with runtime_for(settings, wired=True) as runtime:
        with runtime.uow(readonly=True) as uow:
            target = uow.escalations.get(args.id)
            if target is None:
                raise NotFound("No such escalation.", escalation_id=args.id)
            actor = _handler(uow, target.agency_id, args.user)
        result = runtime.engine.fire_on("escalation", args.id, args.action, actor, data=data)
    print(f"escalation {args.id}: {result.event} → {result.to_state} (version {result.version})")
    return 0


def cmd_time_rules(args: argparse.Namespace, settings: Settings) -> int:
    from ..directory import existing_agency

    with runtime_for(settings, wired=True) as runtime:
        watch = runtime.watch
        if args.action == "set":
            try:
                overrides = read_json(args.rules, where="--rules")  # each key once
            except (ValueError, RecursionError) as exc:  # a 5000-digit number is one
                raise InvalidInput(f"--rules is not JSON: {exc}", field="rules") from None
            if not isinstance(overrides, dict):
                raise InvalidInput("--rules is a JSON object: rule → values.", field="rules")
            tightened = watch.check_rules(overrides)
            with runtime.uow() as uow:
                _handler(uow, args.agency, args.user)
                kept = {k: list(tightened.minutes[k]) for k in overrides}
                uow.escalations.set_time_rules(
                    args.agency, kept, by=f"{args.user}@{args.agency}", at=runtime.clock()
                )
                uow.commit()
        with runtime.uow(readonly=True) as uow:
            existing_agency(uow, args.agency)
            overrides = uow.escalations.time_rules(args.agency)
        in_force = watch.rules.in_force(overrides)
    print(f"working hours {watch.hours}, send cut-off {in_force.send_cutoff:%H:%M}")
    print("rule             thường  khẩn  thượng khẩn  hỏa tốc  hẹn giờ   (minutes)")
    for rule, values in in_force.minutes.items():
        mark = "  (agency)" if rule in overrides else ""
        # A normal document is sent by the cut-off, not by minutes
        shown = ["cutoff" if rule == "send" and level == 0 else str(v) for level, v in
                 enumerate(values)]  # fmt: skip
        print(f"{rule:<16} " + "  ".join(f"{v:>6}" for v in shown) + mark)
    print(
        "minutes of working time; send, deliver and register of an urgent document "
        "(khẩn and above) run on the clock, nights and holidays included"
    )
    return 0
