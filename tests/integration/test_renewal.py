"""An agency renews its organisational certificate before the other side imports it: what
it signs meanwhile is not taken, nor refused for good. It waits and goes through once the
renewed certificate is listed there."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from congvan.actions.exchange.envelope import iso
from congvan.actions.signing import issuers, keystore, pki
from congvan.storage.clock import FrozenClock
from congvan.storage.ids import new_id
from congvan.storage.peers import Peer
from congvan.storage.signatures import CertificateRow
from congvan.workflow.api.app import create_app
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.serving import serve_in_thread
from tests.databases import Databases
from tests.factories import actor, document_row
from tests.installations import (
    CRL_URL,
    NAMES,
    PASS,
    SENDER_FAKES,
    A,
    B,
    Pair,
    link,
    serving_inbox,
)
from tests.integration.test_delivery import DOWN, LosesTheAnswer
from tests.integration.test_evidence import export, failures, judged


def _renew_b(pair: Pair) -> CertificateRow:
    """B's organisational certificate renewed now (by the exchange CA A runs), held by B."""
    now = pair.sender.clock()
    with pair.sender.uow(readonly=True) as uow:
        _row, ca = keystore._ca(uow)
    issued = pki.issue_agency_certificate(
        ca, PASS, agency_id=B, agency_name=NAMES[B], passphrase=PASS, valid_from=now,
        valid_days=1095, crl_url=CRL_URL,
    )  # fmt: skip
    with pair.receiver.uow() as uow:
        renewed = keystore._store(uow, "agency", issued, now, agency_id=B)
        uow.commit()
    return renewed


