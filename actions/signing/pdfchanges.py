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
where the widget stands is judged apart (``pdfstamps``): on no more than a share of its
page, where the main file's page shows nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

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

from .pdfactive import active_in
from .pdfpages import page_leaves
from .pdfstamps import SignatureField, check_stamps

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
        signature = _new_signature(before, after, base)
        # a signature adds no page: the walk stops past the main file's own
        pages = page_leaves(before)
        shown = page_leaves(after, most=len(pages))
        check_stamps(original, signature, pages, shown)
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


def _new_signature(before: PdfFileReader, after: PdfFileReader, base: int) -> SignatureField:
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
    return SignatureField(name, ref.reference)


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


def _signature_fields(
    reader: PdfFileReader,
) -> dict[str, tuple[generic.PdfObject | None, generic.IndirectObject]]:
    """Every signature field by name: its value (``None`` when empty) and reference."""
    return {name: (value, ref) for name, value, ref in fields.enumerate_sig_fields(reader)}


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
