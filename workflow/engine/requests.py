"""The follow-ups of recalls and updates: a document recalled once every recipient agreed,
and the draft that replaces an issued document (thay thế)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from congvan.actions.context import Actor
from congvan.actions.recalls import latest_recall, recall_answered, recall_complete
from congvan.states import DOCUMENT
from congvan.states.document import ISSUED
from congvan.states.errors import Forbidden, InvalidInput, TransitionNotAllowed, VersionConflict
from congvan.states.fields import EDITABLE
from congvan.states.machine import allowed_events
from congvan.states.policy import REPLACE_ROLES
from congvan.states.text import has_visible_text, nfc
from congvan.storage.dispatches import DispatchRow
from congvan.storage.unit_of_work import UnitOfWork

from .bindings import check_reason_length, check_text, load_document
from .creating import Draft
from .results import Expected, FireResult, matches

# Engine.fire_on_within: (uow, machine, subject id, event, *, data=...) -> its result.
FireWithin = Callable[..., FireResult]


def answered(uow: UnitOfWork, dispatch: DispatchRow, fire_within: FireWithin) -> list[str]:
    """A recipient answered a recall or update, or turned it away, or returned the
    document itself (02): once the latest recall is done with (``recall_complete``:
    every recipient agreed, or had returned the document as the two crossed), the
    document is recalled."""
    request_id = dispatch.request_id or latest_recall(uow, dispatch.document_id)
    if not request_id or not recall_answered(uow, dispatch.document_id, request_id):
        return []
    if not recall_complete(uow, dispatch.document_id, request_id):
        return []
    head = uow.documents.head(dispatch.document_id)
    if head is None or "recalled" not in allowed_events(DOCUMENT, head.state, include_derived=True):
        return []
    data = {"request_id": request_id}
    return fire_within(uow, "document", dispatch.document_id, "recalled", data=data).jobs


def may_replace(actor: Actor) -> None:
    """Refuse an actor without a role that replaces documents (before any replay too: a
    stored answer is only for a caller allowed to ask)."""
    if not actor.is_system and not (actor.roles & REPLACE_ROLES):
        raise Forbidden(
            "Replacing a document needs the role supervisor or signer.",
            needs=sorted(REPLACE_ROLES),
        )


def replacement(
    open_uow: Callable[..., UnitOfWork],
    actor: Actor,
    document_id: str,
    reason: str,
    files: Sequence[Mapping[str, Any]] | None,
    expected: Expected | None = None,
) -> Draft:
    """The draft that replaces the issued ``document_id``, with a reason.

    It starts as a copy of the original's metadata (without its number: a replacement
    is a new document) and recipients, with ``files`` (None: the original's), and names
    the document it replaces.
    """
    may_replace(actor)
    check_text("reason", reason, multi_line=True)  # as a recall's or an update's reason
    reason = str(nfc(reason))
    if not has_visible_text(reason):
        raise InvalidInput("A replacement says why.", field="reason")
    check_reason_length(reason)  # it travels in the replacement's package
    agency_id = actor.agency_id
    if agency_id is None:
        raise Forbidden("A document belongs to an agency; the system has none.")
    with open_uow(readonly=True) as uow:
        head = load_document(uow, document_id, actor, lock=False)
        if expected is not None and not matches(expected, head.version):
            raise VersionConflict(expected, head.version)  # the If-Match of the request
        if head.state not in ISSUED:
            raise TransitionNotAllowed("replace", head.state, allowed_events(DOCUMENT, head.state))
        original = uow.documents.load(document_id)
        recipients = [
            {"organ_id": r.organ_id, "name": r.name} for r in uow.documents.recipients(document_id)
        ]
        copied = []
        for a in uow.documents.attachments(document_id) if files is None else ():
            data = uow.documents.blob(a.sha256)
            if data is None:
                raise InvalidInput(f"The file {a.filename} is no longer stored.")
            copied.append(
                {
                    "sha256": a.sha256,
                    "filename": a.filename,
                    "media_type": a.media_type,
                    "size": a.size,
                    "role": a.role,
                    "data": bytes(data),
                }
            )
    fields = {k: getattr(original, k) for k in EDITABLE if k != "number"}
    fields |= {"replaces_id": document_id, "replace_reason": reason}
    return Draft(agency_id, fields, recipients, copied if files is None else files)
