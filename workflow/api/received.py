"""Routes for received documents: what other agencies sent us, listed and handled by ours.

A received document's files are read from its package as it was stored when it arrived
(``package.open_package``, bounded by its own size: the inbox's limits may have been
lowered since it was taken): the files the manifest lists,
under their file names, and the main PDF as the signer signed it, under ``signed/``.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, BinaryIO, Literal, cast

from fastapi import APIRouter, Path, Query, Response
from fastapi import Request as HttpRequest
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from congvan.actions.exchange.archive import Limits
from congvan.actions.exchange.package import Package, Part, open_package
from congvan.states import RECEIVED_DOCUMENT, allowed_events
from congvan.states.errors import (
    ExchangeRefused,
    InvalidInput,
    ManifestMismatch,
    NotFound,
    TransitionNotAllowed,
    UnknownEvent,
)
from congvan.states.escalation import NOT_ACKNOWLEDGED, RECALL_UNANSWERED, cause_key
from congvan.states.policy import READ_ROLES, RECEIVED_EVENT_ROLES, written_notation
from congvan.states.received import ANSWERING, RECEIVED, STATUS_CODE
from congvan.states.vocabulary import RULE_DEADLINE
from congvan.storage.agencies import Principal
from congvan.storage.blobreader import stored_bytes
from congvan.storage.clock import as_utc
from congvan.storage.received import AWAITING, Received, Request
from congvan.storage.unit_of_work import UnitOfWork

from ..bootstrap import Runtime
from .auth import PrincipalDep, fires, requires
from .bodies import JsonRoute
from .deps import ClockDep, EngineDep, ReadUowDep, RuntimeDep, SettingsDep
from .documents import (
    IdempotencyKey,
    IfMatch,
    check_cursor,
    fire_answering,
    parse_if_match,
    subject_event,
)
from .files import content_disposition, content_type
from .methods import head_only
from .outputs import AUTHENTICATED, Page, binary, digest_headers, errors, sends, versioned_etag
from .paging import MAX_CURSOR, check_limit
from .schemas import TextModel
from .views import check_document_id
from .vocabulary import ReceivedEvent, ReceivedState, StatusCode

router = APIRouter(
    prefix="/v1/received",
    tags=["received"],
    responses=errors(*AUTHENTICATED),
    route_class=JsonRoute,
)


class ReceivedOut(BaseModel):
    """A document another agency sent to the caller's agency."""

    id: str
    sender_id: str = Field(description="The sending agency's identifier")
    message_id: str = Field(description="The sender's message id (stable across retries)")
    sender_document_id: str
    state: ReceivedState
    status_code: StatusCode | None = Field(
        description="What the sender is told (QCVN 102); null once replaced"
    )
    version: int
    allowed_events: list[ReceivedEvent]
    number: int | None
    symbol: str
    doc_type: str
    subject: str
    issued_on: str
    urgency: int
    register_year: int | None = Field(description="The incoming register's year, once entered")
    register_number: int | None = Field(description="Its number in that register (số đến)")
    reason: str = Field(description="Why it was refused, when it was")
    manifest_sha256: str
    package_sha256: str
    received_at: datetime
    updated_at: datetime
    replaces: str | None = Field(description="The received document this one replaces")
    corrections: dict[str, str | None] = Field(
        description="Metadata corrected by updates agreed to (cập nhật), field by field"
    )


class ReceivedRequestOut(BaseModel):
    """The sender's recall or update of this document, and our answer."""

    id: str
    kind: Literal["recall", "update"]
    message_id: str
    reason: str
    changes: dict[str, str | None]
    state: Literal["awaiting", "agreed", "refused"]
    answer_reason: str | None
    received_at: datetime
    answered_at: datetime | None


class ReceivedFileOut(BaseModel):
    """A file of a received document, as its package carries it."""

    name: str = Field(
        description="Its name under /files/: the manifest's file name, or signed/ and the "
        "main file's name for the main PDF as the signer signed it"
    )
    role: str = Field(description="The manifest's role (main, appendix…), or signed_pdf")
    media_type: str
    size: int
    sha256: str


class ReceivedSignedOut(BaseModel):
    """What the sender signed of the document (its manifest), beyond what lists show."""

    notation: str = Field(description="Số và ký hiệu as written: 05/2026/QĐ-UBND, 1227/UBND-TĐKT")
    legal_normative: bool = Field(description="A legal normative document (its own series)")
    place: str | None
    signer_name: str | None
    signer_position: str | None
    signer_competence: str | None = Field(description="KT., TM., TL., TUQ. and the title")
    due_date: str | None = Field(description="The deadline it sets for handling, if any")
    appointed_at: str | None = Field(description="A hỏa tốc hẹn giờ letter's appointed time")


