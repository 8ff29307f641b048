"""Recall, update and replace of sent documents: the guards and row changes of both ends.

The sending agency asks the recipients that have a document to take it back (recall, thu
hồi, QCVN 102 business type 1) or to correct its metadata (update, cập nhật, 2): one new
dispatch per recipient carries the request (``open_request``), sealed and delivered like
the document itself. Each recipient's clerk agrees (status 15) or refuses (16, with a
reason); the document is recalled once every recipient of the recall agreed. A corrected
document replaces it (thay thế, 3) when the replacement is sent (``supersede_original``).

On the receiving side a request is kept with the document it is about
(``record_request``) and answered by the clerk (``answer_request``): an agreed recall
cancels the document, an agreed update applies the corrected metadata, keeping the old
values in the audit trail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from congvan.states import dispatch as d
from congvan.states.document import DELIVERED, ISSUED
from congvan.states.machine import derive_document_state
from congvan.states.received import ANSWER_CODE
from congvan.storage.clock import as_utc
from congvan.storage.dispatches import DispatchRow
from congvan.storage.ids import new_id
from congvan.storage.received import AGREED, AWAITING, REFUSED
from congvan.storage.unit_of_work import UnitOfWork

from .context import TransitionContext
from .corrections import apply_update

log = logging.getLogger("congvan.recalls")


def on_its_way(uow: UnitOfWork, document_id: str) -> list[str]:
    """The recipients the document's sending is still on its way to (pending or
    sending): a request or replacement now would reach them before the document."""
    return sorted(
        r.organ_id for r in uow.dispatches.for_document(document_id) if r.state in d.ON_ITS_WAY
    )


def outcome_unknown(uow: UnitOfWork, document_id: str) -> list[str]:
    """The recipients whose dispatch failed for good after an attempt that may have
    reached them (its answer lost, or not a receipt that verified): each may hold the
    document, in force, and nothing says so yet. Its signed status may still come, and a
    resend gets its receipt (the receiver answers a message it has with its first one)."""
    return sorted(
        r.organ_id
        for r in uow.dispatches.for_document(document_id)
        if r.state == d.FAILED
        and any(a.outcome in d.MAY_HAVE_ARRIVED for a in uow.dispatches.attempts_of(r.id))
    )


def _unsettled(uow: UnitOfWork, document_id: str, document: str, what: str) -> str:
    """Why ``what`` (a recall, an update, a replacement) of ``document`` (as the reason
    names it) cannot go now, or ""."""
    going = on_its_way(uow, document_id)
    if going:
        return (
            f"{document} is still on its way to {', '.join(going)}: send {what} once "
            "each of its dispatches has arrived or failed for good"
        )
    unknown = outcome_unknown(uow, document_id)
    if unknown:
        return (
            f"{document} may have reached {', '.join(unknown)}, whose dispatch failed "
            f"with its outcome unknown: resend it first (its receipt, or the recipient's "
            f"status, says whether it has it), then send {what}"
        )
    return ""


# -- the sending side ----------------------------------------------------------------------


def request_kind(uow: UnitOfWork, dispatch: DispatchRow) -> str:
    """What a request's dispatch asks (``recall`` or ``update``), as its sealed header says."""
    header = uow.dispatches.header_of(dispatch.id)
    return str(json.loads(header)["business_type"]) if header else ""


def no_request_awaiting(ctx: TransitionContext) -> tuple[bool, str]:
    """One request at a time: every recipient answered the last one (or refused it)."""
    open_ = [r for r in ctx.uow.dispatches.for_requests(ctx.document.id) if r.state in d.UNANSWERED]
    return not open_, "a recall or update of this document still awaits its answers"


def nothing_under_way(ctx: TransitionContext) -> tuple[bool, str]:
    """A recall or update goes to every recipient that has the document: none may still
    be waiting for an attempt or in one, or the document would arrive after the request,
    in force there and never asked about; nor may one have failed with its outcome
    unknown (it may hold the document, and would never be asked)."""
    why = _unsettled(ctx.uow, ctx.document.id, "the document", "the recall or update")
    return not why, why


def a_recipient_holds_it(ctx: TransitionContext) -> tuple[bool, str]:
    """A recall or update asks the recipients that hold the document: one at least."""
    return bool(reached(ctx.uow, ctx.document.id)), (
        "no recipient holds the document (each refused it, never got it, or agreed to an "
        "earlier recall): there is nothing to recall or update"
    )


# Where an update's dispatch leaves its recipient without the correction: it never arrived
# (failed for good, or refused by its inbox), or the recipient refused it (16).
_UNCORRECTED = frozenset({d.FAILED, d.REJECTED, d.DECLINED})


