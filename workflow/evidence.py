"""Gathering a document's evidence from the database, for ``congvan evidence export``.

What is gathered is what the bundle format (``actions.exchange.evidence``) lists: the
latest signature with its manifest, timestamp token and signed PDF, the files (or only the
manifest's digests of them), each dispatch's sealed header, receipt and status messages,
the document's audit chain, the anchors of its agency listing a head of it (with their
tokens), and the pinned roots and newest CRLs. One read-only transaction: the pieces agree
with each other as of one moment.
"""

from __future__ import annotations

import json
from datetime import timedelta

from congvan.actions.exchange.evidence import AnchorEvidence, DispatchEvidence, Evidence
from congvan.actions.signing import keystore
from congvan.actions.signing.truststore import TrustStore
from congvan.actions.timestamping import stored_token
from congvan.states.errors import InvalidInput, NotFound
from congvan.storage.clock import as_utc
from congvan.storage.unit_of_work import UnitOfWork

# An anchor lists heads changed a little before it was made (anchoring.OVERLAP); none
# made this long before the document existed can list it.
_BEFORE_THE_DOCUMENT = timedelta(days=1)


def gather(
    uow: UnitOfWork, store: TrustStore, document_id: str, *, with_files: bool = True
) -> Evidence:
    """Everything the bundle of ``document_id`` holds; ``with_files=False``: digests only."""
    doc = uow.documents.get(document_id)
    if doc is None:
        raise NotFound(f"No document {document_id}.", document_id=document_id)
    signature = uow.signatures.latest_signature(document_id)
    if signature is None:
        raise InvalidInput(
            f"Document {document_id} is not signed: there is no evidence to export.",
            document_id=document_id,
            state=doc.state,
        )
    manifest = bytes(signature.manifest)
    files = None
    if with_files:
        # The files as signed: those the manifest lists, by their digests there.
        listed = json.loads(manifest)["attachments"]
        files = {str(a["filename"]): _blob(uow, str(a["sha256"])) for a in listed}
    signed_pdf = None
    if signature.signed_pdf_sha256 and with_files:  # it holds the main file's bytes
        signed_pdf = _blob(uow, signature.signed_pdf_sha256)
    trust = keystore.trust_material(uow, store)
    return Evidence(
        document_id=document_id,
        agency_id=doc.agency_id,
        manifest=manifest,
        signature=bytes(signature.cms),
        signature_token=stored_token(uow, "signature", signature.id),
        signed_pdf=signed_pdf,
        files=files,
        dispatches=tuple(_dispatches(uow, document_id)),
        audit=tuple(uow.audit.chain(document_id)),
        anchors=tuple(
            AnchorEvidence(
                agency_id=a.agency_id,
                seq=a.seq,
                body=bytes(a.body),
                cms=bytes(a.cms),
                token=stored_token(uow, "anchor", a.id),
            )
            for a in uow.anchors.covering(
                doc.agency_id, document_id, as_utc(doc.created_at) - _BEFORE_THE_DOCUMENT
            )
        ),
        roots=tuple(trust.roots),
        crls=tuple(trust.crls),
        cas=trust.intermediates,
    )


def _dispatches(uow: UnitOfWork, document_id: str) -> list[DispatchEvidence]:
    """The document's own dispatches, then those of each recall or update of it."""
    found = []
    dispatches = uow.dispatches
    for dispatch in [*dispatches.for_document(document_id), *dispatches.for_requests(document_id)]:
        sealed = uow.dispatches.sealed(dispatch.id)
        if sealed is None:
            continue  # created but never sealed: nothing was sent
        found.append(
            DispatchEvidence(
                recipient=dispatch.organ_id,
                header=sealed.header,
                header_cms=sealed.header_cms,
                receipt=uow.dispatches.receipt(dispatch.id),
                statuses=tuple(
                    (s.code, bytes(s.body), bytes(s.cms))
                    for s in uow.dispatches.statuses_of(dispatch.id)
                ),
                request_id=dispatch.request_id,
            )
        )
    return found


def _blob(uow: UnitOfWork, sha256: str) -> bytes:
    data = uow.documents.blob(sha256)
    if data is None:
        raise InvalidInput(f"The file {sha256} is no longer stored.", sha256=sha256)
    return bytes(data)
