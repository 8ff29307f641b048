"""Incremental updates to a PDF, as a signer's tool could make them before or after signing.

Each function takes the PDF's bytes and returns them with one more revision appended;
none rewrites earlier bytes. ``token_sign`` stands in for a signer's own tool: pyHanko
directly, not congvan's ``pades.sign_pdf``, with a widget on any page and a plain stamp.
"""

from __future__ import annotations

import asyncio
import functools
import io
import itertools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pypdf import PdfWriter

from congvan.actions.signing import pki

Box = tuple[float, float, float, float]


def _update(pdf: bytes, edit: Callable[[IncrementalPdfFileWriter], None]) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    edit(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _stream(
    writer: IncrementalPdfFileWriter, data: bytes, **entries: object
) -> generic.IndirectObject:
    stream = generic.StreamObject(
        {pdf_name(f"/{k}"): v for k, v in entries.items()},  # type: ignore[misc]
        stream_data=data,
    )
    return writer.add_object(stream)


def paint_over(pdf: bytes, page: int = 0) -> bytes:
    """A white box over the page's upper half, with other words written on it."""
    return draw_on(
        pdf,
        b"q 1 1 1 rg 0 421 595 421 re f Q " + _words(72, 760, "Noi dung da bi thay doi", 14),
        page,
    )


def written_at(pdf: bytes, x: float, y: float, text: str = "Trang 1", page: int = 0) -> bytes:
    """Words written on ``page`` at (x, y), 10 pt: a footer, a page number."""
    return draw_on(pdf, _words(x, y, text, 10), page)


def filled(pdf: bytes, box: Box, grey: float = 0.0, page: int = 0) -> bytes:
    """A rectangle filled in ``grey`` (0 black, 1 white) drawn on ``page``."""
    x0, y0, x1, y1 = box
    return draw_on(pdf, f"q {grey} g {x0} {y0} {x1 - x0} {y1 - y0} re f Q".encode(), page)


def _words(x: float, y: float, text: str, size: int) -> bytes:
    return f"BT /Helv {size} Tf {x} {y} Td ({text}) Tj ET".encode()


_drawn = itertools.count(1)


def draw_on(pdf: bytes, content: bytes, page: int) -> bytes:
    """``content`` (Helvetica as /Helv) drawn on ``page`` over what it shows, as an update
    (the font named anew each time: a page's resources hold each name once)."""
    name = f"/Helv{next(_drawn)}"
    content = content.replace(b"/Helv ", f"{name} ".encode())
    font = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Font"),
            pdf_name("/Subtype"): pdf_name("/Type1"),
            pdf_name("/BaseFont"): pdf_name("/Helvetica"),
        }
    )
    resources = generic.DictionaryObject(
        {pdf_name("/Font"): generic.DictionaryObject({pdf_name(name): font})}
    )

    def edit(writer: IncrementalPdfFileWriter) -> None:
        writer.add_stream_to_page(page, _stream(writer, content), resources=resources)  # type: ignore[no-untyped-call]

    return _update(pdf, edit)


def add_annotation(
    pdf: bytes,
    subtype: str = "/Square",
    page: int = 0,
    *,
    rect: Box = (72.0, 600.0, 520.0, 780.0),
    appearance: bool = True,
    entries: Mapping[str, generic.PdfObject] | None = None,
) -> bytes:
    """An annotation that draws on the page: a filled square, or free text; without its
    ``appearance`` stream, as readers that draw one from its entries (or none) see it;
    with more ``entries`` (a line's /L, a polygon's /Vertices)."""

    def edit(writer: IncrementalPdfFileWriter) -> None:
        page_ref = writer.find_page_for_modification(page)[0]  # type: ignore[no-untyped-call]
        box = generic.ArrayObject(generic.FloatObject(v) for v in rect)
        drawn = _stream(
            writer,
            b"q 1 1 1 rg 0 0 448 180 re f 0 g BT /Helv 14 Tf 10 90 Td (Da duyet) Tj ET Q",
            Type=pdf_name("/XObject"),
            Subtype=pdf_name("/Form"),
            BBox=generic.ArrayObject(generic.FloatObject(v) for v in (0, 0, 448, 180)),
        )
        annotation = generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Annot"),
                pdf_name("/Subtype"): pdf_name(subtype),
                pdf_name("/Rect"): box,
                pdf_name("/P"): page_ref,
                pdf_name("/F"): generic.NumberObject(4),
                pdf_name("/Contents"): pdf_string("Đã duyệt"),
                pdf_name("/IC"): generic.ArrayObject([generic.FloatObject(1)] * 3),
                pdf_name("/DA"): pdf_string("/Helv 14 Tf 0 g"),
            }
        )
        if appearance:
            annotation[pdf_name("/AP")] = generic.DictionaryObject({pdf_name("/N"): drawn})
        for name, value in (entries or {}).items():
            annotation[pdf_name(name)] = value
        writer.register_annotation(page_ref, writer.add_object(annotation))  # type: ignore[no-untyped-call]

    return _update(pdf, edit)


