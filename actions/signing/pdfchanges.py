"""What a signer's tool may add to the reviewed main PDF: one signature, and nothing else.

An uploaded signed PDF must be the main file's exact bytes followed by incremental
updates. Those updates may add exactly one signature, made in the last revision and
covering the whole file, together with what the signature needs: its field (and the
``/AcroForm`` that holds it, when the main file had none), its widget on a page with the
widget's appearance, the document security store (DSS), and document information or XMP
metadata. Anything else is refused with ``PdfModified``: page content, annotations other
than the signature's widget, form field values, other catalog entries, freed objects,
more than one new signature, or a widget large enough to paint over its page.
Signatures the main file already carried were there when it was reviewed: they stay.

The changes are judged by pyHanko's difference analysis (``StandardDiffPolicy``), run
from the main file's last revision to every revision after it, with two differences
from pyHanko's default policy:

* only signature fields may be created or filled: the rule that lets other form fields
  change value (``GenericFieldModificationRule``) is left out, so such a change is
  unexplained and refused;
* a main file without ``/AcroForm`` may gain one that holds nothing but new signature
  fields (pyHanko only diffs after a first signature, when the form exists already).

pyHanko judges a signature's widget appearance as form filling whatever it draws, so
the widget's size is bounded here, at most ``MAX_WIDGET_SHARE`` of its page, and it must
stand where the main file's page shows nothing (``pdfink``).
"""

from __future__ import annotations

import io
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader, RawPdfPath
from pyhanko.sign import fields
from pyhanko.sign.diff_analysis import (
    CatalogModificationRule,
    DocInfoRule,
    DSSCompareRule,
    FormUpdate,
    FormUpdatingRule,
    MetadataUpdateRule,
    ModificationLevel,
    ObjectStreamRule,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
    SuspiciousModification,
    XrefStreamRule,
)
from pyhanko.sign.diff_analysis.commons import compare_key_refs, qualify_transforming
from pyhanko.sign.diff_analysis.constants import ACROFORM_EXEMPT_STRICT_COMPARISON
from pyhanko.sign.diff_analysis.form_rules_api import FieldComparisonContext, _list_fields
from pyhanko.sign.diff_analysis.rules_api import Context
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from congvan.states.errors import ManifestMismatch, PdfModified

from . import pdfink
from .pdfactive import active_in

# A stamp of 250 x 50 pt is 2.5 % of an A4 page; a quarter leaves room for an image.
MAX_WIDGET_SHARE = 0.25
# What pyHanko raises on a PDF it cannot read: its own errors, and Python's for objects
# not of the kind they should be or nested deeper than the interpreter goes (an array
# inside an array 50,000 times).
UNREADABLE = (PdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError)
# What a form created with the first signature may hold besides /Fields.
_NEW_ACROFORM_KEYS = frozenset({"/Fields", "/SigFlags", "/DR", "/DA", "/Q"})
# Signing needs a new field, its value, widget and appearance: FORM_FILLING at most.
_ALLOWED = ModificationLevel.FORM_FILLING


def check_only_a_signature_added(original: bytes, signed: bytes) -> None:
    """Refuse ``signed`` unless it is ``original`` plus one whole-file signature only.

    Raises ``ManifestMismatch`` when ``signed`` does not start with ``original``, and
    ``PdfModified`` (with ``revision``, ``modification_level`` and ``reason`` where they
    apply) for anything added besides the signature and what it needs.
    """
    if len(signed) <= len(original) or not signed.startswith(original):
        raise ManifestMismatch(
            "The signed PDF is not the document's main file with signatures appended."
        )
    try:
        before = PdfFileReader(io.BytesIO(original), strict=False)
        after = PdfFileReader(io.BytesIO(signed), strict=False)
        base = _base_revision(before, after, len(original))
        _check_widget(original, before, after, _new_signature(before, after, base))
        _check_nothing_active_added(after, base)
        _check_revisions(after, base)
    except UNREADABLE as exc:
        # SuspiciousModification is a ValueError, but _check_revisions names it itself.
        raise PdfModified(
            "The signed PDF could not be compared with the main file.", reason=str(exc)
        ) from exc


