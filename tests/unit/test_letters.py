"""The sample letter re-issued: its PDF says what the metadata of its re-issue says."""

from __future__ import annotations

from datetime import date

import pypdfium2 as pdfium
import pytest

from congvan.workflow.letters import reissued_pdf, sample_pdf, written_date


@pytest.mark.parametrize(
    ("day", "written"),
    [
        (date(2021, 2, 6), "ngày 06 tháng 02 năm 2021"),
        (date(2026, 1, 15), "ngày 15 tháng 01 năm 2026"),
        (date(2026, 3, 5), "ngày 05 tháng 3 năm 2026"),
        (date(2026, 12, 31), "ngày 31 tháng 12 năm 2026"),
    ],
)
def test_a_date_is_written_as_decree_30_writes_it(day: date, written: str) -> None:
    assert written_date(day) == written


def text_of(pdf: bytes) -> str:
    document = pdfium.PdfDocument(pdf)
    try:
        return "".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


def test_the_reissued_letter_prints_its_day_and_its_signer() -> None:
    text = text_of(reissued_pdf(date(2026, 12, 6), "Nguyễn Văn Phương", variant="x"))
    assert "ngày 06 tháng 12 năm 2026" in text and "Nguyễn Văn Phương" in text
    assert "Nguyễn Thanh Bình" not in text and "06 tháng 02 năm 2021" not in text
    # The letter as issued is kept as it was
    issued = text_of(sample_pdf())
    assert "ngày 06 tháng 02 năm 2021" in issued and "Nguyễn Thanh Bình" in issued


def test_a_reissue_prints_the_notation_and_subject_it_is_given() -> None:
    pdf = reissued_pdf(
        date(2027, 1, 2), "Nguyễn Văn Phương", notation="1228/UBND-TĐKT", subject="V/v đôn đốc"
    )
    text = " ".join(text_of(pdf).split())
    assert "Số: 1228/UBND-TĐKT" in text and "V/v đôn đốc" in text
    assert "1227" not in text and "V/v tăng cường" not in text
    assert "ngày 02 tháng 01 năm 2027" in text
