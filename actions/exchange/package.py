"""Format ``congvan-package/1``: one signed document on its way to one recipient agency.

A package is a ZIP archive whose members are all stored, never compressed:

``package.json``
    The header below, RFC 8785 canonical JSON.
``agency.p7s``
    The sending agency's detached CMS (DER) over the exact bytes of ``package.json``, made
    with its organisational key (Decree 30 Art. 33: the agency signs what it issues).
``manifest.json``
    The signed manifest (``congvan-manifest/1``), byte for byte as signed.
``signature.p7s``
    The signer's detached CMS (DER) over ``manifest.json``.
``files/NAME``
    Each file the manifest lists (the main PDF, the appendices), ``NAME`` being its
    ``filename`` there, byte for byte as the manifest's digest names it; a name must be
    one plain step (``names.safe_step``).
``signed/NAME``
    Optional: the main PDF as the signer signed it (PAdES), i.e. the bytes of
    ``files/NAME``, the manifest's main file (role ``main``, ``application/pdf``), with
    one signature appended as an incremental update that adds nothing else, made with
    the certificate of ``signature.p7s`` (``signing.signedpdf``). Present when the
    signature has one; a signature made without one (a document whose main file is not
    a PDF, a signer's tool that signed only the manifest) travels without it and is
    accepted as before.

Stored, because the files are PDFs, office documents and scans, compressed already, and
the only text members are a few kilobytes of JSON: deflating gains nothing worth having,
while a stored member occupies exactly the bytes it yields, so the receiver bounds every
size by the archive's own and there is no decompression to turn into a bomb.

The header's members, all present:

``format``          ``"congvan-package/1"``.
``message_id``      Chosen by the sender, stable for the life of one dispatch: a retry
                    after an unknown outcome sends the same id and the receiver dedupes.
                    1 to 200 printable ASCII characters, no spaces (as ``document_id``).
``sender``          The sending agency's organ id; ``agency.p7s`` is its certificate's.
``recipient``       The organ id of the agency this package is for.
``business_type``   ``"new"``; or QCVN 102's BussinessDocType 1–3: ``"recall"`` (thu
                    hồi: take the document back), ``"update"`` (cập nhật: correct its
                    metadata) or ``"replace"`` (thay thế: this document replaces one sent
                    before). These three have the members below besides.
``document_id``     The sender's document id, as the manifest names it.
``sent_at``         When the package was made, ISO 8601 in UTC.
``manifest_sha256`` SHA-256 (lowercase hex) of ``manifest.json``.
``parts``           ``{"name", "role", "media_type", "size", "sha256"}`` for every member
                    except ``package.json`` and ``agency.p7s``, in archive order:
                    ``manifest.json`` (role ``manifest``, ``application/json``),
                    ``signature.p7s`` (role ``signature``,
                    ``application/pkcs7-signature``), then the files with the role and
                    media type the manifest gives them, then the signed PDF when there
                    is one (role ``signed_pdf``, ``application/pdf``; at most one).

Members of ``"recall"``, ``"update"`` and ``"replace"`` only:

``reason``          Why, for people (text, 1 to 2000 characters).
``original``        The document it is about, as the recipient received it:
                    ``{"message_id", "document_id", "number", "symbol"}``, the message
                    id of the package that brought it to this recipient, the sender's
                    document id, its number (an integer or ``null``) and symbol (text,
                    possibly empty).
``changes``         ``"update"`` only: the corrected metadata, ``{field: value}``, at
                    least one of ``subject``, ``issued_on``, ``due_date``,
                    ``signer_name``, ``signer_position``, ``place``; a value is text
                    (1 to 2000 characters) or ``null`` (cleared).

A recall or an update carries the original's signed manifest, signature and files again,
byte for byte: it verifies exactly as the package that brought the document, and the
recipient matches its ``manifest_sha256`` and ``document_id`` against what it holds. A
replacement carries its own document (a new one, which names ``original``'s in
``original``). The recipient answers a recall or an update with status 15 (agrees) or 16
(refuses, with a reason); a replacement is received as a new document.

Example (one line in reality, wrapped here)::

    {"business_type":"new","document_id":"doc-1","format":"congvan-package/1",
    "manifest_sha256":"5c0a…e1f3","message_id":"dispatch-7f3a",
    "parts":[{"media_type":"application/json","name":"manifest.json","role":"manifest",
    "sha256":"5c0a…e1f3","size":733},{"media_type":"application/pkcs7-signature",
    "name":"signature.p7s","role":"signature","sha256":"90b2…4c1d","size":1893},
    {"media_type":"application/pdf","name":"files/1227-UBND-TĐKT.pdf","role":"main",
    "sha256":"9f86…0a08","size":48213},{"media_type":"application/pdf",
    "name":"signed/1227-UBND-TĐKT.pdf","role":"signed_pdf","sha256":"4e07…b1c2",
    "size":71690}],"recipient":"000.00.11.H57","sender":"000.00.00.H57",
    "sent_at":"2021-02-06T02:15:00+00:00"}

``signed/`` and the business types other than ``"new"`` came after the first packages
of this version and keep the version: a package of type ``"new"`` is what it always was,
and a reader older than them refuses the others (their members are not those it knows).
``signed/`` is optional, and a package without it is what it always was. A reader older than the
member refuses a package carrying one (``unsafe_name``), as it refuses any name it does
not know.

``writing.write_package`` streams it into a sink (``seal_header`` then ``assemble``);
``open_package`` reads one from a peer, refusing what ``archive`` refuses and then: no
``package.json`` or a member missing or extra against its parts (``MessageMalformed``
``missing_part`` / ``extra_part``), members in another order than ``package.json``,
``agency.p7s``, then the parts as listed (``member_order``), a header not canonical
(``non_canonical``) or of another format (``FormatUnsupported``), more than one
``signed/`` part, one not of role ``signed_pdf`` and ``application/pdf``, or a file of
that role (``member``).
``acceptance.verify_package`` then decides whether to trust it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import IO, Any, BinaryIO

from congvan.states.document import UPDATABLE
from congvan.states.errors import MessageMalformed, PackageTooLarge
from congvan.states.fields import FIELDS, REQUIRED_AT_REVIEW
from congvan.states.policy import MAIN_FILE, MAIN_FILE_TYPE
from congvan.states.text import given, signed_text_problem, value_problem

from .archive import Archive, Limits, open_archive
from .envelope import Members, read_canonical
from .names import safe_step

FORMAT = "congvan-package/1"
HEADER = "package.json"
AGENCY_SIGNATURE = "agency.p7s"
MANIFEST = "manifest.json"
SIGNATURE = "signature.p7s"
FILES = "files/"
SIGNED = "signed/"
SIGNED_PDF = ("signed_pdf", "application/pdf")  # the role and media type of signed/NAME
NEW, RECALL, UPDATE, REPLACE = "new", "recall", "update", "replace"
BUSINESS_TYPES = (NEW, RECALL, UPDATE, REPLACE)
# The members each business type has besides HEADER_MEMBERS.
TYPE_MEMBERS: Mapping[str, tuple[str, ...]] = {
    NEW: (),
    RECALL: ("reason", "original"),
    UPDATE: ("reason", "original", "changes"),
    REPLACE: ("reason", "original"),
}
ORIGINAL_MEMBERS = ("message_id", "document_id", "number", "symbol")

HEADER_MEMBERS = (
    "format",
    "message_id",
    "sender",
    "recipient",
    "business_type",
    "document_id",
    "sent_at",
    "manifest_sha256",
    "parts",
)
PART_MEMBERS = ("name", "role", "media_type", "size", "sha256")
FIXED_PARTS = {
    MANIFEST: ("manifest", "application/json"),
    SIGNATURE: ("signature", "application/pkcs7-signature"),
}
_SMALL = frozenset({HEADER, AGENCY_SIGNATURE, MANIFEST, SIGNATURE})


@dataclass(frozen=True)
class Part:
    """One member as ``package.json`` lists it."""

    name: str
    role: str
    media_type: str
    size: int
    sha256: str

    @property
    def filename(self) -> str | None:
        """The manifest's file name of a file part; None for the other parts."""
        return self.name.removeprefix(FILES) if self.name.startswith(FILES) else None

    @property
    def signed_pdf(self) -> bool:
        """Whether this is the main PDF as the signer signed it (``signed/NAME``)."""
        return self.name.startswith(SIGNED)


