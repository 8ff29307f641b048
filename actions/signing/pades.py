"""PAdES signatures inside the PDF of a document: sign with a visible stamp, verify.

A signature is a PAdES baseline B-B signature (``/SubFilter /ETSI.CAdES.detached``) added
as an incremental update, so earlier revisions and earlier signatures stay intact. Its
widget on page 1 shows a stamp with the signer's name, position, agency and signing time
(Decree 30/2020/NĐ-CP: the signer's signature goes near the bottom right; an agency's
e-copy signature would go top right and is not made here).

The CMS inside is made by the same cached signer as ``cms.sign_manifest``, so keys and
chains are passed the same way. PAdES forbids the signingTime attribute: the claimed
signing time is the signature dictionary's ``/M`` and the time printed in the stamp.

Signing and verifying stay in one module (over 400 lines): both read the same signature
dictionary fields and stamp layout, and a change to one must be seen beside the other.

Verification checks every signature in the file, in this order, and raises the first
failure, with the same errors as ``verification.verify_manifest_signature``:

    not a signed PDF         SignatureError
    signature invalid        SignatureError
    signed bytes changed     ManifestMismatch
    certificate path         CertificateRevoked, CertificateExpired,
                             CertificateNotYetValid, ChainUntrusted, KeyUsageInvalid
    changed after signing    PdfModified (the last signature must cover the whole
                             file; an earlier one may only be followed by form filling
                             and further signatures, as pyHanko's diff analysis judges;
                             a signature an earlier revision held that the form no
                             longer holds, taken off or replaced, is checked first)
    signing time (/M)        SignatureError when after ``at``; CertificateExpired /
                             CertificateNotYetValid when outside the certificate's validity

The stamp font is DejaVu Sans (see ``fonts/LICENSE``) rescaled to 1000 units per em,
because pyHanko 0.38 writes glyph widths in font units as if every font had 1000 (DejaVu
has 2048 and was drawn twice as wide), and cut down to Latin and Vietnamese without
OpenType layout tables, because pyHanko subsets the font again for every signature
(0.4 s with the full font). Stamp text is NFC-normalised so every letter is one
precomposed glyph. The file was made once with fontTools::

    font = TTFont("workflow/samples/fonts/DejaVuSans.ttf")
    scale_upem(font, 1000)
    options = subset.Options()
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "kern", "MATH"]
    options.name_IDs = options.name_languages = ["*"]
    options.notdef_outline, options.hinting = True, False
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[*range(0x20, 0x7F), *range(0xA0, 0x250),
        *range(0x300, 0x370), *range(0x1E00, 0x1F00), *range(0x2000, 0x2070), 0x20AB])
    subsetter.subset(font)
    font.save("actions/signing/fonts/DejaVuSans-vi-upem1000.ttf")
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.font.api import FontEngineFactory
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko.stamp import TextStampStyle

from congvan.states.certificates import CertificateDescription
from congvan.states.errors import (
    InvalidInput,
    ManifestMismatch,
    PdfModified,
    SignatureError,
)
from congvan.states.timeliness import VIETNAM

from . import pdfink
from .certpath import (
    SIGNER_KEY_USAGE,
    check_path,
    check_signing_time,
    path_error,
    validation_context,
)
from .cms import DIGEST, SigningKey, asn1_cert, require_aware, run_sync, signer_for
from .description import describe
from .pdfchanges import UNREADABLE
from .pdfpages import inherited, page_leaves
from .pdfsignatures import signature_removed
from .pdfstamps import MAX_WIDGET_SHARE
from .strict import check_strict_embedded_cms
from .verification import _check_arguments

STAMP_FONT = "fonts/DejaVuSans-vi-upem1000.ttf"
# The same size in the font engine and the text box, or lines 2+ drift right (pyHanko #733).
STAMP_FONT_SIZE = 8
STAMP_LEADING = 10
# The stamp's size in points, and its distance from the page's right and bottom edges:
# inside the bottom margin (2 cm) of a letter, right-aligned with its text (1.5 cm).
STAMP_WIDTH, STAMP_HEIGHT = 250.0, 50.0
STAMP_RIGHT, STAMP_BOTTOM = 42.5, 4.0
STAMP_TEXT = "Ký bởi: {name}\nChức vụ: {position}\nCơ quan: {agency}\nThời gian ký: {time}"
# What may follow an earlier signature: form filling and more signatures, nothing else.
_ALLOWED_AFTER_SIGNING = (
    ModificationLevel.NONE,
    ModificationLevel.LTA_UPDATES,
    ModificationLevel.FORM_FILLING,
)

Box = tuple[float, float, float, float]
# Bytes of a CMS besides its certificates: about 1.1 KiB with RSA-2048 and 1.4 KiB with
# RSA-4096; 4 KiB leaves room for long issuer names. Unused room is zero-filled.
_CMS_OVERHEAD = 4096


@dataclass(frozen=True)
class PdfSigner:
    """One signature of a PDF: its field, who signed, the time claimed (``/M``)."""

    field_name: str
    signer: CertificateDescription
    signing_time: datetime | None


@dataclass(frozen=True)
class PdfVerdict:
    """What was checked about the last signature of a PDF whose signatures all verified;
    ``signed_by`` names each of them, in the order they were added."""

    intact: bool  # the signed byte ranges hash to the signed digest
    valid: bool  # the signature verifies with the certificate's key
    trusted: bool  # the certificate chains to a trust root, unrevoked at ``checked_at``
    covers_entire_file: bool  # nothing was appended after the last signature
    coverage: str  # pyHanko's SignatureCoverageLevel name, e.g. ENTIRE_FILE
    field_name: str
    subfilter: str  # /ETSI.CAdES.detached for PAdES
    signing_time: datetime | None  # /M, as the signer claims it
    checked_at: datetime
    signer: CertificateDescription
    signature_count: int  # signatures in the file, all verified
    # A certificate of the last signature's path revoked after ``checked_at``.
    later_revocation: Mapping[str, str | None] | None = None
    signed_by: tuple[PdfSigner, ...] = ()


# -- signing ---------------------------------------------------------------------------


@cache
def _stamp_font_bytes() -> bytes:
    return resources.files("congvan.actions.signing").joinpath(STAMP_FONT).read_bytes()


@cache
def _stamp_font_characters() -> frozenset[int]:
    """The code points the stamp's font draws."""
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(_stamp_font_bytes()))
    return frozenset(font.getBestCmap() or {})


