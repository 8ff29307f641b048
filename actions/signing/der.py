"""Distinguished encoding, element by element: the reader under ``strict``'s rules.

``check_der`` takes exactly one element whose every nested element has a definite, minimal
length, a minimal tag, the form its universal type requires, minimal integers, object
identifiers and bit strings, the time formats DER fixes, and sorted SETs. The other
functions read and size elements for the strict checks and the quick path's
``is_canonical``; a malformed element is a ``SignatureMalformed``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from congvan.states.errors import SignatureMalformed

_MAX_DEPTH = 32  # a CMS with certificates nests about 12 deep

_CONSTRUCTED_ONLY = frozenset({16, 17})  # SEQUENCE, SET
_BOOLEAN, _INTEGER, _BIT_STRING, _NULL, _OID, _ENUMERATED = 1, 2, 3, 5, 6, 10
_UTC_TIME, _GENERALIZED_TIME, _SET = 23, 24, 17
_UTC_TIME_FORMAT = re.compile(rb"[0-9]{12}Z")
_GENERALIZED_TIME_FORMAT = re.compile(rb"[0-9]{14}(\.[0-9]*[1-9])?Z")


# What a parser library's failure to read a structure is said as: its own words name its
# classes and offsets ("Error parsing asn1crypto.cms.ContentType - tag should have been 6").
UNREADABLE = "its encoding cannot be read as the structure expected"


def reading_failure(exc: BaseException) -> str:
    """Why a structure could not be read, in our words: one of our checks' own messages
    as it is (its first line); whatever a library raised from inside it, as ``UNREADABLE``."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    raised_in = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    said = str(exc).split("\n")[0]
    if raised_in.startswith("congvan."):
        return said
    # What went wrong, without the library's own names: "method should have been
    # primitive, but constructed was found" is worth keeping.
    detail = _PARSER_LEAD.sub("", said).strip()
    if not detail or _DOTTED.search(detail) or len(detail) > 120:
        return UNREADABLE
    return f"{UNREADABLE} ({detail})"


_PARSER_LEAD = re.compile(r"^Error parsing [\w.]+ - ")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*){2,}")


def check_der(encoded: bytes) -> None:
    """Refuse anything but exactly one DER element (all nested elements DER too)."""
    if element_size(encoded) != len(encoded):
        raise SignatureMalformed(
            "The signature is not a detached CMS signature: bytes follow its end."
        )
    _check_element(encoded, 0, len(encoded), 0)


def _malformed(reason: str) -> SignatureMalformed:
    return SignatureMalformed(f"The signature is not a detached CMS signature: {reason} (not DER).")


def header(data: bytes, start: int, end: int) -> tuple[int, bool, int, int, int]:
    """Class, constructed, tag number, contents start and end of the element at ``start``."""
    if end - start < 2:
        raise _malformed(f"it ends inside an element header at byte {start}")
    first = data[start]
    position = start + 1
    tag = first & 0x1F
    if tag == 0x1F:  # high tag number form: base 128, minimal, at least 31
        tag = 0
        while True:
            if position >= end:
                raise _malformed(f"it ends inside a tag at byte {start}")
            byte = data[position]
            if tag == 0 and byte == 0x80:
                raise _malformed(f"a tag at byte {start} is not minimal")
            tag = (tag << 7) | (byte & 0x7F)
            position += 1
            if not byte & 0x80:
                break
        if tag < 31:
            raise _malformed(f"a tag at byte {start} is not minimal")
    if position >= end:
        raise _malformed(f"it ends inside a length at byte {start}")
    length = data[position]
    position += 1
    if length == 0x80:
        raise _malformed(f"an element at byte {start} has an indefinite length")
    if length > 0x80:
        count = length & 0x7F
        if count > 4 or position + count > end:
            raise _malformed(f"the length of the element at byte {start} is out of range")
        raw = data[position : position + count]
        position += count
        length = int.from_bytes(raw, "big")
        if raw[0] == 0 or length < 0x80:
            raise _malformed(f"the length of the element at byte {start} is not minimal")
    if position + length > end:
        raise _malformed(f"the element at byte {start} runs past its end")
    return first >> 6, bool(first & 0x20), tag, position, position + length


