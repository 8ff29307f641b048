"""A recall or an update reaches every recipient that has the document, so it waits until
none is still on its way; a resend never carries what a request changed or takes back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from congvan.states.errors import Conflict, GuardFailed, InvalidInput, TransitionNotAllowed
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.views import document_view
from tests.databases import Databases
from tests.factories import actor, document_row
from tests.installations import PASS, SENDER_FAKES, B, Pair, link, serving_inbox
from tests.integration.test_delivery import LosesTheAnswer
from tests.integration.test_recall import _run_status_jobs, sign

C = "000.00.02.H57"  # a second recipient, served by B's installation
DOWN = "http://127.0.0.1:9/v1/inbox"  # nothing listens there
UPDATE = {"reason": "Sửa trích yếu", "fields": {"subject": "V/v đã sửa"}}
REQUESTS = {"recall": {"reason": "Gửi nhầm"}, "update": UPDATE}


@pytest.fixture
def two(
    make_runtime: Callable[..., Runtime], boot: Any, databases: Databases, db_kind: str
) -> Iterator[Pair]:
    """A's letters to B (its inbox served) and C (its inbox down), three attempts each."""
    sender = make_runtime(**SENDER_FAKES, key_passphrase=PASS, dispatch_max_attempts=3)
    receiver = boot(databases.new(db_kind).url, key_passphrase=PASS)
    pair = link(sender, receiver, agencies=((B, "Sở Nội vụ", "SNV"), (C, "Sở Y tế", "SYT")))
    sender.clock.advance(minutes=5)
    with serving_inbox(pair) as inbox:
        pair.point_at(B, inbox)
        pair.point_at(C, DOWN)
        yield pair


def signed_replacement(pair: Pair, doc: str) -> str:
    """A replacement of ``doc`` drafted, numbered and signed at A: its id."""
    engine = pair.sender.engine
    replacement = str(engine.create_replacement(actor("supervisor"), doc, "Sai nội dung")["id"])
    engine.fire(replacement, "edit", actor("clerk"), data={"fields": {"number": 99}})
    sign(pair, replacement)
    return replacement


def states(pair: Pair, doc: str) -> dict[str, str]:
    with pair.sender.uow(readonly=True) as uow:
        return {r.organ_id: r.state for r in uow.dispatches.for_document(doc)}


def run_due(pair: Pair, doc: str) -> None:
    """Every delivery job of ``doc`` due now, run once."""
    for job in pair.jobs(doc):
        pair.sender.runner.run(job)


def sent_and_c_down(pair: Pair, make_document: Callable[..., str]) -> str:
    doc = pair.signed(make_document, to=(B, C))
    pair.sender.engine.fire(doc, "send", actor("clerk"))
    run_due(pair, doc)
    assert states(pair, doc) == {B: "delivered", C: "pending"}
    return doc


def c_fails_for_good(pair: Pair, doc: str) -> None:
    while states(pair, doc)[C] != "failed":
        pair.sender.clock.advance(hours=1)
        pair.sender.scheduler.tick()
        run_due(pair, doc)


def open_escalations(pair: Pair, doc: str) -> list[tuple[str, str | None]]:
    with pair.sender.uow(readonly=True) as uow:
        return sorted((e.kind, e.organ_id) for e in uow.escalations.active_of_document(doc))


@pytest.mark.parametrize("event", ["recall", "update"])
def test_a_request_waits_while_a_dispatch_is_on_its_way(
    two: Pair, make_document: Callable[..., str], event: str
) -> None:
    # Given A's letter delivered to B, and waiting for its next attempt to C
    doc = sent_and_c_down(two, make_document)

    # When a supervisor recalls or updates it
    with pytest.raises(GuardFailed) as refused:
        two.sender.engine.fire(doc, event, actor("supervisor"), data=REQUESTS[event])

    # Then it is refused, naming C, and nothing is asked of B
    assert C in refused.value.details["reasons"]["nothing_under_way"]
    with two.sender.uow(readonly=True) as uow:
        assert uow.dispatches.for_requests(doc) == []
    assert document_row(two.sender, doc).subject != UPDATE["fields"]["subject"]
    # and its view never offered it; once C failed for good, it does
    assert event not in offered(two, doc)
    c_fails_for_good(two, doc)
    assert event in offered(two, doc)


