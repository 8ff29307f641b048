"""A signer's stamp stands where the letter's page shows nothing (``pdfink``).

A stamp is a picture drawn over the page: over the letter's text it hides what was
reviewed and shows what its maker chose. The letter (``sample_pdf``: text from y 74 pt up
on page 1), a scanned letter (one image a page), a letter on tinted paper and a turned page
are signed by a signer's own tool with its stamp in blank places and over what they show;
and congvan's own stamp looks for a blank corner, or review says there is none.
"""

from __future__ import annotations

import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw
from pyhanko.pdf_utils.generic import (
    ArrayObject,
    BooleanObject,
    FloatObject,
    NumberObject,
    TextStringObject,
)

from congvan.actions.signing import pades, pdfink, pdfstamps
from congvan.actions.signing.pdfchanges import check_only_a_signature_added
from congvan.workflow.letters import sample_pdf
from tests.integration import test_pdf_changes
from tests.integration.test_pdf_changes import Pki, refused, stamp, token
from tests.pdf_edits import (
    RAW_FONT,
    add_annotation,
    draw_on,
    filled,
    paint_over,
    raw_pdf,
    with_page_entries,
    written_at,
)

BLANK = (302.78, 4.0, 552.78, 54.0)  # page 1's bottom right, inside the margin
SUBJECT = (85.0, 600.0, 335.0, 650.0)  # over the letter's text

keys = test_pdf_changes.keys  # the same signers and root


@pytest.fixture(scope="module")
def letter() -> bytes:
    return sample_pdf()


def scanned(
    *,
    text_rows: tuple[int, int] = (300, 1500),
    tint: int = 255,
    light: tuple[int, int] | None = None,
    grain: float = 0.0,
) -> bytes:
    """One A4 page that is a scan (150 dpi): paper of ``tint`` (or lit unevenly, ``light``
    from its left edge to its right, or grainy, ``grain`` its standard deviation), with a
    few specks of dust in its margins, and black lines of "text" between the rows given."""
    image = Image.new("RGB", (1240, 1754), (tint, tint, tint))
    if light is not None:
        left, right = light
        row = bytes(round(left + (right - left) * x / 1239) for x in range(1240))
        image = Image.frombytes("L", (1240, 1), row).resize((1240, 1754)).convert("RGB")
    if grain:
        noise = Image.effect_noise((1240, 1754), grain)  # around 128
        image = noise.point(lambda v: max(0, min(255, v - 128 + tint))).convert("RGB")
    draw = ImageDraw.Draw(image)
    for y in range(text_rows[0], text_rows[1], 40):
        draw.rectangle((180, y, 1060, y + 18), fill=(20, 20, 20))
    for x, y in ((700, 1700), (1100, 1690)):  # dust, each a pixel or two
        draw.point([(x, y), (x + 1, y)], fill=(90, 90, 90))
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    pdf.image(image, x=0, y=0, w=595.28, h=841.89)
    return bytes(pdf.output())


def tinted(rgb: tuple[int, int, int], *, words: tuple[int, int, int] | None = None) -> bytes:
    """An A4 page on paper of colour ``rgb`` (the whole page filled), text in its middle,
    and with ``words`` a line of that colour where the stamp goes (``BLANK``)."""
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_auto_page_break(False)  # the words go into the bottom margin
    pdf.add_page()
    pdf.set_fill_color(*rgb)
    pdf.rect(0, 0, 595.28, 841.89, style="F")
    pdf.set_font("helvetica", size=12)
    pdf.set_xy(85, 300)
    pdf.cell(text="So: 1227/UBND-TDKT")
    if words is not None:
        pdf.set_text_color(*words)
        pdf.set_xy(320, 841.89 - 40)
        pdf.cell(text="Kinh phi: 1.500.000.000 dong")
    return bytes(pdf.output())


# -- a signer's own tool -----------------------------------------------------------------


def test_a_stamp_in_the_blank_margin_is_accepted(keys: Pki, letter: bytes) -> None:
    check_only_a_signature_added(letter, token(letter, keys.signer, keys, box=BLANK))
    # page 2 too, where its text ends (y 500 pt up is blank)
    check_only_a_signature_added(
        letter, token(letter, keys.signer, keys, box=(85.0, 300.0, 335.0, 350.0), page=1)
    )


