"""Whether a signed PDF from outside is the document's main PDF signed by its signer.

A signed PDF arrives from outside twice: uploaded by the signer's own tool beside the CMS
over the manifest (``signing``), and in a peer's package beside the signer's
``signature.p7s`` (``exchange.acceptance``). Both judge it the same way, here, and
``verify_signed_main`` raises the first failure, in this order:

    not the main PDF's bytes with more         ManifestMismatch (``main_sha256``)
    appended
    its signatures (``pades.verify_pdf``)      SignatureError and its subclasses
    more added than one signature and what     PdfModified (``pdfchanges``)
    it needs
    made with another certificate than the     SignerMismatch (``manifest_certificate``,
    manifest's signature                       ``pdf_certificate``)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime

from cryptography import x509

from congvan.states.errors import ManifestMismatch, SignerMismatch

from .pades import PdfVerdict, verify_pdf
from .pdfchanges import check_only_a_signature_added

# Bytes a signed PDF may hold beyond its main file: the signatures and their stamps.
SIGNATURE_ROOM = 1024 * 1024


def verify_signed_main(
    main: bytes,
    signed: bytes,
    *,
    certificate: str | None,
    trust_roots: Sequence[x509.Certificate],
    crls: Iterable[x509.CertificateRevocationList | bytes],
    at: datetime,
    intermediates: Sequence[x509.Certificate] = (),
) -> PdfVerdict:
    """Check ``signed`` is ``main`` plus one valid signature made with ``certificate``.

    ``certificate`` is the SHA-256 fingerprint of the certificate that signed the
    manifest (None: any, the caller compares the verdict's signer itself); the
    signatures are judged at ``at`` with ``crls`` (nothing is fetched).
    """
    if len(signed) <= len(main) or not signed.startswith(main):
        raise ManifestMismatch(
            "The signed PDF is not the document's main file with signatures appended.",
            main_sha256=hashlib.sha256(main).hexdigest(),
        )
    verdict = verify_pdf(
        signed, trust_roots=trust_roots, crls=crls, at=at, intermediates=intermediates
    )
    # After verifying, so a bad signature is named as such: the updates before it may
    # add that one signature and what it needs, nothing that is shown.
    check_only_a_signature_added(main, signed)
    if certificate is not None and verdict.signer.sha256 != certificate:
        raise SignerMismatch(
            "The PDF is signed with another certificate than the manifest.",
            manifest_certificate=certificate,
            pdf_certificate=verdict.signer.sha256,
        )
    return verdict
