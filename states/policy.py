"""Who may do what, and the time rules: policies as data."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

CLERK = "clerk"  # văn thư
REVIEWER = "reviewer"  # chuyên viên
SIGNER = "signer"  # lãnh đạo
SUPERVISOR = "supervisor"
OPERATOR = "operator"
ROLES = (CLERK, REVIEWER, SIGNER, SUPERVISOR, OPERATOR)

# A document's files: exactly one main file, a PDF (what the signer signs), and appendices.
MAIN_FILE = "main"
APPENDIX = "appendix"
FILE_ROLES = (MAIN_FILE, APPENDIX)
MAIN_FILE_TYPE = "application/pdf"

# Roles that may fire each non-derived document event through the API.
EVENT_ROLES: dict[str, frozenset[str]] = {
    "edit": frozenset({CLERK}),
    "submit": frozenset({CLERK}),
    "waive": frozenset({REVIEWER}),
    "approve": frozenset({REVIEWER}),
    "reject": frozenset({REVIEWER, SIGNER}),
    "sign": frozenset({SIGNER}),
    "send": frozenset({CLERK}),
    "resend": frozenset({SUPERVISOR}),
    # Recall (thu hồi) and update (cập nhật) of an issued document: a supervisor or the
    # agency's leadership; so is starting its replacement (thay thế).
    "recall": frozenset({SUPERVISOR, SIGNER}),
    "update": frozenset({SUPERVISOR, SIGNER}),
}
REPLACE_ROLES = frozenset({SUPERVISOR, SIGNER})

# Events that must say why.
REASON_REQUIRED = frozenset({"reject", "resend", "waive", "recall", "update"})
# The most characters of a reason given for any event (or a replacement): the exchange
# formats carry it (``MAX_TEXT``), the API's bodies take no more.
MAX_REASON = 2000

# What a person's event body may carry besides a reason (which any event may give, for
# the audit trail). Anything else is refused rather than ignored.
EVENT_INPUTS: dict[str, frozenset[str]] = {
    "edit": frozenset({"fields", "recipients"}),
    "waive": frozenset({"code"}),
    "sign": frozenset({"cms", "signed_pdf"}),
    "update": frozenset({"fields"}),
}

# Roles that may fire each event of a received document (the receiving side): the clerk
# registers or returns it (Decree 30 Art. 22), a leader assigns it, the handler reports.
RECEIVED_EVENT_ROLES: dict[str, frozenset[str]] = {
    "register": frozenset({CLERK}),
    "refuse": frozenset({CLERK}),
    "assign": frozenset({SIGNER, SUPERVISOR}),
    "process": frozenset({CLERK, REVIEWER, SUPERVISOR}),
    "complete": frozenset({CLERK, REVIEWER, SUPERVISOR}),
    # The sender's recall or update: the clerk agrees (15) or refuses (16) (Decree 30
    # Art. 18: on notice the recipient cancels the document and tells the sender).
    "agree_recall": frozenset({CLERK, SUPERVISOR}),
    "refuse_recall": frozenset({CLERK, SUPERVISOR}),
    "agree_update": frozenset({CLERK, SUPERVISOR}),
    "refuse_update": frozenset({CLERK, SUPERVISOR}),
}
RECEIVED_REASON_REQUIRED = frozenset({"refuse", "refuse_recall", "refuse_update"})

# Who handles escalations (states/escalation.py): supervisors, and the agency's leadership
# (signers), to whom an escalation rises when it stays open past its deadline.
ESCALATION_HANDLERS = frozenset({SUPERVISOR, SIGNER})
ESCALATION_EVENT_ROLES: dict[str, frozenset[str]] = {
    event: ESCALATION_HANDLERS for event in ("claim", "comment", "snooze", "act", "resolve")
}
ESCALATION_EVENT_INPUTS: dict[str, frozenset[str]] = {
    # take_over: from the supervisor who holds it (escalation.HOLDER_EVENTS)
    "claim": frozenset({"take_over"}),
    "comment": frozenset({"text"}),
    "snooze": frozenset({"until", "take_over"}),
    "act": frozenset({"action", "note", "take_over"}),
    "resolve": frozenset({"outcome", "take_over"}),
}
ESCALATION_REASON_REQUIRED = frozenset({"snooze", "act", "resolve"})
RECEIVED_EVENT_INPUTS: dict[str, frozenset[str]] = {}

# Roles that may create drafts and read their agency's documents.
CREATE_ROLES = frozenset({CLERK})
READ_ROLES = frozenset({CLERK, REVIEWER, SIGNER, SUPERVISOR})

# Agency identifiers (mã định danh): QCVN 102 puts level 1 on the right, Decision 20/2020
# on the left; both are up to 35 characters of A–Z, 0–9 in dot-separated groups.
_ORGAN_ID = re.compile(r"[A-Z0-9]+(\.[A-Z0-9]+)*")


def is_organ_id(value: str) -> bool:
    """Whether ``value`` is a well-formed agency identifier, e.g. ``000.00.00.H57``."""
    return 0 < len(value) <= 35 and bool(_ORGAN_ID.fullmatch(value))  # never `$`: it allows "\n"


def notation(number: int | None, symbol: str | None, year: int | None = None) -> str:
    """Số và ký hiệu as written and shown: ``05/UBND-TĐKT``, ``1227/UBND-TĐKT``, and with
    ``year`` (a legal normative document's) ``05/2024/QĐ-UBND``.

    Decree 30/2020 Appendix I: numbers below 10 take a leading zero. The Law on the
    promulgation of legal normative documents puts the year of issue between the number
    and the symbol. The signed manifest keeps the number an integer; this is its written
    form.
    """
    if not number:
        return symbol or ""
    head = f"{number:02d}/{year}" if year else f"{number:02d}"
    return f"{head}/{symbol}" if symbol else head


def written_notation(document: Mapping[str, Any]) -> str:
    """A document's (or documents row's) notation: with its year when legal normative."""
    year = None
    if document.get("legal_normative") and document.get("issued_on"):
        year = int(str(document["issued_on"])[:4])
    return notation(document.get("number"), document.get("symbol"), year)


# Number series (Decree 30/2020 Art. 15.1): numbers run from 01 on 1 January to 31
# December and a number with its symbol is unique in the year. Legal normative documents
# (văn bản quy phạm pháp luật, point a) take a series per type; administrative documents
# (point c) are numbered as the agency's head decides: by default one series for all of
# them, so a number is used once whatever the symbol; an agency whose registry keeps a
# series per symbol (type or drafting unit) is set to "symbol".
NUMBERING = {
    "agency": "một hệ thống số cho mọi văn bản / one series for all documents",
    "symbol": "mỗi ký hiệu một hệ thống số / one series per symbol",
}
DEFAULT_NUMBERING = "agency"
LEGAL_NORMATIVE = "legal_normative"  # the name of the legal normative series, by type


@dataclass(frozen=True)
class Series:
    """The documents of one agency and one year among which a number is used once."""

    name: str  # "agency", "symbol" or LEGAL_NORMATIVE
    legal_normative: bool
    doc_type: str | None = None  # only documents of this type (legal normative)
    symbol: str | None = None  # only documents with this symbol (numbering by symbol)


def number_series(numbering: str, document: Mapping[str, Any]) -> Series:
    """The series ``document``'s number belongs to, in an agency numbering by ``numbering``."""
    if document.get("legal_normative"):
        return Series(LEGAL_NORMATIVE, True, doc_type=str(document.get("doc_type") or ""))
    if numbering == "symbol":
        return Series("symbol", False, symbol=str(document.get("symbol") or ""))
    return Series("agency", False)


