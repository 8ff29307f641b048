"""Format (thể thức) checks: number and symbol, place and date, type, subject, signer."""

from __future__ import annotations

import re
from datetime import date

from congvan.states.format_rules import (
    ACTING,
    COMPETENCE_PREFIXES,
    KNOWN_DOC_TYPES,
    LEGAL_NORMATIVE_ONLY,
    LEGAL_NORMATIVE_TYPES,
    OFFICIAL_LETTER,
    competence_chain,
    grants_competence,
    is_deputy,
    is_deputy_of,
    nfc,
    same_office,
    symbol_cased,
    symbol_shaped,
)
from congvan.states.policy import SECRECY, URGENCY, written_notation
from congvan.states.text import (
    calendar_day,
    has_visible_text,
    mixed_script_word,
    one_tone_placement,
)
from congvan.states.timeliness import (
    FIRST_DAY,
    LAST_DAY,
    VIETNAM,
    is_urgent,
    reckoned,
    send_by_date,
)

from ..signing.pades import unshown
from .registry import BLOCKING, WARNING, CheckInput, Finding, check, fail, ok


@check(
    "format.number_symbol",
    BLOCKING,
    "Số và ký hiệu đúng thể thức",
    "Number and symbol are well formed",
)
def number_symbol(inp: CheckInput) -> Finding:
    doc = inp.document
    number, symbol, doc_type = doc.number, doc.symbol or "", doc.doc_type
    if not number or number < 1:
        return fail("Thiếu số văn bản.", "The document number is missing.", field="number")
    if not symbol:
        return fail("Thiếu ký hiệu văn bản.", "The symbol is missing.", field="symbol")
    if " " in symbol or "/" in symbol:
        return fail(
            "Ký hiệu không được có dấu cách hay dấu '/'.",
            "The symbol may contain neither spaces nor '/'.",
            field="symbol",
            value=symbol,
        )
    agency_abbr = inp.agency.abbreviation if inp.agency else ""
    if doc_type == OFFICIAL_LETTER:
        expected = f"{agency_abbr}-<đơn vị soạn thảo>"
    else:
        expected = f"{doc_type}-{agency_abbr}"
    shape_ok = symbol_shaped(symbol, doc_type, agency_abbr)
    # Every group in capitals (the agency's abbreviation too: an inbox refuses any other),
    # but the type's abbreviation as Decree 30 writes it (TTr, CTr, QyĐ)
    if not shape_ok or not symbol_cased(symbol, doc_type):
        return fail(
            f"Ký hiệu '{symbol}' không đúng dạng {expected} (chữ in hoa, nối bằng '-').",
            f"Symbol '{symbol}' does not have the form {expected} (upper case, joined by '-').",
            field="symbol",
            value=symbol,
            expected=expected,
        )
    return ok(notation=written_notation(doc.as_dict()))


@check(
    "format.place_date",
    BLOCKING,
    "Có địa danh và ngày ban hành hợp lệ",
    "Place and date are present and valid",
)
def place_date(inp: CheckInput) -> Finding:
    doc = inp.document
    if not has_visible_text(doc.place or ""):
        return fail("Thiếu địa danh.", "The place is missing.", field="place")
    if not any(ch.isalpha() for ch in doc.place or ""):
        # A place is the name of an administrative unit, not a blank to fill (".....")
        return fail(
            f"Địa danh '{doc.place}' không phải tên một đơn vị hành chính.",
            f"The place '{doc.place}' names no administrative unit.",
            field="place",
            value=doc.place,
        )
    if (mixed := _mixed_script("Địa danh", "The place", doc.place or "", "place")) is not None:
        return mixed
    if _DATED.search(nfc(doc.place or "")):
        # The line is built from both: "<place>, ngày … tháng … năm …" said twice
        return fail(
            f"Địa danh '{doc.place}' có cả ngày tháng: chỉ ghi tên đơn vị hành chính, ngày "
            "ban hành ghi ở issued_on.",
            f"The place '{doc.place}' holds a date: give the administrative unit's name "
            "alone, and the date as issued_on.",
            field="place",
            value=doc.place,
        )
    if not doc.issued_on:
        return fail("Thiếu ngày ban hành.", "The date is missing.", field="issued_on")
    issued = _parse_date(doc.issued_on)
    if issued is None:
        return fail(
            "Ngày ban hành sai định dạng (YYYY-MM-DD).",
            "The date is not a valid YYYY-MM-DD date.",
            field="issued_on",
            value=str(doc.issued_on)[:40],
        )
    if issued > inp.today:
        return fail(
            f"Ngày ban hành {issued:%d/%m/%Y} ở tương lai.",
            f"The date {issued.isoformat()} is in the future.",
            field="issued_on",
            value=doc.issued_on,
            today=inp.today.isoformat(),
        )
    if not reckoned(issued):  # kept before the API held dates to the range
        return fail(
            f"Ngày ban hành {issued.isoformat()} nằm ngoài các năm {FIRST_DAY.year}–"
            f"{LAST_DAY.year}.",
            f"The date {issued.isoformat()} is outside the years {FIRST_DAY.year} to "
            f"{LAST_DAY.year}.",
            field="issued_on",
            value=doc.issued_on,
        )
    return ok()


