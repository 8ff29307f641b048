"""The escalation machine: a warning someone owns, from opening to its resolution.

Letter 1227/UBND-TĐKT, point 3: the sending system warns in time about documents sent in
error, documents that did not reach their recipient and recipients that have not received
them, so that someone acts. An escalation opens when a time rule is broken or delivery
goes wrong (the engine opens it, never a person), a supervisor claims it, comments,
snoozes it with a reason, acts from it (resend, recall, contact the recipient) and
resolves it with an outcome; it closes itself, saying so, when its cause disappears (the
late dispatch is delivered). Left open past its own deadline it rises to the second level,
the agency's leadership. One cause never opens two escalations.
"""

from __future__ import annotations

from types import MappingProxyType

from .spec import MachineSpec, edge

OPEN = "open"
CLAIMED = "claimed"
SNOOZED = "snoozed"
RESOLVED = "resolved"
CLOSED = "closed"

ACTIVE = (OPEN, CLAIMED, SNOOZED)
# What only its holder does (anyone, while nobody holds it); another supervisor, only
# saying it takes it over (``take_over``, or over HTTP an If-Match of the version seen).
HOLDER_EVENTS = ("claim", "act", "snooze", "resolve")

ESCALATION = MachineSpec(
    name="escalation",
    states=(OPEN, CLAIMED, SNOOZED, RESOLVED, CLOSED),
    initial=OPEN,
    finals=(RESOLVED, CLOSED),
    transitions=(
        # A supervisor takes it (or, saying so, takes it over from another): they own it.
        edge(
            "claim",
            (OPEN, CLAIMED, SNOOZED),
            CLAIMED,
            conditions=("not_held_by_another", "not_claimed_by_actor"),
            effects=("set_owner", "end_snooze"),
        ),
        *(edge("comment", s, s, effects=("record_comment",)) for s in ACTIVE),
        # Put aside until a moment, with a reason; it comes back by itself then.
        # (One another supervisor holds, only saying it takes it over, as a claim.)
        edge(
            "snooze",
            (OPEN, CLAIMED, SNOOZED),
            SNOOZED,
            conditions=("not_held_by_another",),
            effects=("take_from_holder", "snooze_until"),
        ),
        edge(
            "wake",
            SNOOZED,
            CLAIMED,
            conditions=("has_owner",),
            effects=("end_snooze",),
            derived=True,
        ),
        edge("wake", SNOOZED, OPEN, effects=("end_snooze",), derived=True),
        # Its cause came about again while it stood (a resend from it failed too): it is
        # told again, and one put aside comes back.
        *(
            edge("recur", s, s, effects=("record_recurrence",), derived=True)
            for s in (OPEN, CLAIMED)
        ),
        edge(
            "recur",
            SNOOZED,
            CLAIMED,
            conditions=("has_owner",),
            effects=("end_snooze", "record_recurrence"),
            derived=True,
        ),
        edge("recur", SNOOZED, OPEN, effects=("end_snooze", "record_recurrence"), derived=True),
        # Still open past its deadline: the agency's leadership is told (second level).
        *(edge("rise", s, s, effects=("rise_level",), derived=True) for s in ACTIVE),
        # A supervisor acts from it: resend, recall, contact the recipient.
        # (Taking it, as a claim does: one another supervisor holds, only saying so.)
        edge(
            "act",
            (OPEN, CLAIMED),
            CLAIMED,
            conditions=("not_held_by_another",),
            effects=("set_owner", "take_action"),
        ),
        edge(
            "resolve",
            ACTIVE,
            RESOLVED,
            conditions=("not_held_by_another",),
            effects=("take_from_holder", "settle_escalation"),
        ),
        # Its cause disappeared (the late dispatch was delivered, the document was sent).
        edge("close", ACTIVE, CLOSED, effects=("settle_escalation",), derived=True),
    ),
    descriptions={
        OPEN: "opened, nobody has taken it yet",
        CLAIMED: "a supervisor owns it",
        SNOOZED: "put aside until a set moment, with a reason",
        RESOLVED: "resolved by a person, with an outcome",
        CLOSED: "closed by itself: its cause disappeared",
    },
)

# What broke, and what a supervisor should do about it.
NOT_SENT_IN_TIME = "not_sent_in_time"
NOT_DELIVERED = "not_delivered"
DELIVERY_FAILED = "delivery_failed"
REFUSED_BY_RECIPIENT = "refused_by_recipient"
REQUEST_REFUSED = "request_refused"
NOT_ACKNOWLEDGED = "not_acknowledged"
SIGNATURE_PROBLEM = "signature_problem"
RECALL_UNANSWERED = "recall_unanswered"
CERTIFICATE_EXPIRING = "certificate_expiring"
CRL_EXPIRING = "crl_expiring"
STATUS_NOT_SENT = "status_not_sent"

