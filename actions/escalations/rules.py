"""Which time rules a transition starts watching or keeps.

A time rule (states/deadlines.py) is watched by a database timer written in the
transaction of the transition that starts it and deleted in the one that makes it moot:
``after_transition`` runs inside every transition of the engine, ``arrived`` inside the
arrival of a received document. When a watched timer fires, ``broken.py`` judges whether
the rule is still broken; what goes wrong for good (a dispatch failed, a refusal) opens
an escalation here, at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from congvan.actions.exchange.receipts import arrived_at
from congvan.states import dispatch as d
from congvan.states import document as doc
from congvan.states import errors
from congvan.states import escalation as e
from congvan.states import received as r
from congvan.states.deadlines import RuleError, TimeRules
from congvan.states.errors import InvalidInput
from congvan.states.policy import APPOINTED_URGENCY
from congvan.states.timeliness import appointed_moment
from congvan.states.vocabulary import RULE_DEADLINE
from congvan.storage.dispatches import DispatchRow
from congvan.storage.unit_of_work import UnitOfWork

from ..recalls import request_kind
from .base import add_timer
from .lifecycle import Lifecycle

# A document taken back or replaced: its dispatches await nothing more.
ENDED = frozenset({doc.RECALLED, doc.REPLACED})
# The document's events that send a request (a recall, an update) to its recipients.
_REQUESTING = frozenset({"recall", "update"})
# Where a recall's or update's dispatch ends: answered (15, 16), refused by the
# recipient's inbox, or failed for good.
REQUEST_ENDS = d.ANSWERED | d.GIVEN_UP
# Where a request's dispatch stands once its package reached the recipient.
REQUEST_ARRIVED = d.ANSWERED | {d.DELIVERED}
# What a document's own dispatch may warn of while it is under way, and a request's.
# A deadline is kept by what happens at its very moment (as a send at ``send_by`` is on
# time: states/timeliness.py), so a rule's timer fires only once it has passed.
PASSED = timedelta(microseconds=1)
_SENDING_KINDS = (e.NOT_DELIVERED, e.NOT_ACKNOWLEDGED, e.DELIVERY_FAILED)
# Everything a document's own dispatch may warn of: its ends too (a refusal, 02, for the
# recipient's reasons or a signature's), which a recall or a replacement makes moot.
_DISPATCH_KINDS = (*_SENDING_KINDS, e.REFUSED_BY_RECIPIENT, e.SIGNATURE_PROBLEM)
_REQUEST_KINDS = (
    e.NOT_DELIVERED,
    e.RECALL_UNANSWERED,
    e.REQUEST_REFUSED,
    e.REFUSED_BY_RECIPIENT,
    e.SIGNATURE_PROBLEM,
    e.DELIVERY_FAILED,
)


def _signature_codes() -> frozenset[str]:
    """Reason codes of refusals that are a signature's problem, not the recipient's will."""
    found: set[str] = set()
    stack: list[type] = [errors.SignatureError, errors.AgencySignatureInvalid]
    while stack:
        cls = stack.pop()
        code = getattr(cls, "code", None)
        if isinstance(code, str):
            found.add(code)
        stack.extend(cls.__subclasses__())
    return frozenset(found | {"signed_pdf_invalid", "signed_pdf_signer", "verification_deferred"})


SIGNATURE_CODES = _signature_codes()


def refusal_kind(error: str) -> str:
    """signature_problem when a refusal names a signature's code, else refused_by_recipient."""
    head = error.split(":", 1)[0].split()
    return e.SIGNATURE_PROBLEM if SIGNATURE_CODES & set(head) else e.REFUSED_BY_RECIPIENT


@dataclass(frozen=True)
class Change:
    """One transition, as the watch sees it, inside its transaction."""

    machine: str
    subject_id: str
    event: str
    from_state: str
    to_state: str
    agency_id: str
    document_id: str  # the chain head: the document, the received document or escalation
    urgency: int
    data: Mapping[str, Any]
    now: datetime
    # The subject's row as the transition read it (a dispatch's: which request it carries).
    row: Any = None


