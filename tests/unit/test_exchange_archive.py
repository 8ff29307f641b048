"""What a receiver refuses of a package before trusting a byte of it (no keys needed)."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785

from congvan.actions.exchange.archive import Limits, stored_entry
from congvan.actions.exchange.envelope import read_canonical
from congvan.actions.exchange.names import safe_path
from congvan.actions.exchange.package import open_package
from congvan.states.errors import (
    ExchangeRefused,
    FormatUnsupported,
    MessageMalformed,
    PackageTooLarge,
)

LIMITS = Limits(max_total_size=100_000, max_parts=10, max_part_size=50_000)
SHA = "ab" * 32


def zipped(parts: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=compression) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return sink.getvalue()


def header(**changes: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        "format": "congvan-package/1",
        "message_id": "dispatch-1",
        "sender": "000.00.00.H57",
        "recipient": "000.00.11.H57",
        "business_type": "new",
        "document_id": "doc-1",
        "sent_at": "2021-02-06T02:15:00+00:00",
        "manifest_sha256": SHA,
        "parts": [
            {"name": "manifest.json", "role": "manifest", "media_type": "application/json",
             "size": 2, "sha256": SHA},
            {"name": "signature.p7s", "role": "signature",
             "media_type": "application/pkcs7-signature", "size": 3, "sha256": SHA},
        ],
    }  # fmt: skip
    content.update(changes)
    return content


def package(content: dict[str, Any] | bytes | None = None, **extra: bytes) -> bytes:
    body = content if isinstance(content, bytes) else rfc8785.dumps(content or header())
    parts = {
        "package.json": body,
        "agency.p7s": b"cms",
        "manifest.json": b"{}",
        "signature.p7s": b"cms",
    }
    return zipped({**parts, **extra})


def refusal(data: bytes, limits: Limits = LIMITS) -> ExchangeRefused:
    with pytest.raises(ExchangeRefused) as caught:
        open_package(io.BytesIO(data), limits)
    return caught.value


def test_a_well_formed_package_opens_and_names_its_parts() -> None:
    with open_package(io.BytesIO(package()), LIMITS) as opened:
        assert [p.name for p in opened.header.parts] == ["manifest.json", "signature.p7s"]
        assert (opened.manifest, opened.signature, opened.agency_signature) == (
            b"{}",
            b"cms",
            b"cms",
        )


def test_bytes_that_are_not_a_zip_are_refused() -> None:
    error = refusal(b"%PDF-1.4 not a package")

    assert (type(error), error.reason, error.http_status) == (MessageMalformed, "not_a_zip", 422)


@pytest.mark.parametrize(
    "name",
    ["../package.json", "/etc/passwd", "files/../../x.pdf", "files\\x.pdf", "C:/x.pdf",
     "files/./x.pdf", "files//x.pdf", "files/x\x7f.pdf", "files/", "files/ x.pdf",
     # look-alikes that a system folding compatibility forms, or Windows' best fit into a
     # code page, turns into separators, dots or forbidden characters
     "files/..\uff0fevil.pdf", "files/a\u2215b.pdf", "files/a\u2044b.pdf",
     "files/a\uff3cb.pdf", "files/a\u2216b.pdf", "files/\u2024\u2024", "files/a\uff1ab.pdf",
     "files/CON\uff0epdf", "files/a\u00a5b.pdf"],
)  # fmt: skip
def test_a_name_that_is_not_a_plain_relative_path_is_refused(name: str) -> None:
    error = refusal(package(**{name: b"x"}))

    assert (error.code, error.reason) == ("message_malformed", "unsafe_name")


def test_a_name_with_nul_is_refused_as_stored_not_as_zipfile_cuts_it() -> None:
    # zipfile would read "files/a.pdf\x00.exe" as "files/a.pdf"
    data = package(**{"files/a.pdfZ.exe": b"x"}).replace(b"a.pdfZ.exe", b"a.pdf\x00.exe")

    assert refusal(data).reason == "unsafe_name"


def test_a_non_ascii_name_not_flagged_utf8_is_refused() -> None:
    data = bytearray(package(**{"files/thư.pdf": b"x"}))
    # Clear the UTF-8 flag (bit 11) in the local and the central header alike.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.rfind(signature)
        flags = struct.unpack_from("<H", data, at + offset)[0]
        struct.pack_into("<H", data, at + offset, flags & ~0x800)

    assert refusal(bytes(data)).reason == "unsafe_name"


@pytest.mark.parametrize(
    "second", ["FILES/A.PDF", "files/\uff41.pdf", "files/A\ufe52pdf", "files/\u0430.pdf"]
)
def test_two_members_of_one_name_once_case_and_look_alikes_are_folded_are_refused(
    second: str,
) -> None:
    data = package(**{"files/a.pdf": b"x", second: b"y"})

    assert refusal(data).reason == "duplicate_name"


@pytest.mark.parametrize("second", ["files/a.pdf", "FILES/A.PDF"])
def test_two_members_of_the_same_name_are_refused(second: str) -> None:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        for name in ("package.json", "files/a.pdf", second):
            archive.writestr(name, b"x")
        if second != "files/a.pdf":  # keep the warning the exact duplicate raises
            archive.writestr("files/a.pdf", b"y")

    assert refusal(sink.getvalue()).reason == "duplicate_name"


def test_a_deflated_bomb_is_refused_before_a_byte_is_inflated() -> None:
    bomb = zipped(
        {"package.json": b"{}", "files/zeros.pdf": bytes(10_000_000)}, zipfile.ZIP_DEFLATED
    )
    assert len(bomb) < 20_000

    error = refusal(bomb, Limits(max_total_size=10**9, max_parts=10))

    assert (error.code, error.reason) == ("message_malformed", "compressed")


def test_a_size_declared_smaller_than_stored_is_refused() -> None:
    data = bytearray(package(**{"files/a.pdf": b"0123456789"}))
    central = data.rfind(b"PK\x01\x02")  # the last member's central header
    struct.pack_into("<L", data, central + 24, 4)  # uncompressed size: 4 of 10

    assert refusal(bytes(data)).reason == "declared_size"


def test_members_sharing_their_bytes_are_refused() -> None:
    # The overlapping-members bomb: the directory points two names at one member's data.
    data = bytearray(package(**{"files/a.pdf": b"x" * 1000, "files/b.pdf": b"x" * 1000}))
    centrals = [i for i in range(len(data)) if data.startswith(b"PK\x01\x02", i)]
    first_offset = struct.unpack_from("<L", data, centrals[-2] + 42)[0]
    struct.pack_into("<L", data, centrals[-1] + 42, first_offset)

    assert refusal(bytes(data)).reason == "layout"


def test_bytes_before_the_first_member_are_refused() -> None:
    # zipfile reads past them (a self-extracting archive); a package is nothing else.
    polyglot = b"%PDF-1.4 something else entirely\n" + package()

    refused = refusal(polyglot)
    assert refused.reason == "layout"
    # said as it is: before the first part, not between the directory and its end record
    assert refused.message == "33 bytes precede the archive's first part."


class _Forward(io.BytesIO):
    """A sink written front to back, as a package goes out: ``zipfile`` then writes each
    member's CRC and sizes in a data descriptor after it, 0 in its local header."""

    def seek(self, _offset: int, _whence: int = 0) -> int:
        raise io.UnsupportedOperation("written front to back")


