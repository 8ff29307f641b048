"""Reading a ZIP archive from a peer before trusting anything in it.

``open_archive`` refuses, from the central directory and the local headers alone, before a
byte of any member is read:

    not a ZIP, or a broken one                  MessageMalformed  not_a_zip
    more members than ``Limits.max_parts``      PackageTooLarge   too_many_parts
    a member over ``max_part_size``, or all     PackageTooLarge   part_too_large,
    of them over ``max_total_size``                               total_too_large
    a name that is absolute, climbs (``..``),   MessageMalformed  unsafe_name
    has a backslash, a control character, an
    empty or ``.`` step, is not NFC, a folder,
    or is not flagged UTF-8 when not ASCII
    a member whose attributes make it other     MessageMalformed  not_a_file
    than a plain file to unzip (a symbolic
    link, a folder, a device; set-user-ID and
    the like): nothing signs them
    two names equal, also after case folding    MessageMalformed  duplicate_name
    an encrypted member                         MessageMalformed  encrypted
    a member whose flags or "version needed     MessageMalformed  unsupported
    to extract" ask for what this format never
    uses (patched data, a version above 4.5)
    a member that is compressed                 MessageMalformed  compressed
    a declared size that is not the stored one  MessageMalformed  declared_size
    bytes before the first member, between two  MessageMalformed  layout
    members, between the last one and the
    central directory, between it and the end
    record, or after that record; members whose
    data overlap or lie outside the archive's
    data; a ZIP64 end record (a second account
    of where the directory is, which no package
    of this format's sizes needs)
    an extra field other than the usual times   MessageMalformed  extra_field (details:
    and owners (a Unicode path field names the                    part, field: its id)
    member otherwise to unzip than to zipfile;
    ZIP64's sizes, a second account of them),
    or one broken or holding more than its
    values (unsigned bytes)
    a comment, the archive's or a member's:     MessageMalformed  comment
    text unzip shows that nothing signs
    a local header (or data descriptor) that    MessageMalformed  local_header (details:
    says otherwise than the central directory                     part, field)
    how to read its member: flags, method,
    name, CRC or sizes

Members are only ever stored (no compression): the bytes a member yields are the bytes
it occupies, so the sizes declared are bounded by the archive's own size and no small
archive expands into a large one. Reading a member then stops at its declared size and
checks its CRC (``zipfile``); a member that fails is ``MessageMalformed`` ``corrupt_part``.

``zipfile`` reads by the central directory, other readers (Info-ZIP's ``unzip``, a
streaming reader) by the local headers: a package kept as evidence of what arrived is to
be one archive to every reader, so the two must agree.
"""

from __future__ import annotations

import hashlib
import stat
import struct
import zipfile
from collections.abc import Container, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, BinaryIO

from congvan.states.errors import MessageMalformed, PackageTooLarge

from .names import folded_name, safe_path

CHUNK = 1 << 16
_UTF8_NAMES = 0x800
_ENCRYPTED = 0x1
_USE_DESCRIPTOR = 0x8  # CRC and sizes follow the data (the local header's are 0)
# Traditional and strong encryption, and the central directory's (APPNOTE 4.4.4).
_ENCRYPTION_FLAGS = _ENCRYPTED | 0x40 | 0x2000
# The flags a stored member may carry: the compression options (meaningless when stored,
# set by some writers), a data descriptor, a UTF-8 name. Any other asks for a way of
# reading it this format never uses (0x20: patched data), which zipfile cannot read.
_KNOWN_FLAGS = 0x2 | 0x4 | _USE_DESCRIPTOR | _UTF8_NAMES
# The highest "version needed to extract" of what a package uses: 1.0 stored, 2.0 folders
# and descriptors, 4.5 ZIP64 (APPNOTE 4.4.3).
_MAX_EXTRACT_VERSION = 45
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader
_LOCAL_SIGNATURE = b"PK\x03\x04"
# The data descriptor (APPNOTE 4.3.9): an optional signature, then the CRC and both sizes,
# each of 4 bytes, or of 8 in a ZIP64 archive.
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_DESCRIPTORS = (struct.Struct("<3L"), struct.Struct("<L2Q"))


