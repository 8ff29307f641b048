"""Every review check on letter 1227/UBND-TĐKT and on real-world malformed variants of it.

Each variant is a real document, written through the engine into a migrated database with
its agencies, signers and signing authorities in the directory; a check then runs on the
stored row exactly as the review job builds its input. The table runs on SQLite; the
duplicate checks and the review job, which lean on SQL, run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Any

import pytest
from fpdf import FPDF
from fpdf.enums import TextMode
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)
from sqlalchemy import select, update

from congvan.actions.calendar import VIETNAM_CALENDAR, WorkingCalendar
from congvan.actions.checks import CHECKS, Check, CheckInput, Finding
from congvan.actions.checks.attachments import MAX_MAIN_PAGES
from congvan.actions.signing import pades, pki
from congvan.actions.signing.signedpdf import SIGNATURE_ROOM
from congvan.states.errors import GuardFailed, InvalidInput
from congvan.states.format_rules import KNOWN_DOC_TYPES
from congvan.states.policy import URGENCY, is_organ_id, job_backoff_seconds
from congvan.states.timeliness import DEFAULT_CUTOFF, VIETNAM
from congvan.storage.checks import ERROR, FAILED, PASSED, StoredResult
from congvan.storage.clock import FrozenClock
from congvan.storage.dispatches import DispatchRow
from congvan.storage.ids import new_id
from congvan.storage.peers import Peer
from congvan.storage.tables import Agency, Document, OutboxJob
from congvan.storage.timers import JOB_DEADLINE
from congvan.workflow import directory
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.letters import reissued_pdf, render_pdf, sample_pdf, sample_text
from tests.conftest import Boot, MakeRuntime
from tests.databases import Databases
from tests.factories import AGENCY_ID, AGENCY_NAME, SAMPLE_FIELDS, SAMPLE_RECIPIENTS, actor
from tests.pdf_edits import (
    RAW_FONT,
    RAW_TEXT,
    blank_pages,
    raw_page,
    raw_pdf,
    with_page_box,
    with_page_entries,
)

CLERK = actor("clerk")
REVIEWER = actor("reviewer")
CHECK_CODES = {c.code: c for c in CHECKS}
_outbox = OutboxJob.__table__  # type: ignore[attr-defined]

# Letter 1227/UBND-TĐKT is dated Saturday 6 February 2021 and checked that day.
TODAY = date(2021, 2, 6)
ISSUED = TODAY.isoformat()
# 09:00 in Vietnam (UTC+7): the review job's "today" is the Vietnamese date.
CHECKED_AT = datetime(2021, 2, 6, 2, 0, tzinfo=UTC)
CHECKED_TIME = time(9, 0)
MAX_BYTES = 25 * 1024 * 1024
MAX_SUBJECT = 1000

# The directory the letter is written against.
OFFICE_ID = SAMPLE_RECIPIENTS[0]["organ_id"]  # Văn phòng UBND tỉnh
DEPARTMENT_ID = SAMPLE_RECIPIENTS[1]["organ_id"]  # Sở Thông tin và Truyền thông
GOVERNMENT_OFFICE_ID = "000.00.00.G22"  # Văn phòng Chính phủ, in the directory too
OTHER_PROVINCE_ID = "000.00.00.H53"  # UBND tỉnh Tây Ninh: its own number series
PEER_INBOX = "https://congvan.example.vn/v1/inbox"
MAX_PACKAGE = 64 * 1024 * 1024  # the default inbox limit (CONGVAN_MAX_REQUEST_BYTES)
UNLINKED_ID = "000.00.05.H57"  # Sở Tư pháp: in the directory, no inbox known for it
AGENCIES = [
    (AGENCY_ID, AGENCY_NAME, "UBND"),
    (OFFICE_ID, "Văn phòng UBND tỉnh Thừa Thiên Huế", "VP"),
    (DEPARTMENT_ID, "Sở Thông tin và Truyền thông tỉnh Thừa Thiên Huế", "STTTT"),
    (GOVERNMENT_OFFICE_ID, "Văn phòng Chính phủ", "VPCP"),
    (OTHER_PROVINCE_ID, "UBND tỉnh Tây Ninh", "UBND"),
    (UNLINKED_ID, "Sở Tư pháp tỉnh Thừa Thiên Huế", "STP"),
]
SIGNER = "nvphuong"  # the deputy chairman who signed letter 1227
SIGNER_NAME = SAMPLE_FIELDS["signer_name"]
CHAIRMAN = "chutich"
CHAIRMAN_NAME = "Hoàng Văn Toàn"
CLERK_USER = "vanthu"  # a clerk account, not a signer
USERS = [
    (SIGNER, ["signer"], SIGNER_NAME, "PHÓ CHỦ TỊCH"),
    (CHAIRMAN, ["signer"], CHAIRMAN_NAME, "CHỦ TỊCH"),
    (CLERK_USER, ["clerk"], "Lê Thị Thu", "Văn thư"),
    ("lthoa", ["signer"], "Lê Thị Hòa", "CHỦ TỊCH"),
]
FIELDS: dict[str, Any] = {**SAMPLE_FIELDS, "signer_user": SIGNER}
SUBJECT = FIELDS["subject"]


# -- files -------------------------------------------------------------------------------


@functools.cache
def letter_pdf(variant: str = "") -> bytes:
    """Letter 1227 rendered to a real two-page PDF, printing what its metadata says (its
    signer's name: the letter as issued was signed by another); ``variant`` makes distinct
    bytes."""
    return reissued_pdf(TODAY, SIGNER_NAME, variant)


def printing(
    *, notation: str = "1227/UBND-TĐKT", signer: str = SIGNER_NAME
) -> Callable[[], list[dict[str, Any]]]:
    """Letter 1227 as its main file, printing ``notation`` and ``signer``."""
    return lambda: [attachment(reissued_pdf(TODAY, signer, notation=notation))]


def only_main(pdf: Callable[[], bytes]) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [attachment(pdf())]


@functools.cache
def drawn_pdf() -> bytes:
    """A page with lines drawn and no text: what a scanner makes, as far as text goes."""
    pdf = FPDF(format="A4")
    pdf.add_page()
    for y in range(30, 270, 8):
        pdf.line(20, y, 190, y)
    return bytes(pdf.output())


@functools.cache
def untitled_pdf() -> bytes:
    """Letter 1227 without its national title and motto."""
    text = sample_text().replace("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "")
    return render_pdf(text.replace("Nguyễn Thanh Bình", SIGNER_NAME))


def hidden_text_pdf(hidden: str, shown: str) -> bytes:
    """A page drawing ``hidden`` invisibly (as a scan's recognised text is) under ``shown``."""
    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", "", str(resources.files("congvan.workflow") / FONT))
    pdf.set_font("DejaVu", "", 11)
    pdf.add_page()
    with pdf.local_context(text_mode=TextMode.INVISIBLE):
        pdf.multi_cell(0, 6, hidden, new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 6, shown.replace("*", ""), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def unseen_text_pdf(
    hidden: str, shown: str, *, colour: tuple[int, int, int] = (255, 255, 255), opacity: float = 1
) -> bytes:
    """A page drawing ``hidden`` in ``colour`` at ``opacity`` (white, say: nothing on
    white paper) above ``shown``, drawn in black."""
    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", "", str(resources.files("congvan.workflow") / FONT))
    pdf.set_font("DejaVu", "", 11)
    pdf.add_page()
    with pdf.local_context(text_color=colour, fill_opacity=opacity):
        pdf.multi_cell(0, 6, hidden, new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 6, shown.replace("*", ""), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def covered_text_pdf(hidden: str, shown: str, cover: str) -> bytes:
    """A page drawing ``hidden`` in black, then over it ``cover``: a white box (``box``),
    a black one (``black``), an opaque white picture (``picture``) or a seal's picture,
    red ink on see-through pixels (``seal``); then ``shown`` below."""
    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", "", str(resources.files("congvan.workflow") / FONT))
    pdf.set_font("DejaVu", "", 11)
    pdf.add_page()
    top = pdf.get_y()
    pdf.multi_cell(0, 6, hidden, new_x="LMARGIN", new_y="NEXT")
    height = pdf.get_y() - top + 2
    if cover in ("box", "black"):
        pdf.set_fill_color(*((255, 255, 255) if cover == "box" else (0, 0, 0)))
        pdf.rect(5, top - 1, 200, height, style="F")
    else:
        mode, paper = ("RGB", (255, 255, 255)) if cover == "picture" else ("RGBA", (0, 0, 0, 0))
        image = Image.new(mode, (400, 40), paper)
        if cover == "seal":
            ImageDraw.Draw(image).ellipse((150, 2, 250, 38), outline=(220, 0, 0, 255), width=3)
        picture = io.BytesIO()
        image.save(picture, "PNG")
        pdf.image(picture, x=5, y=top - 1, w=200, h=height)
    pdf.multi_cell(0, 6, shown.replace("*", ""), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def letter_1228_covered(cover: str) -> Callable[[], bytes]:
    """Letter 1228 showing its own number, 1227's header drawn above it and ``cover``
    painted over it."""
    shown = (
        sample_text().replace("Số: 1227 /", "Số: 1228/").replace("Nguyễn Thanh Bình", SIGNER_NAME)
    )
    return functools.cache(lambda: covered_text_pdf("Số: 1227/UBND-TĐKT", shown, cover))


def signer_covered(cover: str) -> Callable[[], bytes]:
    """Letter 1227 signed by a name left out, the document's signer drawn with ``cover``
    painted over it."""
    shown = sample_text().replace("Nguyễn Thanh Bình", "")
    return functools.cache(lambda: covered_text_pdf(SIGNER_NAME, shown, cover))


def letter_1228_under(**drawn: Any) -> Callable[[], bytes]:
    """Letter 1228 showing its own number, 1227's header drawn above it as ``drawn`` says."""
    shown = (
        sample_text().replace("Số: 1227 /", "Số: 1228/").replace("Nguyễn Thanh Bình", SIGNER_NAME)
    )
    return functools.cache(lambda: unseen_text_pdf("Số: 1227/UBND-TĐKT", shown, **drawn))


def signer_under(**drawn: Any) -> Callable[[], bytes]:
    """Letter 1227 signed by a name left out, the document's signer drawn as ``drawn``."""
    shown = sample_text().replace("Nguyễn Thanh Bình", "")
    return functools.cache(lambda: unseen_text_pdf(SIGNER_NAME, shown, **drawn))


def grey_letter_pdf() -> bytes:
    """Letter 1227 printed in dark grey, its header in a light grey."""
    text = sample_text().replace("Nguyễn Thanh Bình", SIGNER_NAME).replace("*", "")
    header, body = text.split("V/v", 1)
    return unseen_text_pdf(header, "V/v" + body, colour=(200, 200, 200))


DATED = "Thừa Thiên Huế, ngày 06 tháng 02 năm 2021"
SHORT_SUBJECT = "V/v khen thưởng"


@functools.cache
def table_header_pdf(subject: str = SUBJECT, align: str = "C") -> bytes:
    """Letter 1227 about ``subject`` with its header in two columns, row by row as a word
    processor's table draws it: the number beside the place and date, the subject
    wrapped in its cell (or, one line long, beside the place and date)."""
    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", "", str(resources.files("congvan.workflow") / FONT))
    pdf.set_font("DejaVu", "", 10)
    pdf.add_page()
    rows = [
        (
            "ỦY BAN NHÂN DÂN TỈNH\nTHỪA THIÊN HUẾ",
            "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do",
        ),
        *(
            [("Số: 1227/UBND-TĐKT", DATED), (subject, "")]
            if subject == SUBJECT
            else [("Số: 1227/UBND-TĐKT", ""), (subject, DATED)]
        ),
    ]
    y = 20.0
    for left, right in rows:
        pdf.set_xy(15, y)
        pdf.multi_cell(70, 5, left, align=align)
        low = pdf.get_y()
        pdf.set_xy(95, y)
        pdf.multi_cell(100, 5, right, align="C")
        y = max(low, pdf.get_y()) + 3
    body = sample_text().split("Thực hiện", 1)[1].replace("*", "")
    pdf.set_xy(20, y)
    body = body.replace("Nguyễn Thanh Bình", SIGNER_NAME)
    pdf.multi_cell(0, 5, "Kính gửi: UBND các huyện\nThực hiện" + body)
    return bytes(pdf.output())


@functools.cache
def interleaved_header_pdf() -> bytes:
    """Letter 1227 whose header is drawn line by line across both columns: the place and
    date on the line of the subject's first words."""
    out = FPDF(format="A4")
    out.add_font("DejaVu", "", str(resources.files("congvan.workflow") / FONT))
    out.add_page()
    out.set_font("DejaVu", "", 10)
    lines = [
        (20, "ỦY BAN NHÂN DÂN TỈNH", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"),
        (25, "THỪA THIÊN HUẾ", "Độc lập - Tự do - Hạnh phúc"),
        (32, "Số: 1227/UBND-TĐKT", ""),
        (38, "V/v tăng cường gửi, nhận văn bản", DATED),
        (43, "điện tử giữa các cơ quan hành chính nhà", ""),
        (48, "nước nhằm phòng, chống dịch COVID-19", ""),
    ]
    for y, left, right in lines:
        out.text(15, y, left)
        out.text(105, y, right)
    body = sample_text().split("Thực hiện", 1)[1].replace("*", "")
    out.set_xy(20, 60)
    out.multi_cell(0, 5, "Thực hiện" + body.replace("Nguyễn Thanh Bình", SIGNER_NAME))
    return bytes(out.output())


@functools.cache
def tiny_signer_pdf() -> bytes:
    """Letter 1227 as first issued (signed by another), the document's signer printed
    at 1 pt in a corner."""
    out = FPDF(format="A4")
    out.add_font("DejaVu", "", str(resources.files("congvan.workflow") / FONT))
    out.add_page()
    out.set_font("DejaVu", "", 1)
    out.text(5, 5, SIGNER_NAME)
    out.set_font("DejaVu", "", 11)
    out.multi_cell(0, 6, sample_text().replace("*", ""))
    return bytes(out.output())


FONT = "samples/fonts/DejaVuSans.ttf"


def letter_printing(*changes: tuple[str, str]) -> Callable[[], list[dict[str, Any]]]:
    """Letter 1227 as its main file, signed by its signer, with ``changes`` (old, new)
    made to its text."""

    def files() -> list[dict[str, Any]]:
        text = sample_text().replace("Nguyễn Thanh Bình", SIGNER_NAME)
        for old, new in changes:
            assert old in text, old
            text = text.replace(old, new)
        return [attachment(render_pdf(text))]

    return files


@functools.cache
def long_decree_pdf() -> bytes:
    """Letter 1227 whose body runs to some 60 pages before its signer's name."""
    body = "Điều khoản của nghị định, viết dài để văn bản kéo dài nhiều trang.\n" * 2400
    text = sample_text().replace("Nguyễn Thanh Bình", SIGNER_NAME)
    return render_pdf(text.replace("Nơi nhận:", body + "Nơi nhận:"))


def unreadable_number_pdf(x: float, y: float, size: float) -> Callable[[], bytes]:
    """Letter 1228 (its number shown), with 1227's header drawn at (``x``, ``y``) in
    ``size`` points: outside the page, or too small for anyone to read."""

    def pdf() -> bytes:
        out = FPDF(format="A4")
        out.add_font("DejaVu", "", str(resources.files("congvan.workflow") / FONT))
        out.add_page()
        out.set_font("DejaVu", "", size)
        out.text(x, y, "Số: 1227/UBND-TĐKT")
        out.set_font("DejaVu", "", 11)
        text = sample_text().replace("Nguyễn Thanh Bình", SIGNER_NAME)
        out.multi_cell(0, 6, text.replace("Số: 1227 /", "Số: 1228/").replace("*", ""))
        return bytes(out.output())

    return pdf


@functools.cache
def squeezed_number_pdf() -> bytes:
    """Letter 1227 whose number is 5,000 digits squeezed onto one line (1% wide)."""
    out = FPDF(format="A4")
    out.add_font("DejaVu", "", str(resources.files("congvan.workflow") / FONT))
    out.add_page()
    out.set_font("DejaVu", "", 11)
    out.set_stretching(1)
    out.text(20, 20, "Số: " + "9" * 5000 + "/UBND-TĐKT")
    out.set_stretching(100)
    text = sample_text().replace("Nguyễn Thanh Bình", SIGNER_NAME)
    out.set_y(30)
    out.multi_cell(0, 6, text.replace("Số: 1227 /UBND-TĐKT", "").replace("*", ""))
    return bytes(out.output())


@functools.cache
def scan_with_text_pdf() -> bytes:
    """A scan as a scanner's recognition leaves it: the letter's text drawn invisibly."""
    return hidden_text_pdf(sample_text().replace("Nguyễn Thanh Bình", SIGNER_NAME), "")


@functools.cache
def hidden_number_pdf() -> bytes:
    """Letter 1228 showing its own number, with 1227's header hidden above it."""
    shown = (
        sample_text().replace("Số: 1227 /", "Số: 1228/").replace("Nguyễn Thanh Bình", SIGNER_NAME)
    )
    return hidden_text_pdf("Số: 1227/UBND-TĐKT", shown)


@functools.cache
def hidden_signer_pdf() -> bytes:
    """Letter 1227 signed by a name left out, the document's signer hidden under it."""
    return hidden_text_pdf(SIGNER_NAME, sample_text().replace("Nguyễn Thanh Bình", ""))


@functools.cache
def legacy_font_pdf() -> bytes:
    """Letter 1227 typed in a TCVN3 font: its text maps to Latin-1 letters, not Vietnamese."""
    return render_pdf(
        "Uû ban nh©n d©n tØnh\nCéng hßa x· héi chñ nghÜa ViÖt Nam\nSè: 1227/UBND-T§KT\n"
        "Thõa Thiªn HuÕ, ngµy 06 th¸ng 02 n¨m 2021\nV/v t¨ng c­êng göi, nhËn v¨n b¶n ®iÖn tö"
    )


@functools.cache
def encrypted_pdf() -> bytes:
    """Letter 1227 protected by a password, as an office suite exports it."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(letter_pdf())))
    writer.encrypt(user_password="1227", owner_password="UBND")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@functools.cache
def scanned_png() -> bytes:
    """The first bytes of a scan saved as PNG instead of PDF."""
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00\x00\x04\xd8\x00\x00\x06\xdb" + bytes(64)


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODT = "application/vnd.oasis.opendocument.text"


def archive(*parts: tuple[str, str]) -> bytes:
    """A ZIP archive of these parts, in this order."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        for name, text in parts:
            zipped.writestr(name, text)
    return out.getvalue()


def office_file(*parts: tuple[str, str]) -> bytes:
    """A minimal Office Open XML package: a ZIP with a content-types part."""
    return archive(("[Content_Types].xml", "<Types/>"), ("_rels/.rels", "<Relationships/>"), *parts)


@functools.cache
def word_document() -> bytes:
    return office_file(("word/document.xml", "<w:document/>"))


def ole_file(stream: str) -> bytes:
    """An Office 97-2003 file as far as its type shows: the compound file's signature and
    a directory entry naming ``stream`` (in UTF-16, as the format writes names)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff"
    entry = (stream.encode("utf-16-le") + b"\x00\x00").ljust(128, b"\x00")
    return header.ljust(512, b"\x00") + entry.ljust(512, b"\x00")


def spreadsheet() -> dict[str, Any]:
    """An Excel appendix, declared as what it is."""
    data = office_file(("xl/workbook.xml", "<workbook/>"))
    return appendix(data, "danh-sach.xlsx", media_type=XLSX)


def nfd(text: str) -> str:
    """Vietnamese as some keyboards type it: letters and accents as separate code points."""
    return unicodedata.normalize("NFD", text)


MAIN_NAME = "1227-UBND-TDKT.pdf"
APPENDIX_NAME = "phu-luc-danh-sach.pdf"


def attachment(
    data: bytes,
    *,
    filename: str = MAIN_NAME,
    media_type: str = "application/pdf",
    role: str = "main",
    **overrides: Any,
) -> dict[str, Any]:
    """A file as ``Engine.create_document`` takes it: digest and size from the bytes."""
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "filename": filename,
        "media_type": media_type,
        "size": len(data),
        "role": role,
        "data": data,
        **overrides,
    }


def main_pdf(variant: str = "") -> dict[str, Any]:
    return attachment(letter_pdf(variant))


def signed_elsewhere(pdf: bytes) -> bytes:
    """``pdf`` signed already, by a signer of a CA this installation does not trust."""
    secret = "another agency's CA passphrase"
    start = CHECKED_AT - timedelta(days=30)
    ca = pki.create_ca(
        "CA khác", "Cơ quan khác", passphrase=secret, valid_from=start, valid_days=3650
    )
    issued = pki.issue_signer_certificate(
        ca, secret, full_name="Trần Văn Khác", position="GIÁM ĐỐC", agency_id="000.00.77.H57",
        agency_name="Cơ quan khác", user_id="khac", passphrase=secret, valid_from=start,
        valid_days=365, crl_url="http://127.0.0.1:9/crl",
    )  # fmt: skip
    return pades.sign_pdf(
        pdf,
        key=pki.load_private_key(issued.key_pem, secret),
        cert=issued.certificate,
        chain=[ca.certificate],
        signer_name="Trần Văn Khác",
        position="GIÁM ĐỐC",
        agency_name="Cơ quan khác",
        signing_time=CHECKED_AT - timedelta(days=1),
    )


def with_a_zip_after_its_end(pdf: bytes) -> bytes:
    """``pdf`` with a ZIP (holding a program) appended after its %%EOF: both at once."""
    appended = io.BytesIO()
    with zipfile.ZipFile(appended, "w") as archive:
        archive.writestr("payload.exe", b"MZ\x90\x00" + bytes(64))
    return pdf + appended.getvalue()


def wrong_stream_length(pdf: bytes) -> bytes:
    """``pdf`` with its first stream's /Length off by 40: pypdf still reads it."""
    found = re.search(rb"/Length (\d+)", pdf)
    assert found is not None
    longer = str(int(found.group(1)) + 40).encode()
    return pdf[: found.start(1)] + longer + pdf[found.end(1) :]


def main_with_page_box(box: tuple[float | str, ...] | None) -> Callable[[], list[dict[str, Any]]]:
    """The letter as its main file, every page's /MediaBox ``box`` (None: none)."""
    return lambda: [attachment(with_page_box(letter_pdf(), box))]


def appendix(data: bytes, filename: str = APPENDIX_NAME, **kwargs: Any) -> dict[str, Any]:
    return attachment(data, filename=filename, role="appendix", **kwargs)


@functools.cache
def active_pdf(how: str) -> bytes:
    """Letter 1227 that acts, or may act, when opened: what its catalog's /OpenAction does
    (a script, a launched program, a web page, a menu command, a page of the letter), a
    link annotation on page 1 (to a web page, or to a file on another machine), a 3D
    annotation that runs when its page opens, or an embedded .exe."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(letter_pdf(how))))
    page = writer.pages[0].indirect_reference
    opening: dict[str, Any] = {
        "script": {"/S": NameObject("/JavaScript"), "/JS": TextStringObject("app.alert(1)")},
        "Launch": {"/S": NameObject("/Launch"), "/F": TextStringObject("calc.exe")},
        "web page": {"/S": NameObject("/URI"), "/URI": TextStringObject("http://x.example/t")},
        "printing": {"/S": NameObject("/Named"), "/N": NameObject("/Print")},
        "page 1": {"/S": NameObject("/GoTo"), "/D": ArrayObject([page, NameObject("/Fit")])},
    }
    annotations: dict[str, Any] = {
        "link to a web page": {
            "/Subtype": NameObject("/Link"),
            "/A": DictionaryObject(
                {
                    NameObject("/S"): NameObject("/URI"),
                    NameObject("/URI"): TextStringObject("https://x.example"),
                }
            ),
        },
        "link to another machine": {
            "/Subtype": NameObject("/Link"),
            "/A": DictionaryObject(
                {
                    NameObject("/S"): NameObject("/GoToR"),
                    NameObject("/F"): TextStringObject("\\\\x.example\\share\\x.pdf"),
                    NameObject("/D"): ArrayObject([NumberObject(0), NameObject("/Fit")]),
                }
            ),
        },
        "3D": {
            "/Subtype": NameObject("/3D"),
            "/3DA": DictionaryObject({NameObject("/A"): NameObject("/PO")}),
        },
    }
    if how == "embedded":
        writer.add_attachment("evil.exe", b"MZ\x90\x00" + bytes(60))
    elif how in opening:
        action = DictionaryObject({NameObject(k): v for k, v in opening[how].items()})
        # kept in the catalog, or as an object of its own, as writers do either
        kept = writer._add_object(action) if how in ("web page", "page 1") else action
        writer._root_object[NameObject("/OpenAction")] = kept
    else:
        entries = {"/Type": NameObject("/Annot"), **annotations[how]}
        entries["/Rect"] = ArrayObject([FloatObject(v) for v in (50, 50, 150, 80)])
        annotation = DictionaryObject({NameObject(k): v for k, v in entries.items()})
        writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(annotation)])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@functools.cache
def deeply_nested_pdf(depth: int = 50_000) -> bytes:
    """Letter 1227 with an update adding one object no page uses: an array ``depth`` deep."""
    base = letter_pdf("nested")
    trailer = PdfReader(io.BytesIO(base)).trailer
    size, root = int(trailer["/Size"]), trailer.raw_get("/Root")
    previous = int(base[base.rindex(b"startxref") + 9 :].split()[0])
    added = f"{size} 0 obj\n".encode() + b"[" * depth + b"]" * depth + b"\nendobj\n"
    xref = (
        f"xref\n{size} 1\n{len(base):010d} 00000 n \ntrailer\n<< /Size {size + 1} "
        f"/Root {root.idnum} 0 R /Prev {previous} >>\nstartxref\n{len(base) + len(added)}\n%%EOF\n"
    )
    return base + added + xref.encode()


# -- the variants ------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """A signing authority held by a user of the issuing agency."""

    signer: str = SIGNER
    doc_types: tuple[str, ...] = ("CV", "QĐ")
    competence: str = "KT. CHỦ TỊCH"
    valid_from: date = date(2020, 1, 1)
    valid_until: date | None = None
    revoked: bool = False


GRANTS = (Grant(), Grant(signer=CHAIRMAN, doc_types=("*",), competence=""))


@dataclass(frozen=True)
class Variant:
    """Letter 1227 with some things changed, and what one check must say about it."""

    code: str
    passed: bool
    details: Mapping[str, Any] = field(default_factory=dict)  # expected, a subset
    fields: Mapping[str, Any] = field(default_factory=dict)
    recipients: Sequence[Mapping[str, str]] = tuple(SAMPLE_RECIPIENTS)
    files: Callable[[], list[dict[str, Any]]] = lambda: [main_pdf()]
    grants: tuple[Grant, ...] = GRANTS
    today: date = TODAY
    at: time = CHECKED_TIME
    calendar: WorkingCalendar = VIETNAM_CALENDAR
    send_cutoff: time = DEFAULT_CUTOFF
    max_attachment_bytes: int = MAX_BYTES
    max_subject_length: int = MAX_SUBJECT
    max_package_bytes: int | None = MAX_PACKAGE


def passes(id: str, code: str, marks: Any = (), **kwargs: Any) -> Any:
    return pytest.param(Variant(code, True, **kwargs), id=f"{code}:{id}", marks=marks)


def fails(id: str, code: str, marks: Any = (), **kwargs: Any) -> Any:
    return pytest.param(Variant(code, False, **kwargs), id=f"{code}:{id}", marks=marks)


class StartsWith(str):
    """Equal to any text starting with this one (for messages quoting a library)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith(str(self))

    def __hash__(self) -> int:
        return str.__hash__(self)


def only_files(*files: dict[str, Any]) -> Callable[[], list[dict[str, Any]]]:
    return lambda: list(files)


NUMBER_SYMBOL = "format.number_symbol"
CV_FORM = "UBND-<đơn vị soạn thảo>"
PLACE_DATE = "format.place_date"
SIGNER_BLOCK = "format.signer_block"
PRINTED = "format.printed"
AUTHORITY = "authority.signer"
ON_THE_DAY = {"signer": SIGNER, "doc_type": "CV", "on": ISSUED}

# One row per variant: how the letter differs from the sample, and what the check says.
# fmt: off
VARIANTS = [
    # -- số, ký hiệu
    passes("leading zero below ten", NUMBER_SYMBOL, fields={"number": 5},
           details={"notation": "05/UBND-TĐKT"}),
    passes("decision QĐ-UBND", NUMBER_SYMBOL, fields={"doc_type": "QĐ", "symbol": "QĐ-UBND"},
           details={"notation": "1227/QĐ-UBND"}),
    passes("programme CTr-UBND", NUMBER_SYMBOL,
           fields={"doc_type": "CTr", "symbol": "CTr-UBND"}),
    passes("drafting unit with a digit", NUMBER_SYMBOL, fields={"symbol": "UBND-KT2"}),
    fails("number missing", NUMBER_SYMBOL, fields={"number": None}, details={"field": "number"}),
    fails("number zero", NUMBER_SYMBOL, fields={"number": 0}, details={"field": "number"}),
    fails("symbol missing", NUMBER_SYMBOL, fields={"symbol": ""}, details={"field": "symbol"}),
    fails("space around the dash", NUMBER_SYMBOL, fields={"symbol": "UBND - TĐKT"},
          details={"field": "symbol", "value": "UBND - TĐKT"}),
    fails("space inside a group", NUMBER_SYMBOL, fields={"symbol": "UBND-TĐ KT"},
          details={"field": "symbol", "value": "UBND-TĐ KT"}),
    fails("lower case unit", NUMBER_SYMBOL, fields={"symbol": "UBND-tđkt"},
          details={"field": "symbol", "value": "UBND-tđkt", "expected": CV_FORM}),
    fails("lower case agency", NUMBER_SYMBOL, fields={"symbol": "Ubnd-TĐKT"},
          details={"field": "symbol", "expected": CV_FORM}),
    fails("whole notation typed in", NUMBER_SYMBOL, fields={"symbol": "1227/UBND-TĐKT"},
          details={"field": "symbol", "value": "1227/UBND-TĐKT"}),
    fails("slash between groups", NUMBER_SYMBOL, fields={"symbol": "UBND/TĐKT"},
          details={"field": "symbol", "value": "UBND/TĐKT"}),
    fails("wrong agency abbreviation", NUMBER_SYMBOL, fields={"symbol": "UBT-TĐKT"},
          details={"field": "symbol", "value": "UBT-TĐKT", "expected": CV_FORM}),
    fails("another agency's abbreviation", NUMBER_SYMBOL, fields={"symbol": "VPCP-TĐKT"},
          details={"expected": CV_FORM}),
    fails("letter without drafting unit", NUMBER_SYMBOL, fields={"symbol": "UBND"},
          details={"field": "symbol", "value": "UBND", "expected": CV_FORM}),
    fails("trailing dash", NUMBER_SYMBOL, fields={"symbol": "UBND-TĐKT-"},
          details={"value": "UBND-TĐKT-"}),
    fails("double dash", NUMBER_SYMBOL, fields={"symbol": "UBND--TĐKT"},
          details={"value": "UBND--TĐKT"}),
    fails("en dash from a word processor", NUMBER_SYMBOL, fields={"symbol": "UBND–TĐKT"},
          details={"value": "UBND–TĐKT"}),
    passes("legal normative decision, written with its year", NUMBER_SYMBOL,
           fields={"doc_type": "QĐ", "symbol": "QĐ-UBND", "legal_normative": True, "number": 5},
           details={"notation": "05/2021/QĐ-UBND"}),
    fails("decision with a letter's symbol", NUMBER_SYMBOL,
          fields={"doc_type": "QĐ", "symbol": "UBND-TĐKT"},
          details={"field": "symbol", "expected": "QĐ-UBND"}),
    fails("decision written QD without Đ", NUMBER_SYMBOL,
          fields={"doc_type": "QĐ", "symbol": "QD-UBND"}, details={"expected": "QĐ-UBND"}),
    fails("decision without agency", NUMBER_SYMBOL, fields={"doc_type": "QĐ", "symbol": "QĐ"},
          details={"expected": "QĐ-UBND"}),
    fails("decision with agency first", NUMBER_SYMBOL,
          fields={"doc_type": "QĐ", "symbol": "UBND-QĐ"}, details={"expected": "QĐ-UBND"}),
    # -- địa danh, thời gian
    passes("issued the day it is checked", PLACE_DATE),
    passes("issued earlier", PLACE_DATE, fields={"issued_on": "2021-01-20"}),
    fails("place missing", PLACE_DATE, fields={"place": ""}, details={"field": "place"}),
    fails("place blank", PLACE_DATE, fields={"place": "   "}, details={"field": "place"}),
    # a Cyrillic "е" (U+0435) in "Thiên": a look-alike no Vietnamese word is written with
    fails("place with a look-alike letter of another script", PLACE_DATE,
          fields={"place": "Thừa Thi\u0435n Huế"},
          details={"field": "place", "word": "Thi\u0435n"}),
    fails("place showing nothing", PLACE_DATE, fields={"place": "\u2800\u3164"},
          details={"field": "place"}),
    fails("place a blank to fill", PLACE_DATE, fields={"place": "........."},
          details={"field": "place", "value": "........."}),
    fails("place of figures alone", PLACE_DATE, fields={"place": "12-3"},
          details={"field": "place", "value": "12-3"}),
    passes("place with a figure in its name", PLACE_DATE, fields={"place": "Quận 1"}),
    fails("place with the date line typed in", PLACE_DATE,
          fields={"place": "Thừa Thiên Huế, ngày 06 tháng 02 năm 2021"},
          details={"field": "place"}),
    fails("place with a date in figures", PLACE_DATE, fields={"place": "Huế 06/02/2021"},
          details={"field": "place"}),
    passes("place of a ward with a number", PLACE_DATE, fields={"place": "Phường 12"}),
    *(
        fails(f"place holding a date: {place!r}", PLACE_DATE, fields={"place": place},
              details={"field": "place"})
        for place in ("Huế, ngày…tháng…năm…", "Huế, 2021-02-06", "Huế, 6/2/21",
                      "Huế,ngày06tháng02năm2021")
    ),
    *(
        passes(f"place named with a word of the calendar: {place!r}", PLACE_DATE,
               fields={"place": place})
        for place in ("Năm Căn", "Ngã Năm", "Tháng Mười")
    ),
    fails("date missing", PLACE_DATE, fields={"issued_on": None}, details={"field": "issued_on"}),
    fails("dated tomorrow", PLACE_DATE, fields={"issued_on": "2021-02-07"},
          details={"field": "issued_on", "value": "2021-02-07", "today": ISSUED}),
    fails("dated next year", PLACE_DATE, fields={"issued_on": "2022-02-06"},
          details={"field": "issued_on", "value": "2022-02-06"}),
    # kept before the API held dates to the years 1901 to 2100
    fails("dated before 1901", PLACE_DATE, fields={"issued_on": "1900-12-31"},
          details={"field": "issued_on", "value": "1900-12-31"}),
    fails("dated in year 9999", PLACE_DATE, fields={"issued_on": "9999-12-31"},
          details={"field": "issued_on", "value": "9999-12-31"}),
    # -- tên loại
    passes("decision", "format.doc_type", fields={"doc_type": "QĐ"},
           details={"name": "Quyết định"}),
    passes("official letter", "format.doc_type", details={"name": "Công văn"}),
    fails("type spelled out", "format.doc_type", fields={"doc_type": "Công văn"},
          details={"field": "doc_type", "value": "Công văn",
                   "allowed": sorted(KNOWN_DOC_TYPES)}),
    fails("type in lower case", "format.doc_type", fields={"doc_type": "cv"},
          details={"field": "doc_type", "value": "cv"}),
    fails("type unknown", "format.doc_type", fields={"doc_type": "XYZ"},
          details={"value": "XYZ"}),
    passes("legal normative decision", "format.doc_type",
           fields={"doc_type": "QĐ", "symbol": "QĐ-UBND", "legal_normative": True},
           details={"name": "Quyết định", "legal_normative": True}),
    passes("decree", "format.doc_type",
           fields={"doc_type": "NĐ", "symbol": "NĐ-UBND", "legal_normative": True}),
    fails("legal normative letter", "format.doc_type", fields={"legal_normative": True},
          details={"field": "legal_normative", "value": "CV"}),
    fails("decree not marked legal normative", "format.doc_type",
          fields={"doc_type": "NĐ", "symbol": "NĐ-UBND"},
          details={"field": "legal_normative", "value": "NĐ"}),
    # -- trích yếu
    passes("subject exactly at the limit", "format.subject", max_subject_length=len(SUBJECT)),
    fails("subject empty", "format.subject", fields={"subject": ""},
          details={"field": "subject"}),
    fails("subject blank", "format.subject", fields={"subject": " \t "},
          details={"field": "subject"}),
    fails("subject too long", "format.subject", max_subject_length=len(SUBJECT) - 1,
          details={"field": "subject", "length": len(SUBJECT), "max_length": len(SUBJECT) - 1}),
    fails("subject with a Greek omicron in a Vietnamese word", "format.subject",
          fields={"subject": "V/v khen thưởng c\u03bfng chức"},
          details={"field": "subject", "word": "c\u03bfng"}),
    passes("subject naming a place in its own script", "format.subject",
           fields={"subject": "V/v đoàn công tác tại Москва"}),
    *(
        fails(f"subject saying nothing: {text!r}", "format.subject", fields={"subject": text},
              details={"field": "subject"})
        for text in ("...", "- - -", "V/v", "V/v .......", "12345", "v/v 01/2026")
    ),
    passes("subject of a short word after V/v", "format.subject",
           fields={"subject": "V/v họp"}),
    passes("subject of an abbreviation and figures", "format.subject",
           fields={"subject": "V/v phòng, chống COVID-19"}),
    fails("subject in capitals", "format.subject_case",
          fields={"subject": "V/V TĂNG CƯỜNG GỬI, NHẬN VĂN BẢN ĐIỆN TỬ"},
          details={"field": "subject"}),
    passes("subject with abbreviations in it", "format.subject_case",
           fields={"subject": "V/v UBND tỉnh phòng, chống COVID-19"}),
    passes("subject of one abbreviation", "format.subject_case",
           fields={"subject": "V/v BHXH TP"}),
    passes("subject of abbreviations alone", "format.subject_case",
           fields={"subject": "V/v UBND, HĐND, MTTQ"}),
    fails("subject in capitals but for a word", "format.subject_case",
          fields={"subject": "V/v BÁO CÁO TÌNH HÌNH KINH TẾ - XÃ HỘI năm 2026"},
          details={"field": "subject"}),
    passes("decision needs no V/v", "format.subject_prefix",
           fields={"doc_type": "QĐ", "subject": "Về việc khen thưởng"}),
    fails("letter subject without V/v", "format.subject_prefix",
          fields={"subject": SUBJECT.removeprefix("V/v ")}, details={"field": "subject"}),
    fails("letter subject with v/v", "format.subject_prefix",
          fields={"subject": "v/v " + SUBJECT.removeprefix("V/v ")},
          details={"field": "subject"}),
    # -- người ký
    *(
        fails(f"the chairman signing {prefix} of himself", SIGNER_BLOCK,
              fields={"signer_competence": f"{prefix} CHỦ TỊCH", "signer_position": "CHỦ TỊCH"},
              details={"field": "signer_competence", "value": f"{prefix} CHỦ TỊCH"})
        for prefix in ("TL.", "TUQ.")
    ),
    *(
        fails(f"the chairman, written {position!r}, signing TL. of himself", SIGNER_BLOCK,
              fields={"signer_competence": "TL. CHỦ TỊCH", "signer_position": position},
              details={"field": "signer_competence"})
        for position in ("CHỦ TỊCH UBND TỈNH", "CHỦ  TỊCH.")
    ),
    passes("a deputy of a head of two offices", SIGNER_BLOCK,
           fields={"signer_competence": "KT. BỘ TRƯỞNG, CHỦ NHIỆM",
                   "signer_position": "PHÓ CHỦ NHIỆM", "signer_user": ""}),
    passes("a deputy of both offices", SIGNER_BLOCK,
           fields={"signer_competence": "KT. BỘ TRƯỞNG, CHỦ NHIỆM",
                   "signer_position": "THỨ TRƯỞNG, PHÓ CHỦ NHIỆM", "signer_user": ""}),
    passes("chairman signs in his own name", SIGNER_BLOCK,
           fields={"signer_competence": "", "signer_position": "CHỦ TỊCH",
                   "signer_name": CHAIRMAN_NAME, "signer_user": CHAIRMAN}),
    passes("signed by order without an account", SIGNER_BLOCK,
           fields={"signer_competence": "TL. CHỦ TỊCH", "signer_position": "CHÁNH VĂN PHÒNG",
                   "signer_name": "Trần Văn Bình", "signer_user": ""}),
    passes("the account's name with the other tone placement (Hòa, Hoà)", SIGNER_BLOCK,
           fields={"signer_competence": "", "signer_position": "CHỦ TỊCH",
                   "signer_name": "Lê Thị Hoà", "signer_user": "lthoa"}),
    fails("another name than the account's", SIGNER_BLOCK,
          fields={"signer_competence": "", "signer_position": "CHỦ TỊCH",
                  "signer_name": "Lê Thị Hoa", "signer_user": "lthoa"},
          details={"field": "signer_name"}),
    passes("deputy position in mixed case", SIGNER_BLOCK,
           fields={"signer_position": "Phó Chủ tịch"}),
    passes("typed in decomposed Unicode", SIGNER_BLOCK,
           fields={"signer_name": nfd(SIGNER_NAME), "signer_position": nfd("PHÓ CHỦ TỊCH"),
                   "signer_competence": nfd("KT. CHỦ TỊCH")}),
    fails("name missing", SIGNER_BLOCK, fields={"signer_name": ""},
          details={"field": "signer_name"}),
    # letters the stamp's font lacks would be left out of the stamp without a word
    fails("name in a letter the stamp cannot draw", SIGNER_BLOCK,
          fields={"signer_name": "Nguyễn Văn 阮"},
          details={"field": "signer_name", "characters": ["阮"]}),
    fails("position with a symbol the stamp cannot draw", SIGNER_BLOCK,
          fields={"signer_position": "PHÓ CHỦ TỊCH ★"},
          details={"field": "signer_position", "characters": ["★"]}),
    fails("position missing", SIGNER_BLOCK, fields={"signer_position": " "},
          details={"field": "signer_position"}),
    fails("KT. by the head himself", SIGNER_BLOCK,
          fields={"signer_position": "CHỦ TỊCH", "signer_name": CHAIRMAN_NAME,
                  "signer_user": CHAIRMAN},
          details={"field": "signer_position", "value": "CHỦ TỊCH"}),
    fails("KT. by an office head", SIGNER_BLOCK,
          fields={"signer_position": "CHÁNH VĂN PHÒNG", "signer_user": ""},
          details={"field": "signer_position", "value": "CHÁNH VĂN PHÒNG"}),
    fails("deputy signs without KT.", SIGNER_BLOCK, fields={"signer_competence": ""},
          details={"field": "signer_competence"}),
    fails("KT without the dot", SIGNER_BLOCK, fields={"signer_competence": "KT CHỦ TỊCH"},
          details={"field": "signer_competence", "value": "KT CHỦ TỊCH"}),
    fails("competence in lower case", SIGNER_BLOCK,
          fields={"signer_competence": "kt. chủ tịch"},
          details={"field": "signer_competence", "value": "kt. chủ tịch"}),
    fails("title in lower case", SIGNER_BLOCK, fields={"signer_competence": "KT. Chủ tịch"},
          details={"field": "signer_competence", "value": "KT. Chủ tịch"}),
    fails("no space after KT.", SIGNER_BLOCK, fields={"signer_competence": "KT.CHỦ TỊCH"},
          details={"field": "signer_competence"}),
    fails("unknown prefix", SIGNER_BLOCK, fields={"signer_competence": "TT. CHỦ TỊCH"},
          details={"field": "signer_competence", "value": "TT. CHỦ TỊCH"}),
    fails("acting head without an authority naming Q.", SIGNER_BLOCK,
          fields={"signer_competence": "Q. CHỦ TỊCH"},
          details={"field": "signer_competence", "value": "Q. CHỦ TỊCH"}),
    passes("acting head with an authority granting exactly Q. CHỦ TỊCH", SIGNER_BLOCK,
           fields={"signer_competence": "Q. CHỦ TỊCH"},
           grants=(Grant(competence="Q. CHỦ TỊCH"),)),
    fails("acting head whose authority grants another competence", SIGNER_BLOCK,
          fields={"signer_competence": "Q. GIÁM ĐỐC"},
          grants=(Grant(competence="Q. CHỦ TỊCH"),),
          details={"field": "signer_competence", "value": "Q. GIÁM ĐỐC"}),
    # a deputy of a collective body's head: TM. <body>, then KT. <head>
    passes("deputy signs TM. then KT.", SIGNER_BLOCK,
           fields={"signer_competence": "TM. ỦY BAN NHÂN DÂN\nKT. CHỦ TỊCH"}),
    fails("deputy signs TM. without KT.", SIGNER_BLOCK,
          fields={"signer_competence": "TM. ỦY BAN NHÂN DÂN"},
          details={"field": "signer_competence", "value": "TM. ỦY BAN NHÂN DÂN"}),
    fails("deputy signs TL. without KT.", SIGNER_BLOCK,
          fields={"signer_competence": "TL. CHỦ TỊCH", "signer_position": "PHÓ CHÁNH VĂN PHÒNG",
                  "signer_user": ""},
          details={"field": "signer_competence"}),
    passes("deputy office head signs TL. then KT.", SIGNER_BLOCK,
           fields={"signer_competence": "TL. CHỦ TỊCH\nKT. CHÁNH VĂN PHÒNG",
                   "signer_position": "PHÓ CHÁNH VĂN PHÒNG", "signer_user": ""}),
    fails("KT. for another head", SIGNER_BLOCK, fields={"signer_competence": "KT. GIÁM ĐỐC"},
          details={"field": "signer_position", "value": "PHÓ CHỦ TỊCH", "head": "GIÁM ĐỐC"}),
    fails("TM. then KT. for another head", SIGNER_BLOCK,
          fields={"signer_competence": "TM. ỦY BAN NHÂN DÂN KT. GIÁM ĐỐC"},
          details={"field": "signer_position", "head": "GIÁM ĐỐC"}),
    passes("the permanent deputy signs KT.", SIGNER_BLOCK,
           fields={"signer_position": "PHÓ CHỦ TỊCH THƯỜNG TRỰC"}),
    passes("a deputy minister signs KT. BỘ TRƯỞNG", SIGNER_BLOCK,
           fields={"signer_competence": "KT. BỘ TRƯỞNG", "signer_position": "THỨ TRƯỞNG",
                   "signer_user": ""}),
    fails("authorisation passed on (TUQ. then KT.)", SIGNER_BLOCK,
          fields={"signer_competence": "TUQ. CHỦ TỊCH KT. CHÁNH VĂN PHÒNG"},
          details={"field": "signer_competence"}),
    fails("prefix without a title", SIGNER_BLOCK, fields={"signer_competence": "KT."},
          details={"field": "signer_competence"}),
    fails("account is a clerk", SIGNER_BLOCK, fields={"signer_user": CLERK_USER},
          details={"field": "signer_user"}),
    fails("account unknown", SIGNER_BLOCK, fields={"signer_user": "nvphuong2"},
          details={"field": "signer_user"}),
    fails("name without diacritics", SIGNER_BLOCK, fields={"signer_name": "Nguyen Van Phuong"},
          details={"field": "signer_name", "account": SIGNER_NAME,
                   "document": "Nguyen Van Phuong"}),
    fails("another person's name", SIGNER_BLOCK, fields={"signer_name": CHAIRMAN_NAME},
          details={"field": "signer_name", "account": SIGNER_NAME, "document": CHAIRMAN_NAME}),
    # -- nơi nhận
    passes("two recipients", "format.recipients", details={"count": 2}),
    fails("no recipients", "format.recipients", recipients=(),
          details={"field": "recipients"}),
    # -- độ khẩn
    passes("hỏa tốc", "format.urgency", fields={"urgency": 3}, details={"label": "hỏa tốc"}),
    passes("thường", "format.urgency", details={"label": "thường"}),
    fails("urgency unknown", "format.urgency", fields={"urgency": 9},
          details={"field": "urgency", "allowed": sorted(URGENCY)}),
    fails("urgency negative", "format.urgency", fields={"urgency": -1},
          details={"field": "urgency"}),
    # -- độ mật
    fails("Mật", "format.secrecy", fields={"secrecy": "mat"},
          details={"field": "secrecy", "value": "mat"}),
    fails("Tối mật", "format.secrecy", fields={"secrecy": "toi_mat"},
          details={"field": "secrecy", "value": "toi_mat"}),
    fails("Tuyệt mật", "format.secrecy", fields={"secrecy": "tuyet_mat"},
          details={"field": "secrecy", "value": "tuyet_mat"}),
    fails("mark outside the list", "format.secrecy", fields={"secrecy": "MẬT"},
          details={"field": "secrecy", "value": "MẬT"}),
    # -- năm ban hành (blocking): dated and numbered in the year it is issued
    passes("dated this year", "format.issue_year", fields={"issued_on": "2021-01-01"},
           today=date(2021, 12, 31)),
    fails("dated last year", "format.issue_year", fields={"issued_on": "2020-12-31"},
          today=date(2021, 1, 4), details={"value": "2020-12-31", "year": 2021}),
    fails("dated next year", "format.issue_year", fields={"issued_on": "2022-01-03"},
          today=date(2021, 12, 31), details={"value": "2022-01-03", "year": 2021}),
    passes("a date that is not one is another check's", "format.issue_year",
           fields={"issued_on": "06/02/2021"}),
    # -- phát hành đúng hạn (warning): the signing day or the next working day
    passes("sent the next day", "format.timeliness", fields={"issued_on": "2021-02-05"}),
    passes("signed on Friday, sent on Monday", "format.timeliness",
           fields={"issued_on": "2021-02-05"}, today=date(2021, 2, 8)),
    passes("signed on Saturday, sent on Monday", "format.timeliness", today=date(2021, 2, 8)),
    passes("signed before Tết, sent after the holiday", "format.timeliness",
           fields={"issued_on": "2021-02-09"}, today=date(2021, 2, 17)),
    fails("signed before Tết, sent a day after the holiday", "format.timeliness",
          fields={"issued_on": "2021-02-09"}, today=date(2021, 2, 18),
          details={"value": "2021-02-09", "latest": "2021-02-17T12:00:00+07:00"}),
    fails("a date that is not a date", "format.timeliness", fields={"issued_on": "06/02/2021"},
          details={"field": "issued_on"}),
    fails("a date that is not a date", "format.place_date", fields={"issued_on": "06/02/2021"},
          details={"field": "issued_on"}),
    # dates at Python's edges, kept before the API held dates to the years 1901 to 2100
    passes("dated on the last day Python writes", "format.timeliness",
           fields={"issued_on": "9999-12-31"}),
    fails("dated on the first day Python writes", "format.timeliness",
          fields={"issued_on": "0001-01-01"}, details={"field": "issued_on"}),
    fails("sent three days late", "format.timeliness", fields={"issued_on": "2021-02-03"},
          details={"field": "issued_on", "value": "2021-02-03", "today": ISSUED}),
    fails("signed on Friday, sent on Tuesday", "format.timeliness",
          fields={"issued_on": "2021-02-05"}, today=date(2021, 2, 9),
          details={"value": "2021-02-05", "today": "2021-02-09"}),
    # the morning of the next working day ends at noon (Decision 28/2018 Art. 6)
    passes("signed on Friday, sent on Monday before noon", "format.timeliness",
           fields={"issued_on": "2021-02-05"}, today=date(2021, 2, 8), at=time(11, 59),
           details={"latest": "2021-02-08T12:00:00+07:00"}),
    fails("signed on Friday, sent on Monday afternoon", "format.timeliness",
          fields={"issued_on": "2021-02-05"}, today=date(2021, 2, 8), at=time(12, 1),
          details={"latest": "2021-02-08T12:00:00+07:00", "now": "2021-02-08T12:01:00+07:00"}),
    passes("a later cut-off the operator set", "format.timeliness",
           fields={"issued_on": "2021-02-05"}, today=date(2021, 2, 8), at=time(12, 1),
           send_cutoff=time(13, 30), details={"latest": "2021-02-08T13:30:00+07:00"}),
    # 26/04/2025 is a make-up working Saturday for the day off on 02/05/2025
    passes("signed on Friday before 30/4, sent on the make-up Saturday", "format.timeliness",
           fields={"issued_on": "2025-04-25"}, today=date(2025, 4, 26), at=time(11),
           details={"latest": "2025-04-26T12:00:00+07:00"}),
    fails("signed on Friday before 30/4, sent on Monday", "format.timeliness",
          fields={"issued_on": "2025-04-25"}, today=date(2025, 4, 28),
          details={"latest": "2025-04-26T12:00:00+07:00"}),
    passes("signed before 30/4, sent after the swapped day off", "format.timeliness",
           fields={"issued_on": "2025-04-29"}, today=date(2025, 5, 5), at=time(11),
           details={"latest": "2025-05-05T12:00:00+07:00"}),
    passes("a day off the operator added", "format.timeliness",
           fields={"issued_on": "2021-02-05"}, today=date(2021, 2, 9),
           calendar=WorkingCalendar(extra_days_off=[date(2021, 2, 8)]),
           details={"latest": "2021-02-09T12:00:00+07:00"}),
    fails("a make-up Saturday the operator added", "format.timeliness",
          fields={"issued_on": "2021-02-05"}, today=date(2021, 2, 8),
          calendar=WorkingCalendar(extra_working_days=[date(2021, 2, 6)]),
          details={"latest": "2021-02-06T12:00:00+07:00"}),
    # urgent documents (khẩn and above) are sent right after signing
    passes("khẩn, sent on its date", "format.timeliness",
           fields={"issued_on": ISSUED, "urgency": 1}, at=time(23, 59),
           details={"latest": "2021-02-06T23:59:59.999999+07:00"}),
    fails("khẩn, sent the next working morning", "format.timeliness",
          fields={"issued_on": "2021-02-05", "urgency": 1},
          details={"urgency": 1, "latest": "2021-02-05T23:59:59.999999+07:00"}),
    fails("hỏa tốc, sent the next day", "format.timeliness",
          fields={"issued_on": "2021-02-05", "urgency": 3}, details={"urgency": 3}),
    # -- thông tin bắt buộc
    fails("number and signer account missing", "metadata.required",
          fields={"number": None, "signer_user": ""},
          details={"missing": ["number", "signer_user"]}),
    fails("subject and place missing", "metadata.required",
          fields={"subject": "", "place": ""}, details={"missing": ["subject", "place"]}),
    fails("symbol, date and signer missing", "metadata.required",
          fields={"symbol": "", "issued_on": None, "signer_name": "", "signer_position": ""},
          details={"missing": ["symbol", "issued_on", "signer_name", "signer_position"]}),
    fails("no recipients", "metadata.required", recipients=(),
          details={"missing": ["recipients"]}),
    fails("no main file", "metadata.required",
          files=lambda: [appendix(letter_pdf("phụ lục"))], details={"missing": ["main file"]}),
    # -- mã định danh
    passes("recipient at the Government Office", "metadata.agencies",
           recipients=({"organ_id": GOVERNMENT_OFFICE_ID, "name": "Văn phòng Chính phủ"},)),
    fails("recipient id in lower case", "metadata.agencies",
          recipients=({"organ_id": "000.00.01.h57", "name": "Văn phòng UBND tỉnh"},),
          details={"malformed": ["000.00.01.h57"]}),
    fails("recipient id with an empty group", "metadata.agencies",
          recipients=(SAMPLE_RECIPIENTS[0], {"organ_id": "000..H57", "name": "?"}),
          details={"malformed": ["000..H57"]}),
    fails("recipient id with a space", "metadata.agencies",
          recipients=({"organ_id": "000.00.02 .H57", "name": "Sở TT&TT"},),
          details={"malformed": ["000.00.02 .H57"]}),
    fails("recipient id too long", "metadata.agencies",
          recipients=({"organ_id": "0" * 36, "name": "?"},), details={"malformed": ["0" * 36]}),
    fails("recipient not in the directory", "metadata.agencies",
          recipients=(SAMPLE_RECIPIENTS[0], {"organ_id": "000.00.09.H57", "name": "Sở Y tế"}),
          details={"unknown": ["000.00.09.H57"]}),
    # -- nơi nhận có địa chỉ nhận (what send would refuse as unknown_peer)
    passes("every recipient with a peer entry", "metadata.reachable"),
    fails("recipient with no inbox known", "metadata.reachable",
          recipients=(SAMPLE_RECIPIENTS[0], {"organ_id": UNLINKED_ID, "name": "Sở Tư pháp"}),
          details={"unreachable": [UNLINKED_ID]}),
    fails("issuing agency among the recipients", "metadata.agencies",
          recipients=(*SAMPLE_RECIPIENTS, {"organ_id": AGENCY_ID, "name": "Lưu: VT"}),
          details={"organ_id": AGENCY_ID}),
    # -- hạn xử lý (warning)
    passes("due in two weeks", "metadata.due_date", fields={"due_date": "2021-02-20"}),
    passes("due today", "metadata.due_date", fields={"due_date": ISSUED}),
    fails("due date passed", "metadata.due_date", fields={"due_date": "2021-02-01"},
          details={"field": "due_date", "value": "2021-02-01"}),
    # -- hỏa tốc hẹn giờ: the appointed time, and only there
    passes("a normal letter without one", "metadata.appointed_time"),
    passes("hẹn giờ with its time", "metadata.appointed_time",
           fields={"urgency": 4, "appointed_at": "2021-02-06T20:00:00+07:00"}),
    fails("hẹn giờ without its time", "metadata.appointed_time", fields={"urgency": 4},
          details={"field": "appointed_at"}),
    fails("a time on a khẩn letter", "metadata.appointed_time",
          fields={"urgency": 1, "appointed_at": "2021-02-06T20:00:00+07:00"},
          details={"field": "appointed_at", "value": "2021-02-06T20:00:00+07:00"}),
    fails("a time past what Vietnam time writes", "metadata.appointed_time",
          fields={"urgency": 4, "appointed_at": "9999-12-31T17:00:00+00:00"},
          details={"field": "appointed_at", "value": "9999-12-31T17:00:00+00:00"}),
    fails("a time after 2100 in Vietnam", "metadata.appointed_time",
          fields={"urgency": 4, "appointed_at": "2100-12-31T17:00:00+00:00"},
          details={"field": "appointed_at"}),
    fails("a time already past", "metadata.appointed_time",
          fields={"urgency": 4, "appointed_at": "2021-02-06T08:00:00+07:00"},
          details={"field": "appointed_at", "value": "2021-02-06T08:00:00+07:00"}),
    # -- thẩm quyền ký
    passes("chairman with authority for every type", AUTHORITY,
           fields={"signer_user": CHAIRMAN, "signer_competence": ""}),
    passes("authority starting that day", AUTHORITY, grants=(Grant(valid_from=TODAY),)),
    passes("authority ending that day", AUTHORITY, grants=(Grant(valid_until=TODAY),)),
    passes("authority naming no competence", AUTHORITY, grants=(Grant(competence=""),)),
    passes("an expired and a current authority", AUTHORITY,
           grants=(Grant(valid_until=date(2020, 12, 31)), Grant(valid_from=date(2021, 1, 1)))),
    passes("a second authority to sign for the committee", AUTHORITY,
           fields={"doc_type": "QĐ", "symbol": "QĐ-UBND",
                   "signer_competence": "TM. ỦY BAN NHÂN DÂN"},
           grants=(Grant(), Grant(doc_types=("QĐ",), competence="TM. ỦY BAN NHÂN DÂN",
                                  valid_from=date(2021, 1, 1)))),
    passes("competence typed in decomposed Unicode", AUTHORITY,
           fields={"signer_competence": nfd("KT. CHỦ TỊCH")}),
    passes("the committee's name with the other tone placement (ỦY, UỶ)", AUTHORITY,
           fields={"signer_competence": "TM. UỶ BAN NHÂN DÂN\nKT. CHỦ TỊCH"},
           grants=(Grant(competence="TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH"),)),
    fails("no signer named", AUTHORITY, fields={"signer_user": ""},
          details={"field": "signer_user"}),
    fails("signer holds no authority", AUTHORITY, grants=(), details=ON_THE_DAY),
    fails("authority for decisions only", AUTHORITY, grants=(Grant(doc_types=("QĐ",)),),
          details=ON_THE_DAY),
    fails("authority held by someone else", AUTHORITY, grants=(Grant(signer=CHAIRMAN),),
          details=ON_THE_DAY),
    fails("authority expired", AUTHORITY, grants=(Grant(valid_until=date(2021, 2, 5)),),
          details=ON_THE_DAY),
    fails("authority not yet valid", AUTHORITY, grants=(Grant(valid_from=date(2021, 2, 7)),),
          details=ON_THE_DAY),
    fails("authority revoked", AUTHORITY, grants=(Grant(revoked=True),), details=ON_THE_DAY),
    fails("undated letter checked after the authority ended", AUTHORITY,
          fields={"issued_on": None}, grants=(Grant(valid_until=date(2021, 1, 31)),),
          details={**ON_THE_DAY, "on": ISSUED}),
    fails("competence differs from the authority", AUTHORITY,
          fields={"signer_competence": "TM. ỦY BAN NHÂN DÂN"},
          details={"field": "signer_competence", "expected": "KT. CHỦ TỊCH",
                   "value": "TM. ỦY BAN NHÂN DÂN"}),
    fails("competence left out", AUTHORITY, fields={"signer_competence": ""},
          details={"field": "signer_competence", "expected": "KT. CHỦ TỊCH", "value": ""}),
    # -- tệp chính
    passes("one main file and an appendix", "attachments.main_file",
           files=lambda: [main_pdf(), appendix(letter_pdf("phụ lục"))],
           details={"filename": MAIN_NAME}),
    fails("no file", "attachments.main_file", files=only_files(), details={"count": 0}),
    fails("appendix only", "attachments.main_file",
          files=lambda: [appendix(letter_pdf("phụ lục"))], details={"count": 0}),
    fails("two main files", "attachments.main_file",
          files=lambda: [main_pdf(), attachment(letter_pdf("bản 2"), filename="1227-ban-2.pdf")],
          details={"count": 2}),
    # -- định dạng
    passes("PDF, PNG and spreadsheet appendices", "attachments.media_type",
           files=lambda: [main_pdf(), appendix(letter_pdf("phụ lục")),
                          appendix(scanned_png(), "so-do.png", media_type="image/png"),
                          spreadsheet()]),
    fails("main file is a PNG scan", "attachments.media_type",
          files=lambda: [attachment(scanned_png(), filename="1227.png", media_type="image/png")],
          details={"files": [{"filename": "1227.png", "role": "main", "detected": "image/png"}]}),
    fails("main file is PNG bytes named .pdf", "attachments.media_type",
          files=lambda: [attachment(scanned_png())],
          details={"files": [{"filename": MAIN_NAME, "role": "main", "detected": "image/png"}]}),
    fails("main file is plain text", "attachments.media_type",
          files=lambda: [attachment("Số: 1227/UBND-TĐKT\nV/v tăng cường…".encode())],
          details={"files": [{"filename": MAIN_NAME, "role": "main",
                              "detected": "application/octet-stream"}]}),
    fails("main file is a Word document", "attachments.media_type",
          files=lambda: [attachment(word_document(), filename="1227.docx", media_type=DOCX)],
          details={"files": [{"filename": "1227.docx", "role": "main", "detected": DOCX}]}),
    fails("ZIP that calls itself a PDF", "attachments.media_type",
          files=lambda: [attachment(archive(("mimetype", "application/pdf")))],
          details={"files": [{"filename": MAIN_NAME, "role": "main",
                              "detected": "application/zip"}]}),
    # a PDF signed as one only when declared one: a main file of another declared type
    # would be signed without its PDF signature, then refused by every inbox
    fails("main PDF declared as application/x-pdf", "attachments.media_type",
          files=lambda: [main_pdf() | {"media_type": "application/x-pdf"}],
          details={"files": [{"filename": MAIN_NAME, "role": "main",
                              "declared": "application/x-pdf"}]}),
    fails("main PDF declared as octet-stream", "attachments.media_type",
          files=lambda: [main_pdf() | {"media_type": "application/octet-stream"}],
          details={"files": [{"filename": MAIN_NAME, "role": "main",
                              "declared": "application/octet-stream"}]}),
    *(
        fails(f"main PDF named {name!r}", "attachments.media_type",
              files=lambda name=name: [main_pdf() | {"filename": name}],
              details={"files": [{"filename": name, "role": "main", "named": "not .pdf"}]})
        for name in ("1227.exe", "1227.docx", "1227", "1227.pdf.exe")
    ),
    passes("main PDF named in capitals", "attachments.media_type",
           files=lambda: [main_pdf() | {"filename": "1227.PDF"}]),
    passes("Word 97-2003 and Excel 97-2003 appendices", "attachments.media_type",
           files=lambda: [main_pdf(),
                          appendix(ole_file("WordDocument"), "to-trinh.doc",
                                   media_type="application/msword"),
                          appendix(ole_file("Workbook"), "bang.xls",
                                   media_type="application/vnd.ms-excel")]),
    fails("a compound file of another kind", "attachments.media_type",
          files=lambda: [main_pdf(), appendix(ole_file("Contents"), "ban-ve.doc",
                                              media_type="application/msword")],
          details={"files": [{"filename": "ban-ve.doc", "role": "appendix",
                              "detected": "application/x-ole-storage"}]}),
    fails("appendix is a Windows program", "attachments.media_type",
          files=lambda: [main_pdf(), appendix(b"MZ\x90\x00\x03" + bytes(200), "phu-luc.exe",
                                              media_type="application/octet-stream")],
          details={"files": [{"filename": "phu-luc.exe", "role": "appendix",
                              "detected": StartsWith("application/")}]}),
    # -- định dạng khai báo (warning)
    passes("spreadsheet appendix declared as such", "attachments.declared_type",
           files=lambda: [main_pdf(), spreadsheet()]),
    fails("PDF declared as octet-stream", "attachments.declared_type",
          files=lambda: [main_pdf() | {"media_type": "application/octet-stream"}],
          details={"files": [{"filename": MAIN_NAME, "declared": "application/octet-stream",
                              "named": "application/pdf", "detected": "application/pdf"}]}),
    fails("PNG declared as PDF", "attachments.declared_type",
          files=lambda: [main_pdf(), appendix(scanned_png(), "so-do.pdf")],
          details={"files": [{"filename": "so-do.pdf", "declared": "application/pdf",
                              "named": "application/pdf", "detected": "image/png"}]}),
    fails("PNG declared as such, named .pdf", "attachments.declared_type",
          files=lambda: [main_pdf(), appendix(scanned_png(), "pl.pdf", media_type="image/png")],
          details={"files": [{"filename": "pl.pdf", "declared": "image/png",
                              "named": "application/pdf", "detected": "image/png"}]}),
    fails("PDF named .png", "attachments.declared_type",
          files=lambda: [main_pdf(), appendix(letter_pdf("phụ lục"), "pl.png")],
          details={"files": [{"filename": "pl.png", "declared": "application/pdf",
                              "named": "image/png", "detected": "application/pdf"}]}),
    fails("appendix named with no ending", "attachments.declared_type",
          files=lambda: [main_pdf(), appendix(letter_pdf("phụ lục"), "phu-luc")],
          details={"files": [{"filename": "phu-luc", "declared": "application/pdf",
                              "named": None, "detected": "application/pdf"}]}),
    passes("OpenDocument text declared as such", "attachments.declared_type",
           files=lambda: [main_pdf(), appendix(archive(("mimetype", ODT), ("content.xml", "")),
                                               "bao-cao.odt", media_type=ODT)]),
    passes("zipped scans declared as ZIP", "attachments.declared_type",
           files=lambda: [main_pdf(), appendix(archive(("trang-1.png", "")), "ban-chup.zip",
                                               media_type="application/zip")]),
    passes("zipped scans declared as browsers on Windows do", "attachments.declared_type",
           files=lambda: [main_pdf(), appendix(archive(("trang-1.png", "")), "ban-chup.zip",
                                               media_type="application/x-zip-compressed")]),
    fails("damaged spreadsheet", "attachments.declared_type",
          files=lambda: [main_pdf(), appendix(b"PK\x03\x04" + bytes(40), "bang.xlsx",
                                              media_type=XLSX)],
          details={"files": [{"filename": "bang.xlsx", "declared": XLSX, "named": XLSX,
                              "detected": "application/zip"}]}),
    fails("Word document declared as a spreadsheet", "attachments.declared_type",
          files=lambda: [main_pdf(), appendix(word_document(), "bang.xlsx", media_type=XLSX)],
          details={"files": [{"filename": "bang.xlsx", "declared": XLSX, "named": XLSX,
                              "detected": DOCX}]}),
    # -- mã băm
    fails("recorded digest of other bytes", "attachments.digest",
          files=lambda: [main_pdf() | {"sha256": hashlib.sha256(b"other").hexdigest()}],
          details={"files": [MAIN_NAME]}),
    # -- kích thước
    passes("at the size limit", "attachments.size", max_attachment_bytes=len(letter_pdf()),
           details={"total": len(letter_pdf())}),
    fails("empty appendix", "attachments.size",
          files=lambda: [main_pdf(), appendix(b"", "phu-luc-trong.pdf")],
          details={"files": [{"filename": "phu-luc-trong.pdf", "size": 0}],
                   "max_bytes": MAX_BYTES}),
    fails("main file over the limit", "attachments.size",
          max_attachment_bytes=len(letter_pdf()) - 1,
          details={"files": [{"filename": MAIN_NAME, "size": len(letter_pdf())}],
                   "max_bytes": len(letter_pdf()) - 1}),
    # the package: every file, the main PDF once more as signed, and room for the signature
    passes("a package at the inbox's limit", "attachments.size",
           max_package_bytes=2 * len(letter_pdf()) + SIGNATURE_ROOM),
    fails("a package over the inbox's limit", "attachments.size",
          max_package_bytes=2 * len(letter_pdf()) + SIGNATURE_ROOM - 1,
          details={"package_bytes": 2 * len(letter_pdf()) + SIGNATURE_ROOM,
                   "max_package_bytes": 2 * len(letter_pdf()) + SIGNATURE_ROOM - 1}),
    # -- nội dung chủ động (scripts, programs, embedded files)
    passes("a letter that only shows", "attachments.active_content"),
    fails("main file opening a script", "attachments.active_content",
          files=lambda: [attachment(active_pdf("script"))],
          details={"files": [{"filename": MAIN_NAME,
                              "found": ["/JS", "/JavaScript", "/OpenAction"]}]}),
    fails("appendix launching a program", "attachments.active_content",
          files=lambda: [main_pdf(), appendix(active_pdf("Launch"))],
          details={"files": [{"filename": APPENDIX_NAME, "found": ["/Launch", "/OpenAction"]}]}),
    # what opens by itself when the file opens: a web page (the reader's address told to
    # whoever serves it), the print dialog; a page of the letter is what opening is for
    fails("main file opening a web page", "attachments.active_content",
          files=lambda: [attachment(active_pdf("web page"))],
          details={"files": [{"filename": MAIN_NAME, "found": ["/OpenAction", "/URI"]}]}),
    fails("main file printing itself", "attachments.active_content",
          files=lambda: [attachment(active_pdf("printing"))],
          details={"files": [{"filename": MAIN_NAME, "found": ["/Named", "/OpenAction"]}]}),
    passes("main file opening at page 1", "attachments.active_content",
           files=lambda: [attachment(active_pdf("page 1"))]),
    # a link its reader clicks to a web page stays; one to a file on another machine
    # (\\host\share: the reader's network credentials sent to it) does not
    passes("main file with a link to a web page", "attachments.active_content",
           files=lambda: [attachment(active_pdf("link to a web page"))]),
    fails("main file with a link to a file on another machine", "attachments.active_content",
          files=lambda: [attachment(active_pdf("link to another machine"))],
          details={"files": [{"filename": MAIN_NAME, "found": ["/GoToR"]}]}),
    # however the file marks what it is: a catalog without /Type (readers find it by the
    # trailer), an action's type kept as an object of its own, a chain too long to follow
    fails("main file whose unmarked catalog opens a web page", "attachments.active_content",
          files=lambda: [attachment(raw_pdf({
              1: "<< /Pages 2 0 R /OpenAction << /S /URI /URI (http://x.example/t) >> >>",
              2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 3: raw_page(2),
              4: RAW_TEXT, 5: RAW_FONT}))],
          details={"files": [{"filename": MAIN_NAME, "found": ["/OpenAction", "/URI"]}]}),
    fails("main file with a link whose action's type is an object", "attachments.active_content",
          files=lambda: [attachment(raw_pdf({
              1: "<< /Type /Catalog /Pages 2 0 R >>",
              2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 4: RAW_TEXT, 5: RAW_FONT,
              3: raw_page(2, "/Annots [<< /Type /Annot /Subtype /Link /Rect [72 600 300 650] "
                             "/A << /S 9 0 R /F (cmd.exe) >> >>]"), 9: "/Launch"}))],
          details={"files": [{"filename": MAIN_NAME, "found": ["/Launch"]}]}),
    fails("main file whose opening chains 70 steps", "attachments.active_content",
          files=lambda: [attachment(raw_pdf({
              1: "<< /Type /Catalog /Pages 2 0 R /OpenAction 10 0 R >>",
              2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 3: raw_page(2),
              4: RAW_TEXT, 5: RAW_FONT,
              **{10 + i: f"<< /S /GoTo /D [3 0 R /Fit] /Next {11 + i} 0 R >>" for i in range(70)},
              80: "<< /S /Named /N /Print >>"}))],
          details={"files": [{"filename": MAIN_NAME, "found": ["/Next", "/OpenAction"]}]}),
    fails("main file with a link to a file on another machine by URI",
          "attachments.active_content",
          files=lambda: [attachment(raw_pdf({
              1: "<< /Type /Catalog /Pages 2 0 R >>",
              2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 4: RAW_TEXT, 5: RAW_FONT,
              3: raw_page(2, "/Annots [<< /Type /Annot /Subtype /Link /Rect [72 600 300 650] "
                             "/A << /S /URI /URI (file://///x.example/share/x.pdf) >> >>]")}))],
          details={"files": [{"filename": MAIN_NAME, "found": ["/URI"]}]}),
    fails("appendix with 3D that runs as its page opens", "attachments.active_content",
          files=lambda: [main_pdf(), appendix(active_pdf("3D"))],
          details={"files": [{"filename": APPENDIX_NAME, "found": ["/3D", "/3DA"]}]}),
    fails("appendix embedding an .exe", "attachments.active_content",
          files=lambda: [main_pdf(), appendix(active_pdf("embedded"))],
          details={"files": [{"filename": APPENDIX_NAME,
                              "found": ["/EF", "/EmbeddedFile", "/EmbeddedFiles"]}]}),
    # -- PDF đọc được
    passes("two pages", "attachments.pdf", details={"pages": {MAIN_NAME: 2}}),
    fails("encrypted with a password", "attachments.pdf",
          files=lambda: [attachment(encrypted_pdf())],
          details={"files": [{"filename": MAIN_NAME, "problem": "encrypted"}]}),
    fails("truncated in transfer", "attachments.pdf",
          files=lambda: [attachment(letter_pdf()[: len(letter_pdf()) // 2])],
          details={"files": [{"filename": MAIN_NAME, "problem": StartsWith("unreadable: ")}]}),
    fails("only a PDF header", "attachments.pdf",
          files=lambda: [attachment(b"%PDF-1.4 1227/UBND-TDKT")],
          details={"files": [{"filename": MAIN_NAME, "problem": StartsWith("unreadable: ")}]}),
    fails("main file with a stream's length wrong (read leniently, never signable)",
          "attachments.pdf",
          files=lambda: [attachment(wrong_stream_length(letter_pdf()))],
          details={"files": [{"filename": MAIN_NAME,
                              "problem": StartsWith("cannot be signed: ")}]}),
    # a page tree that counts more pages than it holds: readers disagree on the letter
    fails("main file whose page tree counts pages it does not hold", "attachments.pdf",
          files=lambda: [attachment(with_page_entries(letter_pdf(), pages={"/Count": 5}))],
          details={"files": [{"filename": MAIN_NAME, "problem":
                              "cannot be signed: its page tree counts 5 pages but holds 2"}]}),
    passes("main file of as many pages as a main file may have", "attachments.pdf",
           files=lambda: [attachment(blank_pages(MAX_MAIN_PAGES))]),
    fails("main file of more pages than a main file may have", "attachments.pdf",
          files=lambda: [attachment(blank_pages(MAX_MAIN_PAGES + 1))],
          details={"files": [{"filename": MAIN_NAME, "problem": "cannot be signed: the page "
                              f"tree holds more than {MAX_MAIN_PAGES} pages"}]}),
    # a node inside the tree that counts none of the (turned) page it holds: a reader
    # skipping by /Count stamps page 2, one walking the tree shows page 1 turned
    fails("main file whose page tree lies at an inner node", "attachments.pdf",
          files=lambda: [attachment(raw_pdf({
              1: "<< /Type /Catalog /Pages 2 0 R >>",
              2: "<< /Type /Pages /Kids [6 0 R 8 0 R] /Count 2 >>",
              6: "<< /Type /Pages /Parent 2 0 R /Kids [3 0 R] /Count 0 >>",
              3: raw_page(6, "/Rotate 90"), 4: RAW_TEXT, 5: RAW_FONT,
              8: "<< /Type /Pages /Parent 2 0 R /Kids [7 0 R] /Count 1 >>", 7: raw_page(8)}))],
          details={"files": [{"filename": MAIN_NAME, "problem": "cannot be signed: a node of "
                              "its page tree counts 0 pages but holds 1"}]}),
    # a page whose /Parent loops: refused, never followed for ever
    fails("main file whose first page's parents loop", "attachments.pdf",
          files=lambda: [attachment(raw_pdf({
              1: "<< /Type /Catalog /Pages 2 0 R >>",
              2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 3: raw_page(6),
              6: "<< /Type /Pages /Parent 6 0 R /Kids [3 0 R] /Count 1 >>",
              4: RAW_TEXT, 5: RAW_FONT}))],
          details={"files": [{"filename": MAIN_NAME,
                              "problem": "cannot be signed: a page's /Parent chain loops"}]}),
    # nested past what a reader goes: said, not a check that crashes (and is retried)
    fails("main file nesting an array 50,000 deep", "attachments.pdf",
          files=lambda: [attachment(deeply_nested_pdf())],
          details={"files": [{"filename": MAIN_NAME, "problem": "cannot be signed: it nests "
                              "objects deeper than a reader goes"}]}),
    # what cannot be read through may hide what acts: not taken as harmless
    fails("appendix nesting an array 50,000 deep", "attachments.active_content",
          files=lambda: [main_pdf(), appendix(deeply_nested_pdf())],
          details={"files": [{"filename": APPENDIX_NAME, "found": ["unreadable"]}]}),
    fails("appendix with a stream's length wrong", "attachments.active_content",
          files=lambda: [main_pdf(), appendix(wrong_stream_length(letter_pdf("phụ lục")))],
          details={"files": [{"filename": APPENDIX_NAME, "found": ["unreadable"]}]}),
    fails("main file signed already, elsewhere", "attachments.pdf",
          files=lambda: [attachment(signed_elsewhere(letter_pdf()))],
          details={"files": [{"filename": MAIN_NAME,
                              "problem": StartsWith("cannot be signed: it is signed already")}]}),
    fails("main file with a ZIP after its end (a polyglot)", "attachments.pdf",
          files=lambda: [attachment(with_a_zip_after_its_end(letter_pdf()))],
          details={"files": [{"filename": MAIN_NAME,
                              "problem": StartsWith("cannot be signed: ")}]}),
    passes("main file with line ends and padding after its end", "attachments.pdf",
           files=lambda: [attachment(letter_pdf() + b"\r\n\x00\x00 \n")]),
    passes("appendix with a stream's length wrong (only the main file is signed)",
           "attachments.pdf",
           files=lambda: [main_pdf(), appendix(wrong_stream_length(letter_pdf()))]),
    # a page box the signer's stamp cannot go in: viewers show the page, signing fails
    *[fails(f"main file whose page box is {name}", "attachments.pdf",
            files=main_with_page_box(box),
            details={"files": [{"filename": MAIN_NAME,
                                "problem": StartsWith(f"cannot be signed: {problem}")}]})
      for name, box, problem in [
          ("[0 0 0 0]", (0, 0, 0, 0), "page 1 (0 x 0 pt) has no room for the signer's stamp"),
          ("10 pt square", (0, 0, 10, 10), "page 1 (10 x 10 pt) has no room"),
          ("narrower than the stamp", (0, 0, 280, 842), "page 1 (280 x 842 pt) has no room"),
          ("holding text", (0, 0, "a", 5), "page 1's /MediaBox is not a rectangle"),
          ("three numbers", (0, 0, 595), "page 1's /MediaBox is not a rectangle"),
          ("missing", None, "page 1 has no MediaBox"),
      ]],
    passes("main file whose page box runs right to left", "attachments.pdf",
           files=main_with_page_box((595.28, 841.89, 0, 0))),
    passes("appendix whose page box is [0 0 0 0] (only the main file is signed)",
           "attachments.pdf",
           files=lambda: [main_pdf(), appendix(with_page_box(letter_pdf(), (0, 0, 0, 0)))]),
    fails("corrupt appendix", "attachments.pdf",
          files=lambda: [main_pdf(), appendix(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog")],
          details={"files": [{"filename": APPENDIX_NAME,
                              "problem": StartsWith("unreadable: ")}]}),
    # -- what the main file prints
    passes("the letter prints its metadata", PRINTED, details={"read": True}),
    passes("leading zero printed", PRINTED, fields={"number": 5},
           files=printing(notation="05/UBND-TĐKT")),
    passes("no leading zero printed", PRINTED, fields={"number": 5},
           files=printing(notation="5/UBND-TĐKT")),
    passes("spaces and an en dash in the printed symbol", PRINTED,
           files=printing(notation="1227 / UBND\u2013TĐKT")),
    passes("legal normative: the year in the notation", PRINTED,
           fields={"number": 12, "doc_type": "QĐ", "symbol": "QĐ-UBND", "legal_normative": True},
           files=printing(notation="12/2021/QĐ-UBND")),
    passes("the other tone placement (Hoà, Hòa)", PRINTED,
           fields={"signer_name": "Lê Thị Hòa"}, files=printing(signer="Lê Thị Hoà")),
    passes("metadata typed decomposed (NFD)", PRINTED,
           fields={"subject": nfd(SUBJECT), "signer_name": nfd(SIGNER_NAME)}),
    passes("a scan: no text to read", PRINTED, files=only_main(drawn_pdf),
           details={"read": False, "reason": "no_text"}),
    passes("a scan with its recognised text (drawn invisibly)", PRINTED,
           files=only_main(scan_with_text_pdf), details={"read": False, "reason": "no_text"}),
    passes("a file PDFium cannot open is another check's", PRINTED,
           files=only_main(lambda: b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog"),
           details={"read": False, "reason": "unreadable"}),
    fails("another number printed", PRINTED, fields={"number": 1228},
          details={"field": "number", "differences": [
              {"field": "number", "printed": "1227/UBND-TĐKT", "document": "1228/UBND-TĐKT"}]}),
    fails("another drafting unit printed", PRINTED, files=printing(notation="1227/UBND-VP"),
          details={"field": "symbol", "differences": [
              {"field": "symbol", "printed": "1227/UBND-VP", "document": "1227/UBND-TĐKT"}]}),
    fails("legal normative: another year printed", PRINTED,
          fields={"number": 12, "doc_type": "QĐ", "symbol": "QĐ-UBND", "legal_normative": True},
          files=printing(notation="12/2020/QĐ-UBND"),
          details={"differences": [{"field": "number", "printed": "12/2020/QĐ-UBND",
                                    "document": "12/2021/QĐ-UBND"}]}),
    fails("the number left blank", PRINTED, files=printing(notation="     /UBND-TĐKT"),
          details={"differences": [
              {"field": "number", "printed": None, "document": "1227/UBND-TĐKT"}]}),
    fails("another date printed", PRINTED, fields={"issued_on": "2021-02-05"},
          details={"field": "issued_on", "differences": [
              {"field": "issued_on", "printed": "2021-02-06", "document": "2021-02-05"}]}),
    fails("another place printed", PRINTED, fields={"place": "Đà Nẵng"},
          details={"field": "place"}),
    fails("another subject printed", PRINTED, fields={"subject": "V/v khen thưởng"},
          details={"field": "subject"}),
    fails("the letter as first issued: another signer", PRINTED,
          files=only_main(sample_pdf), details={"differences": [
              {"field": "signer_name", "printed": None, "document": SIGNER_NAME}]}),
    fails("another number shown, the document's hidden", PRINTED,
          files=only_main(hidden_number_pdf), details={"differences": [
              {"field": "number", "printed": "1228/UBND-TĐKT", "document": "1227/UBND-TĐKT"}]}),
    passes("the national title wrapped over two lines", PRINTED,
           files=letter_printing(("CHỦ NGHĨA VIỆT NAM", "CHỦ NGHĨA\nVIỆT NAM"))),
    passes("curly quotes and apostrophes as a word processor turns them", PRINTED,
           fields={"subject": SUBJECT + ' "Xanh - Sạch - Đẹp"', "signer_name": "H'Hen Niê"},
           files=letter_printing(("COVID-19", "COVID-19 “Xanh - Sạch - Đẹp”"),
                                 (SIGNER_NAME, "H’Hen Niê"))),
    passes("the signer's name some 60 pages on", PRINTED, files=only_main(long_decree_pdf)),
    passes("a place with a comma in it", PRINTED,
           fields={"place": "Phường Vĩnh Ninh, Thừa Thiên Huế"},
           files=letter_printing(("*Thừa", "*Phường Vĩnh Ninh, Thừa"))),
    fails("another signer whose name holds the document's", PRINTED,
          files=letter_printing((SIGNER_NAME, SIGNER_NAME + "h")),
          details={"differences": [{"field": "signer_name", "printed": None,
                                    "document": SIGNER_NAME}]}),
    fails("a subject that ends inside a printed word", PRINTED,
          fields={"subject": SUBJECT[:-1]}, details={"field": "subject"}),
    fails("the date left blank, a date in the text below", PRINTED,
          files=letter_printing(("ngày 06 tháng 02 năm 2021", "ngày ... tháng 02 năm 2021"),
                                ("thành phố Huế:", "thành phố Huế, ngày 06 tháng 02 năm 2021:")),
          details={"differences": [{"field": "issued_on", "printed": None,
                                    "document": ISSUED}]}),
    fails("the document's number drawn outside the page", PRINTED,
          files=only_main(unreadable_number_pdf(-300, -300, 11)),
          details={"differences": [{"field": "number", "printed": "1228/UBND-TĐKT",
                                    "document": "1227/UBND-TĐKT"}]}),
    fails("the document's number drawn too small to read", PRINTED,
          files=only_main(unreadable_number_pdf(20, 15, 0.5)),
          details={"differences": [{"field": "number", "printed": "1228/UBND-TĐKT",
                                    "document": "1227/UBND-TĐKT"}]}),
    fails("the signer's name drawn invisibly alone", PRINTED,
          files=only_main(hidden_signer_pdf), details={"differences": [
              {"field": "signer_name", "printed": None, "document": SIGNER_NAME}]}),
    fails("a number of 5,000 digits squeezed onto the line", PRINTED,
          files=only_main(squeezed_number_pdf), details={"differences": [
              {"field": "number", "printed": None, "document": "1227/UBND-TĐKT"}]}),
    fails("the document's number printed white above another", PRINTED,
          files=only_main(letter_1228_under()), details={"differences": [
              {"field": "number", "printed": "1228/UBND-TĐKT", "document": "1227/UBND-TĐKT"}]}),
    fails("the document's number printed fully transparent", PRINTED,
          files=only_main(letter_1228_under(colour=(0, 0, 0), opacity=0)),
          details={"differences": [{"field": "number", "printed": "1228/UBND-TĐKT",
                                    "document": "1227/UBND-TĐKT"}]}),
    fails("the signer's name printed white alone", PRINTED,
          files=only_main(signer_under()), details={"differences": [
              {"field": "signer_name", "printed": None, "document": SIGNER_NAME}]}),
    passes("the signer's name printed faint but seen", PRINTED,
           files=only_main(signer_under(colour=(0, 0, 0), opacity=0.4))),
    passes("the letter's header in light grey", PRINTED, files=only_main(grey_letter_pdf)),
    fails("the document's number under a white box, another printed", PRINTED,
          files=only_main(letter_1228_covered("box")), details={"differences": [
              {"field": "number", "printed": "1228/UBND-TĐKT", "document": "1227/UBND-TĐKT"}]}),
    fails("the document's number blacked out, another printed", PRINTED,
          files=only_main(letter_1228_covered("black")), details={"differences": [
              {"field": "number", "printed": "1228/UBND-TĐKT", "document": "1227/UBND-TĐKT"}]}),
    fails("the document's number under an opaque picture, another printed", PRINTED,
          files=only_main(letter_1228_covered("picture")), details={"differences": [
              {"field": "number", "printed": "1228/UBND-TĐKT", "document": "1227/UBND-TĐKT"}]}),
    fails("the signer's name alone, under a white box", PRINTED,
          files=only_main(signer_covered("box")), details={"differences": [
              {"field": "signer_name", "printed": None, "document": SIGNER_NAME}]}),
    passes("the signer's name under a seal's see-through picture", PRINTED,
           files=only_main(signer_covered("seal"))),
    passes("the document's number under a seal's see-through picture", PRINTED,
           files=only_main(letter_1228_covered("seal"))),
    fails("the subject's start alone", PRINTED,
          fields={"subject": "V/v tăng cường gửi, nhận văn bản điện tử"},
          details={"differences": [{"field": "subject", "printed": SUBJECT,
                                    "document": "V/v tăng cường gửi, nhận văn bản điện tử"}]}),
    fails("the subject cut where its printed line wraps", PRINTED,
          fields={"subject": SUBJECT.split(" phòng,")[0]}, details={"field": "subject"}),
    passes("a header in two columns, row by row", PRINTED, files=only_main(table_header_pdf)),
    fails("a header in two columns, the subject cut where its cell wraps", PRINTED,
          fields={"subject": "V/v tăng cường gửi, nhận văn bản"},
          files=only_main(table_header_pdf), details={"differences": [
              {"field": "subject", "printed": SUBJECT,
               "document": "V/v tăng cường gửi, nhận văn bản"}]}),
    passes("a header in two columns, a one-line subject beside the date", PRINTED,
           fields={"subject": SHORT_SUBJECT},
           files=only_main(lambda: table_header_pdf(SHORT_SUBJECT))),
    fails("a header in two columns, another date beside the number", PRINTED,
          fields={"issued_on": "2021-02-05"}, files=only_main(table_header_pdf),
          details={"differences": [{"field": "issued_on", "printed": "2021-02-06",
                                    "document": "2021-02-05"}]}),
    passes("a subject justified in its cell (its spaces drawn by moving the pen)", PRINTED,
           files=only_main(lambda: table_header_pdf(align="J"))),
    fails("a subject cut before a bracket on its line", PRINTED,
          fields={"subject": "V/v khen thưởng"},
          files=letter_printing((SUBJECT, "V/v khen thưởng (đợt 2)")),
          details={"differences": [{"field": "subject", "printed": "V/v khen thưởng (đợt 2)",
                                    "document": "V/v khen thưởng"}]}),
    fails("a subject cut before its next line, which starts in capitals", PRINTED,
          fields={"subject": "V/v phòng, chống dịch"},
          files=letter_printing((SUBJECT, "V/v phòng, chống dịch\nCOVID-19 trên địa bàn")),
          details={"differences": [{"field": "subject",
                                    "printed": "V/v phòng, chống dịch COVID-19 trên địa bàn",
                                    "document": "V/v phòng, chống dịch"}]}),
    fails("a subject cut before the name of its province on the next line", PRINTED,
          fields={"subject": "V/v khen thưởng các tập thể của tỉnh"},
          files=letter_printing(
              (SUBJECT, "V/v khen thưởng các tập thể của tỉnh\nThừa Thiên Huế")),
          details={"differences": [{
              "field": "subject", "printed": "V/v khen thưởng các tập thể của tỉnh Thừa Thiên Huế",
              "document": "V/v khen thưởng các tập thể của tỉnh"}]}),
    passes("a whole subject, a name starting the next line", PRINTED,
           fields={"subject": "V/v khen thưởng các tập thể"},
           files=letter_printing((SUBJECT, "V/v khen thưởng các tập thể\nThừa Thiên Huế"))),
    passes("a whole subject, a title in capitals on the next line", PRINTED,
           fields={"subject": "V/v phòng, chống dịch"},
           files=letter_printing((SUBJECT, "V/v phòng, chống dịch\nCHỈ THỊ KHẨN CẤP"))),
    fails("a place printed longer than the document's", PRINTED, fields={"place": "Huế"},
          details={"differences": [{"field": "place", "printed": "Thừa Thiên Huế",
                                    "document": "Huế"}]}),
    fails("a number of 13 digits, the document's notation further down", PRINTED,
          files=letter_printing(("Số: 1227 /", "Số: 1234567890123/"),
                                ("Thực hiện", "Số: 1227/UBND-TĐKT. Thực hiện")),
          details={"differences": [{"field": "number", "printed": None,
                                    "document": "1227/UBND-TĐKT"}]}),
    fails("the signer's name printed at 1 pt, another signing", PRINTED,
          files=only_main(tiny_signer_pdf), details={"differences": [
              {"field": "signer_name", "printed": None, "document": SIGNER_NAME}]}),
    passes("a header drawing the date on the line of the subject's first words", PRINTED,
           files=only_main(interleaved_header_pdf)),
    fails("no national title", PRINTED, files=only_main(untitled_pdf),
          details={"differences": [{"field": "national_title", "printed": None}]}),
    fails("text in a legacy font (TCVN3)", PRINTED, files=only_main(legacy_font_pdf),
          details={"read": True, "reason": "unrecognised"}),
]
# fmt: on


# -- the database and the runtime --------------------------------------------------------


@pytest.fixture
def clock() -> FrozenClock:
    """The morning letter 1227 was signed (overrides the shared clock)."""
    return FrozenClock(CHECKED_AT)


@pytest.fixture
def letters(boot: Boot, databases: Databases) -> Runtime:
    """On SQLite only: the table of letters is about the checks, not the database."""
    return fill_directory(boot(databases.new().url))


@pytest.fixture
def runtime(make_runtime: MakeRuntime) -> Runtime:
    """On SQLite and on PostgreSQL."""
    return fill_directory(make_runtime())


def fill_directory(runtime: Runtime) -> Runtime:
    """Add the sample letter's directory to ``runtime``'s database; returns ``runtime``."""
    now = runtime.clock()
    with runtime.uow() as uow:
        for organ_id, name, abbreviation in AGENCIES:
            directory.add_agency(uow, organ_id, name, abbreviation, now)
            if organ_id not in (AGENCY_ID, UNLINKED_ID):  # served elsewhere: a peer entry
                uow.peers.put(Peer(organ_id, PEER_INBOX, "http", 30, 4, now, now))
        for username, roles, full_name, position in USERS:
            directory.ensure_user(
                uow, AGENCY_ID, username, roles, now, full_name=full_name, position=position
            )
        uow.commit()
    return runtime


def grant(runtime: Runtime, grants: Sequence[Grant]) -> None:
    now = runtime.clock()
    with runtime.uow() as uow:
        for g in grants:
            row = directory.add_authority(
                uow,
                AGENCY_ID,
                g.signer,
                g.doc_types,
                g.competence,
                g.valid_from,
                g.valid_until,
                by="operator@" + AGENCY_ID,
                now=now,
            )
            if g.revoked:
                assert uow.authorities.revoke(row.id, AGENCY_ID, now)
        uow.commit()


def write(
    runtime: Runtime,
    fields: Mapping[str, Any] | None = None,
    recipients: Sequence[Mapping[str, str]] = SAMPLE_RECIPIENTS,
    files: Sequence[Mapping[str, Any]] | None = None,
    *,
    by: str = AGENCY_ID,
) -> str:
    """Letter 1227 with ``fields`` changed, created by a clerk through the engine.

    Recipients the engine itself refuses (a malformed agency id) are written behind it, as
    rows stored before that rule or changed with SQL would be: the check still catches them.
    """
    malformed = [r for r in recipients if not is_organ_id(r["organ_id"])]
    created = runtime.engine.create_document(
        actor("clerk", agency=by),
        {**FIELDS, **(fields or {})},
        SAMPLE_RECIPIENTS[:1] if malformed else list(recipients),
        [main_pdf()] if files is None else list(files),
    )
    if malformed:
        with runtime.uow() as uow:
            uow.documents.set_recipients(created["id"], list(recipients))
            uow.commit()
    return str(created["id"])


def run(
    runtime: Runtime,
    code: str,
    document_id: str,
    *,
    today: date = TODAY,
    at: time = CHECKED_TIME,
    calendar: WorkingCalendar = VIETNAM_CALENDAR,
    send_cutoff: time = DEFAULT_CUTOFF,
    max_attachment_bytes: int = MAX_BYTES,
    max_subject_length: int = MAX_SUBJECT,
    max_package_bytes: int | None = None,
) -> Finding:
    """Run one check on the stored document, as the review job would."""
    with runtime.uow(readonly=True) as uow:
        row = uow.documents.get(document_id)
        assert row is not None
        inp = CheckInput(
            uow=uow,
            document=row,
            today=today,
            max_attachment_bytes=max_attachment_bytes,
            max_subject_length=max_subject_length,
            now=datetime.combine(today, at, VIETNAM),
            calendar=calendar,
            send_cutoff=send_cutoff,
            max_package_bytes=max_package_bytes,
        )
        return CHECK_CODES[code].run(inp)


def assert_explained(finding: Finding) -> None:
    """A failure says what is wrong, in Vietnamese and in English."""
    assert finding.vi.strip(), finding
    assert finding.en.strip(), finding
    assert finding.vi != finding.en


def subset(details: Mapping[str, Any], keys: Mapping[str, Any]) -> dict[str, Any]:
    return {k: details.get(k, "<absent>") for k in keys}


# -- the table ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(CHECK_CODES))
def test_the_sample_letter_passes(letters: Runtime, code: str) -> None:
    # Given letter 1227/UBND-TĐKT as signed, with its PDF and its signer's authority
    grant(letters, GRANTS)
    document_id = write(letters)

    # When the check runs on the day of signing
    finding = run(letters, code, document_id)

    # Then it passes
    assert (True, "", "") == (finding.passed, finding.vi, finding.en), finding.details


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_of_the_letter(letters: Runtime, variant: Variant) -> None:
    # Given the letter written with one thing changed
    grant(letters, variant.grants)
    document_id = write(letters, variant.fields, variant.recipients, variant.files())

    # When the check runs
    finding = run(
        letters,
        variant.code,
        document_id,
        today=variant.today,
        at=variant.at,
        calendar=variant.calendar,
        send_cutoff=variant.send_cutoff,
        max_attachment_bytes=variant.max_attachment_bytes,
        max_subject_length=variant.max_subject_length,
        max_package_bytes=variant.max_package_bytes,
    )

    # Then it gives the verdict, the details a client needs, and, on failure, the reason
    assert variant.passed == finding.passed, finding
    assert dict(variant.details) == subset(finding.details, variant.details)
    if not finding.passed:
        assert_explained(finding)


@pytest.mark.parametrize(
    ("doc_type", "symbol", "passed"),
    [
        ("CV", "S-T-VP", True),
        ("QĐ", "QĐ-S-T", True),
        ("CV", "S-T", False),  # the agency's alone: no drafting unit
        ("CV", "S-VP", False),  # a part of the agency's
        ("CV", "S-T-VP-TH", False),  # two groups after the agency's
        ("QĐ", "QĐ-S", False),
        ("QĐ", "QĐ-S-T-VP", False),
    ],
)
def test_an_agency_abbreviation_with_a_dash_is_one_part_of_the_symbol(
    letters: Runtime, doc_type: str, symbol: str, passed: bool
) -> None:
    # Given an agency whose abbreviation has groups of its own, as the directory allows
    with letters.uow() as uow:
        directory.add_agency(uow, "000.00.95.H57", "Sở S-T", "S-T", letters.clock())
        uow.commit()
    document_id = write(letters, {"doc_type": doc_type, "symbol": symbol}, by="000.00.95.H57")

    # When the number and symbol are checked
    finding = run(letters, NUMBER_SYMBOL, document_id)

    # Then the abbreviation is taken whole, not split at its dash
    assert passed == finding.passed, finding


def test_every_check_has_a_failing_variant() -> None:
    failing = {p.values[0].code for p in VARIANTS if not p.values[0].passed}
    duplicates = {"duplicates.number", "duplicates.main_file"}  # tested below, on SQL

    assert set() == set(CHECK_CODES) - failing - duplicates


# -- duplicates --------------------------------------------------------------------------


def sent(runtime: Runtime, document_id: str, *organ_ids: str) -> None:
    """Record that ``document_id`` went out: dispatch rows exist only once it is sent."""
    with runtime.uow() as uow:
        uow.dispatches.create(
            [
                DispatchRow(
                    id=new_id(),
                    document_id=document_id,
                    organ_id=organ_id,
                    state="pending",
                    attempts=0,
                    last_error="",
                    updated_at=runtime.clock(),
                )
                for organ_id in organ_ids
            ]
        )
        uow.commit()


def test_the_same_number_and_symbol_twice_in_a_year_is_refused(runtime: Runtime) -> None:
    # Given letter 1227/UBND-TĐKT of 6 February 2021, submitted for review
    earlier = write(runtime)
    submit(runtime, earlier)

    # When another letter 1227/UBND-TĐKT of that year is checked
    later = write(runtime, {"issued_on": "2021-11-30"}, files=[main_pdf("bản sửa")])
    finding = run(runtime, "duplicates.number", later)

    # Then it names the earlier letter; the later draft takes nothing from the earlier one
    assert (False, earlier, "draft") == (
        finding.passed,
        finding.details["earlier_document"],
        finding.details["earlier_state"],
    )
    assert_explained(finding)
    assert number_free() == run(runtime, "duplicates.number", earlier)


def test_a_number_issued_already_is_refused_even_to_an_earlier_draft(runtime: Runtime) -> None:
    # Given a draft 1227/UBND-TĐKT, and a later letter with that number approved first
    draft = write(runtime)
    grant(runtime, GRANTS)
    approved = write(runtime, files=[main_pdf("bản duyệt")])
    runtime.runner.run(submit(runtime, approved))
    runtime.engine.fire(approved, "approve", REVIEWER)

    # When the draft is checked
    finding = run(runtime, "duplicates.number", draft)

    # Then the approved letter holds the number
    assert (False, approved, "reviewed") == (
        finding.passed,
        finding.details["earlier_document"],
        finding.details["earlier_state"],
    )


def test_a_draft_submitted_first_holds_its_number_whichever_was_created_first(
    runtime: Runtime,
) -> None:
    # Given two drafts numbered 1227: the older one not yet submitted, the newer one
    # submitted and reviewed first (its number check passed)
    older = write(runtime)
    newer = write(runtime, files=[main_pdf("bản thứ hai")])
    runtime.relay.drain()
    runtime.runner.run(submit(runtime, newer))
    assert results(runtime, newer)["duplicates.number"].status == PASSED

    # When the older one is submitted and checked
    finding = run(runtime, "duplicates.number", older)

    # Then the number is the newer one's: one of the two keeps it, never both
    assert (False, newer) == (finding.passed, finding.details["earlier_document"])


def test_two_drafts_of_one_number_checked_at_once_never_both_pass(runtime: Runtime) -> None:
    # Given two drafts numbered 1227, each submitted, whose checks read the database
    # before either kept its verdict: the newer one first, while the older was not yet
    # in review; then the older one, the newer one's pass not yet kept
    older = write(runtime)
    newer = write(runtime, files=[main_pdf("bản thứ hai")])
    runtime.relay.drain()
    runner = runtime.runner
    staged = {}
    for doc in (newer, older):
        job = submit(runtime, doc)
        claimed = runner._claim(job)
        assert not isinstance(claimed, str)
        lease, action, work = claimed
        staged[doc] = (job, lease, action, work, action.act(work))

    # When each keeps its verdict
    for doc in (newer, older):
        assert runner._record(*staged[doc]) == "done"

    # Then one of the two holds the number, never both: the older one, submitted while
    # the newer one's verdict was not yet kept (two checked at once: the older wins)
    verdicts = {d: results(runtime, d)["duplicates.number"].status for d in (older, newer)}
    assert verdicts == {older: PASSED, newer: FAILED}


def test_an_abandoned_draft_holds_no_number(runtime: Runtime) -> None:
    # Given a draft 1227/UBND-TĐKT never submitted, and one submitted then returned
    write(runtime)
    returned = write(runtime, files=[main_pdf("bị trả lại")])
    submit(runtime, returned)
    runtime.engine.fire(returned, "reject", REVIEWER, data={"reason": "Sai nơi nhận"})

    # When a new letter with that number is checked
    again = write(runtime, files=[main_pdf("bản mới")])

    # Then neither draft blocks it
    assert number_free() == run(runtime, "duplicates.number", again)


@pytest.mark.parametrize(
    ("fields", "by"),
    [
        pytest.param({"issued_on": "2020-02-06"}, AGENCY_ID, id="same number the year before"),
        pytest.param({"issued_on": "2022-01-03"}, AGENCY_ID, id="same number the year after"),
        pytest.param({"number": 1228}, AGENCY_ID, id="the next number"),
        pytest.param({}, OTHER_PROVINCE_ID, id="another province's 1227/UBND-TĐKT"),
    ],
)
def test_a_number_used_elsewhere_passes(runtime: Runtime, fields: dict[str, Any], by: str) -> None:
    # Given letter 1227/UBND-TĐKT of 2021, in review
    submit(runtime, write(runtime))

    # When a letter differing in year, number, symbol or agency is checked
    other = write(runtime, fields, files=[main_pdf("khác")], by=by)

    # Then it is no duplicate
    assert number_free() == run(runtime, "duplicates.number", other)


def numbering(runtime: Runtime, agency_id: str, series: str) -> None:
    with runtime.uow() as uow:
        uow.conn.execute(
            update(Agency).where(Agency.id == agency_id).values(numbering=series)  # type: ignore[arg-type]
        )
        uow.commit()


def test_one_series_takes_a_number_once_whatever_the_symbol(runtime: Runtime) -> None:
    # Given letter 1227/UBND-TĐKT of 2021 in review, in the agency's one series (the default)
    earlier = write(runtime)
    submit(runtime, earlier)

    # When another drafting unit's letter 1227/UBND-KT of that year is checked
    later = write(runtime, {"symbol": "UBND-KT"}, files=[main_pdf("khác")])
    finding = run(runtime, "duplicates.number", later)

    # Then number 1227 is taken (Decree 30 Art. 15: one series per agency per year)
    assert (False, earlier, "1227/UBND-TĐKT", "agency") == (
        finding.passed,
        finding.details["earlier_document"],
        finding.details["earlier_notation"],
        finding.details["numbering"],
    )
    assert_explained(finding)


def test_an_agency_numbering_by_symbol_reuses_a_number_with_another(runtime: Runtime) -> None:
    # Given an agency whose registry keeps a series per symbol, and its letter 1227/UBND-TĐKT
    numbering(runtime, AGENCY_ID, "symbol")
    submit(runtime, write(runtime))

    # When 1227/UBND-KT, and then a second 1227/UBND-TĐKT, of that year are checked
    other = write(runtime, {"symbol": "UBND-KT"}, files=[main_pdf("khác")])
    same = write(runtime, {"issued_on": "2021-11-30"}, files=[main_pdf("bản sửa")])

    # Then only the same symbol repeats the number
    assert Finding(True, details={"numbering": "symbol"}) == run(
        runtime, "duplicates.number", other
    )
    assert not run(runtime, "duplicates.number", same).passed


def ok_finding() -> Finding:
    return Finding(True)


def number_free() -> Finding:
    """duplicates.number passes, naming the agency's one series."""
    return Finding(True, details={"numbering": "agency"})


def test_a_letter_without_number_cannot_be_compared(letters: Runtime) -> None:
    document_id = write(letters, {"number": None})

    finding = run(letters, "duplicates.number", document_id)

    assert (False, "number") == (finding.passed, finding.details.get("field"))
    assert_explained(finding)


def test_the_same_main_file_sent_to_the_same_recipient_is_refused(runtime: Runtime) -> None:
    # Given letter 1227 already sent to the provincial office
    earlier = write(runtime, recipients=[SAMPLE_RECIPIENTS[0]])
    sent(runtime, earlier, OFFICE_ID)

    # When a new document carries the same PDF to the office and the department
    again = write(runtime, {"number": 1240}, SAMPLE_RECIPIENTS)
    finding = run(runtime, "duplicates.main_file", again)

    # Then the earlier document and the recipient are named
    assert (False, earlier, OFFICE_ID) == (
        finding.passed,
        finding.details["earlier_document"],
        finding.details["organ_id"],
    )
    assert_explained(finding)


@pytest.mark.parametrize(
    ("earlier_to", "dispatched", "again_to", "again_file", "by"),
    [
        pytest.param(
            OFFICE_ID, True, GOVERNMENT_OFFICE_ID, "", AGENCY_ID, id="sent to another recipient"
        ),
        pytest.param(OFFICE_ID, False, OFFICE_ID, "", AGENCY_ID, id="earlier one never sent"),
        pytest.param(OFFICE_ID, True, OFFICE_ID, "bản sửa", AGENCY_ID, id="a corrected PDF"),
        # Another agency's letters are its own: neither named nor a reason to refuse.
        pytest.param(OFFICE_ID, True, OFFICE_ID, "", OTHER_PROVINCE_ID, id="another agency"),
    ],
)
def test_the_same_file_elsewhere_or_unsent_passes(
    runtime: Runtime, earlier_to: str, dispatched: bool, again_to: str, again_file: str, by: str
) -> None:
    earlier = write(runtime, recipients=[{"organ_id": earlier_to, "name": ""}])
    if dispatched:
        sent(runtime, earlier, earlier_to)

    again = write(
        runtime,
        {"number": 1240},
        [{"organ_id": again_to, "name": ""}],
        [main_pdf(again_file)],
        by=by,
    )

    assert ok_finding() == run(runtime, "duplicates.main_file", again)


def test_a_replacement_may_keep_the_file_of_the_document_it_replaces(runtime: Runtime) -> None:
    # Given letter 1227 sent to the office, and its replacement with the same PDF (Decree 30
    # Art. 18: the number, date or recipients corrected, the file the same)
    earlier = write(runtime, recipients=[SAMPLE_RECIPIENTS[0]])
    sent(runtime, earlier, OFFICE_ID)
    again = write(runtime, {"number": 1240}, [SAMPLE_RECIPIENTS[0]])
    with runtime.uow() as uow:
        documents = Document.__table__  # type: ignore[attr-defined]
        uow.conn.execute(
            update(documents).where(documents.c.id == again).values(replaces_id=earlier)
        )
        uow.commit()

    # Then the file it repeats is no duplicate: it is the document's own
    assert ok_finding() == run(runtime, "duplicates.main_file", again)
    # But a third document with that file to the office still is
    third = write(runtime, {"number": 1241}, [SAMPLE_RECIPIENTS[0]])
    assert run(runtime, "duplicates.main_file", third).details["earlier_document"] == earlier


def test_the_same_file_as_an_appendix_of_a_sent_letter_passes(letters: Runtime) -> None:
    # The earlier letter carried this PDF only as an appendix: it is not the same letter.
    earlier = write(letters, files=[main_pdf("công văn khác"), appendix(letter_pdf())])
    sent(letters, earlier, OFFICE_ID)

    again = write(letters, {"number": 1240})

    assert ok_finding() == run(letters, "duplicates.main_file", again)


def test_a_letter_without_main_file_cannot_be_compared(letters: Runtime) -> None:
    document_id = write(letters, files=[])

    finding = run(letters, "duplicates.main_file", document_id)

    assert False is finding.passed
    assert_explained(finding)


# -- the review job ----------------------------------------------------------------------


def submit(runtime: Runtime, document_id: str) -> str:
    """Submit for review; returns the id of the review-check job."""
    result = runtime.engine.fire(document_id, "submit", CLERK)
    assert 1 == len(result.jobs)
    return result.jobs[0]


def revision(runtime: Runtime, document_id: str) -> int:
    with runtime.uow(readonly=True) as uow:
        row = uow.documents.get(document_id)
    assert row is not None
    return row.revision


def results(
    runtime: Runtime, document_id: str, of_revision: int | None = None
) -> dict[str, StoredResult]:
    """Results recorded for one revision: the current one unless told."""
    if of_revision is None:
        of_revision = revision(runtime, document_id)
    with runtime.uow(readonly=True) as uow:
        return {r.code: r for r in uow.checks.for_revision(document_id, of_revision)}


def test_the_review_job_records_one_result_per_check(runtime: Runtime) -> None:
    # Given letter 1227 with its signer's authority, submitted for review
    grant(runtime, GRANTS)
    document_id = write(runtime)
    job_id = submit(runtime, document_id)

    # When the relay hands the job over and it runs
    assert 1 == runtime.relay.drain()
    assert "done" == runtime.runner.run(job_id)

    # Then every check has one passing result for the submitted revision, and the reviewer
    # may approve
    recorded = results(runtime, document_id)
    assert sorted(CHECK_CODES) == sorted(recorded)
    assert {PASSED} == {r.status for r in recorded.values()}
    assert {c.code: c.severity for c in CHECKS} == {c: r.severity for c, r in recorded.items()}
    assert {CHECKED_AT} == {r.checked_at for r in recorded.values()}
    assert "reviewed" == runtime.engine.fire(document_id, "approve", REVIEWER).to_state


def test_failed_checks_are_recorded_with_their_reasons_and_block_approval(
    runtime: Runtime,
) -> None:
    # Given a letter marked Mật whose signer holds no authority
    document_id = write(runtime, {"secrecy": "mat"})
    job_id = submit(runtime, document_id)

    # When the checks run
    assert "done" == runtime.runner.run(job_id)

    # Then the failures are recorded in both languages and approval is refused
    recorded = results(runtime, document_id)
    failed = sorted(c for c, r in recorded.items() if r.status == FAILED)
    assert ["authority.signer", "format.secrecy"] == failed
    secrecy = recorded["format.secrecy"]
    assert {"field": "secrecy", "value": "mat"} == secrecy.details
    assert "Mật" in secrecy.message_vi and "electronically" in secrecy.message_en
    with pytest.raises(GuardFailed) as refused:
        runtime.engine.fire(document_id, "approve", REVIEWER)
    assert "authority.signer, format.secrecy" in refused.value.details["reasons"]["checks_cleared"]


def test_a_failed_warning_is_waived_but_a_blocking_failure_is_not(runtime: Runtime) -> None:
    # Given a letter whose subject lacks "V/v" (a warning) and whose signer has no authority
    document_id = write(runtime, {"subject": SUBJECT.removeprefix("V/v ")})
    runtime.runner.run(submit(runtime, document_id))

    # When a reviewer tries to waive the blocking failure, it is refused
    with pytest.raises(InvalidInput):
        runtime.engine.fire(
            document_id, "waive", REVIEWER, data={"code": "authority.signer", "reason": "ok"}
        )

    # And once the authority is granted and the checks run again, the warning can be waived
    grant(runtime, GRANTS)
    runtime.runner.run(submit(runtime, document_id))
    with pytest.raises(GuardFailed):
        runtime.engine.fire(document_id, "approve", REVIEWER)
    runtime.engine.fire(
        document_id,
        "waive",
        REVIEWER,
        data={"code": "format.subject_prefix", "reason": "Trích yếu theo mẫu của Bộ"},
    )

    # Then the waiver is recorded and approval goes through
    waived = results(runtime, document_id)["format.subject_prefix"]
    assert (FAILED, REVIEWER.name, "Trích yếu theo mẫu của Bộ", True) == (
        waived.status,
        waived.waived_by,
        waived.waive_reason,
        waived.cleared,
    )
    assert "reviewed" == runtime.engine.fire(document_id, "approve", REVIEWER).to_state


class Exploding:
    """A check that crashes until it is mended."""

    def __init__(self) -> None:
        self.broken = True

    def __call__(self, inp: CheckInput) -> Finding:
        if self.broken:
            raise RuntimeError("directory service unreachable")
        return Finding(True)


def test_a_crashing_check_records_an_error_and_the_job_is_retried(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given an installation with a check that crashes, among the real ones
    exploding = Exploding()
    crashing = Check("test.explodes", "blocking", "Luôn lỗi", "Always crashes", exploding)
    runtime = fill_directory(make_runtime(checks=[crashing, *CHECKS]))
    grant(runtime, GRANTS)
    document_id = write(runtime)
    job_id = submit(runtime, document_id)

    # When the job runs
    assert "failed" == runtime.runner.run(job_id)

    # Then the crash is an error result with its reason, never a silent pass...
    recorded = results(runtime, document_id)
    error = recorded.pop("test.explodes")
    assert (ERROR, {"error": "RuntimeError"}) == (error.status, error.details)
    assert "directory service unreachable" in error.message_en
    assert "directory service unreachable" in error.message_vi
    assert False is error.cleared
    # ...the other checks' results are kept...
    assert {PASSED} == {r.status for r in recorded.values()}
    assert sorted(CHECK_CODES) == sorted(recorded)
    # ...the attempt is counted and the job waits on a backoff timer...
    with runtime.uow(readonly=True) as uow:
        job = uow.outbox.get(job_id)
        last_error = uow.conn.execute(select(_outbox.c.last_error).where(_outbox.c.id == job_id))
        reason = last_error.scalar_one()
        timers = uow.timers.for_document(document_id)
    assert job is not None
    assert (1, "checks crashed: test.explodes") == (job.attempts, reason)
    backoff = timedelta(seconds=job_backoff_seconds(1))
    assert [(JOB_DEADLINE, job_id, clock() + backoff, {"reason": "backoff"})] == [
        (t.kind, t.ref_id, t.due_at, t.payload) for t in timers
    ]
    # ...and approval waits
    with pytest.raises(GuardFailed):
        runtime.engine.fire(document_id, "approve", REVIEWER)

    # When the check is mended and the retry runs after the backoff
    exploding.broken = False
    clock.advance(seconds=backoff.total_seconds())
    assert "done" == runtime.runner.run(job_id)

    # Then the error is replaced by a pass and the document can be approved
    assert PASSED == results(runtime, document_id)["test.explodes"].status
    assert "reviewed" == runtime.engine.fire(document_id, "approve", REVIEWER).to_state


def test_an_edit_makes_earlier_results_stop_counting(runtime: Runtime) -> None:
    # Given letter 1227 whose checks all passed on the submitted revision
    grant(runtime, GRANTS)
    document_id = write(runtime)
    runtime.runner.run(submit(runtime, document_id))
    checked = revision(runtime, document_id)
    assert {PASSED} == {r.status for r in results(runtime, document_id, checked).values()}

    # When the clerk corrects the summary of its content
    runtime.engine.fire(
        document_id,
        "edit",
        CLERK,
        data={"fields": {"content": FIELDS["content"] + " (sửa đổi)"}},
    )

    # Then the revision went up and the passes of the checked one no longer clear it
    edited = revision(runtime, document_id)
    assert edited > checked
    assert {} == results(runtime, document_id, edited)
    with pytest.raises(GuardFailed) as not_submitted:
        runtime.engine.fire(document_id, "approve", REVIEWER)
    assert "not submitted" in not_submitted.value.details["reasons"]["checks_cleared"]

    # And after submitting again, approval waits for the checks of the new revision
    job_id = submit(runtime, document_id)
    resubmitted = revision(runtime, document_id)
    with pytest.raises(GuardFailed) as pending:
        runtime.engine.fire(document_id, "approve", REVIEWER)
    assert "checks not finished" in pending.value.details["reasons"]["checks_cleared"]
    assert {} == results(runtime, document_id, resubmitted)

    runtime.runner.run(job_id)
    assert sorted(CHECK_CODES) == sorted(results(runtime, document_id, resubmitted))
    assert sorted(CHECK_CODES) == sorted(results(runtime, document_id, checked))
    assert "reviewed" == runtime.engine.fire(document_id, "approve", REVIEWER).to_state
