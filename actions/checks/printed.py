"""What the main file prints, held against what the document's metadata says.

Decree 30/2020 gives a document one number, the same on paper and in its electronic copy
(Art. 15), and sets what its first page prints (Art. 8, Appendix I): the national title,
the number and symbol after "Số:", the place and date (``Thừa Thiên Huế, ngày 06 tháng 02
năm 2021``), the subject; the signer's name closes the letter. The register, the package
a recipient gets and its acknowledgements carry the metadata; a reader sees the PDF. A
letter whose PDF says 1227 under metadata saying 1228 is two documents at once.

The text is read as a reader's search finds it (PDFium's text layer, the engine of
Chrome's viewer): what a font maps to Unicode, in the order it is drawn, leaving out text
drawn to show nothing (a scan's recognised text, or words hidden under the letter) and, on
the first page, text outside the page or too small to read. A scan is not judged. Text
that shows none of what every letter prints is not Unicode as Decree 30 asks (a legacy
TCVN3 or VNI font, say): it cannot be held against anything. Text hidden otherwise (white
on white, under a picture) is read: the check helps a reviewer, who reads the letter.
"""

from __future__ import annotations

import ctypes
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from congvan.states.format_rules import nfc
from congvan.states.policy import written_notation
from congvan.states.text import has_visible_text, one_tone_placement

from ..signing.pdfink import PDFIUM_LOCK
from .covered import Covers, covers, fill_colour
from .registry import WARNING, CheckInput, Finding, check, fail, ok

# How much is read: the first page up to _MOST_FIRST letters (a letter's first page holds
# a few thousand), and the signer's name looked for on the pages up to these (a decree's
# body runs long before its signature; annexes follow it).
_MOST_FIRST = 20_000
_NAME_PAGES = 150
_MOST_CHARS = 1_000_000
# Letters drawn smaller than this (points, a letter's height) are not read: nobody does.
_SMALLEST = 2.0
# Fewer letters than this on the first page: a scan (a page number, a stamp's words).
_FEWEST_LETTERS = 20

# Hyphens and dashes as word processors write them, and spaces that are not spaces.
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"), "-")
_SPACES = dict.fromkeys(map(ord, "\u00a0\u2007\u202f\u3000\t\r"), " ")
# Quotes as word processors turn them (“Xanh - Sạch - Đẹp”, H’Hen Niê).
_QUOTES = {
    **dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032"), "'"),
    **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033"), '"'),
}

_NATIONAL_TITLES = ("cộng hòa xã hội chủ nghĩa việt nam", "đảng cộng sản việt nam")
# (on text as ``clean`` leaves it, in any case; the first "Số:" is the document's, its
# number of ``_NUMBER_DIGITS`` at most: a longer run of digits reads as no number printed)
_NUMBER_DIGITS = 12
_NUMBER = re.compile(
    r"số\s*:\s*(\d*)\s*/\s*(?:(\d{4})\s*/\s*)?([^\s/-]+(?:\s*-\s*[^\s/-]+)*)", re.IGNORECASE
)
# The place and date: the first "<place>, ngày … tháng … năm …" of the page, its blanks
# left blank or dotted (a draft's, filled when it is issued) read as no date.
_BLANK = r"[\s._…]*"
_PLACE_DATE = re.compile(
    rf"([^\n:]{{1,120}}?),\s*ngày{_BLANK}(\d{{1,2}})?{_BLANK}tháng{_BLANK}(\d{{1,2}})?"
    rf"{_BLANK}năm{_BLANK}(\d{{4}})?",
    re.IGNORECASE,
)


def clean(text: str) -> str:
    """``text`` composed, with dashes, spaces and quotes as typed, no soft hyphen and no
    run of spaces; line breaks kept."""
    text = unicodedata.normalize("NFC", text.translate(_DASHES).translate(_SPACES))
    text = text.translate(_QUOTES)
    return "\n".join(" ".join(line.split()) for line in text.replace("\u00ad", "").split("\n"))


def fold(text: str) -> str:
    """``text`` as compared: ``clean``, in one case, with one tone placement (``Hoà`` is
    ``Hòa``)."""
    return one_tone_placement(clean(text).casefold())


