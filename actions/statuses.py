"""Status messages back to the sender: what our clerks did with a document it sent us.

Every move of a received document (registered 03, refused 02 with its reason, assigned
04, processing 05, completed 06; the answer to a recall or update, 15 agreed or 16
refused with its reason, about that request's package) queues a ``send_status`` job.
Claim: read what to say and where (the sender's inbox in the directory of peers; its
``/v1/status`` beside it). Act (no transaction): sign the message with our agency's
organisational key and post it. A transient failure (not sent, 408, 429, 5xx) raises,
so the job waits on its backoff timer and posts again; the sender keeps one message per
code, so a repeat changes nothing. So does 401: the sender does not know us yet (our
directory entry or renewed certificate not imported there), which its operators mend; a
status dropped then would leave the sender waiting for good. A refusal of the message
itself (403, 409, 422) is logged and not retried: the sender will never take it.
"""

from __future__ import annotations

import base64
import logging
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from congvan.states.errors import CongvanError
from congvan.states.received import ANSWER_CODE, RECEIVED_DOCUMENT, STATUS_CODE, STATUS_LABEL
from congvan.states.text import has_visible_text, printable
from congvan.storage.audit import AuditEvent
from congvan.storage.received import Received
from congvan.storage.unit_of_work import UnitOfWork

from .context import JobContext
from .escalations.statuses import StatusWatch
from .exchange.envelope import MAX_TEXT
from .exchange.local import (
    LOCAL_STATUS,
    LOCAL_TIMEOUT_SECONDS,
    LocalTransport,
    local_transport_of,
    served_here,
)
from .exchange.status import make_status
from .jobs import StagedJob
from .posting import NOT_NOW, answer_said, json_of, post, refusal_of
from .signing.agencykeys import AgencyKey, AgencyKeys

log = logging.getLogger("congvan.statuses")

# Answers after which the same message is posted again: "not now", and 401 (see above).
_NOT_NOW = NOT_NOW | {401}

Transport = Callable[[], httpx.BaseTransport | None]
_INBOX = "/v1/inbox"


class StatusNotSent(Exception):
    """The sender could not be reached or answered "not now": the job tries again."""


def status_url(inbox_url: str) -> str:
    """Where a peer takes status messages: ``/v1/status`` beside its ``/v1/inbox``."""
    base = inbox_url.split("?", 1)[0].rstrip("/")
    if not base.endswith(_INBOX):
        raise CongvanError(f"The inbox {inbox_url} does not end in {_INBOX}.")
    return base[: -len(_INBOX)] + "/v1/status"


@dataclass(frozen=True)
class Answered:
    """What the sender answered a status message: its HTTP status, and why if refused."""

    status: int
    text: str = ""


@dataclass(frozen=True)
class Notice:
    """One status message to sign and post."""

    received: Received
    message_id: str  # the package it answers: the document's, or a recall's or update's
    code: str
    description: str
    reason: str | None
    url: str
    timeout: float
    agency: AgencyKey  # valid at ``signed_at``
    at: datetime  # when the recipient did what the status reports
    signed_at: datetime  # the claim's moment: the message is signed as of now
    staff: str | None = None  # who did it (QCVN 102's StaffInfo)


