"""The received-document machine: a document another agency sent us, as our clerks handle it.

received (status 01, arrived) → registered (03, vào sổ) → assigned (04) → processing (05)
→ completed (06); or refused (02, with a reason) before it is registered. Every move but
the first sends a signed status message back to the sender (QCVN 102 status codes).
"""

from __future__ import annotations

from types import MappingProxyType

from .spec import MachineSpec, edge

RECEIVED = "received"
REGISTERED = "registered"
REFUSED = "refused"
ASSIGNED = "assigned"
PROCESSING = "processing"
COMPLETED = "completed"

# The job that sends the sender a signed status message, after every move.
NOTIFY = ("send_status",)

RECEIVED_DOCUMENT = MachineSpec(
    name="received",
    states=(RECEIVED, REGISTERED, REFUSED, ASSIGNED, PROCESSING, COMPLETED),
    initial=RECEIVED,
    finals=(REFUSED, COMPLETED),
    transitions=(
        # A clerk enters it in the incoming register (sổ đăng ký văn bản đến).
        edge("register", RECEIVED, REGISTERED, effects=("register_received",), actions=NOTIFY),
        # Or returns it to the sender, saying why (misaddressed, incomplete, …).
        edge("refuse", RECEIVED, REFUSED, effects=("record_refusal",), actions=NOTIFY),
        edge("assign", REGISTERED, ASSIGNED, actions=NOTIFY),
        edge("process", ASSIGNED, PROCESSING, actions=NOTIFY),
        edge("complete", (ASSIGNED, PROCESSING), COMPLETED, actions=NOTIFY),
    ),
    descriptions={
        RECEIVED: "arrived, not yet registered (status 01)",
        REGISTERED: "entered in the incoming register (status 03)",
        REFUSED: "returned to the sender with a reason (status 02)",
        ASSIGNED: "assigned to someone to handle (status 04)",
        PROCESSING: "being handled (status 05)",
        COMPLETED: "handling completed (status 06)",
    },
)

# The QCVN 102 status code each state reports to the sender.
STATUS_CODE = MappingProxyType(
    {
        RECEIVED: "01",
        REFUSED: "02",
        REGISTERED: "03",
        ASSIGNED: "04",
        PROCESSING: "05",
        COMPLETED: "06",
    }
)

# How each status code reads (domain.md §3), as clerks on both sides name it.
STATUS_LABEL = MappingProxyType(
    {
        "01": "arrived (đã đến)",
        "02": "refused (từ chối tiếp nhận)",
        "03": "registered (đã tiếp nhận, vào sổ)",
        "04": "assigned (phân công)",
        "05": "processing (đang xử lý)",
        "06": "completed (hoàn thành)",
    }
)