@dataclass(frozen=True)
class Original:
    """The document a recall, update or replacement is about, as its recipient got it."""

    message_id: str
    document_id: str
    number: int | None
    symbol: str


@dataclass(frozen=True)
class Header:
    """What ``package.json`` says."""

    message_id: str
    sender: str
    recipient: str
    business_type: str
    document_id: str
    sent_at: datetime
    manifest_sha256: str
    parts: tuple[Part, ...]
    reason: str | None = None  # recall, update, replace
    original: Original | None = None  # recall, update, replace
    changes: Mapping[str, str | None] | None = None  # update

    @property
    def signed_pdf(self) -> Part | None:
        """The signed PDF's part, when the package carries one."""
        return next((p for p in self.parts if p.signed_pdf), None)


@dataclass(frozen=True)
class Written:
    """What the sender keeps of a package it wrote, to match the receipt against."""

    message_id: str
    sha256: str  # of the whole archive, as written
    size: int
    manifest_sha256: str
    header: bytes


class Package:
    """A package from a peer whose structure ``open_package`` accepted; not yet trusted."""

    def __init__(self, archive: Archive, body: bytes, header: Header) -> None:
        self.archive = archive
        self.body = body  # package.json, exactly
        self.header = header
        self.agency_signature = archive.read(AGENCY_SIGNATURE)
        self.manifest = archive.read(MANIFEST)
        self.signature = archive.read(SIGNATURE)

    @property
    def sha256(self) -> str:
        return self.archive.sha256

    @property
    def size(self) -> int:
        return self.archive.size

    def open_part(self, name: str) -> IO[bytes]:
        """A member's bytes to read, e.g. to store a file once the package is verified."""
        return self.archive.open(name)

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> Package:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- reading ---------------------------------------------------------------------------