def _text_appearance(writer: IncrementalPdfFileWriter, value: str) -> generic.IndirectObject:
    return _stream(
        writer,
        b"/Tx BMC BT /Helv 12 Tf 2 6 Td (" + value.encode("latin-1") + b") Tj ET EMC",
        Type=pdf_name("/XObject"),
        Subtype=pdf_name("/Form"),
        BBox=generic.ArrayObject(generic.FloatObject(v) for v in (0, 0, 200, 20)),
    )


def with_text_field(pdf: bytes, name: str, value: str) -> bytes:
    """A form (the file had none) with one filled text field shown on page 1."""

    def edit(writer: IncrementalPdfFileWriter) -> None:
        page_ref = writer.find_page_for_modification(0)[0]  # type: ignore[no-untyped-call]
        field = generic.DictionaryObject(
            {
                pdf_name("/FT"): pdf_name("/Tx"),
                pdf_name("/T"): pdf_string(name),
                pdf_name("/V"): pdf_string(value),
                pdf_name("/DA"): pdf_string("/Helv 12 Tf 0 g"),
                pdf_name("/Type"): pdf_name("/Annot"),
                pdf_name("/Subtype"): pdf_name("/Widget"),
                pdf_name("/F"): generic.NumberObject(4),
                pdf_name("/Rect"): generic.ArrayObject(
                    generic.FloatObject(v) for v in (72, 700, 272, 720)
                ),
                pdf_name("/P"): page_ref,
                pdf_name("/AP"): generic.DictionaryObject(
                    {pdf_name("/N"): _text_appearance(writer, value)}
                ),
            }
        )
        field_ref = writer.add_object(field)
        writer.register_annotation(page_ref, field_ref)  # type: ignore[no-untyped-call]
        acroform = generic.DictionaryObject({pdf_name("/Fields"): generic.ArrayObject([field_ref])})
        writer.root[pdf_name("/AcroForm")] = writer.add_object(acroform)
        writer.update_root()

    return _update(pdf, edit)


def change_text_field(pdf: bytes, name: str, value: str) -> bytes:
    """The named text field's value and appearance, changed."""

    def edit(writer: IncrementalPdfFileWriter) -> None:
        for ref in writer.root["/AcroForm"]["/Fields"]:
            field = ref.get_object()
            if field["/T"] == name:
                field[pdf_name("/V")] = pdf_string(value)
                field[pdf_name("/AP")] = generic.DictionaryObject(
                    {pdf_name("/N"): _text_appearance(writer, value)}
                )
                writer.update_container(field)  # type: ignore[no-untyped-call]
                return
        raise KeyError(name)

    return _update(pdf, edit)


def add_signature_field(
    pdf: bytes, name: str, box: Box = (42.5, 4.0, 292.5, 54.0), page: int = 0
) -> bytes:
    """An empty signature field with a widget on ``page``: a place prepared for a signature."""

    def edit(writer: IncrementalPdfFileWriter) -> None:
        spec = fields.SigFieldSpec(sig_field_name=name, on_page=page, box=box)  # type: ignore[arg-type]
        fields.append_signature_field(writer, spec)

    return _update(pdf, edit)


def token_sign(
    pdf: bytes,
    *,
    key: pki.PrivateKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    signing_time: datetime,
    page: int = 0,
    box: Box = (302.78, 4.0, 552.78, 54.0),  # where the letter shows nothing
    field_name: str = "TokenSignature",
    field_keys: Mapping[str, generic.PdfObject] | None = None,
    listed: bool = True,
) -> bytes:
    """``pdf`` signed (PAdES B-B) with a visible widget at ``box`` on ``page``; with
    ``field_keys``, the signature field (its widget) made in the signing revision with
    those keys too, as a signer's tool may write them (an action, say); not ``listed``,
    its widget left out of the page's annotations (it names its page, /P, all the same)."""
    spec = fields.SigFieldSpec(sig_field_name=field_name, on_page=page, box=box)  # type: ignore[arg-type]
    der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    signing_cert = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
    signer = signers.SimpleSigner(
        signing_cert=signing_cert,
        signing_key=asn1_keys.PrivateKeyInfo.load(der),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in chain]
        ),
    )
    pdf_signer = signers.PdfSigner(
        signers.PdfSignatureMetadata(
            field_name=field_name, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
        ),
        signer=signer,
        stamp_style=TextStampStyle(stamp_text="Ky boi: %(signer)s", background=None),
        # (a field made with its keys beforehand, in the same revision, is filled)
        new_field_spec=None if field_keys is not None else spec,
    )

    async def sign() -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        if field_keys is not None:
            fields.append_signature_field(writer, spec)
            ref = _field_named(writer, field_name)
            field = ref.get_object()
            for name, value in field_keys.items():
                field[pdf_name(name)] = value
            writer.mark_update(ref)  # type: ignore[no-untyped-call]
            if not listed:
                page_ref = writer.find_page_for_modification(page)[0]  # type: ignore[no-untyped-call]
                annotations = page_ref.get_object()["/Annots"]
                kept = [a for a in annotations if getattr(a, "reference", None) != ref.reference]
                page_ref.get_object()[pdf_name("/Annots")] = generic.ArrayObject(kept)
                writer.mark_update(page_ref)  # type: ignore[no-untyped-call]
        session = pdf_signer.init_signing_session(writer)
        session.system_time = signing_time
        info = await session.perform_presign_validation(writer)
        tbs = session.prepare_tbs_document(validation_info=info, bytes_reserved=16384)
        output = io.BytesIO()
        digest, res_output = tbs.digest_tbs_document(output=output)
        done = await tbs.perform_signature(
            document_digest=digest.document_digest,
            pdf_cms_signed_attrs=PdfCMSSignedAttributes(signing_time=signing_time),
        )
        await done.post_signature_processing(res_output)
        return output.getvalue()

    return asyncio.run(sign())


