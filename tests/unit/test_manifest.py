"""The signed manifest is canonical JSON: same document, same bytes; any change, new bytes."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from congvan.actions.signing.manifest import FORMAT, METADATA_FIELDS, build_manifest

SHA_TEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # sha256(b"test")


def make_document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "doc-1",
        "revision": 3,
        "agency_id": "000.00.00.H57",
        "number": 1227,
        "symbol": "UBND-TĐKT",
        "doc_type": "CV",
        "subject": "V/v tăng cường gửi, nhận văn bản điện tử",
        "place": "Thừa Thiên Huế",
        "issued_on": "2021-02-06",
        "signer_name": "Nguyễn Văn Phương",
        "signer_position": "PHÓ CHỦ TỊCH",
        "signer_competence": "KT. CHỦ TỊCH",
        "urgency": 0,
        "due_date": None,
        "recipients": [{"organ_id": "000.00.01.H57", "name": "Văn phòng"}, "000.00.02.H57"],
    }
    document.update(overrides)
    return document


def make_attachments() -> list[dict[str, Any]]:
    return [
        {
            "role": "main",
            "filename": "1227-UBND-TĐKT.pdf",
            "media_type": "application/pdf",
            "size": 48213,
            "sha256": SHA_TEST,
        },
        {
            "role": "appendix",
            "filename": "phụ-lục.pdf",
            "media_type": "application/pdf",
            "size": 1200,
            "sha256": "ab" * 32,
        },
    ]


def test_the_documented_example_gives_these_exact_bytes() -> None:
    expected = (
        '{"agency_id":"000.00.00.H57","attachments":[{"filename":"1227-UBND-TĐKT.pdf",'
        '"media_type":"application/pdf","role":"main","sha256":"' + SHA_TEST + '",'
        '"size":48213}],"doc_type":"CV","document_id":"doc-1","due_date":null,'
        '"format":"congvan-manifest/1","issued_on":"2021-02-06","number":1227,'
        '"place":"Thừa Thiên Huế","recipients":["000.00.01.H57","000.00.02.H57"],'
        '"revision":3,"signer_competence":"KT. CHỦ TỊCH","signer_name":"Nguyễn Văn Phương",'
        '"signer_position":"PHÓ CHỦ TỊCH","subject":"V/v tăng cường gửi, nhận văn bản điện tử",'
        '"symbol":"UBND-TĐKT","urgency":0}'
    ).encode()

    assert expected == build_manifest(make_document(), make_attachments()[:1])


def test_the_same_input_gives_the_same_bytes() -> None:
    assert build_manifest(make_document(), make_attachments()) == build_manifest(
        make_document(), make_attachments()
    )


def test_key_order_of_the_input_does_not_matter() -> None:
    document = make_document()
    shuffled = dict(reversed(list(document.items())))
    attachments = [dict(reversed(list(a.items()))) for a in make_attachments()]

    assert build_manifest(document, make_attachments()) == build_manifest(shuffled, attachments)


@pytest.mark.parametrize(
    "field, value",
    [
        ("id", "doc-2"),
        ("revision", 4),
        ("agency_id", "000.00.00.H58"),
        ("number", 1228),
        ("symbol", "UBND-VP"),
        ("doc_type", "QĐ"),
        ("subject", "V/v tăng cường gửi, nhận văn bản điện tử."),
        ("place", "Huế"),
        ("issued_on", "2021-02-07"),
        ("signer_name", "Nguyễn Văn Phượng"),
        ("signer_position", "CHỦ TỊCH"),
        ("signer_competence", "TM. ỦY BAN NHÂN DÂN"),
        ("urgency", 1),
        ("due_date", "2021-03-01"),
        ("legal_normative", True),
        ("recipients", ["000.00.02.H57", "000.00.01.H57"]),
    ],
)
def test_any_document_change_gives_different_bytes(field: str, value: Any) -> None:
    original = build_manifest(make_document(), make_attachments())

    assert original != build_manifest(make_document(**{field: value}), make_attachments())


def test_a_legal_normative_document_says_so_and_any_other_keeps_its_bytes() -> None:
    # Documents signed before the member existed verify again: it appears only when true.
    before = build_manifest(make_document(), make_attachments())

    assert before == build_manifest(make_document(legal_normative=False), make_attachments())
    marked = json.loads(build_manifest(make_document(legal_normative=True), make_attachments()))
    assert {**json.loads(before), "legal_normative": True} == marked


@pytest.mark.parametrize(
    "field, value",
    [
        ("role", "appendix"),
        ("filename", "1227-UBND-TĐKT-ký.pdf"),
        ("media_type", "application/zip"),
        ("size", 48214),
        ("sha256", "cd" * 32),
    ],
)
def test_any_attachment_change_gives_different_bytes(field: str, value: Any) -> None:
    changed = make_attachments()
    changed[0][field] = value

    assert build_manifest(make_document(), make_attachments()) != build_manifest(
        make_document(), changed
    )


def test_attachment_order_counts() -> None:
    attachments = make_attachments()

    assert build_manifest(make_document(), attachments) != build_manifest(
        make_document(), attachments[::-1]
    )


def test_vietnamese_text_is_kept_as_utf8_not_escaped() -> None:
    manifest = build_manifest(make_document(), make_attachments())

    assert "Thừa Thiên Huế".encode() in manifest
    assert b"\\u" not in manifest
    assert "Thừa Thiên Huế" == json.loads(manifest.decode("utf-8"))["place"]


def test_the_manifest_names_every_member_of_the_format() -> None:
    members = json.loads(build_manifest(make_document(), make_attachments()))

    assert FORMAT == members["format"]
    assert {"document_id", "revision", "agency_id", "recipients", "attachments", "format"} | set(
        METADATA_FIELDS
    ) == set(members)
    assert ["000.00.01.H57", "000.00.02.H57"] == members["recipients"]


def test_extra_fields_such_as_the_body_text_are_left_out() -> None:
    with_content = make_document(content="Nội dung", state="draft", version=7)

    assert build_manifest(make_document(), make_attachments()) == build_manifest(
        with_content, make_attachments()
    )


def test_document_id_key_and_date_objects_are_accepted() -> None:
    document = make_document(issued_on=date(2021, 2, 6))
    document["document_id"] = document.pop("id")

    assert build_manifest(make_document(), make_attachments()) == build_manifest(
        document, make_attachments()
    )


@pytest.mark.parametrize("missing", ["id", "revision", "agency_id"])
def test_a_document_without_its_identity_is_refused(missing: str) -> None:
    document = make_document()
    del document[missing]

    with pytest.raises(ValueError, match="needs the document"):
        build_manifest(document, make_attachments())


@pytest.mark.parametrize(
    "field, value",
    [("sha256", "AB" * 32), ("sha256", "ab" * 31), ("size", -1), ("size", "12"), ("role", None)],
)
def test_a_malformed_attachment_is_refused(field: str, value: Any) -> None:
    attachments = make_attachments()
    attachments[1][field] = value

    with pytest.raises(ValueError, match="attachment 1"):
        build_manifest(make_document(), attachments)