def open_package(stream: BinaryIO, limits: Limits) -> Package:
    """Open a peer's package from ``stream`` (seekable), refusing a malformed one.

    Nothing in it is trusted yet: ``acceptance.verify_package`` decides that.
    """
    archive = open_archive(stream, limits, _SMALL)
    try:
        _check_files(archive, limits)
        if HEADER not in archive.members:
            raise MessageMalformed(f"The package has no {HEADER}.", reason="missing_part")
        body = archive.read(HEADER)
        header = read_header(read_canonical(body, FORMAT))
        expected = {HEADER, AGENCY_SIGNATURE, *(p.name for p in header.parts)}
        missing = sorted(expected - set(archive.members))
        extra = sorted(set(archive.members) - expected)
        if missing:
            raise MessageMalformed(
                "The package lacks parts.", reason="missing_part", parts=missing[:20]
            )
        if extra:
            raise MessageMalformed(
                f"The package has parts {HEADER} does not list.",
                reason="extra_part",
                parts=extra[:20],
            )
        order = [HEADER, AGENCY_SIGNATURE, *(p.name for p in header.parts)]
        if list(archive.members) != order:
            # One header, one archive: its members in the order it lists them.
            raise MessageMalformed(
                f"The package's members are not in the order {HEADER} lists them "
                f"({HEADER}, {AGENCY_SIGNATURE}, then its parts).",
                reason="member_order",
            )
        return Package(archive, body, header)
    except BaseException:
        archive.close()
        raise


def _check_files(archive: Archive, limits: Limits) -> None:
    """The attachments within what the receiver takes of a document's own: as many files
    as a document may have, each no larger than an attachment may be (the signed PDF,
    its main file with signatures appended, is bounded as any part)."""
    files = [name for name in archive.members if name.startswith(FILES)]
    if limits.max_files is not None and len(files) > limits.max_files:
        raise PackageTooLarge(
            f"The package has more than {limits.max_files} files.",
            reason="too_many_files",
            max_files=limits.max_files,
        )
    largest = limits.max_file_size
    for name in files:
        if largest is not None and archive.members[name].file_size > largest:
            raise PackageTooLarge(
                f"{name} is larger than {largest} bytes.",
                reason="part_too_large",
                part=name,
                max_bytes=largest,
            )


def read_header(content: dict[str, Any]) -> Header:
    """The header a parsed ``package.json`` holds, refusing a malformed one."""
    kind = content.get("business_type")
    extra = TYPE_MEMBERS.get(kind, ()) if isinstance(kind, str) else ()
    members = Members(content, (*HEADER_MEMBERS, *extra))
    business_type = members.choice("business_type", BUSINESS_TYPES)
    raw_parts = content["parts"]
    if not isinstance(raw_parts, list):
        raise MessageMalformed("parts must be a list.", reason="member", member="parts")
    parts = tuple(read_part(p) for p in raw_parts)
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise MessageMalformed("parts lists a name twice.", reason="duplicate_name")
    for name, (role, media_type) in FIXED_PARTS.items():
        if not any(p.name == name and (p.role, p.media_type) == (role, media_type) for p in parts):
            raise MessageMalformed(
                f"parts must list {name} as {role}.", reason="missing_part", part=name
            )
    if sum(p.signed_pdf for p in parts) > 1:
        raise MessageMalformed("parts lists more than one signed PDF.", reason="member")
    return Header(
        message_id=members.identifier("message_id"),
        sender=members.organ_id("sender"),
        recipient=members.organ_id("recipient"),
        business_type=business_type,
        document_id=members.identifier("document_id"),
        sent_at=members.moment("sent_at"),
        manifest_sha256=members.sha256("manifest_sha256"),
        parts=parts,
        reason=members.text("reason") if "reason" in extra else None,
        original=read_original(content["original"]) if "original" in extra else None,
        changes=read_changes(content["changes"]) if "changes" in extra else None,
    )


