"""Attachment checks: one main PDF, types detected from the bytes, sizes, real PDFs."""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import puremagic
from pyhanko.pdf_utils.reader import PdfFileReader as HankoReader
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from congvan.states.policy import MAIN_FILE, MAIN_FILE_TYPE

from ..signing.pades import stamp_problem
from ..signing.pdfactive import active_in
from ..signing.pdfchanges import UNREADABLE
from ..signing.pdfpages import page_leaves
from ..signing.signedpdf import SIGNATURE_ROOM
from .registry import BLOCKING, WARNING, CheckInput, Finding, check, fail, ok

PDF = MAIN_FILE_TYPE
# What may travel as an appendix besides PDF.
APPENDIX_TYPES = frozenset(
    {
        PDF,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/msword",
        "application/vnd.ms-excel",
        "image/png",
        "image/jpeg",
        "application/zip",
    }
)

ZIP = "application/zip"
# The name endings of each type that may travel: a name is how a recipient's desktop opens
# a file, so it says what the bytes are.
EXTENSIONS = {
    ".pdf": PDF,
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".doc": "application/msword",
    ".xls": "application/vnd.ms-excel",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".zip": ZIP,
}
# puremagic names every ZIP a Word document; Office Open XML packages differ by their parts.
OOXML_PARTS = {
    "word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
ODF = "application/vnd.oasis.opendocument."
# What a damaged or hostile archive raises while its parts are listed and read.
BROKEN_ZIP = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    RuntimeError,
    zlib.error,
)