@dataclass(frozen=True)
class Limits:
    """What a receiver accepts: members, bytes per member, bytes in all, bytes held in memory."""

    max_total_size: int
    max_parts: int
    max_part_size: int | None = None  # None: up to max_total_size
    max_metadata_size: int = 1 << 20  # package.json, manifest.json and the signatures
    # A package's files (under files/): how many, and bytes each (None: as any part).
    max_files: int | None = None
    max_file_size: int | None = None

    @classmethod
    def kept(cls, size: int) -> Limits:
        """What a package of ``size`` bytes, taken within the limits of its day and kept
        since, is read again with: its own size. The limits in force may have been lowered
        since; what was taken then stays readable (and its digest says it is the same)."""
        return cls(
            max_total_size=size,
            max_parts=size // _MEMBER_BYTES + 1,
            max_metadata_size=size,
        )


class Archive:
    """A ZIP whose directory passed ``open_archive``; members are read on demand."""

    def __init__(self, zip_file: zipfile.ZipFile, sha256: str, size: int) -> None:
        self._zip = zip_file
        self.sha256 = sha256  # of the archive's bytes, as received
        self.size = size
        self.members = {info.filename: info for info in zip_file.infolist()}

    def chunks(self, name: str) -> Iterator[bytes]:
        """The member's bytes, in chunks, ending at its declared size."""
        info = self.members[name]
        left = info.file_size
        try:
            with self._zip.open(info) as member:
                while chunk := member.read(min(CHUNK, left + 1)):
                    left -= len(chunk)
                    yield chunk
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise MessageMalformed(f"{name} is damaged.", reason="corrupt_part", part=name) from exc
        if left != 0:
            raise MessageMalformed(
                f"{name} is not its declared size.", reason="declared_size", part=name
            )

    def read(self, name: str) -> bytes:
        """The whole member; only for members ``open_archive`` bounded to metadata size."""
        return b"".join(self.chunks(name))

    def open(self, name: str) -> IO[bytes]:
        """The member as a file to read (``zipfile`` stops at its size and checks its CRC)."""
        return self._zip.open(self.members[name])

    def close(self) -> None:
        self._zip.close()


def open_archive(stream: BinaryIO, limits: Limits, small: Container[str]) -> Archive:
    """Open ``stream`` (seekable) as an archive of stored members within ``limits``.

    ``small`` names the members read whole into memory, bounded by ``max_metadata_size``.
    """
    digest, size = _digest(stream)
    entries = _check_end_record(stream, size, limits)
    try:
        zip_file = zipfile.ZipFile(stream)
    except NotImplementedError as exc:  # a version needed to extract above zipfile's
        raise MessageMalformed(
            f"The archive asks to be read in a way this format never uses: {exc}.",
            reason="unsupported",
        ) from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise MessageMalformed("The file is not a ZIP archive.", reason="not_a_zip") from exc
    try:
        _check_directory(zip_file, limits, small)
        _check_count(zip_file, entries)
        _check_layout(stream, zip_file, size)
    except BaseException:
        zip_file.close()
        raise
    return Archive(zip_file, digest, size)


# The end of central directory record (APPNOTE 4.3.16): its signature, then disk numbers,
# the entries on this disk and in all, the directory's size and offset, the comment's length.
_END_RECORD = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
# The ZIP64 end record's locator, the 20 bytes just before the end record when there is one.
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
# The most bytes one part's central directory entry takes in a package: its fixed 46, a
# name of up to 400 characters in UTF-8, and room for the usual extra fields.
_DIRECTORY_ENTRY_BYTES = 46 + 4 * 400 + 1024
# The fewest bytes a member takes: its local header and its directory entry, unnamed.
_MEMBER_BYTES = 30 + 46