def unshown(text: str) -> list[str]:
    """The characters of ``text`` the signer's stamp cannot draw (a glyph its font lacks:
    it would be left out of the stamp without a word), each once, in order."""
    drawn = _stamp_font_characters()
    nfc = unicodedata.normalize("NFC", text)
    return list(dict.fromkeys(ch for ch in nfc if not ch.isspace() and ord(ch) not in drawn))


@dataclass(frozen=True)
class _StampFont(FontEngineFactory):
    """GlyphAccumulatorFactory over the packaged font's bytes (no file handle left open)."""

    font_size: int = STAMP_FONT_SIZE

    def create_font_engine(self, writer: Any, obj_stream: Any = None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(
            writer=writer,
            font_handle=io.BytesIO(_stamp_font_bytes()),
            font_size=self.font_size,
            obj_stream=obj_stream,
        )


_STAMP_STYLE = TextStampStyle(
    stamp_text="%(text)s",
    text_box_style=TextBoxStyle(
        font=_StampFont(STAMP_FONT_SIZE),
        font_size=STAMP_FONT_SIZE,
        leading=STAMP_LEADING,
        box_layout_rule=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins(left=4, right=4, top=4, bottom=4),
        ),
    ),
    border_width=1,
    background=None,  # the default is pyHanko's logo
)


def stamp_text(*, signer_name: str, position: str, agency_name: str, signing_time: datetime) -> str:
    """The stamp's four lines, NFC-normalised, with the time as people in Vietnam read it,
    to the second, its offset said (``23:14:10 06/12/2026 +07:00``)."""
    require_aware(signing_time, "signing_time")
    text = STAMP_TEXT.format(
        name=" ".join(signer_name.split()),
        position=" ".join(position.split()),
        agency=" ".join(agency_name.split()),
        time=signing_time.astimezone(VIETNAM).strftime("%H:%M:%S %d/%m/%Y +07:00"),
    )
    return unicodedata.normalize("NFC", text)


