"""The dispatch machine: one per recipient, pending → sending → delivered → acknowledged."""

from __future__ import annotations

from collections.abc import Iterable

from .spec import MachineSpec, edge

PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
ACKNOWLEDGED = "acknowledged"
REJECTED = "rejected"
FAILED = "failed"
# A recall or update request (QCVN 102 business type 1 or 2) answered by its recipient.
AGREED = "agreed"
DECLINED = "declined"

# A recipient's reports of its handling (QCVN 102 04–06), recorded on the dispatch.
# A dispatch's entries are kept in its document's chain, named with this prefix
# ("dispatch.delivered"); their states are the dispatch's, not the document's.
AUDIT_PREFIX = "dispatch."

PROGRESS_EVENTS = {"04": "report_assigned", "05": "report_processing", "06": "report_completed"}

# Where a dispatch may be when its recipient's status message comes: under way (its
# receipt not recorded yet), waiting to be tried again after an attempt whose answer was
# lost, delivered, or failed with its outcome unknown. The recipient signed that it has
# the document: that settles it whatever became of our attempts (a later attempt only
# fetches the receipt, the proof it arrived).
_HEARD_FROM = (PENDING, SENDING, DELIVERED, FAILED)

DISPATCH = MachineSpec(
    name="dispatch",
    states=(PENDING, SENDING, DELIVERED, ACKNOWLEDGED, REJECTED, FAILED, AGREED, DECLINED),
    initial=PENDING,
    finals=(ACKNOWLEDGED, REJECTED, AGREED, DECLINED),  # a refusal stands
    transitions=(
        edge("start", PENDING, SENDING),
        # An attempt failed and attempts remain: wait (a database timer) and try again.
        edge("retry", SENDING, PENDING, conditions=("attempts_left",)),
        edge("fail", SENDING, FAILED),
        # Status codes from the recipient (QCVN 102): 01 arrived, 03 registered, 02 refused.
        # A status the recipient signed says the package arrived, even to a dispatch that
        # failed: every answer to it lost (outcome unknown) until its attempts ran out.
        edge("deliver", SENDING, DELIVERED),
        edge("acknowledge", _HEARD_FROM, ACKNOWLEDGED),
        edge("refuse", _HEARD_FROM, REJECTED),
        # The recipient's answer to a recall or update (15 agrees, 16 refuses); only a
        # dispatch carrying such a request takes one. Signed by the recipient, it says the
        # request arrived, as a status does of a package: wherever our attempts stand.
        edge("agree", _HEARD_FROM, AGREED, conditions=("carries_request",)),
        edge("decline", _HEARD_FROM, DECLINED, conditions=("carries_request",)),
        # The recipient reports its handling (04 assigned, 05 processing, 06 completed),
        # kept in the document's audit chain, so that an evidence bundle must hold each
        # status message the trail records. QCVN 102 registers (03) before it assigns: a
        # report that comes first (its 03 still on the way, or never sent by the
        # recipient's system) says the document was registered, and acknowledges it; an
        # acknowledged dispatch stays where it is (these are records, not ways out).
        *(edge(event, _HEARD_FROM, ACKNOWLEDGED) for event in PROGRESS_EVENTS.values()),
        *(edge(event, ACKNOWLEDGED, ACKNOWLEDGED) for event in PROGRESS_EVENTS.values()),
        # Only as part of the document's resend (derived: never fired on its own), since a
        # dispatch resent alone would leave its document failed. A refusal stands: the
        # same package again would only get the same answer (a corrected document is a
        # replacement, sent as such).
        edge("resend", FAILED, PENDING, derived=True),
    ),
    descriptions={
        PENDING: "waiting for its next attempt",
        SENDING: "an attempt is under way; outcome not yet known",
        DELIVERED: "in the recipient's system (status 01)",
        ACKNOWLEDGED: "registered by the recipient (status 03)",
        REJECTED: "refused by the recipient (status 02)",
        FAILED: "no attempts left",
        AGREED: "the recipient agreed to the recall or update (status 15)",
        DECLINED: "the recipient refused the recall or update (status 16)",
    },
)

# Dispatch events fired only as part of a document transition, never on their own.
DOCUMENT_DRIVEN = frozenset(t.trigger for t in DISPATCH.transitions if t.derived)

# Dispatch states that count as "failed for good" for the document.
GIVEN_UP = frozenset({FAILED, REJECTED})
ARRIVED = frozenset({DELIVERED, ACKNOWLEDGED})

# What a recipient's status message (QCVN 102) does to its dispatch: 03 registered,
# 02 refused; 04–06 (assigned, processing, completed) are recorded, and acknowledge a
# dispatch whose 03 has not come (registering comes first).
# 15 agrees to a recall or update, 16 refuses it.
STATUS_EVENTS = {
    "03": "acknowledge",
    "02": "refuse",
    **PROGRESS_EVENTS,
    "15": "agree",
    "16": "decline",
}
# Where a request's dispatch stands once its recipient answered.
ANSWERED = frozenset({AGREED, DECLINED})
# Where a request's dispatch stands while its answer is still to come (one at a time).
UNANSWERED = frozenset({PENDING, SENDING, DELIVERED})
# Where a dispatch stands while the document is still on its way to its recipient: a
# request or replacement now would arrive before it.
ON_ITS_WAY = frozenset({PENDING, SENDING})
# How a delivery attempt ended (actions/delivery.py) when its recipient may have the
# package though no receipt was taken: the request left and its answer was lost, or the
# answer was not a receipt that verified.
MAY_HAVE_ARRIVED = frozenset({"unknown", "bad_receipt"})

# What a recipient reports from registering the document on (QCVN 102 03–06): each
# says it was registered.
_PROGRESS = ("03", "04", "05", "06")
TAKEN_CODES = frozenset(_PROGRESS)
# What each status code says of the document, and what says the opposite: a document
# refused (02) is never registered or handled (03–06); a request is agreed (15) or
# declined (16), not both.
_SAYS = {"02": "refused", **dict.fromkeys(_PROGRESS, "taken"), "15": "agreed", "16": "declined"}
_OPPOSITE = {"refused": "taken", "taken": "refused", "agreed": "declined", "declined": "agreed"}


def contradicted(reported: Iterable[str], code: str) -> str | None:
    """The first code among ``reported`` that status ``code`` contradicts, or None."""
    opposite = _OPPOSITE.get(_SAYS.get(code, ""))
    return min((c for c in reported if _SAYS.get(c) == opposite), default=None)


# A recipient that refused the document (QCVN 102's 02): at its inbox, or by its clerks.
RECIPIENT_REFUSED = "02"

# A recipient that agreed to a recall (QCVN 102's 15): its copy is cancelled there,
# whatever it reported of it before (Decree 30 Art. 18).
RECALL_AGREED = "15"


def recipient_status(state: str, reported: Iterable[str], *, recalled: bool = False) -> str | None:
    """The QCVN 102 status code a recipient stands at (None: its system has nothing yet).

    15 once it agreed to a recall of the document (``recalled``); 02 once refused; else
    the furthest code ``reported`` from 03 to 06, and at least 03 when the dispatch is
    acknowledged, 01 when it is delivered.
    """
    if recalled:
        return RECALL_AGREED
    if state == REJECTED:
        return RECIPIENT_REFUSED
    if state not in ARRIVED:
        return None
    floor = "03" if state == ACKNOWLEDGED else "01"
    return max((c for c in reported if c in _PROGRESS), default=floor)
