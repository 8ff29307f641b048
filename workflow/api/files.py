"""Files in and out of the documents API: an upload read within its limit, a download named."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any
from urllib.parse import quote

from fastapi import UploadFile
from fastapi.concurrency import run_in_threadpool

from congvan.states.errors import AttachmentTooLarge, FieldTooLong
from congvan.states.text import deceptive_characters


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
    filename = filename or f"{role}.bin"
    if len(filename) > 255:
        raise FieldTooLong(
            "An attachment's file name is too long.",
            field="filename",
            max_length=255,
            length=len(filename),
        )
    return {
        "sha256": await run_in_threadpool(_sha256, data),
        "filename": filename,
        "media_type": _printable(upload.content_type or "").strip()[:100]
        or "application/octet-stream",
        "size": len(data),
        "role": role,
        "data": data,
    }
