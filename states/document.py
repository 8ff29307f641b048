"""The document machine: draft → reviewed → signed → sent → delivered → acknowledged, or failed."""

from __future__ import annotations

from .spec import MachineSpec, edge

DRAFT = "draft"
REVIEWED = "reviewed"
SIGNED = "signed"
SENT = "sent"
DELIVERED = "delivered"
ACKNOWLEDGED = "acknowledged"
FAILED = "failed"

DOCUMENT = MachineSpec(
    name="document",
    states=(DRAFT, REVIEWED, SIGNED, SENT, DELIVERED, ACKNOWLEDGED, FAILED),
    initial=DRAFT,
    finals=(ACKNOWLEDGED,),
    transitions=(
        # A clerk changes metadata or recipients of a draft; results of earlier checks
        # stop counting because they name the version they checked.
        edge("edit", DRAFT, DRAFT, effects=("apply_edit",)),
        # Submitting runs the review checks as a job and puts the draft in the review queue.
        edge(
            "submit", DRAFT, DRAFT, effects=("record_submission",), actions=("run_review_checks",)
        ),
        # A reviewer accepts a failed warning check, with a reason.
        edge("waive", DRAFT, DRAFT, effects=("waive_check",)),
        edge("approve", DRAFT, REVIEWED, conditions=("checks_cleared",)),
        edge("reject", (DRAFT, REVIEWED), DRAFT, effects=("withdraw_submission",)),
        edge(
            "sign",
            REVIEWED,
            SIGNED,
            conditions=("signer_has_authority",),
            effects=("attach_signature",),
        ),
        edge(
            "send",
            SIGNED,
            SENT,
            conditions=("signature_valid", "not_duplicate"),
            # Entered in the outgoing register (its send time judged), one dispatch per
            # recipient, each with its package header sealed by the issuing agency, and
            # one delivery job per dispatch.
            effects=("register_sending", "create_dispatches", "seal_packages"),
            actions=("deliver_dispatches",),
        ),
        # Derived from the dispatches; the engine fires these itself.
        edge("delivered", SENT, DELIVERED, conditions=("all_delivered",), derived=True),
        edge(
            "acknowledged",
            (SENT, DELIVERED),
            ACKNOWLEDGED,
            conditions=("all_acknowledged",),
            derived=True,
        ),
        edge("failed", (SENT, DELIVERED), FAILED, conditions=("any_failed",), derived=True),
        # A supervisor sends again to the recipients that failed (not those that refused).
        edge(
            "resend",
            FAILED,
            SENT,
            conditions=("a_dispatch_failed",),
            effects=("reset_failed_dispatches",),
            actions=("deliver_dispatches",),
        ),
    ),
    descriptions={
        DRAFT: "being written or corrected (dự thảo)",
        REVIEWED: "checks passed and approved (đã kiểm tra)",
        SIGNED: "digitally signed (đã ký số)",
        SENT: "issued; dispatches under way (đã phát hành)",
        DELIVERED: "every recipient has it (đã đến)",
        ACKNOWLEDGED: "every recipient registered it (đã tiếp nhận)",
        FAILED: "a recipient failed for good or refused it (lỗi)",
    },
)

# Issued: the states a document is in once it was sent (its number is spent for good).
ISSUED = (SENT, DELIVERED, ACKNOWLEDGED, FAILED)