def test_once_c_failed_for_good_the_recall_goes_to_b_and_ends_the_document(
    two: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, and failed for good at C
    doc = sent_and_c_down(two, make_document)
    c_fails_for_good(two, doc)
    assert document_row(two.sender, doc).state == "failed"

    # When a supervisor recalls it and B agrees
    two.sender.engine.fire(doc, "recall", actor("supervisor"), data=REQUESTS["recall"])
    with two.sender.uow(readonly=True) as uow:
        assert [r.organ_id for r in uow.dispatches.for_requests(doc)] == [B]
    # Meanwhile the recipients that failed are not sent it again
    with pytest.raises(GuardFailed) as refused:
        two.sender.engine.fire(
            doc, "resend", actor("supervisor"), data={"reason": "C đã hoạt động lại"}
        )
    assert list(refused.value.details["reasons"]) == ["no_request_awaiting"]
    run_due(two, doc)
    [received] = two.received()
    two.answer(received.id, "agree_recall")

    # Then the document is recalled; C never gets it, and nothing asks to resend it there
    assert document_row(two.sender, doc).state == "recalled"
    assert states(two, doc) == {B: "delivered", C: "failed"}
    assert open_escalations(two, doc) == []


@pytest.mark.parametrize("request_kind", ["recall", "update", "replacement"])
def test_a_request_waits_for_a_recipient_the_document_may_have_reached_unknown(
    two: Pair, make_document: Callable[..., str], request_kind: str
) -> None:
    # Given A's letter delivered to B, and failed for good at C with every answer lost
    # though C's inbox stored it: C may hold it in force, and nothing says so yet
    doc = sent_and_c_down(two, make_document)
    with serving_inbox(two) as inbox:
        two.point_at(C, inbox)
        two.deliver_through(LosesTheAnswer)
        c_fails_for_good(two, doc)
        two.deliver_through(lambda: None)
        with two.sender.uow(readonly=True) as uow:
            [c] = [r for r in uow.dispatches.for_document(doc) if r.organ_id == C]
            assert "unknown" in {a.outcome for a in uow.dispatches.attempts_of(c.id)}

        # When a supervisor recalls it, updates it or sends its replacement
        def request() -> None:
            if request_kind == "replacement":
                replacement = signed_replacement(two, doc)
                two.sender.engine.fire(replacement, "send", actor("clerk"))
            else:
                data = REQUESTS[request_kind]
                two.sender.engine.fire(doc, request_kind, actor("supervisor"), data=data)

        with pytest.raises(GuardFailed) as refused:
            request()

        # Then it waits, saying why: C would never be asked, or would hold both letters
        [(guard, why)] = refused.value.details["reasons"].items()
        assert guard in ("nothing_under_way", "original_settled")
        assert f"may have reached {C}" in why and "resend it first" in why
        assert states(two, doc) == {B: "delivered", C: "failed"}

        # And once resent, C's receipt settles it, and the request goes to both
        two.sender.engine.fire(doc, "resend", actor("supervisor"), data={"reason": "Xác minh"})
        run_due(two, doc)
        assert states(two, doc) == {B: "delivered", C: "delivered"}
        with two.receiver.uow(readonly=True) as uow:
            assert len(uow.received.page(C).items) == 1  # C stored it once
        request()


def offered(pair: Pair, doc: str) -> list[str]:
    """The events A's view of ``doc`` offers."""
    with pair.sender.uow(readonly=True) as uow:
        return list(document_view(uow, uow.documents.load(doc))["allowed_events"])


def test_a_resend_after_an_update_would_carry_the_old_values_and_is_refused(
    two: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, failed for good at C, then updated (B agrees)
    doc = sent_and_c_down(two, make_document)
    c_fails_for_good(two, doc)
    assert "resend" in offered(two, doc)
    two.sender.engine.fire(doc, "update", actor("supervisor"), data=UPDATE)
    run_due(two, doc)
    [received] = two.received()
    two.answer(received.id, "agree_update")
    assert "resend" not in offered(two, doc)  # its view knows the guard would refuse

    # When a supervisor resends it to C
    with pytest.raises(GuardFailed) as refused:
        two.sender.engine.fire(
            doc, "resend", actor("supervisor"), data={"reason": "C đã hoạt động lại"}
        )

    # Then it is refused: C would get the subject the update corrected
    assert list(refused.value.details["reasons"]) == ["never_updated"]
    assert "replacement" in refused.value.details["reasons"]["never_updated"]
    assert states(two, doc)[C] == "failed"


def test_an_update_keeps_the_date_of_issue_in_its_year_and_not_after_the_signing(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter of 06/02/2021, signed and delivered to B
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "done"
    assert states(pair, doc) == {B: "delivered"}

    def update(issued_on: str) -> None:
        data = {"reason": "Sai ngày", "fields": {"issued_on": issued_on}}
        pair.sender.engine.fire(doc, "update", actor("supervisor"), data=data)

    # When a supervisor moves it to another year, or after the day it was signed
    for wrong in ("2020-12-31", "2022-01-03", "2099-01-01"):
        with pytest.raises(InvalidInput) as refused:
            update(wrong)
        # Then it is refused, naming the field, and the date stays
        assert refused.value.details["field"] == "fields.issued_on"
        assert document_row(pair.sender, doc).issued_on == "2021-02-06"

    # But a day earlier in the same year is a correction it may make
    update("2021-02-05")
    assert document_row(pair.sender, doc).issued_on == "2021-02-05"


def test_a_replacement_waits_while_its_original_is_on_its_way_and_not_once_it_is_gone(
    two: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B and waiting for its next attempt to C, and its
    # replacement drafted, numbered and signed
    doc = sent_and_c_down(two, make_document)
    engine = two.sender.engine
    replacement = signed_replacement(two, doc)

    # When it is sent while the original is still on its way to C
    with pytest.raises(GuardFailed) as refused:
        engine.fire(replacement, "send", actor("clerk"))

    # Then it is refused, naming C, and the original stands
    assert C in refused.value.details["reasons"]["original_settled"]
    assert document_row(two.sender, doc).state == "sent"

    # When the original is recalled once C failed for good, and B agrees
    c_fails_for_good(two, doc)
    engine.fire(doc, "recall", actor("supervisor"), data=REQUESTS["recall"])
    run_due(two, doc)
    [received] = two.received()
    two.answer(received.id, "agree_recall")
    assert document_row(two.sender, doc).state == "recalled"

    # Then the replacement of a recalled document is not sent either: nothing to replace
    with pytest.raises(GuardFailed) as gone:
        engine.fire(replacement, "send", actor("clerk"))
    assert "recalled" in gone.value.details["reasons"]["original_settled"]
    assert "send" not in document_view_of(two, replacement)["allowed_events"]


def test_a_replacement_goes_to_every_recipient_holding_its_original(
    two: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, failed for good to C (down), and its replacement
    doc = sent_and_c_down(two, make_document)
    c_fails_for_good(two, doc)
    engine = two.sender.engine
    replacement = str(engine.create_replacement(actor("supervisor"), doc, "Sai nội dung")["id"])

    # When a clerk edits its recipients to leave out B, which holds the original
    to_c = {"fields": {"number": 99}, "recipients": [{"organ_id": C, "name": "Sở Y tế"}]}
    with pytest.raises(InvalidInput) as refused:
        engine.fire(replacement, "edit", actor("clerk"), data=to_c)

    # Then it is refused, naming B, and nothing of the edit was kept
    assert refused.value.details["left_out"] == [B]
    assert {r["organ_id"] for r in document_view_of(two, replacement)["recipients"]} == {B, C}

    # When C, which never got the original, is left out instead, and the replacement signed
    to_b = {"fields": {"number": 99}, "recipients": [{"organ_id": B, "name": "Sở Nội vụ"}]}
    engine.fire(replacement, "edit", actor("clerk"), data=to_b)
    sign(two, replacement)
    # and the original then reaches C after all (a supervisor resends it once C is back)
    with serving_inbox(two) as inbox:
        two.point_at(C, inbox)
        engine.fire(doc, "resend", actor("supervisor"), data={"reason": "C is back"})
        run_due(two, doc)
    assert states(two, doc)[C] == "delivered"

    # Then the replacement is not sent: C holds the original, which would stand there
    with pytest.raises(GuardFailed) as held:
        engine.fire(replacement, "send", actor("clerk"))
    assert C in held.value.details["reasons"]["original_settled"]
    assert document_row(two.sender, doc).state in ("sent", "delivered")


def document_view_of(pair: Pair, doc: str) -> dict[str, Any]:
    with pair.sender.uow(readonly=True) as uow:
        return document_view(uow, uow.documents.load(doc))


def _delivered_to_b_and_c(pair: Pair, make_document: Callable[..., str]) -> tuple[str, str, str]:
    """A's letter delivered to B and C, C's inbox served too: the document, and B's and
    C's received documents."""
    with pair.sender.uow(readonly=True) as uow:
        pair.point_at(C, uow.peers.get(B).inbox_url)  # type: ignore[union-attr]
    doc = pair.signed(make_document, to=(B, C))
    pair.sender.engine.fire(doc, "send", actor("clerk"))
    run_due(pair, doc)
    delivered = states(pair, doc)
    with pair.sender.uow(readonly=True) as uow:
        attempts = [
            (r.organ_id, a.outcome, a.http_status, a.error)
            for r in uow.dispatches.for_document(doc)
            for a in uow.dispatches.attempts_of(r.id)
        ]
    assert delivered == {B: "delivered", C: "delivered"}, attempts
    return doc, _received_by(pair, B), _received_by(pair, C)


def _received_by(pair: Pair, organ: str) -> str:
    with pair.receiver.uow(readonly=True) as uow:
        [received] = uow.received.page(organ).items
    return str(received.id)


def _recalled_at_b(pair: Pair, make_document: Callable[..., str]) -> tuple[str, str]:
    """A's letter delivered to B and A's recall of it delivered, awaiting B's answer: the
    document and B's received document."""
    doc = pair.signed(make_document, to=(B,))
    pair.sender.engine.fire(doc, "send", actor("clerk"))
    run_due(pair, doc)
    pair.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    run_due(pair, doc)
    return doc, _received_by(pair, B)


def test_a_second_recall_asks_only_those_still_holding_the_document(
    two: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B and C (C's inbox served too), recalled: B agreed
    # (its copy cancelled), C refused
    doc, of_b, of_c = _delivered_to_b_and_c(two, make_document)
    two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    run_due(two, doc)
    two.answer(of_b, "agree_recall", agency=B)
    two.answer(of_c, "refuse_recall", {"reason": "Đã xử lý"}, agency=C)

    # When A recalls it again and C agrees this time
    two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Lần hai"})
    run_due(two, doc)
    two.answer(of_c, "agree_recall", agency=C)

    # Then the second recall went to C alone (B has the document no more), and every
    # recipient holding it having agreed, the letter is recalled
    with two.sender.uow(readonly=True) as uow:
        asked = sorted((r.organ_id, r.state) for r in uow.dispatches.for_requests(doc))
    assert asked == [(B, "agreed"), (C, "agreed"), (C, "declined")]
    assert document_row(two.sender, doc).state == "recalled"


@pytest.mark.parametrize("delivered", [True, False], ids=["awaiting", "on_its_way"])
def test_a_replacement_waits_for_the_answers_to_a_recall_of_its_original(
    two: Pair, make_document: Callable[..., str], delivered: bool
) -> None:
    # Given A's letter delivered to B, then a recall of it delivered (awaiting B's answer)
    # or still on its way
    doc = two.signed(make_document, to=(B,))
    two.sender.engine.fire(doc, "send", actor("clerk"))
    run_due(two, doc)
    two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    if delivered:
        run_due(two, doc)

    # When a replacement of it is signed and sent
    engine = two.sender.engine
    replacement = signed_replacement(two, doc)
    with pytest.raises(GuardFailed) as refused:
        engine.fire(replacement, "send", actor("clerk"))

    # Then it waits: the recall must be answered first (replaced, it never could be), and
    # its view does not offer it
    assert "awaits its answers" in refused.value.details["reasons"]["original_settled"]
    assert document_row(two.sender, replacement).state == "signed"
    assert document_view_of(two, replacement)["allowed_events"] == ["reject"]
    assert document_row(two.sender, doc).state not in ("replaced", "recalled")


def test_a_recipient_answers_a_recall_before_it_may_refuse_the_document(
    two: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, and A's recall of it awaiting B's answer
    doc, of_b = _recalled_at_b(two, make_document)

    # When B's clerk refuses the document itself: refused, the recall could never be
    # answered (at B nor at A)
    with pytest.raises(GuardFailed):
        two.receiver.engine.fire_on(
            "received", of_b, "refuse", actor("clerk", B), data={"reason": "Sai thẩm quyền"}
        )

    # Once B answered the recall (16), the document may be refused
    two.answer(of_b, "refuse_recall", {"reason": "Không đồng ý"}, agency=B)
    two.answer(of_b, "refuse", {"reason": "Sai thẩm quyền"}, agency=B)
    assert document_row(two.sender, doc).state == "failed"


def _both_delivered(two: Pair, make_document: Callable[..., str]) -> tuple[str, str, str]:
    """A's letter delivered to B and C (C's inbox served too): the document, B's and C's
    received documents."""
    with two.sender.uow(readonly=True) as uow:
        two.point_at(C, uow.peers.get(B).inbox_url)  # type: ignore[union-attr]
    doc = two.signed(make_document, to=(B, C))
    two.sender.engine.fire(doc, "send", actor("clerk"))
    run_due(two, doc)
    return doc, _received_by(two, B), _received_by(two, C)


def test_a_recipient_that_agreed_to_a_recall_is_awaited_and_warned_of_no_more(
    two: Pair, make_document: Callable[..., str]
) -> None:
    from congvan.actions.calendar import VIETNAM_CALENDAR
    from congvan.workflow.explaining import explain_row, explanation_view

    # Given A's letter at B and C, recalled: B agreed (its copy cancelled), C refused
    # and registered it
    doc, of_b, of_c = _both_delivered(two, make_document)
    two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    run_due(two, doc)
    two.answer(of_b, "agree_recall", agency=B)
    two.answer(of_c, "refuse_recall", {"reason": "Đã xử lý"}, agency=C)
    two.answer(of_c, "register", agency=C)

    # When days pass
    two.sender.clock.advance(days=3)  # type: ignore[attr-defined]
    two.sender.scheduler.tick()

    # Then nothing warns that B has not registered it (it never will), and A's
    # explanation awaits nothing of B
    kinds = [(k, o) for k, o in open_escalations(two, doc) if o == B]
    assert ("not_acknowledged", B) not in kinds
    with two.sender.uow(readonly=True) as uow:
        row = uow.documents.load(doc)
        view = explanation_view(
            row, explain_row(uow, row, two.sender.clock(), VIETNAM_CALENDAR), two.sender.clock()
        )
    assert B not in json.dumps(view["headline"]), view["headline"]
    [of_b_view] = [r for r in view["recipients"] if r["organ_id"] == B]
    assert not [f for f in of_b_view["findings"] if f["code"] == "awaiting_acknowledgement"]


def test_a_refused_recall_warns_no_more_once_a_later_one_recalled_the_document(
    two: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter at B, recalled once and refused (16: an escalation opens)
    doc, of_b = _recalled_at_b(two, make_document)
    two.answer(of_b, "refuse_recall", {"reason": "Đã xử lý"}, agency=B)
    assert ("request_refused", B) in open_escalations(two, doc)

    # When it is recalled again and B agrees
    two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Lần hai"})
    run_due(two, doc)
    two.answer(of_b, "agree_recall", agency=B)

    # Then the letter is recalled and nothing of it is still open
    assert document_row(two.sender, doc).state == "recalled"
    assert open_escalations(two, doc) == []


@pytest.mark.parametrize("first", ["refused", "failed"])
def test_a_later_recall_takes_over_what_the_earlier_one_warned_of(
    two: Pair, make_document: Callable[..., str], first: str
) -> None:
    # Given A's letter at B, and a recall of it that B refused (16), or that never reached
    # B (its inbox down past every retry): an escalation opened for it
    doc = two.signed(make_document, to=(B,))
    two.sender.engine.fire(doc, "send", actor("clerk"))
    run_due(two, doc)
    with two.sender.uow(readonly=True) as uow:
        inbox = uow.peers.get(B).inbox_url  # type: ignore[union-attr]
    if first == "failed":
        two.point_at(B, "http://127.0.0.1:9/v1/inbox")  # nothing listens there
    two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    run_due(two, doc)
    if first == "refused":
        two.answer(_received_by(two, B), "refuse_recall", {"reason": "Đã xử lý"}, agency=B)
    else:
        while "failed" not in {r.state for r in _requests(two, doc)}:
            two.sender.clock.advance(hours=1)
            two.sender.scheduler.tick()
            run_due(two, doc)
        two.point_at(B, inbox)
    warned = "request_refused" if first == "refused" else "delivery_failed"
    assert open_escalations(two, doc) == [(warned, B)]

    # When A recalls it again, and the recall reaches B
    two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Lần hai"})
    run_due(two, doc)

    # Then the first recall's warning is closed (the second one's answer is awaited, and
    # watched on its own): not two warnings for one recipient
    assert open_escalations(two, doc) == []
    with two.sender.uow(readonly=True) as uow:
        [closed] = [x for x in uow.escalations.of_document(doc) if x.kind == warned]
        assert closed.state == "closed"
        assert uow.timers.for_document(doc)  # the answer to the second recall is watched
    # and when B agrees the letter is recalled, nothing left open
    two.answer(_received_by(two, B), "agree_recall", agency=B)
    assert document_row(two.sender, doc).state == "recalled"
    assert open_escalations(two, doc) == []


def _requests(pair: Pair, doc: str) -> list[Any]:
    with pair.sender.uow(readonly=True) as uow:
        return list(uow.dispatches.for_requests(doc))


@pytest.mark.parametrize("registered_first", [True, False], ids=["then_agreed", "then_registered"])
def test_a_partly_recalled_document_is_acknowledged_once_those_holding_it_registered(
    two: Pair, make_document: Callable[..., str], registered_first: bool
) -> None:
    # Given A's letter at B and C, and a recall of it: B agrees (its copy cancelled, it
    # will never register it), C refuses the recall and registers the letter
    doc, of_b, of_c = _both_delivered(two, make_document)
    two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
    run_due(two, doc)
    two.answer(of_c, "refuse_recall", {"reason": "Đã xử lý"}, agency=C)
    if registered_first:
        two.answer(of_c, "register", agency=C)
        assert document_row(two.sender, doc).state == "delivered"  # B has not answered
        two.answer(of_b, "agree_recall", agency=B)
    else:
        two.answer(of_b, "agree_recall", agency=B)
        assert document_row(two.sender, doc).state == "delivered"  # C has not registered
        two.answer(of_c, "register", agency=C)

    # Then every recipient still holding it registered it: A's letter is acknowledged
    # (not recalled: C keeps it), by one derived transition in its audit chain
    assert document_row(two.sender, doc).state == "acknowledged"
    assert states(two, doc) == {B: "delivered", C: "acknowledged"}
    with two.sender.uow(readonly=True) as uow:
        assert len(uow.audit.entries(doc, "acknowledged")) == 1


def test_a_replacement_sent_while_a_recall_of_its_original_commits_waits_for_it(
    two: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, and a replacement of it signed
    doc = two.signed(make_document, to=(B,))
    engine = two.sender.engine
    engine.fire(doc, "send", actor("clerk"))
    run_due(two, doc)
    replacement = signed_replacement(two, doc)

    # When a recall of the letter has written everything and is about to commit, and the
    # replacement is sent meanwhile (it reads the letter then, before the recall is in)
    recalling, release = threading.Event(), threading.Event()

    def pause_the_recall(step: str) -> None:
        if step == "outboxed" and threading.current_thread().name == "recall":
            recalling.set()
            release.wait(timeout=30)

    engine.fault = pause_the_recall
    outcomes: dict[str, str] = {}

    def fire(name: str, subject: str, event: str, by: str, data: dict[str, Any]) -> None:
        try:
            outcomes[name] = engine.fire(subject, event, actor(by), data=data).to_state
        except GuardFailed as refused:
            outcomes[name] = ",".join(refused.details["failed"])

    recall = threading.Thread(
        target=fire, args=("recall", doc, "recall", "supervisor", REQUESTS["recall"]), name="recall"
    )
    recall.start()
    assert recalling.wait(timeout=30)
    send = threading.Thread(target=fire, args=("send", replacement, "send", "clerk", {}))
    send.start()
    time.sleep(0.5)  # the send reaches what it waits for (an interval, not a deadline)
    release.set()
    recall.join(timeout=60)
    send.join(timeout=60)
    engine.fault = lambda _step: None

    # Then one of the two won, the recall that committed first: the replacement waits for
    # its answers, and the letter is not replaced under a recall awaiting them
    assert outcomes == {"recall": "delivered", "send": "original_settled"}
    assert document_row(two.sender, doc).state == "delivered"
    assert document_row(two.sender, replacement).state == "signed"


def _peer_url(pair: Pair, organ_id: str) -> str:
    with pair.sender.uow(readonly=True) as uow:
        peer = uow.peers.get(organ_id)
    assert peer is not None
    return peer.inbox_url


def _c_request_fails_for_good(pair: Pair, doc: str) -> None:
    while _request_states(pair, doc)[C] != "failed":
        pair.sender.clock.advance(hours=1)
        pair.sender.scheduler.tick()
        run_due(pair, doc)


def _request_states(pair: Pair, doc: str) -> dict[str, str]:
    with pair.sender.uow(readonly=True) as uow:
        return {r.organ_id: r.state for r in uow.dispatches.for_requests(doc)}


@pytest.mark.parametrize("missed", ["failed", "declined"])
def test_an_update_is_refused_while_a_holder_lacks_an_earlier_ones_corrections(
    two: Pair, make_document: Callable[..., str], missed: str
) -> None:
    # Given A's letter delivered to B and C
    two.point_at(C, _peer_url(two, B))
    doc = two.signed(make_document, to=(B, C))
    two.sender.engine.fire(doc, "send", actor("clerk"))
    run_due(two, doc)
    assert states(two, doc) == {B: "delivered", C: "delivered"}
    # and an update of its subject that C's copy did not take: it never reached C (its
    # inbox down past the last attempt), or C refused it (16); B agreed
    if missed == "failed":
        two.point_at(C, DOWN)
    two.sender.engine.fire(doc, "update", actor("supervisor"), data=UPDATE)
    run_due(two, doc)
    if missed == "failed":
        _c_request_fails_for_good(two, doc)
    [at_b] = two.received()
    two.answer(at_b.id, "agree_update")
    if missed == "declined":
        with two.receiver.uow(readonly=True) as uow:
            [at_c] = uow.received.page(C).items
        two.answer(at_c.id, "refuse_update", {"reason": "Không đồng ý"}, agency=C)
    assert _request_states(two, doc) == {B: "agreed", C: missed}
    assert "update" not in offered(two, doc)  # its view knows the guard would refuse

    # When a supervisor corrects another field
    second = {"reason": "Sửa địa danh", "fields": {"place": "Huế"}}
    with pytest.raises(GuardFailed) as refused:
        two.sender.engine.fire(doc, "update", actor("supervisor"), data=second)

    # Then it is refused, naming C: its copy would take the place and keep the old subject
    reasons = refused.value.details["reasons"]
    assert list(reasons) == ["corrections_reached"]
    assert C in reasons["corrections_reached"] and B not in reasons["corrections_reached"]
    # while a recall, which takes the whole document back, may go
    assert "recall" in offered(two, doc)


def test_an_update_that_failed_is_not_resent_once_a_recall_followed_it(
    two: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B and C, an update that never reached C (its inbox
    # down past the last attempt), then a recall of the letter
    two.point_at(C, _peer_url(two, B))
    doc = two.signed(make_document, to=(B, C))
    two.sender.engine.fire(doc, "send", actor("clerk"))
    run_due(two, doc)
    two.point_at(C, DOWN)
    two.sender.engine.fire(doc, "update", actor("supervisor"), data=UPDATE)
    run_due(two, doc)
    _c_request_fails_for_good(two, doc)
    [at_b] = two.received()
    two.answer(at_b.id, "agree_update")
    with two.sender.uow(readonly=True) as uow:
        [failed] = [
            e
            for e in uow.escalations.active_of_document(doc)
            if e.kind == "delivery_failed" and e.detail.get("request_id")
        ]
    two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})

    # When a supervisor resends the update from its escalation
    with pytest.raises(Conflict) as refused:
        two.sender.engine.fire_on(
            "escalation", failed.id, "act", actor("supervisor"),
            data={"action": "resend", "reason": "C đã hoạt động lại"},
        )  # fmt: skip

    # Then it is refused as the document's state forbids it (409), naming the later request
    assert (refused.value.http_status, refused.value.code) == (409, "conflict")
    assert refused.value.details["request_id"] > failed.detail["request_id"]


@pytest.mark.parametrize("how", ["returned as the recall crossed it", "declined, then returned"])
def test_a_recall_ends_the_document_once_its_holders_agreed_or_returned_it(
    two: Pair, make_document: Callable[..., str], how: str
) -> None:
    # Given A's letter delivered to B and C (C's inbox served too)
    doc, of_b, of_c = _delivered_to_b_and_c(two, make_document)
    refusal = {"reason": "Không đúng thẩm quyền"}
    if how == "returned as the recall crossed it":
        # C returns it (02), its status held back while A recalls it from B and C: C's
        # inbox turns the recall away (nothing of it in force there), B agrees
        two.receiver.engine.fire_on("received", of_c, "refuse", actor("clerk", C), data=refusal)
        held = two.status_jobs(of_c)
        two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
        run_due(two, doc)
        two.answer(of_b, "agree_recall", agency=B)
        # When C's 02 reaches A at last
        assert ["done"] == _run_status_jobs(two, held, up=True)
    else:
        # B agrees, C declines (16); when C then returns the document itself (02)
        two.sender.engine.fire(doc, "recall", actor("supervisor"), data={"reason": "Gửi nhầm"})
        run_due(two, doc)
        two.answer(of_b, "agree_recall", agency=B)
        two.answer(of_c, "refuse_recall", {"reason": "Đã xử lý"}, agency=C)
        two.answer(of_c, "refuse", refusal, agency=C)

    # Then the letter is recalled, as it is when C's 02 comes before the recall: no
    # recipient holds it in force; nothing is left open about it, and it is not replaced
    assert document_row(two.sender, doc).state == "recalled"
    assert open_escalations(two, doc) == []
    with pytest.raises(TransitionNotAllowed):
        signed_replacement(two, doc)
