"""Writing ``congvan-package/1`` (the format is described in ``package.py``).

The sender seals a package's header once per recipient (``seal_header``: ``package.json``
and the agency's signature over it) and keeps it; every attempt then ``assemble``s the
very same bytes from it, the manifest, the signer's signature, the files and the signed
PDF when the header lists one, streamed.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, BinaryIO

from congvan.actions.signing.agencykeys import AgencyKey
from congvan.actions.signing.manifest import FORMAT as MANIFEST_FORMAT
from congvan.states.errors import MessageMalformed
from congvan.states.policy import is_organ_id

from .archive import CHUNK, stored_entry
from .envelope import ID, canonical, iso, read_canonical, sign_body
from .names import folded_name, safe_step
from .package import (
    AGENCY_SIGNATURE,
    FILES,
    FIXED_PARTS,
    FORMAT,
    HEADER,
    MANIFEST,
    ORIGINAL_MEMBERS,
    PART_MEMBERS,
    SIGNATURE,
    SIGNED,
    SIGNED_PDF,
    TYPE_MEMBERS,
    Original,
    Part,
    Written,
    main_pdf,
    read_header,
    read_part,
)


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
    signed_pdf: bytes | None = None,
) -> Written:
    """Write the package of ``manifest`` for ``recipient`` into ``sink``, streaming the files.

    ``files`` maps every ``filename`` of the manifest to a binary stream of its bytes;
    ``signed_pdf`` is the main PDF as the signer signed it, when there is one;
    ``agency`` is the issuing agency's key, which signs ``package.json`` at ``sent_at``.
    Raises ``ValueError`` when the package could not be accepted: the manifest is not
    the issuing agency's, a file name is unsafe or repeated, a file is missing, extra,
    or not the size and digest the manifest gives it (found while streaming: then the
    sink holds a partial package to discard). The same as :func:`seal_header` then
    :func:`assemble`.
    """
    sealed = seal_header(
        message_id=message_id,
        recipient=recipient,
        manifest=manifest,
        signature=signature,
        agency=agency,
        sent_at=sent_at,
        business_type=business_type,
        signed_pdf=signed_pdf,
    )
    _check_file_names(_filenames(manifest), set(files))
    return assemble(
        sink,
        sealed,
        manifest=manifest,
        signature=signature,
        files=files,
        signed_pdf=None if signed_pdf is None else io.BytesIO(signed_pdf),
    )


@dataclass(frozen=True)
class SealedHeader:
    """A package's ``package.json`` and the agency's signature over it: what the sender
    keeps per recipient, so that every attempt sends the very same bytes."""

    message_id: str
    header: bytes
    agency_signature: bytes
    manifest_sha256: str
    sent_at: datetime

    @property
    def signed_pdf(self) -> Part | None:
        """The signed PDF the header lists (to assemble with it), if any."""
        return next((p for p in _header_parts(self.header) if p.signed_pdf), None)


def seal_header(
    *,
    message_id: str,
    recipient: str,
    manifest: bytes,
    signature: bytes,
    agency: AgencyKey,
    sent_at: datetime,
    business_type: str = "new",
    signed_pdf: bytes | None = None,
    reason: str | None = None,
    original: Original | None = None,
    changes: Mapping[str, str | None] | None = None,
) -> SealedHeader:
    """``package.json`` for ``recipient``, signed by the issuing ``agency`` at ``sent_at``.

    ``signed_pdf``, the main PDF as the signer signed it, is listed after the files; the
    manifest must then have a main PDF (its bytes are judged by ``signedpdf`` at signing).
    """
    content = _manifest(manifest, agency.agency_id)
    if business_type not in TYPE_MEMBERS:
        raise ValueError(f"business_type {business_type!r} is not sent in {FORMAT}")
    if not (ID.fullmatch(message_id) and ID.fullmatch(str(content["document_id"]))):
        raise ValueError("message_id and the document id must be short identifiers")
    if not is_organ_id(recipient):
        raise ValueError("the recipient must be an organ id")
    attachments = content["attachments"]
    names = [a["filename"] for a in attachments]
    _check_file_names(names, set(names))
    parts = [
        _part(MANIFEST, *FIXED_PARTS[MANIFEST], manifest),
        _part(SIGNATURE, *FIXED_PARTS[SIGNATURE], signature),
        *(
            Part(FILES + a["filename"], a["role"], a["media_type"], a["size"], a["sha256"])
            for a in attachments
        ),
    ]
    if signed_pdf is not None:
        main = main_pdf(content)
        if main is None:
            raise ValueError("a signed PDF travels only with a manifest whose main file is a PDF")
        parts.append(_part(SIGNED + main, *SIGNED_PDF, signed_pdf))
    extra: dict[str, Any] = {}
    kinds = TYPE_MEMBERS[business_type]
    if "original" in kinds:
        if original is None or not reason:
            raise ValueError(f"a {business_type} package names its original and a reason")
        extra["reason"] = reason
        extra["original"] = {name: getattr(original, name) for name in ORIGINAL_MEMBERS}
    if "changes" in kinds:
        if not changes:
            raise ValueError("an update package corrects at least one field")
        extra["changes"] = dict(changes)
    header = canonical(
        {
            **extra,
            "format": FORMAT,
            "message_id": message_id,
            "sender": agency.agency_id,
            "recipient": recipient,
            "business_type": business_type,
            "document_id": content["document_id"],
            "sent_at": iso(sent_at),
            "manifest_sha256": parts[0].sha256,
            "parts": [{name: getattr(p, name) for name in PART_MEMBERS} for p in parts],
        }
    )
    try:  # a header this format's reader would refuse is never sealed
        read_header(json.loads(header))
    except MessageMalformed as exc:
        raise ValueError(exc.message) from exc
    return SealedHeader(
        message_id, header, sign_body(header, agency, sent_at), parts[0].sha256, sent_at
    )


def reseal_header(header: bytes, agency: AgencyKey, sent_at: datetime) -> SealedHeader:
    """The same ``package.json``, sent at ``sent_at`` and signed then by ``agency``.

    For a package none of whose attempts may have reached its recipient, sealed by an
    agency certificate that is no longer the one valid now (renewed, the old one revoked
    as superseded): the recipient judges the agency's signature as it takes the package,
    and holds nothing under its message id yet. Everything else the header says stays.
    """
    content = json.loads(header)
    if content.get("sender") != agency.agency_id:
        raise ValueError(f"the package is not {agency.agency_id}'s to seal")
    content["sent_at"] = iso(sent_at)
    body = canonical(content)
    try:
        read_header(json.loads(body))
    except MessageMalformed as exc:
        raise ValueError(exc.message) from exc
    return SealedHeader(
        str(content["message_id"]),
        body,
        sign_body(body, agency, sent_at),
        str(content["manifest_sha256"]),
        sent_at,
    )


def assemble(
    sink: IO[bytes],
    sealed: SealedHeader,
    *,
    manifest: bytes,
    signature: bytes,
    files: Mapping[str, BinaryIO],
    signed_pdf: BinaryIO | None = None,
) -> Written:
    """Write the package ``sealed`` describes into ``sink``: the same bytes every time.

    ``signed_pdf`` is given exactly when the header lists one.
    """
    _check_file_names(_filenames(manifest), set(files))
    parts = _header_parts(sealed.header)
    if (signed_pdf is None) != (sealed.signed_pdf is None):
        raise ValueError("a signed PDF is given exactly when the sealed header lists one")
    out = _HashingSink(sink)
    stamp = sealed.sent_at
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(stored_entry(HEADER, stamp), sealed.header)
        archive.writestr(stored_entry(AGENCY_SIGNATURE, stamp), sealed.agency_signature)
        archive.writestr(stored_entry(MANIFEST, stamp), manifest)
        archive.writestr(stored_entry(SIGNATURE, stamp), signature)
        for part in parts[2:]:
            source = files[part.filename] if part.filename is not None else signed_pdf
            assert source is not None  # a file, or the signed PDF checked above
            _stream(archive, stored_entry(part.name, stamp), source, part)
    return Written(
        sealed.message_id, out.digest.hexdigest(), out.count, sealed.manifest_sha256, sealed.header
    )


def _filenames(manifest: bytes) -> list[str]:
    return [str(a["filename"]) for a in json.loads(manifest)["attachments"]]


def _header_parts(header: bytes) -> list[Part]:
    return [read_part(p) for p in json.loads(header)["parts"]]


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
    folded = [folded_name(n) for n in names]
    if len(set(folded)) != len(folded):
        raise ValueError("two files of the manifest have the same name (ignoring case)")
    if set(names) != given:
        raise ValueError(
            f"files missing: {sorted(set(names) - given)}, not in the manifest: "
            f"{sorted(given - set(names))}"
        )


def _part(name: str, role: str, media_type: str, data: bytes) -> Part:
    return Part(name, role, media_type, len(data), hashlib.sha256(data).hexdigest())


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
