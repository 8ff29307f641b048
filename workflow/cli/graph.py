"""The ``graph`` command: the state machines drawn from their data."""

from __future__ import annotations

import argparse

from congvan.states import MACHINES
from congvan.states.graph import all_to_dot, all_to_mermaid, to_dot, to_mermaid

from ..settings import Settings
from .runtime import Subparsers


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("graph", help="print the state machines (Mermaid or Graphviz dot)")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.add_argument("--machine", choices=(*MACHINES, "all"), default="all")
    p.set_defaults(func=cmd_graph)


def cmd_graph(args: argparse.Namespace, _settings: Settings) -> int:
    # Every machine in one drawing (a renderer reads one graph a file), or the one named
    if args.machine == "all":
        every = list(MACHINES.values())
        print(all_to_dot(every) if args.format == "dot" else all_to_mermaid(every), end="")
    else:
        render = to_dot if args.format == "dot" else to_mermaid
        print(render(MACHINES[args.machine]), end="")
    return 0
