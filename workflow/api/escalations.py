"""Routes for escalations (the supervisors' board); the time rules are time_rules.py's.

Supervisors and the agency's leadership list escalations, claim, comment, snooze with a
reason, act from them (resend, recall, contact the recipient) and resolve them with an
outcome; every step is an entry of the escalation's own audit chain (``/trail``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from congvan.actions.escalations import notice
from congvan.states import ESCALATION, allowed_events
from congvan.states import escalation as e
from congvan.states.errors import InvalidInput, NotFound
from congvan.states.policy import ESCALATION_EVENT_ROLES, READ_ROLES
from congvan.storage.agencies import Principal
from congvan.storage.audit import AuditEvent
from congvan.storage.escalations import Escalation

from .auth import fires, requires
from .bodies import JsonRoute
from .deps import EngineDep, ReadUowDep, SettingsDep
from .documents import (
    IdempotencyKey,
    IfMatch,
    check_cursor,
    fire_answering,
    parse_if_match,
    subject_event,
)
from .outputs import AUTHENTICATED, Page, errors, sends, versioned_etag
from .paging import MAX_CURSOR, check_limit
from .schemas import Moment, TextModel
from .views import check_document_id
from .vocabulary import (
    EscalationAction,
    EscalationEvent,
    EscalationKind,
    EscalationOutcome,
    EscalationResolution,
    EscalationSeverity,
    EscalationState,
)

log = logging.getLogger("congvan.api")

router = APIRouter(
    prefix="/v1/escalations",
    tags=["escalations"],
    responses=errors(*AUTHENTICATED),
    route_class=JsonRoute,
)


class EscalationDetail(BaseModel):
    """What the escalation's cause recorded, by kind: the refusal's reason; the list or the
    certificate running out."""

    reason: str | None = Field(default=None, description="The recipient's refusal, as given")
    issuer_fingerprint: str | None = None
    next_update: datetime | None = None
    number: int | None = Field(default=None, description="The revocation list's number")
    fingerprint: str | None = Field(default=None, description="The certificate's SHA-256")
    certificate: str | None = Field(default=None, description="agency or signer")
    username: str | None = None
    common_name: str | None = None
    not_after: datetime | None = None


class EscalationOut(BaseModel):
    """A warning someone owns: what broke, for which document and recipient, who has it."""

    id: str
    kind: EscalationKind
    what: str = Field(description="What broke, in English")
    what_vi: str = Field(description="What broke, in Vietnamese")
    what_to_do: str
    what_to_do_vi: str
    state: EscalationState
    version: int
    allowed_events: list[EscalationEvent]
    severity: EscalationSeverity
    level: int = Field(description="1: supervisors; 2: risen to the agency's leadership")
    urgency: int
    document_id: str | None
    dispatch_id: str | None
    received_id: str | None
    recipient: str | None = Field(description="The other agency concerned, if any")
    owner: str | None
    due_at: datetime | None = Field(description="The broken rule's deadline")
    rise_at: datetime | None = Field(description="When it rises to the second level")
    snoozed_until: datetime | None
    outcome: EscalationOutcome | None = Field(description="null while it is active")
    detail: EscalationDetail
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class EscalationPage(Page):
    items: list[EscalationOut]


class EscalationEventIn(TextModel):
    model_config = ConfigDict(extra="forbid")
    multi_line = frozenset({"reason", "text", "note"})

    reason: str | None = Field(default=None, max_length=2000)
    text: str | None = Field(default=None, max_length=4000, description="comment: its text")
    until: Moment | None = Field(default=None, description="snooze: until when (with offset)")
    action: EscalationAction | None = Field(default=None, description="act: what to do")
    note: str | None = Field(default=None, max_length=4000, description="act: how (contact)")
    outcome: EscalationResolution | None = Field(default=None, description="resolve: the outcome")
    take_over: bool | None = Field(
        default=None,
        description=(
            "claim, act, snooze, resolve: take it from the supervisor who holds it "
            "(so does an If-Match)"
        ),
    )


class EscalationEventResult(BaseModel):
    id: str
    event: EscalationEvent
    from_state: EscalationState
    to_state: EscalationState
    version: int
    jobs: list[str]


class StepPayload(BaseModel):
    """What a step recorded: its reason, and what the step itself is about."""

    reason: str | None = None
    kind: EscalationKind | None = Field(default=None, description="open: what broke")
    cause: str | None = Field(default=None, description="open: the cause's key")
    severity: EscalationSeverity | None = None
    due_at: datetime | None = None
    rise_at: datetime | None = None
    detail: EscalationDetail | None = None
    owner: str | None = Field(default=None, description="claim, act: who owns it now")
    previous_owner: str | None = None
    comment: str | None = None
    until: datetime | None = Field(default=None, description="snooze: until when")
    level: int | None = Field(default=None, description="rise: the level it rose to")
    action: EscalationAction | None = None
    note: str | None = None
    document_version: int | None = Field(
        default=None, description="act: the document's version after the action"
    )
    outcome: EscalationOutcome | None = None


class TrailEntry(BaseModel):
    version: int
    actor: str
    event: str
    from_state: str
    to_state: str
    at: datetime
    payload: StepPayload


class EscalationDetailOut(EscalationOut):
    trail: list[TrailEntry] = Field(description="Every step, oldest first (its audit chain)")


def escalation_view(row: Escalation) -> dict[str, Any]:
    en, vi, todo_en, todo_vi = e.texts(row.kind, row.received_id is not None)
    return {
        "id": row.id,
        "kind": row.kind,
        "what": en,
        "what_vi": vi,
        "what_to_do": todo_en,
        "what_to_do_vi": todo_vi,
        "state": row.state,
        "version": row.version,
        "allowed_events": allowed_events(ESCALATION, row.state),
        "severity": row.severity,
        "level": row.level,
        "urgency": row.urgency,
        "document_id": row.document_id,
        "dispatch_id": row.dispatch_id,
        "received_id": row.received_id,
        "recipient": row.organ_id or None,
        "owner": row.owner or None,
        "due_at": row.due_at,
        "rise_at": row.rise_at,
        "snoozed_until": row.snoozed_until,
        "outcome": row.outcome or None,
        "detail": row.detail,
        "opened_at": row.opened_at,
        "updated_at": row.updated_at,
        "closed_at": row.closed_at,
    }


def _check_values(name: str, given: list[str] | None, allowed: tuple[str, ...]) -> list[str]:
    unknown = [v for v in given or [] if v not in allowed]
    if unknown:
        raise InvalidInput(
            f"Unknown {name}(s): {', '.join(unknown)[:200]}.", field=name, allowed=list(allowed)
        )
    return list(given or [])


@router.get(
    "",
    summary="The agency's escalations, newest first (open, claimed and snoozed by default)",
    response_model=EscalationPage,
)
def list_escalations(
    uow: ReadUowDep,
    settings: SettingsDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading escalations")],
    state: Annotated[
        list[str] | None, Query(description="Filter by state (repeatable); default: active")
    ] = None,
    kind: Annotated[list[str] | None, Query(description="Filter by kind (repeatable)")] = None,
    document: Annotated[str | None, Query(max_length=36)] = None,
    owner: Annotated[str | None, Query(max_length=200, description="Owned by (user name)")] = None,
    level: Annotated[int | None, Query(ge=1, le=2)] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR)] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> dict[str, Any]:
    check_limit(limit, settings.max_page_size)
    if cursor is not None:
        check_cursor(cursor, "escalations")
    states = _check_values("state", state, ESCALATION.states) or list(e.ACTIVE)
    kinds = _check_values("kind", kind, tuple(e.KINDS))
    if document is not None:
        check_document_id(document)
    with uow:
        page = uow.escalations.page(
            principal.agency_id,
            states=states,
            kinds=kinds,
            document_id=document,
            owner=owner,
            level=level,
            cursor=cursor,
            limit=limit,
        )
    return {"items": [escalation_view(r) for r in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/{escalation_id}",
    summary="An escalation, with every step taken on it",
    response_model=EscalationDetailOut,
    responses={**errors(404), **sends(200, "ETag")},
)
def get_escalation(
    escalation_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading escalations")],
    response: Response,
) -> dict[str, Any]:
    check_document_id(escalation_id, "escalation", "escalation_id")
    with uow:
        row = uow.escalations.get(escalation_id)
        # Another agency's escalation answers exactly like a missing one.
        if row is None or row.agency_id != principal.agency_id:
            raise NotFound("No such escalation.", escalation_id=escalation_id)
        trail = uow.audit.history(escalation_id)
    view = escalation_detail(row, trail)
    response.headers["ETag"] = versioned_etag(row.version, view)
    return view


def escalation_detail(row: Escalation, trail: Sequence[AuditEvent]) -> dict[str, Any]:
    """An escalation with every step taken on it (``trail``): the API's and the CLI's."""
    return {
        **escalation_view(row),
        "trail": [
            {
                "version": t.version,
                "actor": t.actor,
                "event": t.event,
                "from_state": t.from_state,
                "to_state": t.to_state,
                "at": t.at,
                "payload": t.payload,
            }
            for t in trail
        ],
    }


@router.post(
    "/{escalation_id}/events/{event}",
    summary="Claim, comment, snooze (until, reason), act (action, reason) or resolve "
    "(outcome, reason)",
    response_model=EscalationEventResult,
    responses={**errors(400, 403, 404, 409), **sends(200, "ETag", "Idempotent-Replayed")},
)
def fire_escalation_event(
    escalation_id: str,
    event: Annotated[str, Path(json_schema_extra={"enum": list(ESCALATION.events)})],
    engine: EngineDep,
    principal: Annotated[Principal, fires(ESCALATION, ESCALATION_EVENT_ROLES)],
    response: Response,
    body: EscalationEventIn | None = None,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    check_document_id(escalation_id, "escalation", "escalation_id")
    expected = parse_if_match(if_match)
    data = body.model_dump(exclude_none=True, mode="json") if body is not None else {}
    if event in e.HOLDER_EVENTS and expected is not None:
        # Taken knowing the version it takes, owner and all: a take-over if it is held.
        data.setdefault("take_over", True)
    result = fire_answering(
        engine,
        "escalation",
        escalation_id,
        event,
        principal,
        response,
        expected,
        data,
        idempotency_key,
    )
    return subject_event(result)


class NoticeOut(BaseModel):
    """What a notification (e-mail, webhook) of an escalation says."""

    escalation_id: str
    kind: EscalationKind
    level: int
    severity: EscalationSeverity
    state: EscalationState
    what: str
    what_vi: str
    what_to_do: str
    what_to_do_vi: str
    due_at: datetime | None
    opened_at: datetime
    document_id: str | None
    received_id: str | None
    recipient: str | None
    recipient_name: str | None = None
    number: int | None = None
    symbol: str | None = None
    number_symbol: str | None = Field(
        default=None, description="Số và ký hiệu as written, e.g. 05/UBND-TĐKT, 05/2024/QĐ-UBND"
    )
    subject: str | None = None
    link: str


@router.get(
    "/{escalation_id}/notice",
    summary="What a notification of this escalation says, as it stands now",
    response_model=NoticeOut,
    responses=errors(404),
)
def escalation_notice(
    escalation_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading escalations")],
) -> dict[str, Any]:
    check_document_id(escalation_id, "escalation", "escalation_id")
    with uow:
        row = uow.escalations.get(escalation_id)
        if row is None or row.agency_id != principal.agency_id:
            raise NotFound("No such escalation.", escalation_id=escalation_id)
        return notice(uow, row)
