"""One list of a document's fields: the table, the API's bodies and answers keep to it."""

from __future__ import annotations

from typing import Any

import pytest

from congvan.states.fields import (
    DOCUMENT_FIELDS,
    EDITABLE,
    FIELDS,
    REQUIRED_AT_CREATION,
    REQUIRED_AT_REVIEW,
    SIGNED,
    SIGNED_WHEN_SET,
    SIGNED_WHEN_TRUE,
    DocumentField,
)
from congvan.states.text import MULTI_LINE_FIELDS
from congvan.storage.tables import Document
from congvan.workflow.api.findings import Manifest
from congvan.workflow.api.outputs import DocumentOut, Signer
from congvan.workflow.api.schemas import DocumentFields, DocumentIn
from congvan.workflow.api.trail import RecordedFields

# The documents table's columns that are its lifecycle, not the document's metadata.
LIFECYCLE = {
    "id",
    "agency_id",
    "state",
    "version",
    "revision",
    "submitted_revision",
    "audit_head",
    "created_by",
    "created_at",
    "updated_at",
    # A replacement's link to the document it replaces, and why (set when it is drafted).
    "replaces_id",
    "replace_reason",
}
_COLUMNS = {c.name: c for c in Document.__table__.c}  # type: ignore[attr-defined]
# The column type of each kind of field (a date is ISO text), and how the API's JSON
# schema writes it.
_PYTHON: dict[str, type] = {
    "text": str,
    "integer": int,
    "boolean": bool,
    "date": str,
    "moment": str,
}
_JSON = {
    "text": {"type": "string"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "moment": {"type": "string", "format": "date-time"},
}


def _differences(declared: set[str], listed: set[str], where: str) -> str:
    missing = sorted(declared - listed)
    extra = sorted(listed - declared)
    return f"{where} lacks {missing} and lists undeclared {extra}"


# -- what is derived keeps its behaviour ---------------------------------------------------


def test_the_derived_lists_are_the_ones_the_rules_name() -> None:
    assert (
        "number",
        "symbol",
        "doc_type",
        "legal_normative",
        "subject",
        "place",
        "issued_on",
        "content",
        "signer_name",
        "signer_position",
        "signer_competence",
        "urgency",
        "secrecy",
        "due_date",
        "appointed_at",
        "signer_user",
    ) == EDITABLE
    assert {"doc_type", "subject"} == REQUIRED_AT_CREATION
    # What an edXML MessageHeader needs (QCVN 102), in the order the finding names them.
    assert (
        "number",
        "symbol",
        "doc_type",
        "subject",
        "place",
        "issued_on",
        "signer_name",
        "signer_position",
        "signer_user",
    ) == REQUIRED_AT_REVIEW
    assert {"content", "reason", "comment", "signer_competence"} == MULTI_LINE_FIELDS


def test_the_manifest_format_names_the_fields_it_always_named() -> None:
    # Changing these changes the bytes of every signed manifest (congvan-manifest/1).
    assert {
        "number",
        "symbol",
        "doc_type",
        "subject",
        "place",
        "issued_on",
        "signer_name",
        "signer_position",
        "signer_competence",
        "urgency",
        "due_date",
    } == set(SIGNED)
    assert ("legal_normative",) == SIGNED_WHEN_TRUE
    # Named only when set: a manifest without an appointed time keeps its bytes.
    assert ("appointed_at",) == SIGNED_WHEN_SET


def test_each_field_is_declared_once() -> None:
    assert len(DOCUMENT_FIELDS) == len(FIELDS)


# -- what is written out keeps to the declaration ------------------------------------------


def test_the_documents_table_has_a_column_for_every_field_and_no_other() -> None:
    listed = set(_COLUMNS) - LIFECYCLE

    assert set(FIELDS) == listed, _differences(set(FIELDS), listed, "the documents table")


@pytest.mark.parametrize("field", DOCUMENT_FIELDS, ids=lambda f: f.name)
def test_each_column_holds_what_its_field_declares(field: DocumentField) -> None:
    column = _COLUMNS[field.name]
    default = column.default.arg if column.default is not None else None

    assert field.max_length == getattr(column.type, "length", None), field.name
    assert field.nullable == column.nullable, field.name
    assert (None if field.required_at_creation else field.empty) == default, field.name
    python_type = _PYTHON[field.kind]
    expected = python_type | None if field.nullable else python_type
    assert expected == Document.model_fields[field.name].annotation, field.name


def test_the_api_body_has_a_member_for_every_field_and_no_other() -> None:
    listed = set(DocumentFields.model_fields)

    assert set(FIELDS) == listed, _differences(set(FIELDS), listed, "DocumentFields")
    assert set(FIELDS) | {"recipients"} == set(DocumentIn.model_fields)


@pytest.mark.parametrize("field", DOCUMENT_FIELDS, ids=lambda f: f.name)
def test_each_api_member_is_typed_and_described_as_declared(field: DocumentField) -> None:
    schema = DocumentIn.model_json_schema()
    member = schema["properties"][field.name]
    types = member.get("anyOf", [member])

    assert field.description == member["description"]
    assert _JSON[field.kind] in [_bare(t) for t in types], field.name
    assert field.required_at_creation == (field.name in schema.get("required", []))


def _bare(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k in {"type", "format"}}


def test_every_field_is_in_the_document_view_and_the_recorded_creation() -> None:
    shown = set(DocumentOut.model_fields) | {f"signer_{n}" for n in Signer.model_fields}
    recorded = set(RecordedFields.model_fields)

    assert set(FIELDS) <= shown, _differences(set(FIELDS), shown & set(FIELDS), "DocumentOut")
    assert set(FIELDS) == recorded, _differences(set(FIELDS), recorded, "RecordedFields")


def test_the_manifest_answer_names_the_signed_fields() -> None:
    listed = set(Manifest.model_fields) - {
        "format",
        "document_id",
        "revision",
        "agency_id",
        "recipients",
        "attachments",
    }
    signed = {*SIGNED, *SIGNED_WHEN_TRUE, *SIGNED_WHEN_SET}

    assert signed == listed, _differences(signed, listed, "the Manifest answer")