@pytest.mark.parametrize(
    ("box", "page"),
    [
        (SUBJECT, 0),  # a stamp of the usual size over the text
        ((300.0, 60.0, 550.0, 110.0), 0),  # reaching up from the margin into the last lines
        ((300.0, 116.0, 312.0, 128.0), 0),  # a patch of 12 pt: over one or two letters
        ((335.0, 650.0, 85.0, 600.0), 0),  # its corners written the other way round
        ((85.0, 700.0, 335.0, 750.0), 1),  # on page 2, over its text
    ],
)
def test_a_stamp_over_what_the_letter_shows_is_refused(
    keys: Pki, letter: bytes, box: tuple[float, float, float, float], page: int
) -> None:
    # Given the letter signed by a signer's tool whose stamp stands over its text
    signed = token(letter, keys.signer, keys, box=box, page=page)
    # Then it is refused, saying which page and where, as any change beyond a signature
    details = refused(letter, signed)
    assert details["page"] == page + 1
    assert details["widget_rect"] == [round(v, 1) for v in box]


def test_a_scanned_letters_text_is_ink_and_its_paper_and_dust_are_not(keys: Pki) -> None:
    # Given a scanned letter: one image, its margins white but for specks of dust
    scan = scanned()
    # Then a stamp in its bottom margin, over the dust, is accepted
    check_only_a_signature_added(scan, token(scan, keys.signer, keys, box=BLANK))
    # But one over the scanned lines is refused, though the page is one picture
    details = refused(scan, token(scan, keys.signer, keys, box=SUBJECT))
    assert details["page"] == 1


def test_tinted_paper_is_paper_and_a_pale_colour_on_it_is_ink(keys: Pki) -> None:
    # Given a letter on cream paper, or on yellow: a stamp on the paper is accepted
    for paper in ((252, 246, 228), (255, 230, 0)):
        page = tinted(paper)
        check_only_a_signature_added(page, token(page, keys.signer, keys, box=BLANK))
    # and a scan's grey paper (a copy of a copy) is paper too
    grey = scanned(tint=215)
    check_only_a_signature_added(grey, token(grey, keys.signer, keys, box=BLANK))
    # But words under the stamp are ink however pale: grey at 0.85, yellow, pale blue
    for words in ((217, 217, 217), (255, 230, 0), (170, 200, 255), (255, 255, 160)):
        page = tinted((255, 255, 255), words=words)
        assert refused(page, token(page, keys.signer, keys, box=BLANK))["page"] == 1, words
    # and on cream paper, dark words are
    page = tinted((252, 246, 228), words=(60, 60, 60))
    refused(page, token(page, keys.signer, keys, box=BLANK))


def test_a_stamp_over_an_earlier_signatures_stamp_is_refused(keys: Pki, letter: bytes) -> None:
    # Given a letter signed before review, its stamp in the bottom right corner (a form
    # field's widget: drawn as the form is)
    first = stamp(letter, keys.other, keys)
    # Then a token's stamp over it is refused, one beside it accepted
    refused(first, token(first, keys.signer, keys, box=BLANK))
    beside = (42.5, 4.0, 292.5, 54.0)
    check_only_a_signature_added(first, token(first, keys.signer, keys, box=beside))
    # and congvan's own stamp goes beside it too
    assert pades.default_box(first) == pytest.approx(beside)
    check_only_a_signature_added(first, stamp(first, keys.signer, keys))


@pytest.mark.parametrize("flags", [4 | 8, 4 | 16, 8 | 16])
def test_a_stamp_drawn_apart_from_its_page_is_refused(keys: Pki, letter: bytes, flags: int) -> None:
    # Given a token's stamp in the blank corner that keeps its size when the page is zoomed
    # out (NoZoom) or stands upright on a turned page (NoRotate): a reader draws it turned
    # about its corner, over the letter
    turned = with_page_entries(letter, page={"/Rotate": 90})
    signed = token(turned, keys.signer, keys, box=BLANK, field_keys={"/F": NumberObject(flags)})
    # Then it is refused, naming its flags
    assert refused(turned, signed)["annotation_flags"] == flags


