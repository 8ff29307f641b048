"""Routes for documents: create with files, read, list, history, and fire events."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Path, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator

from congvan.states import DOCUMENT
from congvan.states.errors import (
    InvalidInput,
    ManifestMismatch,
    NotFound,
    TooManyAttachments,
)
from congvan.states.policy import CREATE_ROLES, EVENT_ROLES, READ_ROLES
from congvan.storage.agencies import Principal
from congvan.storage.blobreader import SLICE, slices, stored_bytes
from congvan.storage.documents import decode_cursor, encode_cursor

from ..engine import Engine, Expected, FireResult, Idempotency
from ..jsontext import read_json
from ..views import document_view, summary
from .auth import actor_of, fires, requires
from .bodies import JsonRoute
from .deps import EngineDep, ReadUowDep, RuntimeDep, SettingsDep
from .files import content_disposition, content_type, read_upload
from .methods import entity_tags, head_only
from .outputs import (
    AUTHENTICATED,
    DocumentOut,
    DocumentPage,
    EventResult,
    binary,
    digest_headers,
    errors,
    sends,
    versioned_etag,
)
from .paging import MAX_CURSOR, PagingDep, check_limit, page, paging
from .schemas import (
    DocumentIn,
    EventIn,
    Moment,
    check_limits,
    form_body,
    storable_offset_moment,
)
from .trail import HistoryPage
from .views import check_document_id, load_visible

router = APIRouter(
    prefix="/v1/documents",
    tags=["documents"],
    responses=errors(*AUTHENTICATED),
    route_class=JsonRoute,
)

# The metadata part is JSON text; the OpenAPI document says which JSON.
_CREATE_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {"encoding": {"metadata": {"contentType": "application/json"}}}
        }
    }
}


def _document_in(schema: dict[str, Any]) -> None:
    schema.clear()
    schema["x-schema"] = "DocumentIn"  # the app's OpenAPI hook turns it into a $ref


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,  # an empty key is a mistake, not "no key": a retry would apply twice
        max_length=200,
        description="Repeat a request safely: the same key returns the first answer.",
    ),
]


# The versions a change is made on, as the ETags a client holds (a list of them, each
# quoted): room for a list, not only for one tag.
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1000,
        description='The ETag(s) of the version the change is made on, e.g. "3"; else 409.',
    ),
]


# One of our ETags as a change names it: a version ("3"), or a read's ("3.5f2a9c1e04b7").
_VERSION_TAG = re.compile(r"(0|[1-9][0-9]*)(?:\.[0-9a-f]{12})?", re.ASCII)


def parse_if_match(value: str | None) -> Expected | None:
    """``If-Match`` as RFC 9110 §13.1.1 reads it: absent or ``*``, any version (None);
    else the versions its strong entity tags name, any of which matches: ``"3"``, or the
    tag a read gave, ``"3.5f2a9c1e04b7"`` (its version, then a digest of what was read:
    a change is made on the version). A weak tag (W/"3") never matches, If-Match comparing
    strongly; nor does a tag that is none of our ETags ("03"). What is not a list of
    entity tags is refused."""
    if value is None or value.strip() == "*":
        return None
    tags = entity_tags(value.encode("latin-1", "replace"))
    if tags is None:
        raise InvalidInput(
            'If-Match takes the ETag as it was sent, quotes included, e.g. "3" (or *).',
            field="If-Match",
        )
    versions = [
        int(found.group(1))
        for weak, tag in tags
        if not weak and (found := _VERSION_TAG.fullmatch(tag[1:-1].decode("latin-1")))
    ]
    return versions[0] if len(versions) == 1 else tuple(versions)


@router.post(
    "",
    status_code=201,
    summary="Create a draft with its metadata and files",
    response_model=DocumentOut,
    responses={**errors(400, 409), **sends(201, "Location", "ETag", "Idempotent-Replayed")},
    openapi_extra=_CREATE_BODY,
)
async def create_document(
    engine: EngineDep,
    settings: SettingsDep,
    principal: Annotated[Principal, requires(CREATE_ROLES, "Creating a document")],
    response: Response,
    metadata: Annotated[str, Form(json_schema_extra=_document_in)],
    main: Annotated[UploadFile | None, File(description="The main file (PDF)")] = None,
    appendix: Annotated[list[UploadFile] | None, File(description="Appendices")] = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    try:
        raw = read_json(metadata, where="metadata")
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"metadata is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            field="metadata",
        ) from exc
    except (ValueError, RecursionError) as exc:
        # json.loads' other refusals, as for a JSON body (bodies.JsonRequest.json)
        raise InvalidInput(
            "metadata is JSON too deeply nested or with a number too long to read.",
            field="metadata",
        ) from exc
    body = form_body(DocumentIn, raw, "The document metadata")
    check_limits(settings, body, body.recipients)
    uploads = ([("main", main)] if main is not None else []) + [
        ("appendix", f) for f in appendix or []
    ]
    if len(uploads) > settings.max_attachments:
        raise TooManyAttachments(
            f"At most {settings.max_attachments} attachments.",
            max_items=settings.max_attachments,
            count=len(uploads),
        )
    files = [await read_upload(f, role, settings.max_attachment_bytes) for role, f in uploads]
    fields = body.as_row()
    fields.pop("recipients", None)
    recipients = [r.model_dump() for r in body.recipients]
    # The whole request: every part's role, name and type count, not only the bytes.
    parts = [[f["role"], f["filename"], f["media_type"], f["sha256"]] for f in files]
    idem = (
        Idempotency.of(idempotency_key, "create", fields, recipients, parts, by=principal.user_id)
        if idempotency_key
        else None
    )
    # The document as created, even when replayed after it has changed: the first answer.
    # The engine blocks (SQL, hashing, the commit's fsync): in the thread pool, so that
    # the event loop keeps serving other requests meanwhile.
    view = await run_in_threadpool(
        engine.create_document,
        actor_of(principal),
        fields,
        recipients,
        files,
        idempotency=idem,
    )
    response.headers["Location"] = f"/v1/documents/{view['id']}"
    replayed = view.pop("replayed", False)
    response.headers["ETag"] = versioned_etag(view["version"], view)
    if replayed:
        response.headers[REPLAYED] = "true"
    return view


# Set on an answer repeated for an Idempotency-Key already used with the same request.
REPLAYED = "Idempotent-Replayed"


def check_cursor(cursor: str, listing: str) -> None:
    """A cursor is exactly what ``next_cursor`` of ``listing`` gave: an encoded id."""
    try:
        last_id = decode_cursor(cursor, listing)
        valid = str(uuid.UUID(last_id)) == last_id and encode_cursor(last_id, listing) == cursor
    except ValueError:  # bad base64, bytes that are not UTF-8, another list's cursor
        valid = False
    if not valid:
        raise InvalidInput("The cursor is not valid.", field="cursor")


@router.get(
    "", summary="List the caller's agency's documents, newest first", response_model=DocumentPage
)
def list_documents(
    uow: ReadUowDep,
    settings: SettingsDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
    state: Annotated[list[str] | None, Query(description="Filter by state (repeatable)")] = None,
    urgency: Annotated[int | None, Query(ge=0, le=4)] = None,
    doc_type: Annotated[str | None, Query(max_length=50)] = None,
    created_after: Annotated[Moment | None, AfterValidator(storable_offset_moment)] = None,
    created_before: Annotated[Moment | None, AfterValidator(storable_offset_moment)] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR)] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> dict[str, Any]:
    check_limit(limit, settings.max_page_size)
    if doc_type is not None and not doc_type.isprintable():
        raise InvalidInput("doc_type is not valid.", field="doc_type")
    if cursor is not None:
        check_cursor(cursor, "documents")
    unknown = [s for s in state or [] if s not in DOCUMENT.states]
    if unknown:
        raise InvalidInput(
            f"Unknown state(s): {', '.join(unknown)}.", field="state", allowed=list(DOCUMENT.states)
        )
    try:
        with uow:
            page = uow.documents.page(
                principal.agency_id,
                states=state or [],
                urgency=urgency,
                doc_type=doc_type,
                created_after=created_after,
                created_before=created_before,
                cursor=cursor,
                limit=limit,
            )
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("The cursor is not valid.", field="cursor") from exc
    return {"items": [summary(r) for r in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/{document_id}",
    summary="A document: state, version, allowed events, and more",
    response_model=DocumentOut,
    responses={**errors(404), **sends(200, "ETag")},
)
def get_document(
    document_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
    response: Response,
) -> dict[str, Any]:
    with uow:
        view = document_view(uow, load_visible(uow, document_id, principal.agency_id))
    response.headers["ETag"] = versioned_etag(view["version"], view)
    return view


@router.get(
    "/{document_id}/history",
    summary="The audit trail, oldest first",
    response_model=HistoryPage,
    response_model_exclude_unset=True,  # each payload exactly as it was recorded
    responses=errors(404),
)
def get_history(
    document_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
    params: PagingDep,
) -> dict[str, Any]:
    at = paging(params, (int,))
    with uow:
        load_visible(uow, document_id, principal.agency_id)
        entries = page(
            lambda after, n: uow.audit.history(
                document_id, after=int(after[0]) if after else 0, limit=n
            ),
            lambda e: (e.version,),
            at,
        )
    items = [e.as_dict() for e in entries["items"]]
    return {"document_id": document_id, **entries, "items": items}


@router.get(
    "/{document_id}/attachments/{sha256}",
    summary="Download an attachment (its own media type)",
    response_class=Response,
    responses={
        **binary(
            "*/*",  # each file has its own: application/pdf, ...
            description="The attachment's bytes, as the media type it was uploaded with",
            headers=("Content-Disposition", "Repr-Digest", "Digest", "ETag"),
        ),
        **errors(404),
    },
)
def get_attachment(
    document_id: str,
    sha256: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
    runtime: RuntimeDep,
    request: Request,
) -> Response:
    sha256 = sha256.lower()  # hex in either case names the same digest
    with uow:
        load_visible(uow, document_id, principal.agency_id)
        match = [a for a in uow.documents.attachments(document_id) if a.sha256 == sha256]
        if not match:
            raise NotFound("No such attachment.", sha256=sha256)
        size = uow.documents.blob_size(sha256) or 0
        data = (uow.documents.blob(sha256) or b"") if size <= SLICE else None
    # Never serve changed bytes under the digest they were stored with. A large file is
    # hashed, then sent, a slice at a time: never held whole, by however many at once.
    digest = hashlib.sha256()
    if data is None:
        for chunk in slices(stored_bytes(lambda: runtime.uow(readonly=True), sha256, size)):
            digest.update(chunk)
    else:
        digest.update(data)
    if digest.hexdigest() != sha256:
        raise ManifestMismatch(
            "The stored bytes of this attachment no longer match their SHA-256; it is not served.",
            sha256=sha256,
        )
    headers = {
        **content_type(match[0].media_type),
        "Content-Disposition": content_disposition(match[0].filename),
        **digest_headers(sha256),
    }
    if data is not None:
        return Response(data, headers=headers)
    if head_only(request.scope):  # what a GET would send, unread a second time
        return Response(b"", headers={**headers, "Content-Length": str(size)})
    stream = stored_bytes(lambda: runtime.uow(readonly=True), sha256, size)
    return StreamingResponse(slices(stream), headers={**headers, "Content-Length": str(size)})


@router.post(
    "/{document_id}/events/{event}",
    summary="Fire an event; 409 with the allowed events when it is not allowed",
    response_model=EventResult,
    responses={**errors(400, 404, 409, 501), **sends(200, "ETag", "Idempotent-Replayed")},
)
def fire_event(
    document_id: str,
    event: Annotated[str, Path(json_schema_extra={"enum": list(DOCUMENT.events)})],
    engine: EngineDep,
    settings: SettingsDep,
    principal: Annotated[Principal, fires(DOCUMENT, EVENT_ROLES)],
    response: Response,
    body: EventIn | None = None,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    check_document_id(document_id)
    body = body or EventIn()
    check_limits(settings, body.fields, body.recipients, body.reason)
    expected = parse_if_match(if_match)
    data: dict[str, Any] = {}
    if body.reason is not None:
        data["reason"] = body.reason
    if body.code is not None:
        data["code"] = body.code
    if body.cms is not None:
        data["cms"] = body.cms
    if body.signed_pdf is not None:
        data["signed_pdf"] = body.signed_pdf
    if body.fields is not None:
        data["fields"] = body.fields.as_row()
    if body.recipients is not None:
        data["recipients"] = [r.model_dump() for r in body.recipients]
    result = fire_answering(
        engine, "document", document_id, event, principal, response, expected, data, idempotency_key
    )
    return result.as_dict()


def subject_event(result: FireResult) -> dict[str, Any]:
    """What firing an event on a subject other than a document answers."""
    return {
        "id": result.document_id,
        "event": result.event,
        "from_state": result.from_state,
        "to_state": result.to_state,
        "version": result.version,
        "jobs": result.jobs,
    }


def fire_answering(
    engine: Engine,
    machine: str,
    subject_id: str,
    event: str,
    principal: Principal,
    response: Response,
    expected: Expected | None,
    data: dict[str, Any],
    idempotency_key: str | None,
) -> FireResult:
    """Fire for a request: its Idempotency-Key, its If-Match; the ETag and replay headers."""
    # The document's key keeps its original fingerprint material ("event"), so keys
    # remembered before other machines had routes still replay.
    kind = "event" if machine == "document" else machine
    idem = (
        Idempotency.of(
            idempotency_key, kind, subject_id, event, expected, data, by=principal.user_id
        )
        if idempotency_key
        else None
    )
    result = engine.fire_on(
        machine,
        subject_id,
        event,
        actor_of(principal),
        expected_version=expected,
        data=data,
        idempotency=idem,
    )
    response.headers["ETag"] = f'"{result.version}"'
    if result.replayed:
        response.headers[REPLAYED] = "true"
    return result
