"""Delivery between two installations over real HTTP on loopback.

The sender (agency A, the province) and the receiver (agency B, a department) each have
their own database; they share the test's trust store (one pinned root). The receiver's
API is served by uvicorn on a free port; the sender's delivery jobs are run one at a time
by the test, so every step can be checked.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from congvan.actions.exchange.receipts import make_receipt
from congvan.actions.exchange.status import make_status
from congvan.actions.signing import issuers, keystore
from congvan.states.errors import MessageMismatch
from congvan.storage.audit_checks import verify_chains
from congvan.storage.dispatches import DispatchRepository
from congvan.storage.documents import DocumentRepository
from congvan.storage.peers import Peer
from congvan.workflow import directory, peers
from congvan.workflow.api.app import create_app
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.letters import sample_pdf
from congvan.workflow.serving import serve_in_thread
from tests.exchange_world import members
from tests.factories import (
    actor,
    chain_problems,
    document_row,
)
from tests.installations import PASS, A, B, Pair, serving_inbox
from tests.servers import wait_until

DOWN = "http://127.0.0.1:9/v1/inbox"  # the discard port: nothing listens there


@pytest.fixture
def served(pair: Pair) -> Iterator[str]:
    with serving_inbox(pair) as inbox:
        yield inbox


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
    # A signature made without a signed PDF travels without one, and is accepted so
    with pair.receiver.uow(readonly=True) as uow:
        package = uow.documents.blob(received.package_sha256)
    assert package is not None
    assert not [name for name in members(package) if name.startswith("signed/")]


LETTER = "1227-UBND-TĐKT.pdf"


def _read_as_bs_clerk(pair: Pair, served: str) -> httpx.Client:
    """A client of B's API (the one serving ``served``) holding a token of B's clerk."""
    now = pair.receiver.clock()
    with pair.receiver.uow() as uow:
        clerk = directory.ensure_user(uow, B, "vanthu", ["clerk"], now)
        token = directory.create_token(uow, clerk, now).token
        uow.commit()
    base = served.removesuffix("/v1/inbox")
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    ("sql", "detail"),
    [
        (
            "UPDATE dispatches SET state = 'acknowledged' WHERE id = :id",
            "says acknowledged, its trail ends at delivered: the row was moved outside",
        ),
        ("DELETE FROM dispatches WHERE id = :id", "is in its trail, and its row is gone"),
    ],
)
def test_a_dispatch_moved_or_removed_by_sql_breaks_its_documents_chain(
    pair: Pair, served: str, make_document: Callable[..., str], sql: str, detail: str
) -> None:
    # Given A's letter delivered to B, its chain verifying
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    assert pair.sender.runner.run(job) == "done"
    dispatch = pair.dispatch(doc)[0]
    assert dispatch.state == "delivered"
    with pair.sender.uow(readonly=True) as uow:
        assert [p for _, p in verify_chains(uow.conn) if p is not None] == []

    # When its dispatch row is moved (or deleted) by SQL, past every transition
    with pair.sender.uow() as uow:
        uow.conn.execute(
            text("DELETE FROM dispatch_attempts WHERE dispatch_id = :id"), {"id": dispatch.id}
        )
        uow.conn.execute(
            text("DELETE FROM dispatch_statuses WHERE dispatch_id = :id"), {"id": dispatch.id}
        )
        uow.conn.execute(text(sql), {"id": dispatch.id})
        uow.commit()

    # Then its document's chain is altered at its head, naming the dispatch
    with pair.sender.uow(readonly=True) as uow:
        problems = {d: p for d, p in verify_chains(uow.conn) if p is not None}
    assert list(problems) == [doc]
    assert (problems[doc].problem, problems[doc].version) == ("altered", None)
    assert dispatch.id in problems[doc].detail and detail in problems[doc].detail


def broken_chains(pair: Pair) -> dict[str, str]:
    """The sender's chains that do not verify, with the first problem's detail."""
    with pair.sender.uow(readonly=True) as uow:
        return {d: p.detail for d, p in verify_chains(uow.conn) if p is not None}


def test_a_failed_dispatch_put_back_to_pending_by_sql_breaks_its_documents_chain(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter to B failed after its last attempt, its chain verifying
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    assert [pair.sender.runner.run(job) for _ in range(3)] == ["failed", "failed", "done"]
    dispatch, _ = pair.dispatch(doc)
    assert dispatch.state == "failed" and broken_chains(pair) == {}

    # When SQL puts it back to pending, as a resend would, with no resend
    with pair.sender.uow() as uow:
        uow.conn.execute(
            text("UPDATE dispatches SET state = 'pending' WHERE id = :id"), {"id": dispatch.id}
        )
        uow.commit()

    # Then its document's chain is altered, naming the dispatch
    assert list(broken_chains(pair)) == [doc]
    assert "says pending, its trail ends at failed" in broken_chains(pair)[doc]


def test_a_letter_with_its_signed_pdf_is_delivered_and_read_by_the_receivers_clerk(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter whose main PDF the signer signed (PAdES) as well as its manifest
    pair.point_b_at(served)
    main = sample_pdf()
    signed = pair.sign_pdf(main)
    doc = pair.signed(make_document, pdf=(LETTER, main), signed_pdf=signed)

    # When A sends it and its delivery job runs
    pair.sender.engine.fire(doc, "send", actor("clerk"))
    [job] = pair.jobs(doc)
    assert pair.sender.runner.run(job) == "done"

    # Then B verified and kept it: delivered, with the signed PDF in the package B stored
    dispatch, _attempts = pair.dispatch(doc)
    assert dispatch.state == "delivered", dispatch.last_error
    [received] = pair.received()
    with pair.receiver.uow(readonly=True) as uow:
        package = uow.documents.blob(received.package_sha256)
    assert package is not None and members(package)[f"signed/{LETTER}"] == signed

    # And B's clerk lists its files and downloads the signed PDF and the main file
    with _read_as_bs_clerk(pair, served) as client:
        view = client.get(f"/v1/received/{received.id}").json()
        files = {f["name"]: f for f in view["files"]}
        assert {n: (f["role"], f["size"]) for n, f in files.items()} == {
            LETTER: ("main", len(main)),
            f"signed/{LETTER}": ("signed_pdf", len(signed)),
        }
        got = client.get(f"/v1/received/{received.id}/files/signed/{LETTER}")
        assert (got.status_code, got.content) == (200, signed)
        assert got.headers["content-type"] == "application/pdf"
        got = client.get(f"/v1/received/{received.id}/files/{LETTER}")
        assert (got.status_code, got.content) == (200, main)


def test_a_signed_pdf_of_another_file_is_refused_and_the_dispatch_rejected(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter kept with a PDF its signer signed that is not the letter's main file
    pair.point_b_at(served)
    main = sample_pdf()
    doc = pair.signed(
        make_document, pdf=(LETTER, main), signed_pdf=pair.sign_pdf(sample_pdf("Bản khác"))
    )

    # When A sends it and its delivery job runs
    pair.sender.engine.fire(doc, "send", actor("clerk"))
    [job] = pair.jobs(doc)
    pair.sender.runner.run(job)

    # Then B refuses it with its reason, stores nothing, and A's dispatch is rejected at once
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, [a.http_status for a in attempts]) == ("rejected", [422])
    assert "package_tampered signed_pdf_mismatch" in dispatch.last_error
    assert pair.received() == []


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
    pair.deliver_through(LosesTheAnswer)
    assert pair.sender.runner.run(job) == "failed"
    dispatch, attempts = pair.dispatch(doc)
    assert [a.outcome for a in attempts] == ["unknown"]
    assert len(pair.received()) == 1  # it did arrive

    # When the job runs again with the answers coming back
    pair.deliver_through(lambda: None)
    assert pair.sender.runner.run(job) == "done"

    # Then the same message id got the first receipt: delivered, and one document at B
    dispatch, attempts = pair.dispatch(doc)
    assert dispatch.state == "delivered"
    assert [a.outcome for a in attempts] == ["unknown", "delivered"]
    [received] = pair.received()
    assert received.message_id == dispatch.message_id


class SlowLine(httpx.HTTPTransport):
    """A line on which a package takes longer to go up than the clock skew allowed between
    two signatures (a scanned decision of a few MiB on a poor link): the installations'
    clock moves on while the body travels."""

    def __init__(self, clock: Any, minutes: float) -> None:
        super().__init__()
        self.clock, self.minutes = clock, minutes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.clock.advance(minutes=self.minutes)
        return super().handle_request(request)


def test_a_receipt_signed_when_a_slow_package_arrived_is_delivery(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given a package that takes six minutes to reach B, whose receipt is signed then
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    pair.deliver_through(lambda: SlowLine(pair.sender.clock, minutes=6))

    # When it is delivered
    assert pair.sender.runner.run(job) == "done"

    # Then its receipt is judged as of its answer, not of the attempt's start: delivered
    dispatch, attempts = pair.dispatch(doc)
    assert [(a.outcome, a.error) for a in attempts] == [("delivered", "")]
    assert dispatch.state == "delivered"


@pytest.mark.parametrize(
    ("event", "data", "settled", "document"),
    [
        ("register", None, "acknowledged", "acknowledged"),
        ("refuse", {"reason": "Sai thẩm quyền"}, "rejected", "failed"),
    ],
    ids=["registered", "refused"],
)
def test_a_status_that_comes_between_attempts_settles_the_dispatch_at_once(
    pair: Pair,
    served: str,
    make_document: Callable[..., str],
    event: str,
    data: dict[str, str] | None,
    settled: str,
    document: str,
) -> None:
    # Given a delivery whose first answer was lost after B stored the package: pending,
    # its next attempt due
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    pair.deliver_through(LosesTheAnswer)
    assert pair.sender.runner.run(job) == "failed"
    assert pair.dispatch(doc)[0].state == "pending"

    # When B's clerk registers (or refuses) it, and B's signed status comes meanwhile
    [received] = pair.received()
    pair.answer(received.id, event, data)

    # Then the status settles the dispatch at once, and the document follows
    assert pair.dispatch(doc)[0].state == settled
    assert document_row(pair.sender, doc).state == document

    # And every later attempt, its answer lost as well, moves nothing: the dispatch never
    # fails for good, and no supervisor is told of a failure
    while (outcome := pair.sender.runner.run(job)) == "failed":
        pair.sender.clock.advance(minutes=30)  # past the backoff
        pair.sender.scheduler.tick()
    assert outcome == "done"
    dispatch, attempts = pair.dispatch(doc)
    assert dispatch.state == settled and len(attempts) > 1
    assert document_row(pair.sender, doc).state == document
    with pair.sender.uow(readonly=True) as uow:
        kinds = [a.kind for a in uow.escalations.active_of_document(doc)]
        assert "delivery_failed" not in kinds
        assert [p for _, p in verify_chains(uow.conn) if p is not None] == []


def _failed_with_every_answer_lost(pair: Pair, doc: str, job: str) -> None:
    """Run ``job`` through a transport losing every answer until its attempts run out."""
    pair.deliver_through(LosesTheAnswer)
    while (outcome := pair.sender.runner.run(job)) == "failed":
        pair.sender.clock.advance(minutes=30)  # past the backoff
        pair.sender.scheduler.tick()
    assert outcome == "done"
    pair.deliver_through(lambda: None)


@pytest.mark.parametrize(
    ("event", "data", "dispatch", "document", "open_kinds"),
    [
        ("register", None, "acknowledged", "acknowledged", []),
        ("refuse", {"reason": "Sai thẩm quyền"}, "rejected", "failed", ["refused_by_recipient"]),
    ],
    ids=["registered", "refused"],
)
def test_the_recipients_status_settles_a_dispatch_that_failed_with_its_outcome_unknown(
    pair: Pair,
    served: str,
    make_document: Callable[..., str],
    event: str,
    data: dict[str, str] | None,
    dispatch: str,
    document: str,
    open_kinds: list[str],
) -> None:
    # Given a delivery whose every answer was lost after B stored the package, until its
    # attempts ran out: failed, and a supervisor warned of it
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    _failed_with_every_answer_lost(pair, doc, job)
    failed, attempts = pair.dispatch(doc)
    assert (failed.state, {a.outcome for a in attempts}) == ("failed", {"unknown"})
    assert document_row(pair.sender, doc).state == "failed"
    with pair.sender.uow(readonly=True) as uow:
        [warned] = uow.escalations.active_of_document(doc)
    assert warned.kind == "delivery_failed"

    # When B's clerk registers (or refuses) the letter that did arrive, and says so
    [received] = pair.received()
    pair.answer(received.id, event, data)

    # Then A believes B's signed status: the dispatch and the document move, the failure's
    # escalation closes (a refusal's own follows it), and the trail holds
    assert pair.dispatch(doc)[0].state == dispatch
    assert document_row(pair.sender, doc).state == document
    with pair.sender.uow(readonly=True) as uow:
        active = uow.escalations.active_of_document(doc)
        assert [a.kind for a in active] == open_kinds
        assert all(a.detail.get("follows") == warned.id for a in active)
        # (a refusal's escalation says the recipient's reason as given, no code before it)
        assert [a.detail.get("reason") for a in active] == [
            (data or {}).get("reason") for _ in open_kinds
        ]
        assert [p for _, p in verify_chains(uow.conn) if p is not None] == []


class Watches(httpx.BaseTransport):
    """Sends for real, noting how the request's body went: its length header, the type of
    its stream and the largest piece read from it at once."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.length = ""
        self.stream = ""
        self.largest = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.length = request.headers.get("content-length", "")
        self.stream = type(request.stream).__name__
        inner = request.stream

        def pieces() -> Iterator[bytes]:
            for piece in inner:  # type: ignore[union-attr]
                self.largest = max(self.largest, len(piece))
                yield piece

        request.stream = _Pieces(pieces())
        return self.real.handle_request(request)


