"""Where a signature's stamp may stand: on its page, over nothing the letter shows.

A stamp is a picture drawn over the page. pyHanko's difference policy takes a new
signature's appearance as form filling whatever it draws, so the widgets of the signature
a signer's tool adds are judged here (``check_stamps``): together at most
``MAX_WIDGET_SHARE`` of their page, listed on a page, drawn in place (not NoZoom or
NoRotate), over no annotation of the main file, and over nothing its page shows
(``pdfink``: the page drawn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pyhanko.pdf_utils import generic

from congvan.states.errors import PdfModified

from . import pdfink
from .pdfpages import inherited

# A stamp of 250 x 50 pt is 2.5 % of an A4 page; a quarter leaves room for an image.
MAX_WIDGET_SHARE = 0.25


@dataclass(frozen=True)
class SignatureField:
    """The signature field a signed file adds: its name and reference."""

    field_name: str
    ref: generic.Reference


def check_stamps(
    original: bytes,
    signature: SignatureField,
    pages: list[generic.DictionaryObject],
    signed_pages: list[generic.DictionaryObject],
) -> None:
    """Refuse the widgets of the signature's field (``pages``: the main
    file's, ``signed_pages``: the signed file's) that cover more than their share of
    the page showing them (all of the field's on one page together: four of a fifth
    each cover it too), one
    with an area that no page lists (a reader that repairs forms shows it where it says),
    or one standing over anything the main file's page shows (``pdfink``): its stamp
    would hide the reviewed letter and show what its maker chose."""
    field = signature.ref.get_object()
    if not isinstance(field, generic.DictionaryObject):
        raise PdfModified("The signature field is not a dictionary.")
    kids = field.get("/Kids")
    widgets = {signature.ref} if kids is None else {kid.reference for kid in kids}
    placed = set()
    shown: list[tuple[int, pdfink.Rect]] = []
    for index, page in enumerate(signed_pages):
        covered = 0.0
        for annotation in _annotations(page):
            ref = getattr(annotation, "reference", None)
            if ref not in widgets:
                continue
            placed.add(ref)
            placed_widget = annotation.get_object()
            width, height = _size(placed_widget["/Rect"])
            covered += width * height
            if width * height > 0:
                _check_drawn_in_place(placed_widget, signature)
                shown.append((index, rect_numbers(placed_widget["/Rect"])))
        page_width, page_height = _size(_page_box(page)) if covered else (0.0, 0.0)
        if covered > MAX_WIDGET_SHARE * page_width * page_height:
            raise PdfModified(
                "The signature's widget covers too much of its page.",
                signature_field=signature.field_name,
                widget_area=round(covered),
                page_area=round(page_width * page_height),
                max_share=MAX_WIDGET_SHARE,
            )
    _check_no_annotation_under(pages, widgets, signature, shown)
    _check_nothing_under(original, signature, shown, pages=len(pages))
    for ref in widgets - placed:
        widget: Any = ref.get_object()
        width, height = _size(widget.get("/Rect", (0, 0, 0, 0)))
        if width * height > 0:
            raise PdfModified(
                "The signature's widget is listed on no page: a reader that repairs the "
                "form would show it where it says, over the letter.",
                signature_field=signature.field_name,
                widget_area=round(width * height),
            )


def _check_drawn_in_place(widget: generic.DictionaryObject, signature: SignatureField) -> None:
    """Refuse a widget a reader draws beyond its /Rect: one that keeps its size as the page
    is zoomed out (NoZoom) or stands upright on a turned page (NoRotate), its appearance
    turned about its corner over the letter (ISO 32000 12.5.3)."""
    flags = _flags(widget)
    if flags & (_NO_ZOOM | _NO_ROTATE):
        raise PdfModified(
            "The signature's stamp is drawn apart from its page (NoZoom or NoRotate): a "
            "reader would show it beyond its place, over the letter.",
            signature_field=signature.field_name,
            annotation_flags=flags,
        )


_NO_ZOOM, _NO_ROTATE = 8, 16  # annotation flags (ISO 32000 Table 165)


def _check_no_annotation_under(
    pages: list[generic.DictionaryObject],
    widgets: set[Any],
    signature: SignatureField,
    shown: list[tuple[int, pdfink.Rect]],
) -> None:
    """Refuse a widget over an annotation the main file's page has (a stamp, a line, a
    note, an earlier signature's widget), by their rectangles: one without an appearance
    of its own is drawn by some readers and not by others, so not every drawing shows it.
    Links and pop-ups (no ink of their own) and hidden annotations do not count."""
    for index, rect in shown:
        for annotation in _annotations(pages[index]):
            if getattr(annotation, "reference", None) in widgets:
                continue  # the field the signature fills, prepared in the main file
            found = annotation.get_object()
            if not isinstance(found, generic.DictionaryObject):
                continue
            subtype = str(found.get("/Subtype", ""))
            if subtype in _INKLESS or _flags(found) & _HIDDEN:
                continue
            other = _drawn_area(found)
            if other is not None and _overlap(rect, other):
                raise PdfModified(
                    f"The signature's stamp stands over an annotation of page {index + 1} of "
                    "the letter: place it where the page is blank.",
                    signature_field=signature.field_name,
                    page=index + 1,
                    widget_rect=[round(v, 1) for v in rect],
                    annotation=subtype or "unnamed",
                )


def _flags(annotation: generic.DictionaryObject) -> int:
    """An annotation's flags, written in place or as an object of their own, as readers
    take them: a real number's whole part (``20.0`` is NoRotate too), 0 for no number."""
    flags = annotation["/F"] if "/F" in annotation else 0  # noqa: SIM401 (get does not resolve it)
    if isinstance(flags, bool) or not isinstance(flags, int | float | Decimal):
        return 0
    return int(flags) if math.isfinite(flags) else 0