def streamed(parts: dict[str, bytes]) -> bytes:
    sink = _Forward()
    with zipfile.ZipFile(sink, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return sink.getvalue()


def _package_parts() -> dict[str, bytes]:
    return {
        "package.json": rfc8785.dumps(header()),
        "agency.p7s": b"cms",
        "manifest.json": b"{}",
        "signature.p7s": b"cms",
    }


# The first member's local header: (offset, format) of a field, and what a writer at odds
# with the central directory puts there instead of what it holds.
LOCAL_CHANGES = [
    pytest.param("flags", 6, "<H", lambda flags: flags | 0x1, id="encrypted"),
    pytest.param("flags", 6, "<H", lambda flags: flags ^ 0x800, id="name_encoding"),
    pytest.param("method", 8, "<H", lambda _method: zipfile.ZIP_DEFLATED, id="deflated"),
    pytest.param("crc", 14, "<L", lambda crc: crc ^ 0x5A5A5A5A, id="crc"),
    pytest.param("compressed_size", 18, "<L", lambda size: 7 if size == 0 else 0, id="csize"),
    pytest.param("size", 22, "<L", lambda size: size + 7, id="size"),
    # package.json named Package.json
    pytest.param("name", 30, "<B", lambda first: first ^ 0x20, id="name"),
]


@pytest.mark.parametrize("write", [zipped, streamed])
def test_a_package_written_either_way_opens(write: Any) -> None:
    data = write(_package_parts())
    descriptors = data.count(b"PK\x07\x08")
    assert (4 if write is streamed else 0) == descriptors

    with open_package(io.BytesIO(data), LIMITS) as opened:
        assert opened.manifest == b"{}"


@pytest.mark.parametrize("write", [zipped, streamed])
@pytest.mark.parametrize(("field", "at", "form", "change"), LOCAL_CHANGES)
def test_a_local_header_at_odds_with_the_central_directory_is_refused(
    write: Any, field: str, at: int, form: str, change: Any
) -> None:
    # Given a package whose first local header says otherwise than the directory (which
    # alone zipfile reads: Info-ZIP's unzip would read another archive)
    data = bytearray(write(_package_parts()))
    (value,) = struct.unpack_from(form, data, at)
    struct.pack_into(form, data, at, change(value))

    # When it is opened, then it is refused, naming what the local header got wrong
    error = refusal(bytes(data))

    assert ("message_malformed", "local_header") == (error.code, error.reason)
    assert {"part": "package.json", "field": field} == {
        k: error.details[k] for k in ("part", "field")
    }


@pytest.mark.parametrize("value", [0, 1])
def test_a_data_descriptor_at_odds_with_the_central_directory_is_refused(value: int) -> None:
    # Given a package written front to back whose first data descriptor gives another CRC
    parts = _package_parts()
    data = bytearray(streamed(parts))
    descriptor = data.index(b"PK\x07\x08")
    assert _LOCAL_HEADER_BYTES + len("package.json") + len(parts["package.json"]) == descriptor
    struct.pack_into("<L", data, descriptor + 4, value)

    # When it is opened, then it is refused
    error = refusal(bytes(data))

    assert ("local_header", "descriptor") == (error.reason, error.details["field"])


_LOCAL_HEADER_BYTES = 30


@pytest.mark.parametrize("junk", [b"x", b"\x00" * 60_000, b"PK\x05\x06" + bytes(30)])
def test_bytes_after_the_end_record_are_refused(junk: bytes) -> None:
    # zipfile finds the record and reads nothing after it: they would travel unread.
    assert refusal(package() + junk).reason == "layout"


def test_a_comment_the_end_record_declares_is_refused() -> None:
    # Read as part of the record (not bytes after it), shown by unzip, signed by nobody
    data = bytearray(package())
    struct.pack_into("<H", data, len(data) - 2, 5)  # the comment's length

    error = refusal(bytes(data) + b"hello")

    assert (error.reason, error.details["part"]) == ("comment", "(end record)")


@pytest.mark.parametrize(
    ("on_disk", "in_all", "disk", "directory_disk"),
    # counts (``n``: as many as the directory holds) and disks, otherwise than it is
    [("0", "0", 0, 0), ("1", "1", 0, 0), ("9", "9", 0, 0), ("n-1", "n", 0, 0),
     ("n", "n-1", 0, 0), ("n", "n", 1, 1), ("n", "n", 0, 1)],
)  # fmt: skip
def test_an_end_record_at_odds_with_its_directory_is_refused(
    on_disk: str, in_all: str, disk: int, directory_disk: int
) -> None:
    # zipfile reads the directory by its size and ignores these; unzip reads them, and
    # finds another archive (or none) where the counts or disks say otherwise
    data = bytearray(package())
    n = len(zipfile.ZipFile(io.BytesIO(bytes(data))).infolist())
    counts = [{"n": n, "n-1": n - 1}.get(c) or int(c) for c in (on_disk, in_all)]
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<4H", data, end + 4, disk, directory_disk, *counts)

    error = refusal(bytes(data))

    assert (error.reason, error.details["part"]) == ("layout", "(end record)")


def test_a_part_starting_on_another_disk_is_refused() -> None:
    data = bytearray(package())
    first = data.find(b"PK\x01\x02")  # package.json's directory entry
    struct.pack_into("<H", data, first + 34, 1)  # its disk number start

    error = refusal(bytes(data))

    assert (error.reason, error.details["part"]) == ("layout", "package.json")


def _with_entry(change: Any) -> bytes:
    """A package whose package.json member's header (local and central) ``change`` set."""
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        for name, data in _package_parts().items():
            info = zipfile.ZipInfo(name, date_time=(2021, 2, 6, 9, 15, 0))
            if name == "package.json":
                change(info)
            archive.writestr(info, data)
    return sink.getvalue()


def _unicode_path(name: str) -> bytes:
    # Info-ZIP's Unicode Path field: version 1, the CRC of the header's name, the name
    # unzip then shows and extracts to (zipfile reads the header's)
    path = name.encode()
    return struct.pack("<2HBL", 0x7075, 5 + len(path), 1, zlib.crc32(b"package.json")) + path


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (_unicode_path("manifest.json"), "0x7075"),  # two readers, two archives
        (_unicode_path("../../evil.json"), "0x7075"),
        (struct.pack("<2HB", 0x6375, 1, 1), "0x6375"),  # Info-ZIP's Unicode comment
        (struct.pack("<2H", 0xCAFE, 0), "0xcafe"),  # any other, unknown to the format
        (b"\x01", None),  # a field cut short
    ],
    ids=["unicode-path", "unicode-path-climbing", "unicode-comment", "unknown", "short"],
)
def test_an_extra_field_that_could_name_or_read_a_member_otherwise_is_refused(
    extra: bytes, field: str | None
) -> None:
    def add(info: zipfile.ZipInfo) -> None:
        info.extra = extra

    error = refusal(_with_entry(add))

    assert (error.reason, error.details["part"]) == ("extra_field", "package.json")
    assert error.details["field"] == field