class RuleTimers(Lifecycle):
    """Arms and cancels the time rules' timers; opens what a broken rule escalates."""

    def check_rules(self, overrides: Mapping[str, Any]) -> TimeRules:
        """An agency's overrides, checked against the province's (InvalidInput if not)."""
        try:
            return self.rules.tightened(overrides)
        except RuleError as exc:
            raise InvalidInput(str(exc), field="rules", rule=exc.rule, **exc.details) from None

    # -- inside transitions --------------------------------------------------------------------

    def after_transition(self, uow: UnitOfWork, change: Change) -> None:
        if change.machine == "document":
            self._document(uow, change)
        elif change.machine == "dispatch":
            self._dispatch(uow, change)
        elif change.machine == "received":
            self._received(uow, change)

    def _received(self, uow: UnitOfWork, change: Change) -> None:
        received_id = change.subject_id
        if change.from_state == r.RECEIVED != change.to_state:
            # It left ``received`` (registered, returned, recalled or replaced): the rule
            # that our clerks register it, watched only while it waits there, is kept.
            self._settled(uow, change, received_id, [(e.NOT_ACKNOWLEDGED, change.to_state)])
        if change.event in r.REQUESTING:
            # A recall or update arrived: our clerks answer it (15, 16) within
            # ``recall_answer`` (Decree 30 Art. 18), watched on the request itself.
            request_id = str(change.data["request_id"])
            due = self.deadlines(uow, change.agency_id).after(
                change.now, "recall_answer", change.urgency
            )
            payload = {"received_id": received_id, "request_id": request_id}
            self._arm(
                uow,
                e.RECALL_UNANSWERED,
                request_id,
                None,
                due,
                payload,
                agency_id=change.agency_id,
                cancel=False,
            )
        elif change.event in r.ANSWERING:
            # Answered: the requests of the document awaited are awaited no more.
            for request in uow.received.requests(received_id):
                self._settled(uow, change, request.id, [(e.RECALL_UNANSWERED, change.event)])

    def arrived(
        self,
        uow: UnitOfWork,
        received_id: str,
        agency_id: str,
        urgency: int,
        now: datetime,
        appointed: str | None = None,
    ) -> None:
        """A document arrived: our clerks register it by the rule (Decree 30 Art. 21), a
        hỏa tốc hẹn giờ one by its appointed time when that comes first."""
        due = self.deadlines(uow, agency_id).register_by(now, urgency, appointed_moment(appointed))
        payload = {"received_id": received_id}
        # Stored by this transaction: no timer watches it yet.
        self._arm(
            uow,
            e.NOT_ACKNOWLEDGED,
            received_id,
            None,
            due,
            payload,
            agency_id=agency_id,
            cancel=False,
        )

    @staticmethod
    def _appointed(uow: UnitOfWork, document_id: str | None, urgency: int) -> datetime | None:
        """A hỏa tốc hẹn giờ document's appointed time (read only for that level)."""
        if urgency < APPOINTED_URGENCY or document_id is None:
            return None
        return appointed_moment(uow.documents.load(document_id).appointed_at)

    def _document(self, uow: UnitOfWork, change: Change) -> None:
        document_id = change.subject_id
        if change.to_state == doc.SIGNED and change.from_state != doc.SIGNED:
            due = self.deadlines(uow, change.agency_id).send_by(
                change.now, change.urgency, self._appointed(uow, document_id, change.urgency)
            )
            self._arm(
                uow,
                e.NOT_SENT_IN_TIME,
                document_id,
                document_id,
                due,
                {},
                agency_id=change.agency_id,
            )
        if change.from_state == doc.SIGNED and change.to_state != doc.SIGNED:
            # Sent, or no longer to be sent (back to draft): why is the state it went to.
            why = change.to_state
            self._settled(uow, change, document_id, [(e.NOT_SENT_IN_TIME, why)])
        if change.to_state in ENDED and change.from_state not in ENDED:
            # Recalled or replaced: what its dispatches still waited for (arrival,
            # registration) is awaited no more, and what they warned of is moot (a failure,
            # a refusal: the replacement is the cure, a recall wants nothing more of them);
            # so is what an earlier request of it warned of (a recall refused, then agreed).
            why = change.to_state
            for row in uow.dispatches.for_document(document_id):  # its sending's only
                self._settled(uow, change, row.id, [(kind, why) for kind in _DISPATCH_KINDS])
            for row in uow.dispatches.for_requests(document_id):
                self._settled(uow, change, row.id, [(kind, why) for kind in _REQUEST_KINDS])
        if change.event in _REQUESTING:
            # A recall's or update's dispatches, made in this transaction: delivered like
            # the document, within ``deliver``, then answered (``_request``).
            made = [r for r in uow.dispatches.for_requests(document_id) if r.state == d.PENDING]
            latest = max((r.request_id for r in made), default=None)
            made = [r for r in made if r.request_id == latest]
            self._arm_delivery(uow, change, document_id, made, cancel=False)
        if change.event in ("send", "resend"):
            pending = [r for r in uow.dispatches.for_document(document_id) if r.state == d.PENDING]
            # A first send made its dispatches in this transaction: no timer watches them.
            self._arm_delivery(uow, change, document_id, pending, cancel=change.event != "send")

    def _arm_delivery(
        self,
        uow: UnitOfWork,
        change: Change,
        document_id: str,
        rows: Sequence[DispatchRow],
        *,
        cancel: bool,
    ) -> None:
        """Watch ``rows`` (sent, or resent, now) until they arrive: the rule ``deliver``."""
        if not rows:
            return
        due = self.deadlines(uow, change.agency_id).deliver_by(
            change.now, change.urgency, self._appointed(uow, document_id, change.urgency)
        )
        for row in rows:
            payload = {"dispatch_id": row.id}
            self._arm(
                uow,
                e.NOT_DELIVERED,
                row.id,
                document_id,
                due,
                payload,
                agency_id=change.agency_id,
                cancel=cancel,
            )

    def _dispatch(self, uow: UnitOfWork, change: Change) -> None:
        dispatch_id = change.subject_id
        dest = change.to_state
        # What it carries never changes; read again only when the transition did not say.
        row = change.row if isinstance(change.row, DispatchRow) else None
        row = row or uow.dispatches.get(dispatch_id)
        if row is not None and row.request_id:
            self._request(uow, change, row.request_id)
            return
        # What an escalation closed here says is what happened: delivered, or the end
        # that makes its rule moot (failed, rejected). One whose dispatch then ended badly
        # is followed by the escalation of that end, which names it (its owner and notes
        # stay in its trail); a refusal that comes after the dispatch failed follows the
        # failure's.
        was_failed = change.from_state == d.FAILED
        followed = None
        if dest in d.GIVEN_UP:
            ended = (e.DELIVERY_FAILED,) if was_failed else (e.NOT_DELIVERED, e.NOT_ACKNOWLEDGED)
            followed = next(
                (
                    found
                    for kind in ended
                    if (found := uow.escalations.active(e.cause_key(kind, dispatch_id)))
                ),
                None,
            )
        kept = []
        if dest in d.ARRIVED or dest in d.GIVEN_UP:
            kept.append((e.NOT_DELIVERED, "delivered" if dest in d.ARRIVED else dest))
        if dest in d.ARRIVED:
            kept.append((e.DELIVERY_FAILED, "delivered"))
        if dest == d.REJECTED and was_failed:
            # Its recipient refused what it got after all: no failure any more.
            kept.append((e.DELIVERY_FAILED, dest))
        if dest in (d.ACKNOWLEDGED, d.REJECTED):
            kept.append((e.NOT_ACKNOWLEDGED, dest))
        if kept:
            self._settled(uow, change, dispatch_id, kept)
        follows = (
            {"follows": followed.id, **({"owner_before": followed.owner} if followed.owner else {})}
            if followed is not None
            else {}
        )
        if dest == d.DELIVERED and change.from_state != d.DELIVERED:
            appointed = self._appointed(uow, change.document_id, change.urgency)
            due = self.deadlines(uow, change.agency_id).register_by(
                _arrived(uow, dispatch_id, change.now), change.urgency, appointed
            )
            payload = {"dispatch_id": dispatch_id}
            # Its timer was cancelled just above, as delivery kept the rule before.
            self._arm(
                uow,
                e.NOT_ACKNOWLEDGED,
                dispatch_id,
                change.document_id,
                due,
                payload,
                agency_id=change.agency_id,
                cancel=False,
            )
        if dest == d.FAILED:
            # Failed anew after a resend while its escalation stands: told again there.
            self.open_for_dispatch(
                uow,
                e.DELIVERY_FAILED,
                dispatch_id,
                change.now,
                change.now,
                detail=follows,
                again=True,
            )
        if dest == d.REJECTED:
            if row is not None:
                self._returned_after_refusal(uow, change, row.organ_id)
            head = uow.documents.head(change.document_id)
            if head is not None and head.state in ENDED:
                # Returned (02) when the document was already replaced or taken back (the
                # two crossed): nothing of it is in force to answer for; had the 02 come
                # first, its escalation would have closed then, as moot.
                return
            error = change.data.get("error")
            if not error:  # what the transition kept of it, as it stands now
                current = uow.dispatches.get(dispatch_id)
                error = current.last_error if current else ""
            error = str(error)
            kind = refusal_kind(error)
            # The recipient's refusal as given: a status 02's reason (kept on the dispatch
            # after its code), or the inbox's refusal with its reason code
            reason = error.removeprefix(f"{d.RECIPIENT_REFUSED}: ")
            self.open_for_dispatch(
                uow, kind, dispatch_id, change.now, change.now, detail={"reason": reason, **follows}
            )

    def _request(self, uow: UnitOfWork, change: Change, request_id: str) -> None:
        """A recall's or update's dispatch: once it arrives the recipient answers (15/16)
        within ``recall_answer``; every end but an agreement (15) escalates at once: a
        refusal (16), the recipient's inbox refusing the package, a failure."""
        dispatch_id, dest = change.subject_id, change.to_state
        if dest == d.PENDING and change.from_state == d.FAILED:
            # Resent from its escalation: watched again until it arrives.
            row = change.row if isinstance(change.row, DispatchRow) else None
            row = row or uow.dispatches.get(dispatch_id)
            if row is not None:
                self._arm_delivery(uow, change, row.document_id, [row], cancel=True)
        if dest in REQUEST_ARRIVED and change.from_state not in REQUEST_ARRIVED:
            # It reached the recipient (resent after it failed, it did this time).
            arrived = [(e.NOT_DELIVERED, "delivered"), (e.DELIVERY_FAILED, "delivered")]
            self._settled(uow, change, dispatch_id, arrived)
            self._earlier_requests_answered(uow, change, dispatch_id, request_id)
        if dest == d.DELIVERED and change.from_state != d.DELIVERED:
            due = self.deadlines(uow, change.agency_id).after(
                change.now, "recall_answer", change.urgency
            )
            payload = {"dispatch_id": dispatch_id, "request_id": request_id}
            self._arm(
                uow,
                e.RECALL_UNANSWERED,
                dispatch_id,
                change.document_id,
                due,
                payload,
                agency_id=change.agency_id,
            )
        if dest not in REQUEST_ENDS:
            return
        moot = [(e.RECALL_UNANSWERED, "answered")]
        if dest in d.GIVEN_UP:  # it never arrived: its delivery is awaited no more
            moot.append((e.NOT_DELIVERED, dest))
        self._settled(uow, change, dispatch_id, moot)
        if dest == d.AGREED:
            self._recalled_by(uow, change, dispatch_id)
            return
        if dest == d.REJECTED and self._returned(uow, change.document_id, dispatch_id):
            # Its inbox refused the request because the recipient had returned the
            # document (02) meanwhile: nothing there to recall or correct, and that
            # return has its own escalation.
            return
        detail = {"request_id": request_id}
        if dest == d.FAILED:
            kind = e.DELIVERY_FAILED
        else:
            row = uow.dispatches.get(dispatch_id)
            reason = str(
                change.data.get("error")
                or change.data.get("reason")
                or (row.last_error if row else "")
            )
            # Declined (16): the recipient keeps the document in force, which is not the
            # document returned (02); its inbox refusing the package is a refusal (02).
            kind = e.REQUEST_REFUSED if dest == d.DECLINED else refusal_kind(reason)
            detail["reason"] = reason
        again = dest == d.FAILED  # failed anew after a resend while its escalation stands
        self.open_for_dispatch(
            uow, kind, dispatch_id, change.now, change.now, detail=detail, again=again
        )

    def _returned_after_refusal(self, uow: UnitOfWork, change: Change, organ_id: str) -> None:
        """The recipient returned the document (02) after refusing its recall (16): it no
        longer holds it in force, which is what the recall asked, so the refusal's
        escalation ("the document stays in force there") is moot. So is the escalation of
        a request its inbox refused because the return crossed it (the 02 told here after
        the request's refusal)."""
        for asked in uow.dispatches.for_requests(change.document_id):
            if asked.organ_id != organ_id:
                continue
            if asked.state == d.DECLINED and request_kind(uow, asked) == "recall":
                self._settled(uow, change, asked.id, [(e.REQUEST_REFUSED, d.REJECTED)])
            elif asked.state == d.REJECTED:
                moot = [
                    (kind, "returned") for kind in (e.REFUSED_BY_RECIPIENT, e.SIGNATURE_PROBLEM)
                ]
                self._settled(uow, change, asked.id, moot)

    @staticmethod
    def _returned(uow: UnitOfWork, document_id: str, request_dispatch_id: str) -> bool:
        """Whether the recipient of a request's dispatch returned the document itself (02)."""
        asked = uow.dispatches.get(request_dispatch_id)
        return asked is not None and any(
            row.organ_id == asked.organ_id and not row.request_id and row.state == d.REJECTED
            for row in uow.dispatches.for_document(document_id)
        )

    def _recalled_by(self, uow: UnitOfWork, change: Change, request_dispatch_id: str) -> None:
        """A recipient agreed to a recall: its copy is cancelled, so its registration (or
        anything else the document's own dispatch to it awaited) will never come."""
        asked = uow.dispatches.get(request_dispatch_id)
        if asked is None or request_kind(uow, asked) != "recall":
            return
        for row in uow.dispatches.for_document(change.document_id):
            if row.organ_id == asked.organ_id and not row.request_id:
                self._settled(uow, change, row.id, [(k, "recalled") for k in _SENDING_KINDS])

    def _arm(
        self,
        uow: UnitOfWork,
        kind: str,
        subject_id: str,
        document_id: str | None,
        due: datetime,
        payload: Mapping[str, Any],
        *,
        agency_id: str,
        cancel: bool = True,
    ) -> None:
        # One rule is watched on a subject at a time (a dispatch: delivery, then its
        # registration), so the subject's id names its timer; ``cancel`` False: this
        # transaction cancelled it already.
        if cancel:
            uow.timers.cancel(RULE_DEADLINE, subject_id)
        add_timer(
            uow,
            RULE_DEADLINE,
            subject_id,
            document_id,
            due + PASSED,
            {"escalation": kind, **payload, "deadline": due.isoformat()},
            agency_id=agency_id,
        )

    def _earlier_requests_answered(
        self, uow: UnitOfWork, change: Change, dispatch_id: str, request_id: str
    ) -> None:
        """What an earlier request to this recipient warned of (it failed, was refused, or
        is not answered) is this one's to answer now that it arrived: one warning a
        recipient. An earlier one still on its way is watched on."""
        row = change.row if isinstance(change.row, DispatchRow) else None
        row = row or uow.dispatches.get(dispatch_id)
        if row is None:
            return
        for earlier in uow.dispatches.for_requests(row.document_id):
            if (
                earlier.organ_id == row.organ_id
                and earlier.request_id < request_id
                and earlier.state not in d.ON_ITS_WAY
            ):
                kept = [(kind, "requested_again") for kind in _REQUEST_KINDS]
                self._settled(uow, change, earlier.id, kept)

    def _settled(
        self, uow: UnitOfWork, change: Change, subject_id: str, kept: Sequence[tuple[str, str]]
    ) -> None:
        """The rules ``kept`` (kind, why) on ``subject_id`` are kept: its timer goes, and
        their escalations close (one look for all of them)."""
        uow.timers.cancel(RULE_DEADLINE, subject_id)
        whys = {e.cause_key(kind, subject_id): why for kind, why in kept}
        self.close_all(uow, whys, change.now)


def _arrived(uow: UnitOfWork, dispatch_id: str, recorded: datetime) -> datetime:
    """When a delivered package reached its recipient (its registration runs from then),
    not when we recorded it."""
    arrived = arrived_at(uow, dispatch_id)
    return recorded if arrived is None else min(arrived, recorded)
