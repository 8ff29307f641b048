"""Bodies the API answers with, so the OpenAPI document says what each route returns."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from .vocabulary import (
    DispatchState,
    DocumentEvent,
    DocumentState,
    JobStatus,
    StatusCode,
    TimerKind,
)

# A moment as ISO 8601 text that always carries its UTC offset ("+00:00" or "Z").
Moment = Annotated[
    str,
    Field(
        pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$",
        json_schema_extra={"format": "date-time"},
    ),
]


class ErrorBody(BaseModel):
    """Every error: a stable code, a sentence for people, and details for programs."""

    code: str = Field(description="Stable, machine-readable, e.g. transition_not_allowed")
    message: str
    details: dict[str, Any]


_ERROR_TEXT = {
    400: "The request could not be read (e.g. a broken multipart body)",
    401: "No valid API token",
    403: "The caller's roles do not allow this",
    404: "No such resource, or it belongs to another agency",
    409: "Not allowed in the current state, a stale version, or already there",
    412: "If-Match names no entity tag of what is here now (read it again)",
    413: "The body or an attachment is larger than allowed",
    428: "A change that replaces a whole set needs the If-Match of what it read",
    415: "The body is not of the media type the route takes",
    422: "The request is not valid",
    501: "The action this needs is not configured on this server",
    503: "The database cannot be reached or is not migrated; try again later",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the error statuses a route can answer, all as :class:`ErrorBody`."""
    answers: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorBody, "description": _ERROR_TEXT[s]} for s in statuses
    }
    for status, names in _ERROR_HEADERS.items():
        if status in answers:
            answers[status]["headers"] = header_specs(*names)
    return answers


