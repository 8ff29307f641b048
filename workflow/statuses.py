"""Status messages from recipients: verify, keep once, move the dispatch they are about.

A recipient's system posts a signed status message (``congvan-status/1``) when its clerks
register (03) or refuse (02) a document we sent, or report its handling (04–06). It is
verified like a package (the agency signature of the agency it is ``from``, chained to a
pinned root; addressed to an agency of this installation), matched to our dispatch by its
message id (the dispatch must be to the agency it is from, the document its own), kept
once per code unless it contradicts one kept before (02 and 03–06, 15 and 16), and moves
the dispatch: 03 → acknowledged, 02 → rejected with the reason; a recall's or update's
dispatch takes only its answer, 15 → agreed, 16 → declined with the reason (and the
document is recalled once every recipient of its recall agreed). A repeat is answered the
same and changes nothing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from congvan.actions.context import SYSTEM
from congvan.actions.exchange.envelope import check_moment
from congvan.actions.exchange.status import AGREED, DECLINED, verify_status
from congvan.actions.exchange.status import FORMAT as STATUS_FORMAT
from congvan.actions.recalls import recall_agreed_at
from congvan.actions.signing import keystore
from congvan.actions.signing.agencykeys import AgencyKeys
from congvan.actions.signing.truststore import TrustStore
from congvan.states.dispatch import (
    RECALL_AGREED,
    RECIPIENT_REFUSED,
    REJECTED,
    STATUS_EVENTS,
    contradicted,
)
from congvan.states.errors import (
    FormatUnsupported,
    MessageMalformed,
    MessageMismatch,
    Misaddressed,
    StatusContradicted,
    TransitionNotAllowed,
)
from congvan.states.policy import is_organ_id
from congvan.storage.clock import as_utc
from congvan.storage.dispatches import StatusRow

from .engine import Engine

log = logging.getLogger("congvan.statuses")

ANSWERS = (AGREED, DECLINED)


@dataclass(frozen=True)
class Taken:
    """What a status message did: the dispatch's state after it, and whether it was new."""

    dispatch_id: str
    state: str
    new: bool


def decoded(status: str, status_cms: str) -> tuple[bytes, bytes]:
    """A status message as ``POST /v1/status`` carries it (each part base64): its bytes."""
    try:
        return base64.b64decode(status, validate=True), base64.b64decode(status_cms, validate=True)
    except ValueError as exc:  # binascii.Error is one
        raise MessageMalformed("The status message is not base64.", reason="base64") from exc