def uncorrected(uow: UnitOfWork, document_id: str) -> list[str]:
    """The recipients holding the document whose copy lacks an earlier update's
    corrections: that update failed to reach them, or they refused it."""
    holders = {r.organ_id for r in reached(uow, document_id)}
    return sorted(
        {
            r.organ_id
            for r in uow.dispatches.for_requests(document_id)
            if r.state in _UNCORRECTED
            and r.organ_id in holders
            and request_kind(uow, r) == "update"
        }
    )


def corrections_reached(ctx: TransitionContext) -> tuple[bool, str]:
    """An update carries its own corrections alone: a recipient that did not take an
    earlier one would take this one over the old values, its copy differing from ours
    while the update shows agreed."""
    left = uncorrected(ctx.uow, ctx.document.id)
    return not left, (
        f"an earlier update of the document did not correct the copy of {', '.join(left)} "
        "(it failed to reach it, or was refused there): resend that update from its "
        "escalation, or send a replacement, before correcting it again"
    )


def original_settled(ctx: TransitionContext) -> tuple[bool, str]:
    """A replacement goes out once the document it replaces stands still
    (:func:`replacement_held`)."""
    why = replacement_held(ctx.uow, ctx.document.id, lock=not ctx.uow.readonly)
    return why is None, why or ""


def replacement_held(uow: UnitOfWork, document_id: str, *, lock: bool = False) -> str | None:
    """Why the replacement ``document_id`` cannot go out now, or None: the document it
    replaces must stand in force (not recalled or replaced meanwhile: its recipients
    would refuse a replacement of it), with none of its dispatches on its way (that
    recipient would get it after the replacement, both in force there). ``lock``: the
    original's row, as the guard holds it."""
    row = uow.documents.load(document_id)
    if row.replaces_id is None:
        return None
    # Locked: a recall or update of the original committing meanwhile would be replaced
    # under it, never answered (its recipients refuse the replacement while it awaits).
    original = uow.documents.head(row.replaces_id, for_update=lock)
    if original is None or original.state not in ISSUED:
        state = original.state if original is not None else "gone"
        return (
            f"the document it replaces is no longer in force ({state}): there is nothing "
            "left to replace (send a new document)"
        )
    why = _unsettled(uow, row.replaces_id, "the document it replaces", "the replacement")
    if why:
        return why
    recipients = [r.organ_id for r in uow.documents.recipients(row.id)]
    left_out = holders_left_out(uow, row.replaces_id, recipients)
    if left_out:
        return (
            f"{', '.join(left_out)} hold the document it replaces, in force, and the "
            "replacement does not go to them: it would stand there unreplaced (return the "
            "replacement to draft and add them back among its recipients)"
        )
    # A recall or update of it on its way or awaiting its answers: replaced meanwhile,
    # it could never be answered (its recipients' copies no longer in force).
    asking = [r for r in uow.dispatches.for_requests(row.replaces_id) if r.state in d.UNANSWERED]
    if not asking:
        return None
    return (
        "a recall or update of the document it replaces still awaits its answers from "
        f"{', '.join(sorted({r.organ_id for r in asking}))}: send the replacement once "
        "each has answered"
    )


def was_updated(uow: UnitOfWork, document_id: str) -> bool:
    """Whether an update of the document was sent (its values changed since its send)."""
    return any(request_kind(uow, r) == "update" for r in uow.dispatches.for_requests(document_id))


def never_updated(ctx: TransitionContext) -> tuple[bool, str]:
    """A resend delivers the package sealed at send: after an update it would carry the
    old values to recipients no update ever reaches."""
    updated = was_updated(ctx.uow, ctx.document.id)
    return not updated, (
        "the document was updated after it was sent and a resend would carry the old "
        "values: send a replacement to the recipients that failed"
    )


def carries_request(ctx: TransitionContext) -> tuple[bool, str]:
    dispatch: DispatchRow | None = ctx.data.get("dispatch")
    return dispatch is not None and bool(dispatch.request_id), (
        "the package did not ask to recall or update the document"
    )


def recall_agreed(ctx: TransitionContext) -> tuple[bool, str]:
    """The recall ``ctx.data["request_id"]`` is done with (``recall_complete``)."""
    request_id = str(ctx.data.get("request_id") or "")
    holds = bool(request_id) and recall_complete(ctx.uow, ctx.document.id, request_id)
    return holds, "not every recipient agreed to the recall"


