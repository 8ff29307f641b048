"""POST /v1/inbox: another agency's system delivers a package; the answer is a signed receipt.

No bearer token: the sender is what the package's agency signature proves. A refusal
(401 unknown or unproven sender, 403 misaddressed or another agency's certificate, 413 too
large, 422 malformed or tampered) carries a ``reason`` the sender records as status 02.
"""

from __future__ import annotations

import tempfile
import threading
from typing import Any, BinaryIO, cast

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from congvan.states.errors import ServerBusy

from ..statuses import decoded
from .bodies import JsonRoute, SmallJsonRoute
from .deps import InboxDep, StatusesDep
from .documents import REPLAYED
from .outputs import STORED, errors, sends
from .schemas import TextModel
from .vocabulary import DispatchState

router = APIRouter(prefix="/v1/inbox", tags=["exchange"], route_class=JsonRoute)

# Bytes of a package held in memory before it spills to a temporary file.
_IN_MEMORY = 1 << 20

PACKAGE_MEDIA_TYPE = "application/zip"
_PACKAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A package (format congvan-package/1, a ZIP); see README.",
        "content": {PACKAGE_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}


class ReceiptOut(BaseModel):
    """The receipt (status 01) signed by the receiving agency: exact bytes, base64."""

    receipt: str = Field(description="The receipt, congvan-receipt/1 JSON, base64")
    receipt_cms: str = Field(description="The receiving agency's detached CMS (DER), base64")


@router.post(
    "",
    summary="Deliver a package from another agency; answered with a signed receipt",
    status_code=201,
    response_model=ReceiptOut,
    openapi_extra=_PACKAGE_BODY,
    responses={
        **errors(400, 401, 403, 409, 415, *STORED),
        **sends(200, REPLAYED),
        200: {"model": ReceiptOut, "description": "Delivered before: the first receipt"},
    },
)
async def deliver(request: Request, inbox: InboxDep, response: Response) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != PACKAGE_MEDIA_TYPE:
        raise HTTPException(415, f"A package is sent as {PACKAGE_MEDIA_TYPE}.")
    # Anybody may post here before a signature says who: so many at once, and no more,
    # hold a connection and a temporary file (each a package's size at most).
    reading: threading.BoundedSemaphore = request.app.state.inbox_reading
    if not reading.acquire(blocking=False):
        raise ServerBusy(
            "This inbox is reading as many packages as it takes at once: send it again shortly."
        )
    try:
        with tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY) as spool:
            async for chunk in request.stream():  # the body limit and pace apply as it streams
                spool.write(chunk)
            spool.seek(0)
            answer = await run_in_threadpool(inbox.accept, cast(BinaryIO, spool))
    finally:
        reading.release()
    if not answer.stored:
        response.status_code = 200
        response.headers[REPLAYED] = "true"
    return answer.wire()


class StatusIn(TextModel):
    """A status message (congvan-status/1) and its signature, exact bytes, base64."""

    model_config = ConfigDict(extra="forbid")

    status: str = Field(max_length=64 * 1024, description="The message's JSON, base64")
    status_cms: str = Field(max_length=64 * 1024, description="The detached CMS, base64")


class StatusTaken(BaseModel):
    dispatch_id: str
    state: DispatchState = Field(description="The dispatch's state after the message")
    new: bool = Field(description="False when this code was received before")


status_router = APIRouter(prefix="/v1/status", tags=["exchange"], route_class=SmallJsonRoute)


@status_router.post(
    "",
    summary="A recipient reports what it did with a package (QCVN 102 codes 02–06)",
    response_model=StatusTaken,
    responses=errors(400, 401, 403, 409, *STORED),
)
async def take_status(message: StatusIn, statuses: StatusesDep) -> dict[str, Any]:
    body, cms = decoded(message.status, message.status_cms)
    # The database and the signature check in the thread pool; the answer made here.
    taken = await run_in_threadpool(statuses.accept, body, cms)
    return {"dispatch_id": taken.dispatch_id, "state": taken.state, "new": taken.new}
