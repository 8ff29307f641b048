"""Format ``congvan-status/1``: the receiving agency's signed word on what became of a package.

After the receipt (status 01), the receiver tells the sender each step of QCVN 102's
status codes (domain.md §3), as RFC 8785 canonical JSON under a detached CMS made with
the receiving agency's organisational key (``envelope``):

    02  refused / returned (từ chối tiếp nhận): ``reason`` says why
    03  received and registered (đã tiếp nhận, vào sổ)
    04  assigned for handling (phân công)
    05  being processed (đang xử lý)
    06  completed (hoàn thành)

Members, all present:

``format``       ``"congvan-status/1"``.
``message_id``   The ``message_id`` of the package the status is about.
``document_id``  The sender's document id (the package's ``document_id``).
``from``         The organ id of the receiving agency, which signs.
``to``           The organ id of the sending agency.
``code``         ``"02"`` to ``"06"``, or the answer to a recall or an update (package
                 business type ``recall``/``update``): ``"15"`` agrees, ``"16"`` refuses.
                 01 travels as a receipt (``receipts``); 13 (take-back) is reserved:
                 refused as ``format_unsupported``.
``description``  Text for people (1 to 2000 characters). Text members are in Unicode NFC
                 (normalised before signing: a signed message cannot be after).
``reason``       Why it was refused: text, required for 02 and 16; text or ``null``
                 otherwise.
``staff``        Who acted (``"Nguyễn Thị Lan, văn thư"``), or ``null``.
``at``           When it happened, ISO 8601 in UTC.

Example (one line in reality, wrapped here)::

    {"at":"2021-02-06T03:40:00+00:00","code":"03","description":"Đã vào sổ văn bản đến",
    "document_id":"doc-1","format":"congvan-status/1","from":"000.00.11.H57",
    "message_id":"dispatch-7f3a","reason":null,"staff":"Nguyễn Thị Lan",
    "to":"000.00.00.H57"}

``verify_status``, on the sending side, refuses in this order:

    not canonical, another format, a member      MessageMalformed / FormatUnsupported
    missing, extra or mistyped, a code not       (status_code, status_code_reserved,
    02–06, 15, 16; 02 or 16 without a reason     member)
    the signature does not verify with an        AgencySignatureInvalid (401), reason = the
    agency certificate we trust                  SignatureError code
    the certificate names another agency         AgencyMismatch (403) certificate
    than ``from``
    ``to`` is not us                             Misaddressed (403) recipient
    ``from`` is not ``expected_from``            AgencyMismatch (403) sender
    another message than ``expected_message_id`` MessageMismatch (422) message_id
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from congvan.actions.signing.agencykeys import AgencyKey
from congvan.actions.signing.keystore import TrustMaterial
from congvan.states.errors import (
    AgencyMismatch,
    FormatUnsupported,
    MessageMalformed,
    MessageMismatch,
    Misaddressed,
)

from .envelope import Members, Sealed, check_moment, iso, read_canonical, seal, verify_body

FORMAT = "congvan-status/1"
REFUSED = "02"
AGREED, DECLINED = "15", "16"  # to a recall or an update
CODES = {
    "02": "refused",
    "03": "registered",
    "04": "assigned",
    "05": "processing",
    "06": "completed",
    AGREED: "agreed",
    DECLINED: "declined",
}
# Codes that need a reason.
REASONED = (REFUSED, DECLINED)
RESERVED_CODES = ("13",)
MEMBERS = (
    "format",
    "message_id",
    "document_id",
    "from",
    "to",
    "code",
    "description",
    "reason",
    "staff",
    "at",
)


@dataclass(frozen=True)
class Status:
    """A status message whose signature and members verified."""

    message_id: str
    document_id: str
    from_agency: str
    to_agency: str
    code: str
    description: str
    reason: str | None
    staff: str | None
    at: datetime
    # A certificate of its path revoked after it was signed (verification.Verdict's).
    later_revocation: Mapping[str, str | None] | None = None


def make_status(
    *,
    message_id: str,
    document_id: str,
    to: str,
    code: str,
    description: str,
    at: datetime,
    agency: AgencyKey,
    reason: str | None = None,
    staff: str | None = None,
    signed_at: datetime | None = None,
) -> Sealed:
    """A status message about package ``message_id``, signed by the receiving ``agency``.

    ``at`` is when the recipient did what the status reports; ``signed_at`` (``at`` when
    not given) is when the message is signed, with a key valid then: a status sent late,
    after its agency's certificate was renewed, is signed now by the new key and still says
    when the document was registered."""
    content = {
        "format": FORMAT,
        "message_id": message_id,
        "document_id": document_id,
        "from": agency.agency_id,
        "to": to,
        "code": code,
        "description": description,
        "reason": reason,
        "staff": staff,
        "at": iso(at),
    }
    try:
        _read(content)
    except MessageMalformed as exc:  # a message this module would refuse is never sent
        raise ValueError(exc.message) from exc
    return seal(content, agency, at if signed_at is None else signed_at)


def verify_status(
    body: bytes,
    cms: bytes,
    trust: TrustMaterial,
    *,
    expected_recipient: str,
    now: datetime,
    expected_from: str | None = None,
    expected_message_id: str | None = None,
    sent_at: datetime | None = None,
) -> Status:
    """Check a status message is signed by the agency it is ``from`` and is for us.

    ``expected_from``, ``expected_message_id`` and ``sent_at``, when given, are the
    recipient, message id and send time of our dispatch it answers (what it reports cannot
    come before the package left).
    """
    status = _read(read_canonical(body, FORMAT))
    verdict = verify_body(body, cms, trust, agency_id=status.from_agency, at=now)
    check_moment("at", status.at, signed_at=verdict.signing_time, not_before=sent_at, now=now)
    if status.to_agency != expected_recipient:
        raise Misaddressed(
            f"The status message is for {status.to_agency}, not {expected_recipient}.",
            reason="recipient",
            recipient=status.to_agency,
        )
    if expected_from is not None and status.from_agency != expected_from:
        raise AgencyMismatch(
            f"The status comes from {status.from_agency}; the package went to {expected_from}.",
            reason="sender",
            agency_id=status.from_agency,
        )
    if expected_message_id is not None and status.message_id != expected_message_id:
        raise MessageMismatch(
            "The status message is about another package.",
            reason="message_id",
            found=status.message_id,
            expected=expected_message_id,
        )
    return replace(status, later_revocation=verdict.later_revocation)


def _read(content: Mapping[str, object]) -> Status:
    members = Members(content, MEMBERS)
    code = content["code"]
    if isinstance(code, str) and code in RESERVED_CODES:
        raise FormatUnsupported(
            f"Status {code} is reserved in {FORMAT}.", reason="status_code_reserved", code=code
        )
    if not isinstance(code, str) or code not in CODES:
        raise MessageMalformed(
            f"A status code is one of {', '.join(CODES)} (01 is the receipt).",
            reason="status_code",
            code=str(code)[:10],
        )
    return Status(
        message_id=members.identifier("message_id"),
        document_id=members.identifier("document_id"),
        from_agency=members.organ_id("from"),
        to_agency=members.organ_id("to"),
        code=str(code),
        description=str(members.text("description")),
        reason=members.text("reason", required=code in REASONED),
        staff=members.text("staff", required=False),
        at=members.moment("at"),
    )
