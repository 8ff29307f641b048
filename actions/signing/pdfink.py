"""Whether a rectangle of a page shows anything: where a signature's stamp may stand.

A stamp is a picture of its own, drawn over the page: one placed over the letter's text
hides what was reviewed and shows what its maker chose (another number, another subject),
and no rule of the PDF changes tells it from an honest stamp. So the page is looked at
as a reader shows it: rendered by PDFium (``pypdfium2``, the engine of Chrome's viewer,
built into its wheel: nothing to install), the main file's page without the new stamp,
and the pixels under the stamp's rectangle counted. Text, a scan, a line, an image, an
earlier signature's stamp: whatever is drawn there is ink; the paper, the commonest light
colour around each spot whatever its tint, is not.

PDFium is not safe to call from two threads at once: every call here holds one lock.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

Rect = tuple[float, float, float, float]

# How finely a page is looked at: 1.5 pixels a point (108 dpi) shows every stroke of
# 8 pt text; a page larger than A3 is looked at more coarsely, never past _MOST_PIXELS,
# nor past _LONGEST_SIDE pixels along either side (a page 0.01 pt wide and 1e9 pt tall).
_SCALE = 1.5
_MOST_PIXELS = 6_000_000
_LONGEST_SIDE = 20_000
# The paper is the commonest colour around (white, cream, a scan's grey: ``_ink_pairs``),
# judged in bands 8 values wide; a pixel with a channel further than _INK_FROM from its
# band (28 from its middle) is ink (grey text at 0.85, yellow on white), and more than
# _SPECKS pairs of neighbouring ink pixels under a rectangle are what it covers (a full
# stop at 12 pt is four): a speck of dust on a scan is not.
_INK_FROM = 24
_SPECKS = 3
# The commonest colour of a tile of the page is its paper if it is no darker than this
# (luma: yellow paper is light).
_DARKEST_PAPER = 128

# One lock for every call into PDFium in the process (it keeps global state)
PDFIUM_LOCK = threading.Lock()


class Unrenderable(ValueError):
    """PDFium could not open or draw the page."""


@dataclass(frozen=True)
class Covered:
    """A rectangle of a page with ink under it."""

    page: int  # from 0
    rect: Rect
    ink: int  # pairs of neighbouring ink pixels under it


def ink_under(
    pdf: bytes, placements: Sequence[tuple[int, Rect]], *, pages: int | None = None
) -> list[Covered]:
    """Which of ``placements`` (a page, from 0, and a rectangle in that page's default
    user space, as an annotation's ``/Rect``) have something drawn under them on ``pdf``'s
    pages as a reader shows them (annotations and form fields included). A pixel the
    rectangle touches counts, however little of it: a stamp cut into strips thinner than
    a pixel covers the text all the same. ``Unrenderable`` when PDFium cannot open ``pdf``
    or that page, or when it finds another number of pages than ``pages`` (the caller's
    reading of the page tree: the page looked at must be the page the stamp is on)."""
    by_page: dict[int, list[Rect]] = {}
    for page, rect in placements:
        by_page.setdefault(page, []).append(rect)
    found: list[Covered] = []
    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(pdf)
            document.init_forms()  # else form fields (earlier signatures' stamps) are not drawn
        except pdfium.PdfiumError as exc:
            raise Unrenderable(f"the PDF cannot be drawn: {exc}") from exc
        try:
            if pages is not None and len(document) != pages:
                raise Unrenderable(
                    f"the PDF's page tree reads as {pages} pages and as {len(document)}: "
                    "which page a stamp is on is not one answer"
                )
            for index, rects in sorted(by_page.items()):
                if not 0 <= index < len(document):
                    raise Unrenderable(f"the PDF has no page {index + 1}")
                found += _ink_on_page(document[index], index, rects)
        except (pdfium.PdfiumError, MemoryError) as exc:
            raise Unrenderable(f"the PDF's page cannot be drawn: {exc!r}") from exc
        finally:
            document.close()
    return found


def _ink_on_page(page: pdfium.PdfPage, index: int, rects: list[Rect]) -> list[Covered]:
    """The page drawn as a screen shows it and as a printer prints it (content and
    annotations that only print: a layer for print, a NoView annotation), each looked at."""
    try:
        width, height = page.get_size()
        if not (width > 0 and height > 0):
            raise Unrenderable(f"page {index + 1} shows nothing (its size is {width} x {height})")
        scale = min(
            _SCALE, math.sqrt(_MOST_PIXELS / (width * height)), _LONGEST_SIDE / max(width, height)
        )
        ink = [0] * len(rects)
        for flags in (0, pdfium_c.FPDF_PRINTING):
            bitmap = page.render(
                scale=scale,
                draw_annots=True,
                may_draw_forms=True,
                prefer_bgrx=False,
                extra_flags=flags,
            )
            try:
                for n, found in enumerate(
                    _ink_in(bitmap, _to_pixels(bitmap.get_posconv(page)), rects)
                ):
                    ink[n] = max(ink[n], found)
            finally:
                bitmap.close()
        return [Covered(index, rect, n) for rect, n in zip(rects, ink, strict=True) if n > _SPECKS]
    finally:
        page.close()


def _ink_in(
    bitmap: pdfium.PdfBitmap,
    to_pixels: Callable[[float, float], tuple[float, float]],
    rects: list[Rect],
) -> list[int]:
    """For each rectangle, how many pairs of neighbouring pixels under it (side by side or
    one above the other) are both ink: a stroke is, a scan's grain, a speck here and there,
    seldom is."""
    buffer = bytes(bitmap.buffer)
    found = []
    for rect in rects:
        corners = [to_pixels(x, y) for x in (rect[0], rect[2]) for y in (rect[1], rect[3])]
        xs = sorted(x for x, _y in corners)
        ys = sorted(y for _x, y in corners)
        # every pixel the rectangle touches, clipped to what the page shows
        left, right = max(0, math.floor(xs[0])), min(bitmap.width, math.ceil(xs[-1]))
        top, bottom = max(0, math.floor(ys[0])), min(bitmap.height, math.ceil(ys[-1]))
        if left >= right or top >= bottom:
            found.append(0)
            continue
        found.append(_ink_pairs(bitmap, buffer, (left, right, top, bottom)))
    return found


def _ink_pairs(bitmap: pdfium.PdfBitmap, buffer: bytes, area: tuple[int, int, int, int]) -> int:
    """Pairs of neighbouring ink pixels in ``area`` (left, right, top, bottom). The paper
    is judged tile by tile (``_TILE`` pixels square): its commonest colour there, so that
    white paper, a pale shaded band and a scan lit unevenly are each paper where they
    are, and words on any of them ink; a tile whose commonest colour is dark (a black
    box, a heavy stroke) is ink whole."""
    left, right, top, bottom = area
    stride, channels = bitmap.stride, bitmap.n_channels
    pairs, above = 0, 0
    for band in range(top, bottom, _TILE):
        rows = range(band, min(band + _TILE, bottom))
        tiles = []  # (start, end, per-channel tables, or None: ink whole)
        for x in range(left, right, _TILE):
            end = min(x + _TILE, right)
            paper = tuple(
                _commonest(
                    b"".join(
                        buffer[
                            r * stride + x * channels + c : r * stride + end * channels : channels
                        ]
                        for r in rows
                    )
                )
                for c in range(channels)
            )
            light = _lightness(paper) >= _DARKEST_PAPER
            tiles.append((x, end, [_far_from(v) for v in paper] if light else None))
        for row in rows:
            start = row * stride
            mask = 0  # a byte a pixel: 1 where any channel is ink
            for x, end, tables in tiles:
                shift = 8 * (right - end)
                if tables is None:
                    mask |= int.from_bytes(b"\x01" * (end - x), "big") << shift
                    continue
                pixels = buffer[start + x * channels : start + end * channels]
                for channel, table in enumerate(tables):
                    ink = pixels[channel::channels].translate(table)
                    mask |= int.from_bytes(ink, "big") << shift
            pairs += (mask & (mask >> 8)).bit_count() + (mask & above).bit_count()
            above = mask
    return pairs


def _commonest(values: bytes) -> int:
    """The middle of the commonest band of ``values`` (8 wide: a scan's paper is grainy)."""
    band, _count = Counter(values.translate(_BANDS)).most_common(1)[0]
    return band * 8 + 4


_BANDS = bytes(v >> 3 for v in range(256))
_TILE = 16  # pixels: a tile of paper holds a letter's stroke or two, seldom more


def _to_pixels(where: Any) -> Callable[[float, float], tuple[float, float]]:
    """Page coordinates to the bitmap's, in fractions of a pixel: PDFium's conversion
    answers whole pixels (a rectangle thinner than one would cover none), so the affine
    map it applies (scale, turn, offset) is read from three points far apart."""
    ox, oy = where.to_bitmap(0, 0)
    ax, ay = where.to_bitmap(_FAR, 0)
    bx, by = where.to_bitmap(0, _FAR)
    a, b = (ax - ox) / _FAR, (bx - ox) / _FAR
    c, d = (ay - oy) / _FAR, (by - oy) / _FAR

    def convert(x: float, y: float) -> tuple[float, float]:
        return ox + a * x + b * y, oy + c * x + d * y

    return convert


_FAR = 100_000.0  # points: the whole-pixel rounding is then a millionth of a pixel a point


def _lightness(colour: tuple[int, ...]) -> float:
    """How light a pixel's colour is (ITU-R BT.601 luma); PDFium writes blue, green, red."""
    if len(colour) < 3:
        return float(colour[0])
    blue, green, red = colour[:3]
    return 0.114 * blue + 0.587 * green + 0.299 * red


@functools.cache
def _far_from(paper: int) -> bytes:
    """A table marking (1) the values of a channel that are ink on paper of this value."""
    return bytes(1 if abs(v - paper) > _INK_FROM + 4 else 0 for v in range(256))