def recall_complete(uow: UnitOfWork, document_id: str, request_id: str) -> bool:
    """Every recipient of the recall ``request_id`` agreed to it (15), or turned it away
    having returned the document (02) meanwhile: the two crossed, and it holds nothing a
    recall would cancel; one agreed at least. (A return that comes before the recall
    leaves that recipient out of it; one that crosses it ends the same.)"""
    rows = uow.dispatches.for_requests(document_id, request_id)
    if not rows or request_kind(uow, rows[0]) != "recall":
        return False
    returned = {
        r.organ_id for r in uow.dispatches.for_document(document_id) if r.state == d.REJECTED
    }
    settled = all(
        r.state == d.AGREED or (r.state not in d.UNANSWERED and r.organ_id in returned)
        for r in rows
    )
    return settled and any(r.state == d.AGREED for r in rows)


def latest_recall(uow: UnitOfWork, document_id: str) -> str | None:
    """The request id of the document's latest recall (ids sort by creation), or None."""
    recalls = [
        r.request_id
        for r in uow.dispatches.for_requests(document_id)
        if r.request_id and request_kind(uow, r) == "recall"
    ]
    return max(recalls, default=None)


def reached(uow: UnitOfWork, document_id: str) -> list[DispatchRow]:
    """The sending's dispatches whose recipient has the document in force (status 01 or
    later, and not cancelled: a recipient that agreed to an earlier recall has it no
    more, and is asked nothing again)."""
    gone = cancelled(uow, document_id)
    return [
        r
        for r in uow.dispatches.for_document(document_id)
        if r.state in d.ARRIVED and r.message_id and r.organ_id not in gone
    ]


def holders_left_out(uow: UnitOfWork, original_id: str, organ_ids: Iterable[str]) -> list[str]:
    """The recipients holding ``original_id`` in force that ``organ_ids`` (a replacement's
    recipients) leave out: a replacement goes to each, so that the original is replaced
    at both ends (Decree 30 Art. 17), never left in force where it was received."""
    return sorted({r.organ_id for r in reached(uow, original_id)} - set(organ_ids))


def cancelled(uow: UnitOfWork, document_id: str) -> set[str]:
    """The recipients whose copy of the document is cancelled: they agreed to a recall."""
    return {r.organ_id for r in _agreed_recalls(uow, document_id)}


def _agreed_recalls(uow: UnitOfWork, document_id: str) -> list[DispatchRow]:
    """The dispatches of the document's recalls that their recipients agreed to (15)."""
    return [
        r
        for r in uow.dispatches.for_requests(document_id)
        if r.state == d.AGREED and request_kind(uow, r) == "recall"
    ]


def recall_agreed_at(uow: UnitOfWork, document_id: str, organ_id: str) -> datetime | None:
    """When ``organ_id`` agreed to recall the document (its 15's own time), or None."""
    agreed = [
        as_utc(status.at)
        for r in _agreed_recalls(uow, document_id)
        if r.organ_id == organ_id
        for status in uow.dispatches.statuses_of(r.id)
        if status.code == ANSWER_CODE["agree_recall"]
    ]
    return min(agreed, default=None)


def derived_state(uow: UnitOfWork, document_id: str) -> str:
    """The state a sent document's dispatches imply, leaving out the recipients whose copy
    a recall cancelled: they will never register it, and the document is acknowledged
    once every recipient still holding it did (recalled once none holds it)."""
    state = derive_document_state(uow.dispatches.states(document_id))
    # A cancelled copy arrived (a recall goes to those that have it): it can only hold
    # the document back from acknowledged, so nothing else is worth the look.
    if state != DELIVERED:
        return state
    gone = cancelled(uow, document_id)
    if not gone:
        return state
    rest = [r.state for r in uow.dispatches.for_document(document_id) if r.organ_id not in gone]
    return derive_document_state(rest) if rest else state


def open_request(ctx: TransitionContext) -> None:
    """One pending dispatch per recipient that has the document, carrying the request."""
    reach = reached(ctx.uow, ctx.document.id)  # one at least (``a_recipient_holds_it``)
    request_id = new_id()
    rows = [
        DispatchRow(
            id=new_id(),
            document_id=ctx.document.id,
            organ_id=r.organ_id,
            state=d.PENDING,
            attempts=0,
            last_error="",
            updated_at=ctx.now,
            request_id=request_id,
        )
        for r in reach
    ]
    ctx.uow.dispatches.create(rows)
    ctx.job_payload["request_id"] = request_id
    ctx.audit["request"] = {
        "id": request_id,
        "kind": ctx.event,
        "dispatches": {r.organ_id: r.id for r in rows},
    }
    # Each recipient's answer (15/16) is then awaited by the time rule ``recall_answer``,
    # watched from the moment its dispatch arrives (actions/escalations/rules.py).
    ctx.fan_out["deliver_dispatches"] = [{"dispatch_id": r.id} for r in rows]


