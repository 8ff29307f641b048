"""Delivery between two installations over real HTTP on loopback.

The sender (agency A, the province) and the receiver (agency B, a department) each have
their own database; they share the test's trust store (one pinned root). The receiver's
API is served by uvicorn on a free port; the sender's delivery jobs are run one at a time
by the test, so every step can be checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509

from congvan.actions.exchange.status import make_status
from congvan.actions.signing import keystore, pki
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.stored import manifest_of
from congvan.states.errors import MessageMismatch
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
    actor,
    add_agency,
    document_row,
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


@pytest.fixture
def pair(
    make_runtime: Callable[..., Runtime], boot: Any, databases: Databases, db_kind: str
) -> Pair:
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
    now = sender.clock()
    with sender.uow() as uow:
        keystore.init_ca(
            uow, "Exchange CA", "UBND tỉnh", passphrase=PASS, now=now, store=sender.trust
        )
        keystore.issue_agency(uow, A, passphrase=PASS, crl_url="http://x/crl", now=now)
        b_row = keystore.issue_agency(uow, B, passphrase=PASS, crl_url="http://x/crl", now=now)
        directory.ensure_user(
            uow, A, "pct", ["signer"], now, full_name="Nguyễn Văn Phương", position="PCT"
        )
        signer = keystore.issue_signer(
            uow, A, "pct", passphrase=PASS, crl_url="http://x/crl", now=now
        )
        crl = keystore.publish_crl(uow, passphrase=PASS, now=now)
        uow.commit()
    # B's key lives with the receiver only; A is in the receiver's directory of peers.
    add_agency(receiver, A)
    add_agency(receiver, B, "Sở Nội vụ", "SNV")
    with receiver.uow() as uow:
        uow.signatures.add_certificate(dataclasses.replace(b_row, id=new_id()))
        uow.peers.put(Peer(A, "https://congvan.example.vn/v1/inbox", "http", 30, 4, now, now))
        keystore.import_crl(uow, receiver.trust, crl)
        uow.commit()
    sender.clock.advance(minutes=5)
    return Pair(
        sender,
        receiver,
        pki.load_private_key(signer.key_pem.encode(), PASS),
        x509.load_pem_x509_certificate(signer.cert_pem.encode()),
    )


@pytest.fixture
def served(pair: Pair) -> Iterator[str]:
    with serve_in_thread(create_app(pair.receiver)) as base:
        yield f"{base}/v1/inbox"


def test_a_sent_letter_is_delivered_with_a_receipt_the_sender_verified(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's signed letter to B, whose inbox is up
    pair.point_b_at(served)
    doc = pair.signed(make_document)

    # When A sends it and its delivery job runs
    pair.sender.engine.fire(doc, "send", actor("clerk"))
    [job] = pair.jobs(doc)
    ran = pair.sender.runner.run(job)
    with pair.sender.uow(readonly=True) as uow:
        assert ran == "done", (uow.outbox.get(job), pair.dispatch(doc))
    # Then B stored it once, and A's dispatch is delivered with B's signed receipt
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, dispatch.attempts) == ("delivered", 1), dispatch.last_error
    assert [(a.outcome, a.http_status) for a in attempts] == [("delivered", 201)]
    assert document_row(pair.sender, doc).state == "delivered"
    [received] = pair.received()
    assert (received.sender_id, received.message_id) == (A, dispatch.message_id)
    with pair.sender.uow(readonly=True) as uow:
        assert uow.dispatches.receipt(dispatch.id) is not None


def test_a_receiver_down_is_retried_with_the_same_message_id_then_delivered(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given B's inbox unreachable
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)

    # When the first attempt fails, then B comes back and the job runs again
    assert pair.sender.runner.run(job) == "failed"
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, [a.outcome for a in attempts]) == ("pending", ["transient"])
    pair.point_b_at(served)
    assert pair.sender.runner.run(job) == "done"

    # Then it is delivered on the second attempt, and B has it once
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, dispatch.attempts) == ("delivered", 2)
    assert [a.outcome for a in attempts] == ["transient", "delivered"]
    assert len(pair.received()) == 1


class LosesTheAnswer(httpx.BaseTransport):
    """Sends the request for real, then loses the answer (a reset after it arrived)."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        response.read()
        raise httpx.ReadError("connection reset by peer")


def test_an_answer_lost_after_the_receiver_stored_it_is_one_document(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given a delivery whose first answer is lost after B stored the package
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    delivery = pair.sender.runner.actions["deliver_dispatches"]
    delivery.transport = LosesTheAnswer  # type: ignore[union-attr]
    assert pair.sender.runner.run(job) == "failed"
    dispatch, attempts = pair.dispatch(doc)
    assert [a.outcome for a in attempts] == ["unknown"]
    assert len(pair.received()) == 1  # it did arrive

    # When the job runs again with the answers coming back
    delivery.transport = lambda: None  # type: ignore[union-attr]
    assert pair.sender.runner.run(job) == "done"

    # Then the same message id got the first receipt: delivered, and one document at B
    dispatch, attempts = pair.dispatch(doc)
    assert dispatch.state == "delivered"
    assert [a.outcome for a in attempts] == ["unknown", "delivered"]
    [received] = pair.received()
    assert received.message_id == dispatch.message_id


def test_past_the_last_attempt_the_dispatch_fails_and_the_document_with_it(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    outcomes = [pair.sender.runner.run(job) for _ in range(3)]
    assert outcomes == ["failed", "failed", "done"]
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, len(attempts)) == ("failed", 3)
    assert document_row(pair.sender, doc).state == "failed"
    assert pair.jobs(doc) == []


def test_a_package_the_receiver_refuses_rejects_the_dispatch_at_once(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given a receiver that does not know A (no peer entry)
    with pair.receiver.uow() as uow:
        uow.peers.remove(A)
        uow.commit()
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)

    assert pair.sender.runner.run(job) == "done"

    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, [(a.outcome, a.http_status) for a in attempts]) == (
        "rejected",
        [("refused", 401)],
    )
    assert "peer_unknown" in dispatch.last_error
    assert pair.received() == []


