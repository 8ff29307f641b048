"""A status message B owes A and cannot give it: B's supervisors are told
(``status_not_sent``), send it again from the escalation, and the escalation closes
itself once A takes it. Two installations over real HTTP, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx
import pytest

from congvan.states.errors import InvalidInput
from congvan.storage.escalations import Escalation
from congvan.storage.peers import Peer
from congvan.workflow.api.app import create_app
from congvan.workflow.serving import free_port, serve_in_thread
from tests.factories import actor
from tests.installations import A, B, Pair, serving_inbox

SUPERVISOR = actor("supervisor", B, name="giám sát B")


def _delivered(pair: Pair, make_document: Callable[..., str]) -> tuple[str, str]:
    """A's letter, delivered to B: the document's id and B's received document's id."""
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "done"
    [received] = pair.received()
    return doc, received.id


def _b_knows_a_at(pair: Pair, url: str) -> None:
    with pair.receiver.uow() as uow:
        now = pair.receiver.clock()
        uow.peers.put(Peer(A, url, "http", 5, 4, now, now))
        uow.commit()


def _escalations_of_b(pair: Pair, received_id: str) -> list[Escalation]:
    with pair.receiver.uow(readonly=True) as uow:
        return uow.escalations.active_of_received(received_id)


def _attempts_at_most(pair: Pair, attempts: int) -> None:
    runner = pair.receiver.runner
    policy = runner.policy("send_status")
    runner.policies["send_status"] = dataclasses.replace(policy, max_attempts=attempts)


def _registered_out_of_reach(pair: Pair, received_id: str, attempts: int) -> str:
    """B's clerk registers it while A's system is out of B's reach, and B's status job
    spends its ``attempts``: the job's id."""
    _b_knows_a_at(pair, f"http://127.0.0.1:{free_port()}/v1/inbox")
    _attempts_at_most(pair, attempts)
    pair.receiver.engine.fire_on("received", received_id, "register", actor("clerk", B))
    [job] = pair.status_jobs(received_id)
    assert [pair.receiver.runner.run(job) for _ in range(attempts)] == ["failed"] * attempts
    return job


def test_a_status_never_given_is_told_sent_again_from_the_escalation_and_closes_it(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B
    doc, received_id = _delivered(pair, make_document)

    # When B's clerk registers it and B's status job spends its attempts, A out of reach
    job = _registered_out_of_reach(pair, received_id, attempts=2)

    # Then B's supervisors are told: status 03 of that document was not given to A
    [told] = _escalations_of_b(pair, received_id)
    assert (told.kind, told.agency_id, told.organ_id, told.severity) == (
        "status_not_sent",
        B,
        A,
        "high",
    )
    assert (told.detail["code"], told.detail["job_id"]) == ("03", job)
    assert "ConnectError" in told.detail["error"]
    dispatch, _ = pair.dispatch(doc)
    assert dispatch.state == "delivered"  # A still waits for it

    # When A is back and a supervisor of B sends it again from the escalation
    with serve_in_thread(create_app(pair.sender)) as sender_base:
        _b_knows_a_at(pair, f"{sender_base}/v1/inbox")
        resend = {"action": "resend", "reason": "A đã hoạt động lại"}
        pair.receiver.engine.fire_on("escalation", told.id, "act", SUPERVISOR, data=resend)
        [again] = pair.status_jobs(received_id)
        assert again != job
        assert pair.receiver.runner.run(again) == "done"

    # Then A has it (its dispatch acknowledged), and the escalation closed by itself
    dispatch, _ = pair.dispatch(doc)
    assert dispatch.state == "acknowledged"
    assert _escalations_of_b(pair, received_id) == []
    with pair.receiver.uow(readonly=True) as uow:
        closed = uow.escalations.get(told.id)
    assert closed is not None and (closed.state, closed.outcome) == ("closed", "cause_gone")


def test_a_status_the_sender_refuses_for_good_is_told_at_once(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, and A holding a refusal (02) of it from B already:
    # A's status route answers 409 to a registration (03), which contradicts it
    doc, received_id = _delivered(pair, make_document)
    pair.sender.statuses.accept(
        *pair.status_from_b(doc, "02", description="refused", reason="Gửi nhầm")
    )
    with serve_in_thread(create_app(pair.sender)) as sender_base:
        _b_knows_a_at(pair, f"{sender_base}/v1/inbox")
        # When B's clerk registers it and its status (03) is refused by A
        pair.receiver.engine.fire_on("received", received_id, "register", actor("clerk", B))
        [job] = pair.status_jobs(received_id)
        assert pair.receiver.runner.run(job) == "done"

    # Then B's supervisors are told at once, with A's answer
    [told] = _escalations_of_b(pair, received_id)
    assert (told.kind, told.detail["code"]) == ("status_not_sent", "03")
    assert told.detail["error"].startswith("409: ")
    assert "status_contradicted" in told.detail["error"]


def test_a_status_escalation_cannot_recall_what_the_receiver_does_not_own(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    _doc, received_id = _delivered(pair, make_document)
    _registered_out_of_reach(pair, received_id, attempts=1)
    [told] = _escalations_of_b(pair, received_id)

    with pytest.raises(InvalidInput) as refused:
        pair.receiver.engine.fire_on(
            "escalation", told.id, "act", SUPERVISOR, data={"action": "recall", "reason": "Thử"}
        )
    assert refused.value.details["field"] == "action"


def test_a_status_answered_by_a_page_that_is_not_the_senders_status_route_is_posted_again(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, and B knowing A at a mistyped address on A's server
    doc, received_id = _delivered(pair, make_document)
    with serve_in_thread(create_app(pair.sender)) as sender_base:
        _b_knows_a_at(pair, f"{sender_base}/congvan/v1/inbox")
        # When B's clerk registers it: A's server answers 404 (an error naming no reason)
        pair.receiver.engine.fire_on("received", received_id, "register", actor("clerk", B))
        [job] = pair.status_jobs(received_id)
        # Then it is no refusal: the status is posted again, nobody told it never will be
        assert pair.receiver.runner.run(job) == "failed"
        assert _escalations_of_b(pair, received_id) == []
        # And once the address is corrected, A takes it
        _b_knows_a_at(pair, f"{sender_base}/v1/inbox")
        assert pair.receiver.runner.run(job) == "done"
    assert pair.dispatch(doc)[0].state == "acknowledged"
    assert _escalations_of_b(pair, received_id) == []


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(302, headers={"Location": "https://congvan.example.vn/v1/status"}),
        httpx.Response(200, text="<html>Cổng đăng nhập</html>"),
        httpx.Response(201, json={"ok": True}),
    ],
    ids=["a redirect", "a portal's page", "another JSON"],
)
def test_a_status_answered_by_something_else_than_the_status_route_is_posted_again(
    pair: Pair, make_document: Callable[..., str], answer: httpx.Response
) -> None:
    # Given A's letter delivered to B, and B's status messages answered by something else
    _doc, received_id = _delivered(pair, make_document)
    _b_knows_a_at(pair, "https://congvan.example.vn/v1/inbox")
    sending = pair.receiver.runner.actions["send_status"]
    sending.transport = lambda: httpx.MockTransport(lambda _request: answer)  # type: ignore[attr-defined]

    # When B's clerk registers it
    pair.receiver.engine.fire_on("received", received_id, "register", actor("clerk", B))
    [job] = pair.status_jobs(received_id)

    # Then the status is not taken as given: it goes again, nobody is told it never will
    assert pair.receiver.runner.run(job) == "failed"
    assert _escalations_of_b(pair, received_id) == []
