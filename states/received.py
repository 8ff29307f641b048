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
RECALLED = "recalled"
REPLACED = "replaced"

# In force: the states from which the sender may recall, correct or replace it. A document
# whose handling is completed is still in force (Decree 30 Art. 18: on a recall notice the
# recipient cancels the document in its system); one refused, recalled or replaced is not.
IN_FORCE = (RECEIVED, REGISTERED, ASSIGNED, PROCESSING, COMPLETED)
# The events the inbox fires when a recall or update of a document arrives.
REQUESTING = frozenset({"request_recall", "request_update"})

# The job that sends the sender a signed status message, after every move.
NOTIFY = ("send_status",)

RECEIVED_DOCUMENT = MachineSpec(
    name="received",
    states=(RECEIVED, REGISTERED, REFUSED, ASSIGNED, PROCESSING, COMPLETED, RECALLED, REPLACED),
    initial=RECEIVED,
    # Completed is not final: the sender may still recall or replace the document.
    finals=(REFUSED, RECALLED, REPLACED),
    transitions=(
        # A clerk enters it in the incoming register (sổ đăng ký văn bản đến).
        edge("register", RECEIVED, REGISTERED, effects=("register_received",), actions=NOTIFY),
        # Or returns it to the sender, saying why (misaddressed, incomplete, …); not while
        # a recall or update of it awaits our answer (refused, it could never be answered).
        edge(
            "refuse",
            RECEIVED,
            REFUSED,
            conditions=("no_answer_owed",),
            effects=("record_refusal",),
            actions=NOTIFY,
        ),
        edge("assign", REGISTERED, ASSIGNED, actions=NOTIFY),
        edge("process", ASSIGNED, PROCESSING, actions=NOTIFY),
        edge("complete", (ASSIGNED, PROCESSING), COMPLETED, actions=NOTIFY),
        # The sender asks to take it back (QCVN 102 business type 1) or to correct its
        # metadata (2): the request is kept and awaits our clerk's answer; the document
        # stays where it is, in force, until the clerk agrees. Fired by the inbox; one at
        # a time, each answered.
        *(
            edge(
                event,
                state,
                state,
                conditions=("no_answer_owed",),
                effects=("record_request",),
                derived=True,
            )
            for event in sorted(REQUESTING)
            for state in IN_FORCE
        ),
        # The clerk agrees to the recall (status 15): the document is cancelled for good.
        edge(
            "agree_recall",
            IN_FORCE,
            RECALLED,
            conditions=("recall_awaiting",),
            effects=("answer_request",),
            actions=NOTIFY,
        ),
        # Agreeing to an update (15) applies the corrected metadata; refusing either (16,
        # with a reason) keeps the document as it is, in force.
        *(
            edge(
                event,
                state,
                state,
                conditions=(awaiting,),
                effects=("answer_request",),
                actions=NOTIFY,
            )
            for event, awaiting in (
                ("refuse_recall", "recall_awaiting"),
                ("agree_update", "update_awaiting"),
                ("refuse_update", "update_awaiting"),
            )
            for state in IN_FORCE
        ),
        # Its replacement (business type 3) arrived: fired by the inbox with its arrival;
        # refused while a recall or update of it awaits our answer, as that would.
        edge("replaced", IN_FORCE, REPLACED, conditions=("no_answer_owed",), derived=True),
    ),
    descriptions={
        RECEIVED: "arrived, not yet registered (status 01)",
        REGISTERED: "entered in the incoming register (status 03)",
        REFUSED: "returned to the sender with a reason (status 02)",
        ASSIGNED: "assigned to someone to handle (status 04)",
        PROCESSING: "being handled (status 05)",
        COMPLETED: "handling completed (status 06)",
        RECALLED: "recalled: cancelled at the sender's request (đã thu hồi, status 15)",
        REPLACED: "replaced by a corrected document from the sender (đã bị thay thế)",
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
        RECALLED: "15",  # the recall our clerk agreed to
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
        "15": "agreed to the recall or update (đồng ý thu hồi / cập nhật)",
        "16": "refused the recall or update (từ chối thu hồi / cập nhật)",
    }
)

# The answer each answering event sends the sender (QCVN 102 15 agree, 16 refuse).
ANSWER_CODE = MappingProxyType(
    {"agree_recall": "15", "agree_update": "15", "refuse_recall": "16", "refuse_update": "16"}
)
# The events that answer a request, by the kind of request they answer.
ANSWERING = MappingProxyType(
    {
        "agree_recall": "recall",
        "refuse_recall": "recall",
        "agree_update": "update",
        "refuse_update": "update",
    }
)
