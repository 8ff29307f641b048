"""Whether a time rule whose deadline passed is broken: when a watched timer fires (the
scheduler, ``on_deadline``) and the rule still is, its escalation opens; one whose
recipient is asked to cancel the document meanwhile is put off until it answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from congvan.states import dispatch as d
from congvan.states import document as doc
from congvan.states import escalation as e
from congvan.states import received as r
from congvan.states.vocabulary import RULE_DEADLINE
from congvan.storage.dispatches import DispatchRow
from congvan.storage.received import AWAITING
from congvan.storage.timers import DueTimer
from congvan.storage.unit_of_work import UnitOfWork

from ..recalls import request_kind
from .base import add_timer
from .lifecycle import Lifecycle
from .rules import ENDED, PASSED


class BrokenRules(Lifecycle):
    """Judges a watched rule when its deadline passes."""

    @staticmethod
    def _recall_awaited(uow: UnitOfWork, row: DispatchRow | None) -> bool:
        """Whether a recall of ``row``'s document awaits its recipient's answer."""
        if row is None or row.request_id:
            return False
        return any(
            asked.organ_id == row.organ_id
            and asked.state in d.UNANSWERED
            and request_kind(uow, asked) == "recall"
            for asked in uow.dispatches.for_requests(row.document_id)
        )

    @staticmethod
    def _put_off(uow: UnitOfWork, timer: DueTimer, due: datetime, agency_id: str) -> None:
        """Watch ``timer``'s rule again at ``due``: still broken since its first deadline.

        Cancel and add, not reset: the scheduler deletes the timer that fired by its id."""
        uow.timers.cancel(RULE_DEADLINE, timer.ref_id)
        payload = {**timer.payload, "deadline": timer.deadline.isoformat()}
        add_timer(
            uow,
            RULE_DEADLINE,
            timer.ref_id,
            timer.document_id,
            due + PASSED,
            payload,
            agency_id=agency_id,
        )

    def _open_on_received(
        self,
        uow: UnitOfWork,
        kind: str,
        received_id: str,
        subject_id: str,
        timer: DueTimer,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
        *,
        waiting: bool = False,
    ) -> None:
        """Open ``kind`` on a document that arrived here, for its own agency; ``waiting``:
        only while it waits unregistered."""
        received = uow.received.get(received_id)
        if received is None or (waiting and received.state != r.RECEIVED):
            return
        self.open(
            uow,
            kind=kind,
            subject_id=subject_id,
            agency_id=received.agency_id,
            urgency=received.urgency,
            due_at=timer.deadline,
            now=now,
            received_id=received.id,
            organ_id=received.sender_id,
            detail=detail,
        )

    def on_deadline(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        """A watched rule's deadline passed: open its escalation if the rule is still broken."""
        kind = str(timer.payload["escalation"])
        deadline = timer.deadline
        if "dispatch_id" in timer.payload:
            dispatch_id = str(timer.payload["dispatch_id"])
            row = uow.dispatches.get(dispatch_id)
            head = None if row is None else uow.documents.head(row.document_id)
            broken = (
                row is not None
                and (
                    (kind == e.NOT_DELIVERED and row.state in (d.PENDING, d.SENDING))
                    or (
                        kind in (e.NOT_ACKNOWLEDGED, e.RECALL_UNANSWERED)
                        and row.state == d.DELIVERED
                    )
                )
                # A recalled or replaced document's own dispatches await nothing more.
                and (bool(row.request_id) or head is None or head.state not in ENDED)
            )
            if broken and kind == e.NOT_ACKNOWLEDGED and self._recall_awaited(uow, row):
                # Its recipient is asked to cancel it, not to register it: told once it
                # answers (an agreement keeps the rule; a refusal leaves it in force).
                assert row is not None and head is not None
                due = self.deadlines(uow, head.agency_id).after(now, "recall_answer", head.urgency)
                self._put_off(uow, timer, due, head.agency_id)
            elif broken:
                self.open_for_dispatch(uow, kind, dispatch_id, deadline, now)
        elif "request_id" in timer.payload:  # a recall or update we owe an answer
            request = uow.received.request(str(timer.payload["request_id"]))
            if request is not None and request.state == AWAITING:
                detail = {"request": request.kind, "message_id": request.message_id}
                self._open_on_received(
                    uow, kind, request.received_id, request.id, timer, now, detail
                )
        elif "received_id" in timer.payload:
            received_id = str(timer.payload["received_id"])
            received = uow.received.get(received_id)
            asked = [] if received is None else uow.received.requests(received_id)
            if any(q.kind == "recall" and q.state == AWAITING for q in asked):
                # Its sender asks that it be cancelled: our clerks answer that (its own
                # rule) rather than register it; watched again once they have.
                assert received is not None
                rules = self.deadlines(uow, received.agency_id)
                due = rules.after(now, "recall_answer", received.urgency)
                self._put_off(uow, timer, due, received.agency_id)
                return
            self._open_on_received(uow, kind, received_id, received_id, timer, now, waiting=True)
        elif timer.document_id is not None:
            head = uow.documents.head(timer.document_id)
            if head is not None and head.state == doc.SIGNED and kind == e.NOT_SENT_IN_TIME:
                self.open(
                    uow,
                    kind=kind,
                    subject_id=head.id,
                    agency_id=head.agency_id,
                    urgency=head.urgency,
                    due_at=deadline,
                    now=now,
                    document_id=head.id,
                )