class ReceivedStepOut(BaseModel):
    """A step our clerks owe a received document, and by when the time rules want it."""

    step: Literal["register", "answer_recall", "answer_update"]
    events: list[ReceivedEvent] = Field(description="What takes the step")
    roles: list[str] = Field(description="Who may take it")
    request_id: str | None = Field(description="The recall or update answered")
    due_at: datetime | None = Field(description="By when (None: no rule watches it)")
    overdue: bool


class ReceivedDocumentOut(ReceivedOut):
    """A received document, with the files of its package."""

    waiting_for: list[ReceivedStepOut] = Field(
        description="What the document waits for here, and until when (nothing once it is"
        " registered and no request of the sender's awaits an answer)"
    )

    signed: ReceivedSignedOut = Field(description="What the sender signed (its manifest)")
    files: list[ReceivedFileOut]
    requests: list[ReceivedRequestOut] = Field(description="Recalls and updates, oldest first")
    replaced_by: list[str] = Field(description="Replacements the sender sent for it")


class ReceivedPage(Page):
    items: list[ReceivedOut]


class ReceivedEventIn(TextModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class ReceivedEventResult(BaseModel):
    """What firing an event on a received document did."""

    id: str = Field(description="The received document")
    event: ReceivedEvent
    from_state: ReceivedState
    to_state: ReceivedState
    version: int
    jobs: list[str] = Field(description="Ids of the jobs the transition queued")


def offered_events(state: str, awaiting: Collection[str]) -> list[str]:
    """The events a received document in ``state`` offers: its machine's, an answering
    one only while a request of its kind (recall, update) awaits our clerk's answer."""
    # While one awaits, nothing that waits for no answer owed is offered (a refusal).
    failing = ("no_answer_owed",) if awaiting else ()
    return [
        e
        for e in allowed_events(RECEIVED_DOCUMENT, state, failing=failing)
        if e not in ANSWERING or ANSWERING[e] in awaiting
    ]


def received_view(row: Received, awaiting: Collection[str] = ()) -> dict[str, Any]:
    """A received document as listed; ``awaiting``: the kinds of request (recall, update)
    awaiting our clerk's answer, whose answering events it offers."""
    events = offered_events(row.state, awaiting)
    return {
        "id": row.id,
        "sender_id": row.sender_id,
        "message_id": row.message_id,
        "sender_document_id": row.sender_document_id,
        "state": row.state,
        "status_code": STATUS_CODE.get(row.state),
        "version": row.version,
        "allowed_events": events,
        "number": row.number,
        "symbol": row.symbol,
        "doc_type": row.doc_type,
        "subject": row.subject,
        "issued_on": row.issued_on,
        "urgency": row.urgency,
        "register_year": row.register_year,
        "register_number": row.register_number,
        "reason": row.reason,
        "manifest_sha256": row.manifest_sha256,
        "package_sha256": row.package_sha256,
        # With their offset: SQLite gives them back naive.
        "received_at": as_utc(row.received_at),
        "updated_at": as_utc(row.updated_at),
        "replaces": row.replaces_id,
        "corrections": json.loads(row.corrections),
    }


def _dues(uow: UnitOfWork, row: Received, awaiting: Sequence[Request]) -> dict[str, datetime]:
    """The deadline of each step ``row`` waits for, by the id its rule watches (the
    received document's registration, each request's answer): its rule's timer while the
    deadline is ahead, the escalation it opened once it has passed."""
    causes = {row.id: cause_key(NOT_ACKNOWLEDGED, row.id)}
    causes |= {q.id: cause_key(RECALL_UNANSWERED, q.id) for q in awaiting}
    dues = {
        escalation.active_key: escalation.due_at
        for escalation in uow.escalations.active_among(list(causes.values()))
        if escalation.due_at is not None
    }
    watched = uow.timers.watching(RULE_DEADLINE, list(causes))
    found = {ref: dues[cause] for ref, cause in causes.items() if cause in dues}
    return found | {ref: timer.deadline for ref, timer in watched.items()}


def waiting_for(
    row: Received, awaiting: Sequence[Request], dues: Mapping[str, datetime], now: datetime
) -> list[dict[str, Any]]:
    """The steps our clerks owe ``row``: its registration (or return) while it waits in
    ``received`` (Decree 30 Art. 21: the same day), and an answer to each recall or update
    of the sender's that awaits one; each by the deadline its rule keeps (``dues``), taken
    by the events the view offers for it (no refusal while a request awaits its answer)."""
    offered = offered_events(row.state, {q.kind for q in awaiting})
    steps: list[tuple[str, list[str], str | None, str]] = []
    if row.state == RECEIVED:
        registering = [ev for ev in offered if ev in ("register", "refuse")]
        steps.append(("register", registering, None, row.id))
    for q in awaiting:
        answering = [ev for ev in offered if ANSWERING.get(ev) == q.kind]
        steps.append((f"answer_{q.kind}", answering, q.id, q.id))
    said = []
    for step, events, request_id, watched_on in steps:
        due = as_utc(dues[watched_on]) if watched_on in dues else None
        roles = set().union(*(RECEIVED_EVENT_ROLES.get(ev, frozenset()) for ev in events))
        said.append(
            {
                "step": step,
                "events": events,
                "roles": sorted(roles),
                "request_id": request_id,
                "due_at": due,
                "overdue": due is not None and due <= now,
            }
        )
    return said


def request_view(request: Request) -> dict[str, Any]:
    return {
        "id": request.id,
        "kind": request.kind,
        "message_id": request.message_id,
        "reason": request.reason,
        "changes": json.loads(request.changes),
        "state": request.state,
        "answer_reason": request.answer_reason or None,
        "received_at": as_utc(request.received_at),
        "answered_at": as_utc(request.answered_at) if request.answered_at else None,
    }


@router.get(
    "",
    summary="List what other agencies sent to the caller's agency, newest first",
    response_model=ReceivedPage,
)
def list_received(
    uow: ReadUowDep,
    settings: SettingsDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading received documents")],
    state: Annotated[list[str] | None, Query(description="Filter by state (repeatable)")] = None,
    sender: Annotated[str | None, Query(max_length=35, description="The sending agency")] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR)] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> dict[str, Any]:
    check_limit(limit, settings.max_page_size)
    if cursor is not None:
        check_cursor(cursor, "received")
    unknown = [s for s in state or [] if s not in RECEIVED_DOCUMENT.states]
    if unknown:
        raise InvalidInput(
            f"Unknown state(s): {', '.join(unknown)}.",
            field="state",
            allowed=list(RECEIVED_DOCUMENT.states),
        )
    with uow:
        page = uow.received.page(
            principal.agency_id, states=state or [], sender_id=sender, cursor=cursor, limit=limit
        )
        awaiting = uow.received.awaiting_kinds([r.id for r in page.items])
    items = [received_view(r, awaiting.get(r.id, ())) for r in page.items]
    return {"items": items, "next_cursor": page.next_cursor}