def _annotations(page: generic.DictionaryObject) -> list[Any]:
    """A page's annotations, its /Annots written in place or as an object of its own."""
    found = page["/Annots"] if "/Annots" in page else None  # noqa: SIM401 (get does not resolve it)
    return list(found) if isinstance(found, generic.ArrayObject) else []


def _drawn_area(annotation: generic.DictionaryObject) -> pdfink.Rect | None:
    """Where a reader may draw an annotation: its /Rect, and the points a line, a polygon,
    an ink drawing, a callout or a text markup is drawn through without an appearance
    (some readers draw from those, wherever the /Rect says), widened by _REACH for line
    endings and captions; None when it has no place a reader could find."""
    xs: list[float] = []
    ys: list[float] = []
    try:
        x0, y0, x1, y1 = rect_numbers(annotation["/Rect"])
        xs += [x0, x1]
        ys += [y0, y1]
    except (KeyError, ValueError, TypeError, IndexError):
        pass
    paths = [annotation[k] for k in ("/L", "/Vertices", "/CL", "/QuadPoints") if k in annotation]
    if "/InkList" in annotation and isinstance(annotation["/InkList"], generic.ArrayObject):
        paths += list(annotation["/InkList"])
    reached = False
    for path in paths:
        if not isinstance(path, generic.ArrayObject):
            continue
        numbers = [float(v) for v in path if isinstance(v, int | float | Decimal)]
        points = [(x, y) for x, y in zip(numbers[::2], numbers[1::2], strict=False)]
        points = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
        xs += [x for x, _y in points]
        ys += [y for _x, y in points]
        reached = reached or bool(points)
    if not xs:
        return None
    reach = _REACH if reached else 0.0
    return min(xs) - reach, min(ys) - reach, max(xs) + reach, max(ys) + reach


_REACH = 12.0  # points beyond a drawn line's points: its endings, width and caption
_INKLESS = frozenset({"/Link", "/Popup"})
_HIDDEN = 2  # annotation flag (ISO 32000 Table 165)


def _overlap(a: pdfink.Rect, b: pdfink.Rect) -> bool:
    ax0, ax1 = sorted((a[0], a[2]))
    ay0, ay1 = sorted((a[1], a[3]))
    bx0, bx1 = sorted((b[0], b[2]))
    by0, by1 = sorted((b[1], b[3]))
    return min(ax1, bx1) > max(ax0, bx0) and min(ay1, by1) > max(ay0, by0)


def _check_nothing_under(
    original: bytes, signature: SignatureField, shown: list[tuple[int, pdfink.Rect]], *, pages: int
) -> None:
    try:
        covering = pdfink.ink_under(original, shown, pages=pages)
    except pdfink.Unrenderable as exc:
        raise PdfModified(
            "The signed PDF could not be compared with the main file.", reason=str(exc)
        ) from exc
    if covering:
        first = covering[0]
        raise PdfModified(
            f"The signature's stamp stands over what page {first.page + 1} of the letter "
            "shows: place it where the page is blank.",
            signature_field=signature.field_name,
            page=first.page + 1,
            widget_rect=[round(v, 1) for v in first.rect],
        )


def _page_box(page: generic.DictionaryObject) -> Any:
    box = inherited(page, "/CropBox", "/MediaBox")
    if box is None:
        raise ValueError("the widget's page has no MediaBox")
    return box


def rect_numbers(box: Any) -> tuple[float, float, float, float]:
    """A rectangle's four numbers; ValueError unless it is four finite PDF numbers: a
    string that reads as a number here reads as 0 in a viewer (``(600)``), elsewhere."""
    values = [box[i] for i in range(4)] if len(box) == 4 else []  # indexing resolves them
    if len(values) != 4 or not all(
        isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in values
    ):
        raise ValueError("a rectangle of the signed PDF is not four numbers")
    x0, y0, x1, y1 = (float(v) for v in values)
    if not all(map(math.isfinite, (x0, y0, x1, y1))):
        raise ValueError("a rectangle of the signed PDF is not four finite numbers")
    return x0, y0, x1, y1


def _size(box: Any) -> tuple[float, float]:
    x0, y0, x1, y1 = rect_numbers(box)
    return abs(x1 - x0), abs(y1 - y0)