@check("format.doc_type", BLOCKING, "Tên loại văn bản hợp lệ", "The document type is known")
def doc_type(inp: CheckInput) -> Finding:
    value = inp.document.doc_type
    legal_normative = bool(inp.document.legal_normative)
    if value not in KNOWN_DOC_TYPES:
        return fail(
            f"Tên loại '{value}' không có trong danh mục.",
            f"Document type '{value}' is not in the list.",
            field="doc_type",
            value=value,
            allowed=sorted(KNOWN_DOC_TYPES),
        )
    if legal_normative and value not in LEGAL_NORMATIVE_TYPES:
        return fail(
            f"'{KNOWN_DOC_TYPES[value]}' không phải loại văn bản quy phạm pháp luật.",
            f"A '{KNOWN_DOC_TYPES[value]}' is never a legal normative document.",
            field="legal_normative",
            value=value,
            allowed=sorted(LEGAL_NORMATIVE_TYPES),
        )
    if not legal_normative and value in LEGAL_NORMATIVE_ONLY:
        return fail(
            f"'{KNOWN_DOC_TYPES[value]}' là văn bản quy phạm pháp luật (legal_normative).",
            f"A '{KNOWN_DOC_TYPES[value]}' is always a legal normative document (legal_normative).",
            field="legal_normative",
            value=value,
        )
    return ok(name=KNOWN_DOC_TYPES[value], legal_normative=legal_normative)


@check(
    "format.subject",
    BLOCKING,
    "Có trích yếu, độ dài hợp lệ",
    "The subject is present and not too long",
)
def subject(inp: CheckInput) -> Finding:
    text = (inp.document.subject or "").strip()
    if not text:
        return fail("Thiếu trích yếu.", "The subject is missing.", field="subject")
    if len(text) > inp.max_subject_length:
        return fail(
            "Trích yếu quá dài.",
            "The subject is too long.",
            field="subject",
            length=len(text),
            max_length=inp.max_subject_length,
        )
    if not _WORD.search(_LETTER_PREFIX.sub("", text, count=1)):
        # "V/v ......", "- - -", "12345": a blank left to fill, no summary of anything
        return fail(
            f"Trích yếu '{text[:80]}' không nêu nội dung văn bản.",
            f"The subject '{text[:80]}' says nothing of what the document is about.",
            field="subject",
            value=text[:200],
        )
    return _mixed_script("Trích yếu", "The subject", text, "subject") or ok()


