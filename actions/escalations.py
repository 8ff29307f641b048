"""Deadlines watched and escalations opened, owned and closed (states/escalation.py).

A time rule (states/deadlines.py) is watched by a database timer written in the
transaction of the transition that starts it and deleted in the one that makes it moot:
``Watch.after_transition`` runs inside every transition of the engine, ``Watch.arrived``
inside the arrival of a received document. When a watched timer fires (the scheduler,
``Watch.on_deadline``), the rule is broken: an escalation opens, with its own audit chain,
an owner to come, a deadline of its own (``escalate`` rule) and notifications. What goes
wrong for good (a dispatch failed, a refusal) opens one at once. An escalation closes
itself in the transaction that removes its cause (the dispatch delivered, the document
sent), saying so; one cause never has two open at a time (the row's unique active key).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from congvan.states import dispatch as d
from congvan.states import document as doc
from congvan.states import errors
from congvan.states import escalation as e
from congvan.states import received as r
from congvan.states.deadlines import Deadlines, RuleError, TimeRules, WorkingHours
from congvan.states.errors import InvalidInput
from congvan.states.text import has_visible_text
from congvan.states.timeliness import WorkingDays
from congvan.states.vocabulary import ESCALATION_RISE, ESCALATION_WAKE, RULE_DEADLINE
from congvan.storage.audit import GENESIS, make_entry
from congvan.storage.clock import as_utc
from congvan.storage.escalations import Escalation
from congvan.storage.ids import new_id
from congvan.storage.timers import DueTimer
from congvan.storage.unit_of_work import UnitOfWork

from .context import SYSTEM, Events, TransitionContext

log = logging.getLogger("congvan.escalations")

# queue_notifications(uow, agency_id=..., kind=..., event=...) -> how many were queued.
Notify = Callable[..., int]

# The longest a person may snooze an escalation.
MAX_SNOOZE = timedelta(days=30)


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


class Watch:
    """Arms and cancels the time rules' timers, opens and closes escalations."""

    def __init__(
        self,
        rules: TimeRules,
        calendar: WorkingDays,
        hours: WorkingHours,
        *,
        notify: Notify | None = None,
    ) -> None:
        self.rules = rules
        self.calendar = calendar
        self.hours = hours
        self.notify = notify
        # The engine (wired by bootstrap), to close and raise escalations in a transaction.
        self.events: Events | None = None

    # -- rules -------------------------------------------------------------------------------

    def deadlines(self, uow: UnitOfWork, agency_id: str) -> Deadlines:
        """The province's rules, tightened by the agency's own."""
        overrides = uow.escalations.time_rules(agency_id)
        rules = self.rules.tightened(overrides) if overrides else self.rules
        return Deadlines(rules, self.calendar, self.hours)

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
        elif change.machine == "received" and change.from_state != change.to_state:
            # Registered or returned: the rule that our clerks register it is kept.
            self._settled(uow, change, e.NOT_ACKNOWLEDGED, change.subject_id, "registered")

    def arrived(
        self, uow: UnitOfWork, received_id: str, agency_id: str, urgency: int, now: datetime
    ) -> None:
        """A document arrived: our clerks register it by the rule (Decree 30 Art. 21)."""
        due = self.deadlines(uow, agency_id).register_by(now, urgency)
        self._arm(uow, e.NOT_ACKNOWLEDGED, received_id, None, due, {"received_id": received_id})

    def _document(self, uow: UnitOfWork, change: Change) -> None:
        document_id = change.subject_id
        if change.to_state == doc.SIGNED and change.from_state != doc.SIGNED:
            due = self.deadlines(uow, change.agency_id).send_by(change.now, change.urgency)
            self._arm(uow, e.NOT_SENT_IN_TIME, document_id, document_id, due, {})
        if change.from_state == doc.SIGNED and change.to_state != doc.SIGNED:
            self._settled(uow, change, e.NOT_SENT_IN_TIME, document_id, "sent")
        if change.event in ("send", "resend"):
            deadlines = self.deadlines(uow, change.agency_id)
            appointed = uow.documents.load(document_id).appointed_at
            due = deadlines.deliver_by(
                change.now,
                change.urgency,
                datetime.fromisoformat(appointed) if appointed else None,
            )
            for row in uow.dispatches.for_document(document_id):
                if row.state == d.PENDING:
                    self._arm(
                        uow, e.NOT_DELIVERED, row.id, document_id, due, {"dispatch_id": row.id}
                    )

    def _dispatch(self, uow: UnitOfWork, change: Change) -> None:
        dispatch_id = change.subject_id
        dest = change.to_state
        row = uow.dispatches.get(dispatch_id)
        if row is not None and row.request_id:
            self._request(uow, change, row.request_id)
            return
        if dest in d.ARRIVED or dest in d.GIVEN_UP:
            self._settled(uow, change, e.NOT_DELIVERED, dispatch_id, "delivered")
        if dest in d.ARRIVED:
            self._settled(uow, change, e.DELIVERY_FAILED, dispatch_id, "delivered")
        if dest == d.DELIVERED and change.from_state != d.DELIVERED:
            due = self.deadlines(uow, change.agency_id).register_by(change.now, change.urgency)
            self._arm(
                uow,
                e.NOT_ACKNOWLEDGED,
                dispatch_id,
                change.document_id,
                due,
                {"dispatch_id": dispatch_id},
            )
        if dest in (d.ACKNOWLEDGED, d.REJECTED):
            self._settled(uow, change, e.NOT_ACKNOWLEDGED, dispatch_id, "acknowledged")
        if dest == d.FAILED:
            self.open_for_dispatch(uow, e.DELIVERY_FAILED, dispatch_id, change.now, change.now)
        if dest == d.REJECTED:
            row = uow.dispatches.get(dispatch_id)
            error = str(change.data.get("error") or (row.last_error if row else ""))
            kind = refusal_kind(error)
            self.open_for_dispatch(
                uow, kind, dispatch_id, change.now, change.now, detail={"reason": error}
            )

    def _request(self, uow: UnitOfWork, change: Change, request_id: str) -> None:
        """A recall's or update's dispatch: once it arrives the recipient answers (15/16)
        within ``recall_answer``; a refusal (16) escalates at once, as a failure does."""
        dispatch_id, dest = change.subject_id, change.to_state
        if dest == d.DELIVERED and change.from_state != d.DELIVERED:
            due = self.deadlines(uow, change.agency_id).after(
                change.now, "recall_answer", change.urgency
            )
            payload = {"dispatch_id": dispatch_id, "request_id": request_id}
            self._arm(uow, e.RECALL_UNANSWERED, dispatch_id, change.document_id, due, payload)
        if dest in (d.AGREED, d.DECLINED, d.FAILED, d.REJECTED):
            self._settled(uow, change, e.RECALL_UNANSWERED, dispatch_id, "answered")
        if dest == d.DECLINED:
            reason = str(change.data.get("error") or change.data.get("reason") or "")
            detail = {"reason": reason, "request_id": request_id}
            self.open_for_dispatch(
                uow, e.REFUSED_BY_RECIPIENT, dispatch_id, change.now, change.now, detail=detail
            )
        if dest == d.FAILED:
            self.open_for_dispatch(uow, e.DELIVERY_FAILED, dispatch_id, change.now, change.now)

    def _arm(
        self,
        uow: UnitOfWork,
        kind: str,
        subject_id: str,
        document_id: str | None,
        due: datetime,
        payload: Mapping[str, Any],
    ) -> None:
        # One rule is watched on a subject at a time (a dispatch: delivery, then its
        # registration), so the subject's id names its timer.
        uow.timers.cancel(RULE_DEADLINE, subject_id)
        uow.timers.add(
            [
                {
                    "id": new_id(),
                    "kind": RULE_DEADLINE,
                    "ref_id": subject_id,
                    "document_id": document_id,
                    "due_at": due,
                    "payload": {"escalation": kind, **payload},
                }
            ]
        )

    def _settled(
        self, uow: UnitOfWork, change: Change, kind: str, subject_id: str, why: str
    ) -> None:
        """The rule ``kind`` on ``subject_id`` is kept: no timer, and its escalation closes."""
        uow.timers.cancel(RULE_DEADLINE, subject_id)
        self.close(uow, e.cause_key(kind, subject_id), why, change.now)

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
    ) -> Escalation | None:
        """Open an escalation of ``kind`` on ``subject_id``; None when one is open already."""
        key = e.cause_key(kind, subject_id)
        if uow.escalations.active(key) is not None:
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
        uow.timers.add(
            [
                {
                    "id": new_id(),
                    "kind": ESCALATION_RISE,
                    "ref_id": escalation_id,
                    "document_id": document_id,
                    "due_at": rise_at,
                    "payload": {},
                }
            ]
        )
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
        event = {
            **told,
            "what_to_do": f"{told['what_to_do_vi'][:1].upper()}{told['what_to_do_vi'][1:]}.",
            "recipient_id": escalation.organ_id or None,
            "at": now.isoformat(),
        }
        self.notify(uow, agency_id=escalation.agency_id, kind=escalation.kind, event=event)

    # -- closing -------------------------------------------------------------------------------

    def close(self, uow: UnitOfWork, key: str, why: str, now: datetime) -> bool:
        """Close the open escalation of cause ``key`` because ``why``; False if none."""
        found = uow.escalations.active(key)
        if found is None:
            return False
        assert self.events is not None, "the watch closes escalations through the engine"
        self.events.fire_on_within(
            uow, "escalation", found.id, "close", actor=SYSTEM, data={"reason": why}
        )
        return True

    # -- trust: certificates and revocation lists running out ----------------------------------

    def check_trust(
        self, uow: UnitOfWork, now: datetime, *, crl_warn: timedelta, certificate_warn: timedelta
    ) -> dict[str, int]:
        """Open certificate_expiring / crl_expiring for every agency concerned, close those
        whose certificate was renewed or whose list was refreshed. Cost: the certificates
        and lists in use, never the documents. Returns how many opened and closed."""
        counts = {"opened": 0, "closed": 0}
        mine = [c for c in uow.signatures.certificates() if c.kind != "root" and c.agency_id]
        # The agencies this installation signs for: those whose organisational key is here.
        agencies = sorted({c.agency_id or "" for c in mine if c.kind == "agency" and c.key_pem})
        for crl in uow.signatures.latest_crl_rows():
            left = as_utc(crl.next_update) - now
            for agency_id in agencies:
                subject = f"{agency_id}:{crl.issuer_fingerprint}"
                if left < crl_warn:
                    detail = {
                        "issuer_fingerprint": crl.issuer_fingerprint,
                        "next_update": as_utc(crl.next_update).isoformat(),
                        "number": crl.number,
                    }
                    counts["opened"] += self._open_trust(
                        uow, e.CRL_EXPIRING, subject, agency_id, crl.next_update, now, detail
                    )
                else:
                    key = e.cause_key(e.CRL_EXPIRING, subject)
                    counts["closed"] += self.close(uow, key, "a fresh list is in force", now)
        certificates = [c for c in mine if c.agency_id in agencies]
        for cert in certificates:
            agency_id = cert.agency_id or ""
            subject = f"{agency_id}:{cert.fingerprint}"
            key = e.cause_key(e.CERTIFICATE_EXPIRING, subject)
            renewed = any(
                other.kind == cert.kind
                and other.agency_id == cert.agency_id
                and other.username == cert.username
                and other.revoked_at is None
                and as_utc(other.not_after) - now >= certificate_warn
                for other in certificates
            )
            expiring = as_utc(cert.not_after) - now < certificate_warn
            if expiring and cert.revoked_at is None and not renewed:
                detail = {
                    "fingerprint": cert.fingerprint,
                    "certificate": cert.kind,
                    "username": cert.username,
                    "common_name": cert.subject.common_name,
                    "not_after": as_utc(cert.not_after).isoformat(),
                }
                counts["opened"] += self._open_trust(
                    uow,
                    e.CERTIFICATE_EXPIRING,
                    subject,
                    agency_id,
                    cert.not_after,
                    now,
                    detail,
                )
            else:
                why = "renewed" if renewed else "no longer in use"
                counts["closed"] += self.close(uow, key, why, now)
        return counts

    def _open_trust(
        self,
        uow: UnitOfWork,
        kind: str,
        subject: str,
        agency_id: str,
        due: datetime,
        now: datetime,
        detail: Mapping[str, Any],
    ) -> int:
        opened = self.open(
            uow,
            kind=kind,
            subject_id=subject,
            agency_id=agency_id,
            urgency=1,  # a signing agency that cannot sign stops everything: high
            due_at=due,
            now=now,
            detail=detail,
        )
        return 1 if opened is not None else 0

    # -- timers --------------------------------------------------------------------------------

    def on_deadline(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        """A watched rule's deadline passed: open its escalation if the rule is still broken."""
        kind = str(timer.payload["escalation"])
        if "dispatch_id" in timer.payload:
            dispatch_id = str(timer.payload["dispatch_id"])
            row = uow.dispatches.get(dispatch_id)
            broken = row is not None and (
                (kind == e.NOT_DELIVERED and row.state in (d.PENDING, d.SENDING))
                or (kind in (e.NOT_ACKNOWLEDGED, e.RECALL_UNANSWERED) and row.state == d.DELIVERED)
            )
            if broken:
                self.open_for_dispatch(uow, kind, dispatch_id, timer.due_at, now)
        elif "received_id" in timer.payload:
            received = uow.received.get(str(timer.payload["received_id"]))
            if received is not None and received.state == r.RECEIVED:
                self.open(
                    uow,
                    kind=kind,
                    subject_id=received.id,
                    agency_id=received.agency_id,
                    urgency=received.urgency,
                    due_at=timer.due_at,
                    now=now,
                    received_id=received.id,
                    organ_id=received.sender_id,
                )
        elif timer.document_id is not None:
            head = uow.documents.head(timer.document_id)
            if head is not None and head.state == doc.SIGNED and kind == e.NOT_SENT_IN_TIME:
                self.open(
                    uow,
                    kind=kind,
                    subject_id=head.id,
                    agency_id=head.agency_id,
                    urgency=head.urgency,
                    due_at=timer.due_at,
                    now=now,
                    document_id=head.id,
                )

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
            "record_comment": self.record_comment,
            "snooze_until": self.snooze_until,
            "rise_level": self.rise_level,
            "take_action": self.take_action,
            "settle_escalation": self.settle,
        }

    def guards(self) -> dict[str, Callable[[TransitionContext], tuple[bool, str]]]:
        return {"has_owner": self.has_owner}

    def _row(self, ctx: TransitionContext) -> Escalation:
        found = ctx.uow.escalations.get(ctx.document.id)
        assert found is not None
        return found

    def has_owner(self, ctx: TransitionContext) -> tuple[bool, str]:
        owner = self._row(ctx).owner
        return bool(owner), "" if owner else "nobody owns it"

    def set_owner(self, ctx: TransitionContext) -> None:
        row = self._row(ctx)
        if row.owner != ctx.actor.name:
            ctx.uow.escalations.set(row.id, owner=ctx.actor.name)
            ctx.audit["owner"] = ctx.actor.name
            if row.owner:
                ctx.audit["previous_owner"] = row.owner

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
        ctx.uow.timers.add(
            [
                {
                    "id": new_id(),
                    "kind": ESCALATION_WAKE,
                    "ref_id": row.id,
                    "document_id": row.document_id,
                    "due_at": until,
                    "payload": {},
                }
            ]
        )
        ctx.audit["until"] = until.isoformat()

    def rise_level(self, ctx: TransitionContext) -> None:
        row = self._row(ctx)
        if row.level >= 2:
            return
        ctx.uow.escalations.set(row.id, level=2)
        ctx.audit["level"] = 2
        risen = ctx.uow.escalations.get(row.id)
        assert risen is not None
        self._notify(ctx.uow, risen, ctx.now)

    def take_action(self, ctx: TransitionContext) -> None:
        action = ctx.data.get("action")
        if action not in e.ACTIONS:
            raise InvalidInput(
                f"An escalation's action is one of {', '.join(e.ACTIONS)}.",
                field="action",
                allowed=list(e.ACTIONS),
            )
        row = self._row(ctx)
        ctx.audit["action"] = action
        note = ctx.data.get("note")
        if note is not None:
            if not isinstance(note, str) or len(note) > 4000:
                raise InvalidInput("A note is text of at most 4000 characters.", field="note")
            ctx.audit["note"] = note
        if action == "contact":
            return
        if row.document_id is None:
            raise InvalidInput(
                f"This escalation has no document of ours to {action}.", field="action"
            )
        assert self.events is not None
        data = {"reason": str(ctx.data.get("reason") or "")}
        result = self.events.fire_on_within(
            ctx.uow, "document", row.document_id, action, actor=ctx.actor, data=data
        )
        ctx.audit["document_version"] = getattr(result, "version", None)

    def settle(self, ctx: TransitionContext) -> None:
        row = self._row(ctx)
        values: dict[str, Any] = {"active_key": None, "closed_at": ctx.now}
        if ctx.event == "resolve":
            outcome = ctx.data.get("outcome")
            if outcome not in e.OUTCOMES:
                raise InvalidInput(
                    f"An escalation is resolved with one of {', '.join(e.OUTCOMES)}.",
                    field="outcome",
                    allowed=list(e.OUTCOMES),
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
    en, vi, todo_en, todo_vi = e.KINDS[escalation.kind]
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
        for recipient in uow.documents.recipients(escalation.document_id):
            if recipient.organ_id == escalation.organ_id and recipient.name:
                event["recipient_name"] = recipient.name
    elif escalation.received_id:
        got = uow.received.get(escalation.received_id)
        if got is not None:
            event.update(number=got.number, symbol=got.symbol, subject=got.subject)
    plain: dict[str, Any] = json.loads(json.dumps(event, default=str))
    return plain
