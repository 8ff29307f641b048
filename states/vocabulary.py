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
# A recall's answers awaited: armed when the recall is sent, cancelled once every recipient
# answered (15 or 16); when it fires, the recall is unanswered (``recall_unanswered``).
RECALL_ANSWER = "recall_answer"
TIMER_KINDS = (JOB_DEADLINE, AUDIT_ANCHOR, CRL_CHECK, RECALL_ANSWER)

# How a signature was made: by the server with the signer's stored key, or uploaded.
SIGNED_ON_SERVER = "server"
SIGNED_AND_UPLOADED = "upload"
SIGNING_MODES = (SIGNED_ON_SERVER, SIGNED_AND_UPLOADED)

# Whose word a signing time is: the signer's claim, or a timestamp token's.
TIME_SOURCES = ("claimed", "timestamp")