def default_box(pdf: bytes) -> Box:
    """Where the signer's stamp goes on page 1: inside the margin, in the first corner
    where the page shows nothing (``pdfink``): bottom right, bottom left, top right, top
    left. ValueError when every one of them would stand over the letter."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    boxes = _stamp_boxes(reader)
    placements = [(0, box) for box in boxes]
    try:
        inked = {c.rect for c in pdfink.ink_under(pdf, placements, pages=len(page_leaves(reader)))}
    except pdfink.Unrenderable as exc:
        raise ValueError(str(exc)) from exc
    for box in boxes:
        if box not in inked:
            return box
    raise ValueError(
        f"page 1 shows something in each corner where the signer's stamp may go "
        f"({STAMP_WIDTH:g} x {STAMP_HEIGHT:g} pt inside the margin): the stamp would stand "
        "over the letter; leave a corner blank"
    )


async def async_sign_pdf(
    pdf: bytes,
    *,
    key: SigningKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    signer_name: str,
    position: str,
    agency_name: str,
    signing_time: datetime,
    box: Box | None = None,
    field_name: str | None = None,
) -> bytes:
    """Add a PAdES signature with a visible stamp on page 1; return the signed PDF.

    ``chain`` is embedded as given; ``signing_time`` (timezone-aware) becomes ``/M`` and is
    printed in the stamp at +07:00. ``box`` (x0, y0, x1, y1 in points) defaults to
    ``default_box``; ``field_name`` to ``Signature<n>``, the next free number.
    """
    require_aware(signing_time, "signing_time")
    signer = signer_for(key, cert, chain)
    text = stamp_text(
        signer_name=signer_name,
        position=position,
        agency_name=agency_name,
        signing_time=signing_time,
    )
    missing = unshown(text)
    if missing:
        raise InvalidInput(
            f"The signer's stamp cannot show {' '.join(missing)} (its font has no such "
            "letters): the stamp would leave them out; write the name, position and agency "
            "in Vietnamese letters.",
            characters=missing,
        )
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        taken = {name for name, _value, _ref in fields.enumerate_sig_fields(writer.prev)}
        box = box or default_box(pdf)
    except UNREADABLE as exc:
        raise InvalidInput(f"The file is not a PDF that can be signed: {exc}") from exc
    if field_name is None:
        field_name = next(
            f"Signature{n}" for n in range(1, len(taken) + 2) if f"Signature{n}" not in taken
        )
    name = unicodedata.normalize("NFC", " ".join(signer_name.split()))
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm=DIGEST,
        subfilter=fields.SigSeedSubFilter.PADES,  # ETSI.CAdES.detached
        name=name,
    )
    pdf_signer = signers.PdfSigner(
        meta,
        signer=signer,
        stamp_style=_STAMP_STYLE,
        # pyHanko types the box as ints; it writes floats as they are.
        new_field_spec=fields.SigFieldSpec(sig_field_name=field_name, on_page=0, box=box),  # type: ignore[arg-type]
    )
    # PdfSigner.async_sign_pdf, but with our signing time instead of the local clock's.
    session = pdf_signer.init_signing_session(writer)
    session.system_time = signing_time.astimezone(VIETNAM)
    validation_info = await session.perform_presign_validation(writer)
    # Room for the CMS, in hex digits: its certificates plus ample space for the rest.
    # pyHanko would otherwise make a whole dummy signature to estimate it (a third of the
    # signing time).
    embedded = sum(len(c.public_bytes(Encoding.DER)) for c in (cert, *chain))
    bytes_reserved = 2 * (_CMS_OVERHEAD + embedded)
    tbs = session.prepare_tbs_document(
        validation_info=validation_info,
        bytes_reserved=bytes_reserved,
        appearance_text_params={"text": text},
    )
    output = io.BytesIO()
    digest, res_output = tbs.digest_tbs_document(output=output)
    post_signing = await tbs.perform_signature(
        document_digest=digest.document_digest,
        pdf_cms_signed_attrs=PdfCMSSignedAttributes(signing_time=session.system_time),
    )
    await post_signing.post_signature_processing(res_output)
    return output.getvalue()


def sign_pdf(
    pdf: bytes,
    *,
    key: SigningKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    signer_name: str,
    position: str,
    agency_name: str,
    signing_time: datetime,
    box: Box | None = None,
    field_name: str | None = None,
) -> bytes:
    """Sign a PDF; see ``async_sign_pdf``. Not callable inside an event loop."""
    return run_sync(  # type: ignore[no-any-return]
        async_sign_pdf(
            pdf,
            key=key,
            cert=cert,
            chain=chain,
            signer_name=signer_name,
            position=position,
            agency_name=agency_name,
            signing_time=signing_time,
            box=box,
            field_name=field_name,
        )
    )


# -- verification ----------------------------------------------------------------------


async def async_verify_pdf(
    pdf: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    crls: Iterable[x509.CertificateRevocationList | bytes],
    at: datetime,
    intermediates: Sequence[x509.Certificate] = (),
) -> PdfVerdict:
    """Check every signature of ``pdf`` at ``at``; describe the last one.

    ``crls`` must hold a current CRL of every CA on each path; nothing is fetched.
    Raises the ``SignatureError`` subclass of the first check that fails.
    """
    crl_der = _check_arguments(crls, at, None)
    roots = [asn1_cert(c) for c in trust_roots]
    cas = [asn1_cert(c) for c in intermediates]  # held here: a path may pass through them
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
        removed = signature_removed(reader, {bytes(s.pkcs7_content) for s in signatures})
    except UNREADABLE as exc:
        raise SignatureError(f"The file is not a readable PDF: {exc}") from exc
    if removed is not None:
        raise PdfModified(
            f"A revision after the signature in field {removed.field_name!r} took it off the "
            "form, or put another in its place: the PDF was changed after it was signed.",
            **_who(removed),
        )
    if not signatures:
        raise SignatureError("The PDF carries no signature.")

    verdict: PdfVerdict | None = None
    signed_by: list[PdfSigner] = []
    for index, embedded in enumerate(signatures):
        last = index == len(signatures) - 1
        check_strict_embedded_cms(embedded.pkcs7_content)
        try:
            status = await async_validate_pdf_signature(
                embedded,
                signer_validation_context=validation_context(roots, crl_der, at, cas),
                key_usage_settings=SIGNER_KEY_USAGE,
            )
        except SignatureValidationError as exc:
            raise SignatureError(
                f"The signature is malformed: {exc.failure_message}",
                signature_field=embedded.field_name,
            ) from exc
        except UNREADABLE as exc:
            raise SignatureError(
                f"The signature is malformed: {exc}", signature_field=embedded.field_name
            ) from exc

        cert = status.signing_cert
        signer = describe(cert)
        who = {
            "signer": signer.common_name,
            "serial_number": signer.serial_number,
            "signature_field": embedded.field_name,
        }
        if not status.valid:
            raise SignatureError("The signature does not verify with the signer's key.", **who)
        if not status.intact:
            raise ManifestMismatch("The signed bytes of the PDF were changed.", **who)
        if not (status.trusted and status.trust_problem_indic is None):
            raise await path_error(status, embedded.signed_data, roots, crl_der, at, who, cas)
        later = check_path(status, crl_der, at, signer, "signer", who)

        coverage = status.coverage
        if last and coverage is not SignatureCoverageLevel.ENTIRE_FILE:
            raise PdfModified(
                "The PDF was changed after its last signature.",
                coverage=coverage.name if coverage else None,
                **who,
            )
        if not last and (
            not status.docmdp_ok or status.modification_level not in _ALLOWED_AFTER_SIGNING
        ):
            level = status.modification_level
            raise PdfModified(
                "The PDF was changed after this signature beyond adding signatures.",
                modification_level=level.name if level else None,
                **who,
            )

        signing_time = embedded.self_reported_timestamp
        if signing_time is not None:
            check_signing_time(signing_time, at, cert, signer, who)
        signed_by.append(PdfSigner(embedded.field_name, signer, signing_time))

        verdict = PdfVerdict(
            intact=True,
            valid=True,
            trusted=True,
            covers_entire_file=coverage is SignatureCoverageLevel.ENTIRE_FILE,
            coverage=coverage.name if coverage else "NONE",
            field_name=embedded.field_name,
            subfilter=str(embedded.sig_object.get("/SubFilter", "")),
            signing_time=signing_time,
            checked_at=at,
            signer=signer,
            signature_count=len(signatures),
            later_revocation=MappingProxyType(later.as_dict()) if later else None,
            signed_by=tuple(signed_by),
        )
    assert verdict is not None
    return verdict


def _who(embedded: EmbeddedPdfSignature) -> dict[str, str]:
    """The signature field and, when readable, its signer, for an error's details."""
    who = {"signature_field": embedded.field_name}
    try:
        signer = describe(embedded.signer_cert)
    except UNREADABLE:
        return who
    return {"signer": signer.common_name or "", "serial_number": signer.serial_number, **who}