def test_flags_are_read_as_readers_read_them(keys: Pki, letter: bytes) -> None:
    # Given a token's stamp whose flags are a real number: NoRotate all the same
    turned = with_page_entries(letter, page={"/Rotate": 90})
    real = token(turned, keys.signer, keys, box=BLANK, field_keys={"/F": FloatObject("20.0")})
    assert refused(turned, real)["annotation_flags"] == 20
    # And a letter whose annotation keeps its flags as an object of their own (a square
    # far from the stamp) is signed: they are read, not taken for a broken file
    page = _one_page(
        "/Annots [6 0 R]",
        {6: "<< /Type /Annot /Subtype /Square /Rect [72 500 200 560] /F 7 0 R >>", 7: "4"},
    )
    check_only_a_signature_added(page, token(page, keys.signer, keys, box=BLANK))


def test_a_turned_page_is_looked_at_as_a_reader_turns_it(keys: Pki, letter: bytes) -> None:
    # Given page 1 turned a quarter (its /Rotate): a widget's /Rect stays in the page's
    # own, unturned, coordinates
    turned = with_page_entries(letter, page={"/Rotate": 90})
    check_only_a_signature_added(turned, token(turned, keys.signer, keys, box=BLANK))
    refused(turned, token(turned, keys.signer, keys, box=SUBJECT))


def test_a_scan_lit_unevenly_or_grainy_is_paper_where_it_is_blank(keys: Pki) -> None:
    # Given scans darker on one side than the other (a phone's), or grainy
    for scan in (
        scanned(light=(200, 250)),
        scanned(light=(250, 200)),
        scanned(tint=235, grain=6.0),
    ):
        # Then a stamp on their blank paper is accepted, one over their lines refused
        check_only_a_signature_added(scan, token(scan, keys.signer, keys, box=BLANK))
        refused(scan, token(scan, keys.signer, keys, box=SUBJECT))
        # and congvan's own stamp finds the blank corner
        assert pades.default_box(scan) == pytest.approx(BLANK)


def test_a_block_of_colour_is_covered_whole(keys: Pki, letter: bytes) -> None:
    # Given a black box, or white words on black, where the stamp goes
    black = filled(letter, (290.0, 0.0, 570.0, 60.0))
    refused(black, token(black, keys.signer, keys, box=BLANK))
    words = written_at(black, 320.0, 30.0)  # (in black on black: the box is what shows)
    refused(words, token(words, keys.signer, keys, box=BLANK))
    # but a pale grey panel is paper
    panel = filled(letter, (290.0, 0.0, 570.0, 60.0), grey=0.93)
    check_only_a_signature_added(panel, token(panel, keys.signer, keys, box=BLANK))


@pytest.mark.parametrize("subtype", ["/Line", "/Polygon", "/Stamp", "/Square"])
def test_a_stamp_over_an_annotation_of_the_letter_is_refused_drawn_or_not(
    keys: Pki, letter: bytes, subtype: str
) -> None:
    # Given the letter with an annotation where the stamp goes, without an appearance
    # stream (PDFium draws none for a line or a stamp without one; other readers do)
    noted = add_annotation(letter, subtype, rect=(320.0, 10.0, 500.0, 40.0), appearance=False)
    # Then a stamp over it is refused, naming it, and one beside it is accepted
    details = refused(noted, token(noted, keys.signer, keys, box=BLANK))
    assert details["annotation"] == subtype
    beside = (42.5, 4.0, 292.5, 54.0)
    check_only_a_signature_added(noted, token(noted, keys.signer, keys, box=beside))


@pytest.mark.parametrize(
    ("subtype", "where"),
    [("/Line", "/L"), ("/Polygon", "/Vertices"), ("/PolyLine", "/Vertices")],
)
def test_an_annotation_is_where_its_points_are_not_only_its_rect(
    keys: Pki, letter: bytes, subtype: str, where: str
) -> None:
    # Given a line or polygon whose /Rect is a speck at the top of the page but whose
    # points (what readers draw it through, without an appearance) cross the stamp's place
    points = ArrayObject(FloatObject(v) for v in (320, 20, 540, 40, 330, 45))
    if subtype == "/Line":
        points = ArrayObject(list(points)[:4])
    noted = add_annotation(
        letter, subtype, rect=(10.0, 830.0, 11.0, 831.0), appearance=False, entries={where: points}
    )
    # Then a stamp there is refused: the annotation is where it is drawn
    assert refused(noted, token(noted, keys.signer, keys, box=BLANK))["annotation"] == subtype