# Urgency (độ khẩn) as QCVN 102 codes it.
URGENCY = {0: "thường", 1: "khẩn", 2: "thượng khẩn", 3: "hỏa tốc", 4: "hỏa tốc hẹn giờ"}
# The one urgency whose document carries an appointed time (hỏa tốc hẹn giờ).
APPOINTED_URGENCY = 4

# Secrecy marks (độ mật): a document carrying one is never sent electronically.
SECRECY = {"": "không", "mat": "Mật", "toi_mat": "Tối mật", "tuyet_mat": "Tuyệt mật"}

# The directory of peers: how a peer's inbox is reached and how hard it may be pressed.
PEER_TRANSPORTS = ("http",)
INBOX_URL_MAX_LENGTH = 2000
PEER_TIMEOUT_SECONDS = 30  # the default wait for one delivery request
PEER_TIMEOUT_RANGE = (1, 600)
PEER_CONCURRENCY = 4  # the default number of deliveries in flight to one peer
PEER_CONCURRENCY_RANGE = (1, 64)
# An identifier a peer chooses (a package's message id, its document id): opaque, printable
# ASCII, at most this long; the columns that keep one hold as much (storage/tables.py).
EXCHANGE_ID_MAX_LENGTH = 200

# How long a job may run before the scheduler re-drives it from the database, and how
# many times it is re-driven before it is marked failed.
JOB_DEADLINE_SECONDS = 300
JOB_MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Backoff:
    """Waits after failures: ``first`` after the first, doubling after each, up to ``cap``.

    ``jitter``: each wait is shortened by up to this fraction of it, so that the jobs that
    failed together (a peer went down) do not all come back at the same instant.
    """

    first: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    def after(self, attempt: int, draw: float = 0.0) -> timedelta:
        """The wait after the ``attempt``-th failure (no overflow however many).

        ``draw`` (uniform in [0, 1), chosen by the caller) places the wait in the jitter
        band: 0 is the full wait, towards 1 the shortest.
        """
        wait: timedelta = min(self.first * 2 ** min(max(0, attempt - 1), 32), self.cap)
        return wait * (1 - self.jitter * min(max(draw, 0.0), 1.0))


JOB_BACKOFF = Backoff()


def job_backoff_seconds(attempt: int) -> int:
    """Delay before re-driving a job for the ``attempt``-th time (capped exponential)."""
    return int(JOB_BACKOFF.after(attempt).total_seconds())