_NTFS_TIMES = struct.pack("<2HL2H3Q", 0x000A, 32, 0, 1, 24, 1, 2, 3)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        # a usual field's id before bytes no signature covers
        (struct.pack("<2HBL", 0x5455, 301, 1, 1612577700) + b"<script>" * 37, "0x5455"),
        (struct.pack("<2HBL", 0x5455, 9, 1, 1612577700) + b"1234", "0x5455"),  # one time
        (struct.pack("<2HBL", 0x5455, 5, 0x81, 1612577700), "0x5455"),  # an unused flag
        (_NTFS_TIMES[:2] + struct.pack("<H", 40) + _NTFS_TIMES[4:] + b"HIDDEN!!", "0x000a"),
        (struct.pack("<2HL2H3Q", 0x000A, 32, 0, 2, 24, 1, 2, 3), "0x000a"),  # another tag
        (struct.pack("<2H2L2H", 0x000D, 20, 1, 2, 0, 0) + b"/etc/pwd", "0x000d"),  # a link
        (struct.pack("<2H2BLBL", 0x7875, 12, 1, 4, 1000, 4, 1000) + b"x", "0x7875"),
        (struct.pack("<2H2B", 0x7875, 16, 1, 9) + bytes(9) + struct.pack("<BL", 4, 0),
         "0x7875"),  # an owner of 9 bytes
        # ZIP64's sizes, a second account of them (here of a terabyte)
        (struct.pack("<2H2Q", 0x0001, 16, 10**12, 10**12), "0x0001"),
    ],
    ids=["times+30000", "times+4", "times-flag", "ntfs+8", "ntfs-tag", "unix-link",
         "owners+1", "owner-9-bytes", "zip64"],
)  # fmt: skip
def test_an_extra_field_holding_more_than_its_values_is_refused(extra: bytes, field: str) -> None:
    def add(info: zipfile.ZipInfo) -> None:
        info.extra = extra

    error = refusal(_with_entry(add))

    assert (error.reason, error.details["field"]) == ("extra_field", field)


