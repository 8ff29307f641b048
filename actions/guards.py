"""Guards that read the database: each answers (holds, reason)."""

from __future__ import annotations

from congvan.states import dispatch
from congvan.states.document import ACKNOWLEDGED, DELIVERED, FAILED, SENT
from congvan.states.text import calendar_day
from congvan.states.timeliness import in_vietnam
from congvan.storage.dispatches import DispatchRow

from .context import TransitionContext
from .recalls import derived_state


def _derived(ctx: TransitionContext) -> str:
    return derived_state(ctx.uow, ctx.document.id)


def all_delivered(ctx: TransitionContext) -> tuple[bool, str]:
    return _derived(ctx) == DELIVERED, "not every recipient has the document yet"


def all_acknowledged(ctx: TransitionContext) -> tuple[bool, str]:
    return _derived(ctx) == ACKNOWLEDGED, "not every recipient acknowledged it yet"


def any_failed(ctx: TransitionContext) -> tuple[bool, str]:
    return _derived(ctx) == FAILED, "no recipient has failed for good"


def none_given_up(ctx: TransitionContext) -> tuple[bool, str]:
    return _derived(ctx) == SENT, "a recipient has failed for good or refused it"


def a_dispatch_failed(ctx: TransitionContext) -> tuple[bool, str]:
    """Something to resend: a dispatch that ran out of attempts (a refusal stands)."""
    return dispatch.FAILED in ctx.uow.dispatches.states(ctx.document.id), (
        "no recipient failed for good: those that refused stand by their refusal "
        "(send a corrected document as a replacement)"
    )


def attempts_left(ctx: TransitionContext) -> tuple[bool, str]:
    dispatch: DispatchRow | None = ctx.data.get("dispatch")
    limit = int(ctx.data.get("max_attempts", 0))
    attempts = dispatch.attempts if dispatch is not None else 0
    return attempts < limit, "no attempts left"


def dated_this_year(ctx: TransitionContext) -> tuple[bool, str]:
    """Decree 30/2020 Art. 15: a document is numbered and dated in the year it is issued
    (Vietnam time), as review's ``format.issue_year`` judged it when it was submitted. One
    reviewed on 31 December and approved or signed on 2 January would issue a number of
    a series already closed: it is returned, dated anew and numbered in this year's."""
    issued_on = ctx.uow.documents.load(ctx.document.id).issued_on
    try:
        year = calendar_day(str(issued_on)).year if issued_on else None
    except ValueError:
        return True, ""  # unreadable: review's format checks refused it already
    now = in_vietnam(ctx.now).year
    return year in (None, now), (
        f"it is dated {issued_on} and numbered in {year}'s series, and it is {now} now: "
        "return it, date it and give it a number of this year (Decree 30, Art. 15)"
    )


GUARDS = {
    "dated_this_year": dated_this_year,
    "all_delivered": all_delivered,
    "all_acknowledged": all_acknowledged,
    "any_failed": any_failed,
    "none_given_up": none_given_up,
    "a_dispatch_failed": a_dispatch_failed,
    "attempts_left": attempts_left,
}
