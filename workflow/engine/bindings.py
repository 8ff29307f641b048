"""How each machine of states/ is bound to its rows: a new machine is a spec plus a binding.

A binding says where a machine's subject lives and who may move it: it loads the subject
and locks the document whose audit chain and version the transition advances, checks the
caller, adds what guards and effects read, names the audit entry and writes the subject's
new state. The engine does the rest the same way for every machine (see stepping.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from congvan.actions.context import Actor
from congvan.states import DISPATCH, DOCUMENT
from congvan.states.dispatch import ARRIVED, AUDIT_PREFIX, DOCUMENT_DRIVEN
from congvan.states.errors import (
    FieldTooLong,
    Forbidden,
    InvalidInput,
    NotFound,
    TransitionNotAllowed,
)
from congvan.states.escalation import ESCALATION
from congvan.states.machine import allowed_events
from congvan.states.policy import (
    ESCALATION_EVENT_INPUTS,
    ESCALATION_EVENT_ROLES,
    ESCALATION_REASON_REQUIRED,
    EVENT_INPUTS,
    EVENT_ROLES,
    MAX_REASON,
    REASON_REQUIRED,
    RECEIVED_EVENT_INPUTS,
    RECEIVED_EVENT_ROLES,
    RECEIVED_REASON_REQUIRED,
    is_organ_id,
)
from congvan.states.received import RECEIVED_DOCUMENT
from congvan.states.spec import MachineSpec
from congvan.states.text import MULTI_LINE_FIELDS, has_visible_text, nfc, unstorable
from congvan.storage.chains import DocumentHead
from congvan.storage.documents import DocumentRepository
from congvan.storage.escalations import EscalationRepository
from congvan.storage.received import ReceivedRepository
from congvan.storage.unit_of_work import UnitOfWork

from .stepping import Chain, Pending


@dataclass(frozen=True)
class Subject:
    """What an event moves (``state``) and the document whose chain records it (``head``)."""

    id: str
    state: str
    head: DocumentHead
    row: Any = None


class Binding(Chain, Protocol):
    """A machine bound to its rows; see the module docstring."""

    spec: MachineSpec
    # True when the subject holds its own chain: its state is written with the chain head.
    holds_chain: bool
    # True when the chain head is a sent document that follows its dispatches' states.
    follows_dispatches: bool

    def normalize(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The event's data as the machine takes it (checked before any transaction)."""
        ...

    def load(self, uow: UnitOfWork, subject_id: str, actor: Actor, *, lock: bool) -> Subject:
        """The subject, its document locked when ``lock``; NotFound when absent or not yours."""
        ...

    def authorize(
        self, actor: Actor, event: str, data: Mapping[str, Any], subject: Subject | None
    ) -> None:
        """Refuse a caller who may not fire ``event`` (with ``subject`` once it is loaded)."""
        ...

    def context(self, subject: Subject, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """What guards and effects read as the transition's data."""
        ...

    def audit(self, subject: Subject, event: str) -> tuple[str, dict[str, Any]]:
        """The audit entry's event name and what it records about the subject.

        A binding that keeps its entries in another's chain (``holds_chain`` False) names
        them ``machine.event``: the audit check reads the chain's own state from the
        entries without a dot."""
        ...

    def settle(
        self,
        uow: UnitOfWork,
        subject: Subject,
        pending: Pending,
        event: str,
        dest: str,
        data: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """Write the subject's new state (for the document: into what persist writes)."""
        ...


def load_document(
    uow: UnitOfWork, document_id: str, actor: Actor, *, lock: bool = True
) -> DocumentHead:
    """A document's head, locked for the transaction when ``lock``.

    Locking the row (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers) makes
    a racing transition wait here and then see the version the winner wrote, instead of
    colliding later on the audit entry's unique (document, version).
    """
    head = uow.documents.head(document_id, for_update=lock)
    # Another agency's document answers exactly like a missing one.
    if head is None or (not actor.is_system and head.agency_id != actor.agency_id):
        raise NotFound("No such document.", document_id=document_id)
    return head


def checked_recipients(recipients: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Recipients in NFC, each with a well-formed agency identifier."""
    checked = []
    for recipient in recipients:
        row = cast(dict[str, Any], nfc(dict(recipient)))
        organ_id = row.get("organ_id")
        if not isinstance(organ_id, str) or not is_organ_id(organ_id):
            raise InvalidInput(
                "A recipient's agency identifier is not well formed (e.g. 000.00.00.H57).",
                field="recipients",
                organ_id=organ_id,
            )
        checked.append(row)
    return checked


def check_reason_length(reason: object) -> None:
    """A reason of at most ``MAX_REASON`` characters, however it came (API, command line):
    it travels in packages and status messages, whose formats take no more."""
    if isinstance(reason, str) and len(reason) > MAX_REASON:
        raise FieldTooLong(
            f"reason is {len(reason)} characters long; at most {MAX_REASON}.",
            field="reason",
            max_length=MAX_REASON,
            length=len(reason),
        )


def refuse_role(
    spec: MachineSpec, roles: Mapping[str, frozenset[str]], actor: Actor, event: str
) -> None:
    """Refuse a person without a role for ``event`` of ``spec`` (the system fires any).

    Judged before anything the person sent (a reason, the event's data, a request's body):
    a caller without the role is told so, not what is wrong with what they sent.
    """
    if actor.is_system:
        return
    if event not in spec.events:
        # Refused as a transition, with the state and the events allowed in it: told only
        # to someone who fires events here (an operator does not read documents).
        firing = frozenset().union(*roles.values())
        if not actor.roles & firing:
            raise Forbidden(
                f"Events here need the role {' or '.join(sorted(firing))}.",
                event=event,
                needs=sorted(firing),
            )
        return
    allowed = roles.get(event)
    if allowed is None:
        raise Forbidden(f"Event {event!r} is fired by the system only.", event=event, needs=[])
    if not actor.roles & allowed:
        raise Forbidden(
            f"Event {event!r} needs the role {' or '.join(sorted(allowed))}.",
            event=event,
            needs=sorted(allowed),
        )


def authorize_person(
    spec: MachineSpec,
    roles: Mapping[str, frozenset[str]],
    inputs: Mapping[str, frozenset[str]],
    reason_required: frozenset[str],
    actor: Actor,
    event: str,
    data: Mapping[str, Any],
) -> None:
    """Refuse a person without a role for ``event``, then data the event does not take."""
    refuse_role(spec, roles, actor, event)
    if event in reason_required and not has_visible_text(str(data.get("reason") or "")):
        # Blank, or only invisible characters (a zero-width space is not a reason).
        raise InvalidInput(f"Event {event!r} needs a reason.", event=event, field="reason")
    check_reason_length(data.get("reason"))
    if actor.is_system:
        return
    _check_text(data)
    if event not in spec.events:
        return  # the engine refuses it as a transition, with the events allowed
    takes = inputs.get(event, frozenset()) | {"reason"}
    unused = sorted(set(data) - takes)
    if unused:
        raise InvalidInput(
            f"Event {event!r} does not use {', '.join(unused)}; it takes "
            f"{', '.join(sorted(takes))}.",
            event=event,
            field=unused[0],
            takes=sorted(takes),
        )


# What a person writes that may span lines, besides a document's own multi-line fields and
# a reason: an escalation's comment and the note of how it was acted on.
_MULTI_LINE_DATA = MULTI_LINE_FIELDS | {"text", "note"}


def check_text(name: str, value: str, *, multi_line: bool) -> None:
    """``value`` is text both databases keep and every reader shows, or InvalidInput."""
    problem = unstorable(value, multi_line=multi_line)
    if problem is not None:
        raise InvalidInput(f"{name} {problem}.", field=name)


def _check_text(data: Mapping[str, Any], within: str = "") -> None:
    """Every text a person gives an event, however it came (the API, the command line),
    is text both databases keep and every reader shows (``states.text.unstorable``)."""
    for key, value in data.items():
        name = f"{within}.{key}" if within else str(key)
        if isinstance(value, str):
            check_text(name, value, multi_line=key in _MULTI_LINE_DATA)
        elif isinstance(value, Mapping):
            _check_text(value, name)


class SelfHeld:
    """A machine whose subject holds its own chain: its state is written with the head."""

    holds_chain = True

    def context(self, subject: Subject, data: Mapping[str, Any]) -> Mapping[str, Any]:
        return data

    def audit(self, subject: Subject, event: str) -> tuple[str, dict[str, Any]]:
        return event, {}

    def settle(
        self,
        uow: UnitOfWork,
        subject: Subject,
        pending: Pending,
        event: str,
        dest: str,
        data: Mapping[str, Any],
        now: datetime,
    ) -> None:
        pending.state = dest


class RowChain:
    """A chain whose head is a row with state, version and audit head (``heads(uow)``)."""

    def heads(
        self, uow: UnitOfWork
    ) -> DocumentRepository | ReceivedRepository | EscalationRepository:
        raise NotImplementedError

    def advance(self, uow: UnitOfWork, pending: Pending, now: datetime) -> bool:
        return self.heads(uow).advance(
            pending.head.id,
            expected_version=pending.head.version,
            state=pending.state,
            new_version=pending.version,
            audit_head=pending.audit_head,
            at=now,
        )

    def current_version(self, uow: UnitOfWork, chain_id: str) -> int | None:
        return self.heads(uow).current_version(chain_id)


class DocumentChain(RowChain):
    """The chain of an outgoing document: its row holds state, version and audit head."""

    follows_dispatches = True

    def heads(self, uow: UnitOfWork) -> DocumentRepository:
        return uow.documents


class DocumentBinding(SelfHeld, DocumentChain):
    """The document machine: its subject is the document; people fire it, by role."""

    spec = DOCUMENT

    def normalize(self, data: Mapping[str, Any]) -> dict[str, Any]:
        checked = cast(dict[str, Any], nfc(dict(data)))
        if checked.get("recipients") is not None:
            checked["recipients"] = checked_recipients(checked["recipients"])
        return checked

    def load(self, uow: UnitOfWork, subject_id: str, actor: Actor, *, lock: bool) -> Subject:
        head = load_document(uow, subject_id, actor, lock=lock)
        return Subject(id=head.id, state=head.state, head=head, row=head)

    def authorize(
        self, actor: Actor, event: str, data: Mapping[str, Any], subject: Subject | None
    ) -> None:
        authorize_person(DOCUMENT, EVENT_ROLES, EVENT_INPUTS, REASON_REQUIRED, actor, event, data)


class DispatchBinding(DocumentChain):
    """A dispatch (one recipient of a sent document): fired by the system only.

    Its entries go into its document's chain; the document follows it in the same
    transaction (delivered, acknowledged, failed are derived from the dispatches).
    """

    spec = DISPATCH
    holds_chain = False

    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts

    def normalize(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(data)

    def load(self, uow: UnitOfWork, subject_id: str, actor: Actor, *, lock: bool) -> Subject:
        dispatch = uow.dispatches.get(subject_id)
        if dispatch is None:
            raise NotFound("No such dispatch.", dispatch_id=subject_id)
        head = load_document(uow, dispatch.document_id, actor, lock=lock)
        dispatch = uow.dispatches.get(subject_id) or dispatch  # as of the lock just taken
        return Subject(id=subject_id, state=dispatch.state, head=head, row=dispatch)

    def authorize(
        self, actor: Actor, event: str, data: Mapping[str, Any], subject: Subject | None
    ) -> None:
        if not actor.is_system:
            raise Forbidden("Dispatch events are fired by the system.", needs=[])
        if event in DOCUMENT_DRIVEN and subject is not None:
            raise TransitionNotAllowed(
                event, subject.state, allowed_events(DISPATCH, subject.state)
            )

    def context(self, subject: Subject, data: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**data, "dispatch": subject.row, "max_attempts": self.max_attempts}

    def audit(self, subject: Subject, event: str) -> tuple[str, dict[str, Any]]:
        return f"{AUDIT_PREFIX}{event}", {
            "dispatch_id": subject.id,
            "organ_id": subject.row.organ_id,
        }

    def settle(
        self,
        uow: UnitOfWork,
        subject: Subject,
        pending: Pending,
        event: str,
        dest: str,
        data: Mapping[str, Any],
        now: datetime,
    ) -> None:
        error = data.get("error")
        if error is None and dest in ARRIVED and subject.row.last_error:
            error = ""  # it arrived: an earlier attempt's error is history (its attempt log)
        uow.dispatches.set_state(
            subject.id,
            state=dest,
            at=now,
            attempts=subject.row.attempts + (1 if event == "start" else 0),
            last_error=error,
        )


class ReceivedBinding(SelfHeld, RowChain):
    """A document another agency sent us: its own row, state and chain; our people move it."""

    spec = RECEIVED_DOCUMENT
    follows_dispatches = False

    def normalize(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], nfc(dict(data)))

    def load(self, uow: UnitOfWork, subject_id: str, actor: Actor, *, lock: bool) -> Subject:
        head = uow.received.head(subject_id, for_update=lock)
        # Another agency's received document answers exactly like a missing one.
        if head is None or (not actor.is_system and head.agency_id != actor.agency_id):
            raise NotFound("No such received document.", received_id=subject_id)
        return Subject(id=head.id, state=head.state, head=head, row=head)

    def authorize(
        self, actor: Actor, event: str, data: Mapping[str, Any], subject: Subject | None
    ) -> None:
        authorize_person(
            RECEIVED_DOCUMENT,
            RECEIVED_EVENT_ROLES,
            RECEIVED_EVENT_INPUTS,
            RECEIVED_REASON_REQUIRED,
            actor,
            event,
            data,
        )

    def heads(self, uow: UnitOfWork) -> ReceivedRepository:
        return uow.received


class EscalationBinding(SelfHeld, RowChain):
    """An escalation: its own row, state and chain; supervisors and leadership move it,
    the system opens, raises, wakes and closes it."""

    spec = ESCALATION
    follows_dispatches = False

    def normalize(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], nfc(dict(data)))

    def load(self, uow: UnitOfWork, subject_id: str, actor: Actor, *, lock: bool) -> Subject:
        found = uow.escalations.get(subject_id)
        # Another agency's escalation answers exactly like a missing one.
        if found is None or (not actor.is_system and found.agency_id != actor.agency_id):
            raise NotFound("No such escalation.", escalation_id=subject_id)
        if lock:
            # What it is about is locked first, as its transitions lock it (they close it).
            if found.document_id is not None:
                uow.documents.head(found.document_id, for_update=True)
            elif found.received_id is not None:
                uow.received.head(found.received_id, for_update=True)
        head = uow.escalations.head(subject_id, for_update=lock)
        assert head is not None
        row = uow.escalations.get(subject_id) or found
        return Subject(id=head.id, state=head.state, head=head, row=row)

    def authorize(
        self, actor: Actor, event: str, data: Mapping[str, Any], subject: Subject | None
    ) -> None:
        authorize_person(
            ESCALATION,
            ESCALATION_EVENT_ROLES,
            ESCALATION_EVENT_INPUTS,
            ESCALATION_REASON_REQUIRED,
            actor,
            event,
            data,
        )

    def heads(self, uow: UnitOfWork) -> EscalationRepository:
        return uow.escalations
