"""Two installations that exchange documents over real HTTP on loopback, for the tests.

The sender (agency A, the province) and the receiver (agency B, a department) each have
their own database; they share the test's trust store (one pinned root). ``make_pair``
builds them (a test module wraps it in its ``pair`` fixture); ``serving_inbox`` serves the
receiver's API on a free port. The sender's delivery jobs are run one at a time by the
test, so every step can be checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from congvan.actions.signing import keystore, pki
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.stored import manifest_of
from congvan.storage.ids import new_id
from congvan.storage.peers import Peer
from congvan.storage.signatures import SignatureRow
from congvan.workflow import directory
from congvan.workflow.api.app import create_app
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.serving import serve_in_thread
from tests.databases import Databases
from tests.factories import (
    AGENCY_ID,
    FAKE_EFFECTS,
    FAKE_GUARDS,
    SAMPLE_FIELDS,
    actor,
    add_agency,
    job_done,
)

PASS = "delivery test passphrase"
A = AGENCY_ID
B = "000.00.01.H57"  # a recipient of the sample letter
DOWN = "http://127.0.0.1:9/v1/inbox"  # the discard port: nothing listens there


@dataclass
class Pair:
    sender: Runtime
    receiver: Runtime
    signer_key: pki.PrivateKey
    signer_cert: x509.Certificate

    def point_b_at(self, url: str) -> None:
        with self.sender.uow() as uow:
            now = self.sender.clock()
            uow.peers.put(Peer(B, url, "http", 5, 4, now, now))
            uow.commit()

    def signed(self, make_document: Callable[..., str]) -> str:
        """A's letter to B, approved (checks faked) and signed by A's signer (for real)."""
        doc = make_document(self.sender, recipients=[{"organ_id": B, "name": "Sở Nội vụ"}])
        self.sender.engine.fire(doc, "approve", actor("reviewer"))
        self.sender.engine.fire(doc, "sign", actor("signer"))
        now = self.sender.clock()
        with self.sender.uow() as uow:
            manifest = manifest_of(uow, doc)
            cms = sign_manifest(
                manifest,
                key=self.signer_key,
                cert=self.signer_cert,
                chain=list(self.sender.trust.roots()),
                signing_time=now,
            )
            uow.signatures.add_signature(
                SignatureRow(
                    id=new_id(),
                    document_id=doc,
                    revision=1,
                    manifest=manifest,
                    manifest_sha256=hashlib.sha256(manifest).hexdigest(),
                    cms=cms,
                    mode="server",
                    signer="Nguyễn Văn Phương",
                    certificate_fingerprint=keystore.fingerprint(self.signer_cert),
                    signing_time=now,
                    signed_pdf_sha256="",
                    created_at=now,
                )
            )
            uow.commit()
        return doc

    def sent(self, make_document: Callable[..., str]) -> tuple[str, str]:
        """A's signed letter to B, sent: the document and its one delivery job."""
        doc = self.signed(make_document)
        self.sender.engine.fire(doc, "send", actor("clerk"))
        [job] = self.jobs(doc)
        return doc, job

    def jobs(self, doc: str) -> list[str]:
        with self.sender.uow(readonly=True) as uow:
            return [
                j.id
                for j in uow.outbox.for_document(doc)
                if j.action == "deliver_dispatches" and j.status not in ("done", "failed")
            ]

    def dispatch(self, doc: str) -> Any:
        with self.sender.uow(readonly=True) as uow:
            [dispatch] = uow.dispatches.for_document(doc)
            return dispatch, uow.dispatches.attempts_of(dispatch.id)

    def received(self) -> list[Any]:
        with self.receiver.uow(readonly=True) as uow:
            return uow.received.page(B).items

    def answer(self, received_id: str, event: str, data: dict[str, str] | None = None) -> None:
        """B's clerk fires ``event`` on the received document; B's status job posts the
        signed status message to A's API, served for the while."""
        with serve_in_thread(create_app(self.sender)) as sender_base:
            with self.receiver.uow() as uow:
                now = self.receiver.clock()
                uow.peers.put(Peer(A, f"{sender_base}/v1/inbox", "http", 5, 4, now, now))
                uow.commit()
            self.receiver.engine.fire_on(
                "received", received_id, event, actor("clerk", B), data=data or {}
            )
            [status_job] = self.status_jobs(received_id)
            assert self.receiver.runner.run(status_job) == "done"

    def status_jobs(self, received_id: str) -> list[str]:
        with self.receiver.uow(readonly=True) as uow:
            return [
                j.id
                for j in uow.outbox.for_document(received_id)
                if j.action == "send_status" and j.status not in ("done", "failed")
            ]