def element_size(data: bytes) -> int:
    _class, _constructed, _tag, _start, end = header(data, 0, len(data))
    return end


def _check_element(data: bytes, start: int, end: int, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise _malformed("its elements nest too deep")
    class_, constructed, tag, first, last = header(data, start, end)
    if last != end:
        raise _malformed(f"the element at byte {start} is followed by stray bytes")
    if class_ == 0:
        if tag == 0:
            raise _malformed(f"an end-of-contents marker at byte {start}")
        if constructed != (tag in _CONSTRUCTED_ONLY):
            raise _malformed(f"the element at byte {start} has the wrong form")
        if not constructed:
            _check_primitive(tag, data[first:last], start)
            return
    elif not constructed:
        return  # an implicitly tagged primitive: its type says what it holds
    children = []
    position = first
    while position < last:
        _c, _k, _t, _s, child_end = header(data, position, last)
        _check_element(data, position, child_end, depth + 1)
        children.append(data[position:child_end])
        position = child_end
    # DER sorts a SET OF by encoding; a SET's components then fall in tag order too.
    if class_ == 0 and tag == _SET and children != sorted(children):
        raise _malformed(f"the set at byte {start} is not sorted")


def _check_primitive(tag: int, value: bytes, start: int) -> None:
    if tag == _BOOLEAN and value not in (b"\x00", b"\xff"):
        raise _malformed(f"the boolean at byte {start} is not 00 or FF")
    if tag in (_INTEGER, _ENUMERATED) and (
        not value
        or (len(value) > 1 and value[0] == 0x00 and value[1] < 0x80)
        or (len(value) > 1 and value[0] == 0xFF and value[1] >= 0x80)
    ):
        raise _malformed(f"the integer at byte {start} is not minimal")
    if tag == _BIT_STRING and (
        not value
        or value[0] > 7
        or (len(value) == 1 and value[0] != 0)
        or (len(value) > 1 and value[-1] & ((1 << value[0]) - 1))
    ):
        raise _malformed(f"the bit string at byte {start} is not DER")
    if tag == _NULL and value:
        raise _malformed(f"the null at byte {start} has contents")
    if tag == _OID and (
        not value or value[-1] & 0x80 or any(value[i] == 0x80 for i in _arc_starts(value))
    ):
        raise _malformed(f"the object identifier at byte {start} is not minimal")
    if tag == _UTC_TIME and not _UTC_TIME_FORMAT.fullmatch(value):
        raise _malformed(f"the time at byte {start} is not YYMMDDHHMMSSZ")
    if tag == _GENERALIZED_TIME and not _GENERALIZED_TIME_FORMAT.fullmatch(value):
        raise _malformed(f"the time at byte {start} is not YYYYMMDDHHMMSS[.f]Z")


def _arc_starts(value: bytes) -> Iterator[int]:
    yield 0
    for index in range(1, len(value)):
        if not value[index - 1] & 0x80:
            yield index


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """Identifier octet, start and end of each element inside the element at ``start``."""
    _class, _constructed, _tag, position, last = header(data, start, end)
    found = []
    while position < last:
        _c, _k, _t, _s, child_end = header(data, position, last)
        found.append((data[position], position, child_end))
        position = child_end
    return found


def encoded_header(identifier: int, size: int) -> bytes:
    """The DER identifier and length octets of an element of ``size`` content bytes."""
    if size < 0x80:
        return bytes((identifier, size))
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((identifier, 0x80 | len(length))) + length


def header_size(size: int) -> int:
    """The size of a DER element whose contents are ``size`` bytes, header included."""
    return size + (2 if size < 0x80 else 2 + (size.bit_length() + 7) // 8)


def contents_of(element: bytes) -> bytes | None:
    """The contents of one element given whole, or None when it is not one element."""
    try:
        _class, _constructed, _tag, start, end = header(element, 0, len(element))
    except SignatureMalformed:
        return None
    return element[start:end] if end == len(element) else None


def elements(contents: bytes) -> Iterator[bytes]:
    """Each element, whole, of the contents of a constructed element."""
    position = 0
    while position < len(contents):
        _class, _constructed, _tag, _start, end = header(contents, position, len(contents))
        yield contents[position:end]
        position = end