def _base_revision(before: PdfFileReader, after: PdfFileReader, size: int) -> int:
    """The main file's last revision, as the signed file reads it; raise unless it is."""
    base: int = before.xrefs.total_revisions - 1
    total = after.xrefs.total_revisions
    if total <= base + 1:
        raise PdfModified("The signed PDF adds no revision to the main file.")
    # The signed file's history must be the main file's history, then updates after it:
    # not updates that chain back to an earlier revision of the main file.
    for revision in range(base + 1):
        if after.xrefs.get_startxref_for_revision(
            revision
        ) != before.xrefs.get_startxref_for_revision(revision):
            raise PdfModified(
                "The signed PDF rewrites the main file's revisions.", revision=revision
            )
    for revision in range(base + 1, total):
        if after.xrefs.get_xref_container_info(revision).start_location < size:
            raise PdfModified(
                "An update of the signed PDF lies inside the main file.", revision=revision
            )
    return base


def _new_signature(before: PdfFileReader, after: PdfFileReader, base: int) -> _Signature:
    """The one signature added after the main file; raise unless there is exactly one."""
    # Signature fields, filled or not and whatever their /SubFilter: pyHanko's list of
    # signatures holds only those it can validate, and any field's widget shows a stamp.
    fields_before, fields_after = _signature_fields(before), _signature_fields(after)
    added = sorted(set(fields_after) - set(fields_before))
    new = sorted(
        name
        for name, (value, _ref) in fields_after.items()
        if value is not None and fields_before.get(name, (None, None))[0] is None
    )
    if len(new) != 1 or not set(added) <= set(new):
        raise PdfModified(
            "The signed PDF must add exactly one signature to the main file.",
            new_signatures=new,
            new_fields=added,
            signatures_before=sum(value is not None for value, _ref in fields_before.values()),
            signatures_after=sum(value is not None for value, _ref in fields_after.values()),
        )
    (name,) = new
    ref = fields_after[name][1]
    signature = EmbeddedPdfSignature(after, ref.get_object(), name)  # type: ignore[no-untyped-call]
    last = after.xrefs.total_revisions - 1
    coverage = signature.evaluate_signature_coverage()
    if signature.signed_revision != last or coverage is not SignatureCoverageLevel.ENTIRE_FILE:
        raise PdfModified(
            "The new signature must be the last revision and cover the whole file.",
            signature_field=name,
            revision=signature.signed_revision,
            coverage=coverage.name,
        )
    return _Signature(name, ref.reference)


