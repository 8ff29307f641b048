"""Names in certificates: what congvan writes is text a certificate can hold, and what it
reads from outside (a root trusted, a peer's certificate) is kept and shown escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from congvan.actions.signing import pki
from congvan.actions.signing.description import describe
from congvan.states.certificates import comparable
from congvan.states.errors import InvalidInput

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def self_signed(common_name: str, organization: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_a_name_from_outside_is_described_with_its_controls_and_hidden_marks_escaped() -> None:
    described = describe(self_signed("Root\x1b[2J\u202eAC", "Sở\u200bNội vụ"))

    assert described.common_name == "Root\\x1b[2J\\u202eAC"
    assert described.organization == "Sở\\u200bNội vụ"
    assert "\x1b" not in described.issuer and "\u202e" not in described.issuer


@pytest.mark.parametrize(
    ("common_name", "organization", "field"),
    [
        ("CA\x1b[31m", "UBND", "commonName"),
        ("CA", "UBND\u202e", "organizationName"),
        ("", "UBND", "commonName"),
        # 68 characters: X.520 bounds a name in characters (64), whatever bytes they take
        (
            "Ủy ban nhân dân tỉnh Thừa Thiên Huế - Văn phòng Ủy ban nhân dân tỉnh",
            "UBND",
            "commonName",
        ),
    ],
)
def test_a_name_no_certificate_can_hold_is_refused_by_name(
    common_name: str, organization: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        pki.create_ca(
            common_name, organization, passphrase="p" * 12, valid_from=NOW, valid_days=30,
            key_type="ec",
        )  # fmt: skip
    assert refused.value.details["field"] == field


def test_a_name_of_64_bytes_is_taken_in_nfc() -> None:
    name = "Ủy ban nhân dân tỉnh Thừa Thiên Huế"  # decomposed below: the same name in NFC
    import unicodedata

    issued = pki.create_ca(
        unicodedata.normalize("NFD", name), "UBND", passphrase="p" * 12, valid_from=NOW,
        valid_days=30, key_type="ec",
    )  # fmt: skip
    assert describe(issued.certificate).common_name == name


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("Lê Thị Hòa", "Lê Thị Hoà", True),  # the tone over either vowel of oa
        ("Nguyễn Thị Thủy", "NGUYỄN THỊ THUỶ", True),  # of uy, in any case
        ("Trần Khỏe", "Trần  Khoẻ", True),  # of oe, spaced twice
        ("Lê Thị Hòa", "Lê Thị Hoa", False),  # a tone is not a placement
        ("Lê Thị Hòa", "Lê Thị Họa", False),
        ("Phạm Thuế", "Phạm Thúê", False),  # uê: the tone stays over ê
    ],
)
def test_names_compare_equal_whichever_vowel_the_tone_is_written_over(
    one: str, other: str, same: bool
) -> None:
    assert (comparable(one) == comparable(other)) is same
