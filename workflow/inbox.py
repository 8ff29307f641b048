"""The inbox: accept a package from another agency, store it once, answer a signed receipt.

No caller is trusted for who it says it is: the sender is what the agency signature on
the package proves (DESIGN principle 10). Accepting takes these steps, none of them inside
a write transaction but the last:

1. open the package (structure, sizes, names) and verify it against the pinned roots, the
   directory and the recipient, who must be an agency of this installation with an
   organisational key (``actions.exchange.acceptance``);
2. sign the receipt (status 01) with the recipient's organisational key;
3. store the received document with its first audit entry, unless the same package (same
   sender, same message id) was stored before: then the first receipt is the answer,
   however often and however concurrently the package is delivered again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import BinaryIO

from congvan.actions.exchange.acceptance import verify_package
from congvan.actions.exchange.archive import Limits
from congvan.actions.exchange.package import open_package
from congvan.actions.exchange.receipts import make_receipt
from congvan.actions.signing import keystore
from congvan.actions.signing.agencykeys import AgencyKeys
from congvan.actions.signing.truststore import TrustStore
from congvan.states.errors import Misaddressed
from congvan.storage.ids import new_id

from .engine import Engine
from .engine.creating import Arrival

log = logging.getLogger("congvan.inbox")


@dataclass(frozen=True)
class Answer:
    """The receipt a package is answered with, and whether this delivery stored it."""

    receipt: bytes
    receipt_cms: bytes
    received_id: str
    stored: bool


class Inbox:
    """Accepts packages for this installation's agencies."""

    def __init__(self, engine: Engine, keys: AgencyKeys, trust: TrustStore, limits: Limits) -> None:
        self.engine = engine
        self.keys = keys
        self.trust = trust
        self.limits = limits

    def accept(self, stream: BinaryIO) -> Answer:
        """Verify the package in ``stream``, store it once, answer its receipt."""
        engine = self.engine
        now = engine.clock()
        with open_package(stream, self.limits) as package:
            header = package.header
            with engine.open_uow(readonly=True) as uow:
                signer = self.keys.find(uow, header.recipient, now)
                trust = keystore.trust_material(uow, self.trust)
                # Known: a peer of the directory, or an agency of this installation.
                known = uow.peers.get(header.sender) is not None or (
                    self.keys.find(uow, header.sender, now) is not None
                )
            if signer is None:
                raise Misaddressed(
                    f"No agency {header.recipient} receives documents here.",
                    reason="recipient",
                    recipient=header.recipient,
                )
            accepted = verify_package(
                package,
                trust,
                expected_recipient=header.recipient,
                now=now,
                directory_lookup=lambda _sender: known,
            )
            stream.seek(0)
            data = stream.read()
        received_id = new_id()
        receipt = make_receipt(
            message_id=header.message_id,
            package_sha256=accepted.package_sha256,
            manifest_sha256=accepted.manifest_sha256,
            sender=header.sender,
            received_at=now,
            received_document_id=received_id,
            agency=signer,
        )
        doc, stored = engine.receive(
            Arrival(
                id=received_id,
                agency_id=header.recipient,
                sender_id=header.sender,
                message_id=header.message_id,
                sender_document_id=header.document_id,
                manifest=accepted.manifest,
                manifest_sha256=accepted.manifest_sha256,
                metadata=dict(accepted.document),
                package_sha256=accepted.package_sha256,
                package=data,
                receipt=receipt.body,
                receipt_cms=receipt.cms,
            )
        )
        if stored:
            return Answer(receipt.body, receipt.cms, doc.id, True)
        with engine.open_uow(readonly=True) as uow:
            first = uow.received.evidence(doc.id)
        assert first is not None
        log.info(
            "package delivered again",
            extra={"action": "inbox.duplicate", "sender": header.sender, "document_id": doc.id},
        )
        return Answer(first.receipt, first.receipt_cms, doc.id, False)