@dataclass(frozen=True)
class Keys:
    """What ``issue_keys`` made: certificate rows (with their keys) and the CRL."""

    agencies: dict[str, dict[str, Any]]
    signer: dict[str, Any]
    crl: bytes


def issue_keys(runtime: Runtime, *others: str) -> Keys:
    """Our CA, pinned in ``runtime``'s trust store; organisational certificates for A and
    ``others``; A's signer ``pct`` (the sample letter's); and the CA's CRL."""
    now = runtime.clock()
    with runtime.uow() as uow:
        keystore.init_ca(
            uow, "Exchange CA", "UBND tỉnh", passphrase=PASS, now=now, store=runtime.trust
        )
        agencies = {
            agency: keystore.issue_agency(
                uow, agency, passphrase=PASS, crl_url="http://x/crl", now=now
            )
            for agency in (A, *others)
        }
        directory.ensure_user(
            uow,
            A,
            "pct",
            ["signer"],
            now,
            full_name=SAMPLE_FIELDS["signer_name"],
            position=SAMPLE_FIELDS["signer_position"],
        )
        signer = keystore.issue_signer(
            uow, A, "pct", passphrase=PASS, crl_url="http://x/crl", now=now
        )
        crl = keystore.publish_crl(uow, passphrase=PASS, now=now)
        uow.commit()
    return Keys(agencies, signer, crl)


def make_pair(
    make_runtime: Callable[..., Runtime], boot: Any, databases: Databases, db_kind: str
) -> Pair:
    """A and B on databases of ``db_kind``: keys issued, B's only at the receiver, A in
    B's directory of peers, A's signer ready; B's inbox not yet served."""
    effects = {k: v for k, v in FAKE_EFFECTS.items() if k != "seal_packages"}
    sender = make_runtime(
        guards=FAKE_GUARDS,
        effects=effects,
        jobs={"run_review_checks": job_done},
        key_passphrase=PASS,
        dispatch_max_attempts=3,
    )
    receiver = boot(databases.new(db_kind).url, key_passphrase=PASS)
    add_agency(sender, A)
    add_agency(sender, B, "Sở Nội vụ", "SNV")
    keys = issue_keys(sender, B)
    b_row, signer, crl = keys.agencies[B], keys.signer, keys.crl
    now = sender.clock()
    # B's key lives with the receiver only; A is in the receiver's directory of peers.
    add_agency(receiver, A)
    add_agency(receiver, B, "Sở Nội vụ", "SNV")
    with receiver.uow() as uow:
        uow.signatures.add_certificate({**b_row, "id": new_id()})
        uow.peers.put(Peer(A, "https://congvan.example.vn/v1/inbox", "http", 30, 4, now, now))
        keystore.import_crl(uow, receiver.trust, crl)
        uow.commit()
    sender.clock.advance(minutes=5)
    return Pair(
        sender,
        receiver,
        pki.load_private_key(signer["key_pem"].encode(), PASS),
        x509.load_pem_x509_certificate(signer["cert_pem"].encode()),
    )


@contextmanager
def serving_inbox(pair: Pair) -> Iterator[str]:
    """The receiver's API served for the while: its inbox URL."""
    with serve_in_thread(create_app(pair.receiver)) as base:
        yield f"{base}/v1/inbox"
