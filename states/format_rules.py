"""The format rules of Decree 30/2020/NĐ-CP that the checks apply, as data."""

from __future__ import annotations

import unicodedata

from .text import one_tone_placement

# Document types and the abbreviation each puts in its symbol (Appendix III). A công văn
# (CV) puts none: its symbol is agency + drafting unit, e.g. UBND-TĐKT.
DOC_TYPES: dict[str, str] = {
    "NQ": "Nghị quyết",
    "QĐ": "Quyết định",
    "CT": "Chỉ thị",
    "QC": "Quy chế",
    "QyĐ": "Quy định",
    "TC": "Thông cáo",
    "TB": "Thông báo",
    "HD": "Hướng dẫn",
    "CTr": "Chương trình",
    "KH": "Kế hoạch",
    "PA": "Phương án",
    "ĐA": "Đề án",
    "DA": "Dự án",
    "BC": "Báo cáo",
    "BB": "Biên bản",
    "TTr": "Tờ trình",
    "HĐ": "Hợp đồng",
    "CĐ": "Công điện",
    "BGN": "Bản ghi nhớ",
    "BTT": "Bản thỏa thuận",
    "GUQ": "Giấy ủy quyền",
    "GM": "Giấy mời",
    "GGT": "Giấy giới thiệu",
    "GNP": "Giấy nghỉ phép",
    "PG": "Phiếu gửi",
    "PC": "Phiếu chuyển",
    "PB": "Phiếu báo",
    "CV": "Công văn",
}
OFFICIAL_LETTER = "CV"

# Legal normative documents (văn bản quy phạm pháp luật) are the types the Law on their
# promulgation lists, issued by the bodies it names. Of Decree 30's types a resolution
# (NQ: of the Government, a People's Council) and a decision (QĐ: of the Prime Minister, a
# People's Committee) may be one or an administrative document, so the document says which
# (``legal_normative``); a decree (NĐ) and a circular (TT) are always legal normative. A
# directive (CT) no longer is (Law 80/2015).
LEGAL_NORMATIVE_ONLY: dict[str, str] = {"NĐ": "Nghị định", "TT": "Thông tư"}
LEGAL_NORMATIVE_TYPES = frozenset({"NQ", "QĐ", *LEGAL_NORMATIVE_ONLY})
# Every type a document or a signing authority may name.
KNOWN_DOC_TYPES: dict[str, str] = {**DOC_TYPES, **LEGAL_NORMATIVE_ONLY}

# Signing on behalf (Art. 13): ký thay, thay mặt, thừa lệnh, thừa ủy quyền.
COMPETENCE_PREFIXES = {
    "KT.": "ký thay",
    "TM.": "thay mặt",
    "TL.": "thừa lệnh",
    "TUQ.": "thừa ủy quyền",
}
DEPUTY = "PHÓ "
# An acting head (quyền) signs Q. and the head's title, only where an authority says so.
ACTING = "Q."
# The lines a signer block may stack (Appendix I): a deputy of a collective body's head
# signs TM. <body> then KT. <head>; a deputy of the unit head signing by order, TL. then
# KT.; an acting head of a collective body, TM. then Q. Authorisation (TUQ.) is never
# passed on (Art. 13), so nothing follows it.
COMPETENCE_CHAINS = frozenset(
    {(p,) for p in (*COMPETENCE_PREFIXES, ACTING)}
    | {("TM.", "KT."), ("TL.", "KT."), ("TM.", ACTING)}
)
# Heads whose deputy's title is not PHÓ + the head's title.
DEPUTY_TITLES: dict[str, tuple[str, ...]] = {"BỘ TRƯỞNG": ("THỨ TRƯỞNG",)}


def nfc(text: str) -> str:
    """Text in composed form: keyboards type Vietnamese composed (NFC) or decomposed (NFD)."""
    return unicodedata.normalize("NFC", text)


def symbol_shaped(symbol: str, doc_type: object, agency: str) -> bool:
    """Whether ``symbol`` has Decree 30's two parts (Appendix I) around ``agency``'s
    abbreviation, taken whole (it may have groups of its own: S-T): a công văn's, the
    agency's then one group naming the drafting unit (or the field); any other type's, the
    type's abbreviation then the agency's."""
    if not agency:
        return False
    if doc_type == OFFICIAL_LETTER:
        unit = symbol.removeprefix(f"{agency}-")
        return unit != symbol and bool(unit) and "-" not in unit
    return symbol == f"{doc_type}-{agency}"


# The capitals of the Vietnamese alphabet (with F, J, W, Z), precomposed (NFC). Any other
# script's capitals are refused: a Cyrillic "Т" in "TĐKT" would look the same and make a
# different symbol, slipping past the duplicate checks.
VIETNAMESE_CAPITALS = frozenset(
    "AÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬBCDĐEÈÉẺẼẸÊỀẾỂỄỆFGHIÌÍỈĨỊJKLMNOÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢPQRSTUÙÚỦŨỤƯỪỨỬỮỰVWXYỲÝỶỸỴZ"
)
_DIGITS = frozenset("0123456789")


def is_upper_group(group: str) -> bool:
    """A group of Vietnamese capitals and ASCII digits, e.g. UBND, TĐKT, H57."""
    return bool(group) and all(ch in VIETNAMESE_CAPITALS or ch in _DIGITS for ch in group)