def test_an_extra_field_claiming_more_than_it_holds_is_refused() -> None:
    def add(info: zipfile.ZipInfo) -> None:
        info.extra = struct.pack("<2HL", 0x5455, 9, 0)

    assert refusal(_with_entry(add)).code == "message_malformed"


def test_the_usual_times_and_owners_in_extra_fields_are_taken() -> None:
    def add(info: zipfile.ZipInfo) -> None:
        # As Info-ZIP's zip writes them: modification time, then Unix owner and group
        info.extra = struct.pack("<2HBL", 0x5455, 5, 1, 1612577700) + struct.pack(
            "<2H2BLBL", 0x7875, 11, 1, 4, 1000, 4, 1000
        )

    with open_package(io.BytesIO(_with_entry(add)), LIMITS) as opened:
        assert opened.manifest == b"{}"
    # and as Windows and PKWARE write them: NTFS times, Unix times and owners
    for extra in (
        _NTFS_TIMES,
        struct.pack("<2H2L2H", 0x000D, 12, 1, 2, 1000, 1000),
        struct.pack("<2HB3L", 0x5455, 13, 7, 1, 2, 3) + struct.pack("<2H", 0x7875, 0),
    ):

        def given(info: zipfile.ZipInfo, extra: bytes = extra) -> None:
            info.extra = extra

        with open_package(io.BytesIO(_with_entry(given)), LIMITS) as opened:
            assert opened.manifest == b"{}"