def _field_named(writer: IncrementalPdfFileWriter, name: str) -> Any:
    """The reference of the form's field called ``name``."""
    for ref in writer.root["/AcroForm"].raw_get("/Fields").get_object():
        if str(ref.get_object().get("/T")) == name:
            return ref
    raise LookupError(name)


def with_page_box(pdf: bytes, box: Sequence[float | str] | None) -> bytes:
    """Every page's /MediaBox set to ``box`` (text entries written as PDF strings), or
    taken away (None): what a broken exporter writes, which viewers still show."""

    def entry(value: float | str) -> generic.PdfObject:
        return pdf_string(value) if isinstance(value, str) else generic.FloatObject(value)

    def edit(writer: IncrementalPdfFileWriter) -> None:
        pages = writer.root["/Pages"]
        for index in range(int(pages["/Count"])):
            page_ref = writer.find_page_for_modification(index)[0]  # type: ignore[no-untyped-call]
            page = page_ref.get_object()
            page.pop("/CropBox", None)
            if box is None:
                page.pop("/MediaBox", None)
            else:
                page[pdf_name("/MediaBox")] = generic.ArrayObject(entry(v) for v in box)
            writer.mark_update(page_ref)  # type: ignore[no-untyped-call]
        pages.get_object().pop("/MediaBox", None)
        writer.update_container(pages)  # type: ignore[no-untyped-call]

    return _update(pdf, edit)


def with_page_entries(
    pdf: bytes,
    *,
    page: dict[str, Sequence[float] | float | str] | None = None,
    pages: dict[str, Sequence[float] | float | str] | None = None,
) -> bytes:
    """Page 1's entries (a box: four numbers; /Rotate: an integer, a real, or a name as
    a broken file may write it) set as given, and those of the page tree's root, which
    its pages inherit (ISO 32000 7.7.3.4)."""

    def value(given: Sequence[float] | float | str) -> generic.PdfObject:
        if isinstance(given, int):
            return generic.NumberObject(given)
        if isinstance(given, float):
            return generic.FloatObject(given)
        if isinstance(given, str):
            return pdf_name(given)
        return generic.ArrayObject(generic.FloatObject(v) for v in given)

    def edit(writer: IncrementalPdfFileWriter) -> None:
        page_ref = writer.find_page_for_modification(0)[0]  # type: ignore[no-untyped-call]
        first = page_ref.get_object()
        for name, given in (page or {}).items():
            first[pdf_name(name)] = value(given)
        writer.mark_update(page_ref)  # type: ignore[no-untyped-call]
        tree = writer.root["/Pages"]
        for name, given in (pages or {}).items():
            tree.get_object()[pdf_name(name)] = value(given)
        writer.update_container(tree)  # type: ignore[no-untyped-call]

    return _update(pdf, edit)


def raw_pdf(objects: Mapping[int, str]) -> bytes:
    """A PDF written as given, object by object (``1`` the catalog), with its xref table:
    for shapes no writer makes (a page tree that lies or loops, names kept as objects)."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n{objects[number]}\nendobj\n".encode("latin-1")
    size, table = max(objects) + 1, len(out)
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for number in range(1, size):
        out += (f"{offsets[number]:010d} 00000 n \n" if number in offsets else
                "0000000000 00000 f \n").encode()  # fmt: skip
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{table}\n%%EOF\n".encode()
    return bytes(out)


RAW_TEXT = "<< /Length 44 >>\nstream\nBT /F1 24 Tf 72 700 Td (Cong van so 1) Tj ET\nendstream"
RAW_FONT = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def raw_page(parent: int, extra: str = "") -> str:
    """An A4 page of one line of text (objects 4 and 5), under ``parent``."""
    return (
        f"<< /Type /Page /Parent {parent} 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        f"/Resources << /Font << /F1 5 0 R >> >> {extra} >>"
    )


@functools.cache
def blank_pages(count: int) -> bytes:
    """A PDF of ``count`` blank A4 pages."""
    writer = PdfWriter()
    for _ in range(count):
        writer.add_blank_page(595, 842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