def _check_end_record(stream: BinaryIO, size: int, limits: Limits) -> int | None:
    """Refuse an archive whose central directory holds more parts than ``limits`` take
    before ``zipfile`` reads it: it parses every entry first, and 700,000 empty ones in
    60 MiB cost seconds of CPU and hundreds of MiB. A record it cannot find is left to
    ``zipfile`` to refuse. Returns the number of parts the record counts."""
    tail = min(size, _END_RECORD.size + 0xFFFF)  # the record, then a comment of up to 64 KiB
    stream.seek(size - tail)
    data = stream.read(tail)
    stream.seek(0)
    at = data.rfind(_END_SIGNATURE)
    if at < 0 or len(data) - at < _END_RECORD.size:
        return None
    _signature, disk, directory_disk, on_disk, entries, directory_bytes, directory_at, comment = (
        _END_RECORD.unpack_from(data, at)
    )
    if disk or directory_disk or on_disk != entries:
        # One archive on one disk: zipfile ignores these fields, unzip does not (it reads
        # a split archive's parts, or refuses), so the two would read two archives.
        raise MessageMalformed(
            "The archive's end record speaks of more than one disk (a split archive), "
            "which a package never is.",
            reason="layout",
            part="(end record)",
        )
    locator = at - _ZIP64_LOCATOR_SIZE
    if locator >= 0 and data[locator : locator + 4] == _ZIP64_LOCATOR:
        # zipfile then reads the directory where the ZIP64 record says, other readers
        # where this one does: two accounts of one archive, which no package needs.
        raise MessageMalformed(
            "The archive carries a ZIP64 end record.", reason="layout", part="(end record)"
        )
    unaccounted = size - tail + at - (directory_at + directory_bytes)
    if unaccounted:
        # The directory ends where the end record begins: nothing lies between them, nor
        # anywhere before them that the record's offsets do not count.
        raise MessageMalformed(
            _unaccounted(stream, unaccounted), reason="layout", part="(end record)"
        )
    if comment:
        raise MessageMalformed(
            "The archive carries a comment, which no signature covers.",
            reason="comment",
            part="(end record)",
        )
    if at + _END_RECORD.size + comment != len(data):
        # zipfile reads the record it finds and ignores what follows its comment: bytes
        # there would travel (and be digested, and receipted) with nothing reading them.
        raise MessageMalformed(
            "Bytes follow the archive's end record.", reason="layout", part="(end record)"
        )
    # 0xFFFF entries or 0xFFFFFFFF bytes: the real counts are in a ZIP64 record, which
    # no package of this format's sizes needs.
    # Judged before the directory is read: what the end record claims, said as a claim.
    if entries > limits.max_parts or directory_bytes > limits.max_parts * _DIRECTORY_ENTRY_BYTES:
        raise PackageTooLarge(
            f"The archive's end record counts {entries} members in a directory of "
            f"{directory_bytes} bytes: more than the {limits.max_parts} members a package "
            "may have.",
            reason="too_many_parts",
            max_parts=limits.max_parts,
            counted=int(entries),
        )
    return int(entries)


def _check_count(zip_file: zipfile.ZipFile, entries: int | None) -> None:
    """The directory holds as many parts as the end record counts, each on disk 0.
    zipfile reads the directory by its size and never counts; unzip counts, and stops
    (or reads another archive) where the two disagree."""
    infos = zip_file.infolist()
    if entries is not None and len(infos) != entries:
        raise MessageMalformed(
            f"The archive's end record counts {entries} parts, its directory holds {len(infos)}.",
            reason="layout",
            part="(end record)",
        )
    for info in infos:
        if info.volume:
            raise MessageMalformed(
                "A part says it starts on another disk (a split archive), which a package "
                "never is.",
                reason="layout",
                part=info.filename,
            )


