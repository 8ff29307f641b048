"""Bodies the API answers with, so the OpenAPI document says what each route returns."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, Field

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
    413: "The body or an attachment is larger than allowed",
    422: "The request is not valid",
    501: "The action this needs is not configured on this server",
    503: "The database is not ready",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the error statuses a route can answer, all as :class:`ErrorBody`."""
    return {s: {"model": ErrorBody, "description": _ERROR_TEXT[s]} for s in statuses}


# Every route can meet a bad parameter and a body over the request size limit.
COMMON = (413, 422)
# ...and every route behind a token also the lack of one, or of a role.
AUTHENTICATED = (401, 403, *COMMON)


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
    state: str
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


class DispatchOut(BaseModel):
    id: str
    organ_id: str
    state: str
    attempts: int
    last_error: str | None
    updated_at: Moment


class JobOut(BaseModel):
    id: str
    action: str
    status: str
    attempts: int


class Waiting(BaseModel):
    kind: str
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
    created_by: str
    allowed_events: list[str]
    recipients: list[RecipientOut]
    attachments: list[AttachmentOut]
    dispatches: list[DispatchOut]
    jobs: list[JobOut]
    waiting_for: list[Waiting]
    timeliness: SigningTimeliness | None = Field(description="null until it is signed")
    revision: int
    submitted_revision: int | None
    signer_user: str | None
    audit_head: str


class EventResult(BaseModel):
    """What firing an event did; a replay repeats it (the Idempotent-Replayed header says so)."""

    document_id: str
    event: str
    from_state: str
    to_state: str
    version: int
    jobs: list[str]
    derived: list[str]


class HistoryEntry(BaseModel):
    version: int
    event: str
    actor: str
    from_state: str
    to_state: str
    at: Moment
    payload: dict[str, Any]
    hash: str


class HistoryPage(Page):
    document_id: str
    items: list[HistoryEntry]


class CheckCounts(BaseModel):
    counts: dict[str, int]
    pending: list[str]
    ready_to_approve: bool


class QueueItem(DocumentSummary):
    revision: int
    checks: CheckCounts


class QueuePage(Page):
    items: list[QueueItem]


class ChecksOut(BaseModel):
    document_id: str
    revision: int
    submitted_revision: int | None
    results: list[dict[str, Any]]
    pending: list[str]
    cleared: bool


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
    status: str
    database: str
    schema_: str = Field(alias="schema", description="current, or outdated")
    broker: str


class Metrics(BaseModel):
    documents_by_state: dict[str, int]
    jobs_by_status: dict[str, int]
    next_timer_due: Moment | None


class Timestamp(BaseModel):
    status: str = Field(description="none, pending, stamped or unavailable")
    source: str | None = None
    time: Moment | None = None
    authority: str | None = None
    error: str | None = None
    attempts: int | None = None


class SignatureOut(BaseModel):
    document_id: str
    revision: int
    mode: str
    signer: str
    manifest_sha256: str
    certificate: str
    signed_pdf_sha256: str | None
    signing_time: Moment
    current_revision: int
    timestamp: Timestamp
    verdict: dict[str, Any] = Field(description="ok, and each point checked (or the error)")


def binary(*media_types: str, description: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a 200 whose body is bytes of the given media types."""
    schema = {"type": "string", "format": "binary"}
    return {
        200: {
            "description": description,
            "content": {m: {"schema": schema} for m in media_types},
        }
    }
