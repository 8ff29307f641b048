"""What a page paints over its letters: drawn in content streams as PDF writers draw them
(forms, matrices, see-through states), read as format.printed reads a page."""

from __future__ import annotations

import pytest

from congvan.actions.checks.printed import read
from tests.pdf_edits import raw_pdf

FONT = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
SHOWN = b"0 g BT /F1 12 Tf 50 650 Td (Shown 1228) Tj ET"
HIDDEN = b"BT /F1 12 Tf 50 750 Td (Hidden 1227) Tj ET"


def page(content: bytes, form: bytes = b"", matrix: str = "1 0 0 1 0 0") -> bytes:
    """One A4 page drawing ``content``, with ``form`` as the form XObject /Fm1 (its
    /Matrix ``matrix``) and /GS1 an ExtGState filling at half opacity."""
    stream = content + b"\n" + SHOWN

    def body(data: bytes, head: str = "") -> str:
        return f"<< {head}/Length {len(data)} >>\nstream\n{data.decode('latin-1')}\nendstream"

    resources = "/Font << /F1 6 0 R >> /ExtGState << /GS1 7 0 R >>"
    return raw_pdf(
        {
            1: "<< /Type /Catalog /Pages 2 0 R >>",
            2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            f"/Resources << {resources} /XObject << /Fm1 5 0 R >> >> >>",
            4: body(stream),
            5: body(
                form,
                f"/Type /XObject /Subtype /Form /BBox [0 0 500 100] /Matrix [{matrix}] "
                f"/Resources << {resources} >> ",
            ),
            6: FONT,
            7: "<< /Type /ExtGState /ca 0.5 >>",
        }
    )


HIDDEN_CASES = {
    "a white box drawn after": page(HIDDEN + b" 1 g 40 740 200 30 re f"),
    "a box of any colour drawn after": page(HIDDEN + b" 0.2 0.4 0.8 rg 40 740 200 30 re f"),
    "a box in a form, scaled by the form's matrix and placed by the page's": page(
        HIDDEN + b" q 1 0 0 1 40 745 cm /Fm1 Do Q", b"1 g 0 0 100 10 re f", "2 0 0 2 0 0"
    ),
    "text in a scaled form, a box on the page after it": page(
        b"q 0.5 0 0 0.5 0 0 cm /Fm1 Do Q 1 g 20 370 200 30 re f",
        b"0 g BT /F1 12 Tf 50 750 Td (Hidden 1227) Tj ET",
    ),
}

SHOWN_CASES = {
    "a box drawn before (a band behind the header)": page(
        b"0.9 g 40 740 200 30 re f 0 g " + HIDDEN
    ),
    "a box outlined only": page(HIDDEN + b" 1 G 40 740 200 30 re S"),
    "a line struck through": page(HIDDEN + b" 0 g 40 753 200 1 re f"),
    "a box over the top of the letters only": page(HIDDEN + b" 1 g 40 755 200 20 re f"),
    "a box elsewhere": page(HIDDEN + b" 1 g 40 600 200 30 re f"),
    "a box at half opacity": page(HIDDEN + b" q /GS1 gs 1 g 40 740 200 30 re f Q"),
    "a form's box placed elsewhere": page(
        HIDDEN + b" q 1 0 0 1 40 600 cm /Fm1 Do Q", b"1 g 0 0 100 10 re f", "2 0 0 2 0 0"
    ),
}


@pytest.mark.parametrize("pdf", HIDDEN_CASES.values(), ids=HIDDEN_CASES.keys())
def test_letters_painted_over_are_not_read(pdf: bytes) -> None:
    assert read(pdf).first.split() == ["Shown", "1228"]


@pytest.mark.parametrize("pdf", SHOWN_CASES.values(), ids=SHOWN_CASES.keys())
def test_letters_nothing_opaque_covers_are_read(pdf: bytes) -> None:
    assert read(pdf).first.split() == ["Hidden", "1227", "Shown", "1228"]
