"""The records storage/ hands up name exactly the columns of their tables."""

from __future__ import annotations

import dataclasses

import pytest

from congvan.states.fields import DOCUMENT_FIELDS
from congvan.storage.dispatches import DispatchRow, SealedDispatch
from congvan.storage.documents import AttachmentRow, DocumentRow, RecipientRow
from congvan.storage.signatures import SignatureRow
from congvan.storage.tables import Attachment, Dispatch, Document, Recipient, Signature


def names(record: type) -> list[str]:
    return [f.name for f in dataclasses.fields(record)]


def columns(table: type) -> set[str]:
    return {c.name for c in table.__table__.columns}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("record", "table"),
    [(DocumentRow, Document), (SignatureRow, Signature)],
)
def test_a_whole_row_record_has_every_column_and_no_other(record: type, table: type) -> None:
    assert columns(table) == set(names(record))


def test_a_dispatch_row_has_every_column_but_the_sealed_bytes_read_on_their_own() -> None:
    # The package header and the receipt are read when a delivery needs them, not with
    # every dispatch a document lists.
    apart = {f.name for f in dataclasses.fields(SealedDispatch)} | {"receipt", "receipt_cms"}
    assert columns(Dispatch) == set(names(DispatchRow)) | apart


@pytest.mark.parametrize(
    ("record", "table"), [(RecipientRow, Recipient), (AttachmentRow, Attachment)]
)
def test_a_listed_row_record_names_columns_only(record: type, table: type) -> None:
    assert set(names(record)) <= columns(table)


def test_every_document_field_is_a_column_of_the_record() -> None:
    assert set() == {f.name for f in DOCUMENT_FIELDS} - set(names(DocumentRow))


def test_a_record_is_frozen() -> None:
    row = RecipientRow(organ_id="000.00.01.H57", name="Văn phòng UBND tỉnh")

    with pytest.raises(dataclasses.FrozenInstanceError):
        row.name = "khác"  # type: ignore[misc]
