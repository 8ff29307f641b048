"""Sample letters rendered to real PDF files (the demo and the tests use them)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from importlib import resources

from fpdf import FPDF

SAMPLE_1227 = "samples/cong-van-1227-UBND-TDKT.md"
_FIXED_DATE = datetime(2021, 2, 6, tzinfo=UTC)


def sample_text(name: str = SAMPLE_1227) -> str:
    return resources.files("congvan.workflow").joinpath(name).read_text("utf-8")


def _font(name: str) -> str:
    return str(resources.files("congvan.workflow").joinpath(f"samples/fonts/{name}"))


def render_pdf(text: str, *, title: str = "", variant: str = "") -> bytes:
    """A PDF of ``text`` (light Markdown: ``**bold**`` lines), byte-for-byte reproducible.

    ``variant`` adds a line at the end, so tests can make distinct files of one letter.
    """
    pdf = FPDF(format="A4")
    pdf.set_creation_date(_FIXED_DATE)
    pdf.set_title(title)
    pdf.set_producer("congvan")
    pdf.add_font("DejaVu", "", _font("DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", _font("DejaVuSans-Bold.ttf"))
    pdf.set_margins(20, 20, 15)
    pdf.add_page()
    for raw in [*text.splitlines(), *([variant] if variant else [])]:
        line = raw.rstrip()
        bold = line.startswith("**")
        line = re.sub(r"\*+", "", line).strip()
        if not line:
            pdf.ln(3)
            continue
        pdf.set_font("DejaVu", "B" if bold else "", 11)
        pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def sample_pdf(variant: str = "") -> bytes:
    """Letter 1227/UBND-TĐKT as a PDF, as it was issued (06/02/2021, Nguyễn Thanh Bình)."""
    return render_pdf(sample_text(), title="1227/UBND-TĐKT", variant=variant)


# What the sample letter prints as it was issued, which a re-issue replaces.
_ISSUED = "ngày 06 tháng 02 năm 2021"
_SIGNED_BY = "Nguyễn Thanh Bình"
_NUMBERED = "Số: 1227 /UBND-TĐKT"
_ABOUT = (
    "V/v tăng cường gửi, nhận văn bản điện tử giữa các cơ quan hành chính nhà nước nhằm "
    "phòng, chống dịch COVID-19"
)


def written_date(day: date) -> str:
    """``day`` as Decree 30 writes it on a document: a day below 10 and the months 1 and 2
    with a leading zero (``ngày 06 tháng 02 năm 2021``, ``ngày 15 tháng 12 năm 2026``)."""
    month = f"{day.month:02d}" if day.month < 3 else str(day.month)
    return f"ngày {day.day:02d} tháng {month} năm {day.year}"


def reissued_pdf(
    issued_on: date,
    signer_name: str,
    variant: str = "",
    *,
    notation: str = "1227/UBND-TĐKT",
    subject: str | None = None,
) -> bytes:
    """Letter 1227/UBND-TĐKT issued again on ``issued_on`` and signed by ``signer_name``
    (under ``notation``, about ``subject`` when given): the PDF says what its metadata says
    (the demo re-issues it today, with its signer)."""
    text = sample_text()
    for printed in (_ISSUED, _SIGNED_BY, _NUMBERED, _ABOUT):
        assert printed in text, "the sample letter changed"
    text = text.replace(_ISSUED, written_date(issued_on)).replace(_SIGNED_BY, signer_name)
    text = text.replace(_NUMBERED, f"Số: {notation}").replace(_ABOUT, subject or _ABOUT)
    return render_pdf(text, title=notation, variant=variant)