@pytest.mark.parametrize(
    ("attributes", "system"),
    [
        (0o120777 << 16, 3),  # a symbolic link: unzip writes a link to what it holds
        (0o040755 << 16, 3),  # a folder
        (0o060644 << 16, 3),  # a block device
        (0o104755 << 16, 3),  # set-user-ID
        (0o120777 << 16, 0),  # a link's mode on a member said to be made on MS-DOS
        (0x10, 0),  # the MS-DOS folder attribute
    ],
    ids=["symlink", "folder", "device", "setuid", "symlink-dos", "dos-folder"],
)
def test_a_member_unzip_would_make_other_than_a_plain_file_is_refused(
    attributes: int, system: int
) -> None:
    def mark(info: zipfile.ZipInfo) -> None:
        info.create_system = system
        info.external_attr = attributes

    error = refusal(_with_entry(mark))

    assert (error.reason, error.details["part"]) == ("not_a_file", "package.json")


@pytest.mark.parametrize("attributes", [0, 0o100644 << 16, 0o100755 << 16, 0x20, 0x01])
def test_a_plain_files_usual_attributes_are_taken(attributes: int) -> None:
    def mark(info: zipfile.ZipInfo) -> None:
        info.external_attr = attributes

    with open_package(io.BytesIO(_with_entry(mark)), LIMITS) as opened:
        assert opened.manifest == b"{}"


def test_a_members_comment_is_refused() -> None:
    def add(info: zipfile.ZipInfo) -> None:
        info.comment = b"status 03"

    error = refusal(_with_entry(add))

    assert (error.reason, error.details["part"]) == ("comment", "package.json")


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (Limits(max_total_size=100_000, max_parts=3), "too_many_parts"),
        (Limits(max_total_size=100_000, max_parts=10, max_part_size=500), "part_too_large"),
        (Limits(max_total_size=1_500, max_parts=10), "total_too_large"),
        (Limits(max_total_size=100_000, max_parts=10, max_metadata_size=10), "part_too_large"),
    ],
)
def test_a_package_over_the_receivers_limits_is_refused(limits: Limits, reason: str) -> None:
    error = refusal(package(**{"files/a.pdf": b"x" * 1000}), limits)

    assert (type(error), error.reason, error.http_status) == (PackageTooLarge, reason, 413)


def test_a_member_package_json_does_not_list_is_refused() -> None:
    error = refusal(package(**{"files/extra.pdf": b"x"}))

    assert (error.reason, error.details["parts"]) == ("extra_part", ["files/extra.pdf"])


def test_a_member_package_json_lists_but_the_archive_lacks_is_refused() -> None:
    file_part = {"name": "files/a.pdf", "role": "main", "media_type": "application/pdf",
                 "size": 1, "sha256": SHA}  # fmt: skip
    content = header()
    content["parts"].append(file_part)

    error = refusal(package(content))

    assert (error.reason, error.details["parts"]) == ("missing_part", ["files/a.pdf"])


def test_a_package_without_package_json_is_refused() -> None:
    assert refusal(zipped({"manifest.json": b"{}"})).reason == "missing_part"


def test_package_json_written_other_than_canonically_is_refused() -> None:
    pretty = json.dumps(header(), indent=2, ensure_ascii=False).encode()

    error = refusal(package(pretty))

    assert (error.code, error.reason) == ("message_malformed", "non_canonical")


def test_an_unknown_format_is_refused() -> None:
    error = refusal(package(header(format="congvan-package/2")))

    assert (type(error), error.reason) == (FormatUnsupported, "unknown_format")


ORIGINAL = {"message_id": "dispatch-0", "document_id": "doc-0", "number": 12,
            "symbol": "UBND-VP"}  # fmt: skip