def _check_widget(
    original: bytes, before: PdfFileReader, after: PdfFileReader, signature: _Signature
) -> None:
    """Refuse signature widgets that cover more than their share of the page showing them
    (all of the field's on one page together: four of a fifth each cover it too), one
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
    # a signature adds no page: the walk stops past the main file's own
    for index, page in enumerate(page_leaves(after, most=len(page_leaves(before)))):
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
                shown.append((index, _numbers(placed_widget["/Rect"])))
        page_width, page_height = _size(_page_box(page)) if covered else (0.0, 0.0)
        if covered > MAX_WIDGET_SHARE * page_width * page_height:
            raise PdfModified(
                "The signature's widget covers too much of its page.",
                signature_field=signature.field_name,
                widget_area=round(covered),
                page_area=round(page_width * page_height),
                max_share=MAX_WIDGET_SHARE,
            )
    pages = page_leaves(before)
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


def _check_drawn_in_place(widget: generic.DictionaryObject, signature: _Signature) -> None:
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
    signature: _Signature,
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
        x0, y0, x1, y1 = _numbers(annotation["/Rect"])
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
    original: bytes, signature: _Signature, shown: list[tuple[int, pdfink.Rect]], *, pages: int
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


# What only an annotation or a form field has (an action dictionary has none of them).
_ANNOTATION = frozenset({"/Rect", "/Subtype", "/FT", "/P"})


def _check_nothing_active_added(after: PdfFileReader, base: int) -> None:
    """Refuse an update after the main file that adds what acts (``pdfactive``: a script
    run as page 1 opens, a program launched, a file opened on another machine), or an
    action on an annotation (what clicking the stamp would do): a signature needs none,
    and pyHanko's policy takes a new signature field's keys as form filling, whatever
    they are."""
    for revision in range(base + 1, after.xrefs.total_revisions):
        for ref in after.xrefs.explicit_refs_in_revision(revision):
            added = after.get_object(ref)  # type: ignore[no-untyped-call]
            if not isinstance(added, generic.DictionaryObject):
                continue
            found = active_in(added)
            if "/A" in added and _ANNOTATION & set(added):  # however its /Type is written
                found.add("/A")
            if found:
                raise PdfModified(
                    "The signed PDF adds what acts when it is opened or clicked.",
                    revision=revision,
                    found=sorted(found),
                )


def _check_revisions(after: PdfFileReader, base: int) -> None:
    """Judge every revision after ``base`` against it with the signing-only policy."""
    old = after.get_historical_resolver(base)
    for revision in range(base + 1, after.xrefs.total_revisions):
        try:
            result = SIGNING_ONLY_POLICY.apply(old, after.get_historical_resolver(revision))
        except SuspiciousModification as exc:
            raise PdfModified(
                "The signed PDF changes the main file beyond adding a signature.",
                revision=revision,
                modification_level=ModificationLevel.OTHER.name,
                reason=_first_line(exc),
            ) from exc
        level = result.modification_level
        if level > _ALLOWED:
            raise PdfModified(
                "The signed PDF changes the main file beyond adding a signature.",
                revision=revision,
                modification_level=level.name,
                reason="changes beyond form filling",
            )


class _FormWithFirstSignature(FormUpdatingRule):
    """pyHanko's form rule, also for a main file that has no form yet."""

    def apply(
        self, old: HistoricalResolver, new: HistoricalResolver
    ) -> Iterable[tuple[ModificationLevel, FormUpdate]]:
        if "/AcroForm" in old.root:
            yield from super().apply(old, new)
            return
        context = Context.from_absolute(old, RawPdfPath("/Root", "/AcroForm"))
        _none, acroform = yield from qualify_transforming(
            ModificationLevel.LTA_UPDATES,
            compare_key_refs("/AcroForm", old, old.root, new.root),
            transform=FormUpdate.curry_ref(field_name=None, context_checked=context),
        )
        if acroform is None:
            return
        if not isinstance(acroform, generic.DictionaryObject):
            raise SuspiciousModification("/AcroForm is not a dictionary")
        extra = set(acroform.keys()) - _NEW_ACROFORM_KEYS
        if extra:
            raise SuspiciousModification(f"A new /AcroForm holds {sorted(extra)}")
        empty = generic.DictionaryObject()  # type: ignore[no-untyped-call]
        for key, level in (
            ("/Fields", ModificationLevel.LTA_UPDATES),
            ("/DR", ModificationLevel.FORM_FILLING),
        ):
            _old, value = yield from qualify_transforming(
                level,
                compare_key_refs(key, old, empty, acroform),
                transform=FormUpdate.curry_ref(field_name=None),
            )
            if key == "/DR" and value is not None:
                for ref in new.collect_dependencies(value, since_revision=old.revision + 1):
                    yield level, FormUpdate(ref, field_name=None)
        fields = acroform.get("/Fields", generic.ArrayObject())
        specs = dict(_list_fields(generic.ArrayObject(), fields, old_path=None))
        comparison = FieldComparisonContext(field_specs=specs, old=old, new=new)
        for rule in self.field_rules:
            yield from rule.apply(comparison)


SIGNING_ONLY_POLICY = StandardDiffPolicy(
    global_rules=[
        CatalogModificationRule(),  # type: ignore[no-untyped-call]
        DocInfoRule().as_qualified(ModificationLevel.LTA_UPDATES),
        XrefStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
        ObjectStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
        DSSCompareRule().as_qualified(ModificationLevel.LTA_UPDATES),
        MetadataUpdateRule().as_qualified(  # type: ignore[no-untyped-call]
            ModificationLevel.LTA_UPDATES
        ),
    ],
    form_rule=_FormWithFirstSignature(
        field_rules=[SigFieldCreationRule(), SigFieldModificationRule()],  # type: ignore[no-untyped-call]
        # A signer sets /SigFlags (signatures exist, append only) in a form it finds.
        ignored_acroform_keys=ACROFORM_EXEMPT_STRICT_COMPARISON | {"/SigFlags"},
    ),
)
"""pyHanko's default policy without form filling other than signing."""


# -- helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signature:
    field_name: str
    ref: generic.Reference  # the signature field


