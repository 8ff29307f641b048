"""Only a CRL whose scope covers a certificate speaks for it (RFC 5280 §5.2.4, §5.2.5).

A delta CRL, or one an issuing distribution point narrows, taken as the issuer's complete
CRL because it is the newest, hid a revocation its base listed: a revoked signer verified.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from congvan.actions.signing import revocation
from congvan.states.errors import CertificateRevoked, RevocationUnknown

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
POINT = x509.UniformResourceIdentifier("http://ca.example.vn/root.crl")
OTHER_POINT = x509.UniformResourceIdentifier("http://ca.example.vn/other.crl")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


ROOT_KEY = ec.generate_private_key(ec.SECP256R1())
ROOT = (
    x509.CertificateBuilder()
    .subject_name(_name("Root"))
    .issuer_name(_name("Root"))
    .public_key(ROOT_KEY.public_key())
    .serial_number(1)
    .not_valid_before(NOW - timedelta(days=30))
    .not_valid_after(NOW + timedelta(days=3650))
    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    .sign(ROOT_KEY, hashes.SHA256())
)


def leaf(serial: int, *, point: x509.UniformResourceIdentifier | None = None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"Signer {serial}"))
        .issuer_name(ROOT.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(serial)
        .not_valid_before(NOW - timedelta(days=10))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if point is not None:
        dp = x509.DistributionPoint([point], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([dp]), critical=False)
    return builder.sign(ROOT_KEY, hashes.SHA256())


def crl(
    number: int, revoked: list[x509.Certificate], *extensions: x509.ExtensionType
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ROOT.subject)
        .last_update(NOW - timedelta(hours=1))
        .next_update(NOW + timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(NOW - timedelta(days=2))
            .build()
        )
    return builder.sign(ROOT_KEY, hashes.SHA256())


def idp(**scope: object) -> x509.IssuingDistributionPoint:
    values: dict[str, object] = {
        "full_name": None,
        "relative_name": None,
        "only_contains_user_certs": False,
        "only_contains_ca_certs": False,
        "only_some_reasons": None,
        "indirect_crl": False,
        "only_contains_attribute_certs": False,
    }
    values.update(scope)
    return x509.IssuingDistributionPoint(**values)  # type: ignore[arg-type]


NARROWER = {
    "a delta CRL": x509.DeltaCRLIndicator(50),
    "CA certificates only": idp(only_contains_ca_certs=True),
    "some reasons only": idp(only_some_reasons=frozenset({x509.ReasonFlags.key_compromise})),
    "another distribution point": idp(full_name=[POINT]),
    "an indirect CRL": idp(indirect_crl=True),
    "an unknown critical extension": x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"
    ),
}


@pytest.mark.parametrize("narrower", list(NARROWER.values()), ids=list(NARROWER))
def test_a_newer_crl_of_narrower_scope_does_not_hide_the_complete_ones_revocation(
    narrower: x509.ExtensionType,
) -> None:
    # Given a signer without a distribution point, revoked in the root's complete CRL 50,
    # and a newer CRL 51 of narrower scope that does not list it
    signer = leaf(0x51)
    complete, newer = crl(50, [signer]), crl(51, [], narrower)

    # Then the complete CRL speaks for it: revoked (as openssl -crl_check says)
    with pytest.raises(CertificateRevoked):
        revocation.check_path([signer, ROOT], [complete, newer], NOW)
    # And alone, the narrower one leaves its status unknown, never good
    with pytest.raises(RevocationUnknown):
        revocation.check_path([signer, ROOT], [newer], NOW)
    assert revocation.partial(newer) is not None
    assert revocation.partial(complete) is None


def test_a_crl_of_the_distribution_point_a_certificate_names_speaks_for_it() -> None:
    # Given a signer naming the root's distribution point, revoked in that point's CRL 51
    signer, elsewhere = leaf(0x52, point=POINT), leaf(0x53, point=OTHER_POINT)
    complete, of_point = crl(50, []), crl(51, [signer, elsewhere], idp(full_name=[POINT]))

    # Then that CRL covers it, and not a certificate naming another point
    with pytest.raises(CertificateRevoked):
        revocation.check_path([signer, ROOT], [complete, of_point], NOW)
    assert revocation.check_path([elsewhere, ROOT], [complete, of_point], NOW) is None
    # And a CRL of end entities only covers a signer, a CRL of CA certificates only does not
    of_users = crl(52, [signer], idp(only_contains_user_certs=True))
    with pytest.raises(CertificateRevoked):
        revocation.check_path([signer, ROOT], [complete, of_users], NOW)
    assert revocation.covers(of_users, signer)
    assert not revocation.covers(crl(53, [], idp(only_contains_ca_certs=True)), signer)


def test_a_crl_with_an_entrys_critical_extension_not_read_is_not_kept() -> None:
    # RFC 5280 §5.3: a CRL with an entry's critical extension the reader does not process
    # must not be used (openssl refuses it): import-crl refuses it, saying why
    unread = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.2"), b"\x05\x00")
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(5)
        .revocation_date(NOW)
        .add_extension(unread, critical=True)
        .build()
    )
    listed = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ROOT.subject)
        .last_update(NOW)
        .next_update(NOW + timedelta(days=7))
        .add_extension(x509.CRLNumber(9), critical=False)
        .add_revoked_certificate(entry)
        .sign(ROOT_KEY, hashes.SHA256())
    )
    assert "critical extension" in (revocation.partial(listed) or "")
    # and wherever CRLs are read as they come (an evidence bundle's), it speaks for no
    # certificate: not one it lists, nor one it does not (never "not revoked")
    for cert in (leaf(5), leaf(6)):
        assert not revocation.covers(listed, cert)
        assert revocation.newest_crl(ROOT, [listed], covering=cert) is None


def test_a_revocation_counts_from_the_compromise_its_entry_dates() -> None:
    # Given a signer listed at NOW - 1 h, whose key the entry says was compromised at
    # NOW - 3 h (RFC 5280 invalidity date)
    signer = leaf(0x61)
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(signer.serial_number)
        .revocation_date(NOW - timedelta(hours=1))
        .add_extension(x509.InvalidityDate(NOW - timedelta(hours=3)), critical=False)
        .build()
    )
    listing = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ROOT.subject)
        .last_update(NOW - timedelta(minutes=30))
        .next_update(NOW + timedelta(days=7))
        .add_extension(x509.CRLNumber(60), critical=False)
        .add_revoked_certificate(entry)
        .sign(ROOT_KEY, hashes.SHA256())
    )

    # Then a signature made after the compromise, though before the listing, is no proof
    with pytest.raises(CertificateRevoked) as revoked:
        revocation.check_path([signer, ROOT], [listing], NOW - timedelta(hours=2))
    assert revoked.value.details["revoked_at"] == (NOW - timedelta(hours=3)).isoformat()
    # while one made before the compromise stands, told of the revocation from then on
    later = revocation.check_path([signer, ROOT], [listing], NOW - timedelta(hours=4))
    assert later is not None and later.revoked_at == NOW - timedelta(hours=3)