def _status_jobs(runtime: Runtime, received_id: str) -> list[str]:
    with runtime.uow(readonly=True) as uow:
        return [
            j.id
            for j in uow.outbox.for_document(received_id)
            if j.action == "send_status" and j.status not in ("done", "failed")
        ]


@pytest.mark.parametrize(
    ("event", "data", "dispatch_state", "document_state"),
    [
        ("register", {}, "acknowledged", "acknowledged"),
        ("refuse", {"reason": "Gửi nhầm cơ quan"}, "rejected", "failed"),
    ],
    ids=["registered", "refused"],
)
def test_what_the_receivers_clerk_does_comes_back_as_a_signed_status(
    pair: Pair,
    served: str,
    make_document: Callable[..., str],
    event: str,
    data: dict[str, str],
    dispatch_state: str,
    document_state: str,
) -> None:
    # Given A's letter delivered to B
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    assert pair.sender.runner.run(job) == "done"
    [received] = pair.received()

    with serve_in_thread(create_app(pair.sender)) as sender_base:
        with pair.receiver.uow() as uow:
            now = pair.receiver.clock()
            uow.peers.put(Peer(A, f"{sender_base}/v1/inbox", "http", 5, 4, now, now))
            uow.commit()

        # When B's clerk registers (or refuses) it and B's status job runs
        pair.receiver.engine.fire_on("received", received.id, event, actor("clerk", B), data=data)
        [status_job] = _status_jobs(pair.receiver, received.id)
        assert pair.receiver.runner.run(status_job) == "done"

    # Then A's dispatch and document follow, and A keeps B's signed message
    dispatch, _attempts = pair.dispatch(doc)
    assert dispatch.state == dispatch_state
    assert document_row(pair.sender, doc).state == document_state
    with pair.sender.uow(readonly=True) as uow:
        [kept] = uow.dispatches.statuses_of(dispatch.id)
    assert (kept.code, kept.reason) == (
        {"register": "03", "refuse": "02"}[event],
        data.get("reason", ""),
    )


def test_a_status_message_from_another_agency_than_the_recipient_is_refused(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    assert pair.sender.runner.run(job) == "done"
    dispatch, _ = pair.dispatch(doc)

    # When A itself (whose key the sender holds) claims B registered it
    with pair.sender.uow(readonly=True) as uow:
        a_key = pair.sender.inbox.keys.require(uow, A, pair.sender.clock())
    forged = make_status(
        message_id=dispatch.message_id,
        document_id=doc,
        to=A,
        code="03",
        description="registered",
        at=pair.sender.clock(),
        agency=a_key,
    )

    # Then it is refused and the dispatch stays delivered
    with pytest.raises(MessageMismatch):
        pair.sender.statuses.accept(forged.body, forged.cms)
    assert pair.dispatch(doc)[0].state == "delivered"


def test_a_receiver_asking_to_wait_is_retried_no_sooner_than_it_asked(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given a receiver that answers 503 with Retry-After: 600
    pair.point_b_at("https://congvan.example.vn/v1/inbox")
    doc, job = pair.sent(make_document)
    busy = httpx.Response(503, headers={"Retry-After": "600"}, json={"code": "busy"})
    delivery = pair.sender.runner.actions["deliver_dispatches"]
    delivery.transport = lambda: httpx.MockTransport(lambda _request: busy)  # type: ignore[union-attr]

    # When the attempt is made
    assert pair.sender.runner.run(job) == "failed"

    # Then the job waits 10 minutes (its own backoff would have been 10 seconds)
    with pair.sender.uow(readonly=True) as uow:
        [timer] = [t for t in uow.timers.of_kind("job_deadline") if t.ref_id == job]
    assert timer.due_at - pair.sender.clock() == timedelta(seconds=600)
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, [(a.outcome, a.http_status) for a in attempts]) == (
        "pending",
        [("transient", 503)],
    )


def test_no_more_posts_to_a_peer_at_once_than_its_concurrency(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given two letters to B, whose directory entry allows one delivery at a time
    with pair.sender.uow() as uow:
        now = pair.sender.clock()
        uow.peers.put(Peer(B, "https://congvan.example.vn/v1/inbox", "http", 5, 1, now, now))
        uow.commit()
    docs = [pair.signed(make_document) for _ in range(2)]
    jobs = []
    for doc in docs:
        pair.sender.engine.fire(doc, "send", actor("clerk"))
        jobs += pair.jobs(doc)
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow_busy(_request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return httpx.Response(503, json={"code": "busy"})

    delivery = pair.sender.runner.actions["deliver_dispatches"]
    delivery.transport = lambda: httpx.MockTransport(slow_busy)  # type: ignore[union-attr]

    # When both jobs run at once
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(pair.sender.runner.run, jobs))

    # Then both tried, one after the other
    assert outcomes == ["failed", "failed"]
    assert most[0] == 1
