"""A certificate described: one shape, as plain JSON and back, also from rows stored before it."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime

import pytest

from congvan.actions.signing.verification import SIGNER_FIELDS
from congvan.states.certificates import FORMER_NAMES, CertificateDescription
from congvan.workflow.api.findings import CertificateSubject

SIGNER = CertificateDescription(
    common_name="Nguyễn Văn An",
    title="Giám đốc",
    organization="UBND tỉnh Thừa Thiên Huế",
    organizational_unit="000.00.00.H57",
    user_id="CCCD:027090001234",
    serial_number="1f2e3d",
    issuer="Common Name: Congvan Test Root CA, Organization: Congvan Test PKI, Country: VN",
    sha256="ab" * 32,
    not_before=datetime(2025, 1, 1, tzinfo=UTC),
    not_after=datetime(2026, 1, 1, tzinfo=UTC),
    profile="signer",
    key_usage=("digital_signature", "non_repudiation"),
    is_ca=False,
)


def test_as_dict_is_plain_json_and_from_dict_reads_it_back() -> None:
    data = SIGNER.as_dict()

    assert {
        "common_name": "Nguyễn Văn An",
        "title": "Giám đốc",
        "organization": "UBND tỉnh Thừa Thiên Huế",
        "organizational_unit": "000.00.00.H57",
        "user_id": "CCCD:027090001234",
        "serial_number": "1f2e3d",
        "issuer": SIGNER.issuer,
        "sha256": "ab" * 32,
        "not_before": "2025-01-01T00:00:00+00:00",
        "not_after": "2026-01-01T00:00:00+00:00",
        "profile": "signer",
        "key_usage": ["digital_signature", "non_repudiation"],
        "is_ca": False,
    } == data
    assert SIGNER == CertificateDescription.from_dict(json.loads(json.dumps(data)))


def test_from_dict_reads_the_shape_rows_were_stored_in_before() -> None:
    # What the certificates table's subject column held before this shape
    old = {
        "common_name": "Congvan Test Root CA",
        "title": None,
        "organization": "Congvan Test PKI",
        "agency_id": None,
        "user_id": None,
        "serial": "435e5e",
        "not_before": "2025-01-01T00:00:00+00:00",
        "not_after": "2035-01-01T00:00:00+00:00",
        "key_usage": ["key_cert_sign", "crl_sign"],
        "is_ca": True,
        "profile": None,
        "issuer_common_name": "Congvan Test Root CA",
        "sha256_fingerprint": "cd" * 32,
    }

    read = CertificateDescription.from_dict(old)

    assert (
        CertificateDescription(
            common_name="Congvan Test Root CA",
            title="",
            organization="Congvan Test PKI",
            organizational_unit="",
            user_id="",
            serial_number="435e5e",
            issuer="Congvan Test Root CA",
            sha256="cd" * 32,
            not_before=datetime(2025, 1, 1, tzinfo=UTC),
            not_after=datetime(2035, 1, 1, tzinfo=UTC),
            profile=None,
            key_usage=("key_cert_sign", "crl_sign"),
            is_ca=True,
        )
        == read
    )
    assert set(FORMER_NAMES.values()) <= {f.name for f in fields(CertificateDescription)}


def test_an_old_signer_row_names_its_agency_id_as_the_organizational_unit() -> None:
    old = {
        **{k: v for k, v in SIGNER.as_dict().items() if k not in FORMER_NAMES.values()},
        "agency_id": "000.00.00.H57",
        "serial": "1f2e3d",
        "sha256_fingerprint": "ab" * 32,
        "issuer_common_name": "Congvan Test Root CA",
    }

    read = CertificateDescription.from_dict(old)

    assert ("000.00.00.H57", "1f2e3d", "ab" * 32) == (
        read.organizational_unit,
        read.serial_number,
        read.sha256,
    )


@pytest.mark.parametrize("missing", ["sha256", "serial_number", "not_before", "not_after"])
def test_a_description_without_fingerprint_serial_or_validity_is_refused(missing: str) -> None:
    data = {k: v for k, v in SIGNER.as_dict().items() if k != missing}

    with pytest.raises(ValueError, match=missing):
        CertificateDescription.from_dict(data)


def test_the_api_model_and_the_expected_signer_name_fields_of_the_description() -> None:
    # The API answers with as_dict(), so its model declares every field and no other
    assert set(SIGNER.as_dict()) == set(CertificateSubject.model_fields)
    assert SIGNER.as_dict() == CertificateSubject.model_validate(SIGNER.as_dict()).model_dump()
    # What an expected signer may name are text fields of the description
    text = {f.name for f in fields(CertificateDescription) if f.type == "str"}
    assert set(SIGNER_FIELDS) <= text
