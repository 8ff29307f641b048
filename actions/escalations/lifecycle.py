"""How an escalation lives: opened on its cause (one open at a time), told to the people
the agency's routes name, owned, snoozed, risen to the leadership when left open, and
closed (states/escalation.py).

An escalation has its own audit chain, an owner to come and a deadline of its own (the
``escalate`` rule). It closes itself in the transaction that removes its cause (the
dispatch delivered, the document sent), saying so; one cause never has two open at a
time (the row's unique active key).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from congvan.states import dispatch as d
from congvan.states import document as doc
from congvan.states import escalation as e
from congvan.states.errors import Conflict, InvalidInput
from congvan.states.policy import notation, written_notation
from congvan.states.text import has_visible_text
from congvan.states.vocabulary import ESCALATION_RISE, ESCALATION_WAKE
from congvan.storage.audit import GENESIS, make_entry
from congvan.storage.clock import as_utc
from congvan.storage.dispatches import DispatchRow
from congvan.storage.escalations import Escalation
from congvan.storage.ids import new_id
from congvan.storage.timers import DueTimer
from congvan.storage.unit_of_work import UnitOfWork

from ..context import SYSTEM, TransitionContext
from ..effects import resend_dispatch
from ..jobs import enqueue, new_job
from ..recalls import on_its_way
from .base import WatchBase, add_timer

log = logging.getLogger("congvan.escalations")

# The longest a person may snooze an escalation.
MAX_SNOOZE = timedelta(days=30)


# Why a request's dispatch that did not fail is not sent again from its escalation.
_NOT_RESENT = {
    d.DECLINED: (
        "The recipient refused this request (16) and keeps the document in force: the same "
        "request would get the same answer. Contact the recipient, or replace the document."
    ),
    d.REJECTED: (
        "The recipient's inbox refused this request: the same package would be refused "
        "again. See its reason; contact the recipient, or replace the document."
    ),
}


class Lifecycle(WatchBase):
    """Opens, tells of and closes escalations; runs the escalation machine's effects."""

    # -- opening -------------------------------------------------------------------------------

    def open_for_dispatch(
        self,
        uow: UnitOfWork,
        kind: str,
        dispatch_id: str,
        due_at: datetime,
        now: datetime,
        *,
        detail: Mapping[str, Any] | None = None,
        again: bool = False,
    ) -> Escalation | None:
        row = uow.dispatches.get(dispatch_id)
        if row is None:
            return None
        head = uow.documents.head(row.document_id)
        if head is None:
            return None
        return self.open(
            uow,
            kind=kind,
            subject_id=dispatch_id,
            agency_id=head.agency_id,
            urgency=head.urgency,
            due_at=due_at,
            now=now,
            document_id=row.document_id,
            dispatch_id=dispatch_id,
            organ_id=row.organ_id,
            detail=detail,
            again=again,
        )

    def open(
        self,
        uow: UnitOfWork,
        *,
        kind: str,
        subject_id: str,
        agency_id: str,
        urgency: int,
        due_at: datetime | None,
        now: datetime,
        document_id: str | None = None,
        dispatch_id: str | None = None,
        received_id: str | None = None,
        organ_id: str = "",
        detail: Mapping[str, Any] | None = None,
        again: bool = False,
    ) -> Escalation | None:
        """Open an escalation of ``kind`` on ``subject_id``; None when one is open already.

        With ``again`` (the cause came about anew: a dispatch resent from its escalation
        failed once more), the one open already records it and tells of it again.
        """
        key = e.cause_key(kind, subject_id)
        active = uow.escalations.active(key)
        if active is not None:
            if again:
                assert self.events is not None
                data = {"detail": dict(detail or {})}
                self.events.fire_on_within(
                    uow, "escalation", active.id, "recur", actor=SYSTEM, data=data
                )
            return None
        escalation_id = new_id()
        severity = e.severity(kind, urgency)
        rise_at = self.deadlines(uow, agency_id).after(now, "escalate", urgency)
        payload = {
            "kind": kind,
            "cause": key,
            "severity": severity,
            "due_at": as_utc(due_at).isoformat() if due_at else None,
            "rise_at": rise_at.isoformat(),
            **({"detail": dict(detail)} if detail else {}),
        }
        entry = make_entry(
            prev_hash=GENESIS,
            document_id=escalation_id,
            version=1,
            actor=SYSTEM.name,
            event="open",
            from_state="",
            to_state=e.OPEN,
            at=now,
            payload=payload,
        )
        try:
            with uow.savepoint():
                uow.escalations.add(
                    {
                        "id": escalation_id,
                        "agency_id": agency_id,
                        "kind": kind,
                        "cause": key,
                        "active_key": key,
                        "state": e.OPEN,
                        "version": 1,
                        "audit_head": entry.hash,
                        "severity": severity,
                        "level": 1,
                        "urgency": urgency,
                        "document_id": document_id,
                        "dispatch_id": dispatch_id,
                        "received_id": received_id,
                        "organ_id": organ_id,
                        "owner": "",
                        "due_at": due_at,
                        "rise_at": rise_at,
                        "snoozed_until": None,
                        "outcome": "",
                        "detail": dict(detail or {}),
                        "opened_at": now,
                        "updated_at": now,
                        "closed_at": None,
                    }
                )
                uow.audit.append([entry])
        except IntegrityError:
            return None  # another transaction opened it first: one cause, one escalation
        add_timer(uow, ESCALATION_RISE, escalation_id, document_id, rise_at, agency_id=agency_id)
        opened = uow.escalations.get(escalation_id)
        assert opened is not None
        self._notify(uow, opened, now)
        log.warning(
            "escalation opened",
            extra={
                "action": "escalation.open",
                "escalation_id": escalation_id,
                "kind": kind,
                "agency": agency_id,
                "document_id": document_id,
            },
        )
        return opened

    def _notify(self, uow: UnitOfWork, escalation: Escalation, now: datetime) -> None:
        """Queue its notifications (in this transaction), as the agency's routes say; the
        text in Vietnamese, dated by the engine's clock."""
        if self.notify is None:
            return
        told = notice(uow, escalation)
        # About a document that arrived here, the other agency is the one it came from.
        other = "sender_id" if escalation.received_id else "recipient_id"
        event = {
            **told,
            "what_to_do": f"{told['what_to_do_vi'][:1].upper()}{told['what_to_do_vi'][1:]}.",
            other: escalation.organ_id or None,
            "at": now.isoformat(),
        }
        self.notify(uow, agency_id=escalation.agency_id, kind=escalation.kind, event=event)

    # -- closing -------------------------------------------------------------------------------

    def close(self, uow: UnitOfWork, key: str, why: str, now: datetime) -> bool:
        """Close the open escalation of cause ``key`` because ``why``; False if none."""
        return self.close_all(uow, {key: why}, now) == 1

    def close_all(self, uow: UnitOfWork, whys: Mapping[str, str], now: datetime) -> int:
        """Close the open escalations of these causes (key → why), found in one look, in
        the order given; how many were open."""
        found = {row.active_key: row for row in uow.escalations.active_among(list(whys))}
        closing = [(found[key], why) for key, why in whys.items() if key in found]
        assert not closing or self.events is not None, "the watch closes them through the engine"
        for row, why in closing:
            assert self.events is not None
            self.events.fire_on_within(
                uow, "escalation", row.id, "close", actor=SYSTEM, data={"reason": why}
            )
        return len(closing)

    # -- timers --------------------------------------------------------------------------------

    def on_rise(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        self._fire_if_active(uow, timer.ref_id, "rise")

    def on_wake(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        found = uow.escalations.get(timer.ref_id)
        if found is not None and found.state == e.SNOOZED:
            self._fire_if_active(uow, timer.ref_id, "wake")

    def _fire_if_active(self, uow: UnitOfWork, escalation_id: str, event: str) -> None:
        found = uow.escalations.get(escalation_id)
        if found is None or not found.active:
            return
        assert self.events is not None
        self.events.fire_on_within(uow, "escalation", escalation_id, event, actor=SYSTEM)

    # -- effects of the escalation machine --------------------------------------------------

    def effects(self) -> dict[str, Callable[[TransitionContext], None]]:
        return {
            "set_owner": self.set_owner,
            "take_from_holder": self.take_from_holder,
            "record_comment": self.record_comment,
            "snooze_until": self.snooze_until,
            "end_snooze": self.end_snooze,
            "rise_level": self.rise_level,
            "record_recurrence": self.record_recurrence,
            "take_action": self.take_action,
            "settle_escalation": self.settle,
        }

    def guards(self) -> dict[str, Callable[[TransitionContext], tuple[bool, str]]]:
        return {
            "has_owner": self.has_owner,
            "not_held_by_another": self.not_held_by_another,
            "not_claimed_by_actor": self.not_claimed_by_actor,
        }

    def _row(self, ctx: TransitionContext) -> Escalation:
        found = ctx.uow.escalations.get(ctx.document.id)
        assert found is not None
        return found

    def has_owner(self, ctx: TransitionContext) -> tuple[bool, str]:
        owner = self._row(ctx).owner
        return bool(owner), "" if owner else "nobody owns it"

    def not_held_by_another(self, ctx: TransitionContext) -> tuple[bool, str]:
        """A claim, act, snooze or resolve (``HOLDER_EVENTS``) of an escalation nobody holds,
        or one its actor holds; of one another supervisor holds only when it says it takes it
        over (``take_over``; over HTTP, an If-Match naming the version seen, owner and all):
        two supervisors claiming at once are not both told they own it, and nobody puts
        aside or closes what another is working on without a word (a leader, once it rose
        to the leadership, says so too: two leaders are two people as well)."""
        owner = self._row(ctx).owner
        if not owner or owner == ctx.actor.name or ctx.data.get("take_over") is True:
            return True, ""
        return False, (
            f"{owner} holds it: say you take it over (take_over: true over HTTP, --take-over "
            "on the command line)"
        )

    def not_claimed_by_actor(self, ctx: TransitionContext) -> tuple[bool, str]:
        """A claim of one its actor holds already (claimed, not put aside) changes nothing:
        refused, not written as a step of the trail and a new version."""
        row = self._row(ctx)
        if row.state == e.CLAIMED and row.owner == ctx.actor.name:
            return False, "you hold it already: there is nothing to claim"
        return True, ""

    def set_owner(self, ctx: TransitionContext) -> None:
        row = self._row(ctx)
        if row.owner != ctx.actor.name:
            ctx.uow.escalations.set(row.id, owner=ctx.actor.name)
            ctx.audit["owner"] = ctx.actor.name
            if row.owner:
                ctx.audit["previous_owner"] = row.owner

    def take_from_holder(self, ctx: TransitionContext) -> None:
        """Put aside or resolved over its holder's head (a take-over): the one who did it owns
        it now. One nobody holds stays so (a snoozed one wakes unowned)."""
        row = self._row(ctx)
        if row.owner and row.owner != ctx.actor.name:
            self.set_owner(ctx)

    def record_comment(self, ctx: TransitionContext) -> None:
        text = ctx.data.get("text")
        if not isinstance(text, str) or not has_visible_text(text):
            raise InvalidInput("A comment needs its text.", field="text")
        if len(text) > 4000:
            raise InvalidInput("A comment is at most 4000 characters.", field="text")
        ctx.audit["comment"] = text

    def snooze_until(self, ctx: TransitionContext) -> None:
        until = _moment(ctx.data.get("until"), "until")
        if until <= ctx.now:
            raise InvalidInput("A snooze ends in the future.", field="until")
        if until - ctx.now > MAX_SNOOZE:
            raise InvalidInput(f"A snooze lasts at most {MAX_SNOOZE.days} days.", field="until")
        row = self._row(ctx)
        ctx.uow.escalations.set(row.id, snoozed_until=until)
        ctx.uow.timers.cancel(ESCALATION_WAKE, row.id)
        add_timer(ctx.uow, ESCALATION_WAKE, row.id, row.document_id, until, agency_id=row.agency_id)
        ctx.audit["until"] = until.isoformat()

    def end_snooze(self, ctx: TransitionContext) -> None:
        """Awake (by its timer, or taken up before it): no snooze end is shown any more,
        and no wake timer is left."""
        row = self._row(ctx)
        if row.snoozed_until is not None:
            ctx.uow.escalations.set(row.id, snoozed_until=None)
            ctx.uow.timers.cancel(ESCALATION_WAKE, row.id)

    def rise_level(self, ctx: TransitionContext) -> None:
        row = self._row(ctx)
        if row.level >= 2:
            return
        ctx.uow.escalations.set(row.id, level=2)
        ctx.audit["level"] = 2
        risen = ctx.uow.escalations.get(row.id)
        assert risen is not None
        self._notify(ctx.uow, risen, ctx.now)

    def record_recurrence(self, ctx: TransitionContext) -> None:
        """The cause again, in the trail (with what the rule said of it), and told again."""
        detail = ctx.data.get("detail")
        if detail:
            ctx.audit["detail"] = dict(detail)
        row = self._row(ctx)
        self._notify(ctx.uow, row, ctx.now)

    def take_action(self, ctx: TransitionContext) -> None:
        action = _one_of(ctx.data.get("action"), e.ACTIONS, "action", "An escalation's action")
        row = self._row(ctx)
        ctx.audit["action"] = action
        note = ctx.data.get("note")
        if note is not None:
            if not isinstance(note, str) or len(note) > 4000:
                raise InvalidInput("A note is text of at most 4000 characters.", field="note")
            ctx.audit["note"] = note
        if action == "contact" or self._took_over(ctx, action):
            return
        if row.document_id is None:
            raise InvalidInput(
                f"This escalation has no document of ours to {action}.", field="action"
            )
        about = ctx.uow.dispatches.get(row.dispatch_id) if row.dispatch_id else None
        if action == "resend" and about is not None and about.request_id:
            self._resend_request(ctx, about)
            return
        assert self.events is not None
        data = {"reason": str(ctx.data.get("reason") or "")}
        result = self.events.fire_on_within(
            ctx.uow, "document", row.document_id, action, actor=ctx.actor, data=data
        )
        ctx.audit["document_version"] = getattr(result, "version", None)

    def _took_over(self, ctx: TransitionContext, action: str) -> bool:
        """Whether a kind of escalation took ``action`` its own way (see statuses.py)."""
        return False

    def _resend_request(self, ctx: TransitionContext, about: DispatchRow) -> None:
        """Send a recall's or update's failed dispatch again, in this transaction: the
        package it was sealed with, under its own message id (the recipient knows what it
        already has), with fresh attempts. The document's resend concerns its own
        dispatches only, and a new request would go to every recipient again."""
        uow = ctx.uow
        head = uow.documents.head(about.document_id, for_update=True)  # document first
        dispatch = uow.dispatches.get(about.id, for_update=True)
        assert head is not None and dispatch is not None
        if head.state in (doc.RECALLED, doc.REPLACED):
            raise Conflict(
                f"The document was {head.state}: its recall or update is not sent again.",
                field="action",
                state=head.state,
            )
        later = [
            r for r in uow.dispatches.for_requests(head.id) if r.request_id > dispatch.request_id
        ]
        if later:
            raise Conflict(
                "A later recall or update of the document was made: this one is not sent again.",
                field="action",
                request_id=later[0].request_id,
            )
        going = on_its_way(uow, head.id)
        if going:  # as for a new request: it would cover too few recipients
            raise Conflict(
                f"The document is still on its way to {', '.join(going)}: send the request "
                "again once each of its dispatches has arrived or failed for good.",
                field="action",
                recipients=going,
            )
        if dispatch.state != d.FAILED:  # a refusal stands: only a failed one goes again
            raise Conflict(
                _NOT_RESENT.get(
                    dispatch.state,
                    f"This request's dispatch is {dispatch.state}, not failed: only a failed "
                    "one is sent again.",
                ),
                field="action",
                state=dispatch.state,
            )
        resend_dispatch(uow, dispatch, ctx.now)
        job = new_job(
            "deliver_dispatches",
            ctx.now,
            agency_id=head.agency_id,
            document_id=head.id,
            queue="urgent" if head.urgency > 0 else "default",
            payload={"dispatch_id": dispatch.id, "request_id": dispatch.request_id},
        )
        enqueue(uow, [job], ctx.now + self.job_deadline)
        ctx.audit["resent"] = {
            "dispatch_id": dispatch.id,
            "organ_id": dispatch.organ_id,
            "request_id": dispatch.request_id,
            "message_id": dispatch.message_id,
        }

    def settle(self, ctx: TransitionContext) -> None:
        row = self._row(ctx)
        values: dict[str, Any] = {"active_key": None, "closed_at": ctx.now, "snoozed_until": None}
        if ctx.event == "resolve":
            outcome = _one_of(
                ctx.data.get("outcome"), e.OUTCOMES, "outcome", "An escalation's outcome"
            )
            values["outcome"] = outcome
            ctx.audit["outcome"] = outcome
        else:
            values["outcome"] = "cause_gone"
            ctx.audit["outcome"] = "cause_gone"
        ctx.uow.escalations.set(row.id, **values)
        ctx.uow.timers.cancel(ESCALATION_RISE, row.id)
        ctx.uow.timers.cancel(ESCALATION_WAKE, row.id)


def _moment(value: Any, name: str) -> datetime:
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            f"{name} is a moment in ISO 8601 with its offset, e.g. 2026-12-01T08:00:00+07:00.",
            field=name,
        )
    return moment


def notice(uow: UnitOfWork, escalation: Escalation) -> dict[str, Any]:
    """What a notification says about an escalation: plain JSON, as it stands now."""
    en, vi, todo_en, todo_vi = e.texts(escalation.kind, escalation.received_id is not None)
    event: dict[str, Any] = {
        "escalation_id": escalation.id,
        "kind": escalation.kind,
        "level": escalation.level,
        "severity": escalation.severity,
        "state": escalation.state,
        "what": en,
        "what_vi": vi,
        "what_to_do": todo_en,
        "what_to_do_vi": todo_vi,
        "due_at": escalation.due_at.isoformat() if escalation.due_at else None,
        "opened_at": escalation.opened_at.isoformat(),
        "document_id": escalation.document_id,
        "received_id": escalation.received_id,
        "recipient": escalation.organ_id or None,
        "link": f"/v1/escalations/{escalation.id}",
    }
    if escalation.document_id:
        row = uow.documents.load(escalation.document_id)
        event.update(number=row.number, symbol=row.symbol, subject=row.subject)
        event["number_symbol"] = written_notation(row.as_dict()) or None
        for recipient in uow.documents.recipients(escalation.document_id):
            if recipient.organ_id == escalation.organ_id and recipient.name:
                event["recipient_name"] = recipient.name
    elif escalation.received_id:
        got = uow.received.get(escalation.received_id)
        if got is not None:
            event.update(number=got.number, symbol=got.symbol, subject=got.subject)
            event["number_symbol"] = notation(got.number, got.symbol) or None
            sender = uow.agencies.agency(got.sender_id)
            if sender is not None and sender.name:
                event["sender_name"] = sender.name
    plain: dict[str, Any] = json.loads(json.dumps(event, default=str))
    return plain


def _one_of(value: Any, allowed: Iterable[str], field: str, what: str) -> str:
    """``value`` when it is one of ``allowed``; else ``invalid_input`` naming them."""
    names = list(allowed)
    if value not in names:
        raise InvalidInput(f"{what} is one of {', '.join(names)}.", field=field, allowed=names)
    return str(value)
