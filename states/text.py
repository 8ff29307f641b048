"""What counts as text: visible letters, and which fields may span lines. Pure rules."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime

import regex
from confusable_homoglyphs import categories

from .fields import MULTI_LINE, DocumentField
from .timeliness import FIRST_DAY, LAST_DAY, reckoned

# Fields whose text may hold line breaks (and tabs); every other text field is one line.
# Besides the document's own (states.fields), an event's reason and a reviewer's comment.
MULTI_LINE_FIELDS = MULTI_LINE | {"reason", "comment"}
# A character that shows something: not a control, format, unassigned or private one, not
# a space or separator, not one of Unicode's default-ignorable code points (the Hangul
# fillers U+3164 and U+115F, the grapheme joiner U+034F, variation selectors...), not the
# blank braille pattern U+2800, and not a combining mark (it shows only on a letter).
_SHOWS = regex.compile(
    r"[^\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Z}\p{M}\p{Default_Ignorable_Code_Point}\u2800]"
)
_LINE_BREAKS = frozenset({"\n", "\r", "\t"})
_SEPARATORS = frozenset({"\u2028", "\u2029"})
# Characters that make text show other than it reads: bidirectional marks, embeddings,
# overrides and isolates (a file "\u202egpj.pdf" shows as "fdp.jpg"; a right-to-left mark
# moves the digits and signs around it), never needed in Vietnamese; and, in one-line
# fields, every character that shows nothing ("TĐ\u200bKT" shows as "TĐKT").
_REORDERING = frozenset(
    chr(c) for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
)
# Every character that shows nothing of itself: format characters (Cf: the zero-width
# ones, invisible operators U+2061-2064, the soft hyphen, tags U+E0000-E007F...) and
# Unicode's default-ignorable ones (the grapheme joiner U+034F, variation selectors, the
# Hangul fillers, the Mongolian vowel separator...) and the blank braille pattern U+2800,
# which shows as a space. None belongs in a one-line field.
_HIDDEN_CHARACTERS = r"\p{Cf}\p{Default_Ignorable_Code_Point}\u2800"
_HIDDEN = regex.compile(f"[{_HIDDEN_CHARACTERS}]")
# Characters no reader can read, which a one-line field (a symbol, a place, a name: text
# printed, signed and compared) must not hold either: private-use ones (a font's own
# glyph, or none), unassigned ones and noncharacters (Cn), the object replacement
# character U+FFFC, and U+FFFD, what a decoder leaves of a character it could not read.
_UNREADABLE_CHARACTERS = r"\p{Co}\p{Cn}\ufffc\ufffd"
_UNREADABLE = regex.compile(f"[{_UNREADABLE_CHARACTERS}]")
_ONE_LINE_SUSPECT = regex.compile(f"[{_HIDDEN_CHARACTERS}{_UNREADABLE_CHARACTERS}]")
# Any character ``unstorable`` may object to in any field: control characters (category
# Cc: U+0000 to U+001F, U+007F to U+009F), the separators, reordering, zero-width and
# surrogate ones; in a one-line field, ``_HIDDEN`` too. Text holding none of them (nearly
# all text) is judged by a search or two.
_SUSPECT = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u061c\u200e\u200f"
    "\u200b-\u200d\u2060\ufeff\ud800-\udfff]"
)


def deceptive_characters(value: str, *, multi_line: bool) -> list[str]:
    """The characters of ``value`` that reorder or hide what it shows (as U+XXXX): in a
    multi-line field, the reordering ones; in a one-line field, any that shows nothing."""
    return [
        f"U+{ord(ch):04X}"
        for ch in value
        if ch in _REORDERING or (not multi_line and _HIDDEN.match(ch) is not None)
    ]


def nfc(value: object) -> object:
    """``value`` with every string in it, however nested, in Unicode NFC.

    Vietnamese arrives precomposed or decomposed (macOS, some input methods); stored one
    way, "TĐKT" typed either way is one symbol to the duplicate checks.
    """
    if isinstance(value, str):
        return value if value.isascii() else unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {nfc(k): nfc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(nfc(v) for v in value)
    return value


# Vietnamese writes the tone of oa, oe, uy over either vowel (hoà, hòa; thuỷ, thủy).
_TONES = "\u0300\u0301\u0303\u0309\u0323"
_TONE_ON_SECOND = re.compile(f"([ouOU])([aeyAEY])([{_TONES}])")


def one_tone_placement(text: str) -> str:
    """``text`` in NFC with the tone of oa, oe, uy over their first vowel: the two
    writings of one word (``Hoà``, ``Hòa``) as one, for comparing. (A tone over the second
    vowel of a closed syllable, ``hoàn``, moves too: both sides of a comparison alike.)"""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", _TONE_ON_SECOND.sub(r"\1\3\2", decomposed))


_WORD = regex.compile(r"\w+")
_NO_SCRIPT = frozenset({"COMMON", "INHERITED"})  # digits, marks: of every script


def mixed_script_word(text: str) -> str | None:
    """The first word of ``text`` whose letters are of more than one script: a word of
    Vietnamese with a Cyrillic or Greek look-alike in it (``Thiеn``), never written so.
    A word wholly of another script (a foreign name, ``Москва``) is not one."""
    for word in _WORD.findall(text):
        scripts = {categories.alias(ch) for ch in word if ch.isalpha()} - _NO_SCRIPT
        if len(scripts) > 1:
            return str(word)
    return None


def has_visible_text(value: str) -> bool:
    """Whether ``value`` shows anything: a zero-width space, a BOM, a Hangul filler or
    a blank braille pattern is not a reason."""
    return _SHOWS.search(value) is not None


def control_characters(value: str, *, multi_line: bool) -> list[str]:
    """The control characters ``value`` must not hold (as U+XXXX), in order of appearance.

    A one-line field takes none (a CR/LF in a symbol or a name breaks every place it is
    printed or signed); a multi-line field takes line breaks and tabs only.
    """
    return [
        f"U+{ord(ch):04X}"
        for ch in value
        if unicodedata.category(ch) == "Cc" and not (multi_line and ch in _LINE_BREAKS)
    ]


def unstorable(value: str, *, multi_line: bool) -> str | None:
    """Why ``value`` is not text both databases store and every reader shows, or None.

    PostgreSQL refuses NUL in text; a lone surrogate (valid in JSON as ``"\\ud800"``)
    cannot be encoded to UTF-8 by any driver; other control characters break each place
    the text is printed or signed (line breaks and tabs only where ``multi_line``).
    """
    if _SUSPECT.search(value) is None and (
        multi_line or value.isascii() or _ONE_LINE_SUSPECT.search(value) is None
    ):
        return None
    if "\x00" in value:
        return "must not contain NUL characters"
    found = control_characters(value, multi_line=multi_line)
    if not multi_line:  # a line or paragraph separator breaks a line as LF does
        found += [f"U+{ord(ch):04X}" for ch in value if ch in _SEPARATORS]
    if found:
        return f"must not contain control characters ({', '.join(found[:5])})" + (
            "" if multi_line else "; it is one line"
        )
    deceptive = deceptive_characters(value, multi_line=multi_line)
    if deceptive:
        return (
            "must not contain characters that reorder or hide what it shows "
            f"({', '.join(deceptive[:5])})"
        )
    unreadable = [] if multi_line else [f"U+{ord(ch):04X}" for ch in _UNREADABLE.findall(value)]
    if unreadable:
        return (
            "must not contain characters no reader can read: private-use, unassigned, "
            f"replacement ones ({', '.join(unreadable[:5])})"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode text (no lone surrogates)"
    return None


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def calendar_day(value: str) -> date:
    """``value`` as a date written YYYY-MM-DD, the only way a document's dates are written
    (Python's own parser also takes 2021-W09-1 and 20210301); ValueError otherwise."""
    if not _DAY.fullmatch(value):
        raise ValueError(f"{value[:20]!r} is not a date written YYYY-MM-DD")
    return date.fromisoformat(value)


def in_utc(moment: datetime) -> datetime | None:
    """``moment`` in UTC, as the databases keep it; None when it has no offset, or when in
    UTC it falls outside years 1 to 9999 (``9999-12-31T23:00:00-05:00`` does)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


# What a date or moment outside the days the engine reckons with is told, wherever it
# comes from (the API, a peer's signed manifest or message).
RECKONED = f"must fall within the years {FIRST_DAY.year} to {LAST_DAY.year}"

# The integers the databases keep in a column of the kind (PostgreSQL's integer).
_LARGEST_INTEGER = 2**31 - 1


def value_problem(field: DocumentField, value: object) -> str | None:
    """Why ``value`` is not one ``field`` holds (its kind, its length, storable text), or
    None; null is taken (a signed manifest carries a field it has no value for as null).

    What a peer's signed manifest says of its document is read by this before it is kept.
    """
    if value is None:
        return None
    kind = field.kind
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return "must be a whole number"
        return None if 0 <= value <= _LARGEST_INTEGER else "is out of range"
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if not isinstance(value, str):
        return "must be text"
    if field.max_length is not None and len(value) > field.max_length:
        return f"is longer than {field.max_length} characters"
    if kind == "date":
        try:
            day = calendar_day(value)
        except ValueError:
            return "must be a date, YYYY-MM-DD"
        return None if reckoned(day) else RECKONED
    if kind == "moment":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return "must be an ISO 8601 moment with its offset"
        if in_utc(moment) is None:
            return "must be a moment with its offset"
        return None if reckoned(moment) else RECKONED
    return signed_text_problem(value, multi_line=field.multi_line)


def given(value: object) -> bool:
    """Whether a field holds a value review would take as given: not null, not 0 for a
    number, not text that shows nothing (blank, or only invisible characters)."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return has_visible_text(value)
    if isinstance(value, int):
        return value > 0
    return True


def signed_text_problem(value: str, *, multi_line: bool) -> str | None:
    """Why text a peer signed is not what we keep, or None: storable (``unstorable``) and
    in Unicode NFC, as a congvan sender writes it. Signed text cannot be normalised here
    without breaking its signature, and "TĐKT" kept two ways is two symbols to the
    duplicate checks."""
    problem = unstorable(value, multi_line=multi_line)
    if problem is None and not value.isascii() and not unicodedata.is_normalized("NFC", value):
        return "must be in Unicode NFC (precomposed)"
    return problem


def printable(text: str, limit: int = 1000) -> str:
    """``text`` from outside (a peer's or a mail server's answer, an error message, a
    name in a certificate) as a line that can be stored and shown: control characters,
    lone surrogates and characters that show nothing or reorder what follows (U+202E,
    U+200B) written as escapes (PostgreSQL refuses NUL in text; a terminal obeys an
    escape sequence), cut to ``limit`` characters."""
    out = []
    for ch in text[:limit]:
        if (unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t") or (
            not ch.isascii() and _HIDDEN.match(ch)
        ):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)[:limit]
