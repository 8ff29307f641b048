"""Which signatures a PDF's revisions hold: those its form holds now, and each one the form
of an earlier revision held, which an update may have taken off the form or replaced in
its field (its widget may still show its stamp). Read to verify (``pades``) and to name a
signature's signer (``congvan verify FILE``), trusting nothing here.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from .pdfchanges import UNREADABLE


def _earlier_signatures(reader: PdfFileReader) -> Iterator[EmbeddedPdfSignature]:
    """The signatures the form of each earlier revision held, oldest revision first."""
    for revision in range(reader.xrefs.total_revisions - 1):
        resolver = reader.get_historical_resolver(revision)
        for name, _value, ref in fields.enumerate_sig_fields(resolver, filled_status=True):
            if ref is not None:
                yield EmbeddedPdfSignature(reader, ref.get_object(), name)


def signature_removed(reader: PdfFileReader, kept: set[bytes]) -> EmbeddedPdfSignature | None:
    """A signature an earlier revision held that the file's form no longer holds (``kept``:
    the CMS of each it holds): an update rewrote ``/AcroForm /Fields`` without it, or put
    another signature in its field. Its widget may still show its stamp while the
    signature itself is no longer the form's."""
    return next(
        (e for e in _earlier_signatures(reader) if bytes(e.pkcs7_content) not in kept), None
    )


def signature_cms(pdf: bytes, field_name: str | None = None) -> bytes:
    """The CMS of the signature in ``field_name`` (the last signature's when None), in the
    file's form or one an earlier revision had: to name its signer, trusting nothing. Empty
    when there is none or the file cannot be read."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        found = [s for s in reader.embedded_signatures if field_name in (None, s.field_name)]
        if not found and field_name is not None:
            found = [e for e in _earlier_signatures(reader) if e.field_name == field_name]
        return bytes(found[-1].pkcs7_content) if found else b""
    except (*UNREADABLE, OSError):
        return b""
