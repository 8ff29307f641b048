"""A peer's certificate chains to a pinned root only within every CA's path length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from congvan.actions.signing.issuers import root_of

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _cert(
    cn: str,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    pathlen: int | None,
    ca: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, issuer_key = issuer or (name, key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


@pytest.mark.parametrize(("pathlen", "chains"), [(0, False), (1, True), (None, True)])
def test_a_root_allowing_no_ca_under_it_anchors_no_path_through_one(
    pathlen: int | None, chains: bool
) -> None:
    root, root_key = _cert("Root", None, pathlen, True)
    issuing, issuing_key = _cert("Issuing CA", (root.subject, root_key), None, True)
    agency, _ = _cert("Agency", (issuing.subject, issuing_key), None, False)

    assert (root_of(agency, [root], [issuing]) == root) is chains
    # A certificate the root issued itself is always within it
    direct, _ = _cert("Direct", (root.subject, root_key), None, False)
    assert root_of(direct, [root], []) == root
