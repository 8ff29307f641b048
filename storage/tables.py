"""The SQLModel tables: the single source of truth for every document and job.

One module for every table on purpose (over 400 lines): alembic's autogenerate and the
migration test compare the whole schema against this one declaration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    select,
    text,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

from congvan.states.policy import EXCHANGE_ID_MAX_LENGTH


class UtcDateTime(TypeDecorator[datetime]):
    """A moment with its time zone, written as UTC: SQLite keeps no offset, so a moment
    given in Vietnam time (deadlines are) would otherwise be read back seven hours off."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value


def _ts(**kwargs: object) -> Column[datetime]:
    return Column(UtcDateTime(), **kwargs)  # type: ignore[arg-type]


class Agency(SQLModel, table=True):
    """A state agency, named by its electronic identifier (mã định danh)."""

    __tablename__ = "agencies"

    id: str = Field(primary_key=True, max_length=35)
    name: str = Field(max_length=300)
    abbreviation: str = Field(max_length=30)
    # states.policy.NUMBERING: one number series for all documents (Decree 30 Art. 15)
    # or one per symbol.
    numbering: str = Field(
        default="agency", max_length=10, sa_column_kwargs={"server_default": "agency"}
    )
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class Peer(SQLModel, table=True):
    """Where an agency served by another congvan instance takes deliveries: its inbox."""

    __tablename__ = "peers"

    agency_id: str = Field(primary_key=True, foreign_key="agencies.id", max_length=35)
    inbox_url: str = Field(max_length=2000)
    transport: str = Field(default="http", max_length=20)  # states.policy.PEER_TRANSPORTS
    timeout_seconds: int
    max_concurrency: int
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class User(SQLModel, table=True):
    """A person or back-office system acting for one agency."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("agency_id", "username"),)

    id: str = Field(primary_key=True, max_length=36)
    agency_id: str = Field(foreign_key="agencies.id", index=True, max_length=35)
    username: str = Field(max_length=100)
    full_name: str = Field(default="", max_length=200)
    position: str = Field(default="", max_length=200)
    roles: str = Field(max_length=200)  # comma-separated, from states.policy.ROLES
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class ApiToken(SQLModel, table=True):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: str = Field(primary_key=True, max_length=36)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=36)
    token_hash: str = Field(unique=True, max_length=64)
    prefix: str = Field(max_length=16)
    # comma-separated: the roles it was created with; it acts with those its user holds
    roles: str = Field(max_length=200, sa_column_kwargs={"server_default": ""})
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


# What storage/stalls.py lists as waiting: neither acknowledged, recalled nor replaced.
_UNFINISHED = "state NOT IN ('acknowledged', 'recalled', 'replaced')"


class Document(SQLModel, table=True):
    """An outgoing official document and where it stands in its lifecycle."""

    __tablename__ = "documents"
    __table_args__ = (
        # A list of one state, newest first, reads that page only.
        Index("ix_documents_agency_state", "agency_id", "state", "id"),
        Index("ix_documents_agency_id_order", "agency_id", "id"),
        Index("ix_documents_agency_updated", "agency_id", "updated_at"),
        # Review and send look for an earlier document holding the number (duplicates.py).
        Index("ix_documents_agency_number", "agency_id", "number", "id"),
        # Documents still waiting for something, the longest idle first (storage/stalls.py).
        Index(
            "ix_documents_unfinished",
            "agency_id",
            "updated_at",
            "id",
            sqlite_where=text(_UNFINISHED),
            postgresql_where=text(_UNFINISHED),
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    agency_id: str = Field(foreign_key="agencies.id", max_length=35)
    number: int | None = Field(default=None)
    symbol: str = Field(default="", max_length=50)
    doc_type: str = Field(max_length=50)
    # A legal normative document (văn bản quy phạm pháp luật): numbered in its type's own
    # series and written with its year, 05/2024/QĐ-UBND (states.policy.number_series).
    legal_normative: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    subject: str = Field(max_length=1000)
    place: str = Field(default="", max_length=100)
    issued_on: str | None = Field(default=None, max_length=10)  # ISO date
    content: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    signer_name: str = Field(default="", max_length=200)
    signer_position: str = Field(default="", max_length=200)
    signer_competence: str = Field(default="", max_length=200)
    urgency: int = Field(default=0)
    secrecy: str = Field(default="", max_length=20)
    due_date: str | None = Field(default=None, max_length=10)
    appointed_at: str | None = Field(default=None, max_length=32)
    signer_user: str = Field(  # username of the signer
        default="", max_length=100, sa_column_kwargs={"server_default": ""}
    )
    # A replacement (thay thế): the document it replaces, and why.
    replaces_id: str | None = Field(default=None, max_length=36, index=True)
    replace_reason: str = Field(
        default="", max_length=2000, sa_column_kwargs={"server_default": ""}
    )
    state: str = Field(max_length=20)
    version: int = Field(default=1)
    # Bumped by every edit and every submission: check results name the revision they
    # checked, so neither an edit nor a new review round can reuse older results.
    revision: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # The revision sent for review; cleared when a reviewer returns the document.
    submitted_revision: int | None = Field(default=None)
    audit_head: str = Field(max_length=64)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class Recipient(SQLModel, table=True):
    """An agency the document is addressed to (Nơi nhận)."""

    __tablename__ = "recipients"
    __table_args__ = (UniqueConstraint("document_id", "organ_id"),)

    id: int | None = Field(default=None, primary_key=True)
    document_id: str = Field(foreign_key="documents.id", index=True, max_length=36)
    organ_id: str = Field(max_length=35)
    name: str = Field(default="", max_length=300)
    position: int = Field(default=0)


class Blob(SQLModel, table=True):
    """File content, addressed by its SHA-256 and stored once."""

    __tablename__ = "blobs"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Attachment(SQLModel, table=True):
    """A file of a document: the main file or an appendix."""

    __tablename__ = "attachments"
    # Every send asks whether its main file went out before (storage/duplicates.py).
    __table_args__ = (Index("ix_attachments_sha256_role", "sha256", "role"),)

    id: int | None = Field(default=None, primary_key=True)
    document_id: str = Field(foreign_key="documents.id", index=True, max_length=36)
    sha256: str = Field(foreign_key="blobs.sha256", max_length=64)
    filename: str = Field(max_length=255)
    media_type: str = Field(max_length=100)
    size: int
    role: str = Field(max_length=20)  # main | appendix
    position: int = Field(default=0)


class Dispatch(SQLModel, table=True):
    """The sending of one document to one recipient."""

    __tablename__ = "dispatches"
    __table_args__ = (
        # One sending of the document per recipient, and one per recipient of each recall
        # or update request (its ``request_id``; "" for the sending itself).
        UniqueConstraint(
            "document_id", "organ_id", "request_id", name="uq_dispatches_document_organ_request"
        ),
        # Deliveries in flight to a peer, counted at every claim (actions/delivery.py).
        Index("ix_dispatches_organ_posting", "organ_id", "posting_until"),
    )

    id: str = Field(primary_key=True, max_length=36)
    document_id: str = Field(foreign_key="documents.id", index=True, max_length=36)
    organ_id: str = Field(max_length=35)
    state: str = Field(max_length=20)
    attempts: int = Field(default=0)
    last_error: str = Field(default="", max_length=1000)
    updated_at: datetime = Field(sa_column=_ts(nullable=False))
    # The package's message id (stable for the dispatch's life: a retry after an unknown
    # outcome is deduplicated by the receiver), its package.json and the agency's
    # signature over it, sealed at send; the signed receipt once it arrived.
    message_id: str | None = Field(default=None, unique=True, max_length=100)
    header: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    header_cms: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    receipt: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    receipt_cms: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # While an attempt is under way: the end of its job's lease (a dead worker's attempt
    # stops counting against the peer's concurrency then); null otherwise.
    posting_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # The recall or update request (QCVN 102 business type 1 or 2) this dispatch carries
    # to its recipient; "" for the document's own sending.
    request_id: str = Field(default="", max_length=36, sa_column_kwargs={"server_default": ""})


class DispatchAttempt(SQLModel, table=True):
    """One attempt to deliver a dispatch: when, how it ended, what the peer answered."""

    __tablename__ = "dispatch_attempts"
    __table_args__ = (UniqueConstraint("dispatch_id", "attempt"),)

    id: int | None = Field(default=None, primary_key=True)
    dispatch_id: str = Field(foreign_key="dispatches.id", max_length=36)
    attempt: int
    started_at: datetime = Field(sa_column=_ts(nullable=False))
    finished_at: datetime = Field(sa_column=_ts(nullable=False))
    # delivered | refused | transient | unknown (sent, answer lost) | bad_receipt
    outcome: str = Field(max_length=20)
    http_status: int | None = Field(default=None)
    latency_ms: int = Field(default=0)
    error: str = Field(default="", max_length=1000)


class DispatchStatus(SQLModel, table=True):
    """A signed status message a recipient sent about a dispatch (QCVN 102 codes 02–06)."""

    __tablename__ = "dispatch_statuses"
    __table_args__ = (UniqueConstraint("dispatch_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    dispatch_id: str = Field(foreign_key="dispatches.id", max_length=36)
    code: str = Field(max_length=2)
    reason: str = Field(default="", max_length=2000)
    at: datetime = Field(sa_column=_ts(nullable=False))  # as the recipient signed it
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    cms: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = Field(sa_column=_ts(nullable=False))


class ReceivedDocument(SQLModel, table=True):
    """A document another agency sent to one of ours, with its own state and audit chain.

    Stored once per (receiving agency, sender, message id): the same package delivered
    again finds this row and is answered with the same receipt. And once per sender's
    document: the same document under another message id is refused.
    """

    __tablename__ = "received_documents"
    __table_args__ = (
        UniqueConstraint("agency_id", "sender_id", "message_id"),
        UniqueConstraint("agency_id", "register_year", "register_number"),
        Index("ix_received_agency_state", "agency_id", "state", "id"),
        Index("ix_received_agency_id_order", "agency_id", "id"),  # the clerks' list, by page
        # A sender's document is received once (its repeats are refused: domain.md §8).
        Index(
            "ux_received_sender_document",
            "agency_id",
            "sender_id",
            "sender_document_id",
            unique=True,
        ),
        Index("ix_received_sender_number", "agency_id", "sender_id", "number"),
    )

    id: str = Field(primary_key=True, max_length=36)
    agency_id: str = Field(foreign_key="agencies.id", max_length=35)
    sender_id: str = Field(max_length=35)
    # The sender's identifiers, as long as the exchange formats let them be.
    message_id: str = Field(max_length=EXCHANGE_ID_MAX_LENGTH)
    state: str = Field(max_length=20)
    version: int
    audit_head: str = Field(max_length=64)
    urgency: int = Field(default=0)
    # What the sender's signed manifest says (kept whole in ``manifest``).
    sender_document_id: str = Field(max_length=EXCHANGE_ID_MAX_LENGTH)
    number: int | None = Field(default=None)
    symbol: str = Field(default="", max_length=50)
    doc_type: str = Field(default="", max_length=50)  # as states.fields has it
    subject: str = Field(default="", max_length=1000)
    issued_on: str = Field(default="", max_length=10)
    manifest: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    manifest_sha256: str = Field(max_length=64)
    # The package as it arrived (a blob) and the receipt it was answered with.
    package_sha256: str = Field(max_length=64)
    receipt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    receipt_cms: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The incoming register (sổ văn bản đến): a number per agency per year, once registered.
    register_year: int | None = Field(default=None)
    register_number: int | None = Field(default=None)
    reason: str = Field(default="", max_length=2000)
    received_at: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))
    # A replacement (business type 3): the received document it replaces.
    replaces_id: str | None = Field(default=None, max_length=36, index=True)
    # Metadata corrected by updates our clerk agreed to (JSON object, field → value).
    corrections: str = Field(
        default="{}", sa_column=Column(Text, nullable=False, default="{}", server_default="{}")
    )


class ReceivedRequest(SQLModel, table=True):
    """A sender's request to recall or correct a document it sent us (business type 1, 2).

    Kept once per package (its message id); our clerk answers it, agreeing (15) or
    refusing (16) with a reason.
    """

    __tablename__ = "received_requests"
    __table_args__ = (
        UniqueConstraint("received_id", "message_id"),
        # Every arrival asks whether its message id brought a request (workflow/inbox.py).
        Index("ix_received_requests_message", "message_id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    received_id: str = Field(foreign_key="received_documents.id", index=True, max_length=36)
    kind: str = Field(max_length=10)  # recall | update
    message_id: str = Field(max_length=EXCHANGE_ID_MAX_LENGTH)  # the sender's
    reason: str = Field(max_length=2000)
    changes: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    # awaiting | agreed | refused
    state: str = Field(max_length=10)
    answer_reason: str = Field(default="", max_length=2000)
    package_sha256: str = Field(max_length=64)
    receipt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    receipt_cms: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = Field(sa_column=_ts(nullable=False))
    answered_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class EscalationRow(SQLModel, table=True):
    """A warning someone owns (states/escalation.py), with its own state and audit chain.

    ``active_key`` is its cause (kind and subject) while it is open, claimed or snoozed and
    NULL once it is resolved or closed: unique, so one cause never opens two at a time.
    """

    __tablename__ = "escalations"
    __table_args__ = (
        UniqueConstraint("active_key"),
        Index("ix_escalations_agency_state", "agency_id", "state", "opened_at"),
        Index("ix_escalations_document", "document_id"),
        Index("ix_escalations_received", "received_id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    agency_id: str = Field(foreign_key="agencies.id", max_length=35)
    kind: str = Field(max_length=40)
    cause: str = Field(max_length=120)
    active_key: str | None = Field(default=None, max_length=120)
    state: str = Field(max_length=20)
    version: int
    audit_head: str = Field(max_length=64)
    severity: str = Field(max_length=10)
    level: int = Field(default=1)
    urgency: int = Field(default=0)
    document_id: str | None = Field(default=None, max_length=36)
    dispatch_id: str | None = Field(default=None, max_length=36)
    received_id: str | None = Field(default=None, max_length=36)
    organ_id: str = Field(default="", max_length=35)
    owner: str = Field(default="", max_length=200)
    # When it was due (the broken rule's deadline), when it rises to the next level.
    due_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    rise_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    snoozed_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    outcome: str = Field(default="", max_length=40)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    opened_at: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class AgencyTimeRules(SQLModel, table=True):
    """An agency's own time rules: tighter than the province's (states/deadlines.py)."""

    __tablename__ = "agency_time_rules"

    agency_id: str = Field(foreign_key="agencies.id", primary_key=True, max_length=35)
    rules: str = Field(sa_column=Column(Text, nullable=False))
    updated_by: str = Field(max_length=200)
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class AuditEntry(SQLModel, table=True):
    """One link of a document's hash chain; never updated, never deleted."""

    __tablename__ = "audit_entries"
    __table_args__ = (UniqueConstraint("document_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    document_id: str = Field(max_length=36)
    version: int
    actor: str = Field(max_length=200)
    event: str = Field(max_length=50)
    from_state: str = Field(default="", max_length=20)
    to_state: str = Field(max_length=20)
    at: datetime = Field(sa_column=_ts(nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    payload_digest: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class OutboxJob(SQLModel, table=True):
    """A job written in a transition's transaction, relayed to the broker after commit."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_created", "status", "created_at"),)

    id: str = Field(primary_key=True, max_length=36)
    action: str = Field(max_length=100)
    document_id: str | None = Field(default=None, index=True, max_length=36)
    # The agency whose work it is (None: the installation's, such as anchors and CRLs).
    agency_id: str | None = Field(default=None, max_length=35)
    queue: str = Field(default="default", max_length=50)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=20)  # one of storage.outbox.STATUSES
    attempts: int = Field(default=0)
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    enqueued_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    done_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # While running: the worker that claimed it owns it until then (its deadline timer is
    # due at the same moment and re-drives it if the worker never records an outcome).
    lease_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Timer(SQLModel, table=True):
    """Something to do at ``due_at``; deleted when it fires or is cancelled."""

    __tablename__ = "timers"
    # Due timers are taken by (parked_at IS NULL, due_at): parked ones never slow a tick.
    __table_args__ = (
        Index("ix_timers_due", "parked_at", "due_at"),
        Index("ix_timers_ref", "kind", "ref_id"),
        # What a document waits for (its explanation) without reading every timer.
        Index("ix_timers_document", "document_id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=50)
    ref_id: str = Field(max_length=36)
    document_id: str | None = Field(default=None, max_length=36)
    # The agency whose work it is (None: the installation's, such as anchors and CRLs).
    agency_id: str | None = Field(default=None, max_length=35)
    due_at: datetime = Field(sa_column=_ts(nullable=False))
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    # Failed firings: counted, the last error kept, and parked (never taken again until an
    # operator retries it) after the scheduler's limit.
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    parked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class IdempotentRequest(SQLModel, table=True):
    """The first answer given to a request carrying an Idempotency-Key."""

    __tablename__ = "idempotent_requests"

    agency_id: str = Field(primary_key=True, max_length=35)
    key: str = Field(primary_key=True, max_length=200)
    fingerprint: str = Field(max_length=64)
    status_code: int
    response: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class CheckResult(SQLModel, table=True):
    """The outcome of one review check on one revision of a document."""

    __tablename__ = "check_results"
    __table_args__ = (UniqueConstraint("document_id", "revision", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    document_id: str = Field(foreign_key="documents.id", index=True, max_length=36)
    revision: int
    code: str = Field(max_length=60)
    severity: str = Field(max_length=10)  # blocking | warning
    status: str = Field(max_length=10)  # passed | failed | error
    message_vi: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    message_en: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    details: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    checked_at: datetime = Field(sa_column=_ts(nullable=False))
    waived_by: str = Field(default="", max_length=200)
    waived_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    waive_reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class SigningAuthority(SQLModel, table=True):
    """A signer's authority to sign for an agency, for some document types, for a time."""

    __tablename__ = "signing_authorities"
    __table_args__ = (Index("ix_authorities_agency_signer", "agency_id", "signer"),)

    id: str = Field(primary_key=True, max_length=36)
    agency_id: str = Field(foreign_key="agencies.id", max_length=35)
    signer: str = Field(max_length=100)  # username in that agency
    doc_types: str = Field(default="*", max_length=500)  # comma-separated, or *
    competence: str = Field(default="", max_length=200)  # e.g. KT. CHỦ TỊCH
    valid_from: str = Field(max_length=10)  # ISO dates, inclusive
    valid_until: str | None = Field(default=None, max_length=10)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Certificate(SQLModel, table=True):
    """An X.509 certificate: a trusted root, an agency's, or a signer's (with its key)."""

    __tablename__ = "certificates"
    __table_args__ = (Index("ix_certificates_owner", "agency_id", "username", "kind"),)

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=10)  # root | agency | signer
    agency_id: str | None = Field(default=None, max_length=35)
    username: str | None = Field(default=None, max_length=100)
    fingerprint: str = Field(unique=True, max_length=64)  # SHA-256 of the DER
    serial: str = Field(max_length=64)  # hex
    subject: str = Field(sa_column=Column(Text, nullable=False))  # JSON description
    cert_pem: str = Field(sa_column=Column(Text, nullable=False))
    # Encrypted PKCS#8; empty when the key lives elsewhere (a USB token).
    key_pem: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    not_before: datetime = Field(sa_column=_ts(nullable=False))
    not_after: datetime = Field(sa_column=_ts(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revocation_reason: str = Field(default="", max_length=40)
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class RevocationList(SQLModel, table=True):
    """A CRL published by one of our certification authorities, newest number wins."""

    __tablename__ = "revocation_lists"
    __table_args__ = (UniqueConstraint("issuer_fingerprint", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    issuer_fingerprint: str = Field(max_length=64)
    number: int
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    this_update: datetime = Field(sa_column=_ts(nullable=False))
    next_update: datetime = Field(sa_column=_ts(nullable=False))


class Signature(SQLModel, table=True):
    """A detached CMS signature over one revision's manifest."""

    __tablename__ = "signatures"

    id: str = Field(primary_key=True, max_length=36)
    document_id: str = Field(foreign_key="documents.id", index=True, max_length=36)
    revision: int
    manifest: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    manifest_sha256: str = Field(max_length=64)
    cms: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    mode: str = Field(max_length=10)  # server | upload
    signer: str = Field(max_length=200)
    certificate_fingerprint: str = Field(max_length=64)
    signing_time: datetime = Field(sa_column=_ts(nullable=False))
    # The main PDF with a visible PAdES signature (a blob), when the server signed it.
    signed_pdf_sha256: str = Field(
        default="", max_length=64, sa_column_kwargs={"server_default": ""}
    )
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class AuditAnchor(SQLModel, table=True):
    """The heads of an agency's audit chains at one moment, signed with its organisational key.

    Anchors form their own chain per agency (``seq`` and ``previous``); see
    ``actions/anchoring.py``.
    """

    __tablename__ = "audit_anchors"
    __table_args__ = (UniqueConstraint("agency_id", "seq"),)

    id: str = Field(primary_key=True, max_length=36)
    agency_id: str = Field(foreign_key="agencies.id", max_length=35)
    seq: int
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # canonical JSON
    body_sha256: str = Field(max_length=64)
    cms: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    certificate_fingerprint: str = Field(max_length=64)
    heads: int  # how many document heads the body lists


class Timestamp(SQLModel, table=True):
    """An RFC 3161 timestamp token over a signature's or an anchor's signature value.

    Its own row, not a column of the signature or anchor: those keep the bytes that were
    accepted (and that the audit trail hashes) and are never updated, while a token
    arrives later from outside and its request may fail; ``status`` is pending, stamped
    or unavailable (no row: none was asked for).
    """

    __tablename__ = "timestamps"
    __table_args__ = (UniqueConstraint("subject", "subject_id"),)

    id: str = Field(primary_key=True, max_length=36)
    subject: str = Field(max_length=10)  # signature | anchor
    subject_id: str = Field(max_length=36)
    status: str = Field(max_length=12)  # pending | stamped | unavailable
    source: str = Field(max_length=10)  # tsa (asked after commit) | embedded (uploaded)
    token: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    authority: str = Field(default="", max_length=300)
    gen_time: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    attempts: int = Field(default=0)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class NotificationRoute(SQLModel, table=True):
    """Who an agency notifies of what: a kind of escalation (or ``*``) to a channel's target.

    A webhook's secret signs every body posted to it; it is never shown or logged.
    """

    __tablename__ = "notification_routes"
    __table_args__ = (
        UniqueConstraint("agency_id", "kind", "channel", "target"),
        Index("ix_notification_routes_match", "agency_id", "kind"),
    )

    id: str = Field(primary_key=True, max_length=36)
    agency_id: str = Field(foreign_key="agencies.id", max_length=35)
    kind: str = Field(max_length=30)  # states.vocabulary.ESCALATION_KINDS or "*"
    channel: str = Field(max_length=10)  # webhook | email
    target: str = Field(max_length=2000)  # the URL or the e-mail address
    secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    enabled: bool = Field(default=True)
    created_by: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class Notification(SQLModel, table=True):
    """One message to one route's target, rendered when it was queued; retried until sent
    or dead (then listed for operators)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_agency_state", "agency_id", "state", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    agency_id: str = Field(foreign_key="agencies.id", max_length=35)
    route_id: str = Field(max_length=36)  # the route may be removed later: no foreign key
    kind: str = Field(max_length=30)
    channel: str = Field(max_length=10)
    target: str = Field(max_length=2000)
    escalation_id: str = Field(default="", max_length=36)
    document_id: str | None = Field(default=None, max_length=36)
    # The rendered message (states of the document as they were when it was queued).
    content: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(max_length=12)  # states.vocabulary.NOTIFICATION_STATES
    job_id: str = Field(max_length=36)  # the outbox job now carrying it
    attempts: int = Field(default=0)
    last_error: str = Field(default="", max_length=1000)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class NotificationAttempt(SQLModel, table=True):
    """One attempt to send a notification: when, how it ended, what the other side said."""

    __tablename__ = "notification_attempts"
    __table_args__ = (UniqueConstraint("notification_id", "attempt"),)

    id: int | None = Field(default=None, primary_key=True)
    notification_id: str = Field(foreign_key="notifications.id", max_length=36)
    attempt: int
    started_at: datetime = Field(sa_column=_ts(nullable=False))
    finished_at: datetime = Field(sa_column=_ts(nullable=False))
    outcome: str = Field(max_length=12)  # states.vocabulary.ATTEMPT_OUTCOMES
    status: int | None = Field(default=None)  # the HTTP status or the SMTP reply code
    error: str = Field(default="", max_length=1000)


metadata = SQLModel.metadata


def chain_tables() -> tuple[Any, ...]:
    """The tables whose rows head an audit chain: outgoing and received documents, and
    escalations."""
    return (
        Document.__table__,  # type: ignore[attr-defined]
        ReceivedDocument.__table__,  # type: ignore[attr-defined]
        EscalationRow.__table__,  # type: ignore[attr-defined]
    )


def chain_heads() -> Any:
    """Every audit chain's head (id, agency_id, version, audit_head, updated_at), as one
    selectable over :func:`chain_tables`."""
    columns = ("id", "agency_id", "version", "audit_head", "updated_at")
    return union_all(*(select(*[t.c[c] for c in columns]) for t in chain_tables())).subquery(
        "chain_heads"
    )