class StatusSending(StagedJob[Notice]):
    """The ``send_status`` job."""

    def __init__(self, keys: AgencyKeys, transport: Transport = lambda: None) -> None:
        self.keys = keys
        self.transport = transport
        # This installation's own status route, for senders it serves (wired by bootstrap).
        self.local: LocalTransport = lambda: None
        # Where a status never given to its sender is told (wired by bootstrap).
        self.watch: StatusWatch | None = None

    @staticmethod
    def code_of(uow: UnitOfWork, payload: Mapping[str, Any]) -> str | None:
        """The QCVN 102 code the job's message says (15 or 16 for a request's answer)."""
        event = str(payload["event"])
        if payload.get("request_id") is not None:
            return ANSWER_CODE.get(event)
        return STATUS_CODE.get(RECEIVED_DOCUMENT.transition(event)[0].dest)

    def prepare(self, ctx: JobContext) -> Notice | None:
        uow = ctx.uow
        received = uow.received.get(str(ctx.job.document_id))
        if received is None:
            return None
        event = str(ctx.job.payload["event"])
        dest = RECEIVED_DOCUMENT.transition(event)[0].dest
        peer = uow.peers.get(received.sender_id)
        if peer is None and not served_here(uow, received.sender_id, ctx.now):
            raise CongvanError(f"No inbox is known for the sender {received.sender_id}.")
        message_id, code = received.message_id, STATUS_CODE[dest]
        description = RECEIVED_DOCUMENT.descriptions[dest]
        reason = received.reason or None if code == "02" else None
        request_id = ctx.job.payload.get("request_id")
        if request_id is not None:  # the answer to a recall or update (15 or 16)
            request = uow.received.request(str(request_id))
            if request is None:
                return None
            message_id, code = request.message_id, ANSWER_CODE[event]
            description = STATUS_LABEL[code]
            reason = request.answer_reason or None if code == "16" else None
        made = _made(uow, received.id, ctx.job.payload, event)
        return Notice(
            received=received,
            message_id=message_id,
            code=code,
            description=description,
            reason=reason,
            url=LOCAL_STATUS if peer is None else status_url(peer.inbox_url),
            timeout=LOCAL_TIMEOUT_SECONDS if peer is None else float(peer.timeout_seconds),
            agency=self.keys.require(uow, received.agency_id, ctx.now),
            at=made.at if made is not None else ctx.now,
            signed_at=ctx.now,
            staff=_staff(uow, received.agency_id, made.actor) if made is not None else None,
        )

    def act(self, work: Notice) -> Answered:
        received = work.received
        sealed = make_status(
            message_id=work.message_id,
            document_id=received.sender_document_id,
            to=received.sender_id,
            code=work.code,
            description=work.description,
            at=work.at,
            agency=work.agency,
            reason=work.reason,
            signed_at=work.signed_at,
            staff=work.staff,
        )
        body = {
            "status": base64.b64encode(sealed.body).decode(),
            "status_cms": base64.b64encode(sealed.cms).decode(),
        }
        transport = local_transport_of(self.local) if work.url == LOCAL_STATUS else self.transport()
        try:
            response = post(transport, work.url, timeout=work.timeout, json=body)
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise StatusNotSent(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status >= 500 or status in _NOT_NOW:
            raise StatusNotSent(answer_said(response))
        if status >= 400 and refusal_of(response) is None:  # a proxy's page, a wrong path
            said = answer_said(response)
            raise StatusNotSent(f"not a refusal by the peer (no reason given): {said}")
        if status < 400 and not _taken(response):
            # A redirect (http to https), a portal's 200 page: the status route never saw
            # it. Taken only when its answer says so; else it goes again.
            raise StatusNotSent(f"not the status route's answer: {answer_said(response)}")
        return Answered(status, printable(response.text[:300]))

    def record(self, ctx: JobContext, work: Notice, outcome: Any) -> None:
        assert isinstance(outcome, Answered)
        taken = outcome.status < 400
        log.log(
            logging.INFO if taken else logging.WARNING,
            "status message sent" if taken else "status message refused",
            extra={
                "action": "received.status",
                "document_id": work.received.id,
                "code": work.code,
                "http_status": outcome.status,
            },
        )
        if self.watch is None:
            return
        if taken:
            self.watch.status_given(ctx.uow, ctx.job.payload, work.received.id, work.code, ctx.now)
        else:  # the sender will never take it: it waits for a status that will not come
            self.watch.status_not_given(
                ctx.uow,
                received_id=work.received.id,
                code=work.code,
                job_id=ctx.job.id,
                error=f"{outcome.status}: {outcome.text}",
                now=ctx.now,
            )

    def failed(self, ctx: JobContext, error: str, *, final: bool) -> None:
        """The job gave up (its attempts spent): the sender will not hear of it from us."""
        received_id = ctx.job.document_id
        if not final or self.watch is None or received_id is None:
            return
        code = self.code_of(ctx.uow, ctx.job.payload)
        if code is not None:
            self.watch.status_not_given(
                ctx.uow,
                received_id=received_id,
                code=code,
                job_id=ctx.job.id,
                error=error,
                now=ctx.now,
            )


def _taken(response: httpx.Response) -> bool:
    """Whether a 2xx is the status route's answer: ``{"dispatch_id", "state", "new"}``."""
    if not 200 <= response.status_code < 300:
        return False
    try:
        answer = json_of(response)
    except ValueError:
        return False
    return (
        isinstance(answer, dict)
        and isinstance(answer.get("dispatch_id"), str)
        and isinstance(answer.get("state"), str)
    )


def _made(
    uow: UnitOfWork, received_id: str, payload: Mapping[str, Any], event: str
) -> AuditEvent | None:
    """The audit entry of the transition the status reports (by the version the job was
    queued at): a status sent late, after a retry, still says when the recipient
    registered or assigned it -- before it agreed to a recall, say -- and who did."""
    version = payload.get("version")
    found = [a for a in uow.audit.entries(received_id, event) if a.version == version]
    return found[0] if found else None


def _staff(uow: UnitOfWork, agency_id: str, actor: str) -> str | None:
    """Who did what a status reports, as QCVN 102's StaffInfo names them: the person's
    name and position among the agency's users (none for the system, or a user unnamed)."""
    username, at, agency = actor.rpartition("@")
    if not at or agency != agency_id:
        return None
    user = uow.agencies.user(agency_id, username)
    if user is None or not has_visible_text(user.full_name):
        return None
    named = ", ".join(t.strip() for t in (user.full_name, user.position) if has_visible_text(t))
    return unicodedata.normalize("NFC", named)[:MAX_TEXT]  # as the format has its text
