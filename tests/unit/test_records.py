"""The records storage/ hands up name exactly the columns of their tables."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from congvan.states.certificates import CertificateDescription
from congvan.states.fields import DOCUMENT_FIELDS
from congvan.storage.agencies import AgencyRow, UserRow
from congvan.storage.anchors import AnchorRow
from congvan.storage.audit import AuditEvent, AuditRow
from congvan.storage.authorities import AuthorityRow
from congvan.storage.dispatches import DispatchRow, SealedDispatch
from congvan.storage.documents import AttachmentRow, DocumentRow, RecipientRow
from congvan.storage.signatures import CertificateRow, CrlRow, SignatureRow
from congvan.storage.tables import (
    Agency,
    Attachment,
    AuditAnchor,
    AuditEntry,
    Certificate,
    Dispatch,
    Document,
    Recipient,
    RevocationList,
    Signature,
    SigningAuthority,
    Timestamp,
    User,
)
from congvan.storage.timestamps import TimestampRow


def names(record: type) -> list[str]:
    return [f.name for f in dataclasses.fields(record)]


def columns(table: type) -> set[str]:
    return {c.name for c in table.__table__.columns}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("record", "table"),
    [
        (DocumentRow, Document),
        (SignatureRow, Signature),
        (CertificateRow, Certificate),
        (AgencyRow, Agency),
        (UserRow, User),
        (AuditRow, AuditEntry),
        (AnchorRow, AuditAnchor),
        (AuthorityRow, SigningAuthority),
        (CrlRow, RevocationList),
        (TimestampRow, Timestamp),
    ],
)
def test_a_whole_row_record_has_every_column_and_no_other(record: type, table: type) -> None:
    assert columns(table) == set(names(record))


def test_a_dispatch_row_has_every_column_but_the_sealed_bytes_read_on_their_own() -> None:
    # The package header and the receipt are read when a delivery needs them, not with
    # every dispatch a document lists.
    apart = {f.name for f in dataclasses.fields(SealedDispatch)} | {"receipt", "receipt_cms"}
    assert columns(Dispatch) == set(names(DispatchRow)) | apart


@pytest.mark.parametrize(
    ("record", "table"),
    [(RecipientRow, Recipient), (AttachmentRow, Attachment), (AuditEvent, AuditEntry)],
)
def test_a_listed_row_record_names_columns_only(record: type, table: type) -> None:
    assert set(names(record)) <= columns(table)


def test_every_document_field_is_a_column_of_the_record() -> None:
    assert set() == {f.name for f in DOCUMENT_FIELDS} - set(names(DocumentRow))


def test_a_record_is_frozen() -> None:
    row = RecipientRow(organ_id="000.00.01.H57", name="Văn phòng UBND tỉnh")

    with pytest.raises(dataclasses.FrozenInstanceError):
        row.name = "khác"  # type: ignore[misc]


def test_a_certificate_record_does_not_show_its_key() -> None:
    # The key is encrypted, but a row that reaches a log or an error must not carry it.
    at = datetime(2026, 1, 1, tzinfo=UTC)
    subject = CertificateDescription(
        "UBND tỉnh", "", "UBND tỉnh", "000.00.00.H57", "", "1f", "CA", "ab" * 32, at, at
    )
    key = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\n"
    row = CertificateRow(
        "c1", "agency", "000.00.00.H57", None, "ab" * 32, "1f", subject, "PEM", key,
        at, at, None, "", at,
    )  # fmt: skip

    assert "MIIFHDBOBgkq" not in repr(row)
    assert "ab" * 32 in repr(row)