# A word of two letters or more (of any script): what a summary is written in.
_WORD = re.compile(r"[^\W\d_]{2,}")
# A Vietnamese vowel carrying a mark (breve, circumflex, horn, tone): a word written out.
_MARKED_VOWEL = re.compile(r"[ĂÂÊÔƠƯÁÀẢÃẠẮẰẲẴẶẤẦẨẪẬÉÈẺẼẸẾỀỂỄỆÍÌỈĨỊÓÒỎÕỌỐỒỔỖỘỚỜỞỠỢÚÙỦŨỤỨỪỬỮỰÝỲỶỸỴ]")
# "V/v" (về việc) opening an official letter's subject: no summary by itself.
_LETTER_PREFIX = re.compile(r"^\s*v/v\b", re.IGNORECASE)
# A date written into the place: "ngày 06 tháng 02 năm 2021", "ngày…tháng…năm…" (the
# line's blank), "06/02/2021", "6/2/21", "2021-02-06".
_DATED = re.compile(
    r"\bngày\s*\d{1,2}(?!\d)|\btháng\s*\d{1,2}(?!\d)|\bnăm\s*\d{4}(?!\d)"
    r"|\bngày\b.*\btháng\b"
    r"|(?<!\d)\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})(?!\d)|(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)",
    re.IGNORECASE,
)


@check(
    "format.subject_case",
    WARNING,
    "Trích yếu viết chữ in thường",
    "The subject is not written in capitals",
)
def subject_case(inp: CheckInput) -> Finding:
    """Decree 30 Appendix I prints a subject in lower case (chữ in thường), as a sentence;
    an abbreviation in it stays (UBND, COVID-19), a subject of capitals alone is a title."""
    words = _WORD.findall(_LETTER_PREFIX.sub("", inp.document.subject or "", count=1))
    # Words written out in capitals (a vowel with a mark: TĂNG, CƯỜNG), not abbreviations
    # (UBND, HĐND, BHXH): three or more, and most of the subject
    capitals = [w for w in words if w.isupper() and _MARKED_VOWEL.search(w)]
    if len(capitals) >= 3 and 3 * len(capitals) >= 2 * len(words):
        return fail(
            "Trích yếu viết toàn chữ in hoa; Nghị định 30 trình bày trích yếu bằng chữ in thường.",
            "The subject is written in capitals; Decree 30 writes a subject in lower case.",
            field="subject",
        )
    return ok()


def _mixed_script(vi: str, en: str, text: str, field: str) -> Finding | None:
    """A failure naming the first word of ``text`` that mixes the letters of several
    scripts (a Cyrillic ``е`` in ``Thiên``: a look-alike, never Vietnamese), if any."""
    word = mixed_script_word(text)
    if word is None:
        return None
    return fail(
        f"{vi} có từ '{word}' lẫn chữ cái của bảng chữ khác (chữ giống chữ Latinh): "
        "gõ lại bằng chữ tiếng Việt.",
        f"{en} has the word '{word}' mixing letters of several scripts (look-alikes of "
        "Latin letters): type it again in Vietnamese letters.",
        field=field,
        word=word,
    )


@check(
    "format.subject_prefix",
    WARNING,
    "Trích yếu công văn bắt đầu bằng 'V/v'",
    "An official letter's subject starts with 'V/v'",
)
def subject_prefix(inp: CheckInput) -> Finding:
    doc = inp.document
    if doc.doc_type == OFFICIAL_LETTER and not (doc.subject or "").startswith("V/v"):
        return fail(
            "Trích yếu công văn nên bắt đầu bằng 'V/v'.",
            "An official letter's subject should start with 'V/v'.",
            field="subject",
        )
    return ok()


