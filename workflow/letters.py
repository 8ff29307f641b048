"""Sample letters rendered to real PDF files (the demo and the tests use them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
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
    """Letter 1227/UBND-TĐKT as a PDF."""
    return render_pdf(sample_text(), title="1227/UBND-TĐKT", variant=variant)