def test_pale_words_beside_a_shaded_band_are_ink(keys: Pki, letter: bytes) -> None:
    # Given words in grey (0.8) on white, where the stamp goes, beside a pale shaded band
    # that fills more of the stamp's place than the white does (a table's shading)
    shaded = filled(letter, (302.0, 4.0, 560.0, 36.0), grey=0.89)
    words = _draw_grey_words(shaded, 320.0, 42.0, grey=0.8)
    # Then a stamp over them is refused: the band is paper there, the white is paper here
    refused(words, token(words, keys.signer, keys, box=BLANK))
    # and over the band alone, it is accepted
    check_only_a_signature_added(shaded, token(shaded, keys.signer, keys, box=BLANK))


def _draw_grey_words(pdf: bytes, x: float, y: float, grey: float) -> bytes:
    return draw_on(pdf, f"{grey} g BT /Helv 9 Tf {x} {y} Td (Kinh phi 1.500.000) Tj ET".encode(), 0)


def test_a_page_whose_annotations_are_an_object_of_their_own_is_signed(keys: Pki) -> None:
    # Given a page whose /Annots is an indirect array (an annotation far from the stamp)
    page = _one_page(
        "/Annots 7 0 R",
        {6: "<< /Type /Annot /Subtype /Square /Rect [72 500 200 560] /F 4 >>", 7: "[6 0 R]"},
    )
    # Then a stamp in the blank corner is accepted, and one over the square refused
    check_only_a_signature_added(page, token(page, keys.signer, keys, box=BLANK))
    over = (80.0, 510.0, 330.0, 560.0)
    assert refused(page, token(page, keys.signer, keys, box=over))["annotation"] == "/Square"


def test_what_only_prints_is_looked_at_too(keys: Pki) -> None:
    # Given a letter whose amount is in a layer shown when printed, hidden on screen
    page = raw_pdf(
        {
            1: "<< /Type /Catalog /Pages 2 0 R /OCProperties << /OCGs [6 0 R] /D << /OFF "
            "[6 0 R] /AS [<< /Event /Print /OCGs [6 0 R] /Category [/Print] >> << /Event "
            "/View /OCGs [6 0 R] /Category [/View] >>] >> >> >>",
            2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            "/Resources << /Font << /F1 5 0 R >> /Properties << /oc1 6 0 R >> >> >>",
            4: _stream(
                "BT /F1 10 Tf 72 700 Td (So: 1227/UBND-TDKT) Tj ET "
                "/OC /oc1 BDC BT /F1 24 Tf 320 20 Td (1.500.000) Tj ET EMC"
            ),
            5: RAW_FONT,
            6: "<< /Type /OCG /Name (Print) /Usage << /Print << /PrintState /ON >> "
            "/View << /ViewState /OFF >> >> >>",
        }
    )
    # Then a stamp over it is refused: what a printer prints is what the letter shows too
    refused(page, token(page, keys.signer, keys, box=BLANK))


def test_a_rectangle_is_four_numbers_as_every_reader_reads_them() -> None:
    # A widget's /Rect whose corner is written as text: (600) reads as 600 to a lenient
    # parser and as 0 to PDFium and poppler, which draw the stamp over the letter; so
    # a rectangle is four PDF numbers, or no rectangle (the signed file is refused)
    n = NumberObject
    assert pdfstamps.rect_numbers(ArrayObject([n(1), FloatObject("2.5"), n(3), n(4)])) == (
        1.0,
        2.5,
        3.0,
        4.0,
    )
    for odd in (
        [TextStringObject("600"), n(600), n(595), n(650)],
        [n(0), n(0), n(595)],
        [BooleanObject(True), n(0), n(595), n(650)],
    ):
        with pytest.raises(ValueError, match="not four numbers"):
            pdfstamps.rect_numbers(ArrayObject(odd))