def _digest(stream: BinaryIO) -> tuple[str, int]:
    stream.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return digest.hexdigest(), size


def _check_directory(zip_file: zipfile.ZipFile, limits: Limits, small: Container[str]) -> None:
    infos = zip_file.infolist()
    if len(infos) > limits.max_parts:
        raise PackageTooLarge(
            f"The archive has more than {limits.max_parts} members.",
            reason="too_many_parts",
            max_parts=limits.max_parts,
        )
    seen: set[str] = set()
    total = 0
    part_limit = limits.max_part_size or limits.max_total_size
    for info in infos:
        name = info.filename
        utf8 = info.flag_bits & _UTF8_NAMES
        # zipfile cuts a name at NUL (and, on Windows, turns \ into /): judge it as stored.
        stored = info.orig_filename
        if stored != name or not safe_path(name) or (not name.isascii() and not utf8):
            raise MessageMalformed(
                "A part's name is not a safe relative path.",
                reason="unsafe_name",
                part=stored[:300],
            )
        folded = folded_name(name)
        if folded in seen:
            raise MessageMalformed(
                "Two parts have the same name.", reason="duplicate_name", part=name
            )
        seen.add(folded)
        if not plain_file(info):
            raise MessageMalformed(
                "A part's attributes make it something else than a plain file (a link, a "
                "folder or a device) to unzip; no signature covers them.",
                reason="not_a_file",
                part=name,
            )
        if info.flag_bits & _ENCRYPTION_FLAGS:
            raise MessageMalformed("A part is encrypted.", reason="encrypted", part=name)
        if info.flag_bits & ~_KNOWN_FLAGS or info.extract_version > _MAX_EXTRACT_VERSION:
            raise MessageMalformed(
                "A part asks to be read in a way this format never uses (its flags, or the "
                "ZIP version needed to extract it).",
                reason="unsupported",
                part=name,
            )
        if info.comment:
            raise MessageMalformed(
                "A part carries a comment, which no signature covers.",
                reason="comment",
                part=name,
            )
        _check_extra(info.extra, name)
        if info.compress_type != zipfile.ZIP_STORED:
            raise MessageMalformed(
                "Parts are stored, never compressed.", reason="compressed", part=name
            )
        if info.compress_size != info.file_size:
            raise MessageMalformed(
                "A stored part declares two sizes.", reason="declared_size", part=name
            )
        limit = limits.max_metadata_size if name in small else part_limit
        if info.file_size > limit:
            raise PackageTooLarge(
                f"{name} is larger than {limit} bytes.",
                reason="part_too_large",
                part=name,
                max_size=limit,
            )
        total += info.file_size
        if total > limits.max_total_size:
            raise PackageTooLarge(
                f"The parts hold more than {limits.max_total_size} bytes.",
                reason="total_too_large",
                max_total_size=limits.max_total_size,
            )


# The MS-DOS attributes of the low byte: folder, volume label.
_DOS_NOT_A_FILE = 0x10 | 0x08


def plain_file(info: zipfile.ZipInfo) -> bool:
    """Whether unzip makes ``info`` a plain file: its Unix mode (the upper two bytes of its
    attributes, which unzip honours) names a regular file, or none, with no set-user-ID,
    set-group-ID or sticky bit; and its MS-DOS attributes name no folder or volume."""
    mode = info.external_attr >> 16
    if mode and (stat.S_IFMT(mode) not in (0, stat.S_IFREG) or mode & 0o7000):
        return False
    return not info.external_attr & _DOS_NOT_A_FILE


def _unaccounted(stream: BinaryIO, count: int) -> str:
    """Say where the ``count`` bytes the end record's offsets do not count lie (as far
    as can be told): before the first part, or further in."""
    if count < 0:
        return "The end record places the central directory past its own start."
    stream.seek(0)
    start = stream.read(count + 4)
    stream.seek(0)
    if start[:4] != _LOCAL_SIGNATURE and start[count:] == _LOCAL_SIGNATURE:
        return f"{count} bytes precede the archive's first part."
    return (
        f"{count} bytes lie between the archive's parts, its central directory and its end "
        "record, which its offsets do not count."
    )