def recall_answered(uow: UnitOfWork, document_id: str, request_id: str) -> bool:
    """Whether every recipient of the request has answered."""
    rows = uow.dispatches.for_requests(document_id, request_id)
    return not any(r.state in d.UNANSWERED for r in rows)


def supersede_original(ctx: TransitionContext) -> None:
    """A replacement being sent: the document it replaces is replaced, in this transaction."""
    row = ctx.uow.documents.load(ctx.document.id)
    if row.replaces_id is None:
        return
    original = ctx.uow.documents.head(row.replaces_id)  # locked by original_settled
    if original is None or original.state not in ISSUED:
        ctx.audit["replaces"] = {"id": row.replaces_id, "marked": False}
        return
    ctx.audit["replaces"] = {"id": row.replaces_id, "marked": True}
    ctx.follow.append(("document", row.replaces_id, "replaced", {"replaced_by": row.id}))


# -- the receiving side ---------------------------------------------------------------------


def no_answer_owed(ctx: TransitionContext) -> tuple[bool, str]:
    """One request at a time, as the sender's own rule has it: a second kept beside one
    awaiting could never be answered once the first is (an agreed recall ends it)."""
    owed = [r for r in ctx.uow.received.requests(ctx.document.id) if r.state == AWAITING]
    return not owed, "an earlier recall or update of this document still awaits our answer"


def _awaiting(kind: str) -> Any:
    def guard(ctx: TransitionContext) -> tuple[bool, str]:
        pending = ctx.uow.received.awaiting(ctx.document.id, kind)
        return pending is not None, f"the sender asked for no {kind} awaiting an answer"

    guard.__name__ = f"{kind}_awaiting"
    return guard


recall_awaiting = _awaiting("recall")
update_awaiting = _awaiting("update")


def record_request(ctx: TransitionContext) -> None:
    """Keep the sender's request (verified by the inbox) until our clerk answers it."""
    data = ctx.data
    ctx.uow.received.add_request(
        {
            "id": data["request_id"],
            "received_id": ctx.document.id,
            "kind": data["kind"],
            "message_id": data["message_id"],
            "reason": data["reason"],
            "changes": json.dumps(data.get("changes") or {}, ensure_ascii=False, sort_keys=True),
            "state": AWAITING,
            "answer_reason": "",
            "package_sha256": data["package_sha256"],
            "receipt": data["receipt"],
            "receipt_cms": data["receipt_cms"],
            "received_at": ctx.now,
            "answered_at": None,
        }
    )
    ctx.audit["request"] = {
        "id": data["request_id"],
        "kind": data["kind"],
        "message_id": data["message_id"],
        "changes": data.get("changes") or {},
    }


def answer_request(ctx: TransitionContext) -> None:
    """Our clerk's answer to the oldest request awaiting one: 15 agrees, 16 refuses."""
    kind = "recall" if ctx.event.endswith("_recall") else "update"
    request = ctx.uow.received.awaiting(ctx.document.id, kind)
    assert request is not None  # the edge's guard holds
    agreed = ANSWER_CODE[ctx.event] == "15"
    reason = str(ctx.data.get("reason") or "")
    ctx.uow.received.answer_request(request.id, AGREED if agreed else REFUSED, reason, ctx.now)
    ctx.job_payload["request_id"] = request.id
    ctx.audit["request"] = {"id": request.id, "kind": kind, "code": ANSWER_CODE[ctx.event]}
    if agreed and kind == "update":
        received = ctx.uow.received.get(ctx.document.id)
        assert received is not None
        changes: dict[str, str | None] = json.loads(request.changes)
        corrections = {**json.loads(received.corrections), **changes}
        columns = {k: v or "" for k, v in changes.items() if k in ("subject", "issued_on")}
        before = {k: getattr(received, k) for k in columns}
        old = json.loads(received.corrections)
        ctx.uow.received.correct(
            ctx.document.id, columns, json.dumps(corrections, ensure_ascii=False, sort_keys=True)
        )
        ctx.audit["changed"] = {
            k: {"from": before.get(k, old.get(k)), "to": v} for k, v in changes.items()
        }


GUARDS = {
    "no_request_awaiting": no_request_awaiting,
    "nothing_under_way": nothing_under_way,
    "a_recipient_holds_it": a_recipient_holds_it,
    "never_updated": never_updated,
    "corrections_reached": corrections_reached,
    "original_settled": original_settled,
    "carries_request": carries_request,
    "recall_agreed": recall_agreed,
    "recall_awaiting": recall_awaiting,
    "no_answer_owed": no_answer_owed,
    "update_awaiting": update_awaiting,
}

EFFECTS = {
    "apply_update": apply_update,
    "open_request": open_request,
    "supersede_original": supersede_original,
    "record_request": record_request,
    "answer_request": answer_request,
}
