"""The format rules of Decree 30/2020/NĐ-CP that the checks apply, as data."""

from __future__ import annotations

import unicodedata

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

# Signing on behalf (Art. 13): ký thay, thay mặt, thừa lệnh, thừa ủy quyền.
COMPETENCE_PREFIXES = {
    "KT.": "ký thay",
    "TM.": "thay mặt",
    "TL.": "thừa lệnh",
    "TUQ.": "thừa ủy quyền",
}
DEPUTY = "PHÓ "


def nfc(text: str) -> str:
    """Text in composed form: keyboards type Vietnamese composed (NFC) or decomposed (NFD)."""
    return unicodedata.normalize("NFC", text)


def symbol_groups(symbol: str) -> list[str]:
    return symbol.split("-")


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


def competence_parts(competence: str) -> tuple[str, str] | None:
    """``KT. CHỦ TỊCH`` → (``KT.``, ``CHỦ TỊCH``); ``None`` when malformed."""
    for prefix in COMPETENCE_PREFIXES:
        if competence.startswith(prefix + " "):
            title = competence[len(prefix) + 1 :].strip()
            if title and title == title.upper():
                return prefix, title
    return None