@pytest.mark.parametrize(
    ("business_type", "extra"),
    [
        ("recall", {"reason": "Gửi nhầm", "original": ORIGINAL}),
        ("update", {"reason": "Sai trích yếu", "original": ORIGINAL,
                    "changes": {"subject": "V/v đúng", "due_date": None}}),
        ("replace", {"reason": "Sai nội dung", "original": {**ORIGINAL, "number": None}}),
    ],
)  # fmt: skip
def test_a_recall_update_or_replacement_names_its_original_and_reason(
    business_type: str, extra: dict[str, Any]
) -> None:
    data = package(header(business_type=business_type, **extra))
    with open_package(io.BytesIO(data), LIMITS) as opened:
        read = opened.header

    assert (read.business_type, read.reason) == (business_type, extra["reason"])
    assert read.original is not None
    assert (read.original.message_id, read.original.number) == (
        "dispatch-0",
        extra["original"]["number"],
    )
    assert read.changes == extra.get("changes")


@pytest.mark.parametrize(
    "content",
    [
        header(business_type="recall"),  # no reason, no original
        header(business_type="recall", reason="x", original=ORIGINAL, changes={"subject": "y"}),
        header(business_type="new", reason="x"),
        header(business_type="recall", reason=" ", original=ORIGINAL),
        header(business_type="recall", reason="x", original={**ORIGINAL, "number": "12"}),
        header(business_type="recall", reason="x", original={"message_id": "m"}),
        header(business_type="update", reason="x", original=ORIGINAL, changes={}),
        header(business_type="update", reason="x", original=ORIGINAL, changes={"number": "5"}),
        header(business_type="update", reason="x", original=ORIGINAL, changes={"subject": 5}),
        # each change as the document's field holds it, what review requires never cleared
        *(
            header(business_type="update", reason="x", original=ORIGINAL, changes=changes)
            for changes in (
                {"subject": None},
                {"signer_name": None},
                {"place": "   "},
                {"issued_on": "hôm qua"},
                {"due_date": "2026-02-30"},
                {"place": "P" * 500},
                {"subject": "V/v một\u2028hai"},
            )
        ),
    ],
)
def test_a_request_missing_or_misstating_its_members_is_refused(content: dict[str, Any]) -> None:
    error = refusal(package(content))

    assert type(error) is MessageMalformed
    assert error.reason in ("member", "members")


@pytest.mark.parametrize(
    "content",
    [
        header(sent_at="2021-02-06T02:15:00"),  # no offset
        header(recipient="sở nội vụ"),
        header(manifest_sha256="AB" * 32),
        header(message_id="has spaces"),
        header(business_type="sideways"),
        {**header(), "priority": 3},
        {k: v for k, v in header().items() if k != "document_id"},
    ],
)
def test_a_header_member_missing_extra_or_mistyped_is_refused(content: dict[str, Any]) -> None:
    assert refusal(package(content)).reason in ("member", "members")


@pytest.mark.parametrize(
    "name", ["files/../x.pdf", "other/x.pdf", "files/a/b.pdf", "package.json", "files/"]
)
def test_a_part_name_package_json_lists_outside_the_layout_is_refused(name: str) -> None:
    content = header()
    content["parts"].append(
        {"name": name, "role": "main", "media_type": "application/pdf", "size": 1, "sha256": SHA}
    )

    assert refusal(package(content)).reason == "unsafe_name"


@pytest.mark.parametrize("name", [["files/x.pdf"], {"a": 1}, 7, None, True])
def test_a_part_name_that_is_not_text_is_malformed(name: Any) -> None:
    content = header()
    content["parts"][0]["name"] = name

    error = refusal(package(content))

    assert (type(error), error.reason) == (MessageMalformed, "member")