def _check_layout(stream: BinaryIO, zip_file: zipfile.ZipFile, size: int) -> None:
    """Members fill the archive from its first byte to the directory, one after the other
    with nothing between them, each local header saying what the directory says.

    Overlapping members are how a small archive claims more bytes than it has; bytes
    before the first member, how a file is a package and something else at once; bytes
    between members, or before the directory, a member (or a directory) only a reader of
    local headers finds, which nothing signs.
    """
    end_of_data = min(zip_file.start_dir, size)
    previous_end = 0
    for info in sorted(zip_file.infolist(), key=lambda i: i.header_offset):
        stream.seek(info.header_offset)
        header = stream.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise MessageMalformed(
                "A part's local header is missing.", reason="layout", part=info.filename
            )
        fields = _LOCAL_HEADER.unpack(header)
        name_and_extra = stream.read(fields[10] + fields[11])
        start = info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11]
        end = start + info.compress_size
        if info.header_offset != previous_end:
            raise MessageMalformed(
                "Bytes precede the first part or lie between parts, or parts overlap.",
                reason="layout",
                part=info.filename,
            )
        if end > end_of_data:
            raise MessageMalformed(
                "A part lies outside the archive's data.",
                reason="layout",
                part=info.filename,
            )
        _check_local_header(info, fields, name_and_extra)
        if fields[3] & _USE_DESCRIPTOR:
            end += _descriptor_size(stream, info, end, end_of_data)
        previous_end = end
    if previous_end != zip_file.start_dir:
        raise MessageMalformed(
            "Bytes lie between the last part and the central directory.",
            reason="layout",
            part="(central directory)",
        )
    stream.seek(0)


def _check_local_header(
    info: zipfile.ZipInfo, fields: tuple[Any, ...], name_and_extra: bytes
) -> None:
    """The member's local header says what its central directory entry says of how to
    read it: flags (encrypted, data descriptor, UTF-8 name), method, name, CRC, sizes."""
    flags, method, crc, compressed, original, name_length = (
        fields[3],
        fields[4],
        fields[7],
        fields[8],
        fields[9],
        fields[10],
    )
    raw_name, extra = name_and_extra[:name_length], name_and_extra[name_length:]
    _check_extra(extra, info.filename)
    try:
        name: str | None = raw_name.decode("utf-8" if flags & _UTF8_NAMES else "cp437")
    except UnicodeDecodeError:
        name = None
    said = {"crc": crc, "compressed_size": compressed, "size": original}
    meant = {"crc": info.CRC, "compressed_size": info.compress_size, "size": info.file_size}
    # With a data descriptor the local values are 0 (APPNOTE 4.4.4; some writers give the
    # real ones): the descriptor after the data holds them, and is checked in turn.
    blank = 0 if flags & _USE_DESCRIPTOR else None
    differing = [
        *(["flags"] if flags != info.flag_bits else []),
        *(["method"] if method != info.compress_type else []),
        *(["name"] if name != info.orig_filename else []),
        *(field for field, value in said.items() if value not in (meant[field], blank)),
    ]
    if differing:
        raise MessageMalformed(
            "A part's local header says otherwise than the central directory.",
            reason="local_header",
            part=info.filename,
            field=differing[0],
        )