def _header(description: str, *, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


# Every header a route sets itself, as the OpenAPI document declares it.
HEADERS: dict[str, dict[str, Any]] = {
    "ETag": _header("A document's version, e.g. \"3\": send it back as If-Match; a file's SHA-256"),
    "Location": _header("Where what was made is read"),
    "Idempotent-Replayed": _header(
        '"true" when this repeats the answer to an earlier request with the same Idempotency-Key',
        required=False,
    ),
    "Content-Disposition": _header(
        "attachment, with the file name in ASCII and in UTF-8 (RFC 6266 filename*)"
    ),
    "Repr-Digest": _header("sha-256=:<base64>: of the body as stored (RFC 9530)"),
    "Digest": _header("sha-256=<base64> of the body as stored (RFC 3230, for older clients)"),
    "WWW-Authenticate": _header("Bearer"),
    "Retry-After": _header("Seconds to wait before trying again"),
    "X-Request-ID": _header("The request's id in the server's logs (the caller's, if valid)"),
    "X-Content-Type-Options": _header("nosniff: the answer's type is its Content-Type"),
}
_ERROR_HEADERS = {401: ("WWW-Authenticate",), 503: ("Retry-After",)}


def header_specs(*names: str) -> dict[str, dict[str, Any]]:
    """The ``headers`` of an answer that sends ``names``."""
    return {n: HEADERS[n] for n in names}


_CONDITIONS = {
    "If-None-Match": "Entity tags the client holds (or *): 304 with no body when one is what a"
    " GET would send now",
    "If-Match": "Entity tags the client expects (or *): 412 when none is what a GET would send now",
}


def declare_conditions(method: str, operation: dict[str, Any]) -> None:
    """Declare in ``operation`` (of the OpenAPI document) what ``methods.Conditional`` answers
    to conditions: a read is judged by the tag it sends (304 Not Modified, 412), a change
    that judges none refuses them (412)."""
    answers = operation["responses"]
    failed = {
        "description": _ERROR_TEXT[412],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    if method != "get":
        answers.setdefault("412", failed)
        return
    # A read's 304 and 412 carry the tag it has now, where it has one (a list has none).
    current = {"ETag": {**HEADERS["ETag"], "required": False}}
    answers.setdefault("412", {**failed, "headers": current})
    params = operation.setdefault("parameters", [])
    given = {p["name"].lower() for p in params if p["in"] == "header"}
    for name, description in _CONDITIONS.items():
        if name.lower() not in given:
            params.append(
                {
                    "name": name,
                    "in": "header",
                    "required": False,
                    "description": description,
                    "schema": {"type": "string"},
                }
            )
    answers.setdefault(
        "304",
        {
            "description": "Not Modified: what the client holds (If-None-Match) is current",
            "headers": current,
        },
    )


def sends(status: int, *names: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` declaring the headers a route's success answer carries."""
    return {status: {"headers": header_specs(*names)}}


# Every route can meet a bad parameter and a body over the request size limit.
COMMON = (413, 422)
# ...every route that reads the database, that database down or not migrated...
STORED = (*COMMON, 503)
# ...and every route behind a token (which is looked up there) the lack of one, or of a role.
AUTHENTICATED = (401, 403, *STORED)


class Page(BaseModel):
    """One page of a list: pass ``next_cursor`` back as ``cursor`` for the next one."""

    next_cursor: str | None = Field(description="null on the last page")


class DocumentSummary(BaseModel):
    id: str
    agency_id: str
    notation: str = Field(description="Số và ký hiệu, e.g. 1227/UBND-TĐKT")
    doc_type: str
    subject: str
    urgency: int
    state: DocumentState
    version: int
    created_at: Moment
    updated_at: Moment


class DocumentPage(Page):
    items: list[DocumentSummary]


class Signer(BaseModel):
    name: str | None
    position: str | None
    competence: str | None


class RecipientOut(BaseModel):
    organ_id: str
    name: str


class AttachmentOut(BaseModel):
    id: int
    sha256: str
    filename: str
    media_type: str
    size: int
    role: str


class ReportedStatus(BaseModel):
    """A signed status message the recipient sent about the document, as kept."""

    code: StatusCode
    label: str
    reason: str | None = Field(description="Why it was refused (02)")
    at: Moment = Field(description="When it happened, as the recipient says")
    staff: str | None = Field(
        description="Who did it there (QCVN 102's StaffInfo: name and position), when the "
        "recipient says"
    )


class UncorrectedOut(BaseModel):
    """An update a recipient's copy does not carry."""

    request_id: str
    answer: Literal["refused", "undelivered"] = Field(
        description="Refused (16), or never delivered"
    )
    reason: str | None = Field(description="Why it was refused, as the recipient says")
    fields: list[str] = Field(description="The fields the update corrected")


class DispatchOut(BaseModel):
    """The document's sending to one recipient."""

    id: str
    organ_id: str
    state: DispatchState
    status_code: StatusCode | None = Field(
        description="Where the recipient stands (QCVN 102): 01 arrived, 02 refused, "
        "03 registered, 04 assigned, 05 processing, 06 completed, 15 its copy recalled (it "
        "agreed); null before it arrived"
    )
    status_label: str | None = Field(description="The status code in words")
    status_reason: str | None = Field(description="Why the recipient refused it (02)")
    reported: list[ReportedStatus] = Field(description="Its status messages, by code")
    uncorrected: list[UncorrectedOut] = Field(
        description="The updates (cập nhật) this recipient refused (16) or never got: its "
        "copy keeps the values before them, whatever the document says now"
    )
    attempts: int
    last_error: str | None
    updated_at: Moment


class RequestRecipientOut(BaseModel):
    """One recipient of a recall or update, and its answer."""

    organ_id: str
    dispatch_id: str
    message_id: str | None = Field(description="The request package's message id")
    state: DispatchState
    answer: Literal["sending", "awaiting_answer", "agreed", "refused", "undelivered"] = Field(
        description="Under way, awaiting the answer, agreed (15), refused (16), or never "
        "delivered (the package was refused at the inbox, or its attempts ran out)"
    )
    status_code: Literal["13", "15", "16"] | None = Field(
        description="The recipient's answer (15 agreed, 16 refused); 13 while a recall it "
        "has awaits its answer (the sender asked to take the document back)"
    )
    status_label: str | None
    reason: str | None = Field(description="Why it refused (16), or why the inbox refused it")
    updated_at: Moment


class RequestOut(BaseModel):
    """A recall (thu hồi) or update (cập nhật) of the sent document."""

    id: str
    kind: Literal["recall", "update"]
    reason: str
    changes: dict[str, str | None] | None = Field(description="An update's corrected fields")
    sent_at: Moment
    outcome: Literal["awaiting_answer", "agreed", "partly_agreed", "refused", "undelivered"] = (
        Field(
            description="awaiting_answer while a recipient's answer is awaited; once every "
            "one answered (or never got it): agreed by all, partly_agreed (some agreed, the "
            "others refused or never got it), refused, or undelivered"
        )
    )
    recipients: list[RequestRecipientOut]


class JobOut(BaseModel):
    id: str
    action: str
    status: JobStatus
    attempts: int


class Waiting(BaseModel):
    kind: TimerKind
    ref_id: str | None
    until: Moment


class SigningTimeliness(BaseModel):
    """How timely the signing was, judged when it was signed (Decision 28/2018 Art. 6);
    a signing recorded before the whole judgment was kept has nulls."""

    signed_at: Moment
    send_by: Moment | None = Field(description="When the signed document must go out")
    reviewed_at: Moment | None = Field(description="When it was approved")
    dated_send_by: Moment | None = Field(description="When a document of its date had to go")
    late: bool = Field(description="Signed after dated_send_by: its date is stale")
    late_by_hours: int | None
    late_by_working_days: int | None
    review_to_signing_working_days: int | None
    sign_within_working_days: int | None = Field(description="The limit then in force")
    signed_long_after_review: bool | None


class SendingTimeliness(BaseModel):
    """When the document was sent, judged against the send-by moment of its signing
    (Decision 28/2018 Art. 6), as the outgoing register kept it."""

    sent_at: Moment
    send_by: Moment | None = Field(description="null when its signing kept none")
    late: bool | None = Field(description="Sent after send_by; null when unknown")
    late_by_hours: int | None


class DocumentOut(DocumentSummary):
    number: int | None
    symbol: str | None
    legal_normative: bool
    place: str | None
    issued_on: date | None
    content: str | None
    signer: Signer
    urgency_label: str
    secrecy: str | None
    secrecy_label: str
    due_date: date | None
    appointed_at: datetime | None = Field(description="A hỏa tốc hẹn giờ document's time")
    created_by: str
    allowed_events: list[DocumentEvent]
    recipients: list[RecipientOut]
    attachments: list[AttachmentOut]
    dispatches: list[DispatchOut]
    jobs: list[JobOut]
    waiting_for: list[Waiting]
    timeliness: SigningTimeliness | None = Field(description="null until it is signed")
    sending: SendingTimeliness | None = Field(description="null until it is sent")
    revision: int
    submitted_revision: int | None
    signer_user: str | None
    audit_head: str
    replaces: str | None = Field(description="The document this one replaces (thay thế)")
    replace_reason: str | None = Field(description="Why it replaces it")
    replaced_by: list[str] = Field(description="Replacements drafted for this document")
    requests: list[RequestOut] = Field(description="Its recalls and updates, oldest first")


class EventResult(BaseModel):
    """What firing an event did; a replay repeats it (the Idempotent-Replayed header says so)."""

    document_id: str
    event: DocumentEvent
    from_state: DocumentState
    to_state: DocumentState
    version: int
    jobs: list[str] = Field(description="Ids of the jobs the transition queued")
    derived: list[DocumentEvent] = Field(description="Events that followed by themselves")


class AgencyOut(BaseModel):
    id: str
    name: str
    abbreviation: str
    numbering: str = Field(description="agency (one series for all) or symbol (per symbol)")


class AgencyPage(Page):
    items: list[AgencyOut]


class AuthorityOut(BaseModel):
    id: str
    signer: str
    doc_types: list[str]
    competence: str
    valid_from: date
    valid_until: date | None
    revoked: bool


class AuthorityPage(Page):
    items: list[AuthorityOut]


class Revoked(BaseModel):
    id: str
    revoked: bool


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: the API answers, but background work waits (broker down), "
        "or the embedded database's disk has less room left than one request may bring"
    )
    database: Literal["ok"]
    disk_free_bytes: int | None = Field(
        description="Room left on the embedded (SQLite) database's disk; null on PostgreSQL, "
        "whose disk is its server's"
    )
    schema_: Literal["current", "outdated"] = Field(alias="schema")
    broker: Literal["embedded", "redis"]
    broker_status: Literal["ok", "unreachable"] = Field(
        description="Whether the broker answered a ping within a second"
    )


class Metrics(BaseModel):
    documents_by_state: dict[DocumentState, int]
    jobs_by_status: dict[JobStatus, int]
    next_timer_due: Moment | None
    timers_parked: int = Field(
        description="Timers that failed too often and wait for an operator (congvan timers)"
    )


def binary(
    *media_types: str, description: str, headers: tuple[str, ...] = ()
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a 200 whose body is bytes of the given media types."""
    schema = {"type": "string", "format": "binary"}
    answer: dict[str, Any] = {
        "description": description,
        "content": {m: {"schema": schema} for m in media_types},
    }
    if headers:
        answer["headers"] = header_specs(*headers)
    return {200: answer}


def versioned_etag(version: int, view: Mapping[str, Any]) -> str:
    """The ETag of a versioned thing as read: its version, then a digest of what was read
    (``"3.5f2a9c1e04b7"``). What it shows besides its own row (its jobs finishing, a
    replacement drafted, a request answered) changes without its version, and a client
    holding the tag must not be told by a 304 that nothing did; ``If-Match`` on a change
    takes the version alone or this whole tag (``documents.parse_if_match``)."""
    text = json.dumps(view, sort_keys=True, default=str, ensure_ascii=False)
    return f'"{version}.{hashlib.sha256(text.encode()).hexdigest()[:12]}"'


def digest_headers(sha256: str) -> dict[str, str]:
    """The headers of a stored file's bytes by their SHA-256 (hex): RFC 9530's
    ``Repr-Digest`` and RFC 3230's ``Digest`` (base64), and the hex as its strong ETag,
    so that every download can be read conditionally and checked the same way."""
    encoded = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
    return {
        "Repr-Digest": f"sha-256=:{encoded}:",
        "Digest": f"sha-256={encoded}",
        "ETag": f'"{sha256}"',
    }
