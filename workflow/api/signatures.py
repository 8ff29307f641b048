"""Routes for signatures: the manifest to sign, the signature and its verdict, our PKI."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Response

from congvan.actions.signing import keystore
from congvan.actions.signing.cms import Verdict
from congvan.actions.signing.signing import manifest_of, verify_stored
from congvan.actions.timestamping import timestamp_view
from congvan.states.errors import CongvanError, NotFound
from congvan.states.policy import READ_ROLES

from .auth import PrincipalDep, RuntimeDep, require
from .views import load_visible

router = APIRouter(prefix="/v1", tags=["signatures"])


def verdict_view(verdict: Verdict) -> dict[str, Any]:
    """Each point checked, plain JSON."""
    view: dict[str, Any] = {"ok": True}
    for field in dataclasses.fields(verdict):
        value = getattr(verdict, field.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Mapping):
            value = dict(value)
        view[field.name] = value
    return view


@router.get(
    "/documents/{document_id}/manifest",
    summary="The canonical manifest of the current revision (what a signer signs)",
)
def get_manifest(document_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    require(principal, READ_ROLES, "Reading documents")
    with runtime.uow(readonly=True) as uow:
        load_visible(uow, document_id, principal.agency_id)
        manifest = manifest_of(uow, document_id)
    return Response(manifest, media_type="application/json")


@router.get(
    "/documents/{document_id}/signature",
    summary="The latest signature and a fresh verification verdict",
)
def get_signature(document_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, READ_ROLES, "Reading documents")
    with runtime.uow(readonly=True) as uow:
        doc = load_visible(uow, document_id, principal.agency_id)
        signature = uow.signatures.latest_signature(document_id)
        if signature is None:
            raise NotFound("The document is not signed.", document_id=document_id)
        try:
            verdict = verdict_view(
                verify_stored(uow, signature, manifest_of(uow, document_id), doc)
            )
        except CongvanError as exc:
            verdict = {"ok": False, **exc.to_dict()}  # a verdict, not an error of the call
        # pending / stamped / unavailable (with the error) / none: never asked for
        timestamp = timestamp_view(uow, "signature", signature["id"])
    return {
        "document_id": document_id,
        "revision": signature["revision"],
        "mode": signature["mode"],
        "signer": signature["signer"],
        "manifest_sha256": signature["manifest_sha256"],
        "certificate": signature["certificate_fingerprint"],
        "signed_pdf_sha256": signature["signed_pdf_sha256"] or None,
        "signing_time": signature["signing_time"].isoformat(),
        "current_revision": doc["revision"],
        "timestamp": timestamp,
        "verdict": verdict,
    }


@router.get(
    "/documents/{document_id}/signed-pdf",
    summary="The main PDF carrying its visible PAdES signature",
)
def get_signed_pdf(document_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    require(principal, READ_ROLES, "Reading documents")
    with runtime.uow(readonly=True) as uow:
        load_visible(uow, document_id, principal.agency_id)
        signature = uow.signatures.latest_signature(document_id)
        digest = signature["signed_pdf_sha256"] if signature else ""
        data = uow.documents.blob(digest) if digest else None
    if not data:
        raise NotFound("No signed PDF for this document.", document_id=document_id)
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{document_id}.pdf"'},
    )


@router.get("/pki/crl", summary="Our newest certificate revocation list (DER, no token)")
def get_crl(runtime: RuntimeDep) -> Response:
    with runtime.uow(readonly=True) as uow:
        crls = uow.signatures.latest_crls()
    if not crls:
        raise NotFound("No certification authority here.")
    return Response(crls[0], media_type="application/pkix-crl")


@router.get("/pki/roots", summary="Trusted root certificates (PEM, no token)")
def get_roots(runtime: RuntimeDep) -> Response:
    with runtime.uow(readonly=True) as uow:
        roots = keystore.trust_material(uow).roots
    pem = b"".join(r.public_bytes(serialization.Encoding.PEM) for r in roots)
    return Response(pem, media_type="application/x-pem-file")
