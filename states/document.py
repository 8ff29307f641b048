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
RECALLED = "recalled"
REPLACED = "replaced"

# Issued: the states a document is in once it was sent (its number is spent for good).
ISSUED = (SENT, DELIVERED, ACKNOWLEDGED, FAILED)

# Who may ask the recipients of an issued document to take it back or correct it: the
# QCVN 102 business types 1 (recall, thu hồi) and 2 (update, cập nhật). Each request is
# sealed and delivered to every recipient that has the document, which agrees (15) or
# refuses (16); the document stays where it is meanwhile (a self-loop per issued state).
# Not while a dispatch is still on its way: that recipient would get the document after
# the request, in force and never asked; nor when no recipient holds it (each refused it,
# never got it, or agreed to an earlier recall): there is nobody to ask. An update carries
# its own corrections alone: not while a holder lacks an earlier one's (it failed to reach
# it, or was refused there).
REQUESTS = (
    *(
        edge(
            "recall",
            state,
            state,
            conditions=("no_request_awaiting", "nothing_under_way", "a_recipient_holds_it"),
            effects=("open_request", "seal_requests"),
            actions=("deliver_dispatches",),
        )
        for state in ISSUED
    ),
    *(
        edge(
            "update",
            state,
            state,
            conditions=(
                "no_request_awaiting",
                "nothing_under_way",
                "a_recipient_holds_it",
                "corrections_reached",
            ),
            effects=("apply_update", "open_request", "seal_requests"),
            actions=("deliver_dispatches",),
        )
        for state in ISSUED
    ),
)

DOCUMENT = MachineSpec(
    name="document",
    states=(DRAFT, REVIEWED, SIGNED, SENT, DELIVERED, ACKNOWLEDGED, FAILED, RECALLED, REPLACED),
    initial=DRAFT,
    # Acknowledged is where a document normally rests; it may still be recalled, updated
    # or replaced, so only those end its life.
    finals=(RECALLED, REPLACED),
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
        # Approved and signed in the year it is dated and numbered (reviewed on 31
        # December, it is not signed on 2 January under last year's number).
        edge("approve", DRAFT, REVIEWED, conditions=("checks_cleared", "dated_this_year")),
        # A signed document not sent yet may be returned too (its signer's certificate
        # revoked since, say: ``send`` refuses it), and is then signed again.
        edge("reject", (DRAFT, REVIEWED, SIGNED), DRAFT, effects=("withdraw_submission",)),
        edge(
            "sign",
            REVIEWED,
            SIGNED,
            conditions=("signer_has_authority", "dated_this_year"),
            effects=("attach_signature",),
        ),
        edge(
            "send",
            SIGNED,
            SENT,
            conditions=("signature_valid", "not_duplicate", "original_settled"),
            # Entered in the outgoing register (its send time judged), one dispatch per
            # recipient, each with its package header sealed by the issuing agency, and
            # one delivery job per dispatch.
            # A replacement (thay thế) also marks the document it replaces as replaced,
            # in the same transaction (``supersede_original``); it waits until that one is
            # in force and none of its dispatches is on its way (``original_settled``).
            effects=(
                "register_sending",
                "create_dispatches",
                "seal_packages",
                "supersede_original",
            ),
            actions=("deliver_dispatches",),
        ),
        # Derived from the dispatches; the engine fires these itself.
        # A failed one too, once the recipient of a dispatch that failed tells it has it.
        edge("delivered", (SENT, FAILED), DELIVERED, conditions=("all_delivered",), derived=True),
        edge(
            "acknowledged",
            (SENT, DELIVERED, FAILED),
            ACKNOWLEDGED,
            conditions=("all_acknowledged",),
            derived=True,
        ),
        edge("failed", (SENT, DELIVERED), FAILED, conditions=("any_failed",), derived=True),
        # Under way again: the recipient of the dispatch that failed says it has it while
        # another is still on its way (nothing failed or refused any more).
        edge("recovered", FAILED, SENT, conditions=("none_given_up",), derived=True),
        # A supervisor sends again to the recipients that failed (not those that refused),
        # the package sealed at send: not while a recall or update awaits its answers, nor
        # once an update changed what the package says.
        edge(
            "resend",
            FAILED,
            SENT,
            conditions=("a_dispatch_failed", "no_request_awaiting", "never_updated"),
            effects=("reset_failed_dispatches",),
            actions=("deliver_dispatches",),
        ),
        *REQUESTS,
        # Every recipient of the recall agreed (status 15): the engine fires it with the
        # last answer, in its transaction.
        edge("recalled", ISSUED, RECALLED, conditions=("recall_agreed",), derived=True),
        # Its replacement was sent: fired by the replacement's send, in its transaction.
        edge("replaced", ISSUED, REPLACED, derived=True),
    ),
    descriptions={
        DRAFT: "being written or corrected (dự thảo)",
        REVIEWED: "checks passed and approved (đã kiểm tra)",
        SIGNED: "digitally signed (đã ký số)",
        SENT: "issued; dispatches under way (đã phát hành)",
        DELIVERED: "every recipient has it (đã đến)",
        ACKNOWLEDGED: "every recipient registered it (đã tiếp nhận)",
        FAILED: "a recipient failed for good or refused it (lỗi)",
        RECALLED: "recalled: every recipient agreed to take it back (đã thu hồi)",
        REPLACED: "replaced by a corrected document (đã bị thay thế)",
    },
)

# Events the engine fires on a document as the consequence of another subject's transition
# (a recipient's last answer to a recall; its replacement's send), never by a person.
CONSEQUENCES = ("recalled", "replaced")

# Fields an update (cập nhật) may correct on an issued document, as the receiver shows them.
UPDATABLE = ("subject", "issued_on", "due_date", "signer_name", "signer_position", "place")