def test_a_status_signed_under_a_renewal_not_yet_imported_waits_then_acknowledges(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "done"
    [received] = pair.received()
    # and B's organisational certificate renewed (by the exchange CA A runs), held by B
    # alone: A has not imported B's renewed directory entry
    pair.sender.clock.advance(minutes=5)
    renewed = _renew_b(pair)

    with serve_in_thread(create_app(pair.sender)) as sender_base:
        with pair.receiver.uow() as uow:
            now = pair.receiver.clock()
            uow.peers.put(Peer(A, f"{sender_base}/v1/inbox", "http", 5, 4, now, now))
            uow.commit()
        # When B's clerk registers it, and B's status 03 is posted under the renewal
        pair.receiver.engine.fire_on("received", received.id, "register", actor("clerk", B))
        [status_job] = pair.status_jobs(received.id)
        first = pair.receiver.runner.run(status_job)

        # Then A took nothing, and B's job waits to post it again
        assert first == "failed"
        assert document_row(pair.sender, doc).state == "delivered"
        assert pair.status_jobs(received.id) == [status_job]

        # When A imports B's renewed certificate and B's job runs again
        _listed(pair.sender, renewed)
        pair.receiver.clock.advance(hours=1)
        pair.receiver.scheduler.tick()
        assert pair.receiver.runner.run(status_job) == "done"

    # Then A's dispatch is acknowledged with B's 03
    assert document_row(pair.sender, doc).state == "acknowledged"


def test_a_status_of_a_registration_before_a_renewal_is_signed_by_the_new_key_as_of_now(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, and B's clerk registering it while A's status route
    # cannot be reached
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "done"
    [received] = pair.received()
    with pair.receiver.uow() as uow:
        now = pair.receiver.clock()
        uow.peers.put(Peer(A, "http://127.0.0.1:9/v1/inbox", "http", 5, 4, now, now))
        uow.commit()
    pair.receiver.engine.fire_on("received", received.id, "register", actor("clerk", B))
    [status_job] = pair.status_jobs(received.id)
    assert pair.receiver.runner.run(status_job) == "failed"
    registered = pair.receiver.clock()

    # When B's certificate is renewed an hour later (A lists it), and the 03 goes again
    pair.sender.clock.advance(hours=1)
    _listed(pair.sender, _renew_b(pair))
    pair.sender.clock.advance(hours=1)
    with serve_in_thread(create_app(pair.sender)) as sender_base:
        with pair.receiver.uow() as uow:
            now = pair.receiver.clock()
            uow.peers.put(Peer(A, f"{sender_base}/v1/inbox", "http", 5, 4, now, now))
            uow.commit()
        pair.receiver.scheduler.tick()
        assert pair.receiver.runner.run(status_job) == "done"

    # Then A took it (signed now, by the key valid now), and it still says when B registered
    assert document_row(pair.sender, doc).state == "acknowledged"
    with pair.sender.uow(readonly=True) as uow:
        [[kept]] = uow.dispatches.statuses_by_dispatch(doc).values()
    assert (kept.code, json.loads(kept.body)["at"]) == ("03", iso(registered))
    # and its evidence bundle judges it as A did, as of when A took it (its key was not
    # valid yet at the moment it reports)
    _bundle_verifies(pair, doc, "status", "03")


def _listed(runtime: Runtime, certificate: CertificateRow) -> None:
    """``certificate`` (another agency's) listed at ``runtime``, its key left behind."""
    with runtime.uow() as uow:
        uow.signatures.add_certificate(dataclasses.replace(certificate, id=new_id(), key_pem=""))
        uow.commit()


def _current(runtime: Runtime, agency_id: str) -> CertificateRow:
    with runtime.uow(readonly=True) as uow:
        [current] = [c for c in uow.signatures.certificates(agency_id) if c.kind == "agency"]
    return current


def _a_renews(pair: Pair) -> None:
    """A's organisational certificate renewed; B lists the new one."""
    with pair.sender.uow() as uow:
        renewed = keystore.issue_agency(
            uow, A, passphrase=PASS, crl_url=CRL_URL, now=pair.sender.clock()
        )
        uow.commit()
    _listed(pair.receiver, renewed)


def _a_revokes(pair: Pair, certificate: CertificateRow, reason: str) -> None:
    """A certificate of the CA A runs revoked for ``reason``; B holds the CRL."""
    with pair.sender.uow() as uow:
        crl = keystore.revoke(
            uow, certificate.fingerprint, reason=reason, passphrase=PASS, now=pair.sender.clock()
        )
        uow.commit()
    with pair.receiver.uow() as uow:
        issuers.import_crl(uow, pair.receiver.trust, crl, now=pair.receiver.clock())
        uow.commit()


def _recipient_renewed(pair: Pair) -> None:
    """B's certificate renewed and the old one revoked as superseded (A runs the CA, and
    lists the new one)."""
    old = _current(pair.receiver, B)
    _listed(pair.sender, _renew_b(pair))
    _a_revokes(pair, old, "superseded")


def _sender_renewed(pair: Pair) -> None:
    """A's certificate renewed and the one that sealed its packages revoked as superseded
    (B holds the CRL and the new certificate)."""
    old = _current(pair.sender, A)
    _a_renews(pair)
    _a_revokes(pair, old, "superseded")


class GatewayTimesOut(LosesTheAnswer):
    """A gateway that hands the request on to the inbox, then answers 504 (its upstream
    was slow to answer): the package arrived all the same."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.real.handle_request(request).read()
        return httpx.Response(504, text="Gateway Time-out")


@pytest.mark.parametrize(
    ("renewing", "losing", "lost"),
    [
        (_recipient_renewed, LosesTheAnswer, "unknown"),
        (_sender_renewed, LosesTheAnswer, "unknown"),
        (_sender_renewed, GatewayTimesOut, "transient"),
    ],
    ids=["recipient", "sender", "sender, a gateway's 504"],
)
def test_a_package_whose_answer_was_lost_is_delivered_after_a_renewal_on_either_side(
    pair: Pair,
    make_document: Callable[..., str],
    renewing: Callable[[Pair], None],
    losing: type[httpx.BaseTransport],
    lost: str,
) -> None:
    # Given A's letter stored at B, its answer lost on the way back (outcome unknown; or a
    # gateway's 5xx, which may come after the inbox took the package)
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        doc, job = pair.sent(make_document)
        pair.deliver_through(losing)
        assert pair.sender.runner.run(job) == "failed"
        assert len(pair.received()) == 1

        # When a side's certificate is renewed, the old one revoked as superseded, and A
        # delivers the package again, as it was sealed
        pair.sender.clock.advance(minutes=30)
        renewing(pair)
        pair.sender.clock.advance(hours=1)
        pair.sender.scheduler.tick()
        pair.deliver_through(lambda: None)
        assert pair.sender.runner.run(job) == "done"

    # Then B took these very bytes as it took them the first time and answered its first
    # receipt (signed again by the key valid now, when its own was renewed): delivered, once
    dispatch, attempts = pair.dispatch(doc)
    assert [a.outcome for a in attempts] == [lost, "delivered"], attempts
    assert dispatch.state == "delivered"
    assert len(pair.received()) == 1
    # and its evidence bundle judges the receipt as A did, as of the answer that brought it
    _bundle_verifies(pair, doc, "receipt")


def _bundle_verifies(pair: Pair, doc: str, *item: str) -> None:
    """The document's bundle, anchored, verifies; ``item`` (its words) as of its acceptance."""
    pair.sender.clock.advance(minutes=1)
    pair.sender.anchoring.anchor(pair.sender.uow, pair.sender.clock())
    report = judged(export(pair, doc), pair)
    assert report.verified, failures(report)
    [check] = [c for c in report.checks if c.item.split() == [item[0], B, *item[1:]]]
    assert "its acceptance, as the audit trail records it" in check.detail


def _sealed(pair: Pair, doc: str) -> bytes:
    dispatch, _ = pair.dispatch(doc)
    with pair.sender.uow(readonly=True) as uow:
        sealed = uow.dispatches.sealed(dispatch.id)
    assert sealed is not None
    return sealed.header_cms


@pytest.mark.parametrize("failed_for_good", [False, True], ids=["retried", "resent"])
def test_a_package_that_never_reached_its_recipient_is_sealed_anew_after_the_senders_renewal(
    pair: Pair, make_document: Callable[..., str], failed_for_good: bool
) -> None:
    # Given A's letter to B, every attempt so far refused a connection (B is down), and
    # left pending for its next attempt or failed for good
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    runs = 3 if failed_for_good else 1
    assert [pair.sender.runner.run(job) for _ in range(runs)][-1] in ("failed", "done")
    first = _sealed(pair, doc)
    message_id = pair.dispatch(doc)[0].message_id

    # When A's certificate is renewed, the one that sealed the package revoked as
    # superseded, and A delivers once B is back (a supervisor resending what failed)
    pair.sender.clock.advance(minutes=30)
    _sender_renewed(pair)
    pair.sender.clock.advance(hours=1)
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        if failed_for_good:
            pair.sender.engine.fire(doc, "resend", actor("supervisor"), data={"reason": "back"})
            [job] = pair.jobs(doc)
        assert pair.sender.runner.run(job) == "done"

    # Then B never had the package: it goes sealed anew by the key valid now, under its
    # own message id, and is delivered (not refused for a revoked certificate)
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, attempts[-1].outcome) == ("delivered", "delivered"), attempts
    assert dispatch.message_id == message_id
    assert _sealed(pair, doc) != first
    [taken] = pair.received()
    assert taken.message_id == message_id
    # And its evidence holds together: the header it went with, judged as of its sending
    pair.sender.clock.advance(minutes=1)
    pair.sender.anchoring.anchor(pair.sender.uow, pair.sender.clock())
    assert failures(judged(export(pair, doc), pair)) == set()


def test_a_package_that_never_reached_its_recipient_waits_while_its_agency_has_no_key(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter to B, its first attempt refused a connection (B is down)
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    assert pair.sender.runner.run(job) == "failed"

    # When A's organisational key is compromised and revoked (B holds the CRL), and the
    # next attempt comes once B is back, before A renewed its certificate
    _a_revokes(pair, _current(pair.sender, A), "key_compromise")
    pair.sender.clock.advance(minutes=30)
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        assert pair.sender.runner.run(job) == "failed"

        # Then nothing went under the revoked seal (B would refuse it for good): it waits
        dispatch, attempts = pair.dispatch(doc)
        assert (dispatch.state, [a.outcome for a in attempts]) == ("pending", ["transient"])
        assert pair.received() == []

        # and once A renewed its certificate (B holds it), it goes sealed anew
        _a_renews(pair)
        pair.sender.clock.advance(minutes=5)
        assert pair.sender.runner.run(job) == "done"
    assert pair.dispatch(doc)[0].state == "delivered"
    assert len(pair.received()) == 1


def test_a_package_to_a_recipient_between_its_revocation_and_renewal_waits_for_it(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given B's organisational key revoked (compromised) and not renewed yet, at B
    with pair.receiver.uow() as uow:
        [old] = [c for c in uow.signatures.certificates(B) if c.kind == "agency"]
        uow.signatures.revoke(old.fingerprint, pair.receiver.clock(), "key_compromise")
        uow.commit()
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)

        # When A delivers a letter to B
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "failed"

        # Then B cannot sign a receipt just now: a wait (503), not "no such agency here"
        dispatch, attempts = pair.dispatch(doc)
        assert (dispatch.state, attempts[0].outcome, attempts[0].http_status) == (
            "pending",
            "transient",
            503,
        ), attempts
        assert "receipt_key" in attempts[0].error

        # and once B renewed (A lists its new certificate), the next attempt delivers it
        _listed(pair.sender, _renew_b(pair))
        pair.sender.clock.advance(minutes=5)
        assert pair.sender.runner.run(job) == "done"
    assert pair.dispatch(doc)[0].state == "delivered"


def _clocks_apart(
    boot: Any, databases: Databases, db_kind: str, minutes: int
) -> tuple[Pair, FrozenClock, FrozenClock]:
    """A and B linked, A's clock ``minutes`` ahead of B's, both a day on: the pair and the
    clocks (A's, B's)."""
    sender_clock, receiver_clock = FrozenClock(), FrozenClock()
    sender_clock.advance(minutes=minutes)
    sender = boot(
        databases.new(db_kind).url, clock=sender_clock, key_passphrase=PASS,
        dispatch_max_attempts=3, **SENDER_FAKES,
    )  # fmt: skip
    receiver = boot(databases.new(db_kind).url, clock=receiver_clock, key_passphrase=PASS)
    pair = link(sender, receiver)
    for clock in (sender_clock, receiver_clock):
        clock.advance(days=1)
    return pair, sender_clock, receiver_clock


def test_a_letter_sealed_right_after_a_renewal_goes_to_a_recipient_whose_clock_is_behind(
    boot: Any, databases: Databases, db_kind: str, make_document: Callable[..., str]
) -> None:
    # Given A's clock two minutes ahead of B's (within the skew verifiers allow)
    pair, _, _ = _clocks_apart(boot, databases, db_kind, 2)

    # When A renews its organisational certificate (B lists the new one) and at once
    # sends a letter, sealed by it
    _a_renews(pair)
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "done"

    # Then B takes it: the certificate is not "not yet valid" by B's clock
    dispatch, attempts = pair.dispatch(doc)
    assert dispatch.state == "delivered", attempts


def test_a_letter_to_a_recipient_whose_clock_is_far_behind_waits_and_is_never_refused(
    boot: Any, databases: Databases, db_kind: str, make_document: Callable[..., str]
) -> None:
    # Given A's clock ten minutes ahead of B's (past the skew verifiers allow)
    pair, sender_clock, receiver_clock = _clocks_apart(boot, databases, db_kind, 10)

    # When A sends a letter: by B's clock it was signed (and sealed) ten minutes from now
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "failed"

        # Then B refuses nothing: it puts the package off (503, the clocks disagree), and
        # A tries again, the letter neither refused (02) nor failed
        dispatch, [attempt] = pair.dispatch(doc)
        assert (dispatch.state, attempt.outcome, attempt.http_status) == (
            "pending", "transient", 503,
        )  # fmt: skip
        assert "clock_ahead" in attempt.error
        assert pair.received() == []

        # And once B's clock is set right (or the minutes have passed), it is delivered
        receiver_clock.advance(minutes=10)
        sender_clock.advance(minutes=10)
        pair.sender.scheduler.tick()
        assert pair.sender.runner.run(job) == "done"
    assert pair.dispatch(doc)[0].state == "delivered"
    assert len(pair.received()) == 1