def verify_pdf(
    pdf: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    crls: Iterable[x509.CertificateRevocationList | bytes],
    at: datetime,
    intermediates: Sequence[x509.Certificate] = (),
) -> PdfVerdict:
    """Verify a signed PDF; see ``async_verify_pdf``. Not callable inside an event loop."""
    return run_sync(  # type: ignore[no-any-return]
        async_verify_pdf(
            pdf, trust_roots=trust_roots, crls=crls, at=at, intermediates=intermediates
        )
    )


# -- helpers ---------------------------------------------------------------------------


def _stamp_boxes(reader: PdfFileReader) -> list[Box]:
    """Where the stamp may go on page 1, in order of preference: the corners, inside the
    margin (right-aligned with the text, or left-aligned)."""
    x0, y0, x1, y1 = _page_box(reader)
    width, height = x1 - x0, y1 - y0
    # The stamp inside the page, and no more of it than a signature's widget may cover
    # (pdfchanges): else the signed file is refused as if someone had painted over it.
    if (
        width < STAMP_RIGHT + STAMP_WIDTH
        or height < STAMP_BOTTOM + STAMP_HEIGHT
        or MAX_WIDGET_SHARE * width * height < STAMP_WIDTH * STAMP_HEIGHT
    ):
        raise ValueError(
            f"page 1 ({width:g} x {height:g} pt) has no room for the signer's stamp "
            f"({STAMP_WIDTH:g} x {STAMP_HEIGHT:g} pt, at most {MAX_WIDGET_SHARE:.0%} of the page)"
        )
    right, left = x1 - STAMP_RIGHT - STAMP_WIDTH, x0 + STAMP_RIGHT
    bottom, top = y0 + STAMP_BOTTOM, y1 - STAMP_BOTTOM - STAMP_HEIGHT
    return [(x, y, x + STAMP_WIDTH, y + STAMP_HEIGHT) for y in (bottom, top) for x in (right, left)]