@router.get(
    "/{received_id}",
    summary="A received document: state, status code, allowed events, files",
    response_model=ReceivedDocumentOut,
    responses={**errors(404), **sends(200, "ETag")},
)
def get_received(
    received_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading received documents")],
    response: Response,
    runtime: RuntimeDep,
    clock: ClockDep,
) -> dict[str, Any]:
    row, package = _open_stored(uow, principal, received_id, runtime)
    with package:
        files = [_file_view(p) for p in package.header.parts if _file_name(p) is not None]
        signed = _signed_view(json.loads(package.manifest))
    with uow:
        stored = uow.received.requests(row.id)
        replaced_by = uow.received.replaced_by(row.id)
        open_ = [q for q in stored if q.state == AWAITING]
        dues = _dues(uow, row, open_)
    awaiting = {q.kind for q in open_}
    view = {
        **received_view(row, awaiting),
        "waiting_for": waiting_for(row, open_, dues, clock()),
        "signed": signed,
        "files": files,
        "requests": [request_view(q) for q in stored],
        "replaced_by": replaced_by,
    }
    response.headers["ETag"] = versioned_etag(row.version, view)
    return view


@router.get(
    "/{received_id}/files/{name:path}",
    summary="Download a received file, or the signed PDF (signed/NAME), from its package",
    response_class=Response,
    responses={
        **binary(
            "*/*",  # each file has its own: application/pdf, ...
            description="The file's bytes, as the media type its package gives it",
            headers=("Content-Disposition", "Repr-Digest", "Digest", "ETag"),
        ),
        **errors(404),
    },
)
def get_received_file(
    received_id: str,
    name: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading received documents")],
    runtime: RuntimeDep,
    request: HttpRequest,
) -> StreamingResponse:
    _row, package = _open_stored(uow, principal, received_id, runtime)
    name = unicodedata.normalize("NFC", name)  # as names are kept (a Mac sends them NFD)
    part = next((p for p in package.header.parts if _file_name(p) == name), None)
    if part is None:
        package.close()
        raise NotFound("No such file.", received_id=received_id, name=name[:300])
    if head_only(request.scope):  # its headers say what a GET would send
        package.close()
    return StreamingResponse(
        iter(()) if head_only(request.scope) else _streamed(package, part),
        headers={
            **content_type(part.media_type),
            "Content-Disposition": content_disposition(part.name.rsplit("/", 1)[-1]),
            # Its size as the package lists it (checked when the package was accepted):
            # streamed, it is still sent with its length, not in chunks.
            "Content-Length": str(part.size),
            **digest_headers(part.sha256),
        },
    )


