"""The signing PKI: CA, agency and signer certificates, CRLs, keys and certificate import."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from congvan.actions.signing import certfiles, pki
from congvan.actions.signing.description import describe
from congvan.actions.signing.pki import Issued, Revocation
from congvan.states.certificates import CertificateDescription
from congvan.states.errors import InvalidInput

CA_PASS = "ca-passphrase-Huế-2025"
KEY_PASS = "signer-passphrase-Bắc-Ninh"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
CRL_URL = "http://pki.congvan.test/crl/root.crl"
AGENCY_ID = "000.00.00.H57"
AGENCY_NAME = "UBND tỉnh Thừa Thiên Huế"
SIGNER = {
    "full_name": "Nguyễn Văn An",
    "position": "Giám đốc",
    "agency_id": AGENCY_ID,
    "agency_name": AGENCY_NAME,
    "user_id": "CCCD:027090001234",
}


@pytest.fixture(scope="module")
def ca() -> Issued:
    return pki.create_ca(
        "Congvan Test Root CA",
        "Congvan Test PKI",
        passphrase=CA_PASS,
        valid_from=T0,
        valid_days=3650,
    )


@pytest.fixture(scope="module")
def signer(ca: Issued) -> Issued:
    return issue_signer(ca)


def issue_signer(
    ca: Issued, *, valid_from: datetime = T0, valid_days: int = 365, **overrides: object
) -> Issued:
    return pki.issue_signer_certificate(
        ca,
        CA_PASS,
        **SIGNER,
        passphrase=KEY_PASS,
        valid_from=valid_from,
        valid_days=valid_days,
        crl_url=CRL_URL,
        **overrides,  # type: ignore[arg-type]
    )


def extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:  # type: ignore[type-arg]
    return cert.extensions.get_extension_for_class(kind)


# -- the CA ---------------------------------------------------------------------------


def test_ca_is_a_self_signed_root_that_only_signs_certificates_and_crls(ca: Issued) -> None:
    cert = ca.certificate

    constraints = extension(cert, x509.BasicConstraints)
    usage = extension(cert, x509.KeyUsage)
    assert constraints.critical and constraints.value == x509.BasicConstraints(True, 0)
    assert usage.critical and usage.value == pki.CA_KEY_USAGE
    assert extension(cert, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(cert.public_key())  # type: ignore[arg-type]
    )
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert T0 == cert.not_valid_before_utc
    assert T0 + timedelta(days=3650) == cert.not_valid_after_utc
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert 2048 == cert.public_key().key_size  # type: ignore[union-attr]
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


def test_ec_ca_issues_ec_signer_certificates() -> None:
    ca = pki.create_ca(
        "EC Root",
        "Congvan Test PKI",
        passphrase=CA_PASS,
        valid_from=T0,
        valid_days=3650,
        key_type="ec",
        path_length=1,
    )
    signer = issue_signer(ca, key_type="ec")

    for issued in (ca, signer):
        public_key = issued.certificate.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert "secp256r1" == public_key.curve.name
        assert isinstance(issued.certificate.signature_hash_algorithm, hashes.SHA256)
    assert 1 == extension(ca.certificate, x509.BasicConstraints).value.path_length
    signer.certificate.verify_directly_issued_by(ca.certificate)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key_type": "dsa"},
        {"valid_from": datetime(2025, 1, 1)},  # naive: which time zone?
        {"valid_days": 0},
        {"passphrase": ""},
    ],
)
def test_create_ca_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"passphrase": CA_PASS, "valid_from": T0, "valid_days": 1}
    arguments.update(kwargs)

    with pytest.raises(InvalidInput):
        pki.create_ca("Root", "Org", **arguments)  # type: ignore[arg-type]


# -- end-entity certificates ------------------------------------------------------------


def test_signer_certificate_names_the_person_position_and_agency(
    ca: Issued, signer: Issued
) -> None:
    subject = signer.certificate.subject

    expected = {
        NameOID.COUNTRY_NAME: "VN",
        NameOID.COMMON_NAME: "Nguyễn Văn An",
        NameOID.TITLE: "Giám đốc",
        NameOID.ORGANIZATION_NAME: AGENCY_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME: AGENCY_ID,
        NameOID.USER_ID: "CCCD:027090001234",
    }
    assert expected == {attribute.oid: attribute.value for attribute in subject}
    assert ca.certificate.subject == signer.certificate.issuer


def test_agency_certificate_names_the_agency(ca: Issued) -> None:
    agency = pki.issue_agency_certificate(
        ca,
        CA_PASS,
        agency_id=AGENCY_ID,
        agency_name=AGENCY_NAME,
        passphrase=KEY_PASS,
        valid_from=T0,
        valid_days=1095,
        crl_url=CRL_URL,
    )

    expected = {
        NameOID.COUNTRY_NAME: "VN",
        NameOID.COMMON_NAME: AGENCY_NAME,
        NameOID.ORGANIZATION_NAME: AGENCY_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME: AGENCY_ID,
    }
    assert expected == {attribute.oid: attribute.value for attribute in agency.certificate.subject}
    assert_signing_certificate(ca, agency, T0, 1095)


def test_signer_certificate_is_a_signing_end_entity(ca: Issued, signer: Issued) -> None:
    assert_signing_certificate(ca, signer, T0, 365)


def assert_signing_certificate(ca: Issued, issued: Issued, valid_from: datetime, days: int) -> None:
    cert = issued.certificate
    usage = extension(cert, x509.KeyUsage)
    constraints = extension(cert, x509.BasicConstraints)
    points = extension(cert, x509.CRLDistributionPoints).value

    assert usage.critical and usage.value == pki.make_key_usage(
        digital_signature=True, content_commitment=True
    )
    assert constraints.critical and constraints.value == x509.BasicConstraints(False, None)
    assert [[x509.UniformResourceIdentifier(CRL_URL)]] == [p.full_name for p in points]
    assert extension(cert, x509.AuthorityKeyIdentifier).value.key_identifier == (
        extension(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    )
    assert extension(cert, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(cert.public_key())  # type: ignore[arg-type]
    )
    assert valid_from == cert.not_valid_before_utc
    assert valid_from + timedelta(days=days) == cert.not_valid_after_utc
    cert.verify_directly_issued_by(ca.certificate)


def test_each_certificate_gets_a_fresh_random_serial(ca: Issued, signer: Issued) -> None:
    other = issue_signer(ca)

    assert signer.certificate.serial_number != other.certificate.serial_number
    assert signer.certificate.serial_number.bit_length() > 64


def test_key_usage_can_be_overridden_for_a_wrong_usage_certificate(ca: Issued) -> None:
    wrong = issue_signer(ca, key_usage=pki.make_key_usage(key_encipherment=True))

    assert ("key_encipherment",) == describe(wrong.certificate).key_usage


def test_validity_can_lie_in_the_past_or_the_future(ca: Issued) -> None:
    expired = issue_signer(ca, valid_from=datetime(2000, 1, 1, tzinfo=UTC), valid_days=30)
    not_yet = issue_signer(ca, valid_from=datetime(2030, 6, 1, tzinfo=UTC), valid_days=30)

    assert datetime(2000, 1, 31, tzinfo=UTC) == expired.certificate.not_valid_after_utc
    assert datetime(2030, 6, 1, tzinfo=UTC) == not_yet.certificate.not_valid_before_utc


def test_valid_from_in_another_time_zone_is_stored_in_utc(ca: Issued) -> None:
    hanoi = datetime(2025, 1, 1, 7, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))

    assert T0 == issue_signer(ca, valid_from=hanoi).certificate.not_valid_before_utc


def test_issuing_needs_the_right_ca_passphrase(ca: Issued) -> None:
    with pytest.raises(InvalidInput) as caught:
        pki.issue_signer_certificate(
            ca,
            "not-the-ca-passphrase",
            **SIGNER,
            passphrase=KEY_PASS,
            valid_from=T0,
            valid_days=1,
            crl_url=CRL_URL,
        )

    assert "not-the-ca-passphrase" not in str(caught.value)


def test_only_a_ca_can_issue(signer: Issued) -> None:
    with pytest.raises(InvalidInput, match="not a CA"):
        pki.issue_signer_certificate(
            signer,
            KEY_PASS,
            **SIGNER,
            passphrase=KEY_PASS,
            valid_from=T0,
            valid_days=1,
            crl_url=CRL_URL,
        )


@pytest.mark.parametrize(
    "overrides",
    [{"full_name": " "}, {"crl_url": "root.crl"}, {"valid_days": -1}],
    ids=["empty-name", "relative-crl-url", "negative-days"],
)
def test_issue_rejects_bad_arguments(ca: Issued, overrides: dict[str, object]) -> None:
    arguments: dict[str, object] = {
        **SIGNER,
        "passphrase": KEY_PASS,
        "valid_from": T0,
        "valid_days": 1,
        "crl_url": CRL_URL,
    }
    arguments.update(overrides)

    with pytest.raises(InvalidInput):
        pki.issue_signer_certificate(ca, CA_PASS, **arguments)  # type: ignore[arg-type]


def test_make_key_usage_rejects_unknown_bits() -> None:
    with pytest.raises(InvalidInput, match="Unknown key usage: sign"):
        pki.make_key_usage(sign=True)


# -- keys -------------------------------------------------------------------------------


def test_key_is_stored_as_encrypted_pkcs8_and_loads_with_its_passphrase(signer: Issued) -> None:
    assert signer.key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")

    key = pki.load_private_key(signer.key_pem, KEY_PASS)

    assert public_der(key) == public_der(signer.certificate)


@pytest.mark.parametrize("passphrase", ["wrong passphrase 123", b"wrong-bytes-passphrase"])
def test_wrong_passphrase_is_invalid_input_without_secrets(
    signer: Issued, passphrase: str | bytes
) -> None:
    with pytest.raises(InvalidInput, match="passphrase is wrong") as caught:
        pki.load_private_key(signer.key_pem, passphrase)

    rendered = str(caught.value.to_dict())
    secret = passphrase if isinstance(passphrase, str) else passphrase.decode()
    assert secret not in rendered and KEY_PASS not in rendered
    assert "PRIVATE KEY" not in rendered


def test_missing_passphrase_is_invalid_input(signer: Issued) -> None:
    with pytest.raises(InvalidInput, match="must not be empty"):
        pki.load_private_key(signer.key_pem, "")


def test_unencrypted_or_garbage_keys_are_invalid_input(signer: Issued) -> None:
    plain = pki.load_private_key(signer.key_pem, KEY_PASS).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(InvalidInput, match="not encrypted"):
        pki.load_private_key(plain, KEY_PASS)
    with pytest.raises(InvalidInput, match="could not be decrypted") as wrong:
        pki.load_private_key(b"not a key", KEY_PASS)
    # naming the setting that holds the passphrase, as the operator mends it
    assert wrong.value.details["setting"] == "CONGVAN_KEY_PASSPHRASE"
    assert "CONGVAN_KEY_PASSPHRASE" in wrong.value.message


def test_encrypt_key_re_encrypts_under_a_new_passphrase(signer: Issued) -> None:
    key = pki.load_private_key(signer.key_pem, KEY_PASS)

    rotated = pki.encrypt_key(key, b"new passphrase")

    assert public_der(pki.load_private_key(rotated, b"new passphrase")) == public_der(key)
    with pytest.raises(InvalidInput):
        pki.load_private_key(rotated, KEY_PASS)


def public_der(holder: pki.PrivateKey | x509.Certificate) -> bytes:
    return holder.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- CRLs -------------------------------------------------------------------------------


def test_crl_lists_revoked_serials_with_dates_and_reasons_signed_by_the_ca(
    ca: Issued, signer: Issued
) -> None:
    revoked_at = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    entries = [
        Revocation(signer.certificate.serial_number, revoked_at, x509.ReasonFlags.key_compromise),
        (12345, revoked_at + timedelta(days=1), x509.ReasonFlags.affiliation_changed),
        (67890, revoked_at, None),
    ]

    der = pki.make_crl(
        ca,
        CA_PASS,
        entries,
        this_update=T0 + timedelta(days=70),
        next_update=T0 + timedelta(days=77),
        number=7,
    )

    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert ca.certificate.subject == crl.issuer
    assert T0 + timedelta(days=70) == crl.last_update_utc
    assert T0 + timedelta(days=77) == crl.next_update_utc
    assert 7 == crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    listed = {entry.serial_number: (entry.revocation_date_utc, reason_of(entry)) for entry in crl}
    assert {
        signer.certificate.serial_number: (revoked_at, x509.ReasonFlags.key_compromise),
        12345: (revoked_at + timedelta(days=1), x509.ReasonFlags.affiliation_changed),
        67890: (revoked_at, None),
    } == listed


def reason_of(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def test_empty_crl_is_signed_and_a_foreign_ca_does_not_verify_it(ca: Issued) -> None:
    der = pki.make_crl(
        ca, CA_PASS, [], this_update=T0, next_update=T0 + timedelta(days=7), number=1
    )
    other = pki.create_ca("Other", "Rogue", passphrase=CA_PASS, valid_from=T0, valid_days=1)

    crl = x509.load_der_x509_crl(der)
    assert [] == list(crl)
    assert not crl.is_signature_valid(other.certificate.public_key())  # type: ignore[arg-type]


def test_crl_next_update_must_follow_this_update(ca: Issued) -> None:
    with pytest.raises(InvalidInput, match="next update"):
        pki.make_crl(ca, CA_PASS, [], this_update=T0, next_update=T0, number=1)


# -- import -----------------------------------------------------------------------------


def test_import_pem_chain_keeps_the_order(ca: Issued, signer: Issued) -> None:
    certs = certfiles.import_certificates(signer.cert_pem + b"\n" + ca.cert_pem)

    assert [signer.certificate, ca.certificate] == certs


def test_a_bundle_repeating_a_certificate_yields_it_once_in_its_first_place(
    ca: Issued, signer: Issued
) -> None:
    bundle = b"\n".join([signer.cert_pem, ca.cert_pem, signer.cert_pem] + [ca.cert_pem] * 50)

    assert [signer.certificate, ca.certificate] == certfiles.import_certificates(bundle)


def test_import_single_pem_and_der(signer: Issued) -> None:
    der = signer.certificate.public_bytes(serialization.Encoding.DER)

    assert [signer.certificate] == certfiles.import_certificates(signer.cert_pem)
    assert [signer.certificate] == certfiles.import_certificates(der)


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_import_pkcs7_bundle(ca: Issued, signer: Issued, encoding: serialization.Encoding) -> None:
    bundle = pkcs7.serialize_certificates([signer.certificate, ca.certificate], encoding)

    certs = certfiles.import_certificates(bundle)

    assert {signer.certificate, ca.certificate} == set(certs)


def make_p12(ca: Issued, signer: Issued, password: bytes) -> bytes:
    key = pki.load_private_key(signer.key_pem, KEY_PASS)
    return pkcs12.serialize_key_and_certificates(
        b"signer",
        key,
        signer.certificate,
        [ca.certificate],
        serialization.BestAvailableEncryption(password),
    )


def test_import_pkcs12_gives_key_certificate_and_chain(ca: Issued, signer: Issued) -> None:
    data = make_p12(ca, signer, b"p12-password")

    key, cert, chain = certfiles.import_pkcs12(data, "p12-password")

    assert signer.certificate == cert
    assert [ca.certificate] == chain
    assert public_der(key) == public_der(cert)
    assert [signer.certificate, ca.certificate] == certfiles.import_certificates(
        data, b"p12-password"
    )


def test_import_pkcs12_with_a_wrong_password_is_invalid_input(ca: Issued, signer: Issued) -> None:
    data = make_p12(ca, signer, b"p12-password")

    with pytest.raises(InvalidInput, match="password is wrong") as caught:
        certfiles.import_pkcs12(data, "guessed-password")
    assert "guessed-password" not in str(caught.value.to_dict())
    with pytest.raises(InvalidInput):
        certfiles.import_certificates(data, "guessed-password")


def test_import_pkcs12_without_a_key_is_invalid_input(ca: Issued) -> None:
    data = pkcs12.serialize_key_and_certificates(
        None, None, None, [ca.certificate], serialization.BestAvailableEncryption(b"pw")
    )

    assert [ca.certificate] == certfiles.import_certificates(data, "pw")
    with pytest.raises(InvalidInput, match="private key and its certificate"):
        certfiles.import_pkcs12(data, "pw")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"this is not a certificate",
        b"\x30\x82\x01\x00garbage",
        b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n",
        b"-----BEGIN PKCS7-----\nbm9wZQ==\n-----END PKCS7-----\n",
    ],
    ids=["empty", "text", "bad-der", "bad-pem", "bad-pkcs7"],
)
def test_import_garbage_is_invalid_input(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        certfiles.import_certificates(data)


# -- describe ---------------------------------------------------------------------------


def test_describe_summarises_subject_validity_usage_and_fingerprint(
    ca: Issued, signer: Issued
) -> None:
    cert = signer.certificate

    expected = CertificateDescription(
        common_name="Nguyễn Văn An",
        title="Giám đốc",
        organization=AGENCY_NAME,
        organizational_unit=AGENCY_ID,
        user_id="CCCD:027090001234",
        serial_number=format(cert.serial_number, "x"),
        issuer="Common Name: Congvan Test Root CA, Organization: Congvan Test PKI, Country: VN",
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        not_before=datetime(2025, 1, 1, tzinfo=UTC),
        not_after=datetime(2026, 1, 1, tzinfo=UTC),
        profile="signer",
        key_usage=("digital_signature", "non_repudiation"),
        is_ca=False,
    )
    assert expected == describe(cert)
    assert expected == describe(asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)))
    root = describe(ca.certificate)
    assert ("", "", True, None) == (root.title, root.user_id, root.is_ca, root.profile)
    assert ("key_cert_sign", "crl_sign") == root.key_usage


# -- cross-check with openssl ----------------------------------------------------------


@pytest.mark.usefixtures("openssl_installed")
def test_openssl_accepts_a_good_certificate_and_rejects_a_revoked_one(tmp_path: Path) -> None:
    # openssl verify checks validity against the wall clock, so these certificates are
    # valid "now" rather than at T0.
    now = datetime.now(UTC)
    ca = pki.create_ca(
        "Congvan Test Root CA",
        "Congvan Test PKI",
        passphrase=CA_PASS,
        valid_from=now - timedelta(days=1),
        valid_days=30,
    )
    good = issue_signer(ca, valid_from=now - timedelta(days=1), valid_days=10)
    revoked = issue_signer(ca, valid_from=now - timedelta(days=1), valid_days=10)
    crl = pki.make_crl(
        ca,
        CA_PASS,
        [
            (
                revoked.certificate.serial_number,
                now - timedelta(hours=1),
                x509.ReasonFlags.key_compromise,
            )
        ],
        this_update=now - timedelta(minutes=5),
        next_update=now + timedelta(days=1),
        number=1,
    )
    (tmp_path / "root.pem").write_bytes(ca.cert_pem)
    (tmp_path / "crl.pem").write_bytes(
        x509.load_der_x509_crl(crl).public_bytes(serialization.Encoding.PEM)
    )
    (tmp_path / "good.pem").write_bytes(good.cert_pem)
    (tmp_path / "revoked.pem").write_bytes(revoked.cert_pem)

    def openssl_verify(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "verify", "-CAfile", "root.pem", "-crl_check", "-CRLfile", "crl.pem", name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )

    accepted = openssl_verify("good.pem")
    rejected = openssl_verify("revoked.pem")

    assert 0 == accepted.returncode, accepted.stdout + accepted.stderr
    assert 0 != rejected.returncode
    assert "certificate revoked" in rejected.stdout + rejected.stderr


def test_a_certificate_never_outlives_its_ca_nor_the_days_reckoned_with(ca: Issued) -> None:
    # A signer valid past its CA (3,650 days from T0) has no valid path then: refused,
    # saying how many days it may have
    ends = ca.certificate.not_valid_after_utc
    with pytest.raises(InvalidInput) as caught:
        issue_signer(ca, valid_days=100_000)
    assert ("valid_days", (ends - T0).days) == (
        caught.value.details["field"],
        caught.value.details["max_days"],
    )
    assert (ends - T0).days == (
        issue_signer(ca, valid_days=(ends - T0).days).certificate.not_valid_after_utc - T0
    ).days

    # A CA, or anything, valid past 2100 (or for more days than a date can count) is refused
    for days in (80_000, 10**12):
        with pytest.raises(InvalidInput, match="2100"):
            pki.create_ca("Root", "PKI", passphrase=CA_PASS, valid_from=T0, valid_days=days)


def test_an_agency_named_in_64_vietnamese_characters_gets_its_certificate(
    ca: Issued, tmp_path: Path
) -> None:
    # 55 characters, 73 bytes of UTF-8: within X.520's 64 characters
    name = "Sở Lao động - Thương binh và Xã hội tỉnh Thừa Thiên Huế"
    agency = pki.issue_agency_certificate(
        ca,
        CA_PASS,
        agency_id=AGENCY_ID,
        agency_name=name,
        passphrase=KEY_PASS,
        valid_from=T0,
        valid_days=365,
        crl_url=CRL_URL,
    )

    read = x509.load_pem_x509_certificate(agency.cert_pem)
    assert [name] == [a.value for a in read.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    (tmp_path / "root.pem").write_bytes(ca.cert_pem)
    (tmp_path / "agency.pem").write_bytes(agency.cert_pem)
    shown = subprocess.run(
        ["openssl", "x509", "-in", "agency.pem", "-noout", "-subject", "-nameopt", "utf8"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert f"CN={name}" in shown.stdout
    verified = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            "root.pem",
            "-attime",
            str(int(T0.timestamp()) + 60),
            "agency.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert 0 == verified.returncode, verified.stdout + verified.stderr

    # 65 characters are more than X.520 allows: refused, saying so
    with pytest.raises(InvalidInput, match="at most 64 characters"):
        pki.issue_agency_certificate(
            ca,
            CA_PASS,
            agency_id=AGENCY_ID,
            agency_name="Ủ" * 65,
            passphrase=KEY_PASS,
            valid_from=T0,
            valid_days=365,
            crl_url=CRL_URL,
        )
