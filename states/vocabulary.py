"""The words stored records use besides the machines' states: statuses, severities, kinds.

Storage writes these and the API publishes them as enums, so both take them from here.
"""

from __future__ import annotations

# An outbox job: written with its transition, relayed to the broker, claimed by a worker
# (running, under a lease), waiting for its backoff after a failed attempt, done (or failed).
JOB_PENDING = "pending"
JOB_ENQUEUED = "enqueued"
JOB_RUNNING = "running"
JOB_WAITING = "waiting"
JOB_DONE = "done"
JOB_FAILED = "failed"
JOB_STATUSES = (JOB_PENDING, JOB_ENQUEUED, JOB_RUNNING, JOB_WAITING, JOB_DONE, JOB_FAILED)

# A review check's result, and how much a failure weighs.
CHECK_PASSED = "passed"
CHECK_FAILED = "failed"
CHECK_ERROR = "error"  # the check itself could not run
CHECK_STATUSES = (CHECK_PASSED, CHECK_FAILED, CHECK_ERROR)
CHECK_CLEARED = "cleared"  # passed, or a failed warning a reviewer accepted
BLOCKING = "blocking"
WARNING = "warning"
SEVERITIES = (BLOCKING, WARNING)

# A timestamp token asked of a time-stamping authority for a signature or an anchor.
STAMP_NONE = "none"  # never asked for
STAMP_PENDING = "pending"
STAMP_STAMPED = "stamped"
STAMP_UNAVAILABLE = "unavailable"
TIMESTAMP_STATUSES = (STAMP_NONE, STAMP_PENDING, STAMP_STAMPED, STAMP_UNAVAILABLE)

# What a database timer waits for.
JOB_DEADLINE = "job_deadline"
AUDIT_ANCHOR = "audit_anchor"
CRL_CHECK = "crl_check"
# A time rule watched (payload: the escalation kind it opens when it is broken), an open
# escalation's rise to the second level, a snoozed escalation's return.
RULE_DEADLINE = "rule_deadline"
ESCALATION_RISE = "escalation_rise"
ESCALATION_WAKE = "escalation_wake"
TIMER_KINDS = (
    JOB_DEADLINE,
    AUDIT_ANCHOR,
    CRL_CHECK,
    RULE_DEADLINE,
    ESCALATION_RISE,
    ESCALATION_WAKE,
)

# How a signature was made: by the server with the signer's stored key, or uploaded.
SIGNED_ON_SERVER = "server"
SIGNED_AND_UPLOADED = "upload"
SIGNING_MODES = (SIGNED_ON_SERVER, SIGNED_AND_UPLOADED)

# Whose word a signing time is: the signer's claim, or a timestamp token's.
TIME_SOURCES = ("claimed", "timestamp")

# What an escalation is about; notification routes name one of these, or every kind.
ESCALATION_KINDS = (
    "not_sent_in_time",
    "not_delivered",
    "delivery_failed",
    "refused_by_recipient",
    "request_refused",
    "not_acknowledged",
    "signature_problem",
    "recall_unanswered",
    "certificate_expiring",
    "crl_expiring",
    "status_not_sent",
)
# Each kind in Vietnamese words, as the e-mail and explain name it.
KIND_WORDS: dict[str, str] = {
    "not_sent_in_time": "Văn bản chưa được gửi đúng hạn",
    "not_delivered": "Văn bản chưa đến đơn vị nhận",
    "delivery_failed": "Gửi văn bản không thành công",
    "refused_by_recipient": "Đơn vị nhận từ chối văn bản",
    "request_refused": "Đơn vị nhận từ chối yêu cầu thu hồi, cập nhật hoặc thay thế văn bản",
    "not_acknowledged": "Đơn vị nhận chưa tiếp nhận văn bản",
    "signature_problem": "Chữ ký số của văn bản có vấn đề",
    "recall_unanswered": "Yêu cầu thu hồi văn bản chưa được trả lời",
    "certificate_expiring": "Chứng thư số sắp hết hạn",
    "crl_expiring": "Danh sách chứng thư bị thu hồi (CRL) sắp hết hạn",
    "status_not_sent": "Không gửi được trạng thái văn bản đến cho đơn vị gửi",
}
assert set(KIND_WORDS) == set(ESCALATION_KINDS)
EVERY_KIND = "*"
# A route for every escalation once it has risen to the second level (left open past its
# own deadline): the agency's leadership.
RISEN_KIND = "risen"

# How a notification reaches people, and where it stands: pending (queued or retrying),
# sent, dead (given up: listed for operators, who may retry it) or cancelled (its route
# was removed or disabled before it went).
NOTIFY_WEBHOOK = "webhook"
NOTIFY_EMAIL = "email"
NOTIFICATION_CHANNELS = (NOTIFY_WEBHOOK, NOTIFY_EMAIL)
NOTICE_PENDING = "pending"
NOTICE_SENT = "sent"
NOTICE_DEAD = "dead"
NOTICE_CANCELLED = "cancelled"
NOTIFICATION_STATES = (NOTICE_PENDING, NOTICE_SENT, NOTICE_DEAD, NOTICE_CANCELLED)
# How one attempt ended: delivered; transient (not now: tried again); permanent (never:
# dead at once); unknown (the request left, its answer did not come: tried again, and the
# receiver deduplicates by the notification's id).
ATTEMPT_DELIVERED = "delivered"
ATTEMPT_TRANSIENT = "transient"
ATTEMPT_PERMANENT = "permanent"
ATTEMPT_UNKNOWN = "unknown"
ATTEMPT_OUTCOMES = (ATTEMPT_DELIVERED, ATTEMPT_TRANSIENT, ATTEMPT_PERMANENT, ATTEMPT_UNKNOWN)
