"""The metadata fields of an outgoing document: the one list every layer takes them from.

Each field says what kind of value it holds, how long its text may be, whether it may hold
line breaks, whether the review requires it, whether a client may edit it, and whether the
signed manifest carries it. The editable set (storage), the required-field check and the
manifest (actions) and the API's clearing rules (workflow) are derived from here; the
``documents`` table and the API's ``DocumentIn`` are written out, and a test holds them to
this list, field by field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# "moment": ISO 8601 date and time with its offset, stored as text.
Kind = Literal["text", "integer", "boolean", "date", "moment"]
# How the signed manifest carries a field, under the field's own name: always (null when
# missing), only when it is true or only when it is set (so documents signed before it
# existed keep their bytes), or never.
InManifest = Literal["always", "when_true", "when_set", "never"]
_EMPTY: dict[Kind, str | int | bool] = {"text": "", "integer": 0, "boolean": False}


@dataclass(frozen=True)
class DocumentField:
    """One metadata field of a document (QCVN 102 MessageHeader, Decree 30 format)."""

    name: str
    kind: Kind
    description: str
    # Characters the column holds (a date is ISO text, 10); None: unbounded, or no text.
    max_length: int | None = None
    # Stored as null when missing (otherwise as its kind's empty value: "", 0, false).
    nullable: bool = False
    # Given when the draft is created, and never cleared.
    required_at_creation: bool = False
    # Filled in before the document passes review (what an edXML MessageHeader needs).
    required_at_review: bool = False
    editable: bool = True
    manifest: InManifest = "always"
    multi_line: bool = False

    @property
    def empty(self) -> str | int | bool | None:
        """What the field holds when it is not given, or given as null to clear it."""
        if self.nullable:
            return None
        return _EMPTY[self.kind]


DOCUMENT_FIELDS: tuple[DocumentField, ...] = (
    DocumentField("number", "integer", "Số", nullable=True, required_at_review=True),
    DocumentField(
        "symbol", "text", "Ký hiệu, e.g. UBND-TĐKT", max_length=50, required_at_review=True
    ),
    DocumentField(
        "doc_type",
        "text",
        "Tên loại, e.g. CV (công văn)",
        max_length=50,
        required_at_creation=True,
        required_at_review=True,
    ),
    DocumentField(
        "legal_normative",
        "boolean",
        "Văn bản quy phạm pháp luật (a QĐ or NQ may be either): numbered in its type's own "
        "series, written with its year, e.g. 05/2024/QĐ-UBND. Default false.",
        manifest="when_true",
    ),
    DocumentField(
        "subject",
        "text",
        "Trích yếu",
        max_length=1000,
        required_at_creation=True,
        required_at_review=True,
    ),
    DocumentField("place", "text", "Địa danh", max_length=100, required_at_review=True),
    DocumentField(
        "issued_on",
        "date",
        "Ngày ban hành",
        max_length=10,
        nullable=True,
        required_at_review=True,
    ),
    DocumentField("content", "text", "Nội dung: the body text", manifest="never", multi_line=True),
    DocumentField(
        "signer_name", "text", "Họ tên người ký", max_length=200, required_at_review=True
    ),
    DocumentField(
        "signer_position",
        "text",
        "Chức vụ người ký, e.g. PHÓ CHỦ TỊCH",
        max_length=200,
        required_at_review=True,
    ),
    # A stacked signer block ("TM. ỦY BAN NHÂN DÂN" over "KT. CHỦ TỊCH") is lines.
    DocumentField(
        "signer_competence", "text", "e.g. KT. CHỦ TỊCH", max_length=200, multi_line=True
    ),
    DocumentField("urgency", "integer", "0 thường … 4 hỏa tốc hẹn giờ"),
    DocumentField(
        "secrecy", "text", "'' or mat, toi_mat, tuyet_mat", max_length=20, manifest="never"
    ),
    DocumentField("due_date", "date", "Hạn xử lý", max_length=10, nullable=True),
    DocumentField(
        "appointed_at",
        "moment",
        "Hẹn giờ: when a hỏa tốc hẹn giờ document (urgency 4) must reach its recipients, "
        "ISO 8601 with its offset",
        max_length=32,
        nullable=True,
        manifest="when_set",
    ),
    DocumentField(
        "signer_user",
        "text",
        "User name of the signer in the issuing agency",
        max_length=100,
        required_at_review=True,
        manifest="never",
    ),
)

FIELDS: dict[str, DocumentField] = {f.name: f for f in DOCUMENT_FIELDS}

# Fields a client may set on a draft.
EDITABLE: tuple[str, ...] = tuple(f.name for f in DOCUMENT_FIELDS if f.editable)
REQUIRED_AT_CREATION = frozenset(f.name for f in DOCUMENT_FIELDS if f.required_at_creation)
REQUIRED_AT_REVIEW: tuple[str, ...] = tuple(f.name for f in DOCUMENT_FIELDS if f.required_at_review)
DATES: tuple[str, ...] = tuple(f.name for f in DOCUMENT_FIELDS if f.kind == "date")
# What the manifest always names, and what it names only when true.
SIGNED: tuple[str, ...] = tuple(f.name for f in DOCUMENT_FIELDS if f.manifest == "always")
SIGNED_WHEN_TRUE: tuple[str, ...] = tuple(
    f.name for f in DOCUMENT_FIELDS if f.manifest == "when_true"
)
SIGNED_WHEN_SET: tuple[str, ...] = tuple(
    f.name for f in DOCUMENT_FIELDS if f.manifest == "when_set"
)
MOMENTS: tuple[str, ...] = tuple(f.name for f in DOCUMENT_FIELDS if f.kind == "moment")
MULTI_LINE = frozenset(f.name for f in DOCUMENT_FIELDS if f.multi_line)
