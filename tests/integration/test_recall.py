"""Recall, update and replace of a sent document between two installations over HTTP.

A (the sender) sends a letter to B; B's inbox is served by uvicorn on loopback, and A's
API while B's status messages (15 agreed, 16 refused) are posted back. The jobs of both
sides are run one at a time by the test, so every step can be checked.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import rfc8785
from sqlalchemy import text
from starlette.testclient import TestClient

from congvan.actions.calendar import VIETNAM_CALENDAR as CALENDAR
from congvan.actions.exchange.evidence import role_of, write_bundle
from congvan.actions.exchange.evidence_checks import verify_bundle
from congvan.actions.exchange.package import Original
from congvan.actions.exchange.writing import assemble, seal_header
from congvan.actions.signing import issuers, keystore
from congvan.actions.signing.stored import as_signed, expected_signer, manifest_of
from congvan.actions.signing.verification import verify_manifest_signature
from congvan.states.errors import (
    Conflict,
    Forbidden,
    GuardFailed,
    InvalidInput,
    NotFound,
    StatusContradicted,
    TransitionNotAllowed,
)
from congvan.states.escalation import texts as escalation_texts
from congvan.states.phrasing import sentence
from congvan.storage.ids import new_id
from congvan.storage.peers import Peer
from congvan.storage.stalls import stalled
from congvan.workflow import directory
from congvan.workflow.api.app import create_app
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.engine.results import Idempotency
from congvan.workflow.evidence import gather
from congvan.workflow.explaining import explain_row, explanation_view
from congvan.workflow.letters import sample_pdf
from congvan.workflow.serving import serve_in_thread
from tests.exchange_world import members, zipped
from tests.factories import SAMPLE_FIELDS, actor, chain_problems, document_row
from tests.installations import PASS, A, B, Pair, serving_inbox
from tests.integration.test_delivery import _failed_with_every_answer_lost

DOWN = "http://127.0.0.1:9/v1/inbox"  # the discard port: nothing listens there


@pytest.fixture
def served(pair: Pair) -> Iterator[str]:
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        yield inbox


def deliver(pair: Pair, doc: str) -> None:
    """Run every delivery job of ``doc`` that is due; each must end done."""
    for job in pair.jobs(doc):
        assert pair.sender.runner.run(job) == "done"


def delivered(pair: Pair, make_document: Callable[..., str], **files: Any) -> tuple[str, Any]:
    """A's letter, sent and delivered to B: the document and B's received document."""
    doc = pair.signed(make_document, **files)
    pair.sender.engine.fire(doc, "send", actor("clerk"))
    deliver(pair, doc)
    [received] = pair.received()
    return doc, received


def registered(pair: Pair, make_document: Callable[..., str], **files: Any) -> tuple[str, str]:
    """A's letter, sent, delivered to B and registered there (acknowledged at A)."""
    doc, received = delivered(pair, make_document, **files)
    pair.answer(received.id, "register")
    assert document_row(pair.sender, doc).state == "acknowledged"
    return doc, received.id


def recalled(pair: Pair, make_document: Callable[..., str]) -> tuple[str, str]:
    """A's letter registered at B, then recalled with B's agreement (15)."""
    doc, received_id = registered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    pair.answer(received_id, "agree_recall")
    return doc, received_id


def get(runtime: Runtime, agency: str, path: str, role: str = "clerk") -> Any:
    """GET ``path`` from ``runtime``'s API as a person of ``agency`` with ``role``."""
    with runtime.uow() as uow:
        now = runtime.clock()
        user = directory.ensure_user(uow, agency, f"{role}-{agency}", [role], now)
        token = directory.create_token(uow, user, now).token
        uow.commit()
    with TestClient(create_app(runtime)) as client:
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def explain(pair: Pair, doc: str) -> Any:
    with pair.sender.uow(readonly=True) as uow:
        return explain_row(uow, uow.documents.load(doc), pair.sender.clock(), CALENDAR)


def answer_findings(pair: Pair, doc: str) -> list[str]:
    """The codes explain gives the (one) recipient about a recall or update's answer."""
    [recipient] = explain(pair, doc).recipients
    found = [f for f in recipient.findings if f.code in ("answer_awaited", "request_declined")]
    for finding in found:
        said = sentence(finding)
        assert "(15" in said["vi"] + said["en"] or "(16)" in said["vi"], said
    return [f.code for f in found]


def state_at_b(pair: Pair, received_id: str) -> str:
    with pair.receiver.uow(readonly=True) as uow:
        row = uow.received.get(received_id)
        assert row is not None
        return row.state