def _page_box(reader: PdfFileReader) -> Box:
    """What page 1 shows: its CropBox clipped to its MediaBox (ISO 32000 14.11.2), each
    inherited from its parents if need be; ValueError when there is none, or when the page
    is turned (its /Rotate), where the stamp would stand sideways on the page as shown."""
    page = reader.find_page_for_modification(0)[0].get_object()  # type: ignore[no-untyped-call]
    media = inherited(page, "/MediaBox")
    if media is None:
        raise ValueError("page 1 has no MediaBox")
    shown = _ordered(_rectangle(media, "/MediaBox"))
    crop = inherited(page, "/CropBox")
    if crop is not None:
        c = _ordered(_rectangle(crop, "/CropBox"))
        shown = (max(shown[0], c[0]), max(shown[1], c[1]), min(shown[2], c[2]), min(shown[3], c[3]))
        if shown[0] >= shown[2] or shown[1] >= shown[3]:
            raise ValueError("page 1's /CropBox lies outside its /MediaBox: nothing is shown")
    rotate = inherited(page, "/Rotate")
    if rotate is None:
        return shown
    # Written as an integer or as a real (90.0): readers turn the page for either
    if not isinstance(rotate, generic.NumberObject | generic.FloatObject) or not math.isfinite(
        rotate
    ):
        raise ValueError("page 1's /Rotate is not a number of degrees")
    if float(rotate) % 360 != 0:
        raise ValueError(
            f"page 1 is turned (/Rotate {float(rotate):g}): the signer's stamp would stand "
            "sideways; save the letter with its pages upright"
        )
    return shown


def _ordered(box: Box) -> Box:
    x0, y0, x1, y1 = box
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _rectangle(box: Any, name: str) -> Box:
    """A PDF rectangle's four numbers (ISO 32000 7.9.5), or ValueError naming the box."""
    if not isinstance(box, generic.ArrayObject) or len(box) != 4:
        raise ValueError(f"page 1's {name} is not a rectangle of four numbers")
    values = [box[i] for i in range(4)]  # indexing resolves indirect entries
    if not all(
        isinstance(v, generic.NumberObject | generic.FloatObject) and math.isfinite(v)
        for v in values
    ):
        raise ValueError(f"page 1's {name} is not a rectangle of four numbers")
    x0, y0, x1, y1 = (float(v) for v in values)
    return x0, y0, x1, y1


def stamp_problem(pdf: bytes) -> str | None:
    """Why the signer's stamp cannot go on ``pdf``'s first page (no page box, a malformed
    one, or one too small), or None: what review asks before the file reaches a signer."""
    try:
        default_box(pdf)
    except UNREADABLE as exc:
        return str(exc)
    return None