def test_json_with_a_key_twice_is_not_canonical() -> None:
    body = b'{"format":"congvan-receipt/1","format":"congvan-receipt/1"}'

    with pytest.raises(MessageMalformed) as caught:
        read_canonical(body, "congvan-receipt/1")

    assert caught.value.reason == "non_canonical"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("files/Phụ lục 1.pdf", True),
        ("files/1227-UBND-TĐKT.pdf", True),
        ("files/Phu\u0323 lu\u0323c.pdf", False),  # NFD: the same text, other bytes
        ("files/..", False),
        ("files/a\nb.pdf", False),
        # names Windows would write as another file, or as none: a colon names a stream
        # of the file before it, a trailing dot or space is dropped, a device is opened
        ("files/Quyết định: số 5.pdf", False),
        ("files/Phụ lục.pdf:Zone.Identifier", False),
        ("files/Phụ lục.pdf.", False),
        ("files/Phụ lục.pdf ", False),
        ("files/a...", False),
        ("files/CON", False),
        ("files/nul.pdf", False),
        ("files/Com1.txt", False),
        ("files/LPT¹", False),
        ("files/a?.pdf", False),
        ('files/"a".pdf', False),
        ("files/a|b.pdf", False),
        ("files/console.pdf", True),  # a device only as the whole stem
        ("files/.hidden.pdf", True),
    ],
)
def test_safe_paths(name: str, safe: bool) -> None:
    assert safe_path(name) is safe


def _many_empty_members(count: int) -> bytes:
    return zipped({f"files/{i}.pdf": b"" for i in range(count)})


def test_a_directory_of_more_parts_than_taken_is_refused_before_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _many_empty_members(2_000)

    def never(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("zipfile read a directory the end record already refused")

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", never)
    error = refusal(data)

    assert (type(error), error.reason) == (PackageTooLarge, "too_many_parts")


def test_an_end_record_understating_its_entries_is_still_bounded_by_its_size() -> None:
    data = bytearray(_many_empty_members(2_000))
    at = data.rfind(b"PK\x05\x06")
    struct.pack_into("<2H", data, at + 8, 3, 3)  # "3 entries" in a directory of 2,000

    error = refusal(bytes(data))

    assert (type(error), error.reason) == (PackageTooLarge, "too_many_parts")


def test_an_end_record_overstating_its_entries_is_told_as_its_claim() -> None:
    # Given 3 members whose end record claims 200
    data = bytearray(_many_empty_members(3))
    at = data.rfind(b"PK\x05\x06")
    struct.pack_into("<2H", data, at + 8, 200, 200)

    error = refusal(bytes(data))

    # Then it is refused before the directory is read, saying what the record claims
    # (not that the archive has more members than it has)
    assert (type(error), error.reason) == (PackageTooLarge, "too_many_parts")
    assert "end record counts 200 members" in error.message
    assert error.details["counted"] == 200


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (Limits(max_total_size=100_000, max_parts=10, max_files=1), "too_many_files"),
        (Limits(max_total_size=100_000, max_parts=10, max_file_size=999), "part_too_large"),
    ],
)
def test_a_packages_files_are_held_to_what_a_document_may_have(limits: Limits, reason: str) -> None:
    data = package(**{"files/a.pdf": b"x" * 1000, "files/b.pdf": b"y"})
    error = refusal(data, limits)
    assert (type(error), error.reason, error.http_status) == (PackageTooLarge, reason, 413)
    # Within them, the same package goes on to be read (package.json lists neither file)
    roomy = Limits(max_total_size=100_000, max_parts=10, max_files=2, max_file_size=1000)
    assert refusal(data, roomy).reason == "extra_part"


@pytest.mark.parametrize(
    ("year", "dated"),
    [(1970, (1980, 1, 1, 0, 0, 0)), (2026, (2026, 12, 3, 9, 30, 44)),
     (2107, (2107, 12, 3, 9, 30, 44)), (2108, (2107, 12, 31, 23, 59, 58)),
     (2199, (2107, 12, 31, 23, 59, 58))],
)  # fmt: skip
def test_a_member_is_dated_within_what_a_zip_date_holds(year: int, dated: tuple[int, ...]) -> None:
    # A ZIP (MS-DOS) date holds 1980 to 2107; any moment the engine reckons with is written
    info = stored_entry("header.json", datetime(year, 12, 3, 9, 30, 45, tzinfo=UTC))
    written = io.BytesIO()
    with zipfile.ZipFile(written, "w") as archive:
        archive.writestr(info, b"{}")

    with zipfile.ZipFile(written) as archive:
        assert archive.infolist()[0].date_time == dated


@pytest.mark.parametrize(
    "order",
    [
        ["agency.p7s", "package.json", "manifest.json", "signature.p7s"],
        ["package.json", "agency.p7s", "signature.p7s", "manifest.json"],
        ["manifest.json", "signature.p7s", "package.json", "agency.p7s"],
    ],
)
def test_members_in_another_order_than_package_json_lists_are_refused(order: list[str]) -> None:
    # Given the members of a well-formed package, in another order than its header lists
    members = {"package.json": rfc8785.dumps(header()), "agency.p7s": b"cms",
               "manifest.json": b"{}", "signature.p7s": b"cms"}  # fmt: skip

    # Then it is refused: one header stands for one archive, not for each reordering of it
    error = refusal(zipped({name: members[name] for name in order}))
    assert (type(error), error.reason) == (MessageMalformed, "member_order")