def _flat(text: str) -> str:
    return " ".join(fold(text).split())


@dataclass(frozen=True)
class PrintedText:
    """The first page's text as a reader sees it (``clean``), and whether the pages show
    the name looked for."""

    first: str
    named: bool


class Unread(Exception):
    """The main file's text could not be read."""


def read(pdf: bytes, name: str = "") -> PrintedText:
    """The text ``pdf``'s first page shows, ``clean``, and whether its pages (its first
    ``_NAME_PAGES``) show ``name`` (folded, whole words); ``Unread`` when PDFium cannot
    open it."""
    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(pdf)
        except pdfium.PdfiumError as exc:
            raise Unread(str(exc)) from exc
        try:
            first, named, left = "", False, _MOST_CHARS
            for index in range(min(len(document), _NAME_PAGES if name else 1)):
                page = document[index]
                textpage = page.get_textpage()
                try:
                    if index == 0:
                        first = clean(_shown(page, textpage, _MOST_FIRST))
                    found = _names(page, textpage, name, left) if name else (False, 0)
                    named, read_chars = found
                finally:
                    textpage.close()
                    page.close()
                left -= read_chars
                if named or left <= 0:
                    break
        except (pdfium.PdfiumError, MemoryError) as exc:
            raise Unread(repr(exc)) from exc
        finally:
            document.close()
    return PrintedText(first, named)


# Text drawn in these modes shows nothing: a scan's recognised text, or text hidden under
# the letter (``Tr 3``; ``Tr 7`` only clips).
_UNSEEN = frozenset({pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE, pdfium_c.FPDF_TEXTRENDERMODE_CLIP})
# Filled text (the usual mode) that shows nothing on a letter's white paper: white (each
# component from this up), or fully transparent.
_PAPER_WHITE = 245
_FILLED = frozenset({pdfium_c.FPDF_TEXTRENDERMODE_FILL, pdfium_c.FPDF_TEXTRENDERMODE_FILL_CLIP})


def _unseen(obj: Any) -> bool:
    """Whether the text object ``obj`` (a raw FPDF_PAGEOBJECT) shows nothing to a reader:
    drawn invisibly, or filled white or fully transparent."""
    mode = pdfium_c.FPDFTextObj_GetTextRenderMode(obj)
    if mode in _UNSEEN:
        return True
    if mode not in _FILLED:
        return False  # outlined: its stroke shows (a stroke in white is left to be read)
    colour = fill_colour(obj)
    if colour is None:
        return False
    r, g, b, a = colour
    return a == 0 or min(r, g, b) >= _PAPER_WHITE


def _shown(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, most: int) -> str:
    """The text ``page`` shows a reader (of its first ``most`` characters), letter by
    letter: none drawn invisibly (or white, or transparent), hidden under what is painted
    after it (:mod:`.covered`), outside the page or too small to read (under ``_SMALLEST``
    points); the spaces and line breaks PDFium adds (a gap
    drawn by moving the pen, not by a space) kept as they are."""
    left, bottom, right, top = page.get_bbox()
    raw, box, unseen = textpage.raw, pdfium_c.FS_RECTF(), {}
    shown = []
    before: tuple[float, float, float] | None = None  # the last letter's right, bottom, top
    painted: Covers | None = None  # what is painted over letters, walked when first asked
    for index in range(min(textpage.count_chars(), most)):
        obj = pdfium_c.FPDFText_GetTextObject(raw, index)
        if obj and pdfium_c.FPDFText_IsGenerated(raw, index) != 1:
            key = ctypes.addressof(obj.contents)
            if key not in unseen:
                unseen[key] = _unseen(obj)
            if unseen[key] or not pdfium_c.FPDFText_GetLooseCharBox(raw, index, box):
                continue
            if painted is None:
                painted = covers(page.pdf, page)
            if painted.hides(key, box):
                continue
            x, y = (box.left + box.right) / 2, (box.bottom + box.top) / 2
            tall = abs(box.top - box.bottom)
            if not (left <= x <= right and bottom <= y <= top) or tall < _SMALLEST:
                continue
            # Columns run into one line (a header's two cells, side by side): each
            # column's text a line of its own
            if before is not None and _next_column(before, box, tall):
                shown.append("\n")
            before = (box.right, min(box.bottom, box.top), max(box.bottom, box.top))
        shown.append(chr(pdfium_c.FPDFText_GetUnicode(raw, index)))
    return "".join(shown)