def read_original(raw: Any) -> Original:
    """``original``: the document a recall, update or replacement is about."""
    if not isinstance(raw, dict):
        raise MessageMalformed("original must be an object.", reason="member", member="original")
    members = Members(raw, ORIGINAL_MEMBERS)
    number, symbol = raw["number"], raw["symbol"]
    if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
        raise MessageMalformed("original.number must be an integer.", reason="member")
    if (
        not isinstance(symbol, str)
        or len(symbol) > 50
        or signed_text_problem(symbol, multi_line=False) is not None
    ):
        raise MessageMalformed("original.symbol must be one line of NFC text.", reason="member")
    return Original(
        message_id=members.identifier("message_id"),
        document_id=members.identifier("document_id"),
        number=number,
        symbol=symbol,
    )


def read_changes(raw: Any) -> dict[str, str | None]:
    """``changes``: an update's corrected metadata, field by field."""
    if not isinstance(raw, dict) or not raw:
        raise MessageMalformed(
            "changes must name at least one field.", reason="member", member="changes"
        )
    unknown = sorted(k for k in raw if k not in UPDATABLE)
    if unknown:
        raise MessageMalformed(
            f"An update corrects only {', '.join(UPDATABLE)}.",
            reason="member",
            member="changes",
            fields=[str(k)[:50] for k in unknown[:10]],
        )
    changes: dict[str, str | None] = {}
    for name in sorted(raw):
        value, field = raw[name], FIELDS[name]
        # Each as the document's field holds it (kind, length, NFC text), and what review
        # requires is never cleared: what our clerk agrees to is written to the document.
        if value is None:
            problem = "cannot be cleared" if name in REQUIRED_AT_REVIEW else None
        elif not isinstance(value, str):
            problem = "must be text"
        elif name in REQUIRED_AT_REVIEW and not given(value):
            problem = "is empty"
        else:
            problem = value_problem(field, value)
        if problem is not None:
            raise MessageMalformed(
                f"changes.{name} {problem}.",
                reason="member",
                member="changes",
                field=name,
                problem=problem,
            )
        changes[name] = value
    return changes


def main_pdf(manifest: Mapping[str, Any]) -> str | None:
    """The file name of the manifest's main file when it is a PDF: what a signer signs."""
    for attachment in manifest.get("attachments") or ():
        if isinstance(attachment, dict) and (
            attachment.get("role"),
            attachment.get("media_type"),
        ) == (MAIN_FILE, MAIN_FILE_TYPE):
            return str(attachment.get("filename"))
    return None


def read_part(raw: Any) -> Part:
    if not isinstance(raw, dict):
        raise MessageMalformed("A part must be an object.", reason="member", member="parts")
    members = Members(raw, PART_MEMBERS)
    name = raw["name"]
    if not isinstance(name, str):
        raise MessageMalformed(
            "A part's name must be text.", reason="member", member="name", part=str(name)[:300]
        )
    is_file = _in_folder(name, FILES)
    is_signed = _in_folder(name, SIGNED)
    if not (is_file or is_signed or name in FIXED_PARTS):
        raise MessageMalformed(
            "A part's name is not one this format allows.",
            reason="unsafe_name",
            part=json.dumps(name)[:300],
        )
    size = raw["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise MessageMalformed("A part's size must be a count of bytes.", reason="member")
    role = members.text("role")
    media_type = members.text("media_type")
    if is_file and role in ("manifest", "signature", SIGNED_PDF[0]):
        raise MessageMalformed("A file cannot have that role.", reason="member", part=name)
    if is_signed and (role, media_type) != SIGNED_PDF:
        raise MessageMalformed(
            f"A part under {SIGNED} is the signed PDF, role {SIGNED_PDF[0]}.",
            reason="member",
            part=name,
        )
    return Part(
        name=name,
        role=str(role),
        media_type=str(media_type),
        size=size,
        sha256=members.sha256("sha256"),
    )


def _in_folder(name: Any, folder: str) -> bool:
    return isinstance(name, str) and name.startswith(folder) and safe_step(name[len(folder) :])
