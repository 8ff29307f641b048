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
    Each file the manifest lists (the signed PDF, the appendices), ``NAME`` being its
    ``filename`` there; a name must be one plain step (``archive.safe_step``).

Stored, because the files are PDFs, office documents and scans, compressed already, and
the only text members are a few kilobytes of JSON: deflating gains nothing worth having,
while a stored member occupies exactly the bytes it yields, so the receiver bounds every
size by the archive's own and there is no decompression to turn into a bomb.

The header's members, all present:

``format``          ``"congvan-package/1"``.
``message_id``      Chosen by the sender, stable for the life of one dispatch: a retry
                    after an unknown outcome sends the same id and the receiver dedupes.
``sender``          The sending agency's organ id; ``agency.p7s`` is its certificate's.
``recipient``       The organ id of the agency this package is for.
``business_type``   ``"new"``. ``"recall"``, ``"update"`` and ``"replace"`` (QCVN 102
                    BussinessDocType 1–3) are reserved: refused as ``format_unsupported``
                    until their members are defined.
``document_id``     The sender's document id, as the manifest names it.
``sent_at``         When the package was made, ISO 8601 in UTC.
``manifest_sha256`` SHA-256 (lowercase hex) of ``manifest.json``.
``parts``           ``{"name", "role", "media_type", "size", "sha256"}`` for every member
                    except ``package.json`` and ``agency.p7s``, in archive order:
                    ``manifest.json`` (role ``manifest``, ``application/json``),
                    ``signature.p7s`` (role ``signature``,
                    ``application/pkcs7-signature``), then the files with the role and
                    media type the manifest gives them.

Example (one line in reality, wrapped here)::

    {"business_type":"new","document_id":"doc-1","format":"congvan-package/1",
    "manifest_sha256":"5c0a…e1f3","message_id":"dispatch-7f3a",
    "parts":[{"media_type":"application/json","name":"manifest.json","role":"manifest",
    "sha256":"5c0a…e1f3","size":733},{"media_type":"application/pkcs7-signature",
    "name":"signature.p7s","role":"signature","sha256":"90b2…4c1d","size":1893},
    {"media_type":"application/pdf","name":"files/1227-UBND-TĐKT.pdf","role":"main",
    "sha256":"9f86…0a08","size":48213}],"recipient":"000.00.11.H57",
    "sender":"000.00.00.H57","sent_at":"2021-02-06T02:15:00+00:00"}

``write_package`` streams it into a sink; ``open_package`` reads one from a peer,
refusing what ``archive`` refuses and then: no ``package.json`` or a member missing or
extra against its parts (``MessageMalformed`` ``missing_part`` / ``extra_part``), a header
not canonical (``non_canonical``) or of another format (``FormatUnsupported``).
``acceptance.verify_package`` then decides whether to trust it. The format, its writer
and its reader stay in one module (over 400 lines with this description): they must agree
byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any, BinaryIO

from congvan.actions.signing.agencykeys import AgencyKey
from congvan.actions.signing.manifest import FORMAT as MANIFEST_FORMAT
from congvan.states.errors import FormatUnsupported, MessageMalformed
from congvan.states.policy import is_organ_id

from .archive import CHUNK, Archive, Limits, open_archive, safe_step
from .envelope import ID, Members, canonical, iso, read_canonical, sign_body

FORMAT = "congvan-package/1"
HEADER = "package.json"
AGENCY_SIGNATURE = "agency.p7s"
MANIFEST = "manifest.json"
SIGNATURE = "signature.p7s"
FILES = "files/"
BUSINESS_TYPES = ("new",)
RESERVED_BUSINESS_TYPES = ("recall", "update", "replace")
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
        """The manifest's file name of a file part; None for the manifest and signature."""
        return self.name.removeprefix(FILES) if self.name.startswith(FILES) else None


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


# -- writing ---------------------------------------------------------------------------


def write_package(
    sink: IO[bytes],
    *,
    message_id: str,
    recipient: str,
    manifest: bytes,
    signature: bytes,
    files: Mapping[str, BinaryIO],
    agency: AgencyKey,
    sent_at: datetime,
    business_type: str = "new",
) -> Written:
    """Write the package of ``manifest`` for ``recipient`` into ``sink``, streaming the files.

    ``files`` maps every ``filename`` of the manifest to a binary stream of its bytes;
    ``agency`` is the issuing agency's key, which signs ``package.json`` at ``sent_at``.
    Raises ``ValueError`` when the package could not be accepted: the manifest is not
    the issuing agency's, a file name is unsafe or repeated, a file is missing, extra,
    or not the size and digest the manifest gives it (found while streaming: then the
    sink holds a partial package to discard).
    """
    content = _manifest(manifest, agency.agency_id)
    if business_type not in BUSINESS_TYPES:
        raise ValueError(f"business_type {business_type!r} is not sent in {FORMAT}")
    if not (ID.fullmatch(message_id) and ID.fullmatch(str(content["document_id"]))):
        raise ValueError("message_id and the document id must be short identifiers")
    if not is_organ_id(recipient):
        raise ValueError("the recipient must be an organ id")
    attachments = content["attachments"]
    _check_file_names([a["filename"] for a in attachments], set(files))
    parts = [
        _part(MANIFEST, *FIXED_PARTS[MANIFEST], manifest),
        _part(SIGNATURE, *FIXED_PARTS[SIGNATURE], signature),
        *(
            Part(FILES + a["filename"], a["role"], a["media_type"], a["size"], a["sha256"])
            for a in attachments
        ),
    ]
    manifest_sha256 = parts[0].sha256
    header = canonical(
        {
            "format": FORMAT,
            "message_id": message_id,
            "sender": agency.agency_id,
            "recipient": recipient,
            "business_type": business_type,
            "document_id": content["document_id"],
            "sent_at": iso(sent_at),
            "manifest_sha256": manifest_sha256,
            "parts": [{name: getattr(p, name) for name in PART_MEMBERS} for p in parts],
        }
    )
    out = _HashingSink(sink)
    moment = max(sent_at.astimezone(UTC), datetime(1980, 1, 1, tzinfo=UTC))
    stamp = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(_entry(HEADER, stamp), header)
        archive.writestr(_entry(AGENCY_SIGNATURE, stamp), sign_body(header, agency, sent_at))
        archive.writestr(_entry(MANIFEST, stamp), manifest)
        archive.writestr(_entry(SIGNATURE, stamp), signature)
        for part in parts[2:]:
            _stream(archive, _entry(part.name, stamp), files[part.name[len(FILES) :]], part)
    return Written(message_id, out.digest.hexdigest(), out.count, manifest_sha256, header)


