"""Routes for escalations (the supervisors' board) and the agency's own time rules.

Supervisors and the agency's leadership list escalations, claim, comment, snooze with a
reason, act from them (resend, recall, contact the recipient) and resolve them with an
outcome; every step is an entry of the escalation's own audit chain (``/trail``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from congvan.actions.escalations import notice
from congvan.states import ESCALATION, allowed_events
from congvan.states import escalation as e
from congvan.states.deadlines import RULES
from congvan.states.errors import InvalidInput, NotFound, PreconditionFailed, PreconditionRequired
from congvan.states.policy import ESCALATION_HANDLERS, READ_ROLES
from congvan.storage.audit import AuditEvent
from congvan.storage.escalations import Escalation

from .auth import PrincipalDep, require
from .bodies import JsonRoute
from .deps import ClockDep, EngineDep, ReadUowDep, SettingsDep, WatchDep, WriteUowDep
from .documents import (
    IdempotencyKey,
    IfMatch,
    check_cursor,
    fire_answering,
    parse_if_match,
    subject_event,
)
from .methods import entity_tags, failed_precondition
from .outputs import AUTHENTICATED, Page, errors, sends, versioned_etag
from .paging import MAX_CURSOR, check_limit
from .schemas import TextModel
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
rules_router = APIRouter(
    prefix="/v1/time-rules",
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
    until: datetime | None = Field(default=None, description="snooze: until when (with offset)")
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
    principal: PrincipalDep,
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
    require(principal, READ_ROLES, "Reading escalations")
    check_limit(limit, settings.max_page_size)
    if cursor is not None:
        check_cursor(cursor)
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
    escalation_id: str, uow: ReadUowDep, principal: PrincipalDep, response: Response
) -> dict[str, Any]:
    require(principal, READ_ROLES, "Reading escalations")
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
    principal: PrincipalDep,
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
    escalation_id: str, uow: ReadUowDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, READ_ROLES, "Reading escalations")
    check_document_id(escalation_id, "escalation", "escalation_id")
    with uow:
        row = uow.escalations.get(escalation_id)
        if row is None or row.agency_id != principal.agency_id:
            raise NotFound("No such escalation.", escalation_id=escalation_id)
        return notice(uow, row)


# -- time rules ------------------------------------------------------------------------------


class TimeRulesOut(BaseModel):
    """The rules in force for the agency: the province's, tightened by the agency's own."""

    rules: dict[str, str] = Field(description="What each rule means")
    send_cutoff: str
    working_hours: str
    province: dict[str, list[int]] = Field(description="Working minutes per urgency 0–4")
    agency: dict[str, list[int]] = Field(description="What the agency tightened")
    in_force: dict[str, list[int]]


class TimeRulesIn(TextModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: JSON's true, "100" and 100.0 are not working minutes.
    rules: dict[str, list[StrictInt] | dict[str, StrictInt]] = Field(
        description="Rule → five values (urgency 0–4) or {level: value}; {} clears them"
    )


def _rules_view(
    watch: WatchDep, settings: SettingsDep, overrides: dict[str, Any]
) -> dict[str, Any]:
    in_force = watch.rules.in_force(overrides)
    return {
        "rules": dict(RULES),
        "send_cutoff": in_force.send_cutoff.strftime("%H:%M"),
        "working_hours": str(watch.hours),
        "province": {k: list(v) for k, v in watch.rules.minutes.items()},
        "agency": {k: list(v) for k, v in in_force.minutes.items() if k in overrides},
        "in_force": {k: list(v) for k, v in in_force.minutes.items()},
    }


@rules_router.get("", summary="The time rules in force for the caller's agency",
                  response_model=TimeRulesOut, responses=sends(200, "ETag"))  # fmt: skip
def get_time_rules(
    uow: ReadUowDep,
    principal: PrincipalDep,
    watch: WatchDep,
    settings: SettingsDep,
    response: Response,
) -> dict[str, Any]:
    require(principal, READ_ROLES, "Reading time rules")
    with uow:
        overrides = uow.escalations.time_rules(principal.agency_id)
    response.headers["ETag"] = _rules_tag(overrides)
    return _rules_view(watch, settings, overrides)


def _rules_tag(overrides: dict[str, Any]) -> str:
    """The entity tag of an agency's rules: a digest of what it set."""
    body = json.dumps(overrides, sort_keys=True, separators=(",", ":")).encode()
    return f'"{hashlib.sha256(body).hexdigest()[:16]}"'


def _check_rules_tag(if_match: str | None, current: str) -> None:
    """``If-Match`` against the rules' tag (RFC 9110 13.1.1): ``*`` holds, absent is refused.

    A ``PUT`` sets the whole set: without the tag of what it read, a supervisor would
    erase what another set meanwhile (a lost update) without a word.
    """
    if if_match is None:
        raise PreconditionRequired(
            "Setting time rules replaces the agency's whole set: send the ETag the GET "
            "gave as If-Match (or * to replace whatever is set now).",
            etag=current,
        )
    value = if_match.encode("latin-1", "replace")
    if value.strip() != b"*" and entity_tags(value) is None:
        raise InvalidInput(
            "If-Match takes the ETag as it was sent, quotes included (or *).", field="If-Match"
        )
    if failed_precondition(value, current.encode("latin-1")):
        raise PreconditionFailed(
            "The agency's time rules changed since they were read: read them again (their "
            "ETag) and retry.",
            etag=current,
        )


@rules_router.put(
    "",
    summary="Tighten the province's time rules for the caller's agency (never loosen them)",
    response_model=TimeRulesOut,
    responses={**errors(400, 403, 412, 428), **sends(200, "ETag")},
)
def put_time_rules(
    body: TimeRulesIn,
    uow: WriteUowDep,
    principal: PrincipalDep,
    watch: WatchDep,
    settings: SettingsDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    require(principal, ESCALATION_HANDLERS, "Setting time rules")
    tightened = watch.check_rules(body.rules)
    overrides = {k: list(tightened.minutes[k]) for k in body.rules}
    with uow:
        current = uow.escalations.time_rules(principal.agency_id, holding=True)
        _check_rules_tag(if_match, _rules_tag(current))
        uow.escalations.set_time_rules(
            principal.agency_id, overrides, by=principal.username, at=clock()
        )
        uow.commit()
    response.headers["ETag"] = _rules_tag(overrides)
    log.info(
        "time rules set",
        extra={
            "action": "time_rules.set",
            "agency": principal.agency_id,
            "actor": principal.username,
            "rules": sorted(overrides),
        },
    )
    return _rules_view(watch, settings, overrides)