# -- one archive to every reader: nothing between members, one directory -------------------

_END = struct.Struct("<4s4H2LH")


def _unlisted(data: bytes, name: str) -> bytes:
    """``data`` with ``name``'s central directory entry left out: its local header and
    bytes stay where they lie, found only by a reader of local headers."""
    end = data.rindex(b"PK\x05\x06")
    size, offset = _END.unpack_from(data, end)[5:7]
    directory, kept, at = data[offset : offset + size], [], 0
    while at < len(directory):
        lengths = struct.unpack_from("<3H", directory, at + 28)
        entry = directory[at : at + 46 + sum(lengths)]
        if entry[46 : 46 + lengths[0]] != name.encode():
            kept.append(entry)
        at += len(entry)
    listed = b"".join(kept)
    record = _END.pack(b"PK\x05\x06", 0, 0, len(kept), len(kept), len(listed), offset, 0)
    return data[:offset] + listed + record


def _in_order(names: list[str]) -> bytes:
    parts = {**_package_parts(), "files/hidden.pdf": b"%PDF-1.4 unsigned"}
    return zipped({name: parts[name] for name in names})


@pytest.mark.parametrize(
    "names",
    [
        ["package.json", "agency.p7s", "files/hidden.pdf", "manifest.json", "signature.p7s"],
        ["package.json", "agency.p7s", "manifest.json", "signature.p7s", "files/hidden.pdf"],
    ],
    ids=["between-members", "before-the-directory"],
)
def test_a_member_the_directory_does_not_list_is_refused(names: list[str]) -> None:
    # A streaming reader (Java's ZipInputStream, unzip's recovery) finds the member by its
    # local header: a signed package would carry a file nothing signs
    data = _unlisted(_in_order(names), "files/hidden.pdf")
    with zipfile.ZipFile(io.BytesIO(data)) as readable:  # zipfile alone sees nothing amiss
        assert "files/hidden.pdf" not in readable.namelist()

    assert refusal(data).reason == "layout"


def test_a_zip64_end_record_a_second_account_of_the_directory_is_refused() -> None:
    data = streamed(_package_parts())
    end = data.rindex(b"PK\x05\x06")
    count, size, offset = _END.unpack_from(data, end)[4:7]
    record64 = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    data = data[:end] + record64 + locator + data[end:]
    with zipfile.ZipFile(io.BytesIO(data)) as readable:  # zipfile reads it by the ZIP64 one
        assert readable.testzip() is None

    assert refusal(data).reason == "layout"


def test_bytes_between_the_directory_and_the_end_record_are_refused() -> None:
    data = streamed(_package_parts())
    end = data.rindex(b"PK\x05\x06")

    assert refusal(data[:end] + b"PK\x01\x02 a second directory" + data[end:]).reason == "layout"


def _flagged(flags: int) -> bytes:
    """A package whose first member's headers (local and central) carry ``flags`` too:
    zipfile writes its own flags, so they are set in the bytes."""
    data = bytearray(streamed(_package_parts()))
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.index(signature)
        (value,) = struct.unpack_from("<H", data, start + at)
        struct.pack_into("<H", data, start + at, value | flags)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_flagged(0x20), "unsupported"),  # compressed patched data
        (_flagged(0x40), "encrypted"),  # strong encryption
        (_flagged(0x2000), "encrypted"),  # the central directory's
        (_flagged(0x4000), "unsupported"),  # reserved
        (_with_entry(lambda info: setattr(info, "extract_version", 63)), "unsupported"),
        (_with_entry(lambda info: setattr(info, "extract_version", 255)), "unsupported"),
    ],
    ids=["patched-data", "strong-encryption", "directory-encryption", "reserved", "v6.3", "v25.5"],
)
def test_a_member_asking_to_be_read_in_a_way_the_format_never_uses_is_refused(
    data: bytes, reason: str
) -> None:
    # zipfile raises NotImplementedError on some of them: a refusal, never a crash
    assert refusal(data).reason == reason