@check(
    "format.signer_block",
    BLOCKING,
    "Quyền hạn, chức vụ và họ tên người ký nhất quán",
    "The signer block is consistent",
)
def signer_block(inp: CheckInput) -> Finding:
    doc = inp.document
    name = nfc(doc.signer_name or "").strip()
    position = nfc(doc.signer_position or "").strip()
    competence = nfc(doc.signer_competence or "").strip()
    if not name or not position:
        return fail(
            "Thiếu họ tên hoặc chức vụ người ký.",
            "The signer's name or position is missing.",
            field="signer_name" if not name else "signer_position",
        )
    agency_name = inp.agency.name if inp.agency else ""
    for field, text in (
        ("signer_name", name),
        ("signer_position", position),
        ("agency", agency_name),
    ):
        if missing := unshown(text):
            letters = " ".join(missing)
            return fail(
                f"Dấu chữ ký số không hiển thị được {letters}: hãy viết bằng chữ tiếng Việt.",
                f"The signer's stamp cannot show {letters}: write it in Vietnamese letters.",
                field=field,
                characters=missing,
            )
    if competence:
        chain = competence_chain(competence)
        if chain is None:
            return fail(
                f"Quyền hạn ký '{competence}' phải là {', '.join(COMPETENCE_PREFIXES)} "
                "và chức danh in hoa (TM./TL. có thể kèm KT. của cấp phó).",
                f"Signing authority '{competence}' must be one of "
                f"{', '.join(COMPETENCE_PREFIXES)} followed by a title in upper case "
                "(TM. or TL. may be followed by a deputy's KT.).",
                field="signer_competence",
                value=competence,
            )
        prefixes = [prefix for prefix, _ in chain]
        if ACTING in prefixes:
            if not _granted(inp, competence):
                return fail(
                    f"Ký '{competence}' (quyền cấp trưởng) cần thẩm quyền ký giao đúng "
                    "quyền hạn này.",
                    f"Signing '{competence}' (acting head) needs a signing authority that "
                    "grants exactly this competence.",
                    field="signer_competence",
                    value=competence,
                )
        elif is_deputy(position) and "KT." not in prefixes:
            return fail(
                f"Cấp phó ký phải ghi 'KT.' và chức danh người đứng đầu ('{competence}' "
                "thiếu KT.).",
                f"A deputy signs with 'KT.' and the head's title ('{competence}' has none).",
                field="signer_competence",
                value=competence,
            )
        for prefix, title in chain:
            if prefix in ("TL.", "TUQ.") and same_office(position, title):
                # By the head's order (TL.), or authorised by the head (TUQ.): someone
                # else than that head, who signs in their own right
                return fail(
                    f"'{prefix} {title}' do người khác ký thay lệnh/theo ủy quyền của "
                    f"{title}; {title} ký với chức danh của mình.",
                    f"'{prefix} {title}' is signed by someone else on the {title}'s "
                    f"behalf; the {title} signs under their own title.",
                    field="signer_competence",
                    value=competence,
                )
        head = next((title for prefix, title in chain if prefix == "KT."), None)
        if head is not None and not is_deputy_of(position, head):
            return fail(
                f"Ký thay (KT. {head}) phải do cấp phó của {head} ký.",
                f"Only a deputy of the {head} signs 'KT. {head}'.",
                field="signer_position",
                value=position,
                head=head,
            )
    elif is_deputy(position):
        return fail(
            "Cấp phó ký phải ghi 'KT.' trước chức danh của người đứng đầu.",
            "A deputy signs with 'KT.' before the head's title.",
            field="signer_competence",
        )
    username = (doc.signer_user or "").strip()
    if username:
        user = inp.uow.agencies.user(doc.agency_id, username)
        if user is None or "signer" not in user.roles.split(","):
            return fail(
                f"'{username}' không phải người ký của cơ quan.",
                f"'{username}' is not a signer of the agency.",
                field="signer_user",
            )
        # (one name, whichever vowel of oa, oe, uy the tone is written over)
        if user.full_name and one_tone_placement(user.full_name) != one_tone_placement(name):
            return fail(
                "Họ tên người ký khác với tài khoản người ký.",
                "The signer's name differs from the signer's account.",
                field="signer_name",
                account=user.full_name,
                document=name,
            )
    return ok()


def _granted(inp: CheckInput, competence: str) -> bool:
    """Whether the signer holds an authority naming ``competence`` (or its own line, Q. …)
    on the date."""
    doc = inp.document
    username = (doc.signer_user or "").strip()
    if not username:
        return False
    on = str(doc.issued_on or inp.today.isoformat())
    held = inp.uow.authorities.holdings(doc.agency_id, username, doc.doc_type, on)
    # An authority naming no competence does not make anyone acting head.
    return any(a.competence and grants_competence(a.competence, competence) for a in held)


@check("format.recipients", BLOCKING, "Có nơi nhận", "Recipients (Nơi nhận) are present")
def recipients(inp: CheckInput) -> Finding:
    if not inp.recipients:
        return fail("Thiếu nơi nhận.", "No recipients.", field="recipients")
    return ok(count=len(inp.recipients))