def _open_stored(
    uow: UnitOfWork, principal: PrincipalDep, received_id: str, runtime: Runtime
) -> tuple[Received, Package]:
    """The caller's agency's received document and its package as stored, opened: read
    a slice at a time (a package is up to tens of megabytes, and many read at once)."""
    check_document_id(received_id, "received document", "received_id")
    with uow:
        row = uow.received.get(received_id)
        # Another agency's received document answers exactly like a missing one.
        if row is None or row.agency_id != principal.agency_id:
            raise NotFound("No such received document.", received_id=received_id)
        size = uow.documents.blob_size(row.package_sha256)
    # Never serve bytes other than those verified when the package arrived.
    changed = ManifestMismatch(
        "The stored package no longer matches its SHA-256; it is not served.",
        sha256=row.package_sha256,
    )
    stream = stored_bytes(lambda: runtime.uow(readonly=True), row.package_sha256, size or 0)
    try:
        package = open_package(cast(BinaryIO, stream), Limits.kept(size or 0))
    except ExchangeRefused as exc:
        raise changed from exc
    if package.sha256 != row.package_sha256:
        package.close()
        raise changed
    return row, package


def _signed_view(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the view shows of a manifest the inbox verified (its members, of their kinds)."""
    return {
        "notation": written_notation(manifest),
        "legal_normative": manifest.get("legal_normative") is True,
        **{
            name: manifest.get(name)
            for name in (
                "place",
                "signer_name",
                "signer_position",
                "signer_competence",
                "due_date",
                "appointed_at",
            )
        },
    }


def _file_name(part: Part) -> str | None:
    """A part's name under /files/, or None for what is not a file (manifest, signatures)."""
    if part.signed_pdf:
        return part.name
    return part.filename


def _file_view(part: Part) -> dict[str, Any]:
    return {
        "name": _file_name(part),
        "role": part.role,
        "media_type": part.media_type,
        "size": part.size,
        "sha256": part.sha256,
    }


def _streamed(package: Package, part: Part) -> Iterator[bytes]:
    try:
        yield from package.archive.chunks(part.name)
    finally:
        package.close()


# type/subtype, as a media type needs to be to go into a header as the sender wrote it.
@router.post(
    "/{received_id}/events/{event}",
    summary="Register, refuse (with a reason), assign, process or complete",
    response_model=ReceivedEventResult,
    responses={**errors(400, 404, 409, 501), **sends(200, "ETag", "Idempotent-Replayed")},
)
def fire_received_event(
    received_id: str,
    event: Annotated[str, Path(json_schema_extra={"enum": list(RECEIVED_DOCUMENT.events)})],
    engine: EngineDep,
    uow: ReadUowDep,
    principal: Annotated[Principal, fires(RECEIVED_DOCUMENT, RECEIVED_EVENT_ROLES)],
    response: Response,
    body: ReceivedEventIn | None = None,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    check_document_id(received_id, "received document", "received_id")
    expected = parse_if_match(if_match)
    data = {"reason": body.reason} if body is not None and body.reason is not None else {}
    try:
        result = fire_answering(
            engine, "received", received_id, event, principal, response, expected, data,
            idempotency_key,
        )  # fmt: skip
    except (UnknownEvent, TransitionNotAllowed) as refused:
        # The events it offers, as its view lists them: not an answer nothing awaits
        state = str(refused.details["state"])
        with uow:
            awaiting = uow.received.awaiting_kinds([received_id]).get(received_id, ())
        raise type(refused)(event, state, offered_events(state, awaiting)) from None
    return subject_event(result)