# Agency abbreviations written in their own case by long practice: the Prime Minister's
# (QĐ-TTg, CT-TTg, and a letter of the Prime Minister's 123/TTg-KTTH).
AS_WRITTEN_AGENCIES = frozenset({"TTg"})


def agency_group_cased(group: str) -> bool:
    """Whether ``group`` is written as an agency's abbreviation is: capitals and digits,
    or one of ``AS_WRITTEN_AGENCIES``."""
    return is_upper_group(group) or group in AS_WRITTEN_AGENCIES


def symbol_cased(symbol: str, doc_type: object) -> bool:
    """Whether every group of ``symbol`` is capitals and digits (UBND, TĐKT, H57) or an
    agency's abbreviation written as practice writes it (TTg), but the first when it is
    the abbreviation of the document's type, written as Decree 30 writes it (TTr, CTr,
    QyĐ): what review asks of our symbols and an inbox of a peer's."""
    groups = symbol.split("-")
    as_written = (
        isinstance(doc_type, str)
        and doc_type in KNOWN_DOC_TYPES
        and doc_type != OFFICIAL_LETTER
        and groups[0] == doc_type
    )
    return all(agency_group_cased(g) or (i == 0 and as_written) for i, g in enumerate(groups))


def competence_parts(competence: str) -> tuple[str, str] | None:
    """``KT. CHỦ TỊCH`` → (``KT.``, ``CHỦ TỊCH``); ``None`` when malformed."""
    for prefix in COMPETENCE_PREFIXES:
        if competence.startswith(prefix + " "):
            title = competence[len(prefix) + 1 :].strip()
            if title and title == title.upper():
                return prefix, title
    return None


def competence_chain(competence: str) -> list[tuple[str, str]] | None:
    """``TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH`` (lines or spaces) → the prefixes and titles.

    ``None`` when it is not a chain of ``COMPETENCE_CHAINS``, each prefix followed by a
    space and an upper-case title.
    """
    prefixes = (*COMPETENCE_PREFIXES, ACTING)
    parts: list[tuple[str, list[str]]] = []
    for word in competence.split():
        if word in prefixes:
            parts.append((word, []))
        elif not parts:
            return None
        else:
            parts[-1][1].append(word)
    chain = [(prefix, " ".join(words)) for prefix, words in parts]
    if tuple(p for p, _ in chain) not in COMPETENCE_CHAINS:
        return None
    if not competence.startswith(chain[0][0] + " "):
        return None
    if not all(title and title == title.upper() for _, title in chain):
        return None
    return chain


def competence_line(competence: str) -> str:
    """A signer block's lines as one: NFC, single spaces (``TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH``)."""
    return " ".join(nfc(competence).split())


def grants_competence(granted: str, written: str) -> bool:
    """Whether an authority naming ``granted`` covers a signer block reading ``written``.

    The same lines, or the signer's own line alone: a deputy granted ``KT. CHỦ TỊCH`` signs
    ``TM. ỦY BAN NHÂN DÂN`` / ``KT. CHỦ TỊCH``, an acting head granted ``Q. CHỦ TỊCH`` signs
    ``TM. ỦY BAN NHÂN DÂN`` / ``Q. CHỦ TỊCH``. An authority naming no competence covers any.
    """
    granted, written = competence_line(granted), competence_line(written)
    if not granted or _same_words(granted, written):
        return True
    chain = competence_chain(written)
    # In a stacked block (Appendix I) the upper line is the body's or the head's (TM., TL.)
    # and the last line the signer's own (KT., Q.): that line is what a person is granted.
    if chain is None or len(chain) < 2:
        return False
    prefix, title = chain[-1]
    return _same_words(granted, f"{prefix} {title}")


def _same_words(a: str, b: str) -> bool:
    """The same words, whichever vowel of oa, oe, uy carries the tone (ỦY, UỶ)."""
    return one_tone_placement(a) == one_tone_placement(b)


def title_key(title: str) -> str:
    """A title as compared: upper case, one tone placement, dots and runs of spaces as one
    space (``CHỦ  TỊCH.`` is ``CHỦ TỊCH``)."""
    return " ".join(one_tone_placement(title).upper().replace(".", " ").split())


def same_office(position: str, title: str) -> bool:
    """Whether ``position`` is the office ``title`` names, one naming it more fully than the
    other (``CHỦ TỊCH UBND TỈNH`` holds ``CHỦ TỊCH``)."""
    a, b = title_key(position), title_key(title)
    return bool(a and b) and (a == b or a.startswith(b + " ") or b.startswith(a + " "))


def is_deputy(position: str) -> bool:
    upper = position.upper()
    return upper.startswith(DEPUTY) or any(
        upper == t or upper.startswith(t + " ") for ts in DEPUTY_TITLES.values() for t in ts
    )


def is_deputy_of(position: str, head: str) -> bool:
    """Whether ``position`` is a deputy of ``head``: PHÓ CHỦ TỊCH (THƯỜNG TRỰC) of CHỦ TỊCH;
    of a head of two offices (``BỘ TRƯỞNG, CHỦ NHIỆM``), a deputy of either
    (``PHÓ CHỦ NHIỆM``; ``THỨ TRƯỞNG, PHÓ CHỦ NHIỆM``)."""
    heads = [h.strip() for h in head.split(",") if h.strip()]
    for office in (p.strip().upper() for p in position.split(",")):
        for one in heads:
            titles = (DEPUTY + one, *DEPUTY_TITLES.get(one, ()))
            if any(office == t or office.startswith(t + " ") for t in titles):
                return True
    return False
