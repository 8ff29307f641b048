"""The ``explain`` and ``stuck`` commands: what a document waits for, and what is idle."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from congvan.states.errors import NotFound
from congvan.states.timeliness import shown_on_the_clock

from ..settings import Settings
from .runtime import Subparsers, runtime_for

LANGUAGES = ("vi", "en", "both")


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "explain",
        help="what a document waits for, per recipient, in Vietnamese and English",
        description="The document's own step, then each recipient's: its job and lease, "
        "its next timer in Vietnam time with the working time left, its last attempt, "
        "its QCVN 102 status.",
    )
    p.add_argument("document", help="the document's id")
    _add_output_options(p)
    p.set_defaults(func=cmd_explain)
    s = sub.add_parser(
        "stuck",
        help="unfinished documents with no progress for longer than a threshold",
        description="Documents not yet acknowledged by every recipient with no state "
        "change, delivery attempt or status message for longer than --older-than, the "
        "longest idle first, each with what it waits for.",
    )
    s.add_argument("--agency", help="only this agency's documents (its electronic id)")
    s.add_argument(
        "--older-than",
        default=None,
        help="ISO 8601 duration (PT2H, P1D) or seconds; default one hour",
    )
    s.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    _add_output_options(s)
    s.set_defaults(func=cmd_stuck)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lang", choices=LANGUAGES, default="both", help="sentences in (default both)")
    p.add_argument("--json", action="store_true", help="the whole answer, as the API gives it")


def _said(finding: dict[str, Any], lang: str) -> list[str]:
    return [finding[lang]] if lang != "both" else [finding["vi"], finding["en"]]


def explanation_lines(view: dict[str, Any], lang: str) -> list[str]:
    """The explanation as text: the document's findings, then each recipient's."""
    at = shown_on_the_clock(datetime.fromisoformat(view["at"]))
    lines = [f"{view['notation'] or view['document_id']}  [{view['state']}]  at {at}"]
    for finding in view["document"]:
        lines += [f"  {text}" for text in _said(finding, lang)]
    for r in view["recipients"]:
        status = f" status {r['status_code']}" if r["status_code"] else ""
        lines.append(f"  → {r['organ_id']}  [{r['state']}]{status}")
        for finding in r["findings"]:
            lines += [f"      {text}" for text in _said(finding, lang)]
    return lines


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from ..explaining import explain_row, explanation_view, working_calendar

    with runtime_for(settings) as store, store.uow(readonly=True) as uow:
        row = uow.documents.get(args.document)
        if row is None:
            raise NotFound("No such document.", document_id=args.document)
        now = store.clock()
        view = explanation_view(row, explain_row(uow, row, now, working_calendar(settings)), now)
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=2))
    else:
        print("\n".join(explanation_lines(view, args.lang)))
    return 0


def cmd_stuck(args: argparse.Namespace, settings: Settings) -> int:
    from congvan.states.errors import InvalidInput
    from congvan.storage.stalls import stalled

    from ..directory import existing_agency
    from ..explaining import explain_row, parse_older_than, stalled_view, working_calendar

    if not 1 <= args.limit <= settings.max_page_size:
        raise InvalidInput(
            f"--limit is from 1 to {settings.max_page_size}.",
            field="limit",
            max=settings.max_page_size,
        )
    threshold = parse_older_than(args.older_than)
    calendar = working_calendar(settings)
    with runtime_for(settings) as store, store.uow(readonly=True) as uow:
        if args.agency is not None:  # a typo is not "nothing stuck"
            existing_agency(uow, args.agency)
        now = store.clock()
        rows = stalled(uow.conn, args.agency, now - threshold, after=None, limit=args.limit)
        items = [stalled_view(r, explain_row(uow, r, now, calendar), now) for r in rows]
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
        return 0
    for item in items:
        idle = item["idle_seconds"] // 60
        print(f"{item['id']}  {item['notation'] or '—'}  [{item['state']}]  idle {idle} min")
        print("\n".join(f"    {text}" for text in _said(item["headline"], args.lang)))
    if not items:
        print("no documents idle that long")
    return 0
