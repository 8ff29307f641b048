"""Routes for signatures: the manifest to sign, the signature and its verdict, our PKI."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from fastapi import APIRouter, Response

from congvan.actions.signing import keystore
from congvan.actions.signing.stored import as_signed, manifest_of, verify_stored
from congvan.actions.signing.verification import Verdict
from congvan.actions.timestamping import timestamp_view
from congvan.states.certificates import CertificateDescription
from congvan.states.errors import CongvanError, NotFound
from congvan.states.policy import READ_ROLES
from congvan.storage.agencies import Principal
from congvan.storage.clock import as_utc
from congvan.storage.signatures import SignatureRow
from congvan.storage.unit_of_work import UnitOfWork

from .auth import requires
from .bodies import JsonRoute
from .deps import ReadUowDep, TrustDep
from .findings import Manifest, SignatureOut
from .outputs import AUTHENTICATED, COMMON, STORED, binary, digest_headers, errors, header_specs
from .views import load_visible

router = APIRouter(prefix="/v1", tags=["signatures"], route_class=JsonRoute)
_READ = errors(*AUTHENTICATED, 404)


def verdict_view(verdict: Verdict) -> dict[str, Any]:
    """Each point checked, plain JSON."""
    view: dict[str, Any] = {"ok": True}
    for field in dataclasses.fields(verdict):
        value = getattr(verdict, field.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, CertificateDescription):
            value = value.as_dict()
        elif isinstance(value, Mapping):
            value = dict(value)
        view[field.name] = value
    return view


@router.get(
    "/documents/{document_id}/manifest",
    summary="The canonical manifest of the current revision (what a signer signs)",
    response_class=Response,
    responses={
        200: {
            "model": Manifest,
            "description": "RFC 8785 JSON",
            "headers": header_specs("Repr-Digest", "Digest", "ETag"),
        },
        **_READ,
    },
)
def get_manifest(
    document_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
) -> Response:
    with uow:
        load_visible(uow, document_id, principal.agency_id)
        manifest = manifest_of(uow, document_id)
    return Response(
        manifest,
        media_type="application/json",
        headers=digest_headers(hashlib.sha256(manifest).hexdigest()),
    )


@router.get(
    "/documents/{document_id}/signature",
    summary="The latest signature and a fresh verification verdict",
    response_model=SignatureOut,
    response_model_exclude_unset=True,  # a timestamp never asked for is {"status": "none"}
    responses=_READ,
)
def get_signature(
    document_id: str,
    uow: ReadUowDep,
    trust_store: TrustDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
) -> dict[str, Any]:
    with uow:
        doc = load_visible(uow, document_id, principal.agency_id)
        signature = uow.signatures.latest_signature(document_id)
        if signature is None:
            raise NotFound("The document is not signed.", document_id=document_id)
        try:
            trust = keystore.trust_material(uow, trust_store)
            # As signed: an update's corrections since are taken back (as `verify` does).
            signed = as_signed(uow, document_id, signature.manifest_sha256)
            verdict = verdict_view(
                verify_stored(uow, signature, signed.manifest, signed.document, trust)
            )
        except CongvanError as exc:
            verdict = {"ok": False, **exc.to_dict()}  # a verdict, not an error of the call
        # pending / stamped / unavailable (with the error) / none: never asked for
        timestamp = timestamp_view(uow, "signature", signature.id)
    return {
        "document_id": document_id,
        "revision": signature.revision,
        "mode": signature.mode,
        "signer": signature.signer,
        "manifest_sha256": signature.manifest_sha256,
        "certificate": signature.certificate_fingerprint,
        "signed_pdf_sha256": signature.signed_pdf_sha256 or None,
        "signing_time": as_utc(signature.signing_time).isoformat(),  # with its offset
        "current_revision": doc.revision,
        "timestamp": timestamp,
        "verdict": verdict,
    }


def _latest_signature(uow: UnitOfWork, principal: Principal, document_id: str) -> SignatureRow:
    with uow:
        load_visible(uow, document_id, principal.agency_id)
        signature = uow.signatures.latest_signature(document_id)
    if signature is None:
        raise NotFound("The document is not signed.", document_id=document_id)
    return signature


@router.get(
    "/documents/{document_id}/signature/manifest",
    summary="The exact manifest bytes the latest signature signs (RFC 8785 JSON)",
    response_class=Response,
    responses={
        200: {
            "model": Manifest,
            "description": "RFC 8785 JSON, byte for byte as signed",
            "headers": header_specs("Content-Disposition", "Repr-Digest", "Digest", "ETag"),
        },
        **_READ,
    },
)
def get_signed_manifest(
    document_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
) -> Response:
    signature = _latest_signature(uow, principal, document_id)
    return Response(
        bytes(signature.manifest),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{document_id}.manifest.json"',
            **digest_headers(signature.manifest_sha256),
        },
    )


@router.get(
    "/documents/{document_id}/signature/cms",
    summary="The latest signature itself: a detached CMS SignedData (DER)",
    response_class=Response,
    responses={
        **binary(
            "application/pkcs7-signature",
            description="DER",
            headers=("Content-Disposition", "Repr-Digest", "Digest", "ETag"),
        ),
        **_READ,
    },
)
def get_signature_cms(
    document_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
) -> Response:
    signature = _latest_signature(uow, principal, document_id)
    cms = bytes(signature.cms)
    return Response(
        cms,
        media_type="application/pkcs7-signature",
        headers={
            "Content-Disposition": f'attachment; filename="{document_id}.p7s"',
            **digest_headers(hashlib.sha256(cms).hexdigest()),
        },
    )


@router.get(
    "/documents/{document_id}/signed-pdf",
    summary="The main PDF carrying its visible PAdES signature",
    response_class=Response,
    responses={
        **binary(
            "application/pdf",
            description="The signed PDF",
            headers=("Content-Disposition", "Repr-Digest", "Digest", "ETag"),
        ),
        **_READ,
    },
)
def get_signed_pdf(
    document_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
) -> Response:
    with uow:
        load_visible(uow, document_id, principal.agency_id)
        signature = uow.signatures.latest_signature(document_id)
        digest = signature.signed_pdf_sha256 if signature else ""
        data = uow.documents.blob(digest) if digest else None
    if not data:
        raise NotFound("No signed PDF for this document.", document_id=document_id)
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{document_id}.pdf"',
            **digest_headers(digest),  # as every stored file: conditional reads
        },
    )


Format = Literal["der", "pem"]


@router.get(
    "/pki/crl",
    summary="Our CA's newest certificate revocation list (DER, or PEM with ?format=pem; no token)",
    response_class=Response,
    responses={
        **binary("application/pkix-crl", "application/x-pem-file", description="The CRL"),
        **errors(*STORED, 404),
    },
)
def get_crl(uow: ReadUowDep, format: Format = "der") -> Response:
    with uow:
        ours = [r.fingerprint for r in uow.signatures.roots() if r.key_pem]
        rows = [r for r in uow.signatures.latest_crl_rows() if r.issuer_fingerprint in ours]
    if not rows:
        raise NotFound("No certification authority here.")
    der = bytes(rows[-1].der)
    if format == "pem":
        crl = x509.load_der_x509_crl(der)
        return Response(
            crl.public_bytes(serialization.Encoding.PEM), media_type="application/x-pem-file"
        )
    return Response(der, media_type="application/pkix-crl")


@router.get(
    "/pki/roots",
    summary="The trusted (pinned) root certificates: PEM, or DER with ?format=der (no token)",
    response_class=Response,
    responses={
        **binary(
            "application/x-pem-file",
            "application/pkix-cert",
            "application/pkcs7-mime",
            description="One certificate (DER), several (PKCS #7), or PEM (empty when none)",
        ),
        **errors(*COMMON, 404),
    },
)
def get_roots(trust_store: TrustDep, format: Format = "pem") -> Response:
    roots = trust_store.roots()
    if format == "der":
        if not roots:  # no DER form says "none": PKCS #7 needs a certificate
            raise NotFound("No trusted root certificates here.")
        if len(roots) == 1:  # one certificate, as RFC 2585 serves it
            return Response(
                roots[0].public_bytes(serialization.Encoding.DER),
                media_type="application/pkix-cert",
            )
        bundle = pkcs7.serialize_certificates(roots, serialization.Encoding.DER)
        return Response(bundle, media_type="application/pkcs7-mime; smime-type=certs-only")
    pem = b"".join(r.public_bytes(serialization.Encoding.PEM) for r in roots)
    return Response(pem, media_type="application/x-pem-file")