KINDS = MappingProxyType(
    {
        NOT_SENT_IN_TIME: (
            "signed but not sent by its send-by moment",
            "đã ký nhưng chưa phát hành đúng hạn",
            "send it now, or say why it waits",
            "phát hành ngay hoặc ghi rõ lý do chưa phát hành",
        ),
        NOT_DELIVERED: (
            "not delivered to a recipient in time",
            "chưa đến cơ quan nhận đúng hạn",
            "check the recipient's system and contact the recipient",
            "kiểm tra hệ thống của cơ quan nhận và liên hệ cơ quan nhận",
        ),
        DELIVERY_FAILED: (
            "delivery to a recipient failed for good",
            "gửi đến cơ quan nhận không thành công",
            "resend once the recipient's system is back (send a replacement instead if the "
            "document was updated after it was sent), or contact the recipient",
            "gửi lại khi hệ thống của cơ quan nhận hoạt động trở lại (gửi văn bản thay thế "
            "nếu văn bản đã được cập nhật sau khi phát hành), hoặc liên hệ cơ quan nhận",
        ),
        REFUSED_BY_RECIPIENT: (
            "refused by a recipient (status 02)",
            "bị cơ quan nhận từ chối tiếp nhận (trạng thái 02)",
            "read the recipient's reason; correct and replace the document if needed",
            "xem lý do từ chối; sửa và thay thế văn bản nếu cần",
        ),
        REQUEST_REFUSED: (
            "a recipient refused a recall, update or replacement (status 16): the document "
            "stays in force there",
            "cơ quan nhận từ chối yêu cầu thu hồi, cập nhật hoặc thay thế (trạng thái 16): "
            "văn bản vẫn còn hiệu lực tại cơ quan nhận",
            "read the recipient's reason; contact the recipient if the request must stand",
            "xem lý do từ chối; liên hệ cơ quan nhận nếu yêu cầu vẫn cần thực hiện",
        ),
        NOT_ACKNOWLEDGED: (
            # (by its time rule: the working day it arrived, or hours for urgent ones)
            "not registered by a recipient in time after it arrived",
            "cơ quan nhận chưa vào sổ đúng hạn sau khi văn bản đến",
            "contact the recipient's văn thư to register it",
            "liên hệ văn thư cơ quan nhận để vào sổ văn bản",
        ),
        SIGNATURE_PROBLEM: (
            "a signature was found invalid or could not be checked",
            "chữ ký số không hợp lệ hoặc không kiểm tra được",
            "check the signer's certificate and the trust list; sign again if needed",
            "kiểm tra chứng thư số của người ký và danh sách tin cậy; ký lại nếu cần",
        ),
        RECALL_UNANSWERED: (
            "a recipient has not answered a recall, update or replacement",
            "cơ quan nhận chưa trả lời yêu cầu thu hồi, cập nhật hoặc thay thế",
            "contact the recipient to answer (agree 15 or refuse 16)",
            "liên hệ cơ quan nhận để trả lời (đồng ý 15 hoặc từ chối 16)",
        ),
        CERTIFICATE_EXPIRING: (
            "a certificate the agency signs with expires soon",
            "chứng thư số của cơ quan sắp hết hạn",
            "renew the certificate before it expires",
            "gia hạn chứng thư số trước khi hết hạn",
        ),
        CRL_EXPIRING: (
            "a certificate revocation list expires soon",
            "danh sách chứng thư số bị thu hồi sắp hết hạn",
            "import a fresh revocation list from the certificate authority",
            "cập nhật danh sách thu hồi mới từ tổ chức cung cấp dịch vụ chứng thực",
        ),
        STATUS_NOT_SENT: (
            "a status message could not be given to the sender",
            "không gửi được thông báo trạng thái văn bản đến cho cơ quan gửi",
            "check the sender's entry in the directory and its system; send it again",
            "kiểm tra thông tin cơ quan gửi trong danh bạ và hệ thống của cơ quan gửi; gửi lại",
        ),
    }
)

# Said of a document that arrived here, to this agency's own clerks and supervisors (the
# kinds above speak to the sender of what its recipient should do).
RECEIVED_KINDS = MappingProxyType(
    {
        NOT_ACKNOWLEDGED: (
            "a document that arrived is not registered in time",
            "văn bản đến chưa được vào sổ đúng hạn",
            "register it, or refuse it with a reason",
            "vào sổ văn bản đến, hoặc từ chối tiếp nhận có nêu lý do",
        ),
        # Decree 30 Art. 18: on the sender's notice, the recipient cancels (or corrects) the
        # document and tells the sender: the duty is ours once a recall or update arrived.
        RECALL_UNANSWERED: (
            "a recall or update of a document that arrived here is not answered in time",
            "chưa trả lời yêu cầu thu hồi hoặc cập nhật văn bản đến đúng hạn",
            "answer it: agree (15), or refuse with a reason (16)",
            "trả lời yêu cầu: đồng ý (15), hoặc từ chối có nêu lý do (16)",
        ),
    }
)


def texts(kind: str, received: bool = False) -> tuple[str, str, str, str]:
    """What an escalation of ``kind`` is and what to do (English, Vietnamese each); on a
    document that arrived here (``received``), as its own agency is told."""
    return (RECEIVED_KINDS.get(kind) if received else None) or KINDS[kind]


# How loud: by the document's urgency, and never below "high" for what went wrong for good.
NORMAL = "normal"
HIGH = "high"
CRITICAL = "critical"
SEVERITIES = (NORMAL, HIGH, CRITICAL)
_AT_LEAST_HIGH = frozenset(
    {DELIVERY_FAILED, REFUSED_BY_RECIPIENT, REQUEST_REFUSED, SIGNATURE_PROBLEM, STATUS_NOT_SENT}
)

# Outcomes a supervisor resolves with.
OUTCOMES = ("resent", "recalled", "contacted", "delivered_otherwise", "accepted", "no_action")
# Actions a supervisor takes from an escalation.
ACTIONS = ("resend", "recall", "contact")


def severity(kind: str, urgency: int) -> str:
    """Severity by the document's urgency (hỏa tốc is critical, khẩn high)."""
    level = CRITICAL if urgency >= 3 else HIGH if urgency >= 1 else NORMAL
    if kind in _AT_LEAST_HIGH and level == NORMAL:
        return HIGH
    return level


def cause_key(kind: str, subject_id: str) -> str:
    """What makes two escalations the same: one kind on one subject (a dispatch, a document,
    a received document, a certificate)."""
    return f"{kind}:{subject_id}"