# Extra fields (APPNOTE 4.5, 4.6) that say nothing of a member's name or bytes, as
# Info-ZIP's zip and Windows write them: NTFS times (32 bytes), PKWARE Unix times and
# owners (12: the variable part, a link's target, refused), extended times (a flag byte
# and up to three times of 4 bytes), Info-ZIP Unix owners (a version, then a length and
# an id of at most 8 bytes for the owner, then for the group; none in a central entry).
# Each holds what it says and no more: room for unsigned bytes is none. Any other is
# refused: ZIP64's sizes (no package of this format's sizes needs them, and a second
# account of a member's sizes is two readings of it), Info-ZIP's Unicode path 0x7075
# (unzip's name for the member, not zipfile's), its Unicode comment 0x6375 (text that
# nothing signs); and a field that runs past its space.
_NTFS, _PKWARE_UNIX, _EXTENDED_TIMES, _INFOZIP_OWNERS = 0x000A, 0x000D, 0x5455, 0x7875
_EXTRA_HEADER = struct.Struct("<2H")


def _holds_what_it_says(kind: int, data: bytes) -> bool:
    """Whether an extra field of a kind taken is whole, and nothing but its values."""
    if kind == _NTFS:  # reserved, then attribute 1 (three times) of 24 bytes
        return len(data) == 32 and data[4:8] == struct.pack("<2H", 1, 24)
    if kind == _PKWARE_UNIX:
        return len(data) == 12
    if kind == _EXTENDED_TIMES:  # a time for each flag set, or the first alone (central)
        if not data or data[0] & ~0b111:
            return False
        local, central = 4 * bin(data[0]).count("1"), 4 * (data[0] & 1)
        return len(data) - 1 in (local, central)
    if kind == _INFOZIP_OWNERS:
        if not data:
            return True
        if len(data) < 3 or data[0] != 1 or data[1] > 8:
            return False
        gid_at = 2 + data[1]
        return len(data) > gid_at and data[gid_at] <= 8 and len(data) == gid_at + 1 + data[gid_at]
    return False


def _check_extra(extra: bytes, part: str) -> None:
    at = 0
    while at < len(extra):
        kind: int | None = None
        if at + _EXTRA_HEADER.size <= len(extra):
            kind, length = _EXTRA_HEADER.unpack_from(extra, at)
            data = extra[at + _EXTRA_HEADER.size : at + _EXTRA_HEADER.size + length]
            at += _EXTRA_HEADER.size + length
        if kind is None or at > len(extra) or not _holds_what_it_says(kind, data):
            raise MessageMalformed(
                "A part carries an extra field that could name or read it otherwise, or "
                "holds more than its values.",
                reason="extra_field",
                part=part,
                field=None if kind is None else f"0x{kind:04x}",
            )


def _descriptor_size(stream: BinaryIO, info: zipfile.ZipInfo, at: int, end_of_data: int) -> int:
    """The bytes of the data descriptor at ``at``, which must give the central directory's
    CRC and sizes and end within the archive's data."""
    stream.seek(at)
    data = stream.read(min(4 + _DESCRIPTORS[1].size, max(end_of_data - at, 0)))
    meant = (info.CRC, info.compress_size, info.file_size)
    signed = data.startswith(_DESCRIPTOR_SIGNATURE)
    for skip in (4, 0) if signed else (0,):
        for form in _DESCRIPTORS:
            if len(data) - skip >= form.size and form.unpack_from(data, skip) == meant:
                return skip + form.size
    raise MessageMalformed(
        "A part's data descriptor says otherwise than the central directory.",
        reason="local_header",
        part=info.filename,
        field="descriptor",
    )


# The first and last moments a ZIP member's date can hold (two-second steps).
_ZIP_FIRST = datetime(1980, 1, 1, tzinfo=UTC)
_ZIP_LAST = datetime(2107, 12, 31, 23, 59, 58, tzinfo=UTC)


def stored_entry(name: str, at: datetime) -> zipfile.ZipInfo:
    """A stored member's header dated ``at``: the same inputs give the same bytes (fixed
    time, system and permissions). A ZIP date (MS-DOS's) holds 1980 to 2107 only: a
    moment outside is dated at the nearer end (what a package says of time is in its
    signed header, never in these dates)."""
    moment = min(max(at.astimezone(UTC), _ZIP_FIRST), _ZIP_LAST)
    stamp = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info
