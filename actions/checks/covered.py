"""Which of a PDF page's letters something painted later hides: a white box, a block of
colour or an opaque picture drawn over them (PDF paints in the order it draws)."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

# A page drawing more objects than this is not looked at further (a letter's page draws a
# few hundred); the check reads it as having none that hides.
MOST_OBJECTS = 100_000
# A picture of more pixels than this over letters is taken to hide them without looking
# at each pixel (a scan of a page at 300 dpi is some 9 million).
_MOST_PIXELS = 16_000_000
# A letter is hidden when what is painted over it covers its middle: all but this share
# of its box on each side (an underline, a strike-through or a cell's border covers less).
_MARGIN = 0.2

_PAINTS = frozenset(
    {pdfium_c.FPDF_PAGEOBJ_PATH, pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_SHADING}
)

Box = tuple[float, float, float, float]  # left, bottom, right, top (page space)
Matrix = tuple[float, float, float, float, float, float]
_IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


@dataclass
class _Paint:
    place: int  # in the drawing order
    box: Box
    obj: Any  # the raw FPDF_PAGEOBJECT
    picture: bool
    opaque: bool | None = None  # a picture's, found when first asked


@dataclass
class Covers:
    """What ``page`` paints opaque, in its drawing order, and where each text object is
    drawn in it; :meth:`hides` answers for one letter."""

    document: Any
    page: Any
    texts: dict[int, tuple[int, Box]] = field(default_factory=dict)  # by object address
    paints: list[_Paint] = field(default_factory=list)
    _over: dict[int, list[_Paint]] = field(default_factory=dict)

    def hides(self, key: int, box: Any) -> bool:
        """Whether the letter in ``box`` (its loose box), drawn by the text object at
        address ``key``, is covered by an opaque paint drawn after it."""
        over = self._over.get(key)
        if over is None:
            over = self._over[key] = self._painted_over(key)
        if not over:
            return False
        left, bottom = min(box.left, box.right), min(box.bottom, box.top)
        right, top = max(box.left, box.right), max(box.bottom, box.top)
        dx, dy = (right - left) * _MARGIN, (top - bottom) * _MARGIN
        inner = (left + dx, bottom + dy, right - dx, top - dy)
        return any(_contains(paint.box, inner) and self._opaque(paint) for paint in over)

    def _painted_over(self, key: int) -> list[_Paint]:
        place, box = self.texts.get(key, (-1, None))
        if box is None:
            return []  # a text object not walked (past MOST_OBJECTS): nothing found over it
        return [p for p in self.paints if p.place > place and _meets(p.box, box)]

    def _opaque(self, paint: _Paint) -> bool:
        if paint.opaque is None:
            paint.opaque = not paint.picture or _opaque_picture(self.document, self.page, paint)
        return paint.opaque


def covers(document: pdfium.PdfDocument, page: pdfium.PdfPage) -> Covers:
    """The page's paints and text objects, walked in drawing order into its forms."""
    found = Covers(document.raw, page.raw)
    for place, (obj, kind, matrix, see_through) in enumerate(_walk(page.raw)):
        if kind == pdfium_c.FPDF_PAGEOBJ_TEXT:
            found.texts[ctypes.addressof(obj.contents)] = (place, _bounds(obj, matrix))
        elif kind in _PAINTS and not see_through and _paints_opaque(obj, kind):
            picture = kind == pdfium_c.FPDF_PAGEOBJ_IMAGE
            found.paints.append(_Paint(place, _bounds(obj, matrix), obj, picture))
    return found


def _walk(page: Any) -> Iterator[tuple[Any, int, Matrix, bool]]:
    """Each object the page draws, in order, with the matrix of the forms holding it and
    whether one of them is drawn see-through (its group blended, masked or faded)."""
    seen = 0
    stack: list[tuple[Any, int, int, Matrix, bool]] = [
        (page, pdfium_c.FPDFPage_CountObjects(page), 0, _IDENTITY, False)
    ]
    while stack:
        holder, count, index, matrix, see_through = stack.pop()
        if index >= count:
            continue
        stack.append((holder, count, index + 1, matrix, see_through))
        seen += 1
        if seen > MOST_OBJECTS:
            return
        obj = (
            pdfium_c.FPDFPage_GetObject(holder, index)
            if holder is page
            else pdfium_c.FPDFFormObj_GetObject(holder, index)
        )
        if not obj:
            continue
        kind = pdfium_c.FPDFPageObj_GetType(obj)
        if kind == pdfium_c.FPDF_PAGEOBJ_FORM:
            inner = _times(_matrix(obj), matrix)
            faded = see_through or bool(pdfium_c.FPDFPageObj_HasTransparency(obj))
            stack.append((obj, pdfium_c.FPDFFormObj_CountObjects(obj), 0, inner, faded))
        else:
            yield obj, kind, matrix, see_through


