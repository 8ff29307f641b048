"""An uploaded CMS that is not strict DER with accepted algorithms: 422 with its code, never 500.

The uploads are the named signer's own valid signature over the served manifest, broken
in one way each (the helpers of ``tests/integration/test_strict_cms``), and compared with
``openssl cms -verify`` over the same manifest and the published roots where openssl
judges them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings

from congvan.actions.signing.verification import _trusted_signers
from tests.api.conftest import Api, MakeApi, assert_error
from tests.api.test_signing_api import (
    history,
    issue,
    key_and_cert,
    manifest_of,
    own_tool,
    reviewed_letter,
    roots,
    sign,
    signature_rows,
    signing_api,
    state_and_version,
    token_main,
)
from tests.integration.test_cms import Issued
from tests.integration.test_strict_cms import (
    CERTIFICATES,
    MUTATIONS,
    ONCE_CRASHED,
    SIGNER_INFO,
    Mutation,
    OpenSsl,
    mutate,
    with_broken_certificate,
    with_digest_algorithms,
    with_length_form,
)

SIGNATURE_CODES = {
    "signature_invalid",
    "signature_malformed",
    "weak_algorithm",
    "manifest_mismatch",
    "certificate_expired",
    "certificate_not_yet_valid",
    "certificate_revoked",
    "chain_untrusted",
    "key_usage_invalid",
    "signer_mismatch",
}


class Upload:
    """An approved letter, its signer's certificate row, and openssl over its manifest."""

    def __init__(self, api: Api, row: dict[str, Any], folder: Path) -> None:
        self.api, self.row = api, row
        self.letter(reviewed_letter(api))
        (folder / "manifest.json").write_bytes(manifest_of(api, self.doc_id))
        (folder / "ca.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in roots(api)))
        self.openssl = OpenSsl(folder)

    def signer(self) -> Issued:
        key, cert = key_and_cert(self.row)
        return Issued(key, cert)

    def letter(self, doc_id: str) -> None:
        """Upload to ``doc_id`` from now on: its good signature and its token-signed PDF."""
        self.doc_id = doc_id
        self.good = own_tool(self.api, doc_id, self.row)
        self.pdf = token_main(self.api, doc_id, *key_and_cert(self.row))

    def sign(self, cms_der: bytes, doc_id: str | None = None) -> httpx.Response:
        """``cms_der`` uploaded to the letter (or ``doc_id``) with the main PDF signed."""
        if doc_id is None:
            return sign(self.api, self.doc_id, cms_der, self.pdf)
        return sign(
            self.api, doc_id, cms_der, token_main(self.api, doc_id, *key_and_cert(self.row))
        )

    def refused(self, cms_der: bytes, code: str) -> None:
        """Uploading ``cms_der`` answers 422 with ``code`` and leaves the letter unsigned."""
        before = state_and_version(self.api, self.doc_id)
        assert_error(self.sign(cms_der), 422, code)
        assert state_and_version(self.api, self.doc_id) == before
        assert signature_rows(self.api, self.doc_id) == []
        assert history(self.api, self.doc_id)[-1]["event"] == "approve"


@pytest.fixture
def upload(make_api: MakeApi, tmp_path: Path) -> Upload:
    api = signing_api(make_api)
    return Upload(api, issue(api), tmp_path)


def test_sha1_is_refused_as_a_weak_algorithm(upload: Upload) -> None:
    # Given the signer's own signature made by openssl with SHA-1, which openssl takes
    sha1 = upload.openssl.sign(upload.signer(), "sha1")
    assert upload.openssl.accepts(sha1)

    upload.refused(sha1, "weak_algorithm")


def test_digest_algorithms_without_the_signers_digest_are_malformed(upload: Upload) -> None:
    cms_der = with_digest_algorithms(upload.good, "sha384")
    assert not upload.openssl.accepts(cms_der)

    upload.refused(cms_der, "signature_malformed")


@pytest.mark.parametrize("form", ["indefinite", "long"])
def test_ber_is_malformed_even_from_a_known_signer(upload: Upload, form: str) -> None:
    # Given the signer known to the quick path, from a good signature of another letter
    other = reviewed_letter(upload.api)
    assert upload.sign(own_tool(upload.api, other, upload.row), other).status_code == 200

    # When its signature for this letter comes with a BER length (openssl reads BER)
    for path in [(), (*SIGNER_INFO, 5)]:
        cms_der = with_length_form(upload.good, path, form)

        # Then it is malformed
        upload.refused(cms_der, "signature_malformed")
    assert upload.sign(upload.good).status_code == 200


def test_broken_der_inside_an_embedded_certificate_is_malformed(upload: Upload) -> None:
    # A certificate's TBSCertificate with a non-minimal length (openssl reads BER there)
    upload.refused(
        with_length_form(upload.good, (*CERTIFICATES, 0, 0), "long"), "signature_malformed"
    )

    # A name's value that is not a string: openssl refuses it too
    name = b"congvan test CA"  # the root's common name, a UTF8String
    tlv = bytes((len(name),)) + name
    cms_der = with_broken_certificate(upload.good, b"\x0c" + tlv, b"\x04" + tlv)
    assert not upload.openssl.accepts(cms_der)
    upload.refused(cms_der, "signature_malformed")


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutation=MUTATIONS)
def test_a_damaged_upload_never_answers_500(upload: Upload, mutation: Mutation) -> None:
    # Given the signer's valid signature damaged at one byte, the signer known or not
    damaged = mutate(upload.good, mutation)
    if mutation[1] % 2:
        _trusted_signers.clear()

    # When it is uploaded
    response = upload.sign(damaged)

    # Then it is refused with a signature code, or accepted only as openssl accepts it
    if response.status_code == 200:
        assert upload.openssl.accepts(damaged), mutation
        upload.letter(reviewed_letter(upload.api))  # the next example needs an unsigned one
        (upload.openssl.folder / "manifest.json").write_bytes(
            manifest_of(upload.api, upload.doc_id)
        )
        return
    assert 422 == response.status_code, response.text
    # (damage that leaves nothing is no signature at all: an empty upload)
    codes = SIGNATURE_CODES if damaged else {"invalid_input"}
    assert response.json()["code"] in codes, response.text


@pytest.mark.parametrize("case", ONCE_CRASHED)
def test_damage_that_once_answered_500_answers_422(upload: Upload, case: str) -> None:
    damage, error = ONCE_CRASHED[case]

    upload.refused(damage(upload.good), error.code)
