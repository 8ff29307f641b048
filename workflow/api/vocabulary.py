"""The enums the OpenAPI document names, each derived from states/ (never a list kept here).

To mypy each is ``str`` (the values are strings and a route passes plain ``str`` rows); at
run time it is a ``StrEnum`` built from the machine or vocabulary it names, so pydantic
checks every value and publishes it as a named enum a client can generate code from.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, TypeAlias

from congvan.states import DISPATCH, DOCUMENT, ESCALATION, RECEIVED_DOCUMENT, vocabulary
from congvan.states import escalation as _escalation
from congvan.states.received import STATUS_CODE


def enum(name: str, values: Iterable[str], doc: str) -> type[StrEnum]:
    """A ``StrEnum`` called ``name`` whose members are ``values`` (each its own name)."""
    made = StrEnum(name, [(v, v) for v in values])  # type: ignore[misc]
    made.__doc__ = doc
    return made


if TYPE_CHECKING:
    DocumentState: TypeAlias = str
    DispatchState: TypeAlias = str
    DocumentEvent: TypeAlias = str
    ReceivedState: TypeAlias = str
    ReceivedEvent: TypeAlias = str
    StatusCode: TypeAlias = str
    JobStatus: TypeAlias = str
    CheckStatus: TypeAlias = str
    CheckTally: TypeAlias = str
    Severity: TypeAlias = str
    TimestampStatus: TypeAlias = str
    TimerKind: TypeAlias = str
    SigningMode: TypeAlias = str
    TimeSource: TypeAlias = str
    EscalationState: TypeAlias = str
    EscalationEvent: TypeAlias = str
    EscalationKind: TypeAlias = str
    EscalationSeverity: TypeAlias = str
    EscalationOutcome: TypeAlias = str
    EscalationResolution: TypeAlias = str
    EscalationAction: TypeAlias = str
else:
    DocumentState = enum("DocumentState", DOCUMENT.states, "A document's state.")
    DispatchState = enum("DispatchState", DISPATCH.states, "A dispatch's (one recipient's) state.")
    DocumentEvent = enum("DocumentEvent", DOCUMENT.events, "An event of the document machine.")
    ReceivedState = enum("ReceivedState", RECEIVED_DOCUMENT.states, "A received document's state.")
    ReceivedEvent = enum(
        "ReceivedEvent", RECEIVED_DOCUMENT.events, "An event of the received-document machine."
    )
    StatusCode = enum(
        "StatusCode",
        sorted(set(STATUS_CODE.values())),
        "A QCVN 102 status code: 01 arrived, 02 refused, 03 registered, 04 assigned, "
        "05 processing, 06 completed, 15 recalled (the recall agreed to).",
    )
    JobStatus = enum("JobStatus", vocabulary.JOB_STATUSES, "An outbox job's status.")
    CheckStatus = enum("CheckStatus", vocabulary.CHECK_STATUSES, "A review check's outcome.")
    CheckTally = enum(
        "CheckTally",
        [vocabulary.CHECK_CLEARED, vocabulary.CHECK_FAILED, vocabulary.CHECK_ERROR],
        "How the review queue counts results: cleared, or failed / error and not cleared.",
    )
    Severity = enum("Severity", vocabulary.SEVERITIES, "How much a failed check weighs.")
    TimestampStatus = enum(
        "TimestampStatus", vocabulary.TIMESTAMP_STATUSES, "Where a timestamp token stands."
    )
    TimerKind = enum("TimerKind", vocabulary.TIMER_KINDS, "What a database timer waits for.")
    SigningMode = enum("SigningMode", vocabulary.SIGNING_MODES, "How the signature was made.")
    TimeSource = enum("TimeSource", vocabulary.TIME_SOURCES, "Whose word the signing time is.")
    EscalationState = enum("EscalationState", ESCALATION.states, "An escalation's state.")
    EscalationEvent = enum(
        "EscalationEvent", ESCALATION.events, "An event of the escalation machine."
    )
    EscalationKind = enum("EscalationKind", _escalation.KINDS, "What an escalation warns of.")
    EscalationSeverity = enum(
        "EscalationSeverity", _escalation.SEVERITIES, "How loud an escalation is."
    )
    EscalationOutcome = enum(
        "EscalationOutcome",
        (*_escalation.OUTCOMES, "cause_gone"),
        "How an escalation ended: a person's outcome, or cause_gone when it closed itself.",
    )
    EscalationResolution = enum(
        "EscalationResolution",
        _escalation.OUTCOMES,
        "The outcome a person resolves an escalation with (cause_gone is the system's).",
    )
    EscalationAction = enum(
        "EscalationAction", _escalation.ACTIONS, "What a supervisor does from an escalation."
    )
