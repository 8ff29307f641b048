"""Who may do what, and the time rules: policies as data."""

from __future__ import annotations

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

# Roles that may create drafts and read their agency's documents.
CREATE_ROLES = frozenset({CLERK})
READ_ROLES = frozenset({CLERK, REVIEWER, SIGNER, SUPERVISOR})

# Urgency (độ khẩn) as QCVN 102 codes it.
URGENCY = {0: "thường", 1: "khẩn", 2: "thượng khẩn", 3: "hỏa tốc", 4: "hỏa tốc hẹn giờ"}

# Secrecy marks (độ mật): a document carrying one is never sent electronically.
SECRECY = {"": "không", "mat": "Mật", "toi_mat": "Tối mật", "tuyet_mat": "Tuyệt mật"}

# How long a job may run before the scheduler re-drives it from the database, and how
# many times it is re-driven before it is marked failed.
JOB_DEADLINE_SECONDS = 300
JOB_MAX_ATTEMPTS = 8


def job_backoff_seconds(attempt: int) -> int:
    """Delay before re-driving a job for the ``attempt``-th time (capped exponential)."""
    return int(min(3600, 30 * 2 ** max(0, attempt - 1)))