class Statuses:
    """Accepts status messages about this installation's dispatches."""

    def __init__(self, engine: Engine, keys: AgencyKeys, trust: TrustStore) -> None:
        self.engine = engine
        self.keys = keys
        self.trust = trust

    def accept(self, body: bytes, cms: bytes) -> Taken:
        engine = self.engine
        now = engine.clock()
        # Whom it is to, to find our key before the signature is checked; the message is
        # read in full (canonical, every member) once the signature holds.
        try:
            content = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise MessageMalformed("The status message is not JSON.", reason="not_json") from exc
        if not isinstance(content, dict):
            raise MessageMalformed("The status message is not a JSON object.", reason="not_json")
        if content.get("format") != STATUS_FORMAT:  # a receipt or a package header, say
            found = content.get("format")
            raise FormatUnsupported(
                f"The message's format is not {STATUS_FORMAT}.",
                reason="unknown_format",
                format=None if found is None else str(found)[:60],
                accepted=STATUS_FORMAT,
            )
        to = content.get("to")
        if not isinstance(to, str) or not is_organ_id(to):
            raise MessageMalformed("to must be an agency identifier.", reason="member", member="to")
        # The certificates listed for the agency it says it is from (what names no agency
        # lists none, and is refused as the status is read).
        sender = content.get("from")
        named = [sender] if isinstance(sender, str) and is_organ_id(sender) else []
        with engine.open_uow(readonly=True) as uow:
            ours = self.keys.find(uow, to, now) is not None
            trust = keystore.trust_material(uow, self.trust, named)
        # The sender is authenticated first, as at the inbox: whom we send for is not told
        # to a caller who cannot sign as an agency of the directory.
        status = verify_status(body, cms, trust, expected_recipient=to, now=now)
        if not ours:
            raise Misaddressed(
                f"No agency {to} sends documents from here.", reason="recipient", recipient=to
            )
        with engine.open_uow() as uow:
            dispatch = uow.dispatches.by_message_id(status.message_id)
            # The document first, as every transaction writing a dispatch locks it: a
            # delivery recording its receipt meanwhile waits, and never deadlocks.
            head = (
                None
                if dispatch is None
                else uow.documents.head(dispatch.document_id, for_update=True)
            )
            if dispatch is None or head is None or head.agency_id != to:
                raise MessageMismatch(
                    "No package of ours has this message id.",
                    reason="message_id",
                    found=status.message_id,
                )
            if dispatch.organ_id != status.from_agency:
                raise MessageMismatch(
                    f"The package went to {dispatch.organ_id}, not {status.from_agency}.",
                    reason="sender",
                    found=status.from_agency,
                )
            sealed = uow.dispatches.sealed(dispatch.id)
            if sealed is not None:  # what it reports cannot come before the package left
                sent_at = datetime.fromisoformat(json.loads(sealed.header)["sent_at"])
                check_moment("at", status.at, not_before=sent_at)
            if status.document_id != dispatch.document_id:
                raise MessageMismatch(
                    "The status names another document than the package it is about.",
                    reason="document_id",
                    found=status.document_id,
                )
            if (status.code in ANSWERS) != bool(dispatch.request_id):
                # 15 and 16 answer a recall or an update, 02–06 the document itself.
                raise MessageMismatch(
                    f"Status {status.code} does not answer what the package asked.",
                    reason="status_code",
                    found=status.code,
                )
            kept = uow.dispatches.status_codes(dispatch.id)
            if dispatch.state == REJECTED and RECIPIENT_REFUSED not in kept:
                # Its inbox refused the package (the attempt's answer, no status message):
                # the recipient holds nothing under this message id to report on.
                raise StatusContradicted(
                    f"Status {status.code} is about a package the recipient's inbox refused: "
                    "it holds nothing to report on.",
                    reason="refused_at_inbox",
                    found=status.code,
                    earlier=RECIPIENT_REFUSED,
                )
            earlier = contradicted(kept, status.code)
            if earlier is None and status.code not in kept and not dispatch.request_id:
                # (a repeat is answered as before) It agreed to the recall (15): its copy
                # is cancelled there (Decree 30 Art. 18), and nothing it reports of that
                # copy since can be so. What it did before agreeing (registered it, say),
                # reported late, is so: kept -- but not a refusal (02), whenever dated: a
                # recipient agrees to recall only a document it holds in force (its inbox
                # refuses the recall of one it refused).
                agreed = recall_agreed_at(uow, dispatch.document_id, dispatch.organ_id)
                refusal = status.code == RECIPIENT_REFUSED
                if agreed is not None and (refusal or as_utc(status.at) > agreed):
                    earlier = RECALL_AGREED
            if earlier is not None:
                raise StatusContradicted(
                    f"Status {status.code} contradicts status {earlier} received before"
                    + (
                        ": the recipient agreed to the recall, its copy is cancelled."
                        if earlier == RECALL_AGREED
                        else "."
                    ),
                    reason="status_code",
                    found=status.code,
                    earlier=earlier,
                )
            row = StatusRow(
                dispatch_id=dispatch.id,
                code=status.code,
                reason=status.reason or "",
                at=status.at,
                body=body,
                cms=cms,
                received_at=now,
            )
            new = uow.dispatches.keep_status(row, kept)
            event = STATUS_EVENTS.get(status.code)
            if new and event is not None:
                # Not taken by the dispatch's state (an answer to a recall or update
                # ahead of our receipt): kept, and applied when the delivery records it.
                with contextlib.suppress(TransitionNotAllowed):
                    engine.fire_on_within(
                        uow, "dispatch", dispatch.id, event, actor=SYSTEM, data=row.event_data()
                    )
            state = (uow.dispatches.get(dispatch.id) or dispatch).state
            uow.commit()
        log.info(
            "status message",
            extra={
                "action": "dispatch.status",
                "dispatch_id": dispatch.id,
                "code": status.code,
                "new": new,
            },
        )
        return Taken(dispatch.id, state, new)
