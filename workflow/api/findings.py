"""What was found about a document: review check results and a signature's verdict."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .outputs import DocumentSummary, Moment, Page
from .vocabulary import CheckStatus, CheckTally, Severity, SigningMode, TimeSource, TimestampStatus

# -- review checks -------------------------------------------------------------------------


class FileFinding(BaseModel):
    """One file a check found wrong, and what it found."""

    model_config = ConfigDict(extra="allow")

    filename: str
    role: str | None = None
    declared: str | None = Field(default=None, description="The media type given")
    detected: str | None = Field(default=None, description="The media type the bytes show")
    size: int | None = None
    problem: str | None = None


class CheckDetails(BaseModel):
    """What a check looked at. Which keys appear depends on the check and its outcome; every
    key a check of this server writes is named here, and a result stored by another version
    keeps any other key it has."""

    model_config = ConfigDict(extra="allow")

    field: str | None = Field(default=None, description="The document field at fault")
    value: str | int | None = Field(default=None, description="That field's value")
    expected: str | None = None
    allowed: list[str | int] | None = Field(default=None, description="The values accepted")
    length: int | None = None
    max_length: int | None = None
    max_bytes: int | None = None
    count: int | None = None
    total: int | None = Field(default=None, description="Bytes of every file together")
    filename: str | None = None
    files: list[str | FileFinding] | None = Field(
        default=None, description="Files at fault: names, or what was found in each"
    )
    digests: dict[str, str] | None = Field(default=None, description="SHA-256 by file name")
    pages: dict[str, int] | None = Field(default=None, description="Pages by file name")
    missing: list[str] | None = None
    malformed: list[str] | None = None
    unknown: list[str] | None = None
    notation: str | None = None
    numbering: str | None = Field(default=None, description="The agency's number series")
    earlier_document: str | None = None
    earlier_notation: str | None = None
    earlier_state: str | None = None
    organ_id: str | None = None
    name: str | None = None
    label: str | None = None
    signer: str | None = None
    doc_type: str | None = None
    on: str | None = Field(default=None, description="The date an authority was judged on")
    authority_id: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    head: str | None = Field(default=None, description="The head's title a deputy signs for")
    account: str | None = None
    document: str | None = None
    urgency: int | None = None
    today: str | None = None
    now: str | None = None
    latest: str | None = None
    error: str | None = Field(default=None, description="Why the check could not run")


class Message(BaseModel):
    vi: str
    en: str


class CheckResult(BaseModel):
    code: str = Field(description="The check's stable code, e.g. attachments.digest")
    revision: int
    severity: Severity
    status: CheckStatus
    cleared: bool = Field(description="Passed, or a failed warning a reviewer accepted")
    message: Message
    details: CheckDetails
    checked_at: Moment
    waived_by: str | None
    waived_at: Moment | None
    waive_reason: str | None


class ChecksOut(BaseModel):
    document_id: str
    version: int = Field(
        description="The document's version as these results were read: what approve (or "
        "waive) names as If-Match, as the ETag does"
    )
    revision: int
    submitted_revision: int | None
    results: list[CheckResult]
    pending: list[str] = Field(description="Codes of the checks not run on this revision yet")
    awaiting: Literal["submission", "checks"] | None = Field(
        description="What the pending checks wait for: the revision's submission (a draft "
        "never submitted, or edited since: no check runs until it is submitted), the checks "
        "themselves (under way), or nothing (every check ran)"
    )
    cleared: bool = Field(
        description="Every check of the revision in review ran and is cleared: it may be approved"
    )


class CheckCounts(BaseModel):
    counts: dict[CheckTally, int]
    pending: list[str]
    ready_to_approve: bool


class QueueItem(DocumentSummary):
    revision: int
    checks: CheckCounts


class QueuePage(Page):
    items: list[QueueItem]


# -- signatures ----------------------------------------------------------------------------


class ManifestFile(BaseModel):
    role: str
    filename: str
    media_type: str
    size: int
    sha256: str


class Manifest(BaseModel):
    """What a signer signs: a revision's metadata, recipients and files, as RFC 8785 JSON."""

    format: Literal["congvan-manifest/1"]
    document_id: str
    revision: int
    agency_id: str
    number: int | None
    symbol: str | None
    doc_type: str | None
    subject: str | None
    place: str | None
    issued_on: str | None = Field(description="ISO date")
    signer_name: str | None
    signer_position: str | None
    signer_competence: str | None
    urgency: int | None
    due_date: str | None = Field(description="ISO date")
    appointed_at: str | None = Field(
        default=None, description="Present only for a hỏa tốc hẹn giờ document"
    )
    legal_normative: Literal[True] | None = Field(
        default=None, description="Present, and true, only for a legal normative document"
    )
    recipients: list[str] = Field(description="The recipients' electronic identifiers")
    attachments: list[ManifestFile]


class Timestamp(BaseModel):
    status: TimestampStatus
    source: str | None = None
    time: Moment | None = None
    authority: str | None = None
    error: str | None = None
    attempts: int | None = None


class CertificateSubject(BaseModel):
    """Who the signer's certificate names, and for how long it is valid.

    ``CertificateDescription.as_dict()`` (congvan.states.certificates), field by field.
    """

    model_config = ConfigDict(extra="allow")

    common_name: str
    title: str
    organization: str
    organizational_unit: str = Field(description="The agency id (mã định danh)")
    user_id: str
    serial_number: str = Field(description="Hexadecimal")
    issuer: str
    sha256: str = Field(description="SHA-256 fingerprint of the certificate (DER), hex")
    not_before: Moment
    not_after: Moment
    profile: str | None = Field(default=None, description="The certificate's kind (profile)")
    key_usage: list[str] = Field(
        default_factory=list, description="RFC 5280 key usages, e.g. non_repudiation"
    )
    is_ca: bool = Field(default=False, description="A certification authority's certificate")


class LaterRevocation(BaseModel):
    """A certificate of the path revoked after the signature was judged."""

    serial_number: str
    subject: str
    revoked_at: Moment
    reason: str | None


class Verified(BaseModel):
    """The signature verifies; each point checked."""

    ok: Literal[True]
    intact: bool = Field(description="The message digest matches the manifest")
    valid: bool = Field(description="The signature verifies with the certificate's key")
    trusted: bool = Field(description="The certificate chains to a pinned root")
    not_revoked: bool
    key_usage_ok: bool
    valid_at_signing_time: bool
    signer_matches: bool | None = Field(description="null when no signer was expected")
    signing_time: Moment
    checked_at: Moment
    signer: CertificateSubject
    later_revocation: LaterRevocation | None
    timestamp: Moment | None
    timestamp_authority: str | None
    time_source: TimeSource


class NotVerified(BaseModel):
    """The signature does not verify (now): the error, as an error body would carry it."""

    ok: Literal[False]
    code: str = Field(description="Stable, e.g. certificate_revoked")
    message: str
    details: dict[str, object]


class SignatureOut(BaseModel):
    document_id: str
    revision: int
    mode: SigningMode
    signer: str
    manifest_sha256: str
    certificate: str
    signed_pdf_sha256: str | None
    signing_time: Moment
    current_revision: int
    timestamp: Timestamp
    # Told apart by ``ok`` (true or false); not an OpenAPI discriminator, whose mapping
    # keys are strings.
    verdict: Verified | NotVerified = Field(description="ok, and each point checked (or the error)")