# A gap wider than this many times a letter's height, on the same line, parts columns
# (a word space is a third of it; justified text stretches it to one at most).
_COLUMN_GAP = 2


def _next_column(before: tuple[float, float, float], box: Any, tall: float) -> bool:
    """Whether the letter in ``box`` stands in the next column of the line that ``before``
    (the last letter's right, bottom and top) is on."""
    right, low, high = before
    bottom, top, left = float(box.bottom), float(box.top), float(box.left)
    same_line = min(high, max(bottom, top)) > max(low, min(bottom, top))
    return same_line and left - right > _COLUMN_GAP * tall


def _names(
    page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, name: str, most: int
) -> tuple[bool, int]:
    """Whether ``page`` shows ``name`` (in its first ``most`` characters) as a reader sees
    it (:func:`_shown`); and how many characters it read."""
    count = min(textpage.count_chars(), most)
    if not _holds(_flat(clean(textpage.get_text_range(0, count))), name):
        return False, count
    # Found: shown, unless what shows it cannot be seen (looked at only here)
    return _holds(_flat(clean(_shown(page, textpage, count))), name), count


def _holds(flat: str, words: str) -> bool:
    """Whether ``flat`` holds ``words`` as whole words (``An`` is not in ``Anh``)."""
    return re.search(rf"(?<!\w){re.escape(words)}(?!\w)", flat) is not None


@check(
    "format.printed",
    WARNING,
    "Tệp chính in đúng số, ký hiệu, địa danh, ngày, trích yếu và người ký của văn bản",
    "The main file prints the document's number, symbol, place, date, subject and signer",
)
def printed(inp: CheckInput) -> Finding:
    mains = inp.main_files
    if len(mains) != 1:
        return ok(read=False, reason="main_file")  # attachments.main_file says so
    try:
        text = read(inp.content(mains[0].sha256), _flat(inp.document.signer_name or ""))
    except Unread:
        return ok(read=False, reason="unreadable")  # attachments.pdf says why
    if sum(c.isalpha() for c in text.first) < _FEWEST_LETTERS:
        return ok(read=False, reason="no_text")  # a scan
    differences = _differences(inp, text)
    if differences is None:
        return fail(
            "Không đọc được nội dung trang đầu tệp chính (không có Quốc hiệu, số, ngày "
            "tháng): văn bản phải dùng phông chữ Unicode (TCVN 6909:2001).",
            "The main file's first page shows none of what a document prints (national "
            "title, number, date) as text: a document is written in a Unicode font "
            "(TCVN 6909:2001).",
            read=True,
            reason="unrecognised",
        )
    if differences:
        vi = "; ".join(_said(d, "vi") for d in differences)
        en = "; ".join(_said(d, "en") for d in differences)
        return fail(
            f"Tệp chính in khác thông tin văn bản: {vi}.",
            f"The main file prints otherwise than the document says: {en}.",
            read=True,
            differences=differences,
            field=differences[0]["field"],
        )
    return ok(read=True)


_NAMES = {
    "national_title": ("Quốc hiệu", "the national title"),
    "number": ("số và ký hiệu", "number and symbol"),
    "symbol": ("ký hiệu", "symbol"),
    "place": ("địa danh", "place"),
    "issued_on": ("ngày ban hành", "date"),
    "subject": ("trích yếu", "subject"),
    "signer_name": ("họ tên người ký", "signer's name"),
}