def _signature_fields(
    reader: PdfFileReader,
) -> dict[str, tuple[generic.PdfObject | None, generic.IndirectObject]]:
    """Every signature field by name: its value (``None`` when empty) and reference."""
    return {name: (value, ref) for name, value, ref in fields.enumerate_sig_fields(reader)}


def page_leaves(reader: PdfFileReader, most: int | None = None) -> list[generic.DictionaryObject]:
    """The pages of ``reader``'s page tree, in order, walked once (ISO 32000 7.7.3.2).

    Not by index (``find_page_for_modification(i)`` walks from the root each time: a
    letter of thousands of pages took minutes), nor as many as a ``/Count`` claims:
    ValueError for a node whose ``/Count`` is not the pages under it (readers that skip
    by it and readers that walk would show other pages: a page turned under a node
    counting none), a tree that loops, is not made of dictionaries, nests deeper than
    ``_MAX_TREE_DEPTH``, or holds more than ``most``."""
    leaves: list[generic.DictionaryObject] = []
    seen: set[tuple[int, int]] = set()
    # each inner node: (what its /Count says, the pages found under it, its parent's index)
    inner: list[list[Any]] = []
    pending: list[tuple[Any, int, int]] = [(reader.root.raw_get("/Pages"), 0, -1)]
    while pending:
        node, depth, parent = pending.pop()
        if isinstance(node, generic.IndirectObject):
            ref = (node.idnum, node.generation)
            if ref in seen:
                raise ValueError("the page tree holds a node twice (a loop)")
            seen.add(ref)
            node = node.get_object()  # type: ignore[no-untyped-call]
        if not isinstance(node, generic.DictionaryObject) or depth > _MAX_TREE_DEPTH:
            raise ValueError("the page tree is not a tree of dictionaries")
        page = str(node.get("/Type", "")) == "/Page"
        if page and "/Kids" in node:
            # a page to some readers, the pages under it to others: not one letter
            raise ValueError("a page of the page tree has pages under it (/Kids)")
        kids = None if page else node.get("/Kids")
        if kids is None:
            leaves.append(node)
            if most is not None and len(leaves) > most:
                raise ValueError(f"the page tree holds more than {most} pages")
            while parent >= 0:
                inner[parent][1] += 1
                parent = inner[parent][2]
        elif isinstance(kids, generic.ArrayObject):
            counted = node["/Count"] if "/Count" in node else None  # noqa: SIM401 (resolved)
            inner.append([counted, 0, parent])
            index = len(inner) - 1
            pending += [(kids.raw_get(i), depth + 1, index) for i in reversed(range(len(kids)))]
        else:
            raise ValueError("the page tree's /Kids is not an array")
    for index, (counted, held, _parent) in enumerate(inner):
        number = isinstance(counted, numbers.Number) and not isinstance(counted, bool)
        if not number or counted != held:
            said = counted if number else "no number of"
            whose = "its page tree" if index == 0 else "a node of its page tree"
            raise ValueError(f"{whose} counts {said} pages but holds {held}")
    return leaves


_MAX_TREE_DEPTH = 64  # levels of a page tree; writers balance theirs to a few


def _page_box(page: generic.DictionaryObject) -> Any:
    box = inherited(page, "/CropBox", "/MediaBox")
    if box is None:
        raise ValueError("the widget's page has no MediaBox")
    return box


def inherited(page: Any, *names: str) -> Any:
    """The first of ``names`` the page has, else the nearest of its parents has (ISO 32000
    7.7.3.4), or None; ValueError for a /Parent chain longer than any tree nests (a loop:
    it would be followed for ever) or not made of dictionaries."""
    node: Any = page
    for _ in range(_MAX_TREE_DEPTH + 2):
        if isinstance(node, generic.IndirectObject):
            node = node.get_object()  # type: ignore[no-untyped-call]
        if node is None:
            return None
        if not isinstance(node, generic.DictionaryObject):
            raise ValueError("the page tree is not a tree of dictionaries")
        for name in names:
            if name in node:
                return node[name]
        node = node.raw_get("/Parent") if "/Parent" in node else None
    raise ValueError("a page's /Parent chain loops")


def _numbers(box: Any) -> tuple[float, float, float, float]:
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
    x0, y0, x1, y1 = _numbers(box)
    return abs(x1 - x0), abs(y1 - y0)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