def test_a_page_with_pages_under_it_is_no_page(letter: bytes) -> None:
    # Given a page tree whose page has /Kids (a page to pyHanko, its kids to PDFium)
    tree = raw_pdf(
        {
            1: "<< /Type /Catalog /Pages 2 0 R >>",
            2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: "<< /Type /Page /Parent 2 0 R /Kids [6 0 R] /Count 1 /MediaBox [0 0 595 842] "
            "/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            4: _stream("BT /F1 12 Tf 72 700 Td (So: 1227/UBND-TDKT) Tj ET"),
            5: RAW_FONT,
            6: "<< /Type /Page /Parent 3 0 R /MediaBox [0 0 595 842] >>",
        }
    )
    # Then review says it cannot be signed (the stamp's page would be one page or another)
    assert "has pages under it" in (pades.stamp_problem(tree) or "")


def _one_page(page: str = "", more: dict[int, str] | None = None) -> bytes:
    """A letter of one A4 page and one line of text (objects 1-5), ``page`` more entries
    of its page (object 3), and ``more`` objects from 6 on."""
    return raw_pdf(
        {
            1: "<< /Type /Catalog /Pages 2 0 R >>",
            2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            f"/Resources << /Font << /F1 5 0 R >> >> {page} >>",
            4: _stream("BT /F1 12 Tf 72 700 Td (So: 1227/UBND-TDKT) Tj ET"),
            5: RAW_FONT,
            **(more or {}),
        }
    )


def _stream(content: str) -> str:
    return f"<< /Length {len(content)} >>\nstream\n{content}\nendstream"


# -- congvan's own stamp -----------------------------------------------------------------


def test_the_server_stamp_takes_the_first_blank_corner(keys: Pki, letter: bytes) -> None:
    # Given the letter with words written into page 1's bottom right corner (a footer)
    footer = written_at(letter, 400, 20)
    # Then the stamp goes to the bottom left, and the signed file passes its own check
    x0, y0, _x1, _y1 = pades.default_box(footer)
    assert (x0, y0) == pytest.approx((42.5, 4.0))
    check_only_a_signature_added(footer, stamp(footer, keys.signer, keys))
    # And in the letter as it is, the bottom right, blank, is taken
    assert pades.default_box(letter) == pytest.approx(BLANK)


def test_review_says_when_no_corner_is_blank(letter: bytes) -> None:
    # Given page 1 with words in each of its four corners
    full = letter
    for x, y in ((400, 20), (60, 20), (400, 810), (60, 810)):
        full = written_at(full, x, y)
    # Then the stamp has no place: review says so, and signing refuses
    assert "shows something in each corner" in (pades.stamp_problem(full) or "")
    assert pades.stamp_problem(letter) is None


def test_ink_under_looks_at_every_placement_and_refuses_what_it_cannot_draw(
    letter: bytes,
) -> None:
    found = pdfink.ink_under(letter, [(0, BLANK), (0, SUBJECT), (1, SUBJECT)])
    assert [(c.page, c.rect) for c in found] == [(0, SUBJECT), (1, SUBJECT)]
    assert all(c.ink > 100 for c in found)
    # a strip thinner than a pixel over a line of text covers it (a stamp may be cut into
    # eighty of them, stacked): every pixel it touches counts
    strip = (85.0, 121.01, 335.0, 121.06)
    assert [c.rect for c in pdfink.ink_under(letter, [(0, strip)])] == [strip]
    # the page looked at must be the page the stamp is on: as many pages, read both ways
    with pytest.raises(pdfink.Unrenderable, match="reads as 3 pages and as 2"):
        pdfink.ink_under(letter, [(0, BLANK)], pages=3)
    # a page 0.01 pt wide and 1e9 pt tall is looked at through a bitmap of bounded size
    needle = with_page_entries(letter, page={"/MediaBox": [0, 0, 0.01, 1e9]})
    assert pdfink.ink_under(needle, [(0, (0.0, 0.0, 0.01, 10.0))]) == []
    with pytest.raises(pdfink.Unrenderable, match="no page 3"):
        pdfink.ink_under(letter, [(2, BLANK)])
    with pytest.raises(pdfink.Unrenderable, match="cannot be drawn"):
        pdfink.ink_under(b"%PDF-1.7\nnot a PDF at all", [(0, BLANK)])
    # and painting over the upper half (white) leaves only the words written on it there
    painted = paint_over(letter)
    assert pdfink.ink_under(painted, [(0, (300.0, 500.0, 550.0, 550.0))]) == []
