"""Sending: the issuing agency seals one package header per recipient at ``send``, and
at each recall or update of an issued document (``seal_requests``).

Decree 30 Art. 33: the agency signs what it issues. At ``send`` each recipient's
``package.json`` (its message id, stable for the dispatch's life, the manifest's digest and
every part, the signed PDF among them when the signature has one) is signed with the
agency's organisational key, before the transaction opens (``prepare_seals``: a signature
per recipient is CPU work no write lock should wait on), and kept on the dispatch
(``seal_packages``): every delivery attempt then sends the very same bytes, and a retry
after an unknown outcome is one the receiver recognises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from congvan.states.errors import InvalidInput, ManifestMismatch, UnknownPeer
from congvan.storage.dispatches import DispatchRow, SealedDispatch
from congvan.storage.documents import DocumentRow
from congvan.storage.ids import new_id

from . import corrections, recalls
from .context import TransitionContext
from .exchange.local import served_here
from .exchange.package import NEW, RECALL, REPLACE, UPDATE, Original
from .exchange.writing import SealedHeader, seal_header
from .signing.agencykeys import AgencyKeys

Seals = Mapping[str, SealedHeader]  # by recipient organ id


class Sending:
    """The ``seal_packages`` effect and its preparer."""

    def __init__(self, keys: AgencyKeys) -> None:
        self.keys = keys

    def prepare_seals(self, ctx: TransitionContext) -> Seals:
        """Each recipient's sealed header, as of the document now (read-only).

        A replacement's header is of business type ``replace`` for each recipient the
        document it replaces reached, naming that document as the recipient got it.
        """
        uow, doc = ctx.uow, ctx.document
        recipients = [r.organ_id for r in uow.documents.recipients(doc.id)]
        row = uow.documents.load(doc.id)
        originals: dict[str, Original] = {}
        if row.replaces_id is not None:
            replaced = uow.documents.load(row.replaces_id)
            originals = {
                r.organ_id: _original(replaced, r) for r in recalls.reached(uow, replaced.id)
            }
        return self._seal(
            ctx,
            recipients,
            lambda organ_id: (
                (REPLACE, originals[organ_id]) if organ_id in originals else (NEW, None)
            ),
            reason=row.replace_reason or None,
        )

    def prepare_request_seals(self, ctx: TransitionContext) -> Seals:
        """Each header of a recall or update (read-only): one per recipient that has the
        document, naming the package that brought it there."""
        uow, doc = ctx.uow, ctx.document
        row = uow.documents.load(doc.id)
        reached = {r.organ_id: _original(row, r) for r in recalls.reached(uow, doc.id)}
        business_type = RECALL if ctx.event == "recall" else UPDATE
        changes = (
            corrections.checked_changes(ctx.data.get("fields")) if business_type == UPDATE else None
        )
        return self._seal(
            ctx,
            sorted(reached),
            lambda organ_id: (business_type, reached[organ_id]),
            reason=str(ctx.data.get("reason") or "") or None,
            changes=changes,
        )

    def _seal(
        self,
        ctx: TransitionContext,
        recipients: Sequence[str],
        kind: Callable[[str], tuple[str, Original | None]],
        *,
        reason: str | None,
        changes: Mapping[str, str | None] | None = None,
    ) -> Seals:
        uow, doc = ctx.uow, ctx.document
        # Each recipient has an inbox: a peer's, or ours for an agency served here.
        unknown = [
            r for r in recipients if uow.peers.get(r) is None and not served_here(uow, r, ctx.now)
        ]
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
        seals = {}
        for organ_id in recipients:
            business_type, original = kind(organ_id)
            seals[organ_id] = seal_header(
                message_id=new_id(),
                recipient=organ_id,
                manifest=bytes(signature.manifest),
                signature=bytes(signature.cms),
                agency=agency,
                sent_at=ctx.now,
                signed_pdf=None if signed_pdf is None else bytes(signed_pdf),
                business_type=business_type,
                reason=reason if original is not None else None,
                original=original,
                changes=changes if business_type == UPDATE else None,
            )
        return seals

    def seal_packages(self, ctx: TransitionContext) -> None:
        """Keep each dispatch's sealed header (after ``create_dispatches`` made them)."""
        seals: Seals | None = ctx.prepared.get("seal_packages")
        if seals is None:  # fired inside another transaction: nothing was prepared
            seals = self.prepare_seals(ctx)
        self._keep(ctx, ctx.uow.dispatches.for_document(ctx.document.id), seals)

    def seal_requests(self, ctx: TransitionContext) -> None:
        """Keep each request dispatch's sealed header (after ``open_request`` made them)."""
        seals: Seals | None = ctx.prepared.get("seal_requests")
        if seals is None:
            seals = self.prepare_request_seals(ctx)
        request_id = str(ctx.job_payload["request_id"])
        self._keep(ctx, ctx.uow.dispatches.for_requests(ctx.document.id, request_id), seals)

    def _keep(
        self, ctx: TransitionContext, dispatches: Sequence[DispatchRow], seals: Seals
    ) -> None:
        if {d.organ_id for d in dispatches} != set(seals):
            raise InvalidInput("The recipients changed while the packages were sealed.")
        for dispatch in dispatches:
            seal = seals[dispatch.organ_id]
            ctx.uow.dispatches.seal(
                dispatch.id, SealedDispatch(seal.message_id, seal.header, seal.agency_signature)
            )
        ctx.audit["message_ids"] = {o: s.message_id for o, s in sorted(seals.items())}


def _original(row: DocumentRow, sent: DispatchRow) -> Original:
    """A sent document as the recipient of ``sent`` got it."""
    assert sent.message_id is not None
    return Original(sent.message_id, row.id, row.number, row.symbol)
