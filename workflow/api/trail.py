"""The audit trail as the API shows it: one entry model per kind of event, told by ``event``.

Each kind names what its payload holds, as the code that records it writes it. A payload
also keeps any other key it was recorded with (``additionalProperties``): entries are
hash-chained and never rewritten, so the API shows them whole rather than trimmed to
today's model.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from congvan.states import DISPATCH, DOCUMENT

from .outputs import Moment, Page, SigningTimeliness
from .vocabulary import DispatchState, DocumentState, SigningMode

# Events whose payload has a model of its own; every other document event records at
# most a reason.
_OWN_PAYLOAD = ("edit", "submit", "waive", "sign", "send", "resend")
_PLAIN = tuple(e for e in DOCUMENT.events if e not in _OWN_PAYLOAD)
_DISPATCH = tuple(f"dispatch.{e}" for e in DISPATCH.events)


def _literal(*values: str) -> Any:
    return Literal[values]  # Literal["a", "b", ...] from values known at import


if TYPE_CHECKING:
    PlainEvent: TypeAlias = str
    DispatchEvent: TypeAlias = str
else:
    PlainEvent = _literal(*_PLAIN)
    DispatchEvent = _literal(*_DISPATCH)


class Payload(BaseModel):
    """What an entry records besides who, when and which states; a reason when one was given."""

    model_config = ConfigDict(extra="allow")

    reason: str | None = Field(default=None, description="Present when the event gave one")


class RecordedFields(BaseModel):
    """The metadata a draft was created with, as given (dates as ISO dates)."""

    model_config = ConfigDict(extra="allow")

    number: int | None = None
    symbol: str | None = None
    doc_type: str | None = None
    legal_normative: bool | None = None
    subject: str | None = None
    place: str | None = None
    issued_on: date | None = None
    content: str | None = None
    signer_name: str | None = None
    signer_position: str | None = None
    signer_competence: str | None = None
    signer_user: str | None = None
    urgency: int | None = None
    secrecy: str | None = None
    due_date: date | None = None
    appointed_at: datetime | None = None


class RecordedFile(BaseModel):
    sha256: str
    filename: str
    role: str = Field(description="main or appendix")


class CreatePayload(Payload):
    fields: RecordedFields
    recipients: list[str] = Field(description="The recipients' electronic identifiers")
    files: list[RecordedFile]


class EditPayload(Payload):
    changed: list[str] = Field(description="The fields whose value changed")
    revision: int = Field(description="The revision the edit opened")
    recipients: list[str] | None = Field(
        default=None, description="The new recipients, when they were replaced"
    )


class SubmitPayload(Payload):
    revision: int = Field(description="The revision sent for review")


class WaivePayload(Payload):
    code: str = Field(description="The warning check accepted")
    revision: int


class SignPayload(Payload):
    signature_id: str
    cms_sha256: str
    mode: SigningMode
    manifest_sha256: str
    certificate: str = Field(description="SHA-256 fingerprint of the signer's certificate")
    signer: str = Field(description="The certificate's common name")
    timeliness: SigningTimeliness | None = Field(
        default=None, description="How timely the signing was, judged when it was signed"
    )
    # Kept by signings recorded before the whole judgment was (entries are never rewritten).
    send_by: Moment | None = Field(
        default=None, description="Older entries: when it had to go out at the latest"
    )
    late: Moment | None = Field(
        default=None, description="Older entries: present when its own date called for earlier"
    )
    timestamp: Moment | Literal["requested"] | None = Field(
        default=None,
        description="The token's time, or 'requested' when the authority is asked after commit",
    )
    signed_pdf_sha256: str | None = Field(default=None, description="With a signed PDF")


class SendPayload(Payload):
    dispatches: dict[str, str] = Field(description="Each recipient's dispatch id, by organ_id")


class ResendPayload(Payload):
    resent_to: list[str] = Field(description="The recipients sent to again")


class DispatchPayload(Payload):
    dispatch_id: str
    organ_id: str


class _Entry(BaseModel):
    version: int
    actor: str
    at: Moment
    hash: str = Field(description="SHA-256 of this entry and the hash before it")


class _DocumentEntry(_Entry):
    from_state: DocumentState
    to_state: DocumentState


class CreateEntry(_Entry):
    event: Literal["create"]
    from_state: Literal[""] = Field(description="Empty: nothing came before")
    to_state: DocumentState
    payload: CreatePayload


class EditEntry(_DocumentEntry):
    event: Literal["edit"]
    payload: EditPayload


class SubmitEntry(_DocumentEntry):
    event: Literal["submit"]
    payload: SubmitPayload


class WaiveEntry(_DocumentEntry):
    event: Literal["waive"]
    payload: WaivePayload


class SignEntry(_DocumentEntry):
    event: Literal["sign"]
    payload: SignPayload


class SendEntry(_DocumentEntry):
    event: Literal["send"]
    payload: SendPayload


class ResendEntry(_DocumentEntry):
    event: Literal["resend"]
    payload: ResendPayload


class PlainEntry(_DocumentEntry):
    """A document event that records at most a reason (approve, reject, the derived ones)."""

    event: PlainEvent
    payload: Payload


class DispatchEntry(_Entry):
    """An event of one recipient's dispatch; its states are the dispatch's."""

    event: DispatchEvent
    from_state: DispatchState
    to_state: DispatchState
    payload: DispatchPayload


HistoryEntry = Annotated[
    CreateEntry
    | EditEntry
    | SubmitEntry
    | WaiveEntry
    | SignEntry
    | SendEntry
    | ResendEntry
    | PlainEntry
    | DispatchEntry,
    Field(discriminator="event"),
]


class HistoryPage(Page):
    document_id: str
    items: list[HistoryEntry]
