"""The ``graph`` command: the state machines drawn from their data."""

from __future__ import annotations

import argparse

from congvan.states import MACHINES
from congvan.states.graph import to_dot, to_mermaid

from ..settings import Settings
from .runtime import Subparsers


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("graph", help="print the state machines (Mermaid or Graphviz dot)")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.add_argument("--machine", choices=(*MACHINES, "all"), default="all")
    p.set_defaults(func=cmd_graph)


def cmd_graph(args: argparse.Namespace, _settings: Settings) -> int:
    render = to_dot if args.format == "dot" else to_mermaid
    names = list(MACHINES) if args.machine == "all" else [args.machine]
    for name in names:
        if args.format == "mermaid":
            print(f"%% {name}")
        print(render(MACHINES[name]))
    return 0