def _paints_opaque(obj: Any, kind: int) -> bool:
    """Whether ``obj`` paints without letting what is under it show (a picture's own
    pixels are looked at later, only where letters lie under it)."""
    if pdfium_c.FPDFPageObj_HasTransparency(obj):
        return False
    if kind != pdfium_c.FPDF_PAGEOBJ_PATH:
        return True
    fill, stroke = ctypes.c_int(), ctypes.c_int()
    if not pdfium_c.FPDFPath_GetDrawMode(obj, fill, stroke) or fill.value == 0:
        return False  # lines alone (a table's borders, an underline)
    colour = fill_colour(obj)
    return colour is not None and colour[3] == 255


def fill_colour(obj: Any) -> tuple[int, int, int, int] | None:
    """The RGBA colour ``obj`` (a raw FPDF_PAGEOBJECT) fills with; None if PDFium tells none."""
    r, g, b, a = (ctypes.c_uint() for _ in range(4))
    if not pdfium_c.FPDFPageObj_GetFillColor(obj, r, g, b, a):
        return None
    return r.value, g.value, b.value, a.value


def _opaque_picture(document: Any, page: Any, paint: _Paint) -> bool:
    """Whether the picture shows no pixel see-through (a seal's image keeps what is
    under it outside its ink)."""
    width, height = ctypes.c_uint(), ctypes.c_uint()
    sized = pdfium_c.FPDFImageObj_GetImagePixelSize(paint.obj, width, height)
    if sized and width.value * height.value > _MOST_PIXELS:
        return True
    bitmap = pdfium_c.FPDFImageObj_GetRenderedBitmap(document, page, paint.obj)
    if not bitmap:
        return False
    try:
        if pdfium_c.FPDFBitmap_GetFormat(bitmap) != pdfium_c.FPDFBitmap_BGRA:
            return True  # no alpha: every pixel paints
        stride = pdfium_c.FPDFBitmap_GetStride(bitmap)
        rows = pdfium_c.FPDFBitmap_GetHeight(bitmap)
        wide = pdfium_c.FPDFBitmap_GetWidth(bitmap)
        buffer = pdfium_c.FPDFBitmap_GetBuffer(bitmap)
        data = ctypes.string_at(buffer, stride * rows)
        return all(
            min(data[row * stride + 3 : row * stride + 4 * wide : 4], default=255) == 255
            for row in range(rows)
        )
    finally:
        pdfium_c.FPDFBitmap_Destroy(bitmap)


def _matrix(obj: Any) -> Matrix:
    m = pdfium_c.FS_MATRIX()
    if not pdfium_c.FPDFPageObj_GetMatrix(obj, m):
        return _IDENTITY
    return (m.a, m.b, m.c, m.d, m.e, m.f)


def _times(first: Matrix, then: Matrix) -> Matrix:
    """``first`` then ``then`` (PDF's row-vector order)."""
    a, b, c, d, e, f = first
    A, B, C, D, E, F = then
    return (
        a * A + b * C,
        a * B + b * D,
        c * A + d * C,
        c * B + d * D,
        e * A + f * C + E,
        e * B + f * D + F,
    )


def _bounds(obj: Any, matrix: Matrix) -> Box:
    """``obj``'s bounding box on the page (its own bounds are in its form's space)."""
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    if not pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
        return (0.0, 0.0, 0.0, 0.0)
    if matrix == _IDENTITY:
        return (left.value, bottom.value, right.value, top.value)
    a, b, c, d, e, f = matrix
    xs, ys = [], []
    for x in (left.value, right.value):
        for y in (bottom.value, top.value):
            xs.append(a * x + c * y + e)
            ys.append(b * x + d * y + f)
    return (min(xs), min(ys), max(xs), max(ys))


def _contains(outer: Box, inner: Box) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def _meets(one: Box, other: Box) -> bool:
    return one[0] < other[2] and other[0] < one[2] and one[1] < other[3] and other[1] < one[3]
