"""A signature made in any year the engine reckons with carries the signing time RFC 5652
requires for that year, verifies by us (both ways) and by openssl.

UTCTime writes the year in two digits, for 1950 through 2049 only; past 2049 (and before
1950) a signing time is a GeneralizedTime (RFC 5652 11.3). pyHanko writes UTCTime whatever
the year, so a signature made from 2050 on used to fail with a ValueError.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from congvan.actions.signing import cms, verification
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.template import signing_time_value
from tests.integration.test_cms import (
    MANIFEST,
    OPENSSL,
    SIGNER,
    Issued,
    issue,
    make_root,
    needs_openssl,
)

DAY = timedelta(days=1)


def crl_at(root: Issued, moment: datetime) -> x509.CertificateRevocationList:
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.cert.subject)
        .last_update(moment - DAY)
        .next_update(moment + 7 * DAY)
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(root.key, hashes.SHA256())
    )


@pytest.mark.parametrize(
    ("year", "kind"),
    [(1949, "generalized_time"), (1950, "utc_time"), (2049, "utc_time"),
     (2050, "generalized_time"), (2100, "generalized_time")],
)  # fmt: skip
def test_a_signing_time_is_of_the_type_its_year_requires(year: int, kind: str) -> None:
    moment = datetime(year, 6, 1, 12, 30, 45, 999999, tzinfo=UTC)

    value = asn1_cms.Time.load(signing_time_value(moment))

    assert value.name == kind
    assert value.native == moment.replace(microsecond=0)  # whole seconds, as DER wants


@needs_openssl
@pytest.mark.parametrize("moment", [datetime(2050, 1, 1, 0, 0, 5, tzinfo=UTC),
                                    datetime(2150, 6, 1, 9, 30, tzinfo=UTC)])  # fmt: skip
def test_a_signature_made_past_2049_verifies_by_us_and_by_openssl(
    moment: datetime, tmp_path: Path
) -> None:
    # Given a signer whose certificate is valid then
    root = make_root("Congvan Test Root CA", around=moment)
    signer = issue(root, not_before=moment - 30 * DAY, not_after=moment + 30 * DAY)
    verification._trusted_signers.clear()

    # When it signs twice (pyHanko's path, then the template made from it)
    signed = [
        sign_manifest(MANIFEST, key=signer.key, cert=signer.cert, chain=[root.cert],
                      signing_time=moment + timedelta(seconds=n))
        for n in (0, 1)
    ]  # fmt: skip
    assert cms.signer_for(signer.key, signer.cert, [root.cert]).template is not None

    # Then each carries a GeneralizedTime signing time and verifies, the second quickly
    for n, cms_der in enumerate(signed):
        attrs = asn1_cms.ContentInfo.load(cms_der)["content"]["signer_infos"][0]["signed_attrs"]
        (time,) = [a["values"][0] for a in attrs if a["type"].native == "signing_time"]
        assert time.name == "generalized_time"
        verdict = verification.verify_manifest_signature(
            MANIFEST, cms_der, trust_roots=[root.cert], crls=[crl_at(root, moment)],
            at=moment + timedelta(minutes=1), expected_signer=SIGNER,
        )  # fmt: skip
        assert verdict.signing_time == moment + timedelta(seconds=n)
    assert len(verification._trusted_signers) == 1
    crl_der = [crl_at(root, moment).public_bytes(serialization.Encoding.DER)]
    at = moment + timedelta(minutes=1)
    assert verification._quick_verdict(MANIFEST, signed[1], [root.cert], crl_der, at, SIGNER)
    verification._trusted_signers.clear()

    # And openssl, judging the chain at that time, agrees
    (tmp_path / "manifest.json").write_bytes(MANIFEST)
    (tmp_path / "sig.p7s").write_bytes(signed[1])
    (tmp_path / "ca.pem").write_bytes(root.cert.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run(
        [OPENSSL, "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "sig.p7s"),
         "-content", str(tmp_path / "manifest.json"), "-CAfile", str(tmp_path / "ca.pem"),
         "-purpose", "any", "-attime", str(int(moment.timestamp()) + 60), "-out", "/dev/null"],
        capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
