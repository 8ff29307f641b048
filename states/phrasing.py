"""Findings of ``states/explanation.py`` as sentences, each in Vietnamese and in English.

One template pair per finding code; moments are shown in Vietnam time, durations in
days, hours and minutes. Pure: a finding in, ``{"vi": ..., "en": ...}`` out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from . import escalation
from . import explanation as x
from .received import STATUS_LABEL
from .timeliness import in_vietnam, utc_unless_said
from .vocabulary import KIND_WORDS

Sentence = dict[str, str]

# How a delivery attempt ended (actions/delivery.py), in both languages.
OUTCOMES = {
    "delivered": ("đã đến nơi nhận", "delivered"),
    "refused": ("bị nơi nhận từ chối", "refused by the recipient"),
    "transient": ("chưa gửi được (lỗi tạm thời)", "not delivered (transient failure)"),
    "unknown": ("không rõ kết quả (yêu cầu đã đi, không có trả lời)", "outcome unknown"),
    "bad_receipt": ("biên nhận không hợp lệ", "receipt not valid"),
}


def moment(at: datetime | None, lang: str) -> str:
    """``at`` in Vietnam time: 14:05 30/11/2026 (vi) or 2026-11-30 14:05 ICT (en); a
    moment without an offset is UTC, as everywhere a moment is shown (``timeliness``)."""
    if at is None:
        return "—"
    local = in_vietnam(utc_unless_said(at))
    if lang == "vi":
        return local.strftime("%H:%M ngày %d/%m/%Y (giờ Việt Nam)")
    return local.strftime("%Y-%m-%d %H:%M ICT")


def duration(span: timedelta | None, lang: str, *, in_days: bool = True) -> str:
    """``span`` as 2 d 3 h, 1 h 05 min, 40 s (or ngày, giờ, phút, giây).

    Working time is told in hours (``in_days`` False): 24 working hours are three working
    days, and "1 ngày" would read as one of them.
    """
    if span is None:
        return "—"
    seconds = max(int(span.total_seconds()), 0)
    days, rest = divmod(seconds, 86400) if in_days else (0, seconds)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = ("ngày", "giờ", "phút", "giây") if lang == "vi" else ("d", "h", "min", "s")
    if days:  # minutes kept: "10 ngày 0 giờ" for 10 days and 25 minutes read as exact
        text = f"{days} {units[0]} {hours} {units[1]}"
        return f"{text} {minutes:02d} {units[2]}" if minutes else text
    if hours:
        return f"{hours} {units[1]} {minutes:02d} {units[2]}"
    if minutes:
        return f"{minutes} {units[2]}"
    return f"{secs} {units[3]}"


def _outcome(code: str | None, lang: str) -> str:
    pair = OUTCOMES.get(code or "")
    if pair is None:
        return code or "—"
    return pair[0] if lang == "vi" else pair[1]


def _status(code: str | None, lang: str) -> str:
    """``03 (đã tiếp nhận, vào sổ)`` or ``03 (registered)``: the code, in one language."""
    if code is None or code not in STATUS_LABEL:
        return "—"
    english, _, vietnamese = STATUS_LABEL[code].partition(" (")  # "registered (đã …)"
    return f"{code} ({vietnamese.removesuffix(')') if lang == 'vi' else english})"


def _names(values: Any) -> str:
    return ", ".join(str(v) for v in values or ()) or "—"


def _left(f: Mapping[str, Any], lang: str) -> str:
    """ ", in 2 h (1 h of working time)" for a due moment still ahead."""
    if f.get("overdue"):
        return ", đã đến hạn" if lang == "vi" else ", now due"
    span = duration(f["remaining"], lang)
    if f.get("remaining_working") is None:  # a rule on the clock: working time says nothing
        return f", còn {span}" if lang == "vi" else f", in {span}"
    working = duration(f["remaining_working"], lang, in_days=False)
    if lang == "vi":
        return f", còn {span} (thời gian làm việc còn lại: {working})"
    return f", in {span} ({working} of working time)"


# How an attempt's error begins (actions/delivery.py, actions/messengers.py), in Vietnamese:
# the rest is the system's own words (an exception, a peer's answer), quoted as they came.
_ERROR_LEADS = {"not sent: ": "chưa gửi đi được: ", "no answer: ": "không nhận được trả lời: "}


def _last(f: Mapping[str, Any], lang: str) -> str:
    if not f.get("last_outcome"):
        return ""
    error = f.get("last_error") or _outcome(f["last_outcome"], lang)
    if lang != "vi":
        return f"; last attempt: {error}"
    for lead, said in _ERROR_LEADS.items():
        if error.startswith(lead):
            error = said + error.removeprefix(lead)
    return f"; lần gửi trước: {error}"


_Phrase = Callable[[Mapping[str, Any], str], str]


def _escalation(f: Mapping[str, Any], lang: str) -> str:
    opened = moment(f["opened_at"], lang)
    request = f.get("request_kind")
    aside = f.get("snoozed_until")
    if lang == "vi":
        who = f"do {f['owner']} phụ trách" if f.get("owner") else "chưa có ai nhận xử lý"
        if aside:
            who += f", tạm gác đến {moment(aside, lang)}"
        kind = KIND_WORDS.get(str(f["kind"]), str(f["kind"]))
        about = f" về yêu cầu {_REQUEST_KIND.get(request, (request,))[0]}" if request else ""
        return f"Cảnh báo “{kind}”{about} (cấp {f['level']}) đang mở từ {opened}, {who}."
    who = f"owned by {f['owner']}" if f.get("owner") else "nobody has claimed it yet"
    if aside:
        who += f", put aside (snoozed) until {moment(aside, lang)}"
    about = f" about the {_REQUEST_KIND.get(request, ('', request))[1]} request" if request else ""
    described = escalation.KINDS.get(str(f["kind"]))
    kind = described[0] if described else str(f["kind"])
    level = f"{f['kind']}, level {f['level']}" if described else f"level {f['level']}"
    return f"Escalation “{kind}”{about} ({level}) open since {opened}, {who}."


def _done(vi: str, en: str) -> _Phrase:
    """A document whose course is run: nothing is awaited, unless escalations about it
    are still open (a person's to work)."""

    def phrase(f: Mapping[str, Any], lang: str) -> str:
        text = _both(vi, en)(f, lang)
        count = int(f.get("open_escalations") or 0)
        if lang == "vi":
            rest = f"còn {count} cảnh báo đang mở" if count else "không còn chờ gì"
        else:
            rest = f"{count} escalation(s) still open" if count else "nothing is awaited"
        return f"{text}; {rest}."

    return phrase


def _complete(f: Mapping[str, Any], lang: str) -> str:
    """Every recipient holding it registered it; those that agreed to a recall since are
    named, their copies cancelled, and those that refused the last request sent them."""
    text = _done(
        "Mọi nơi nhận đã vào sổ, xong lúc {at}", "Every recipient registered it, done at {at}"
    )(f, lang)
    said = (
        ("recalled", "Đã đồng ý thu hồi (15), bản tại đó đã hủy", "Agreed to the recall (15), "
         "their copies cancelled"),
        ("declined", "Từ chối yêu cầu (16), văn bản vẫn còn hiệu lực tại", "Refused the request "
         "(16), the document stays in force at"),
    )  # fmt: skip
    for key, vi, en in said:
        if f.get(key):
            text += f" {vi if lang == 'vi' else en}: {_names(f[key])}."
    return text


def _acknowledged(f: Mapping[str, Any], lang: str) -> str:
    """The recipient's last word: registered (03), or what it did since (04–06), or its
    answer to a recall or update (15, 16), none of which is called registration."""
    code, at = f.get("status_code"), moment(f.get("at"), lang)
    status = _status(code, lang)
    if code in ("15", "16"):
        if lang == "vi":
            return f"Nơi nhận đã trả lời yêu cầu thu hồi / cập nhật: trạng thái {status} lúc {at}."
        return f"The recipient answered the recall or update: status {status} at {at}."
    if code in ("04", "05", "06"):
        registered = moment(f.get("registered_at") or f.get("at"), lang)
        if lang == "vi":
            return f"Nơi nhận đã vào sổ lúc {registered}; từ {at} ở trạng thái {status}."
        return f"The recipient registered it at {registered}; since {at} at status {status}."
    if lang == "vi":
        return f"Nơi nhận đã vào sổ lúc {at}: trạng thái {status}."
    return f"The recipient registered it at {at}: status {status}."


_REQUEST_KIND = {"recall": ("thu hồi", "recall"), "update": ("cập nhật", "update")}


def _answers(f: Mapping[str, Any], lang: str) -> str:
    vi, en = _REQUEST_KIND.get(str(f["kind"]), (str(f["kind"]), str(f["kind"])))
    since, who = moment(f["since"], lang), _names(f["recipients"])
    if lang == "vi":
        return f"Đã gửi yêu cầu {vi} (từ {since}); chờ trả lời (15 đồng ý / 16 từ chối) của: {who}."
    article = "An" if en[:1] in "aeiou" else "A"
    return (
        f"{article} {en} request is out (since {since}); waiting for the answer (15 agrees, "
        f"16 refuses) of: {who}."
    )


def _about_request(vi: str, en: str) -> _Phrase:
    """As ``_both``, with ``{request}``: what the request asks (thu hồi, recall...)."""

    def phrase(f: Mapping[str, Any], lang: str) -> str:
        words = _REQUEST_KIND.get(str(f["kind"]), (str(f["kind"]), str(f["kind"])))
        return _both(vi, en)({**f, "request": words[0 if lang == "vi" else 1]}, lang)

    return phrase


def _both(vi: str, en: str) -> _Phrase:
    """A fixed template pair, filled from the facts by name."""
    return lambda f, lang: (vi if lang == "vi" else en).format_map(_Facts(f, lang))


class _Facts(dict[str, str]):
    """The facts as text in one language, for str.format_map."""

    def __init__(self, facts: Mapping[str, Any], lang: str) -> None:
        super().__init__()
        self.facts, self.lang = facts, lang

    def __missing__(self, key: str) -> str:
        value = self.facts.get(key)
        if isinstance(value, datetime):
            return moment(value, self.lang)
        if isinstance(value, timedelta):  # working time in hours (see duration)
            return duration(value, self.lang, in_days=not key.endswith("_working"))
        if isinstance(value, list | tuple):
            return _names(value)
        if key == "status_code":
            return _status(value, self.lang)
        if key in ("outcome", "last_outcome"):
            return _outcome(value, self.lang)
        return "—" if value is None or value == "" else str(value)


# A recall's or update's answer: owed once the request arrived, else awaited with it.
_ANSWER_OWED = _about_request(
    "Chờ nơi nhận trả lời yêu cầu {request} (15 đồng ý / 16 từ chối), gửi từ {since}.",
    "Waiting for the recipient's answer to the {request} request (15 agrees, 16 "
    "refuses), sent at {since}.",
)
_REQUEST_ON_ITS_WAY = _about_request(
    "Yêu cầu {request} gửi từ {since} chưa đến nơi nhận; nơi nhận trả lời (15 đồng ý "
    "/ 16 từ chối) khi nhận được.",
    "The {request} request sent at {since} has not reached the recipient yet; it "
    "answers (15 agrees, 16 refuses) once it has.",
)

_DUE_STEPS_VI = {
    "01": "đến nơi nhận (01)",
    "03": "được vào sổ (03)",
    "15": "được nơi nhận trả lời (15/16)",
}
_DUE_STEPS_EN = {"01": "arrive (01)", "03": "be registered (03)", "15": "be answered (15/16)"}


def _due_by(f: Mapping[str, Any], lang: str) -> str:
    at = moment(f["due_at"], lang)
    if lang == "vi":
        step = _DUE_STEPS_VI[f["step"]]
        return f"Theo quy định thời gian, phải {step} trước {at}{_left(f, lang)}."
    step = _DUE_STEPS_EN[f["step"]]
    return f"The time rules want it to {step} by {at}{_left(f, lang)}."


def _awaiting_acknowledgement(f: Mapping[str, Any], lang: str) -> str:
    """How long a delivered copy has waited for registration: on the clock, and in working
    time unless its registration runs on the clock (an urgent document)."""
    on_clock = f.get("waited_working") is None
    if lang == "vi":
        text = "Đã đến nơi nhận lúc {since}, trạng thái {status_code}; chờ vào sổ (03) đã {waited}"
        tail = "." if on_clock else " (thời gian làm việc: {waited_working})."
    else:
        text = "Delivered at {since}, status {status_code}; waiting {waited} for registration (03)"
        tail = "." if on_clock else " ({waited_working} of working time)."
    return _both(text + tail, text + tail)(f, lang)


def _waiting_for_retry(f: Mapping[str, Any], lang: str) -> str:
    at = moment(f["due_at"], lang)
    if lang == "vi":
        head = f"Đang chờ gửi lại lúc {at} (đã thử {f['attempts']} lần)"
    else:
        head = f"Waiting for retry at {at} ({f['attempts']} attempt(s) so far)"
    return head + _left(f, lang) + _last(f, lang) + "."


def _due(vi: str, en: str) -> _Phrase:
    """A template pair followed by how much time is left before ``due_at``."""

    def phrase(f: Mapping[str, Any], lang: str) -> str:
        text = _both(vi, en)(f, lang)
        return text + (_left(f, lang) if f.get("due_at") is not None else "") + "."

    return phrase


def _last_attempt(f: Mapping[str, Any], lang: str) -> str:
    status = f" HTTP {f['http_status']}" if f.get("http_status") is not None else ""
    error = f": {f['error']}" if f.get("error") else ""
    at, outcome = moment(f["at"], lang), _outcome(f["outcome"], lang)
    since = f.get("since_resend")
    if lang == "vi":
        again = f" (lần {since} kể từ khi gửi lại)" if since else ""
        return (
            f"Lần gửi thứ {f['attempt']}{again} lúc {at}: {outcome}{status}{error} "
            f"({f['latency_ms']} ms)."
        )
    again = f" ({_ordinal(since)} since the resend)" if since else ""
    return (
        f"Attempt {f['attempt']}{again} at {at}: {outcome}{status}{error} ({f['latency_ms']} ms)."
    )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _sending(f: Mapping[str, Any], lang: str) -> str:
    if f.get("due_at") is None:
        return "Đã ký, chờ phát hành." if lang == "vi" else "Signed; waiting to be sent."
    return _due("Đã ký, phải phát hành trước {due_at}", "Signed; must be sent by {due_at}")(f, lang)


# Said beside a failed secrecy check: a secret letter is not corrected into an open one.
_SECRET = {
    "vi": " Văn bản mật không gửi qua mạng (Luật Bảo vệ bí mật nhà nước; Quyết định "
    "28/2018/QĐ-TTg): văn bản mật gửi bằng giấy.",
    "en": " A document marked secret (mật) never goes by this channel (state secrets law; "
    "Decision 28/2018/QĐ-TTg): it is sent on paper.",
}

PHRASES: dict[str, _Phrase] = {
    x.AWAITING_SUBMISSION: _both(
        "Dự thảo (bản {revision}) chưa được trình kiểm tra.",
        "Draft (revision {revision}) not yet submitted for review.",
    ),
    x.CHECKS_RUNNING: _both(
        "Đang chạy các kiểm tra của bản {revision}.",
        "The review checks of revision {revision} are still running.",
    ),
    x.CHECKS_FAILING: lambda f, lang: (
        _both(
            "Kiểm tra bắt buộc không đạt: {checks}; dự thảo cần sửa.",
            "Blocking checks failed: {checks}; the draft must be corrected.",
        )(f, lang)
        + (_SECRET[lang] if "format.secrecy" in f.get("checks", ()) else "")
    ),
    x.CHECKS_AWAITING_WAIVER: _both(
        "Chờ người kiểm tra chấp nhận các cảnh báo: {checks}.",
        "Waiting for a reviewer to accept the warnings: {checks}.",
    ),
    x.AWAITING_APPROVAL: _both(
        "Mọi kiểm tra đã đạt; chờ người kiểm tra duyệt.",
        "Every check cleared; waiting for a reviewer to approve.",
    ),
    x.AWAITING_SIGNATURE: _both(
        "Đã duyệt; chờ người có thẩm quyền ký số.",
        "Approved; waiting for the signer's digital signature.",
    ),
    x.AWAITING_SENDING: _sending,
    x.SEND_OVERDUE: _both(
        "Đã ký nhưng quá hạn phát hành ({due_at}) {late_by}.",
        "Signed but {late_by} past its send-by moment ({due_at}).",
    ),
    x.AWAITING_DELIVERY: lambda f, lang: _both(
        "Đã phát hành; chưa đến: {recipients} (trên {total} nơi nhận).",
        "Sent; not yet delivered to: {recipients} (of {total} recipient"
        + ("s" if f.get("total") != 1 else "")
        + ").",
    )(f, lang),
    x.AWAITING_ACKNOWLEDGEMENTS: _both(
        "Đã đến mọi nơi nhận; chờ vào sổ: {recipients}.",
        "Delivered to every recipient; waiting for registration by: {recipients}.",
    ),
    x.AWAITING_RESEND: _both(
        "Gửi không thành công tới {recipients}; chờ người giám sát gửi lại.",
        "Delivery failed for good to {recipients}; waiting for a supervisor to resend.",
    ),
    x.REFUSED_AWAITING_REPLACEMENT: _both(
        "Bị từ chối (02) bởi {recipients}; gửi lại sẽ bị từ chối lần nữa: cần văn bản thay thế.",
        "Refused (02) by {recipients}; a resend would be refused again: a replacement is needed.",
    ),
    x.FAILED_AWAITING_REPLACEMENT: _both(
        "Gửi không thành công tới {recipients}; văn bản đã được cập nhật sau khi phát hành, "
        "gửi lại sẽ mang nội dung cũ: cần văn bản thay thế.",
        "Delivery failed for good to {recipients}; the document was updated after it was "
        "sent and a resend would carry the old values: a replacement is needed.",
    ),
    x.AWAITING_ANSWERS: lambda f, lang: _answers(f, lang),
    x.COMPLETE: lambda f, lang: _complete(f, lang),
    x.RECALLED_DONE: _done(
        "Văn bản đã được thu hồi lúc {at}: mọi nơi nhận đã có nó đều đồng ý",
        "The document was recalled at {at}: every recipient that had it agreed",
    ),
    x.REPLACED_DONE: _done(
        "Văn bản đã bị thay thế bằng văn bản đính chính lúc {at}",
        "The document was replaced by a corrected one at {at}",
    ),
    x.JOB_QUEUED: _due(
        "Việc {action} đang xếp hàng chờ xử lý, hạn xác nhận {due_at}",
        "Job {action} is queued for a worker, to be confirmed by {due_at}",
    ),
    x.ATTEMPT_IN_PROGRESS: _due(
        "Việc {action} đang chạy (lần {attempts} đã đếm), giữ chỗ đến {lease_until}",
        "Job {action} is running ({attempts} failed attempt(s) so far), leased until {lease_until}",
    ),
    x.LEASE_EXPIRED: _both(
        "Việc {action} hết hạn giữ chỗ lúc {lease_until} mà chưa ghi kết quả; "
        "sẽ chạy lại lúc {redrive_at}.",
        "Job {action}'s lease ended at {lease_until} with no outcome recorded; "
        "it is re-driven at {redrive_at}.",
    ),
    x.WAITING_FOR_RETRY: _waiting_for_retry,
    x.JOB_PARKED: _both(
        "Việc {action} bị tạm dừng lúc {parked_at} sau nhiều lần lỗi ({error}); "
        "cần người vận hành cho chạy lại (congvan timers retry).",
        "Job {action} was parked at {parked_at} after failing too often ({error}); "
        "an operator must retry it (congvan timers retry).",
    ),
    x.JOB_GAVE_UP: _both(
        "Việc {action} đã hết số lần thử ({attempts}).",
        "Job {action} spent its attempts ({attempts}).",
    ),
    x.NOTHING_SCHEDULED: _both(
        "Đang chờ nhưng không có việc hay hẹn giờ nào sẽ xử lý tiếp; cần người vận hành xem.",
        "Waiting, yet no job or timer will move it on; an operator should look.",
    ),
    x.LAST_ATTEMPT: _last_attempt,
    x.AWAITING_ACKNOWLEDGEMENT: lambda f, lang: _awaiting_acknowledgement(f, lang),
    x.DUE_BY: lambda f, lang: _due_by(f, lang),
    x.ACKNOWLEDGED_BY_RECIPIENT: lambda f, lang: _acknowledged(f, lang),
    x.COPY_RECALLED: _both(
        "Nơi nhận đã đồng ý thu hồi, trạng thái {status_code}: bản văn bản tại đó đã bị hủy.",
        "The recipient agreed to the recall, status {status_code}: its copy is cancelled.",
    ),
    x.REFUSED_BY_RECIPIENT: _both(
        "Nơi nhận từ chối (02) lúc {at}: {reason}.",
        "The recipient refused it (02) at {at}: {reason}.",
    ),
    x.ANSWER_AWAITED: lambda f, lang: (
        _ANSWER_OWED if f.get("arrived", True) else _REQUEST_ON_ITS_WAY
    )(f, lang),
    x.REQUEST_DECLINED: _about_request(
        "Nơi nhận từ chối yêu cầu {request} (16) lúc {at}: {reason}; văn bản vẫn còn hiệu lực "
        "tại đó.",
        "The recipient refused the {request} request (16) at {at}: {reason}; the document "
        "stays in force there.",
    ),
    x.FAILED_FOR_GOOD: _both(
        "Gửi không thành công sau {attempts} lần: {error}.",
        "Delivery failed for good after {attempts} attempt(s): {error}.",
    ),
    x.ESCALATION_OPEN: lambda f, lang: _escalation(f, lang),
}


# Said after what went wrong with a document since recalled or replaced.
_ENDED = {
    "recalled": ("văn bản đã được thu hồi, không còn chờ gì", "the document was recalled"),
    "replaced": ("văn bản đã được thay thế, không còn chờ gì", "the document was replaced"),
}


def sentence(finding: x.Finding) -> Sentence:
    """The finding in Vietnamese and in English."""
    phrase = PHRASES[finding.code]
    said = {
        "vi": _ended_once(phrase(finding.facts, "vi")),
        "en": _ended_once(phrase(finding.facts, "en")),
    }
    if finding.ended is not None:
        vi, en = _ENDED.get(finding.ended, (finding.ended, finding.ended))
        said = {"vi": f"{said['vi']} ({vi}.)", "en": f"{said['en']} ({en}: nothing is awaited.)"}
    return said


def _ended_once(text: str) -> str:
    """A sentence ending in a quoted message that ends itself (an error's own full stop,
    a question): one stop, not two."""
    if text.endswith(".") and not text.endswith("...") and text[-2:-1] in (".", "?", "!"):
        return text[:-1]
    return text
