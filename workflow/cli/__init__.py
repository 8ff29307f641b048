"""The ``congvan`` command: one parser assembled from the command groups, and ``main``.

Each group is a module that registers its own subcommands: serving (serve, worker,
scheduler, migrate, demo), directory (agencies, authorities, tokens), peers, documents,
explain (explain, stuck), keys,
audit, evidence (export and verify a bundle), verify (with verdict, how a verdict is
shown), timers, escalations (with time-rules), notify (notification routes and dead
letters) and graph.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from congvan.states.errors import CongvanError, InvalidEncoding

from . import (
    audit,
    directory,
    documents,
    escalations,
    evidence,
    explain,
    graph,
    keys,
    notify,
    peers,
    serving,
    timers,
    verify,
)
from .runtime import settings_from

GROUPS = (
    serving,
    directory,
    peers,
    documents,
    explain,
    keys,
    audit,
    evidence,
    verify,
    timers,
    escalations,
    notify,
    graph,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="congvan",
        description="Workflow engine for official electronic documents between state agencies.",
    )
    parser.add_argument(
        "--data-dir",
        help="where the embedded database lives "
        "(default: $CONGVAN_DATA_DIR or ~/.local/share/congvan)",
    )
    parser.add_argument("--database-url", help="overrides CONGVAN_DATABASE_URL")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parser(sub)
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    """Every argument is UTF-8 text, as the API asks of its input.

    Python hands undecodable bytes of the command line on as lone surrogates, which
    the database would refuse halfway through a command.
    """
    for name, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                option = name.replace("_", "-")
                raise InvalidEncoding(
                    f"The argument {option} is not UTF-8 text.", field=option, location="argument"
                ) from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_arguments(args)
        settings = settings_from(args)
        code: int = args.func(args, settings)
        return code
    except CongvanError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        if exc.details:
            print(json.dumps(exc.details, ensure_ascii=False), file=sys.stderr)
        return 2
