"""Two installations that exchange documents: a sender (agency A) and a receiver.

The sender holds the exchange CA, A's organisational key and a signer of A; the receiver
holds the organisational keys of its agencies (B by default) and knows A as a peer; both
trust the same root and the CRL the sender published. No pytest here: the delivery tests
and ``bench/delivery.py`` build the same pair.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography import x509
from sqlalchemy import text

from congvan.actions.delivery import Delivery
from congvan.actions.exchange.status import make_status
from congvan.actions.signing import issuers, keystore, pades, pki
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.stored import manifest_of
from congvan.storage.ids import new_id
from congvan.storage.peers import Peer
from congvan.storage.signatures import CertificateRow
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
    add_signature_row,
    job_done,
    sample_file,
)

# The sender's fakes: review and the send guards pass; sealing and delivery are real.
SENDER_FAKES: dict[str, Any] = {
    "guards": FAKE_GUARDS,
    "effects": {k: v for k, v in FAKE_EFFECTS.items() if k != "seal_packages"},
    "jobs": {"run_review_checks": job_done},
}

A = AGENCY_ID
PASS = "delivery test passphrase"  # the keys' passphrase in the tests
B = "000.00.01.H57"  # a recipient of the sample letter
CRL_URL = "http://x/crl"
NAMES = {B: "Sở Nội vụ"}
Agency = tuple[str, str, str]  # organ id, name, abbreviation


@dataclass
class Pair:
    sender: Runtime
    receiver: Runtime
    signer_key: pki.PrivateKey
    signer_cert: x509.Certificate
    # The number each letter ``signed`` makes takes, unless given: as the sender's
    # not_duplicate guard (faked here) and the receiver's repeat check want, one per letter.
    numbers: Iterator[int] = dataclasses.field(default_factory=lambda: itertools.count(1227))

    def point_at(self, organ_id: str, url: str, concurrency: int = 4) -> None:
        """The sender delivers ``organ_id``'s documents to ``url``.

        The timeout is long: a loaded machine may take seconds to answer, and an attempt
        timing out would leave its dispatch pending, outcome unknown, where a test expects
        it delivered. No timeout is tested through this."""
        with self.sender.uow() as uow:
            now = self.sender.clock()
            uow.peers.put(Peer(organ_id, url, "http", 30, concurrency, now, now))
            uow.commit()

    def deliver_through(self, transport: Callable[[], httpx.BaseTransport | None]) -> None:
        """The sender's deliveries go through ``transport`` (returning None: the network)."""
        delivery = self.sender.runner.actions["deliver_dispatches"]
        assert isinstance(delivery, Delivery)
        delivery.transport = transport

    def point_b_at(self, url: str) -> None:
        self.point_at(B, url)

    def sign_pdf(self, pdf: bytes) -> bytes:
        """``pdf`` signed in PAdES by A's signer, as signing on the server does."""
        return pades.sign_pdf(
            pdf,
            key=self.signer_key,
            cert=self.signer_cert,
            chain=list(self.sender.trust.roots()),
            signer_name="Nguyễn Văn Phương",
            position="PCT",
            agency_name="UBND tỉnh",
            signing_time=self.sender.clock(),
        )

    def signed(
        self,
        make_document: Callable[..., str],
        to: Sequence[str] = (B,),
        *,
        pdf: tuple[str, bytes] | None = None,
        signed_pdf: bytes | None = None,
        **fields: Any,
    ) -> str:
        """A's letter to ``to``, approved (checks faked) and signed by A's signer (for real).

        ``pdf`` (file name, bytes) is its main file; ``signed_pdf`` is kept as the PDF the
        signer signed (``sign_pdf``), unchecked: the send guards are faked.
        """
        recipients = [{"organ_id": o, "name": NAMES.get(o, o)} for o in to]
        if pdf is not None:
            fields["files"] = [sample_file(pdf[1], filename=pdf[0])]
        fields.setdefault("files", [sample_file()])  # a document has its main file
        fields.setdefault("number", next(self.numbers))
        doc = make_document(self.sender, recipients=recipients, **fields)
        self.sender.engine.fire(doc, "approve", actor("reviewer"))
        self.sender.engine.fire(doc, "sign", actor("signer"))
        now = self.sender.clock()
        with self.sender.uow() as uow:
            signed_pdf_sha256 = ""
            if signed_pdf is not None:
                signed_pdf_sha256 = hashlib.sha256(signed_pdf).hexdigest()
                uow.documents.put_blob(signed_pdf_sha256, signed_pdf)
            manifest = manifest_of(uow, doc)
            cms = sign_manifest(
                manifest,
                key=self.signer_key,
                cert=self.signer_cert,
                chain=list(self.sender.trust.roots()),
                signing_time=now,
            )
            add_signature_row(
                uow,
                doc,
                manifest,
                cms,
                now,
                mode="server",
                fingerprint=keystore.fingerprint(self.signer_cert),
                signed_pdf_sha256=signed_pdf_sha256,
            )
            uow.commit()
        return doc

    def sent(self, make_document: Callable[..., str], **fields: Any) -> tuple[str, str]:
        """A's signed letter to B (with ``fields``), sent: the document and its one
        delivery job."""
        doc = self.signed(make_document, **fields)
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

    def status_from_b(
        self, doc: str, code: str, *, description: str = "registered", reason: str | None = None
    ) -> tuple[bytes, bytes]:
        """B's signed status message ``code`` about A's dispatch of ``doc``: body, CMS."""
        with self.receiver.uow(readonly=True) as uow:
            b_key = self.receiver.inbox.keys.require(uow, B, self.receiver.clock())
        dispatch, _ = self.dispatch(doc)
        sealed = make_status(
            message_id=dispatch.message_id,
            document_id=doc,
            to=A,
            code=code,
            description=description,
            reason=reason,
            at=self.receiver.clock(),
            agency=b_key,
        )
        return sealed.body, sealed.cms

    def received(self) -> list[Any]:
        with self.receiver.uow(readonly=True) as uow:
            return uow.received.page(B).items

    def answer(
        self,
        received_id: str,
        event: str,
        data: dict[str, str] | None = None,
        *,
        role: str = "clerk",
        agency: str = B,
    ) -> None:
        """B's clerk (or ``role``; or another ``agency`` served by B's installation) fires
        ``event`` on the received document; its status job posts the signed status
        message to A's API, served for the while."""
        with serve_in_thread(create_app(self.sender)) as sender_base:
            with self.receiver.uow() as uow:
                now = self.receiver.clock()
                # A loaded machine may take seconds to answer: no timeout is tested here.
                uow.peers.put(Peer(A, f"{sender_base}/v1/inbox", "http", 30, 4, now, now))
                uow.commit()
            self.receiver.engine.fire_on(
                "received", received_id, event, actor(role, agency), data=data or {}
            )
            [status_job] = self.status_jobs(received_id)
            outcome = self.receiver.runner.run(status_job)
            assert outcome == "done", self._job_error(status_job)

    def _job_error(self, job_id: str) -> str:
        """What the receiver's job ``job_id`` last failed with, for a failing assertion."""
        with self.receiver.uow(readonly=True) as uow:
            query = text("SELECT last_error FROM outbox WHERE id = :id")
            return str(uow.conn.execute(query, {"id": job_id}).scalar())

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

    agencies: dict[str, CertificateRow]
    signer: CertificateRow
    crl: bytes