class _Pieces(httpx.SyncByteStream):
    def __init__(self, pieces: Iterator[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces


@pytest.mark.parametrize("size", [4 * 1024, 3 * 1024 * 1024])
def test_a_package_is_posted_with_its_length_and_a_large_one_from_a_file_in_pieces(
    pair: Pair, served: str, make_document: Callable[..., str], size: int
) -> None:
    # Given A's signed letter to B with a main file of ``size`` bytes
    pair.point_b_at(served)
    data = b"%PDF-1.4\n" + bytes(range(256)) * (size // 256)
    doc = pair.signed(make_document, pdf=(LETTER, data))
    pair.sender.engine.fire(doc, "send", actor("clerk"))
    [job] = pair.jobs(doc)
    watching = Watches()
    pair.deliver_through(lambda: watching)

    # When its delivery job runs
    assert pair.sender.runner.run(job) == "done"

    # Then B has it whole (its receipt names the digest of what A wrote), and the post
    # said its length up front; a large package left in pieces read from a file, never
    # as one piece held in memory
    dispatch, _ = pair.dispatch(doc)
    assert dispatch.state == "delivered"
    [received] = pair.received()
    with pair.receiver.uow(readonly=True) as uow:
        package = uow.documents.blob(received.package_sha256)
    assert package is not None and data in package
    assert watching.length == str(len(package))
    if size > 1024 * 1024:
        assert watching.stream != "ByteStream"
        assert 0 < watching.largest <= 64 * 1024
    else:
        assert watching.stream == "ByteStream"
        assert watching.largest == len(package)


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


def test_a_delivery_job_that_gives_up_between_attempts_fails_its_dispatch_for_a_resend(
    pair: Pair, served: str, make_document: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a delivery job that fails before any attempt, every time (its letter's file
    # cannot be read), three job attempts allowed
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    runner = pair.sender.runner
    runner.policies["deliver_dispatches"] = dataclasses.replace(
        runner.policy("deliver_dispatches"), max_attempts=3
    )
    monkeypatch.setattr(DocumentRepository, "blob", lambda self, sha256: None)

    # When its attempts are spent, the dispatch never having left pending
    assert [runner.run(job) for _ in range(3)] == ["failed"] * 3

    # Then the dispatch is failed, not left pending for a job that no longer runs, and
    # the document with it: a supervisor may resend it once the cause is mended
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, attempts) == ("failed", [])
    assert document_row(pair.sender, doc).state == "failed"
    monkeypatch.undo()
    pair.sender.engine.fire(doc, "resend", actor("supervisor"), data={"reason": "mended"})
    [again] = pair.jobs(doc)
    assert runner.run(again) == "done"
    assert pair.dispatch(doc)[0].state == "delivered"


class DiesMidPost(httpx.BaseTransport):
    """The worker's process ends while its request is out: nothing after it runs."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        httpx.HTTPTransport().handle_request(request).read()  # it did arrive
        raise SystemExit("killed")


def test_an_attempt_whose_worker_died_counts_and_is_taken_again_at_its_lease(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given a delivery whose worker dies after its package left (nothing recorded)
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    pair.deliver_through(DiesMidPost)
    with pytest.raises(SystemExit):
        pair.sender.runner.run(job)
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, attempts) == ("sending", [])
    # ...so another worker finds it leased and leaves it alone until the lease ends
    pair.deliver_through(lambda: None)
    assert pair.sender.runner.run(job) == "skipped"

    # When the lease has ended and the scheduler re-drives it
    pair.sender.clock.advance(minutes=12)
    pair.sender.scheduler.tick()
    assert pair.sender.runner.run(job) == "done"

    # Then the lost attempt is on record as outcome unknown, and the retry delivered the
    # same message once
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, dispatch.attempts) == ("delivered", 2)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "unknown"), (2, "delivered")]
    assert "interrupted" in attempts[0].error
    [received] = pair.received()
    assert received.message_id == dispatch.message_id


def test_a_worker_dying_on_every_attempt_never_goes_past_the_limit(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    pair.deliver_through(DiesMidPost)
    for _ in range(3):  # dispatch_max_attempts
        with pytest.raises(SystemExit):
            pair.sender.runner.run(job)
        pair.sender.clock.advance(minutes=12)
        pair.sender.scheduler.tick()

    # The fourth run finds no attempt left: the dispatch fails, the job ends
    assert pair.sender.runner.run(job) == "done"
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, dispatch.attempts, len(attempts)) == ("failed", 3, 3)
    assert {a.outcome for a in attempts} == {"unknown"}
    assert document_row(pair.sender, doc).state == "failed"


def test_a_receiver_whose_crl_is_out_of_date_has_the_package_sent_again_later(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given B's copy of A's CRL out of date (it was valid a week)
    pair.point_b_at(served)
    pair.sender.clock.advance(days=8)  # type: ignore[attr-defined]
    doc, job = pair.sent(make_document)

    # When A delivers: B cannot tell whether A's certificates are revoked
    assert pair.sender.runner.run(job) == "failed"
    dispatch, attempts = pair.dispatch(doc)
    assert dispatch.state == "pending"  # not refused: a wait on B's side
    assert [(a.outcome, a.http_status) for a in attempts] == [("transient", 503)]
    assert "verification_deferred" in attempts[0].error
    assert "revocation_unknown" in attempts[0].error

    # Then once B has A's current CRL, the same message is delivered
    with pair.sender.uow() as uow:
        crl = keystore.publish_crl(uow, passphrase=PASS, now=pair.sender.clock())
        uow.commit()
    with pair.receiver.uow() as uow:
        issuers.import_crl(uow, pair.receiver.trust, crl, now=pair.receiver.clock())
        uow.commit()
    assert pair.sender.runner.run(job) == "done"
    dispatch, _ = pair.dispatch(doc)
    assert dispatch.state == "delivered"


def test_a_dispatch_failed_for_good_is_delivered_when_a_supervisor_resends(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter to B failed after its last attempt, and B's inbox back up
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    assert [pair.sender.runner.run(job) for _ in range(3)] == ["failed", "failed", "done"]
    pair.point_b_at(served)

    # When a supervisor resends it and the new delivery job runs
    pair.sender.engine.fire(doc, "resend", actor("supervisor"), data={"reason": "B is back"})
    # (its chain holds the move back to pending: the resend's entry names B)
    assert broken_chains(pair) == {}
    [again] = pair.jobs(doc)
    assert pair.sender.runner.run(again) == "done"

    # Then it is delivered on the resend's first attempt, logged after the three before
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, dispatch.attempts) == ("delivered", 1)
    assert [(a.attempt, a.outcome) for a in attempts] == [
        (1, "transient"),
        (2, "transient"),
        (3, "transient"),
        (4, "delivered"),
    ]
    assert document_row(pair.sender, doc).state == "delivered"
    assert len(pair.received()) == 1


def test_a_dispatch_whose_peer_was_removed_fails_saying_why_and_is_resent_once_it_is_back(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter to B sent, then B's peer entry removed before its delivery ran
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    with pair.sender.uow() as uow:
        assert peers.remove_peer(uow, B) == 1  # one dispatch to it still to deliver
        uow.commit()

    # When the delivery job runs: no attempt can be made, and it is not tried again
    assert pair.sender.runner.run(job) == "done"

    # Then the dispatch failed for good, saying why, and the document with it
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, attempts) == ("failed", [])
    assert "unknown_peer" in dispatch.last_error
    assert document_row(pair.sender, doc).state == "failed"
    # And once B's entry is back, a supervisor's resend delivers it
    pair.point_b_at(served)
    pair.sender.engine.fire(doc, "resend", actor("supervisor"), data={"reason": "B is back"})
    [again] = pair.jobs(doc)
    assert pair.sender.runner.run(again) == "done"
    assert pair.dispatch(doc)[0].state == "delivered"


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


NOT_REFUSALS = {
    "a web server's 404 page": httpx.Response(
        404,
        text="<html><body>404 Not Found</body><hr>nginx</html>",
        headers={"Content-Type": "text/html"},
    ),
    "a gateway's 401": httpx.Response(
        401, text="Unauthorized", headers={"WWW-Authenticate": 'Basic realm="proxy"'}
    ),
    "a proxy's 413 page": httpx.Response(413, text="<html>413 Request Entity Too Large</html>"),
    "an error body naming no reason": httpx.Response(
        405, json={"code": "method_not_allowed", "message": "Method Not Allowed", "details": {}}
    ),
    "a JSON answer that is no error body": httpx.Response(400, json=["bad"]),
    "a blank reason": httpx.Response(
        422, json={"code": "message_malformed", "message": "?", "details": {"reason": " "}}
    ),
}


@pytest.mark.parametrize("answer", list(NOT_REFUSALS.values()), ids=list(NOT_REFUSALS))
def test_a_4xx_that_is_not_the_inbox_refusing_is_tried_again_and_a_failure_resent(
    pair: Pair, make_document: Callable[..., str], served: str, answer: httpx.Response
) -> None:
    # Given an inbox address answered by something else than B's inbox
    pair.point_b_at("https://congvan.example.vn/v1/inbox")
    doc, job = pair.sent(make_document)
    pair.deliver_through(lambda: httpx.MockTransport(lambda _request: answer))

    # When the attempt is made
    assert pair.sender.runner.run(job) == "failed"

    # Then it is no refusal (02): the attempt is logged as transient, saying so, and tried
    # again later
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, [(a.outcome, a.http_status) for a in attempts]) == (
        "pending",
        [("transient", answer.status_code)],
    )
    assert "not a refusal by the inbox" in attempts[0].error
    # And once its attempts are spent it fails, which a supervisor resends to B's real inbox
    assert [pair.sender.runner.run(job) for _ in range(2)] == ["failed", "done"]
    assert pair.dispatch(doc)[0].state == "failed"
    pair.deliver_through(lambda: None)
    pair.point_b_at(served)
    pair.sender.engine.fire(doc, "resend", actor("supervisor"), data={"reason": "địa chỉ đúng"})
    [again] = [j for j in pair.jobs(doc) if j != job]
    assert pair.sender.runner.run(again) == "done"
    assert pair.dispatch(doc)[0].state == "delivered"


def test_a_wrong_path_on_the_receivers_server_is_no_refusal(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given B's inbox address mistyped: B's own server answers 404 (an error with no reason)
    pair.point_b_at(f"{served}/v1/inbx")
    doc, job = pair.sent(make_document)

    # When the attempt is made, then it is tried again, not taken as B refusing the letter
    assert pair.sender.runner.run(job) == "failed"
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, [(a.outcome, a.http_status) for a in attempts]) == (
        "pending",
        [("transient", 404)],
    )
    # And once the address is corrected, the next attempt delivers it
    pair.point_b_at(served)
    assert pair.sender.runner.run(job) == "done"
    assert pair.dispatch(doc)[0].state == "delivered"
    assert len(pair.received()) == 1


class SenderApi:
    """A's API served on loopback, read by a clerk of A; B's statuses come back to it."""

    def __init__(self, pair: Pair, base: str) -> None:
        now = pair.sender.clock()
        with pair.sender.uow() as uow:
            clerk = directory.ensure_user(uow, A, "vanthu", ["clerk"], now)
            token = directory.create_token(uow, clerk, now).token
            uow.commit()
        with pair.receiver.uow() as uow:
            uow.peers.put(Peer(A, f"{base}/v1/inbox", "http", 5, 4, now, now))
            uow.commit()
        self.pair = pair
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})

    def b_does(self, received_id: str, event: str, roles: str, **data: str) -> None:
        """B's people fire ``event`` on what they received, and B's status job runs."""
        receiver = self.pair.receiver
        receiver.engine.fire_on("received", received_id, event, actor(roles, B), data=data)
        [status_job] = self.pair.status_jobs(received_id)
        assert receiver.runner.run(status_job) == "done"

    def recipient(self, doc: str) -> dict[str, Any]:
        """B's entry in GET /v1/documents/{doc}: the dispatch and its status code."""
        answer = self.client.get(f"/v1/documents/{doc}")
        assert answer.status_code == 200, answer.text
        [dispatch] = answer.json()["dispatches"]
        return {
            k: dispatch[k] for k in ("state", "status_code", "status_label", "status_reason")
        } | {"reported": [r["code"] for r in dispatch["reported"]]}


@pytest.fixture
def sender_api(pair: Pair) -> Iterator[SenderApi]:
    with serve_in_thread(create_app(pair.sender)) as base:
        api = SenderApi(pair, base)
        with api.client:
            yield api


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
    sender_api: SenderApi,
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

    # When B's clerk registers (or refuses) it and B's status job runs
    sender_api.b_does(received.id, event, "clerk", **data)

    # Then A's dispatch and document follow, and A keeps B's signed message
    dispatch, _attempts = pair.dispatch(doc)
    assert dispatch.state == dispatch_state
    assert document_row(pair.sender, doc).state == document_state
    with pair.sender.uow(readonly=True) as uow:
        [kept] = uow.dispatches.statuses_of(dispatch.id)
    code = {"register": "03", "refuse": "02"}[event]
    assert (kept.code, kept.reason) == (code, data.get("reason", ""))
    # And A's document names B's status code as QCVN 102 does
    assert sender_api.recipient(doc) == {
        "state": dispatch_state,
        "status_code": code,
        "status_label": {
            "03": "registered (đã tiếp nhận, vào sổ)",
            "02": "refused (từ chối tiếp nhận)",
        }[code],
        "status_reason": data.get("reason"),
        "reported": [code],
    }


def test_the_document_shows_each_recipients_progress_as_its_status_code(
    pair: Pair, served: str, sender_api: SenderApi, make_document: Callable[..., str]
) -> None:
    # Given A's letter sent to B, not yet tried
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    assert sender_api.recipient(doc)["status_code"] is None

    # When it arrives, B registers it (its clerk a user of B's, named), then B's leader
    # assigns it (no user of that name at B: the system's, say)
    assert pair.sender.runner.run(job) == "done"
    arrived = sender_api.recipient(doc)
    [received] = pair.received()
    with pair.receiver.uow() as uow:
        now = pair.receiver.clock()
        named = {"full_name": "Nguyễn Thị Lan", "position": "Văn thư"}
        directory.ensure_user(uow, B, "clerk", ["clerk"], now, **named)
        uow.commit()
    sender_api.b_does(received.id, "register", "clerk")
    registered = sender_api.recipient(doc)
    sender_api.b_does(received.id, "assign", "signer")

    # Then A reads 01, 03, then 04 for B, each as QCVN 102 names it
    assert (arrived["status_code"], arrived["status_label"]) == ("01", "arrived (đã đến)")
    assert (registered["state"], registered["status_code"]) == ("acknowledged", "03")
    assert sender_api.recipient(doc) == {
        "state": "acknowledged",
        "status_code": "04",
        "status_label": "assigned (phân công)",
        "status_reason": None,
        "reported": ["03", "04"],
    }
    # And each status names who did it there, when B knows them (QCVN 102's StaffInfo)
    [dispatch] = sender_api.client.get(f"/v1/documents/{doc}").json()["dispatches"]
    assert [r["staff"] for r in dispatch["reported"]] == ["Nguyễn Thị Lan, Văn thư", None]

    # And its dispatch is held to whom its trail sent it: moved to another agency by SQL,
    # its document's chain is altered
    assert chain_problems(pair.sender) == {}
    with pair.sender.uow() as uow:
        sql = "UPDATE dispatches SET organ_id = '000.00.99.H57' WHERE document_id = :doc"
        uow.conn.execute(text(sql), {"doc": doc})
        uow.commit()
    assert "says it goes to 000.00.99.H57" in chain_problems(pair.sender)[doc].detail


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
    pair.deliver_through(lambda: httpx.MockTransport(lambda _request: busy))

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


@pytest.mark.parametrize(
    ("status", "state", "outcome"),
    [(422, "pending", "transient"), (201, "pending", "bad_receipt"), (503, "pending", "transient")],
)
def test_an_answer_nested_deeper_than_json_is_read_is_recorded_as_any_other(
    pair: Pair, make_document: Callable[..., str], status: int, state: str, outcome: str
) -> None:
    # Given a receiver answering JSON nested 100,000 deep
    pair.point_b_at("https://congvan.example.vn/v1/inbox")
    doc, job = pair.sent(make_document)
    deep = b"[" * 100_000 + b"]" * 100_000
    answer = httpx.Response(status, content=deep, headers={"Content-Type": "application/json"})
    pair.deliver_through(lambda: httpx.MockTransport(lambda _request: answer))

    # When the attempt is made
    pair.sender.runner.run(job)

    # Then the attempt is logged with the receiver's status, and the dispatch moves as for any
    # bad receipt or busy receiver (a 4xx whose reason cannot be read is no refusal)
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, [(a.outcome, a.http_status) for a in attempts]) == (
        state,
        [(outcome, status)],
    )


def test_no_more_posts_to_a_peer_at_once_than_its_concurrency(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given two letters to B, whose directory entry allows one delivery at a time
    pair.point_at(B, "https://congvan.example.vn/v1/inbox", concurrency=1)
    docs = [pair.signed(make_document) for _ in range(2)]
    for doc in docs:
        pair.sender.engine.fire(doc, "send", actor("clerk"))
    [first], [second] = (pair.jobs(doc) for doc in docs)
    posts: list[str] = []
    meanwhile: list[str] = []

    def busy(request: httpx.Request) -> httpx.Response:
        posts.append(str(request.url))
        if len(posts) == 1:  # the second job is claimed while the first post is out
            meanwhile.append(pair.sender.runner.run(second))
        return httpx.Response(503, json={"code": "busy"})

    pair.deliver_through(lambda: httpx.MockTransport(busy))

    # When the second job is claimed while the first one's post is under way
    assert pair.sender.runner.run(first) == "failed"

    # Then it waits its turn: no post, no attempt counted, its timer set to try again
    assert (meanwhile, len(posts)) == (["waiting"], 1)
    dispatch, attempts = pair.dispatch(docs[1])
    assert (dispatch.state, dispatch.attempts, attempts) == ("pending", 0, [])
    with pair.sender.uow(readonly=True) as uow:
        job = uow.outbox.get(second)
        assert job is not None and (job.status, job.attempts) == ("waiting", 0)
    # ...and when its turn comes the peer has room again
    assert pair.sender.runner.run(second) == "failed"
    assert len(posts) == 2


class StatusOvertakes(httpx.BaseTransport):
    """Delivers for real, then lets B's status ``code`` reach A before A records the
    attempt; ``answer`` (a status, with a body) replaces the inbox's answer when given."""

    def __init__(
        self, pair: Pair, doc: str, code: str = "03", answer: tuple[int, bytes] | None = None
    ) -> None:
        self.real = httpx.HTTPTransport()
        self.pair, self.doc, self.code, self.answer = pair, doc, code, answer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        receiver, sender = self.pair.receiver, self.pair.sender
        with receiver.uow(readonly=True) as uow:
            b_key = receiver.inbox.keys.require(uow, B, receiver.clock())
        dispatch, _ = self.pair.dispatch(self.doc)
        refused = self.code == "02"
        status = make_status(
            message_id=dispatch.message_id,
            document_id=self.doc,
            to=A,
            code=self.code,
            description="refused" if refused else "registered",
            reason="Sai thẩm quyền" if refused else None,
            at=sender.clock(),
            agency=b_key,
        )
        moved = sender.statuses.accept(status.body, status.cms).state
        assert moved == ("rejected" if refused else "acknowledged")
        if self.answer is None:
            return response
        response.read()
        return httpx.Response(self.answer[0], content=self.answer[1])


def test_a_status_that_overtakes_the_receipt_leaves_the_delivery_done_with_its_receipt(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given B registers A's letter and its status 03 reaches A while A's attempt is under way
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    pair.deliver_through(lambda: StatusOvertakes(pair, doc))

    # When the attempt records its outcome
    assert pair.sender.runner.run(job) == "done"

    # Then the dispatch stays acknowledged, the attempt is logged and the receipt kept
    dispatch, attempts = pair.dispatch(doc)
    assert dispatch.state == "acknowledged"
    assert [a.outcome for a in attempts] == ["delivered"]
    assert document_row(pair.sender, doc).state == "acknowledged"
    with pair.sender.uow(readonly=True) as uow:
        assert uow.dispatches.receipt(dispatch.id) is not None


class StatusThenDies(StatusOvertakes):
    """Delivers for real, lets B's status 03 reach A, then the worker's process ends."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        super().handle_request(request).read()
        raise SystemExit("killed")


def test_a_worker_dying_mid_post_after_which_the_letter_is_registered_keeps_its_receipt(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's attempt whose package arrived, B's status 03 settling the dispatch, and
    # the worker killed before it recorded anything
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    pair.deliver_through(lambda: StatusThenDies(pair, doc))
    with pytest.raises(SystemExit):
        pair.sender.runner.run(job)
    assert pair.dispatch(doc)[0].state == "acknowledged"

    # When its lease ends and the job is taken again
    pair.deliver_through(lambda: None)
    pair.sender.clock.advance(minutes=12)
    pair.sender.scheduler.tick()
    assert pair.sender.runner.run(job) == "done"

    # Then the lost attempt is on record, and the package went once more under its
    # message id for the receipt B keeps for it: the proof it arrived, kept; one copy at B
    dispatch, attempts = pair.dispatch(doc)
    assert dispatch.state == "acknowledged"
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "unknown"), (2, "delivered")]
    with pair.sender.uow(readonly=True) as uow:
        assert uow.dispatches.receipt(dispatch.id) is not None
    assert [r.message_id for r in pair.received()] == [dispatch.message_id]
    assert pair.jobs(doc) == []


@pytest.mark.parametrize(
    ("code", "answer", "outcome", "state"),
    [
        ("03", (500, b"down"), "transient", "acknowledged"),
        (
            "02",
            (422, b'{"code": "message_malformed", "details": {"reason": "member"}}'),
            "refused",
            "rejected",
        ),
        ("03", (201, b"{}"), "bad_receipt", "acknowledged"),
    ],
)
def test_an_attempt_a_status_overtook_is_logged_whatever_its_outcome(
    pair: Pair,
    served: str,
    make_document: Callable[..., str],
    code: str,
    answer: tuple[int, bytes],
    outcome: str,
    state: str,
) -> None:
    # Given B's status reaching A while A's attempt is under way, the inbox then answering
    # something other than a receipt
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    pair.deliver_through(lambda: StatusOvertakes(pair, doc, code, answer))

    # When the attempt records its outcome
    assert pair.sender.runner.run(job) == "done"

    # Then the attempt is logged as it went, and the dispatch stays where the status put it
    dispatch, attempts = pair.dispatch(doc)
    assert [(a.outcome, a.http_status) for a in attempts] == [(outcome, answer[0])]
    assert dispatch.state == state
    assert pair.jobs(doc) == []


def _status_03(pair: Pair, doc: str) -> tuple[bytes, bytes]:
    """B's signed status 03 (registered) for A's dispatch of ``doc``."""
    return pair.status_from_b(doc, "03")


def _until_waiting_on_a_lock(runtime: Runtime) -> None:
    """Until a transaction of ``runtime`` waits for a row lock (PostgreSQL); on SQLite,
    whose writers wait for one another as a whole, a moment for the other to queue."""
    if runtime.db.dialect.name != "postgresql":
        time.sleep(0.3)  # an ordering aid, not a measure
        return

    def waiting() -> bool:
        with runtime.db.connect() as conn:
            query = text("SELECT count(*) FROM pg_locks WHERE NOT granted")
            return bool(conn.execute(query).scalar_one())

    wait_until(waiting, timeout=30, what="a transaction waiting on a lock")


def test_a_status_arriving_while_the_receipt_is_recorded_waits_its_turn(
    pair: Pair, served: str, make_document: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given A recording B's receipt, paused after it wrote to the dispatch row
    pair.point_b_at(served)
    doc, job = pair.sent(make_document)
    status = _status_03(pair, doc)
    wrote, go = threading.Event(), threading.Event()
    keep_receipt = DispatchRepository.keep_receipt

    def paused(self: DispatchRepository, *args: Any) -> None:
        keep_receipt(self, *args)
        wrote.set()
        go.wait(30)

    monkeypatch.setattr(DispatchRepository, "keep_receipt", paused)
    with ThreadPoolExecutor(2) as pool:
        delivering = pool.submit(pair.sender.runner.run, job)
        assert wrote.wait(30)
        # When B's status 03 arrives meanwhile (and waits on the document's lock)
        accepting = pool.submit(pair.sender.statuses.accept, *status)
        _until_waiting_on_a_lock(pair.sender)
        go.set()
        # Then both finish in turn: neither is chosen as a deadlock's victim
        assert delivering.result() == "done"
        assert accepting.result().state == "acknowledged"
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, [a.outcome for a in attempts]) == ("acknowledged", ["delivered"])


def test_a_request_that_never_left_is_transient_one_that_left_is_outcome_unknown(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    pair.point_b_at("https://congvan.example.vn/v1/inbox")
    for error, outcome in (
        (httpx.ConnectError("refused"), "transient"),
        (httpx.ConnectTimeout("no connection"), "transient"),
        (httpx.PoolTimeout("no free connection"), "transient"),
        (httpx.ReadTimeout("no answer"), "unknown"),
        (httpx.WriteTimeout("half sent"), "unknown"),
        (httpx.RemoteProtocolError("connection reset"), "unknown"),
        # whatever else reading the answer raises: the package may have arrived
        (httpx.DecodingError("not the gzip it said"), "unknown"),
        (ValueError("Exceeds the limit (4300 digits)"), "unknown"),
    ):

        def fails(_request: httpx.Request, error: Exception = error) -> httpx.Response:
            raise error

        pair.deliver_through(lambda fails=fails: httpx.MockTransport(fails))
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "failed"
        dispatch, attempts = pair.dispatch(doc)
        assert ([a.outcome for a in attempts], dispatch.state) == ([outcome], "pending"), error


class ForgesTheReceipt(httpx.BaseTransport):
    """Delivers for real, then hands the sender another receipt than B signed."""

    def __init__(self, forge: Callable[[dict[str, Any], bytes, bytes], tuple[bytes, bytes]]):
        self.real = httpx.HTTPTransport()
        self.forge = forge

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        response.read()
        answer = response.json()
        body = base64.b64decode(answer["receipt"])
        body, cms = self.forge(json.loads(body), body, base64.b64decode(answer["receipt_cms"]))
        forged = {
            "receipt": base64.b64encode(body).decode(),
            "receipt_cms": base64.b64encode(cms).decode(),
        }
        return httpx.Response(response.status_code, json=forged)


def _key_of(runtime: Runtime, agency_id: str) -> Any:
    with runtime.uow(readonly=True) as uow:
        return runtime.anchoring.keys.require(uow, agency_id, runtime.clock())


def test_a_receipt_that_is_not_bs_signature_over_this_message_is_not_delivery(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    pair.point_b_at(served)
    a_key, b_key = _key_of(pair.sender, A), _key_of(pair.receiver, B)
    at = pair.sender.clock()

    def another_message(receipt: dict[str, Any], _body: bytes, _cms: bytes) -> tuple[bytes, bytes]:
        other = make_receipt(
            message_id="another-message",
            package_sha256=receipt["package_sha256"],
            manifest_sha256=receipt["manifest_sha256"],
            sender=A,
            received_at=at,
            received_document_id=receipt["received_document_id"],
            agency=b_key,
        )
        return other.body, other.cms

    def another_sender(receipt: dict[str, Any], _body: bytes, _cms: bytes) -> tuple[bytes, bytes]:
        other = make_receipt(
            message_id=receipt["message_id"],
            package_sha256=receipt["package_sha256"],
            manifest_sha256=receipt["manifest_sha256"],
            sender="000.00.31.H57",  # UBND thành phố Huế, not A
            received_at=at,
            received_document_id=receipt["received_document_id"],
            agency=b_key,
        )
        return other.body, other.cms

    forgeries = {
        # B's signature, over this message, naming another sender than A
        "another sender": another_sender,
        # B's receipt with its signature value damaged
        "bad signature": lambda _r, body, cms: (body, cms[:-8] + bytes(8)),
        # the same receipt signed by another agency's key (A's own)
        "another agency": lambda _r, body, _cms: (body, a_key.sign(body, at)),
        # B's signature, but over a receipt for another message
        "another message": another_message,
    }
    docs = []
    for name, forge in forgeries.items():
        pair.deliver_through(lambda forge=forge: ForgesTheReceipt(forge))
        doc, job = pair.sent(make_document)
        # When A gets the forged receipt: not delivered, the attempt says why, retried
        assert pair.sender.runner.run(job) == "failed", name
        dispatch, attempts = pair.dispatch(doc)
        assert (dispatch.state, [a.outcome for a in attempts]) == ("pending", ["bad_receipt"]), name
        docs.append((doc, job))

    # Then with B's own receipts each is delivered on its retry, stored once at B
    pair.deliver_through(lambda: None)
    for doc, job in docs:
        assert pair.sender.runner.run(job) == "done"
        dispatch, attempts = pair.dispatch(doc)
        assert (dispatch.state, [a.outcome for a in attempts]) == (
            "delivered",
            ["bad_receipt", "delivered"],
        )
    assert len(pair.received()) == len(forgeries)
