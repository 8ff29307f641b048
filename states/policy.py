"""Who may do what, and the time rules: policies as data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

CLERK = "clerk"  # văn thư
REVIEWER = "reviewer"  # chuyên viên
SIGNER = "signer"  # lãnh đạo
SUPERVISOR = "supervisor"
OPERATOR = "operator"
ROLES = (CLERK, REVIEWER, SIGNER, SUPERVISOR, OPERATOR)

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
}

# Events that must say why.
REASON_REQUIRED = frozenset({"reject", "resend", "waive"})

# What a person's event body may carry besides a reason (which any event may give, for
# the audit trail). Anything else is refused rather than ignored.
EVENT_INPUTS: dict[str, frozenset[str]] = {
    "edit": frozenset({"fields", "recipients"}),
    "waive": frozenset({"code"}),
    "sign": frozenset({"cms", "signed_pdf"}),
}

# Roles that may create drafts and read their agency's documents.
CREATE_ROLES = frozenset({CLERK})
READ_ROLES = frozenset({CLERK, REVIEWER, SIGNER, SUPERVISOR})

# Agency identifiers (mã định danh): QCVN 102 puts level 1 on the right, Decision 20/2020
# on the left; both are up to 35 characters of A–Z, 0–9 in dot-separated groups.
_ORGAN_ID = re.compile(r"[A-Z0-9]+(\.[A-Z0-9]+)*")


def is_organ_id(value: str) -> bool:
    """Whether ``value`` is a well-formed agency identifier, e.g. ``000.00.00.H57``."""
    return 0 < len(value) <= 35 and bool(_ORGAN_ID.fullmatch(value))  # never `$`: it allows "\n"


def notation(number: int | None, symbol: str | None) -> str:
    """Số và ký hiệu as written and shown: ``05/UBND-TĐKT``, ``1227/UBND-TĐKT``.

    Decree 30/2020 Art. 15: numbers below 10 take a leading zero. The signed manifest keeps
    the number an integer; this is its written form.
    """
    if not number:
        return symbol or ""
    return f"{number:02d}/{symbol}" if symbol else f"{number:02d}"


# Number series (Decree 30/2020 Art. 15): by default an agency numbers all its documents in
# one series per year, so a number is used once whatever the symbol; an agency whose
# registry keeps a series per symbol (type or drafting unit) is set to "symbol".
NUMBERING = {
    "agency": "một hệ thống số cho mọi văn bản / one series for all documents",
    "symbol": "mỗi ký hiệu một hệ thống số / one series per symbol",
}
DEFAULT_NUMBERING = "agency"


def series_symbol(numbering: str, symbol: str) -> str | None:
    """The symbol a number is unique with: ``None`` when unique across all symbols."""
    return symbol if numbering == "symbol" else None


# Urgency (độ khẩn) as QCVN 102 codes it.
URGENCY = {0: "thường", 1: "khẩn", 2: "thượng khẩn", 3: "hỏa tốc", 4: "hỏa tốc hẹn giờ"}

# Secrecy marks (độ mật): a document carrying one is never sent electronically.
SECRECY = {"": "không", "mat": "Mật", "toi_mat": "Tối mật", "tuyet_mat": "Tuyệt mật"}

# How long a job may run before the scheduler re-drives it from the database, and how
# many times it is re-driven before it is marked failed.
JOB_DEADLINE_SECONDS = 300
JOB_MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Backoff:
    """Waits after failures: ``first`` after the first, doubling after each, up to ``cap``."""

    first: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)

    def after(self, attempt: int) -> timedelta:
        """The wait after the ``attempt``-th failure (no overflow however many)."""
        wait: timedelta = self.first * 2 ** min(max(0, attempt - 1), 32)
        return min(wait, self.cap)


JOB_BACKOFF = Backoff()


def job_backoff_seconds(attempt: int) -> int:
    """Delay before re-driving a job for the ``attempt``-th time (capped exponential)."""
    return int(JOB_BACKOFF.after(attempt).total_seconds())