def _said(difference: dict[str, Any], language: str) -> str:
    name = _NAMES[difference["field"]][0 if language == "vi" else 1]
    printed, document = difference.get("printed"), difference.get("document")
    if printed is None and document is None:
        return f"không in {name}" if language == "vi" else f"{name} not printed"
    if printed is None:
        return (
            f"không thấy {name} '{document}'"
            if language == "vi"
            else f"{name} '{document}' not found"
        )
    if language == "vi":
        return f"{name} in '{printed}', văn bản ghi '{document}'"
    return f"{name} printed '{printed}', the document says '{document}'"


def _differences(inp: CheckInput, text: PrintedText) -> list[dict[str, Any]] | None:
    """What the text prints otherwise than the metadata; None when it shows nothing a
    document prints (no national title, no number, no date: not Unicode text)."""
    doc = inp.document
    first = text.first
    flat = _flat(first)
    titled = any(_holds(flat, _flat(title)) for title in _NATIONAL_TITLES)
    number = _NUMBER.search(first)
    place_date = _PLACE_DATE.search(first)
    if not (titled or number or place_date):
        return None
    found: list[dict[str, Any]] = []
    if not titled:
        found.append({"field": "national_title", "printed": None})
    if doc.number and doc.symbol:
        said = written_notation(doc.as_dict())
        if number is None or not 0 < len(number.group(1)) <= _NUMBER_DIGITS:
            found.append({"field": "number", "printed": None, "document": said})
        else:
            year = int(number.group(2)) if number.group(2) else None
            shown = _notation(int(number.group(1)), year, number.group(3))
            if shown != _notation(doc.number, _year(doc), doc.symbol):
                printed = "".join(number.group(0).split(":", 1)[1].split())
                # the field to correct: the symbol when the number (and year) agree
                same = _notation(int(number.group(1)), year, "") == _notation(
                    doc.number, _year(doc), ""
                )
                field = "symbol" if same else "number"
                found.append({"field": field, "printed": printed, "document": said})
    if has_visible_text(doc.place or "") and doc.issued_on:
        found += _place_and_date(doc.place, str(doc.issued_on), place_date, number)
    subject = _flat(doc.subject or "")
    if has_visible_text(subject):
        about = _without_place_date(first, place_date, doc.place or "")
        if not _holds(_flat(about), subject):
            found.append({"field": "subject", "printed": None, "document": doc.subject})
        elif (longer := _runs_on(about, subject)) is not None:
            found.append({"field": "subject", "printed": longer, "document": nfc(doc.subject)})
    signer = _flat(doc.signer_name or "")
    if has_visible_text(signer) and not text.named:
        found.append({"field": "signer_name", "printed": None, "document": doc.signer_name})
    return found


def _without_place_date(first: str, printed: re.Match[str] | None, place: str) -> str:
    """``first`` without its place and date line's place (as many words as ``place``
    has) and date: a header drawing them on the line of the subject's first words (its
    other column) leaves the subject whole."""
    if printed is None:
        return first
    words = list(re.finditer(r"\S+", printed.group(1)))
    count = max(1, len(place.split()))
    start = printed.start(1) + (words[-count].start() if len(words) >= count else 0)
    return first[:start] + first[printed.end() :]


def _runs_on(first: str, subject: str) -> str | None:
    """The subject printed, where the first place printing the metadata's ``subject``
    (folded) prints more of it (:func:`_goes_on`); None where it prints it whole."""
    lines = first.split("\n")
    text = "\n".join(" ".join(fold(line).split()) for line in lines)
    words = r"[ \n]".join(re.escape(word) for word in subject.split(" "))
    found = re.search(rf"(?<!\w){words}(?!\w)", text)
    if found is None:
        return None
    start, end = text.count("\n", 0, found.start()), text.count("\n", 0, found.end())
    last = end
    while last + 1 < len(lines) and (_goes_on(lines[last + 1]) or _unended(lines[last])):
        last += 1
    on_its_line = text[found.end() :].split("\n", 1)[0]
    if last == end and not re.match(r" ?[^\s.;:!?]", on_its_line):
        return None
    return " ".join(line.strip() for line in lines[start : last + 1])


# A line that starts a part of its own: a numbered item ("1.", "a)"), a dash, or words in
# capitals alone (a title, "CHỦ TỊCH ỦY BAN NHÂN DÂN TỈNH").
_NUMBERED = re.compile(r"(\d+|[a-zđ])[.)]\s", re.IGNORECASE)


