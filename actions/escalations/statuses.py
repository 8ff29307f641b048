"""A status message our clerks' work owed a sender, and never given to it.

Registering, refusing or handling a received document, or answering a recall, queues a
``send_status`` job (actions/statuses.py). When that job gives up (the sender's system
unreachable past its attempts, no inbox known for it) or the sender refuses the message
for good (403, 409, 422), the sender goes on waiting for a status that will not come,
and nobody here would know: ``status_not_sent`` opens for the receiving agency's
supervisors, about that received document and that code. ``resend`` queues the same
message again with fresh attempts; once it is taken, the escalation closes by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from congvan.states import escalation as e
from congvan.states.errors import InvalidInput
from congvan.storage.unit_of_work import UnitOfWork

from ..context import TransitionContext
from ..jobs import enqueue, new_job
from .lifecycle import Lifecycle

SEND_STATUS = "send_status"


def status_subject(received_id: str, code: str) -> str:
    """What one status message is: its received document and its code (the sender keeps
    one message per code)."""
    return f"{received_id}:{code}"


class StatusWatch(Lifecycle):
    """Opens ``status_not_sent``, resends the message from it, closes it once given."""

    def status_not_given(
        self,
        uow: UnitOfWork,
        *,
        received_id: str,
        code: str,
        job_id: str,
        error: str,
        now: datetime,
    ) -> None:
        """The status ``code`` of ``received_id`` will not reach its sender: say so."""
        received = uow.received.get(received_id)
        if received is None:
            return
        self.open(
            uow,
            kind=e.STATUS_NOT_SENT,
            subject_id=status_subject(received_id, code),
            agency_id=received.agency_id,
            urgency=received.urgency,
            due_at=now,
            now=now,
            received_id=received_id,
            organ_id=received.sender_id,
            detail={"code": code, "job_id": job_id, "error": error[:500]},
        )

    def status_given(
        self,
        uow: UnitOfWork,
        payload: Mapping[str, Any],
        received_id: str,
        code: str,
        now: datetime,
    ) -> None:
        """A message sent again from an escalation was taken: the escalation closes."""
        if payload.get("escalation"):
            key = e.cause_key(e.STATUS_NOT_SENT, status_subject(received_id, code))
            self.close_all(uow, {key: "status_given"}, now)

    def _took_over(self, ctx: TransitionContext, action: str) -> bool:
        """``resend`` from ``status_not_sent``: the same message queued again."""
        row = self._row(ctx)
        if row.kind != e.STATUS_NOT_SENT or action != "resend":
            return super()._took_over(ctx, action)
        job_id = str(row.detail.get("job_id") or "")
        failed = ctx.uow.outbox.get(job_id) if job_id else None
        if failed is None or failed.action != SEND_STATUS or row.received_id is None:
            raise InvalidInput(
                "The status message to send again is no longer kept.", field="action"
            )
        received = ctx.uow.received.get(row.received_id)
        job = new_job(
            SEND_STATUS,
            ctx.now,
            agency_id=row.agency_id,
            document_id=row.received_id,
            queue="urgent" if received is not None and received.urgency > 0 else "default",
            payload={**failed.payload, "escalation": row.id},
        )
        enqueue(ctx.uow, [job], ctx.now + self.job_deadline)
        ctx.audit["resent"] = {"job_id": job["id"], "code": row.detail.get("code")}
        return True