def issue_keys(runtime: Runtime, *others: str, passphrase: str = PASS) -> Keys:
    """Our CA, pinned in ``runtime``'s trust store; organisational certificates for A and
    ``others``; A's signer ``pct`` (the sample letter's); and the CA's CRL."""
    now = runtime.clock()
    with runtime.uow() as uow:
        keystore.init_ca(
            uow, "Exchange CA", "UBND tỉnh", passphrase=passphrase, now=now, store=runtime.trust
        )
        agencies = {
            agency: keystore.issue_agency(
                uow, agency, passphrase=passphrase, crl_url=CRL_URL, now=now
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
            uow, A, "pct", passphrase=passphrase, crl_url=CRL_URL, now=now
        )
        crl = keystore.publish_crl(uow, passphrase=passphrase, now=now)
        uow.commit()
    return Keys(agencies, signer, crl)


def link(
    sender: Runtime,
    receiver: Runtime,
    passphrase: str = PASS,
    agencies: Sequence[Agency] = ((B, NAMES[B], "SNV"),),
    sender_inbox: str = "https://congvan.example.vn/v1/inbox",
) -> Pair:
    """Issue the keys, publish the CRL and fill both directories; the pair it makes.

    ``agencies`` are the receiver's; their keys live with the receiver only, and A is in
    the receiver's directory of peers at ``sender_inbox``, with its certificate.
    """
    add_agency(sender, A)
    for organ_id, name, abbreviation in agencies:
        add_agency(sender, organ_id, name, abbreviation)
    keys = issue_keys(sender, *(o for o, _n, _a in agencies), passphrase=passphrase)
    now = sender.clock()
    with sender.uow() as uow:
        # The receiver's agencies are the sender's peers: their certificates are listed
        # here, their keys are the receiver's alone (an agency whose key is here is
        # served here, and takes its documents in this installation's own inbox).
        uow.conn.execute(
            text("UPDATE certificates SET key_pem = '' WHERE kind = 'agency' AND agency_id != :a"),
            {"a": A},
        )
        uow.commit()
    add_agency(receiver, A)
    for organ_id, name, abbreviation in agencies:
        add_agency(receiver, organ_id, name, abbreviation)
    with receiver.uow() as uow:
        for organ_id, _name, _abbreviation in agencies:
            uow.signatures.add_certificate(
                dataclasses.replace(keys.agencies[organ_id], id=new_id())
            )
        # A's directory entry: its inbox and its organisational certificate (no key).
        uow.peers.put(Peer(A, sender_inbox, "http", 30, 4, now, now))
        uow.signatures.add_certificate(
            dataclasses.replace(keys.agencies[A], id=new_id(), key_pem="")
        )
        issuers.import_crl(uow, receiver.trust, keys.crl, now=now)
        uow.commit()
    return Pair(
        sender,
        receiver,
        pki.load_private_key(keys.signer.key_pem.encode(), passphrase),
        x509.load_pem_x509_certificate(keys.signer.cert_pem.encode()),
    )


def one_installation(make_runtime: Callable[..., Runtime], **settings: Any) -> Pair:
    """One installation serving A and B (a province and its department), both keys held
    here: A's letters to B go through its own inbox and status route, in the process.
    ``settings`` override the sender's fakes and settings."""
    runtime = make_runtime(
        **{**SENDER_FAKES, "key_passphrase": PASS, "dispatch_max_attempts": 3, **settings}
    )
    add_agency(runtime, A)
    add_agency(runtime, B, NAMES[B], "SNV")
    keys = issue_keys(runtime, B)
    runtime.clock.advance(minutes=5)
    signer_key = pki.load_private_key(keys.signer.key_pem.encode(), PASS)
    signer_cert = x509.load_pem_x509_certificate(keys.signer.cert_pem.encode())
    return Pair(runtime, runtime, signer_key, signer_cert)


def make_pair(
    make_runtime: Callable[..., Runtime], boot: Any, databases: Databases, db_kind: str
) -> Pair:
    """A and B on databases of ``db_kind`` (the sender's faked review and send guards,
    three attempts per dispatch), linked; B's inbox not yet served."""
    sender = make_runtime(**SENDER_FAKES, key_passphrase=PASS, dispatch_max_attempts=3)
    receiver = boot(databases.new(db_kind).url, key_passphrase=PASS)
    pair = link(sender, receiver)
    sender.clock.advance(minutes=5)
    return pair


@contextmanager
def serving_inbox(pair: Pair) -> Iterator[str]:
    """The receiver's API served for the while: its inbox URL."""
    with serve_in_thread(create_app(pair.receiver)) as base:
        yield f"{base}/v1/inbox"