def _zip_type(data: bytes) -> str:
    """Word, Excel or OpenDocument package, or any other ZIP, from the archive's parts."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if names[:1] == ["mimetype"]:  # OpenDocument names its type in the first part
                with archive.open("mimetype") as part:
                    declared = part.read(100).decode("ascii", "replace").strip()
                return declared if declared.startswith(ODF) else ZIP
    except BROKEN_ZIP:
        return ZIP
    if "[Content_Types].xml" in names:
        for prefix, media_type in OOXML_PARTS.items():
            if any(name.startswith(prefix) for name in names):
                return media_type
    return ZIP


def named_type(filename: str) -> str | None:
    """The type a file's name says it is, by its ending (None: an ending of no type that
    may travel, or none)."""
    stem, dot, ending = filename.rpartition(".")
    return EXTENSIONS.get(f".{ending.lower()}") if dot and stem else None


# An Office 97-2003 file (a compound file, MS-CFB) and the stream that says which.
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
OLE_STREAMS = {
    "WordDocument".encode("utf-16-le"): "application/msword",
    "Workbook".encode("utf-16-le"): "application/vnd.ms-excel",
    "Book".encode("utf-16-le"): "application/vnd.ms-excel",  # Excel 5/95
}
# Other names clients give the same types (browsers on Windows, older mail programs).
ALIASES = {
    "application/x-zip-compressed": ZIP,
    "application/x-zip": ZIP,
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "application/x-pdf": PDF,
    "application/excel": "application/vnd.ms-excel",
    "application/x-excel": "application/vnd.ms-excel",
    "application/doc": "application/msword",
}


def _ole_type(data: bytes) -> str:
    """Word or Excel 97-2003 by the stream the compound file holds (its directory names
    it in UTF-16), or a compound file of another kind."""
    for stream, media_type in OLE_STREAMS.items():
        if stream + b"\x00\x00" in data:
            return media_type
    return "application/x-ole-storage"


def detect(data: bytes) -> str:
    """The media type the bytes themselves show, whatever the client said."""
    if not data:
        return "application/x-empty"
    if data.startswith(b"PK\x03\x04"):
        return _zip_type(data)
    if data.startswith(OLE):
        return _ole_type(data)
    try:
        return str(puremagic.from_string(data, mime=True)) or "application/octet-stream"
    except puremagic.PureError:
        return "application/octet-stream"


@check("attachments.main_file", BLOCKING, "Có đúng một tệp chính", "Exactly one main file")
def main_file(inp: CheckInput) -> Finding:
    count = len(inp.main_files)
    if count != 1:
        return fail(
            f"Cần đúng một tệp chính, có {count}.",
            f"Exactly one main file is needed; there are {count}.",
            count=count,
        )
    return ok(filename=inp.main_files[0].filename)


@check(
    "attachments.media_type",
    BLOCKING,
    "Định dạng tệp được phép (tệp chính là PDF)",
    "File types are allowed (the main file is a PDF)",
)
def media_type(inp: CheckInput) -> Finding:
    wrong = []
    for a in inp.attachments:
        detected = inp.detected_type(a.sha256, detect)
        allowed = {PDF} if a.role == MAIN_FILE else APPENDIX_TYPES
        if detected not in allowed:
            wrong.append({"filename": a.filename, "role": a.role, "detected": detected})
        elif a.role == MAIN_FILE and a.media_type != PDF:
            # Declared so in the manifest it is signed under: the PDF signature is made on
            # a main file declared a PDF only, and an inbox takes no other main file.
            wrong.append({"filename": a.filename, "role": a.role, "declared": a.media_type})
        elif a.role == MAIN_FILE and named_type(a.filename) != PDF:
            # Named so: a recipient's desktop opens it by its name (a letter.exe would not
            # open as the letter, or worse, as something else)
            wrong.append({"filename": a.filename, "role": a.role, "named": "not .pdf"})
    if wrong:
        said = [w.get("detected") or w.get("named") or f"declared {w['declared']}" for w in wrong]
        names = ", ".join(f"{w['filename']} ({why})" for w, why in zip(wrong, said, strict=True))
        return fail(
            f"Định dạng không được phép: {names}.", f"Types not allowed: {names}.", files=wrong
        )
    return ok()


@check(
    "attachments.declared_type",
    WARNING,
    "Định dạng khai báo và tên tệp khớp nội dung tệp",
    "Declared types and file names match the bytes",
)
def declared_type(inp: CheckInput) -> Finding:
    mismatched = []
    for a in inp.attachments:
        detected = inp.detected_type(a.sha256, detect)
        named = named_type(a.filename)
        if ALIASES.get(a.media_type, a.media_type) != detected or named != detected:
            mismatched.append(
                {
                    "filename": a.filename,
                    "declared": a.media_type,
                    "named": named,
                    "detected": detected,
                }
            )
    if mismatched:
        names = ", ".join(f"{m['filename']} ({m['detected']})" for m in mismatched)
        return fail(
            f"Định dạng khai báo hoặc đuôi tên tệp khác nội dung tệp: {names}.",
            f"Declared media types or file name endings differ from the bytes: {names}.",
            files=mismatched,
        )
    return ok()


@check(
    "attachments.digest",
    BLOCKING,
    "Nội dung tệp khớp mã băm SHA-256 đã ghi",
    "File contents match their recorded SHA-256",
)
def digest(inp: CheckInput) -> Finding:
    bad = [
        a.filename
        for a in inp.attachments
        if hashlib.sha256(inp.content(a.sha256)).hexdigest() != a.sha256
    ]
    if bad:
        return fail(
            f"Tệp bị thay đổi hoặc thiếu: {', '.join(bad)}.",
            f"Files altered or missing: {', '.join(bad)}.",
            files=bad,
        )
    return ok(digests={a.filename: a.sha256 for a in inp.attachments})


@check("attachments.size", BLOCKING, "Kích thước tệp hợp lệ", "File sizes are within limits")
def size(inp: CheckInput) -> Finding:
    bad = [
        {"filename": a.filename, "size": a.size}
        for a in inp.attachments
        if a.size <= 0 or a.size > inp.max_attachment_bytes
    ]
    if bad:
        return fail(
            "Có tệp rỗng hoặc quá lớn.",
            "A file is empty or too large.",
            files=bad,
            max_bytes=inp.max_attachment_bytes,
        )
    total = sum(a.size for a in inp.attachments)
    # The package carries every file, and the main PDF once more as signed (its stamp and
    # signature in at most SIGNATURE_ROOM): over the inbox's limit, every recipient
    # would refuse it (413, status 02) after it was signed and sent.
    package = total + sum(a.size for a in inp.main_files) + SIGNATURE_ROOM
    if inp.max_package_bytes is not None and package > inp.max_package_bytes:
        return fail(
            "Gói tin gửi đi (các tệp và bản PDF đã ký) vượt quá giới hạn tiếp nhận.",
            "The package (every file and the signed PDF) would be over the inbox's limit.",
            package_bytes=package,
            max_package_bytes=inp.max_package_bytes,
        )
    return ok(total=total)


# What pyHanko raises on a PDF it cannot read.
_UNREADABLE = UNREADABLE
# The pages a main file may have: it is signed, and its signature checked, page by page,
# while the installation's database waits (a decision with its annexes runs to a few
# hundred; a scanned register belongs in an appendix).
MAX_MAIN_PAGES = 2000


def _pdf_objects(data: bytes, reader: HankoReader | None = None) -> Iterator[Any]:
    """Every object of every revision of ``data``, as pyHanko (the library that signs
    PDFs) reads it; raises one of ``_UNREADABLE`` on what it cannot read."""
    reader = reader or HankoReader(io.BytesIO(data), strict=False)
    for revision in range(reader.xrefs.total_revisions):
        for ref in reader.xrefs.explicit_refs_in_revision(revision):
            yield reader.get_object(ref)  # type: ignore[no-untyped-call]  # pyHanko untyped


# What may follow a PDF's last end-of-file marker: line ends, spaces, NUL padding.
_AFTER_THE_END = b" \t\r\n\x00\x0c"


def _unsignable(data: bytes) -> str | None:
    """Why ``data`` cannot be signed, or None: the library that signs PDFs (pyHanko)
    cannot read every object of it; it carries a signature already (the signer signs the
    unsigned original: one made elsewhere, under a CA not trusted here, would fail the
    signature's own check); its page tree counts other than it holds, or holds more than
    ``MAX_MAIN_PAGES``; bytes follow its end (another file appended, a ZIP say, that
    the signature would cover and every recipient receive); or the signer's stamp has no
    room on its first page (a page box absent, malformed or too small). pypdf reads
    leniently what pyHanko refuses (a stream's /Length that is wrong), and shows a page
    whatever its box: such a main file would pass review, then fail its signature."""
    end = data.rfind(b"%%EOF")
    trailing = len(data[end + 5 :].strip(_AFTER_THE_END)) if end >= 0 else 0
    if trailing:
        return f"cannot be signed: {trailing} bytes follow its end (%%EOF)"
    try:
        reader = HankoReader(io.BytesIO(data), strict=False)
        for _ in _pdf_objects(data, reader):
            pass
        signed = [s.field_name for s in reader.embedded_signatures]
        pages = len(page_leaves(reader, most=MAX_MAIN_PAGES))
        counted = reader.root["/Pages"].get("/Count")
    except RecursionError:
        return "cannot be signed: it nests objects deeper than a reader goes"
    except _UNREADABLE as exc:
        return f"cannot be signed: {exc}"[:200]
    if signed:
        return f"cannot be signed: it is signed already ({', '.join(signed)})"[:200]
    if counted != pages:
        # readers show as many pages as /Count says, or as the tree holds: not one letter
        said = "no number of" if counted is None else counted
        return f"cannot be signed: its page tree counts {said} pages but holds {pages}"[:200]
    problem = stamp_problem(data)
    return None if problem is None else f"cannot be signed: {problem}"[:200]


@check(
    "attachments.pdf",
    BLOCKING,
    "Tệp PDF đọc được và không bị mã hóa",
    "PDF files open and are not encrypted",
)
def pdf_files(inp: CheckInput) -> Finding:
    bad = []
    pages = {}
    for a in inp.attachments:
        data = inp.content(a.sha256)
        if inp.detected_type(a.sha256, detect) != PDF:
            continue
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                bad.append({"filename": a.filename, "problem": "encrypted"})
                continue
            pages[a.filename] = len(reader.pages)
            if not reader.pages:
                bad.append({"filename": a.filename, "problem": "no pages"})
            elif a.role == MAIN_FILE and (problem := _unsignable(data)) is not None:
                bad.append({"filename": a.filename, "problem": problem})
        except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
            bad.append({"filename": a.filename, "problem": f"unreadable: {exc}"[:200]})
    if bad:
        names = ", ".join(f"{b['filename']} ({b['problem']})" for b in bad)
        return fail(f"Tệp PDF không hợp lệ: {names}.", f"Invalid PDF files: {names}.", files=bad)
    return ok(pages=pages)


def active_parts(data: bytes) -> list[str]:
    """The active content ``data`` (a PDF) carries, by the name that marks it; [] when
    none. ``unreadable`` too when an object of it cannot be read (a stream's length that
    lies, an array nested past what a reader goes): what that part holds is not known,
    so the file is not taken as harmless."""
    found: set[str] = set()
    try:
        for obj in _pdf_objects(data):
            if isinstance(obj, dict):
                found |= active_in(obj)
    except _UNREADABLE:
        found.add(UNREAD)
    return sorted(found)


UNREAD = "unreadable"  # what active_parts says of a PDF it could not read through


@check(
    "attachments.active_content",
    BLOCKING,
    "Tệp PDF không chứa mã thực thi, tệp nhúng",
    "PDF files carry no scripts, launched programs or embedded files",
)
def active_content(inp: CheckInput) -> Finding:
    bad = []
    for a in inp.attachments:
        if inp.detected_type(a.sha256, detect) != PDF:
            continue
        found = active_parts(inp.content(a.sha256))
        if found:
            bad.append({"filename": a.filename, "found": found})
    if bad:
        names = ", ".join(f"{b['filename']} ({' '.join(b['found'])})" for b in bad)
        return fail(
            f"Tệp PDF chứa mã thực thi hoặc tệp nhúng: {names}.",
            f"PDF files carry active content: {names}.",
            files=bad,
        )
    return ok()
