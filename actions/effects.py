"""Row changes a transition makes inside its own transaction."""

from __future__ import annotations

from datetime import datetime

from congvan.states import dispatch as d
from congvan.states.errors import InvalidInput
from congvan.states.fields import EDITABLE
from congvan.states.machine import resolve
from congvan.states.timeliness import VIETNAM, judge_sending
from congvan.storage.audit import timestamp
from congvan.storage.dispatches import DispatchRow
from congvan.storage.ids import new_id
from congvan.storage.unit_of_work import UnitOfWork

from .context import TransitionContext
from .recalls import holders_left_out


def apply_edit(ctx: TransitionContext) -> None:
    """Write the changed fields and recipients of a draft; the audit records what changed."""
    fields = {k: v for k, v in ctx.data.get("fields", {}).items() if k in EDITABLE}
    before = ctx.uow.documents.load(ctx.document.id)
    changed = {k: v for k, v in fields.items() if getattr(before, k) != v}
    kind = sorted({"doc_type", "legal_normative"} & changed.keys())
    if before.replaces_id and kind:
        # Decree 30 Art. 17 and domain.md §1: a document is replaced by one of its kind
        raise InvalidInput(
            "A replacement is a document of the kind it replaces: its type (and whether it "
            "is legal normative) stays the original's.",
            field=kind[0],
            replaces=before.replaces_id,
        )
    ctx.uow.documents.set_fields(ctx.document.id, changed)
    recipients = ctx.data.get("recipients")
    if recipients is not None and before.replaces_id:
        left_out = holders_left_out(
            ctx.uow, before.replaces_id, [r["organ_id"] for r in recipients]
        )
        if left_out:
            raise InvalidInput(
                f"{', '.join(left_out)} hold the document this one replaces: a replacement "
                "goes to every recipient holding the original (it is replaced at both "
                "ends), so they stay among its recipients.",
                field="recipients",
                left_out=left_out,
                replaces=before.replaces_id,
            )
    if recipients is not None:
        ctx.uow.documents.set_recipients(ctx.document.id, recipients)
        ctx.audit["recipients"] = [r["organ_id"] for r in recipients]
    if not changed and recipients is None:
        raise InvalidInput("The edit changes nothing.")
    ctx.audit["changed"] = sorted(changed)
    ctx.audit["revision"] = ctx.uow.documents.bump_revision(ctx.document.id)


def _no_guards(name: str) -> tuple[bool, str]:
    raise AssertionError(f"dispatch resend is unguarded, yet asked for {name!r}")


def create_dispatches(ctx: TransitionContext) -> None:
    """One pending dispatch per recipient."""
    recipients = ctx.uow.documents.recipients(ctx.document.id)
    if not recipients:
        raise InvalidInput("The document has no recipients to send to.")
    rows = [
        DispatchRow(
            id=new_id(),
            document_id=ctx.document.id,
            organ_id=r.organ_id,
            state=d.PENDING,
            attempts=0,
            last_error="",
            updated_at=ctx.now,
        )
        for r in recipients
    ]
    ctx.uow.dispatches.create(rows)
    ctx.audit["dispatches"] = {r.organ_id: r.id for r in rows}
    ctx.fan_out["deliver_dispatches"] = [{"dispatch_id": r.id} for r in rows]


def register_sending(ctx: TransitionContext) -> None:
    """Enter the send in the outgoing register (its audit entry): the number it was issued
    under, when it was signed and sent, judged against the send-by moment its signing set
    (Decision 28/2018 Art. 6: the same day, at the latest the next working morning)."""
    signings = ctx.uow.audit.entries(ctx.document.id, "sign")
    signed = signings[-1].payload if signings else {}
    send_by = (signed.get("timeliness") or {}).get("send_by") or signed.get("send_by")
    row = ctx.uow.documents.load(ctx.document.id)
    ctx.audit["register"] = {
        "number": row.number,
        "symbol": row.symbol,
        "issued_on": str(row.issued_on) if row.issued_on else None,
        "signed_at": timestamp(signings[-1].at) if signings else None,
    }
    ctx.audit["sending"] = judge_sending(
        ctx.now, datetime.fromisoformat(send_by) if isinstance(send_by, str) else None
    )


def resend_dispatch(uow: UnitOfWork, row: DispatchRow, now: datetime) -> None:
    """A failed dispatch starts again from pending, with fresh attempts and the package it
    was sealed with (its own message id); any other is refused (a refusal stands)."""
    # The dispatch machine still decides: resend is an edge it declares.
    step = resolve(d.DISPATCH, row.state, "resend", _no_guards)
    uow.dispatches.set_state(row.id, state=step.dest, at=now, attempts=0)


def reset_failed_dispatches(ctx: TransitionContext) -> None:
    """Failed dispatches start again from pending, with fresh attempts; refused ones stay."""
    again = []
    for row in ctx.uow.dispatches.for_document(ctx.document.id):
        if row.state == d.FAILED:
            resend_dispatch(ctx.uow, row, ctx.now)
            again.append(row)
    ctx.audit["resent_to"] = [row.organ_id for row in again]
    # Each sent again with its own message id: the receiver knows what it already has.
    ctx.fan_out["deliver_dispatches"] = [{"dispatch_id": row.id} for row in again]


def register_received(ctx: TransitionContext) -> None:
    """Enter a received document in the agency's incoming register: its number this year."""
    year = ctx.now.astimezone(VIETNAM).year
    number = ctx.uow.received.register(ctx.document.id, ctx.document.agency_id, year)
    ctx.audit["register"] = {"year": year, "number": number}


def record_refusal(ctx: TransitionContext) -> None:
    """Keep why a received document was returned, for its listing and the status message."""
    ctx.uow.received.set_reason(ctx.document.id, str(ctx.data["reason"]))


EFFECTS = {
    "apply_edit": apply_edit,
    "create_dispatches": create_dispatches,
    "register_sending": register_sending,
    "reset_failed_dispatches": reset_failed_dispatches,
    "register_received": register_received,
    "record_refusal": record_refusal,
}
