"""Routes to recall (thu hồi), update (cập nhật) or replace (thay thế) a sent document.

Recall and update are events of the document (``recall``, ``update``), fired as any
event is, with a reason; each sends its request to every recipient that has the
document, which answers agree (15) or refuse (16): ``GET /v1/documents/{id}`` shows
each answer under ``requests``. Replace drafts the corrected document (multipart: the
reason, and the corrected main file and appendices, or the original's kept), which names
the one it replaces and goes through review, signing and sending as any draft does.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import ConfigDict, Field

from congvan.actions.corrections import checked_changes
from congvan.states import DOCUMENT
from congvan.states.document import UPDATABLE
from congvan.states.errors import InvalidInput, TooManyAttachments
from congvan.states.policy import EVENT_ROLES, REPLACE_ROLES
from congvan.states.timeliness import in_vietnam
from congvan.storage.agencies import Principal

from ..engine import Idempotency
from .auth import actor_of, fires, requires
from .bodies import JsonRoute
from .deps import EngineDep, SettingsDep
from .documents import REPLAYED, IdempotencyKey, IfMatch, fire_answering, parse_if_match
from .files import read_upload
from .outputs import AUTHENTICATED, DocumentOut, EventResult, errors, sends
from .schemas import TextModel, form_body
from .views import check_document_id

router = APIRouter(
    prefix="/v1/documents",
    tags=["documents"],
    responses=errors(*AUTHENTICATED),
    route_class=JsonRoute,
)


class RecallIn(TextModel):
    """Why the document is recalled, or replaced (the recipients read it)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class Corrections(TextModel):
    """The metadata an update corrects; a field left out stays, null clears it."""

    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(default=None, max_length=1000, description="Trích yếu")
    issued_on: date | None = Field(default=None, description="Ngày ban hành")
    due_date: date | None = Field(default=None, description="Hạn xử lý")
    signer_name: str | None = Field(default=None, max_length=200)
    signer_position: str | None = Field(default=None, max_length=200)
    place: str | None = Field(default=None, max_length=100)


class UpdateIn(RecallIn):
    """Why the metadata is corrected, and the corrected fields."""

    fields: Corrections

    def changes(self) -> dict[str, str | None]:
        given = self.fields.model_dump(include=self.fields.model_fields_set)
        return {k: None if v is None else str(v) for k, v in given.items() if k in UPDATABLE}


_EVENT = {
    "response_model": EventResult,
    "responses": {**errors(400, 404, 409, 501), **sends(200, "ETag", "Idempotent-Replayed")},
}


@router.post(
    "/{document_id}/recall",
    summary="Recall a sent document (thu hồi): its recipients are asked to take it back",
    **_EVENT,  # type: ignore[arg-type]
)
def recall_document(
    document_id: str,
    body: RecallIn,
    engine: EngineDep,
    principal: Annotated[Principal, fires(DOCUMENT, EVENT_ROLES, "recall")],
    response: Response,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    check_document_id(document_id)
    result = fire_answering(
        engine, "document", document_id, "recall", principal, response,
        parse_if_match(if_match), {"reason": body.reason}, idempotency_key,
    )  # fmt: skip
    return result.as_dict()


@router.post(
    "/{document_id}/update",
    summary="Correct a sent document's metadata (cập nhật): its recipients are asked to agree",
    **_EVENT,  # type: ignore[arg-type]
)
def update_document(
    document_id: str,
    body: UpdateIn,
    engine: EngineDep,
    principal: Annotated[Principal, fires(DOCUMENT, EVENT_ROLES, "update")],
    response: Response,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    check_document_id(document_id)
    # What is asked is judged before when it may be: a wrong field is 422 in any state.
    today = in_vietnam(engine.clock()).date()
    data = {"reason": body.reason, "fields": checked_changes(body.changes(), today)}
    result = fire_answering(
        engine, "document", document_id, "update", principal, response,
        parse_if_match(if_match), data, idempotency_key,
    )  # fmt: skip
    return result.as_dict()


@router.post(
    "/{document_id}/replace",
    status_code=201,
    summary="Draft the corrected document that replaces a sent one (thay thế)",
    response_model=DocumentOut,
    responses={**errors(400, 404, 409), **sends(201, "Location", "ETag", "Idempotent-Replayed")},
)
async def replace_document(
    document_id: str,
    engine: EngineDep,
    settings: SettingsDep,
    principal: Annotated[Principal, requires(REPLACE_ROLES, "Replacing a document")],
    response: Response,
    reason: Annotated[str, Form(min_length=1, max_length=2000, description="Why")],
    main: Annotated[
        UploadFile | None,
        File(description="The corrected main file; left out, the original's files are kept"),
    ] = None,
    appendix: Annotated[list[UploadFile] | None, File(description="Appendices, with main")] = None,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    check_document_id(document_id)
    expected = parse_if_match(if_match)  # the original's version, as its events take it
    reason = form_body(RecallIn, {"reason": reason}, "The reason").reason  # the text rules
    if appendix and main is None:
        raise InvalidInput("Appendices come with the corrected main file.", field="appendix")
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
    parts = [[f["role"], f["filename"], f["media_type"], f["sha256"]] for f in files]
    idem = (
        Idempotency.of(
            idempotency_key, "replace", document_id, expected, reason, parts, by=principal.user_id
        )
        if idempotency_key
        else None
    )
    view = await run_in_threadpool(
        engine.create_replacement,
        actor_of(principal),
        document_id,
        reason,
        files=files or None,
        idempotency=idem,
        expected_version=expected,
    )
    response.headers["Location"] = f"/v1/documents/{view['id']}"
    response.headers["ETag"] = f'"{view["version"]}"'
    if view.pop("replayed", False):
        response.headers[REPLAYED] = "true"
    return view