def test_a_recall_every_recipient_agrees_to_cancels_the_document_at_both_ends(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B
    doc, received_id = registered(pair, make_document)

    # When A's supervisor recalls it, with a reason, and the recall is delivered
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    # Then B keeps the request for its clerk, the document still in force meanwhile
    view = get(pair.receiver, B, f"/v1/received/{received_id}")
    assert (view["state"], [(q["kind"], q["state"]) for q in view["requests"]]) == (
        "registered",
        [("recall", "awaiting")],
    )
    assert view["requests"][0]["reason"] == "Gửi nhầm"
    assert "agree_recall" in view["allowed_events"]
    sender_view = get(pair.sender, A, f"/v1/documents/{doc}")
    [request] = sender_view["requests"]
    assert (request["kind"], request["outcome"]) == ("recall", "awaiting_answer")
    # one request at a time: none other is offered while its answer is awaited
    assert not {"recall", "update"} & set(sender_view["allowed_events"])
    assert [r["answer"] for r in request["recipients"]] == ["awaiting_answer"]
    # standing at 13 (the sender asked to take it back), its own sending still at 03
    assert [r["status_code"] for r in request["recipients"]] == ["13"]
    assert [d["status_code"] for d in sender_view["dispatches"]] == ["03"]
    # B's answer is awaited by the recall_answer time rule, on B's dispatch
    assert [t["kind"] for t in sender_view["waiting_for"]] == ["rule_deadline"]
    # and explain says so first: the recall's answer, not the registration it had
    headline = get(pair.sender, A, f"/v1/documents/{doc}/explain")["headline"]
    assert (headline["code"], headline["facts"]["recipients"]) == ("awaiting_answers", [B])
    assert headline["facts"]["kind"] == "recall" and "thu hồi" in headline["vi"]

    # When B's clerk agrees (status 15 goes back to A)
    pair.answer(received_id, "agree_recall")

    # Then B's document is recalled and can no longer be handled
    assert state_at_b(pair, received_id) == "recalled"
    listed = get(pair.receiver, B, "/v1/received")["items"]
    assert [(i["id"], i["state"], i["status_code"]) for i in listed] == [
        (received_id, "recalled", "15")
    ]
    with pytest.raises(TransitionNotAllowed):
        pair.receiver.engine.fire_on("received", received_id, "assign", actor("supervisor", B))
    # And A's document is recalled, B's answer 15 shown, the answer timer disarmed
    sender_view = get(pair.sender, A, f"/v1/documents/{doc}")
    assert sender_view["state"] == "recalled"
    [request] = sender_view["requests"]
    assert request["outcome"] == "agreed"
    assert [(r["organ_id"], r["answer"], r["status_code"]) for r in request["recipients"]] == [
        (B, "agreed", "15")
    ]
    assert sender_view["waiting_for"] == []
    # And its own sending to B stands at 15, its copy cancelled there, as B's list says;
    # what B reported of it before is kept (registered, 03)
    [dispatch] = sender_view["dispatches"]
    assert (dispatch["state"], dispatch["status_code"]) == ("acknowledged", "15")
    assert [r["code"] for r in dispatch["reported"]] == ["03"]


def test_a_document_not_registered_offers_no_refusal_while_a_recall_awaits_its_answer(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, not registered yet, and A's recall of it delivered
    doc, received = delivered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    # Then B's clerk is offered the recall's answers and registering, not a refusal, which
    # the recall awaiting would refuse (it could never be answered)
    offered = get(pair.receiver, B, f"/v1/received/{received.id}")["allowed_events"]
    assert {"agree_recall", "refuse_recall", "register"} <= set(offered)
    assert "refuse" not in offered
    with pytest.raises(GuardFailed):
        pair.receiver.engine.fire_on(
            "received", received.id, "refuse", actor("clerk", B), data={"reason": "Sai"}
        )


def test_a_document_whose_handling_is_completed_is_still_recalled_when_the_clerk_agrees(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered, assigned and completed at B (status 06)
    doc, received_id = registered(pair, make_document)
    for event in ("assign", "complete"):
        pair.answer(received_id, event, role="supervisor")
    assert state_at_b(pair, received_id) == "completed"

    # When A recalls it
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)

    # Then B keeps the request (Decree 30 Art. 18: the recipient cancels it on notice)
    view = get(pair.receiver, B, f"/v1/received/{received_id}")
    assert [(q["kind"], q["state"]) for q in view["requests"]] == [("recall", "awaiting")]
    assert "agree_recall" in view["allowed_events"]
    # And once B's clerk agrees, the document is recalled at both ends
    pair.answer(received_id, "agree_recall")
    assert state_at_b(pair, received_id) == "recalled"
    assert get(pair.sender, A, f"/v1/documents/{doc}")["state"] == "recalled"


def test_explain_tells_when_the_document_was_recalled_whatever_moved_its_row_since(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter recalled with B's agreement
    doc, _ = recalled(pair, make_document)
    with pair.sender.uow(readonly=True) as uow:
        [entry] = uow.audit.entries(doc, "recalled")
    # When something later moves the document's row (a dispatch's event, say)
    with pair.sender.uow() as uow:
        later = entry.at + timedelta(hours=3)
        uow.conn.execute(
            text("UPDATE documents SET updated_at = :at WHERE id = :id"), {"at": later, "id": doc}
        )
        uow.commit()
    # Then explain still tells the moment it was recalled
    headline = get(pair.sender, A, f"/v1/documents/{doc}/explain")["headline"]
    assert headline["code"] == "recalled"
    assert datetime.fromisoformat(headline["facts"]["at"]) == entry.at


@pytest.mark.parametrize(("code", "earlier"), [("04", "15"), ("06", "15"), ("02", "03")])
def test_nothing_is_taken_of_a_copy_its_recipient_cancelled_by_agreeing_to_the_recall(
    pair: Pair, served: str, make_document: Callable[..., str], code: str, earlier: str
) -> None:
    # Given A's letter registered at B (03), then recalled with B's agreement (15)
    doc, _ = recalled(pair, make_document)
    before = get(pair.sender, A, f"/v1/documents/{doc}")
    with pair.sender.uow(readonly=True) as uow:
        entries = len(uow.audit.chain(doc))

    # When B's system reports on the copy it cancelled (handled, completed, refused),
    # after it agreed (one reported late, made before the agreement, is kept)
    pair.receiver.clock.advance(minutes=1)
    reason = "Gửi nhầm cơ quan" if code == "02" else None
    status = pair.status_from_b(doc, code, description=f"status {code}", reason=reason)
    with pytest.raises(StatusContradicted) as refused:
        pair.sender.statuses.accept(*status)

    # Then it is refused as contradicting the 15 (a refusal, the 03 first), nothing kept
    assert refused.value.details == {"reason": "status_code", "found": code, "earlier": earlier}
    assert ("recall" in refused.value.message) == (earlier == "15")
    after = get(pair.sender, A, f"/v1/documents/{doc}")
    assert after["dispatches"] == before["dispatches"] and after["state"] == "recalled"
    with pair.sender.uow(readonly=True) as uow:
        assert len(uow.audit.chain(doc)) == entries
    # And what B reported before the recall, sent again, is answered as before
    assert pair.sender.statuses.accept(*pair.status_from_b(doc, "03")).new is False


def test_a_recipient_refusing_the_recall_keeps_the_document_in_force_and_says_why(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, then recalled by A
    doc, received_id = registered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("signer"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)

    # (while B has not answered, explain says so on B)
    assert ["answer_awaited"] == answer_findings(pair, doc)

    # When B's clerk refuses without a reason, then with one
    with pytest.raises(InvalidInput):
        pair.receiver.engine.fire_on("received", received_id, "refuse_recall", actor("clerk", B))
    pair.answer(received_id, "refuse_recall", {"reason": "Văn bản đã được xử lý"})

    # Then explain tells B's refusal (16) and its reason, escalation or not
    [declined] = [
        f for f in explain(pair, doc).recipients[0].findings if f.code == "request_declined"
    ]
    said = sentence(declined)
    assert "(16)" in said["vi"] and "Văn bản đã được xử lý" in said["vi"]
    assert "refused the recall request (16)" in said["en"] and "stays in force" in said["en"]
    complete = sentence(explain(pair, doc).document[0])
    assert "Refused the request (16), the document stays in force at: " + B in complete["en"]

    # Then B's document stays registered and handled as before
    assert state_at_b(pair, received_id) == "registered"
    view = get(pair.receiver, B, f"/v1/received/{received_id}")
    assert [(q["state"], q["answer_reason"]) for q in view["requests"]] == [
        ("refused", "Văn bản đã được xử lý")
    ]
    pair.receiver.engine.fire_on("received", received_id, "assign", actor("supervisor", B))
    # And A sees the refusal (16) with B's reason; its document is not recalled
    sender_view = get(pair.sender, A, f"/v1/documents/{doc}")
    assert sender_view["state"] == "acknowledged"
    [request] = sender_view["requests"]
    assert request["outcome"] == "refused"
    [answer] = request["recipients"]
    assert (answer["answer"], answer["status_code"], answer["reason"]) == (
        "refused",
        "16",
        "Văn bản đã được xử lý",
    )
    # The recall was answered: another may be sent; the refusal escalates at A at once
    assert "recall" in sender_view["allowed_events"]
    assert [t["kind"] for t in sender_view["waiting_for"]] == ["escalation_rise"]
    with pair.sender.uow(readonly=True) as uow:
        [escalation] = uow.escalations.active_of_document(doc)
    assert escalation.kind == "request_refused"
    assert "Văn bản đã được xử lý" in escalation.detail["reason"]


def test_a_document_no_recipient_holds_is_neither_offered_nor_taken_a_recall_or_update(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter, delivered to B, which refuses it (02): no recipient holds it
    doc, received = delivered(pair, make_document)
    pair.answer(received.id, "refuse", {"reason": "Không đúng thẩm quyền"})
    view = get(pair.sender, A, f"/v1/documents/{doc}")
    assert view["state"] == "failed"

    # Then its view offers neither a recall nor an update
    assert {"recall", "update"}.isdisjoint(view["allowed_events"])
    # And either, fired, is refused as a condition of the document (409), naming why
    for event, data in [
        ("recall", {"reason": "Gửi nhầm"}),
        ("update", {"reason": "Sửa hạn", "fields": {"subject": "Về việc khác"}}),
    ]:
        with pytest.raises(GuardFailed) as refused:
            pair.sender.engine.fire(doc, event, actor("supervisor"), data=data)
        assert refused.value.details["failed"] == ["a_recipient_holds_it"]
        assert (
            "no recipient holds the document"
            in refused.value.details["reasons"]["a_recipient_holds_it"]
        )
    assert document_row(pair.sender, doc).state == "failed"


def test_a_recall_the_recipients_inbox_refuses_escalates_at_once(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, and refused there (02) before A heard of it
    doc, received = delivered(pair, make_document)
    pair.receiver.engine.fire_on(
        "received", received.id, "refuse", actor("clerk", B), data={"reason": "Sai thẩm quyền"}
    )

    # When A recalls it and B's inbox refuses the recall (the letter is not in force there)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)

    # Then the recall's dispatch ends refused, and an escalation opens on it at once,
    # naming the request and the inbox's reason; its answer is awaited no more
    with pair.sender.uow(readonly=True) as uow:
        [request] = uow.dispatches.for_requests(doc)
        [escalation] = uow.escalations.active_of_document(doc)
        timers = [t.kind for t in uow.timers.for_document(doc) if t.ref_id == request.id]
    assert request.state == "rejected"
    assert (escalation.kind, escalation.dispatch_id, escalation.organ_id) == (
        "refused_by_recipient",
        request.id,
        B,
    )
    assert escalation.detail["request_id"] == request.request_id
    assert "original_unknown" in escalation.detail["reason"]
    assert timers == []

    # When B's return of the letter (02), which the recall crossed, then reaches A
    assert _run_status_jobs(pair, pair.status_jobs(received.id), up=True) == ["done"]

    # Then the recall's refusal is moot (B holds nothing to recall): its escalation closes,
    # saying so, and the one left is that of the return itself
    with pair.sender.uow(readonly=True) as uow:
        [own] = [r for r in uow.dispatches.for_document(doc) if not r.request_id]
        active = uow.escalations.active_of_document(doc)
        moot = uow.escalations.get(escalation.id)
    assert own.state == "rejected"
    assert [(x.kind, x.dispatch_id) for x in active] == [("refused_by_recipient", own.id)]
    assert moot is not None and moot.state == "closed"


def test_a_recall_refused_by_an_inbox_after_the_return_crossed_it_opens_nothing_more(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, recalled by A while B refuses it (02), the return
    # told at A before the recall reaches B's inbox
    doc, received = delivered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    pair.answer(received.id, "refuse", {"reason": "Sai thẩm quyền"})

    # When B's inbox then refuses the recall (the letter is not in force there)
    deliver(pair, doc)

    # Then the recall's dispatch ends refused, and the one escalation is the return's
    with pair.sender.uow(readonly=True) as uow:
        [request] = uow.dispatches.for_requests(doc)
        [own] = [r for r in uow.dispatches.for_document(doc) if not r.request_id]
        active = uow.escalations.active_of_document(doc)
    assert (request.state, own.state) == ("rejected", "rejected")
    assert [(x.kind, x.dispatch_id) for x in active] == [("refused_by_recipient", own.id)]


def test_a_recall_that_failed_is_resent_from_its_escalation_under_its_message_id(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, then recalled two hours later while B's inbox is
    # down: the recall's three attempts fail
    doc, received_id = registered(pair, make_document)
    registered_at = pair.sender.clock()
    pair.sender.clock.advance(hours=2)  # type: ignore[attr-defined]
    pair.point_b_at(DOWN)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    [job] = pair.jobs(doc)
    assert [pair.sender.runner.run(job) for _ in range(3)] == ["failed", "failed", "done"]
    with pair.sender.uow(readonly=True) as uow:
        [failed] = uow.dispatches.for_requests(doc)
        [escalation] = uow.escalations.active_of_document(doc)
        row = uow.documents.load(doc)
        found = explain_row(uow, row, pair.sender.clock(), CALENDAR)
    assert (failed.state, escalation.kind, escalation.dispatch_id) == (
        "failed",
        "delivery_failed",
        failed.id,
    )
    assert escalation.detail["request_id"] == failed.request_id
    # And the letter is still done as of B's registration, not of the recall's failure
    assert ("complete", registered_at) == (found.document[0].code, found.document[0].facts["at"])

    # When B is back and a supervisor resends from the escalation, as it proposes
    pair.point_b_at(served)
    pair.sender.engine.fire_on(
        "escalation",
        escalation.id,
        "act",
        actor("supervisor", A),
        data={"action": "resend", "reason": "Sở Nội vụ đã khắc phục"},
    )
    assert chain_problems(pair.sender) == {}  # the recall's dispatch moved by its escalation
    [again] = pair.jobs(doc)
    assert pair.sender.runner.run(again) == "done"

    # Then the same recall (its message id) reached B, and the escalation closed itself
    with pair.sender.uow(readonly=True) as uow:
        [resent] = uow.dispatches.for_requests(doc)
        closed = uow.escalations.get(escalation.id)
        [acted] = uow.audit.entries(escalation.id, "act")
    assert (resent.id, resent.state, resent.message_id) == (
        failed.id,
        "delivered",
        failed.message_id,
    )
    assert closed is not None and (closed.state, closed.outcome) == ("closed", "cause_gone")
    assert acted.payload["resent"]["message_id"] == failed.message_id
    # And B's clerk agrees: the letter is recalled at both ends
    pair.answer(received_id, "agree_recall")
    assert document_row(pair.sender, doc).state == "recalled"
    assert state_at_b(pair, received_id) == "recalled"


@pytest.mark.parametrize(
    ("request_kind", "answer", "settled", "document", "open_kinds"),
    [
        ("recall", "agree_recall", "agreed", "recalled", []),
        ("recall", "refuse_recall", "declined", "acknowledged", ["request_refused"]),
        ("update", "agree_update", "agreed", "acknowledged", []),
    ],
)
def test_a_request_whose_every_answer_was_lost_is_settled_by_the_recipients_answer(
    pair: Pair,
    served: str,
    make_document: Callable[..., str],
    request_kind: str,
    answer: str,
    settled: str,
    document: str,
    open_kinds: list[str],
) -> None:
    # Given A's letter registered at B, then recalled (or corrected): B's inbox took the
    # request, but every answer to it was lost until its attempts ran out (outcome unknown)
    doc, received_id = registered(pair, make_document)
    data = {"reason": "Gửi nhầm"}
    if request_kind == "update":
        data = {**data, "fields": {"place": "Huế"}}  # type: ignore[dict-item]
    pair.sender.engine.fire(doc, request_kind, actor("supervisor"), data=data)
    [job] = pair.jobs(doc)
    _failed_with_every_answer_lost(pair, doc, job)
    with pair.sender.uow(readonly=True) as uow:
        [failed] = uow.dispatches.for_requests(doc)
        [warned] = uow.escalations.active_of_document(doc)
    assert (failed.state, warned.kind) == ("failed", "delivery_failed")

    # When B's clerk answers the request that did arrive, and says so (15 or 16)
    pair.answer(received_id, answer, {"reason": "Đã xử lý xong"} if "refuse" in answer else None)

    # Then A believes B's signed answer: the request's dispatch is answered, the document
    # stands where every answer puts it, the failure's escalation closes (a refusal's own
    # follows it), and nothing offers to ask again what B answered
    with pair.sender.uow(readonly=True) as uow:
        [answered] = uow.dispatches.for_requests(doc)
        active = uow.escalations.active_of_document(doc)
    assert (answered.id, answered.state) == (failed.id, settled)
    assert document_row(pair.sender, doc).state == document
    assert [a.kind for a in active] == open_kinds
    assert answer_findings(pair, doc) == ([] if settled == "agreed" else ["request_declined"])


def test_a_recall_that_does_not_arrive_in_time_escalates_as_the_document_would(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, then recalled while B's inbox is down: its first
    # attempt fails, and the next waits (a worker stalled, the peer at its limit)
    doc, received_id = registered(pair, make_document)
    pair.point_b_at(DOWN)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    [job] = pair.jobs(doc)
    assert pair.sender.runner.run(job) == "failed"

    # When the rule ``deliver`` runs out with the recall still not there
    pair.sender.clock.advance(days=2)  # type: ignore[attr-defined]
    pair.sender.scheduler.run_due()

    # Then it escalates on the recall's dispatch, as a document's own would
    with pair.sender.uow(readonly=True) as uow:
        [request] = uow.dispatches.for_requests(doc)
        [late] = uow.escalations.active_of_document(doc)
    assert (late.kind, late.dispatch_id) == ("not_delivered", request.id)

    # And once B is back and the recall arrives, it closes itself: delivered
    pair.point_b_at(served)
    for again in pair.jobs(doc):
        assert pair.sender.runner.run(again) == "done"
    with pair.sender.uow(readonly=True) as uow:
        closed = uow.escalations.get(late.id)
        [entry] = uow.audit.entries(late.id, "close")
    assert closed is not None and closed.state == "closed"
    assert entry.payload["reason"] == "delivered"
    pair.answer(received_id, "agree_recall")
    assert document_row(pair.sender, doc).state == "recalled"


def test_explain_says_when_a_request_went_whether_it_arrived_and_by_when_it_is_answered(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, recalled while B's inbox is down
    doc, _received_id = registered(pair, make_document)
    pair.point_b_at(DOWN)
    asked_at = pair.sender.clock()
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    [job] = pair.jobs(doc)
    assert pair.sender.runner.run(job) == "failed"

    def about_the_request() -> dict[str, Any]:
        [recipient] = explain(pair, doc).recipients
        return {f.code: f for f in recipient.findings}

    # Then explain says it is on its way, since it was sent, and by when it must arrive
    on_its_way = about_the_request()
    awaited = on_its_way["answer_awaited"]
    assert (awaited.facts["since"], awaited.facts["arrived"]) == (asked_at, False)
    assert "has not reached the recipient yet" in sentence(awaited)["en"]
    assert "waiting_for_retry" in on_its_way
    assert on_its_way["due_by"].facts["step"] == "01"

    # When it arrives an hour later
    pair.sender.clock.advance(hours=1)  # type: ignore[attr-defined]
    pair.point_b_at(served)
    for again in pair.jobs(doc):
        assert pair.sender.runner.run(again) == "done"

    # Then its answer is awaited, still since it was sent (not since it arrived), and
    # by the moment the rule recall_answer gives
    arrived = about_the_request()
    awaited, due = arrived["answer_awaited"], arrived["due_by"]
    assert (awaited.facts["since"], awaited.facts["arrived"]) == (asked_at, True)
    assert due.facts["step"] == "15" and due.facts["due_at"] > pair.sender.clock()
    assert "be answered (15/16)" in sentence(due)["en"]


def explained(pair: Pair, doc: str) -> dict[str, Any]:
    """A's explanation of ``doc`` now, as the API shows it."""
    with pair.sender.uow(readonly=True) as uow:
        row = uow.documents.load(doc)
        found = explain_row(uow, row, pair.sender.clock(), CALENDAR)
        return explanation_view(row, found, pair.sender.clock())


@pytest.mark.parametrize("answer", ["unanswered", "refused"])
def test_an_open_escalation_about_a_recall_or_update_is_explained_as_an_alarm(
    pair: Pair, served: str, make_document: Callable[..., str], answer: str
) -> None:
    # Given A's letter registered at B, then a recall of it left unanswered past its
    # time, or an update of it B's clerk refused (16)
    doc, received_id = registered(pair, make_document)
    if answer == "unanswered":
        pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
        deliver(pair, doc)
        pair.sender.clock.advance(hours=25)  # type: ignore[attr-defined]
        pair.sender.scheduler.tick()
    else:
        fields = {"subject": "V/v sửa đổi"}
        pair.sender.engine.fire(
            doc, "update", actor("supervisor"), data={"reason": "Sửa", "fields": fields}
        )
        deliver(pair, doc)
        pair.answer(received_id, "refuse_update", {"reason": "Không đồng ý"})
    with pair.sender.uow(readonly=True) as uow:
        [escalation] = uow.escalations.active_of_document(doc)

    # When A asks what the letter waits for
    view = explained(pair, doc)

    # Then the open escalation is an alarm on B, in both languages, and the headline
    [recipient] = view["recipients"]
    [finding] = [f for f in recipient["findings"] if f["code"] == "escalation_open"]
    kind, words = ("recall", "thu hồi") if answer == "unanswered" else ("update", "cập nhật")
    assert (finding["alarm"], finding["facts"]["escalation_id"]) == (True, escalation.id)
    assert f"about the {kind} request ({escalation.kind}, level 1)" in finding["en"]
    assert f"về yêu cầu {words}" in finding["vi"]
    assert view["headline"]["code"] == "escalation_open"
    assert "nothing is awaited" not in view["document"][0]["en"]


def test_a_refused_recall_is_not_resent_from_its_escalation(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, whose clerk refused A's recall of it (16)
    doc, received_id = registered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    pair.answer(received_id, "refuse_recall", {"reason": "Văn bản đã được xử lý"})
    with pair.sender.uow(readonly=True) as uow:
        [escalation] = uow.escalations.active_of_document(doc)

    # When a supervisor asks to resend it from the escalation
    with pytest.raises(Conflict) as refused:
        pair.sender.engine.fire_on(
            "escalation",
            escalation.id,
            "act",
            actor("supervisor", A),
            data={"action": "resend", "reason": "Thử lại"},
        )

    # Then the refusal stands: the same request would get the same answer, as it says
    assert refused.value.details["state"] == "declined"
    assert "(16)" in refused.value.message and "in force" in refused.value.message
    assert pair.jobs(doc) == []


def test_a_replacement_of_a_document_its_recipient_returned_meanwhile_is_taken_as_its_own(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, whose clerk returns it (02) before A hears of it
    doc, received = delivered(pair, make_document)
    pair.receiver.engine.fire_on(
        "received", received.id, "refuse", actor("clerk", B), data={"reason": "Sai nội dung"}
    )

    # When A, meanwhile, sends its replacement (sealed as one: A still has B holding it)
    draft = pair.sender.engine.create_replacement(actor("supervisor"), doc, "Sai nội dung")
    replacement = draft["id"]
    pair.sender.engine.fire(replacement, "edit", actor("clerk"), data={"fields": {"number": 99}})
    sign(pair, replacement)
    offered = get(pair.sender, A, f"/v1/documents/{replacement}")["allowed_events"]
    assert offered == ["reject", "send"]  # the original stands still: the send is offered
    pair.sender.engine.fire(replacement, "send", actor("clerk"))
    deliver(pair, replacement)

    # Then B takes the corrected letter, as it would had its 02 reached A first (a new
    # document), and the one it returned stays returned
    with pair.sender.uow(readonly=True) as uow:
        [dispatch] = uow.dispatches.for_document(replacement)
    assert dispatch.state == "delivered"
    states = {r.id: r.state for r in pair.received()}
    assert states.pop(received.id) == "refused"
    assert list(states.values()) == ["received"]

    # And when B's 02 reaches A at last, the original being replaced already, nothing of it
    # is left to answer for: no escalation opens (had it come first, it would have closed)
    assert ["done"] == _run_status_jobs(pair, pair.status_jobs(received.id), up=True)
    with pair.sender.uow(readonly=True) as uow:
        assert uow.dispatches.for_document(doc)[0].state == "rejected"
        assert uow.escalations.active_of_document(doc) == []


@pytest.mark.parametrize("reason", ["superseded", "cessation_of_operation"])
def test_a_document_whose_signer_was_renewed_since_is_still_recalled_and_updated(
    pair: Pair, served: str, make_document: Callable[..., str], reason: str
) -> None:
    # Given A's letter registered at B (its main PDF signed, as signing on the server
    # does), then its signer's certificate revoked as replaced (a routine renewal) and
    # the CRL saying so held on both sides
    main = sample_pdf()
    doc, received_id = registered(
        pair, make_document, pdf=("1227.pdf", main), signed_pdf=pair.sign_pdf(main)
    )
    pair.sender.clock.advance(hours=1)
    with pair.sender.uow() as uow:
        now = pair.sender.clock()
        keystore.revoke(
            uow, keystore.fingerprint(pair.signer_cert), reason=reason, passphrase=PASS, now=now
        )
        crl = keystore.publish_crl(uow, passphrase=PASS, now=now)
        uow.commit()
    with pair.receiver.uow() as uow:
        issuers.import_crl(uow, pair.receiver.trust, crl, now=pair.receiver.clock())
        uow.commit()

    # When A corrects its subject, then recalls it
    fields = {"subject": "V/v khen thưởng (đính chính)"}
    pair.sender.engine.fire(
        doc, "update", actor("supervisor"), data={"reason": "Sai trích yếu", "fields": fields}
    )
    deliver(pair, doc)
    pair.answer(received_id, "agree_update")
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)

    # Then B's inbox took both, judging the signature it took the letter under as of then
    with pair.receiver.uow(readonly=True) as uow:
        assert [r.kind for r in uow.received.requests(received_id)] == ["update", "recall"]
        assert uow.received.get(received_id).subject == fields["subject"]  # type: ignore[union-attr]
    pair.answer(received_id, "agree_recall")
    assert state_at_b(pair, received_id) == "recalled"


def test_an_update_agreed_to_corrects_the_metadata_and_keeps_the_old_in_the_trail(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B
    doc, received_id = registered(pair, make_document)
    old_subject = document_row(pair.sender, doc).subject

    # When A corrects its subject and how its signer's name is written, and B's clerk agrees
    fields = {"subject": "V/v khen thưởng (đính chính)", "signer_name": "NGUYỄN VĂN PHƯƠNG"}
    with pytest.raises(InvalidInput):  # a field an update does not correct
        pair.sender.engine.fire(
            doc, "update", actor("supervisor"), data={"reason": "x", "fields": {"number": 9}}
        )
    for who in ({"signer_name": "Trần Văn Bình"}, {"signer_position": "CHỦ TỊCH"}):
        # nor does it say another signed than the one the signature's certificate names
        with pytest.raises(InvalidInput) as not_the_signer:
            pair.sender.engine.fire(
                doc, "update", actor("supervisor"), data={"reason": "x", "fields": who}
            )
        assert not_the_signer.value.details["field"] == f"fields.{next(iter(who))}"
    pair.sender.engine.fire(
        doc, "update", actor("supervisor"), data={"reason": "Sai trích yếu", "fields": fields}
    )
    assert document_row(pair.sender, doc).subject == fields["subject"]
    # (A's signature still stands: it covered the metadata the update corrected)
    with pair.sender.uow(readonly=True) as uow:
        signature = uow.signatures.latest_signature(doc)
        assert signature is not None
        signed = as_signed(uow, doc, signature.manifest_sha256)
        [update] = uow.audit.entries(doc, "update")
        assert signed.updates == [update.version]
        assert hashlib.sha256(signed.manifest).hexdigest() == signature.manifest_sha256
        assert signed.document.subject == old_subject
        assert manifest_of(uow, doc) != signed.manifest
        trust = keystore.trust_material(uow, pair.sender.trust)
        verdict = verify_manifest_signature(
            signed.manifest, bytes(signature.cms), trust_roots=trust.roots, crls=trust.crls,
            at=pair.sender.clock(), expected_signer=expected_signer(uow, signed.document),
        )  # fmt: skip
        assert verdict.signer_matches
    # (one request at a time)
    with pytest.raises(GuardFailed):
        pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "y"})
    deliver(pair, doc)
    pair.answer(received_id, "agree_update")

    # Then B shows the corrected metadata, in force, and its trail the old subject
    view = get(pair.receiver, B, f"/v1/received/{received_id}")
    assert (view["state"], view["subject"]) == ("registered", fields["subject"])
    assert view["corrections"] == fields
    with pair.receiver.uow(readonly=True) as uow:
        [entry] = uow.audit.entries(received_id, "agree_update")
    assert entry.payload["changed"]["subject"] == {"from": old_subject, "to": fields["subject"]}
    # (its row held to the manifest it arrived with, corrected as its trail records; the
    # old subject written back by SQL is a chain altered)
    assert chain_problems(pair.receiver) == {}
    with pair.receiver.uow() as uow:
        sql = "UPDATE received_documents SET subject = :old WHERE id = :id"
        uow.conn.execute(text(sql), {"old": old_subject, "id": received_id})
        uow.commit()
    assert "its subject says" in chain_problems(pair.receiver)[received_id].detail
    # And A sees B agreed (15)
    sender_view = get(pair.sender, A, f"/v1/documents/{doc}")
    [request] = sender_view["requests"]
    assert (request["kind"], request["outcome"], request["changes"]) == (
        "update",
        "agreed",
        fields,
    )
    assert [d["uncorrected"] for d in sender_view["dispatches"]] == [[]]
    assert sender_view["state"] == "acknowledged"


def sign(pair: Pair, doc: str) -> None:
    """Approve and sign ``doc`` at A as ``Pair.signed`` does (checks faked, CMS real)."""
    from congvan.actions.signing import keystore
    from congvan.actions.signing.cms import sign_manifest
    from congvan.actions.signing.stored import manifest_of
    from tests.factories import add_signature_row

    pair.sender.engine.fire(doc, "approve", actor("reviewer"))
    pair.sender.engine.fire(doc, "sign", actor("signer"))
    now = pair.sender.clock()
    with pair.sender.uow() as uow:
        manifest = manifest_of(uow, doc)
        cms = sign_manifest(
            manifest,
            key=pair.signer_key,
            cert=pair.signer_cert,
            chain=list(pair.sender.trust.roots()),
            signing_time=now,
        )
        add_signature_row(
            uow, doc, manifest, cms, now, mode="server",
            fingerprint=keystore.fingerprint(pair.signer_cert),
        )  # fmt: skip
        uow.commit()


def test_a_replacement_of_a_replacement_may_keep_the_first_ones_file(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, replaced once keeping its file, sent and delivered
    doc, _ = registered(pair, make_document, pdf=("thu.pdf", sample_pdf("Thư")))
    first = pair.sender.engine.create_replacement(actor("supervisor"), doc, "Sai số")["id"]
    pair.sender.engine.fire(first, "edit", actor("clerk"), data={"fields": {"number": 98}})
    sign(pair, first)
    pair.sender.engine.fire(first, "send", actor("clerk"))
    deliver(pair, first)

    # When that replacement is replaced in turn, the file kept again
    second = pair.sender.engine.create_replacement(actor("supervisor"), first, "Sai ngày")["id"]
    pair.sender.engine.fire(second, "edit", actor("clerk"), data={"fields": {"number": 97}})
    sign(pair, second)

    # Then the file it shares with both documents it replaces is no duplicate: it is sent
    with pair.sender.uow(readonly=True) as uow:
        assert uow.documents.replaced_chain(first) == [first, doc]
    pair.sender.engine.fire(second, "send", actor("clerk"))
    deliver(pair, second)
    assert document_row(pair.sender, first).state == "replaced"
    # While a document outside the chain sending that file again is still refused
    with pair.sender.uow(readonly=True) as uow:
        [main] = [a for a in uow.documents.attachments(second) if a.role == "main"]
        assert uow.duplicates.sent_with_file(A, main.sha256, [B], exclude="other")["id"] == doc


def test_a_replacement_sent_links_both_ways_and_marks_the_original_replaced_at_both_ends(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter, with its main PDF, registered at B
    doc, received_id = registered(pair, make_document, pdf=("thu.pdf", sample_pdf("Thư")))

    # When A's supervisor drafts its replacement (a clerk may not, nor replay its request
    # under a token of the same person holding the clerk's role only), corrects, signs,
    # sends it
    with pytest.raises(Forbidden):
        pair.sender.engine.create_replacement(actor("clerk"), doc, "Sai nội dung")
    keyed = Idempotency.of("replace-1", doc, "Sai nội dung", by="pct")
    draft = pair.sender.engine.create_replacement(
        actor("supervisor", name="pct"), doc, "Sai nội dung", idempotency=keyed
    )
    with pytest.raises(Forbidden):
        pair.sender.engine.create_replacement(
            actor("clerk", name="pct"), doc, "Sai nội dung", idempotency=keyed
        )
    replacement = draft["id"]
    assert (draft["state"], draft["replaces"], draft["number"]) == ("draft", doc, None)
    assert [r["organ_id"] for r in draft["recipients"]] == [B]
    pair.sender.engine.fire(
        replacement,
        "edit",
        actor("clerk"),
        data={"fields": {"number": 99, "subject": "V/v khen thưởng (thay thế)"}},
    )
    sign(pair, replacement)
    # (its main file, unchanged, repeats only the document it replaces: no duplicate)
    with pair.sender.uow(readonly=True) as uow:
        [main] = [a for a in uow.documents.attachments(replacement) if a.role == "main"]
        duplicates = uow.duplicates
        assert duplicates.sent_with_file(A, main.sha256, [B], exclude=replacement)["id"] == doc
        again = duplicates.sent_with_file(A, main.sha256, [B], exclude=replacement, replaced=[doc])
        assert again is None
    pair.sender.engine.fire(replacement, "send", actor("clerk"))

    # Then A's original is replaced at once, and links to its replacement
    original_view = get(pair.sender, A, f"/v1/documents/{doc}")
    assert (original_view["state"], original_view["replaced_by"]) == ("replaced", [replacement])
    with pair.sender.uow(readonly=True) as uow:
        [entry] = uow.audit.entries(doc, "replaced")
    assert entry.payload["replaced_by"] == replacement
    # When the replacement is delivered
    deliver(pair, replacement)
    # Then B has it as a new document that replaces the first, which shows replaced
    items = {i["id"]: i for i in get(pair.receiver, B, "/v1/received")["items"]}
    [new] = [i for i in items.values() if i["id"] != received_id]
    assert (new["state"], new["replaces"], new["number"]) == ("received", received_id, 99)
    assert items[received_id]["state"] == "replaced"
    old_view = get(pair.receiver, B, f"/v1/received/{received_id}")
    assert old_view["replaced_by"] == [new["id"]]
    assert old_view["allowed_events"] == []
    # And the replacement at A names the original; its package said why
    replacement_view = get(pair.sender, A, f"/v1/documents/{replacement}")
    assert (replacement_view["replaces"], replacement_view["replace_reason"]) == (
        doc,
        "Sai nội dung",
    )
    with pair.sender.uow(readonly=True) as uow:
        [dispatch] = uow.dispatches.for_document(replacement)
        header = json.loads(uow.dispatches.header_of(dispatch.id) or b"")
        [sent] = uow.dispatches.for_document(doc)
    assert header["business_type"] == "replace"
    assert header["original"]["message_id"] == sent.message_id
    assert header["reason"] == "Sai nội dung"


def test_a_recall_of_a_document_the_recipient_never_got_from_that_sender_is_refused(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B
    doc, _received_id = registered(pair, make_document)
    with pair.sender.uow(readonly=True) as uow:
        agency = pair.sender.anchoring.keys.require(uow, A, pair.sender.clock())
        signature = uow.signatures.latest_signature(doc)
        assert signature is not None
        manifest, cms = bytes(signature.manifest), bytes(signature.cms)
        files = {
            a["filename"]: io.BytesIO(bytes(uow.documents.blob(a["sha256"]) or b""))
            for a in json.loads(manifest)["attachments"]
        }

    def post(original: Original, message_id: str | None = None) -> httpx.Response:
        sealed = seal_header(
            message_id=message_id or new_id(), recipient=B, manifest=manifest, signature=cms,
            agency=agency, sent_at=pair.sender.clock(), business_type="recall", reason="Gửi nhầm",
            original=original,
        )  # fmt: skip
        sink = io.BytesIO()
        for f in files.values():
            f.seek(0)
        assemble(sink, sealed, manifest=manifest, signature=cms, files=files)
        return httpx.post(
            served, content=sink.getvalue(), headers={"Content-Type": "application/zip"}
        )

    # When A's agency asks B to recall a package B never got, or another document
    never = post(Original("never-sent", doc, 1, "UBND-VP"))
    with pair.sender.uow(readonly=True) as uow:
        [sent] = uow.dispatches.for_document(doc)
    assert sent.message_id is not None
    other = post(Original(sent.message_id, "another-document", 1, "UBND-VP"))
    # or names the document by another number or symbol than it came with
    number, symbol = SAMPLE_FIELDS["number"], SAMPLE_FIELDS["symbol"]
    renumbered = post(Original(sent.message_id, doc, number + 1, symbol))
    resymboled = post(Original(sent.message_id, doc, number, "UBND-VP"))
    # or sends its recall under the message id of the package that brought the document
    reused = post(Original(sent.message_id, doc, number, symbol), message_id=sent.message_id)

    # Then B refuses each with a reason code, and keeps nothing
    assert never.status_code == other.status_code == 422, never.text
    assert (never.json()["code"], never.json()["details"]["reason"]) == (
        "original_unknown",
        "not_received",
    )
    assert other.json()["details"]["reason"] == "another_document"
    for answer in (renumbered, resymboled):
        assert answer.status_code == 422, answer.text
        assert answer.json()["details"]["reason"] == "another_document"
    assert (reused.status_code, reused.json()["code"]) == (409, "message_id_reused"), reused.text
    with pair.receiver.uow(readonly=True) as uow:
        assert all(not uow.received.requests(r.id) for r in uow.received.page(B).items)
    # And the same recall under a message id of its own is taken, once
    taken = post(Original(sent.message_id, doc, number, symbol))
    assert taken.status_code == 201, taken.text
    with pair.receiver.uow(readonly=True) as uow:
        assert sum(len(uow.received.requests(r.id)) for r in uow.received.page(B).items) == 1
    # But another while that one awaits B's answer is refused: one at a time, each answered
    again = post(Original(sent.message_id, doc, number, symbol))
    assert (again.status_code, again.json()["code"]) == (409, "request_awaiting"), again.text
    with pair.receiver.uow(readonly=True) as uow:
        assert sum(len(uow.received.requests(r.id)) for r in uow.received.page(B).items) == 1


def test_another_agency_cannot_recall_update_or_replace_your_document(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    doc, _received_id = registered(pair, make_document)

    for event, data in (("recall", {"reason": "x"}), ("update", {"reason": "x"})):
        with pytest.raises(NotFound):
            pair.sender.engine.fire(doc, event, actor("supervisor", B), data=data)
    with pytest.raises(NotFound):
        pair.sender.engine.create_replacement(actor("supervisor", B), doc, "x")
    # Nor may A's own clerk recall it
    with pytest.raises(Forbidden):
        pair.sender.engine.fire(doc, "recall", actor("clerk"), data={"reason": "x"})


def test_congvan_documents_recall_and_show_on_the_command_line(
    pair: Pair,
    served: str,
    make_document: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from congvan.workflow.cli import main
    from tests.installations import PASS

    # Given A's letter registered at B, and a supervisor and a clerk of A
    doc, _received_id = registered(pair, make_document)
    with pair.sender.uow() as uow:
        now = pair.sender.clock()
        directory.ensure_user(uow, A, "lan", ["supervisor"], now)
        directory.ensure_user(uow, A, "minh", ["clerk"], now)
        uow.commit()
    settings = pair.sender.settings
    monkeypatch.setenv("CONGVAN_KEY_PASSPHRASE", PASS)
    cli = ["--data-dir", str(settings.data_dir), "--database-url", settings.db_url, "documents"]

    # When the clerk, then the supervisor, recalls it on the command line
    refused = main([*cli, "recall", doc, "--reason", "Gửi nhầm", "--as", "minh"])
    code = main([*cli, "recall", doc, "--reason", "Gửi nhầm", "--as", "lan"])
    said = capsys.readouterr()
    shown = main([*cli, "show", doc])
    text = capsys.readouterr().out

    # Then only the supervisor's is written, its delivery queued for the workers, and
    # `show` prints the recall waiting on B
    assert (refused, code, shown) == (2, 0, 0), said
    assert "error [forbidden]" in said.err
    assert len(pair.jobs(doc)) == 1
    assert "state         acknowledged" in text
    assert "awaiting_answer\n" in text
    # (its reason told as what the supervisor asked for, not as anyone's answer)
    assert "  asked for   Gửi nhầm" in text
    assert f"  answer      {B}  sending" in text


def test_an_answer_15_about_the_document_itself_or_03_about_a_recall_is_refused(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    from congvan.actions.exchange.status import make_status
    from congvan.states.errors import MessageMismatch

    # Given A's letter registered at B, and its recall delivered to B
    doc, _received_id = registered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    with pair.sender.uow(readonly=True) as uow:
        [sent] = uow.dispatches.for_document(doc)
        [recall] = uow.dispatches.for_requests(doc)
    with pair.receiver.uow(readonly=True) as uow:
        b_key = pair.receiver.inbox.keys.require(uow, B, pair.receiver.clock())

    def status(message_id: str | None, code: str) -> Any:
        assert message_id is not None
        return make_status(
            message_id=message_id, document_id=doc, to=A, code=code, description="x",
            at=pair.receiver.clock(), agency=b_key,
        )  # fmt: skip

    # When B's agency says it agrees about the document's own package, or registered the
    # recall's
    for message_id, code in ((sent.message_id, "15"), (recall.message_id, "03")):
        sealed = status(message_id, code)
        # Then each is refused, and nothing moves
        with pytest.raises(MessageMismatch) as refused:
            pair.sender.statuses.accept(sealed.body, sealed.cms)
        assert refused.value.reason == "status_code"
    assert document_row(pair.sender, doc).state == "acknowledged"
    with pair.sender.uow(readonly=True) as uow:
        assert [r.state for r in uow.dispatches.for_requests(doc)] == ["delivered"]


def test_a_recall_left_unanswered_past_its_time_escalates_once(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, and its recall delivered and left unanswered
    doc, received_id = registered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)

    # When its answer's time (a working day) has not come, then has
    before = pair.sender.scheduler.tick()
    pair.sender.clock.advance(hours=25)
    fired = pair.sender.scheduler.tick()
    again = pair.sender.clock.advance(minutes=5) and pair.sender.scheduler.tick()

    # Then one recall_unanswered escalation opens, on B's dispatch of the recall
    assert (before, fired, again) == (0, 1, 0)
    with pair.sender.uow(readonly=True) as uow:
        [opened] = uow.escalations.active_of_document(doc)
        [request] = uow.dispatches.for_requests(doc)
    assert (opened.kind, opened.dispatch_id, opened.organ_id) == (
        "recall_unanswered",
        request.id,
        B,
    )

    # And B's answer (agreeing) closes it by itself
    pair.answer(received_id, "agree_recall")
    with pair.sender.uow(readonly=True) as uow:
        assert uow.escalations.active_of_document(doc) == []
        assert uow.escalations.get(opened.id).outcome == "cause_gone"  # type: ignore[union-attr]


@pytest.mark.parametrize("answer", ["agree_recall", "refuse_recall"])
def test_a_recall_our_clerks_leave_unanswered_reminds_them_until_they_answer(
    pair: Pair, served: str, make_document: Callable[..., str], answer: str
) -> None:
    # Given A's letter registered at B, and its recall arrived at B
    doc, received_id = registered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)

    # When B's clerks leave it past its answer's time (a working day)
    before = pair.receiver.scheduler.tick()
    pair.receiver.clock.advance(hours=25)
    pair.receiver.scheduler.tick()

    # Then B's own supervisors are told (Decree 30 Art. 18: the recipient answers), once,
    # in words for the agency that owes the answer
    assert before == 0
    with pair.receiver.uow(readonly=True) as uow:
        [opened] = uow.escalations.active_of_received(received_id)
        [request] = uow.received.requests(received_id)
    assert (opened.kind, opened.agency_id, opened.organ_id) == ("recall_unanswered", B, A)
    assert opened.detail["request"] == "recall"
    assert "answer it" in escalation_texts(opened.kind, received=True)[2]
    pair.receiver.clock.advance(minutes=5)
    pair.receiver.scheduler.tick()
    with pair.receiver.uow(readonly=True) as uow:
        assert len(uow.escalations.active_of_received(received_id)) == 1

    # And their answer, whichever, closes it by itself
    data = {"reason": "Văn bản đã được thực hiện"} if answer.startswith("refuse") else {}
    pair.answer(received_id, answer, data)
    with pair.receiver.uow(readonly=True) as uow:
        assert uow.escalations.active_of_received(received_id) == []
        closed = uow.escalations.get(opened.id)
    assert closed is not None and (closed.state, closed.outcome) == ("closed", "cause_gone")
    assert opened.cause == f"recall_unanswered:{request.id}"


def test_a_recalled_letter_is_no_longer_awaited_nor_warned_of(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, not registered (its registration is awaited), and
    # B's clerk agreeing to A's recall of it
    doc, received = delivered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    pair.answer(received.id, "agree_recall")
    assert document_row(pair.sender, doc).state == "recalled"

    # When the day it should have been registered by passes
    pair.sender.clock.advance(days=3)
    pair.sender.scheduler.tick()

    # Then no warning opens: a recalled letter is cancelled, not registered
    with pair.sender.uow(readonly=True) as uow:
        assert uow.escalations.active_of_document(doc) == []
        # And it is not listed as stuck
        assert doc not in [
            r.id for r in stalled(uow.conn, A, pair.sender.clock(), after=None, limit=50)
        ]


def _kinds(runtime: Runtime, *, document: str = "", received: str = "") -> list[str]:
    with runtime.uow(readonly=True) as uow:
        found = (
            uow.escalations.active_of_document(document)
            if document
            else uow.escalations.active_of_received(received)
        )
    return sorted(x.kind for x in found)


@pytest.mark.parametrize("answer", ["agree_recall", "refuse_recall"])
def test_a_letter_recalled_before_it_was_registered_awaits_the_recalls_answer_not_its_registration(
    pair: Pair, served: str, make_document: Callable[..., str], answer: str
) -> None:
    # Given A's letter delivered to B, not registered, and A's recall of it arrived at B
    doc, received = delivered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)

    # When the day it should have been registered by passes with the recall unanswered
    for side in (pair.sender, pair.receiver):
        side.clock.advance(days=3)
        side.scheduler.tick()

    # Then each side is told of the recall's answer only, not of a registration that the
    # recall asks not to make (one escalation each, not two about the same letter)
    assert _kinds(pair.sender, document=doc) == ["recall_unanswered"]
    assert _kinds(pair.receiver, received=received.id) == ["recall_unanswered"]
    # And explain does not say the registration is due meanwhile, only the recall's answer
    [recipient] = explain(pair, doc).recipients
    said = {f.code: f for f in recipient.findings}
    assert "answer_awaited" in said
    assert "due_by" not in said or said["due_by"].facts["step"] != "03", said["due_by"]

    # And once B answers: an agreement cancels the letter, and nothing more is awaited;
    # a refusal keeps it in force at B, where it waits unregistered past its time still
    data = {"reason": "Văn bản đã được thực hiện"} if answer.startswith("refuse") else {}
    pair.answer(received.id, answer, data)
    for side in (pair.sender, pair.receiver):
        side.clock.advance(days=3)
        side.scheduler.tick()
    if answer == "agree_recall":
        assert _kinds(pair.sender, document=doc) == []
        assert _kinds(pair.receiver, received=received.id) == []
    else:
        assert _kinds(pair.sender, document=doc) == ["not_acknowledged", "request_refused"]
        assert _kinds(pair.receiver, received=received.id) == ["not_acknowledged"]
        with pair.sender.uow(readonly=True) as uow:
            [late] = [
                x for x in uow.escalations.active_of_document(doc) if x.kind == "not_acknowledged"
            ]
        # broken since the day it was due, not since it was looked at again
        assert late.due_at < pair.sender.clock() - timedelta(days=3)


class TwiceAtOnce(httpx.BaseTransport):
    """Delivers a package for real, and hands B's inbox the same bytes again as a twin
    delivery would that looked for an earlier one before the first was kept (a proxy or
    a retry racing the first post): its answer is kept in ``twin``."""

    def __init__(self, pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = httpx.HTTPTransport()
        self.pair, self.monkeypatch = pair, monkeypatch
        self.twin: Any = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from congvan.storage.received import ReceivedRepository

        body = request.read()
        response = self.real.handle_request(request)
        with self.monkeypatch.context() as m:
            m.setattr(ReceivedRepository, "request_under", lambda *_a, **_k: None)
            self.twin = self.pair.receiver.inbox.accept(io.BytesIO(body))
        return response


@pytest.mark.parametrize("kind", ["recall", "update"])
def test_a_recall_or_update_delivered_twice_at_once_is_answered_its_first_receipt(
    pair: Pair,
    served: str,
    make_document: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    # Given A's letter registered at B, and A's recall (or update) of it posted to B's
    # inbox twice at once
    doc, received_id = registered(pair, make_document)
    data: dict[str, Any] = {"reason": "Gửi nhầm"}
    if kind == "update":
        data = {"reason": "Sửa trích yếu", "fields": {"subject": "Về việc khác"}}
    pair.sender.engine.fire(doc, kind, actor("supervisor"), data=data)
    twice = TwiceAtOnce(pair, monkeypatch)
    pair.deliver_through(lambda: twice)
    deliver(pair, doc)

    # Then the twin is answered with the first's receipt, not refused (which A would keep
    # as the request refused for good, while B holds it)
    assert twice.twin is not None and not twice.twin.stored
    with pair.sender.uow(readonly=True) as uow:
        [request] = uow.dispatches.for_requests(doc)
        kept = uow.dispatches.receipt(request.id)
    assert request.state == "delivered"
    assert kept is not None and kept[0] == twice.twin.receipt
    with pair.receiver.uow(readonly=True) as uow:
        assert len(uow.received.requests(received_id)) == 1


class AnswerOvertakes(httpx.BaseTransport):
    """Delivers the recall for real, then lets B's answer 15 reach A before A records the
    receipt (B's clerk was quicker than A's worker)."""

    def __init__(self, pair: Pair, doc: str) -> None:
        self.real = httpx.HTTPTransport()
        self.pair, self.doc = pair, doc

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from congvan.actions.exchange.status import make_status

        response = self.real.handle_request(request)
        receiver, sender = self.pair.receiver, self.pair.sender
        with receiver.uow(readonly=True) as uow:
            b_key = receiver.inbox.keys.require(uow, B, receiver.clock())
        with sender.uow(readonly=True) as uow:
            [recall] = uow.dispatches.for_requests(self.doc)
        assert recall.message_id is not None
        status = make_status(
            message_id=recall.message_id, document_id=self.doc, to=A, code="15",
            description="agreed", at=sender.clock(), agency=b_key,
        )  # fmt: skip
        assert sender.statuses.accept(status.body, status.cms).state == "agreed"
        return response


def test_an_answer_that_overtakes_the_recalls_receipt_leaves_it_agreed_and_recalled(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, and B's answer 15 reaching A mid-delivery
    doc, _received_id = registered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    pair.deliver_through(lambda: AnswerOvertakes(pair, doc))

    # When the recall's delivery records its outcome
    deliver(pair, doc)

    # Then the recall stays agreed with its receipt kept, and the document is recalled
    with pair.sender.uow(readonly=True) as uow:
        [recall] = uow.dispatches.for_requests(doc)
        assert uow.dispatches.receipt(recall.id) is not None
        [attempt] = uow.dispatches.attempts_of(recall.id)
    assert (recall.state, attempt.outcome) == ("agreed", "delivered")
    assert document_row(pair.sender, doc).state == "recalled"


def test_a_supervisor_recalls_from_the_escalation_of_a_refused_recall(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, and A's update of it refused by B (16): escalated
    doc, received_id = registered(pair, make_document)
    pair.sender.engine.fire(
        doc,
        "update",
        actor("supervisor"),
        data={"reason": "Sửa trích yếu", "fields": {"subject": "V/v sửa đổi"}},
    )
    deliver(pair, doc)
    pair.answer(received_id, "refuse_update", {"reason": "Không đồng ý"})
    with pair.sender.uow(readonly=True) as uow:
        [escalation] = uow.escalations.active_of_document(doc)
    assert escalation.kind == "request_refused"
    # (A's document says V/v sửa đổi now, and its dispatch to B that B's copy does not)
    sender_view = get(pair.sender, A, f"/v1/documents/{doc}")
    [request] = sender_view["requests"]
    [to_b] = sender_view["dispatches"]
    assert to_b["uncorrected"] == [
        {"request_id": request["id"], "answer": "refused", "reason": "Không đồng ý",
         "fields": ["subject"]}
    ]  # fmt: skip

    # When a supervisor acts from it: recall the document, with a reason
    acted = pair.sender.engine.fire_on(
        "escalation",
        escalation.id,
        "act",
        actor("supervisor", A),
        data={"action": "recall", "reason": "Thu hồi để ban hành văn bản thay thế"},
    )

    # Then the recall went out in the same transaction as the step, its delivery job named
    # in the step's answer, and B can agree to it
    assert acted.jobs and set(acted.jobs) <= set(pair.jobs(doc))
    deliver(pair, doc)
    pair.answer(received_id, "agree_recall")
    assert document_row(pair.sender, doc).state == "recalled"
    assert state_at_b(pair, received_id) == "recalled"


def test_a_recalled_letters_evidence_holds_the_recall_and_each_answer(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, recalled, B agreeing (15), the trail anchored
    doc, _ = recalled(pair, make_document)
    pair.sender.clock.advance(minutes=1)
    pair.sender.anchoring.anchor(pair.sender.uow, pair.sender.clock())

    # When its evidence is exported
    with pair.sender.uow(readonly=True) as uow:
        evidence = gather(uow, pair.sender.trust, doc)
        [request_id] = {d.request_id for d in uow.dispatches.for_requests(doc)}
        agency = pair.sender.anchoring.keys.require(uow, A, pair.sender.clock())
    sink = io.BytesIO()
    write_bundle(sink, evidence, pair.sender.clock(), agency)
    bundle = sink.getvalue()
    folder = f"requests/{request_id}/{B}/"

    # Then it holds the recall's package to B, B's receipt of it and its answer 15,
    # each verified against what the trail recorded of the recall
    parts = members(bundle)
    for name in ("package.json", "agency.p7s", "receipt.json", "status-15.json"):
        assert folder + name in parts
    roots = pair.sender.trust.roots()
    report = verify_bundle(io.BytesIO(bundle), roots)
    assert report.verified, [c for c in report.checks if not c.ok]
    assert {f"recall {B}", f"recall receipt {B}", f"recall status {B} 15"} <= {
        c.item for c in report.checks if c.ok
    }

    # And none of it can be dropped, nor a recall the trail does not record slipped in
    def judged(changed: dict[str, bytes]) -> set[tuple[str, str | None]]:
        verdict = verify_bundle(io.BytesIO(zipped(changed)), roots)
        return {(c.code, c.member) for c in verdict.checks if not c.ok}

    dropped_answer = _dropped(parts, folder + "status-15.")
    assert ("evidence_missing", folder + "status-15.json") in judged(dropped_answer)
    assert ("dispatch_missing", folder) in judged(_dropped(parts, folder))
    stranger = f"requests/{new_id()}/{B}/"
    moved = {n.replace(folder, stranger): d for n, d in _dropped(parts).items()}
    moved["index.json"] = _reindexed(moved)
    assert ("request_unrecorded", stranger) in judged(moved)


def _dropped(parts: dict[str, bytes], *prefixes: str) -> dict[str, bytes]:
    kept = {n: d for n, d in parts.items() if not (prefixes and n.startswith(prefixes))}
    return {**kept, "index.json": _reindexed(kept)}


def _reindexed(parts: dict[str, bytes]) -> bytes:
    """index.json listing ``parts`` as they are (its signature, index.p7s, then fails)."""
    index = json.loads(parts["index.json"])
    index["members"] = [
        {"name": n, "role": role_of(n), "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for n, d in parts.items()
        if n not in ("index.json", "index.p7s")
    ]
    return rfc8785.dumps(index)


@pytest.mark.parametrize(
    "fields",
    [
        {"due_date": "2021-W09-1"},  # a week date, which Python's own parser takes
        {"issued_on": "2021-W05-5"},
        {"due_date": "20210301"},
        {"due_date": "9999-12-31"},  # outside the years reckoned with
    ],
)
def test_an_update_is_held_to_dates_written_yyyy_mm_dd_whoever_fires_it(
    pair: Pair, served: str, make_document: Callable[..., str], fields: dict[str, str]
) -> None:
    # Given A's letter registered at B
    doc, _received_id = registered(pair, make_document)
    before = document_row(pair.sender, doc)

    # When its update is fired as the command line fires it (no API schema in between)
    with pytest.raises(InvalidInput) as refused:
        pair.sender.engine.fire(
            doc, "update", actor("supervisor"), data={"reason": "Sửa", "fields": fields}
        )

    # Then it is invalid input naming the field, and nothing was kept or sealed
    [name] = fields
    assert refused.value.details["field"] == f"fields.{name}"
    after = document_row(pair.sender, doc)
    assert (after.state, after.version, getattr(after, name)) == (
        before.state,
        before.version,
        getattr(before, name),
    )


def test_an_update_cannot_redate_a_document_past_the_due_date_it_keeps(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter (issued 2021-02-06, due 2021-02-07), registered at B
    doc, _received_id = registered(pair, make_document, due_date="2021-02-07")
    before = document_row(pair.sender, doc)

    # When an update moves only its date of issue after that due date
    with pytest.raises(InvalidInput) as refused:
        pair.sender.engine.fire(
            doc, "update", actor("supervisor"),
            data={"reason": "Sửa ngày", "fields": {"issued_on": "2021-02-08"}},
        )  # fmt: skip

    # Then it is refused, naming the date, and nothing is kept or sealed
    assert refused.value.details["field"] == "fields.issued_on"
    after = document_row(pair.sender, doc)
    assert (after.version, after.issued_on) == (before.version, before.issued_on)


def test_a_refusal_is_moot_once_the_document_is_replaced(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter refused by B (02), which escalated at A
    doc, received = delivered(pair, make_document)
    pair.answer(received.id, "refuse", {"reason": "Đề nghị gửi lại kèm phụ lục"})
    with pair.sender.uow(readonly=True) as uow:
        [refused] = uow.escalations.active_of_document(doc)
    assert refused.kind == "refused_by_recipient"

    # When A's supervisor replaces it and the replacement is sent
    draft = pair.sender.engine.create_replacement(actor("supervisor"), doc, "Bổ sung phụ lục")
    replacement = draft["id"]
    pair.sender.engine.fire(replacement, "edit", actor("clerk"), data={"fields": {"number": 98}})
    sign(pair, replacement)
    pair.sender.engine.fire(replacement, "send", actor("clerk"))

    # Then the refusal is closed as moot, saying why: the replacement is its cure
    with pair.sender.uow(readonly=True) as uow:
        assert uow.escalations.active_of_document(doc) == []
        closed = uow.escalations.get(refused.id)
        assert closed is not None
        assert (closed.state, closed.outcome) == ("closed", "cause_gone")
        [entry] = uow.audit.entries(refused.id, "close")
    assert entry.payload["reason"] == "replaced"


def test_a_refused_recall_is_moot_once_the_recipient_returns_the_document(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B (not registered), recalled, and the recall refused (16)
    doc, received = delivered(pair, make_document)
    received_id = received.id
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    pair.answer(received_id, "refuse_recall", {"reason": "Cần giữ"})
    with pair.sender.uow(readonly=True) as uow:
        assert ["request_refused"] == [x.kind for x in uow.escalations.active_of_document(doc)]

    # When B then returns the document itself (02)
    pair.answer(received_id, "refuse", {"reason": "Không đúng thẩm quyền"})

    # Then "the document stays in force there" is moot: only the refusal (02) is open
    with pair.sender.uow(readonly=True) as uow:
        assert ["refused_by_recipient"] == [x.kind for x in uow.escalations.active_of_document(doc)]


def _run_status_jobs(pair: Pair, jobs: list[str], *, up: bool) -> list[str]:
    """Run B's status jobs with A's status route up (served now) or down."""

    with serve_in_thread(create_app(pair.sender)) as base:
        with pair.receiver.uow() as uow:
            now = pair.receiver.clock()
            url = f"{base}/v1/inbox" if up else "http://127.0.0.1:9/v1/inbox"
            uow.peers.put(Peer(A, url, "http", 30, 4, now, now))
            uow.commit()
        return [pair.receiver.runner.run(job) for job in jobs]


def test_a_registration_reported_late_after_the_recipient_agreed_to_the_recall_is_kept(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter at B, recalled; B registers it while A's status route is down
    doc, received = delivered(pair, make_document)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    pair.receiver.engine.fire_on("received", received.id, "register", actor("clerk", B))
    [registered_job] = pair.status_jobs(received.id)
    assert ["failed"] == _run_status_jobs(pair, [registered_job], up=False)
    # and then agrees to the recall (15), which reaches A
    pair.receiver.clock.advance(minutes=1)
    pair.receiver.engine.fire_on("received", received.id, "agree_recall", actor("clerk", B))
    answer_jobs = [j for j in pair.status_jobs(received.id) if j != registered_job]
    assert ["done"] == _run_status_jobs(pair, answer_jobs, up=True)

    # When the registration (03), made before the agreement, arrives late
    pair.receiver.clock.advance(minutes=5)
    assert ["done"] == _run_status_jobs(pair, [registered_job], up=True)

    # Then A keeps it (B did register it), and B has nothing left to escalate
    with pair.sender.uow(readonly=True) as uow:
        [dispatch] = uow.dispatches.for_document(doc)
        assert "03" in uow.dispatches.status_codes(dispatch.id)
    with pair.receiver.uow(readonly=True) as uow:
        kinds = uow.conn.execute(text("SELECT kind FROM escalations")).scalars().all()
    assert "status_not_sent" not in kinds


def test_a_refusal_dated_before_the_recipient_agreed_to_the_recall_is_refused(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    from congvan.actions.exchange.status import make_status

    # Given A's letter delivered to B (not registered), recalled with B's agreement (15)
    doc, received = delivered(pair, make_document)
    before_agreeing = pair.receiver.clock()
    pair.receiver.clock.advance(minutes=5)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    pair.answer(received.id, "agree_recall")
    assert document_row(pair.sender, doc).state == "recalled"
    with pair.sender.uow(readonly=True) as uow:
        entries = len(uow.audit.chain(doc))
        escalations = uow.escalations.active_of_document(doc)
    with pair.receiver.uow(readonly=True) as uow:
        b_key = pair.receiver.inbox.keys.require(uow, B, pair.receiver.clock())

    # When B's agency signs a refusal (02) dated before it agreed
    sent = pair.dispatch(doc)[0]
    assert sent.message_id is not None
    refusal = make_status(
        message_id=sent.message_id, document_id=doc, to=A, code="02", description="refused",
        reason="Không đúng thẩm quyền", at=before_agreeing, agency=b_key,
    )  # fmt: skip
    with pytest.raises(StatusContradicted) as refused:
        pair.sender.statuses.accept(refusal.body, refusal.cms)

    # Then it is refused: a recipient agrees to recall only a document it holds in force
    assert refused.value.details == {"reason": "status_code", "found": "02", "earlier": "15"}
    assert pair.dispatch(doc)[0].state == "delivered"
    assert document_row(pair.sender, doc).state == "recalled"
    with pair.sender.uow(readonly=True) as uow:
        assert len(uow.audit.chain(doc)) == entries
        assert uow.escalations.active_of_document(doc) == escalations


def test_no_answer_is_taken_to_a_recall_the_recipients_inbox_refused(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    from congvan.actions.exchange.status import make_status

    # Given A's letter refused at B, and its recall refused by B's inbox
    doc, received = delivered(pair, make_document)
    pair.receiver.engine.fire_on(
        "received", received.id, "refuse", actor("clerk", B), data={"reason": "Sai thẩm quyền"}
    )
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    with pair.sender.uow(readonly=True) as uow:
        [request] = uow.dispatches.for_requests(doc)
    assert request.state == "rejected" and request.message_id is not None
    with pair.receiver.uow(readonly=True) as uow:
        b_key = pair.receiver.inbox.keys.require(uow, B, pair.receiver.clock())

    # When B's agency signs an answer (15, or 16) to that recall all the same
    for code in ("15", "16"):
        answer = make_status(
            message_id=request.message_id, document_id=doc, to=A, code=code,
            description="answer", reason="Không" if code == "16" else None,
            at=pair.receiver.clock(), agency=b_key,
        )  # fmt: skip
        with pytest.raises(StatusContradicted) as refused:
            pair.sender.statuses.accept(answer.body, answer.cms)
        # Then it is refused, nothing kept: the recall stays refused, the letter in force
        assert refused.value.details["reason"] == "refused_at_inbox"
    with pair.sender.uow(readonly=True) as uow:
        [request] = uow.dispatches.for_requests(doc)
        assert request.state == "rejected"
        assert uow.dispatches.status_codes(request.id) == []
    assert document_row(pair.sender, doc).state != "recalled"


def test_a_received_document_says_what_it_waits_for_and_until_when(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, not registered yet
    doc, received = delivered(pair, make_document)
    path = f"/v1/received/{received.id}"
    # Then B's view says it waits for a clerk to register (or return) it, by the rule's
    # deadline, not overdue yet
    [step] = get(pair.receiver, B, path)["waiting_for"]
    assert (step["step"], sorted(step["events"]), step["roles"]) == (
        "register",
        ["refuse", "register"],
        ["clerk"],
    )
    due = datetime.fromisoformat(step["due_at"])
    assert due > pair.receiver.clock() and step["overdue"] is False
    # When the deadline passes and the rule's escalation opens (its timer is gone)
    pair.receiver.clock.advance(seconds=(due - pair.receiver.clock()).total_seconds() + 600)
    pair.receiver.scheduler.tick()
    # Then the same deadline is told, overdue
    [late] = get(pair.receiver, B, path)["waiting_for"]
    assert (late["step"], datetime.fromisoformat(late["due_at"]), late["overdue"]) == (
        "register",
        due,
        True,
    )
    # And while a recall of A's awaits its answer too, the registration is taken by
    # registering alone (no refusal is offered then), as the view offers
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    deliver(pair, doc)
    view = get(pair.receiver, B, path)
    register, answer = view["waiting_for"]
    assert (register["step"], register["events"], answer["step"]) == (
        "register",
        ["register"],
        "answer_recall",
    )
    assert set(register["events"] + answer["events"]) <= set(view["allowed_events"])
    # And once registered, only the recall's answer is awaited
    pair.answer(received.id, "register")
    [answer] = get(pair.receiver, B, path)["waiting_for"]
    [request] = get(pair.receiver, B, path)["requests"]
    assert (answer["step"], answer["events"], answer["request_id"]) == (
        "answer_recall",
        ["agree_recall", "refuse_recall"],
        request["id"],
    )
    assert answer["due_at"] is not None and answer["overdue"] is False
    pair.answer(received.id, "agree_recall")
    assert get(pair.receiver, B, path)["waiting_for"] == []
