"""Files in and out of the documents API: an upload read within its limit, a download named."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any
from urllib.parse import quote

from fastapi import UploadFile
from fastapi.concurrency import run_in_threadpool

from congvan.actions.exchange.names import safe_step
from congvan.states.errors import AttachmentTooLarge, FieldTooLong, InvalidInput
from congvan.states.text import deceptive_characters, has_visible_text


def content_disposition(filename: str) -> str:
    """``attachment`` with the name in ASCII and, per RFC 6266 / 5987, in UTF-8 (filename*).

    Non-ASCII letters become their base letter in the fallback (thư → thu), not "?".
    """
    decomposed = unicodedata.normalize("NFKD", filename.replace("đ", "d").replace("Đ", "D"))
    fallback = "".join(c for c in decomposed if c.isascii() and c.isprintable() and c not in '"\\')
    return (
        f'attachment; filename="{fallback or "attachment"}"; '
        f"filename*=UTF-8''{quote(filename, safe='')}"
    )


def _printable(text: str) -> str:
    """``text`` without control characters (NUL, CR, LF...) nor characters that reorder or
    hide what a name shows (``\u202egpj.pdf`` shows as ``fdp.jpg``): no name needs them."""
    hidden = set(deceptive_characters(text, multi_line=False))
    return "".join(
        ch for ch in text if unicodedata.category(ch) != "Cc" and f"U+{ord(ch):04X}" not in hidden
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# RFC 9110 8.3.1: type "/" subtype, each a token, then parameters, each a token = a token
# or a quoted string (5.6.4).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e])*"'  # ASCII: a header's
_PARAMETER = rf"[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED})"
_MEDIA_TYPE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})((?:{_PARAMETER})*)\s*")


def media_type_of(declared: str | None, filename: str) -> str:
    """A part's declared media type as kept: ``type/subtype`` in lower case (RFC 9110
    8.3.1) and its parameters as given (a text's charset), ``application/octet-stream``
    when none was given; InvalidInput for anything else, which every place it is shown
    and signed would carry."""
    if declared is None or not declared.strip():
        return "application/octet-stream"
    found = _MEDIA_TYPE.fullmatch(declared)
    if found is None or len(declared) > 100 or _printable(declared) != declared:
        raise InvalidInput(
            f"The media type of {filename} is not one (type/subtype, e.g. application/pdf).",
            field="media_type",
            filename=filename,
        )
    essence = f"{found.group(1)}/{found.group(2)}".lower()
    return essence + (found.group(3) or "").rstrip()


def content_type(kept: str) -> dict[str, str]:
    """The Content-Type header a kept file is served with: its media type as kept, with
    its parameters (a text's charset) and none added (Starlette would append
    ``charset=utf-8`` to any ``text/*``, which nobody declared); one that is not a media
    type (a peer's, say), ``application/octet-stream``."""
    try:
        return {"Content-Type": media_type_of(kept, "")}
    except InvalidInput:
        return {"Content-Type": "application/octet-stream"}


async def read_upload(upload: UploadFile, role: str, max_bytes: int) -> dict[str, Any]:
    """An uploaded part as an attachment row: its bytes, digest, safe file name and type."""
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise AttachmentTooLarge(
            f"{upload.filename or 'An attachment'} is larger than {max_bytes} bytes.",
            filename=upload.filename,
            max_bytes=max_bytes,
        )
    name = unicodedata.normalize("NFC", _printable(upload.filename or ""))
    # A name, never a path: "../../etc/passwd" or "C:\\x\\thư.pdf" keep only their last part.
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    filename = "" if name in (".", "..") else name
    if not has_visible_text(filename):
        # " ", "..", "/" or a tab name no file: refused, as filename="" is, never stored
        # under a name made up.
        raise InvalidInput(
            f"The {role} file's name {str(upload.filename)[:100]!r} names no file: give the "
            'file\'s name, filename="1227.pdf".',
            field=role,
        )
    if len(filename) > 255:
        raise FieldTooLong(
            "An attachment's file name is too long.",
            field="filename",
            max_length=255,
            length=len(filename),
        )
    if not safe_step(filename):
        # Taken here, it could never travel: a recipient's system must write it as itself.
        raise InvalidInput(
            f"The {role} file's name {filename[:100]!r} is not one every recipient's system "
            'can keep: leave out <>:"|?*, what looks like a slash (／ ∕ ＼ ¥), a trailing '
            "dot or space, and do not name a device (CON, NUL, COM1…).",
            field=role,
            filename=filename[:100],
        )
    return {
        "sha256": await run_in_threadpool(_sha256, data),
        "filename": filename,
        "media_type": media_type_of(upload.content_type, filename),
        "size": len(data),
        "role": role,
        "data": data,
    }