def _manifest(manifest: bytes, agency_id: str) -> dict[str, Any]:
    try:
        content = read_canonical(manifest, MANIFEST_FORMAT)
    except MessageMalformed as exc:
        raise ValueError(f"the manifest is not a canonical {MANIFEST_FORMAT}") from exc
    if content.get("agency_id") != agency_id:
        raise ValueError(f"the manifest is not a document of {agency_id}")
    return content


def _check_file_names(names: list[str], given: set[str]) -> None:
    for name in names:
        if not safe_step(name):
            raise ValueError(f"the file name {name!r} cannot travel in a package")
    folded = [unicodedata.normalize("NFC", n.casefold()) for n in names]
    if len(set(folded)) != len(folded):
        raise ValueError("two files of the manifest have the same name (ignoring case)")
    if set(names) != given:
        raise ValueError(
            f"files missing: {sorted(set(names) - given)}, not in the manifest: "
            f"{sorted(given - set(names))}"
        )


def _part(name: str, role: str, media_type: str, data: bytes) -> Part:
    return Part(name, role, media_type, len(data), hashlib.sha256(data).hexdigest())


def _entry(name: str, stamp: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    # The same inputs give the same bytes: fixed time, system and permissions.
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info


def _stream(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: BinaryIO, part: Part) -> None:
    info.file_size = part.size  # decides ZIP64 up front for large files
    digest, size = hashlib.sha256(), 0
    with archive.open(info, "w") as member:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            member.write(chunk)
    if (size, digest.hexdigest()) != (part.size, part.sha256):
        raise ValueError(f"{part.name} is not the file the manifest names")


class _HashingSink:
    """A forward-only sink that hashes and counts what passes through it.

    Not seekable on purpose: ``zipfile`` then never goes back to patch a header, so the
    digest is that of the bytes as they end up.
    """

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.count += len(data)
        self.sink.write(data)
        return len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        """Leave the sink open: it is the caller's."""


# -- reading ---------------------------------------------------------------------------


def open_package(stream: BinaryIO, limits: Limits) -> Package:
    """Open a peer's package from ``stream`` (seekable), refusing a malformed one.

    Nothing in it is trusted yet: ``acceptance.verify_package`` decides that.
    """
    archive = open_archive(stream, limits, _SMALL)
    try:
        if HEADER not in archive.members:
            raise MessageMalformed(f"The package has no {HEADER}.", reason="missing_part")
        body = archive.read(HEADER)
        header = _header(read_canonical(body, FORMAT))
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
        return Package(archive, body, header)
    except BaseException:
        archive.close()
        raise


def _header(content: dict[str, Any]) -> Header:
    members = Members(content, HEADER_MEMBERS)
    business_type = content["business_type"]
    if business_type in RESERVED_BUSINESS_TYPES:
        raise FormatUnsupported(
            f"Business type {business_type} is reserved in {FORMAT}.",
            reason="business_type_reserved",
            business_type=business_type,
        )
    raw_parts = content["parts"]
    if not isinstance(raw_parts, list):
        raise MessageMalformed("parts must be a list.", reason="member", member="parts")
    parts = tuple(_read_part(p) for p in raw_parts)
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise MessageMalformed("parts lists a name twice.", reason="duplicate_name")
    for name, (role, media_type) in FIXED_PARTS.items():
        if not any(p.name == name and (p.role, p.media_type) == (role, media_type) for p in parts):
            raise MessageMalformed(
                f"parts must list {name} as {role}.", reason="missing_part", part=name
            )
    return Header(
        message_id=members.identifier("message_id"),
        sender=members.organ_id("sender"),
        recipient=members.organ_id("recipient"),
        business_type=members.choice("business_type", BUSINESS_TYPES),
        document_id=members.identifier("document_id"),
        sent_at=members.moment("sent_at"),
        manifest_sha256=members.sha256("manifest_sha256"),
        parts=parts,
    )


def _read_part(raw: Any) -> Part:
    if not isinstance(raw, dict):
        raise MessageMalformed("A part must be an object.", reason="member", member="parts")
    members = Members(raw, PART_MEMBERS)
    name = raw["name"]
    is_file = isinstance(name, str) and name.startswith(FILES) and safe_step(name[len(FILES) :])
    if not (is_file or name in FIXED_PARTS):
        raise MessageMalformed(
            "A part's name is not one this format allows.",
            reason="unsafe_name",
            part=json.dumps(name)[:300],
        )
    size = raw["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise MessageMalformed("A part's size must be a count of bytes.", reason="member")
    role = members.text("role")
    if is_file and role in ("manifest", "signature"):
        raise MessageMalformed("A file cannot have that role.", reason="member", part=name)
    return Part(
        name=name,
        role=str(role),
        media_type=str(members.text("media_type")),
        size=size,
        sha256=members.sha256("sha256"),
    )