@check("format.urgency", BLOCKING, "Độ khẩn hợp lệ", "The urgency is a known value")
def urgency(inp: CheckInput) -> Finding:
    value = inp.document.urgency
    if value not in URGENCY:
        return fail(
            f"Độ khẩn '{value}' không hợp lệ.",
            f"Urgency '{value}' is unknown.",
            field="urgency",
            allowed=sorted(URGENCY),
        )
    return ok(label=URGENCY[value])


@check(
    "format.secrecy",
    BLOCKING,
    "Không mang dấu độ mật",
    "Carries no secrecy mark (never sent electronically)",
)
def secrecy(inp: CheckInput) -> Finding:
    value = inp.document.secrecy or ""
    if value:
        label = SECRECY.get(value, value)
        return fail(
            f"Văn bản '{label}' không được gửi qua mạng (Luật Bảo vệ bí mật nhà nước, "
            "Quyết định 28/2018/QĐ-TTg).",
            f"A document marked '{label}' must never be sent electronically (state secrets "
            "law; Decision 28/2018/QĐ-TTg excludes it).",
            field="secrecy",
            value=value,
        )
    return ok()


@check(
    "format.issue_year",
    BLOCKING,
    "Ngày ban hành trong năm hiện tại: số văn bản thuộc dãy số của năm đó",
    "Dated in the current year: its number belongs to that year's series",
)
def issue_year(inp: CheckInput) -> Finding:
    """Decree 30/2020 Art. 15: numbers run from 01 on 1 January to 31 December, and a
    document is numbered and dated when it is issued. One dated in another year than now
    (Vietnam time) would take a number of a series already closed, or not yet open."""
    issued = _parse_date(inp.document.issued_on) if inp.document.issued_on else None
    if issued is None:
        return ok()  # no date, or none readable: format.timeliness says so
    year = inp.moment.astimezone(VIETNAM).year
    if issued.year != year:
        return fail(
            f"Ngày ban hành {issued:%d/%m/%Y} không thuộc năm {year}: văn bản được ghi ngày "
            "và lấy số theo năm ban hành.",
            f"Dated {issued.isoformat()}, not in {year}: a document is dated and numbered in "
            "the year it is issued.",
            field="issued_on",
            value=issued.isoformat(),
            year=year,
        )
    return ok()


@check(
    "format.timeliness",
    WARNING,
    "Phát hành trong ngày ký, chậm nhất sáng ngày làm việc tiếp theo; văn bản khẩn ngay",
    "Sent on the signing day, at the latest the next working morning; urgent ones at once",
)
def timeliness(inp: CheckInput) -> Finding:
    """Decision 28/2018, Art. 6: send on the signing day, at the latest the morning of the
    next working day (weekends, public holidays and swapped days off are not working days;
    make-up Saturdays are); urgent documents right after signing. At review the signing
    time is not known yet: the document may be signed until the end of its date."""
    doc = inp.document
    value = doc.issued_on
    if not value:
        return fail(
            "Không có ngày ban hành để đối chiếu thời hạn.",
            "There is no date to judge timeliness by.",
            field="issued_on",
        )
    issued = _parse_date(value)
    if issued is None:
        return fail(
            "Ngày ban hành sai định dạng.",
            "The date is not valid.",
            field="issued_on",
            value=str(value)[:40],
        )
    urgency = doc.urgency or 0
    latest = send_by_date(issued, urgency, inp.calendar, inp.send_cutoff)
    now = inp.moment.astimezone(VIETNAM)
    if now > latest:
        when = "trong ngày ký" if is_urgent(urgency) else f"{latest:%H:%M %d/%m/%Y}"
        return fail(
            f"Đã quá hạn phát hành: chậm nhất {when}.",
            f"Past the time to send it: {latest.isoformat()} at the latest.",
            field="issued_on",
            value=value,
            urgency=urgency,
            latest=latest.isoformat(),
            today=now.date().isoformat(),
            now=now.isoformat(),
        )
    return ok(latest=latest.isoformat())


def _parse_date(value: object) -> date | None:
    try:
        return calendar_day(str(value))
    except ValueError:
        return None
