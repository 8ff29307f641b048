"""Sending: the issuing agency seals one package header per recipient at ``send``.

Decree 30 Art. 33: the agency signs what it issues. At ``send`` each recipient's
``package.json`` (its message id, stable for the dispatch's life, the manifest's digest and
every part, the signed PDF among them when the signature has one) is signed with the
agency's organisational key, before the transaction opens (``prepare_seals``: a signature
per recipient is CPU work no write lock should wait on), and kept on the dispatch
(``seal_packages``): every delivery attempt then sends the very same bytes, and a retry
after an unknown outcome is one the receiver recognises.
"""

from __future__ import annotations

from collections.abc import Mapping

from congvan.states.errors import InvalidInput, ManifestMismatch, UnknownPeer
from congvan.storage.dispatches import SealedDispatch
from congvan.storage.ids import new_id

from .context import TransitionContext
from .exchange.writing import SealedHeader, seal_header
from .signing.agencykeys import AgencyKeys

Seals = Mapping[str, SealedHeader]  # by recipient organ id


class Sending:
    """The ``seal_packages`` effect and its preparer."""

    def __init__(self, keys: AgencyKeys) -> None:
        self.keys = keys

    def prepare_seals(self, ctx: TransitionContext) -> Seals:
        """Each recipient's sealed header, as of the document now (read-only)."""
        uow, doc = ctx.uow, ctx.document
        recipients = [r.organ_id for r in uow.documents.recipients(doc.id)]
        unknown = [r for r in recipients if uow.peers.get(r) is None]
        if unknown:
            raise UnknownPeer(
                f"No inbox is known for {', '.join(unknown)}: add them with `congvan peers "
                "add` or import the directory.",
                organ_ids=unknown,
            )
        signature = uow.signatures.latest_signature(doc.id)
        if signature is None:
            raise InvalidInput("The document has no signature to send.", document_id=doc.id)
        agency = self.keys.require(uow, doc.agency_id, ctx.now)
        signed_pdf = None
        if signature.signed_pdf_sha256:  # verified by signature_valid, which send guards on
            signed_pdf = uow.documents.blob(signature.signed_pdf_sha256)
            if signed_pdf is None:
                raise ManifestMismatch(
                    "The signed PDF is no longer stored.", sha256=signature.signed_pdf_sha256
                )
        return {
            organ_id: seal_header(
                message_id=new_id(),
                recipient=organ_id,
                manifest=bytes(signature.manifest),
                signature=bytes(signature.cms),
                agency=agency,
                sent_at=ctx.now,
                signed_pdf=None if signed_pdf is None else bytes(signed_pdf),
            )
            for organ_id in recipients
        }

    def seal_packages(self, ctx: TransitionContext) -> None:
        """Keep each dispatch's sealed header (after ``create_dispatches`` made them)."""
        seals: Seals | None = ctx.prepared.get("seal_packages")
        if seals is None:  # fired inside another transaction: nothing was prepared
            seals = self.prepare_seals(ctx)
        dispatches = ctx.uow.dispatches.for_document(ctx.document.id)
        if {d.organ_id for d in dispatches} != set(seals):
            raise InvalidInput("The recipients changed while the packages were sealed.")
        for dispatch in dispatches:
            seal = seals[dispatch.organ_id]
            ctx.uow.dispatches.seal(
                dispatch.id, SealedDispatch(seal.message_id, seal.header, seal.agency_signature)
            )
        ctx.audit["message_ids"] = {o: s.message_id for o, s in sorted(seals.items())}