# Words a phrase cannot end on: an administrative unit before its name ("tỉnh" then
# "Thừa Thiên Huế"), a preposition or conjunction before what it joins.
_UNENDED = frozenset(
    {"tỉnh", "huyện", "quận", "xã", "phường", "trấn", "phố"}
    | {"của", "cho", "tại", "và", "với", "về", "trên", "theo", "đối", "các", "những"}
    | {"từ", "đến", "để", "trong", "thuộc", "giữa"}
)


def _unended(line: str) -> bool:
    """Whether ``line`` ends on a word its sentence cannot end on (:data:`_UNENDED`), so
    the next line goes on with it whatever its case: a place's name, a body's."""
    words = fold(line).split()
    return bool(words) and words[-1] in _UNENDED


def _goes_on(line: str) -> bool:
    """Whether ``line``, after a line ending a subject, goes on with its sentence: it
    starts in lower case, with a figure, a quote or a bracket, or with a word in capitals
    (COVID-19, UBND) that lower-case words follow; the next part of a letter starts with
    a capitalised word ("Kính gửi", "Căn cứ"), a dash, a numbered item or a title."""
    line = line.strip()
    if not line or _NUMBERED.match(line):
        return False
    head = line[0]
    if head.islower() or head.isdigit() or head in "\"'(“‘[":
        return True
    word = line.split()[0]
    return word.isupper() and (len(line.split()) == 1 or not line.isupper())


def _place_and_date(
    place: str,
    issued_on: str,
    printed: re.Match[str] | None,
    number: re.Match[str] | None,
) -> list[dict[str, Any]]:
    try:
        issued = date.fromisoformat(issued_on)
    except ValueError:
        return []  # format.place_date says so
    if printed is None:
        return [
            {"field": "place", "printed": None, "document": nfc(place)},
            {"field": "issued_on", "printed": None, "document": issued.isoformat()},
        ]
    found: list[dict[str, Any]] = []
    # The place ends what comes before the comma: a two-column header may run the number
    # and the place into one line (what is shown of it starts after the number).
    start = printed.start(1)
    if number is not None and start <= number.end() < printed.end(1):
        start = number.end()
    shown_place = printed.string[start : printed.end(1)].strip()
    if not _is_place(_flat(shown_place), _flat(place)):
        found.append({"field": "place", "printed": shown_place, "document": nfc(place)})
    if None in printed.group(2, 3, 4):
        shown: str | None = None
    else:
        day, month, year = (int(printed.group(n)) for n in (2, 3, 4))
        try:
            shown = date(year, month, day).isoformat()
        except ValueError:
            shown = f"{year:04d}-{month:02d}-{day:02d}"
    if shown != issued.isoformat():
        found.append({"field": "issued_on", "printed": shown, "document": issued.isoformat()})
    return found


# What may end the text a header's other column runs into the place's line: a clause
# (a subject's comma) or the national motto.
_BEFORE_PLACE = re.compile(rf"(?:[,;]|{re.escape(_flat('Hạnh phúc'))})$")


def _is_place(shown: str, place: str) -> bool:
    """Whether the place line's text ``shown`` (folded) prints ``place``: the whole of it,
    or the whole of what follows another column's text run into its line (``Huế`` is not
    the place printed ``Thừa Thiên Huế``)."""
    if shown == place:
        return True
    before = shown.removesuffix(place)
    return before != shown and before.endswith(" ") and bool(_BEFORE_PLACE.search(before[:-1]))


def _year(doc: Any) -> int | None:
    """The year a legal normative document's notation carries (12/2026/QĐ-UBND)."""
    if doc.legal_normative and doc.issued_on:
        return int(str(doc.issued_on)[:4])
    return None


def _notation(number: int, year: int | None, symbol: str) -> str:
    """One way of writing a notation, whatever the spaces, dashes, case or leading zero."""
    symbol = "".join(fold(symbol).split())
    return f"{number}/{year}/{symbol}" if year else f"{number}/{symbol}"
