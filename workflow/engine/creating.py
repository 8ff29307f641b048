"""Creating a document: its row, recipients, files and first audit entry in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic_core import to_jsonable_python

from congvan.actions.context import Actor
from congvan.states import DOCUMENT
from congvan.storage.audit import GENESIS, make_entry
from congvan.storage.clock import Clock
from congvan.storage.ids import new_id
from congvan.storage.unit_of_work import UnitOfWork

from ..views import document_view
from .results import Idempotency, commit, replay

log = logging.getLogger("congvan.engine")


def create_once(
    open_uow: Callable[..., UnitOfWork],
    clock: Clock,
    actor: Actor,
    agency_id: str,
    fields: Mapping[str, Any],
    recipients: Sequence[Mapping[str, str]],
    files: Sequence[Mapping[str, Any]],
    idempotency: Idempotency | None,
    *,
    replay: Callable[[UnitOfWork, str, Idempotency], dict[str, Any] | None] = replay,
) -> dict[str, Any]:
    """Create the draft (checked inputs); its view as of creation, kept with the key."""
    with open_uow() as uow:
        if idempotency and (replayed := replay(uow, agency_id, idempotency)):
            return {**replayed, "replayed": True}
        now = clock()
        document_id = new_id()
        entry = make_entry(
            prev_hash=GENESIS,
            document_id=document_id,
            version=1,
            actor=actor.name,
            event="create",
            from_state="",
            to_state=DOCUMENT.initial,
            at=now,
            payload={
                "fields": dict(fields),
                "recipients": [r["organ_id"] for r in recipients],
                "files": [{k: f[k] for k in ("sha256", "filename", "role")} for f in files],
            },
        )
        uow.documents.add(
            {
                **fields,
                "id": document_id,
                "agency_id": agency_id,
                "state": DOCUMENT.initial,
                "version": 1,
                "audit_head": entry.hash,
                "created_by": actor.name,
                "created_at": now,
                "updated_at": now,
            }
        )
        uow.documents.set_recipients(document_id, recipients)
        for f in files:
            uow.documents.put_blob(f["sha256"], f["data"])
        uow.documents.add_attachments(
            document_id, [{k: v for k, v in f.items() if k != "data"} for f in files]
        )
        uow.audit.append([entry])
        # The answer as it is now, kept with the key in this transaction: a replay repeats
        # it even after the document has moved on.
        answer: dict[str, Any] = to_jsonable_python(
            document_view(uow, uow.documents.get(document_id) or {})
        )
        if idempotency:
            uow.idempotency.remember(
                agency_id, idempotency.key, idempotency.fingerprint, 201, answer, now
            )
        commit(uow, idempotency)
    log.info(
        "document created",
        extra={"action": "document.create", "document_id": document_id, "agency": agency_id},
    )
    return answer
