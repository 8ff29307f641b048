"""The ``timers`` command: timers parked after failing too often, and taking one again."""

from __future__ import annotations

import argparse

from congvan.states.errors import NotFound
from congvan.states.timeliness import shown_exactly

from ..settings import Settings
from .runtime import Subparsers, runtime_for


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "timers",
        help="timers that failed too often (parked), and taking one again",
        description="A timer whose handler fails is retried with a doubling wait and parked "
        "after CONGVAN_TIMER_MAX_ATTEMPTS failures; parked timers wait for an operator.",
    )
    tsub = p.add_subparsers(dest="action", required=True)
    tsub.add_parser("parked", help="list parked timers with their last error")
    t = tsub.add_parser("retry", help="take a parked timer again now, its count reset")
    t.add_argument("timer", help="the timer's id, as `timers parked` prints it")
    p.set_defaults(func=cmd_timers)


def cmd_timers(args: argparse.Namespace, settings: Settings) -> int:
    """List parked timers (failed too often), or take one again now."""
    with runtime_for(settings) as runtime, runtime.uow() as uow:
        if args.action == "retry":
            if not uow.timers.unpark(args.timer, runtime.clock()):
                raise NotFound(f"No parked timer {args.timer!r}.", timer_id=args.timer)
            uow.commit()
            print(f"timer {args.timer} will be taken again now")
            return 0
        parked = uow.timers.parked()
    for t in parked:
        at = shown_exactly(t.parked_at) if t.parked_at else ""
        print(f"{t.id}  {t.kind:<14} {t.ref_id:<36} {at}  {t.attempts} attempts")
        print(f"    {t.last_error}")
    if not parked:
        print("no parked timers")
    return 0
