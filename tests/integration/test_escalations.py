"""Deadlines and escalations between two installations over real HTTP, the clock moved by
the test: escalations open when a rule is broken, once per cause, rise to the leadership
when left open, are owned and resolved by supervisors, and close themselves when their
cause disappears. Every step is an entry of the escalation's own audit chain."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from congvan.actions.calendar import VIETNAM_CALENDAR as CALENDAR
from congvan.actions.escalations import notice
from congvan.actions.notices import email_subject, email_text, render
from congvan.actions.signing import issuers, keystore
from congvan.states.errors import (
    Forbidden,
    GuardFailed,
    InvalidInput,
    NotFound,
    TransitionNotAllowed,
)
from congvan.states.phrasing import sentence
from congvan.storage.escalations import Escalation
from congvan.storage.ids import new_id
from congvan.workflow import notifications as managing
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.explaining import explain_row
from tests.databases import Databases
from tests.factories import actor, add_agency, chain_problems, document_row
from tests.installations import CRL_URL, PASS, A, B, Pair, make_pair, serving_inbox
from tests.receivers import Mailbox, smtp_server

DOWN = "http://127.0.0.1:9/v1/inbox"  # the discard port: nothing listens there

SUPERVISOR = actor("supervisor", A, name="giám sát A")
LEADER = actor("signer", A, name="lãnh đạo A")


class Notices:
    """Records what the watch would notify (the notification channels are tested apart)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, uow: Any, *, agency_id: str, kind: str, event: dict[str, Any]) -> int:
        self.sent.append((agency_id, kind, event))
        return 1


@pytest.fixture
def served(pair: Pair) -> Iterator[str]:
    with serving_inbox(pair) as inbox:
        yield inbox


@pytest.fixture
def notices(pair: Pair) -> Notices:
    recorded = Notices()
    pair.sender.watch.notify = recorded
    return recorded


def escalations(runtime: Runtime, agency: str = A) -> list[Escalation]:
    with runtime.uow(readonly=True) as uow:
        return list(reversed(uow.escalations.page(agency, limit=200).items))


def chain_ok(runtime: Runtime, escalation_id: str) -> list[str]:
    """The escalation's audit chain, verified link by link: its events."""
    with runtime.uow(readonly=True) as uow:
        assert list(uow.audit.verify(escalation_id)) == [(escalation_id, None)]
        return [e.event for e in uow.audit.history(escalation_id)]


def resend_from(pair: Pair, escalation: Escalation, reason: str) -> None:
    """A supervisor resends the failed dispatches from the escalation."""
    pair.sender.engine.fire_on(
        "escalation",
        escalation.id,
        "act",
        SUPERVISOR,
        data={"action": "resend", "reason": reason},
    )


def advance(runtime: Runtime, **delta: float) -> int:
    """Move the shared clock and fire what fell due, as the scheduler would."""
    runtime.clock.advance(**delta)  # type: ignore[attr-defined]
    return runtime.scheduler.run_due()


def test_a_late_delivery_opens_one_escalation_that_closes_itself_once_delivered(
    pair: Pair, served: str, make_document: Callable[..., str], notices: Notices
) -> None:
    # Given A's letter to B, whose inbox is down: the first attempt fails
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    assert pair.sender.runner.run(job) == "failed"
    assert escalations(pair.sender) == []

    # When the delivery rule's four working hours pass (sent Monday 15:05, Vietnam time)
    advance(pair.sender, hours=2)
    assert escalations(pair.sender) == []  # Monday 17:05: 1 h 55 of working time so far
    advance(pair.sender, hours=17)  # Tuesday 10:05: the deadline's very moment is in time
    assert escalations(pair.sender) == []
    advance(pair.sender, minutes=1)  # Tuesday 10:06: past it

    # Then one escalation is open on that dispatch, and the supervisors are told
    [late] = escalations(pair.sender)
    dispatch, _ = pair.dispatch(doc)
    assert (late.kind, late.state, late.level, late.severity) == (
        "not_delivered",
        "open",
        1,
        "normal",
    )
    assert (late.document_id, late.dispatch_id, late.organ_id) == (doc, dispatch.id, B)
    assert [(agency, kind) for agency, kind, _ in notices.sent] == [(A, "not_delivered")]
    assert notices.sent[0][2]["recipient"] == B
    assert notices.sent[0][2]["subject"]

    # And the same cause never opens a second one, however often it is looked at
    with pair.sender.uow() as uow:
        assert (
            pair.sender.watch.open_for_dispatch(
                uow, "not_delivered", dispatch.id, late.opened_at, pair.sender.clock()
            )
            is None
        )
        uow.commit()
    assert len(escalations(pair.sender)) == 1

    # And the document's explanation names it, on that recipient, owned by nobody yet
    with pair.sender.uow(readonly=True) as uow:
        row = uow.documents.load(doc)
        found = explain_row(uow, row, pair.sender.clock(), CALENDAR)
    [recipient] = found.recipients
    [said] = [sentence(f) for f in recipient.findings if f.code == "escalation_open"]
    assert said["en"].startswith(
        "Escalation “not delivered to a recipient in time” (not_delivered, level 1) open since"
    )
    assert "nobody has claimed it yet" in said["en"] and "chưa có ai nhận" in said["vi"]

    # When B's inbox is back and the letter is delivered
    pair.point_b_at(served)
    assert pair.sender.runner.run(job) == "done"

    # Then the escalation closed itself, saying why, and its chain holds every step
    [closed] = escalations(pair.sender)
    assert (closed.state, closed.outcome, closed.active_key) == ("closed", "cause_gone", None)
    assert chain_ok(pair.sender, closed.id) == ["open", "close"]
    with pair.sender.uow(readonly=True) as uow:
        [entry] = uow.audit.entries(closed.id, "close")
        assert entry.payload["reason"] == "delivered"


def test_explain_says_by_when_a_recipient_must_have_it_and_register_it(
    pair: Pair, served: str, make_document: Callable[..., str], notices: Notices
) -> None:
    def due_by(doc: str) -> list[Any]:
        with pair.sender.uow(readonly=True) as uow:
            found = explain_row(uow, uow.documents.load(doc), pair.sender.clock(), CALENDAR)
        return [f for f in found.all() if f.code == "due_by"]

    def rule_due(doc: str) -> Any:
        with pair.sender.uow(readonly=True) as uow:
            [timer] = [t for t in uow.timers.for_document(doc) if t.kind == "rule_deadline"]
        return timer.deadline

    # Given A's letter to B, whose inbox is down: its arrival (01) is awaited, by the rule
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    assert pair.sender.runner.run(job) == "failed"
    [arrive] = due_by(doc)
    assert (arrive.facts["step"], arrive.facts["due_at"], arrive.organ_id) == (
        "01",
        rule_due(doc),
        B,
    )
    assert (
        "arrive (01) by" in sentence(arrive)["en"] and "đến nơi nhận (01)" in sentence(arrive)["vi"]
    )

    # When B is back and it is delivered: its registration (03) is awaited, by the rule
    pair.point_b_at(served)
    advance(pair.sender, minutes=5)
    assert pair.sender.runner.run(job) == "done"
    [register] = due_by(doc)
    assert (register.facts["step"], register.facts["due_at"]) == ("03", rule_due(doc))
    assert "be registered (03) by" in sentence(register)["en"]

    # And once registered, nothing is due of it any more
    [received] = pair.received()
    pair.answer(received.id, "register")
    assert due_by(doc) == []


def test_a_recipient_that_does_not_register_is_escalated_at_both_ends(
    pair: Pair, served: str, make_document: Callable[..., str], notices: Notices
) -> None:
    # Given A's letter delivered to B on Monday 15:05 (Vietnam time)
    pair.point_b_at(served)
    _, job = pair.sent(make_document)
    assert pair.sender.runner.run(job) == "done"
    [received] = pair.received()

    # When the working day ends and B's clerks have not registered it
    advance(pair.sender, hours=3)
    pair.receiver.scheduler.run_due()

    # Then A's supervisors see B has not acknowledged it, and B's own clerks are reminded
    [waiting] = escalations(pair.sender)
    assert (waiting.kind, waiting.organ_id) == ("not_acknowledged", B)
    [reminder] = escalations(pair.receiver, B)
    assert (reminder.kind, reminder.received_id, reminder.organ_id) == (
        "not_acknowledged",
        received.id,
        A,
    )
    # Each told in its own words: A to contact B's văn thư, B's own to register it
    with pair.receiver.uow(readonly=True) as uow:
        told = notice(uow, reminder)
    assert "vào sổ văn bản đến" in told["what_to_do_vi"]
    assert "văn thư cơ quan nhận" not in told["what_to_do_vi"]
    with pair.sender.uow(readonly=True) as uow:
        assert "văn thư cơ quan nhận" in notice(uow, waiting)["what_to_do_vi"]

    # When B's clerk registers it (status 03 goes back to A)
    pair.answer(received.id, "register")

    # Then both escalations closed themselves
    assert [(e.state, e.outcome) for e in escalations(pair.sender)] == [("closed", "cause_gone")]
    assert [(e.state, e.outcome) for e in escalations(pair.receiver, B)] == [
        ("closed", "cause_gone")
    ]


def test_a_recipients_own_reminder_names_the_sender_and_says_what_it_has_to_do(
    pair: Pair, served: str, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B, whose clerks leave it unregistered past the day
    reminded = Notices()
    pair.receiver.watch.notify = reminded
    pair.point_b_at(served)
    _, job = pair.sent(make_document)
    assert pair.sender.runner.run(job) == "done"
    advance(pair.sender, hours=3)
    pair.receiver.scheduler.run_due()

    # When B's own reminder is told (an e-mail to B's văn thư, a webhook)
    [(agency, kind, event)] = reminded.sent
    content = render(kind, event, pair.receiver.clock())
    mail = email_subject(content) + "\n" + email_text(content, "https://congvan.snv.example")

    # Then it is B's to act on, in B's words: A is whom the letter came from
    assert (agency, kind) == (B, "not_acknowledged")
    assert (content.get("sender_id"), content.get("recipient_id")) == (A, None)
    assert content["kind_words"] == "Văn bản đến chưa được vào sổ đúng hạn"
    [said] = [line for line in mail.splitlines() if line.startswith("Đơn vị gửi: ")]
    assert said.endswith(f"({A})") and said != f"Đơn vị gửi: {A} ({A})"  # named, with its code
    assert "Đơn vị nhận" not in mail and "Đơn vị nhận chưa tiếp nhận" not in mail
    assert "Vào sổ văn bản đến" in mail


def test_a_late_send_closes_saying_the_letter_went_back_to_draft_when_it_did(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given a signed letter nobody sent by its send-by moment, its escalation open
    doc = pair.signed(make_document)
    advance(pair.sender, days=1, hours=2)
    [late] = escalations(pair.sender)

    # When its signer rejects it (back to draft): it will not be sent as it is
    pair.sender.engine.fire(doc, "reject", actor("signer"), data={"reason": "Sửa trích yếu"})

    # Then the escalation closes, saying the letter is a draft again, not that it was sent
    [closed] = escalations(pair.sender)
    assert (closed.id, closed.state, closed.outcome) == (late.id, "closed", "cause_gone")
    with pair.sender.uow(readonly=True) as uow:
        [entry] = uow.audit.entries(closed.id, "close")
    assert entry.payload["reason"] == "draft"


def test_supervisors_claim_comment_snooze_and_resolve_and_it_rises_when_left_open(
    pair: Pair, make_document: Callable[..., str], notices: Notices
) -> None:
    # Given a signed letter nobody sends by its send-by moment (Tuesday noon)
    doc = pair.signed(make_document)
    advance(pair.sender, days=1, hours=2)
    [late] = escalations(pair.sender)
    assert (late.kind, late.document_id, late.dispatch_id) == ("not_sent_in_time", doc, None)
    engine = pair.sender.engine

    # Only supervisors and leaders handle it, and only their own agency's
    with pytest.raises(Forbidden):
        engine.fire_on("escalation", late.id, "claim", actor("clerk", A))
    with pytest.raises(NotFound):
        engine.fire_on("escalation", late.id, "claim", actor("supervisor", B))
    with pytest.raises(InvalidInput):
        engine.fire_on("escalation", late.id, "snooze", SUPERVISOR, data={"until": "soon"})

    # When a supervisor claims it, comments and snoozes it until the next morning
    engine.fire_on("escalation", late.id, "claim", SUPERVISOR)
    engine.fire_on("escalation", late.id, "comment", SUPERVISOR, data={"text": "Gọi văn thư"})
    until = (pair.sender.clock() + timedelta(hours=18)).isoformat()
    engine.fire_on(
        "escalation",
        late.id,
        "snooze",
        SUPERVISOR,
        data={"until": until, "reason": "người ký đi công tác"},
    )
    [snoozed] = escalations(pair.sender)
    assert (snoozed.state, snoozed.owner) == ("snoozed", SUPERVISOR.name)
    assert snoozed.snoozed_until is not None
    # and the document's explanation says it is put aside, and until when
    assert "put aside (snoozed) until" in _escalation_said(pair, doc)["en"]
    assert "tạm gác đến" in _escalation_said(pair, doc)["vi"]

    # Then it wakes by itself, still owned, and left open past its own deadline it rises
    advance(pair.sender, hours=19)
    [woken] = escalations(pair.sender)
    assert (woken.state, woken.level, woken.snoozed_until) == ("claimed", 1, None)
    assert "put aside" not in _escalation_said(pair, doc)["en"]
    # (Snoozed again and taken up before it wakes, it shows no snooze end either, and no
    # wake timer is left to fire)
    later = (pair.sender.clock() + timedelta(hours=2)).isoformat()
    engine.fire_on(
        "escalation", late.id, "snooze", SUPERVISOR, data={"until": later, "reason": "họp"}
    )
    engine.fire_on("escalation", late.id, "claim", SUPERVISOR)
    [taken] = escalations(pair.sender)
    assert (taken.state, taken.snoozed_until) == ("claimed", None)
    with pair.sender.uow(readonly=True) as uow:
        assert "escalation_wake" not in [t.kind for t in uow.timers.for_document(doc)]
    advance(pair.sender, days=1)
    [risen] = escalations(pair.sender)
    assert risen.level == 2
    assert [(kind, event["level"]) for _, kind, event in notices.sent] == [
        ("not_sent_in_time", 1),
        ("not_sent_in_time", 2),
    ]

    # When a leader resolves it with an outcome
    with pytest.raises(InvalidInput):
        engine.fire_on(
            "escalation", late.id, "resolve", LEADER, data={"reason": "xong", "take_over": True}
        )
    # (it is the supervisor's: the leader says it takes it over, as anyone would)
    with pytest.raises(GuardFailed):
        engine.fire_on(
            "escalation",
            late.id,
            "resolve",
            LEADER,
            data={"outcome": "accepted", "reason": "chờ người ký về"},
        )
    engine.fire_on(
        "escalation",
        late.id,
        "resolve",
        LEADER,
        data={"outcome": "accepted", "reason": "chờ người ký về", "take_over": True},
    )

    # Then it is resolved for good, every step in its chain
    [done] = escalations(pair.sender)
    assert (done.state, done.outcome, done.active_key) == ("resolved", "accepted", None)
    assert chain_ok(pair.sender, late.id) == [
        "open",
        "claim",
        "comment",
        "snooze",
        "wake",
        "snooze",
        "claim",
        "rise",
        "resolve",
    ]
    with pytest.raises(TransitionNotAllowed):
        engine.fire_on("escalation", late.id, "claim", SUPERVISOR)
    with pair.sender.uow(readonly=True) as uow:
        # Nothing is left to fire for it: its rise and wake timers went with it.
        assert [t.kind for t in uow.timers.for_document(doc)] == []


def test_a_failed_dispatch_escalates_at_once_and_a_supervisor_resends_from_it(
    pair: Pair, served: str, make_document: Callable[..., str], notices: Notices
) -> None:
    # Given A's letter to B failed for good (three attempts, B down)
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    assert [pair.sender.runner.run(job) for _ in range(3)] == ["failed", "failed", "done"]

    # Then delivery_failed is open at once, high even for a normal letter
    [failed] = escalations(pair.sender)
    assert (failed.kind, failed.severity, failed.state) == ("delivery_failed", "high", "open")

    # When B is back and a supervisor resends from the escalation
    pair.point_b_at(served)
    resend_from(pair, failed, "Sở Nội vụ đã khắc phục")
    # (the dispatch back to pending is in the escalation's chain: every chain verifies)
    assert chain_problems(pair.sender) == {}
    [again] = pair.jobs(doc)
    assert pair.sender.runner.run(again) == "done"

    # Then the document was resent, delivered, and the escalation closed itself
    dispatch, _ = pair.dispatch(doc)
    assert dispatch.state == "delivered"
    # (what failed before is history, in its attempts, not the delivered dispatch's error)
    assert dispatch.last_error == ""
    [closed] = escalations(pair.sender)
    assert (closed.state, closed.owner) == ("closed", SUPERVISOR.name)
    assert chain_ok(pair.sender, closed.id) == ["open", "act", "close"]


def test_a_resend_from_an_escalation_that_fails_again_is_told_again(
    pair: Pair, make_document: Callable[..., str], notices: Notices
) -> None:
    # Given A's letter to B failed for good, and a supervisor resent it from its escalation
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    assert [pair.sender.runner.run(job) for _ in range(3)] == ["failed", "failed", "done"]
    [failed] = escalations(pair.sender)
    resend_from(pair, failed, "thử lại")
    told = len(notices.sent)

    # When B is still down and the resent dispatch fails for good again
    [again] = pair.jobs(doc)
    assert [pair.sender.runner.run(again) for _ in range(3)] == ["failed", "failed", "done"]
    assert pair.dispatch(doc)[0].state == "failed"

    # Then the escalation it stands on records the failure and tells of it again (one
    # cause, still one escalation, its owner kept)
    [standing] = escalations(pair.sender)
    assert (standing.id, standing.state, standing.owner) == (failed.id, "claimed", SUPERVISOR.name)
    assert chain_ok(pair.sender, failed.id) == ["open", "act", "recur"]
    assert [("delivery_failed", failed.id)] == [
        (kind, event["escalation_id"]) for _, kind, event in notices.sent[told:]
    ]


def test_a_late_delivery_that_then_fails_closes_saying_so_and_is_followed(
    pair: Pair, make_document: Callable[..., str], notices: Notices
) -> None:
    # Given A's letter to B, whose inbox is down, late: not_delivered open and claimed
    pair.point_b_at(DOWN)
    _doc, job = pair.sent(make_document)
    assert pair.sender.runner.run(job) == "failed"
    advance(pair.sender, hours=19, minutes=1)  # Tuesday 10:06: past 10:05
    [late] = escalations(pair.sender)
    pair.sender.engine.fire_on("escalation", late.id, "claim", SUPERVISOR)

    # When its attempts run out and the dispatch fails for good
    assert [pair.sender.runner.run(job) for _ in range(2)] == ["failed", "done"]

    # Then the late delivery closes saying it failed (not "delivered"), and the failure
    # opens its own escalation naming the one it follows and who owned it
    closed = next(x for x in escalations(pair.sender) if x.id == late.id)
    assert (closed.state, closed.owner) == ("closed", SUPERVISOR.name)
    with pair.sender.uow(readonly=True) as uow:
        [entry] = uow.audit.entries(late.id, "close")
    assert entry.payload["reason"] == "failed"
    [failed] = [x for x in escalations(pair.sender) if x.kind == "delivery_failed"]
    assert {"follows": late.id, "owner_before": SUPERVISOR.name} == failed.detail


def test_a_notification_waiting_to_be_retried_is_not_the_documents_own_retry(
    pair: Pair, make_document: Callable[..., str], notices: Notices
) -> None:
    # Given a letter whose delivery failed for good, and its escalation's e-mail waiting
    # between attempts (the mail server down)
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    assert [pair.sender.runner.run(job) for _ in range(3)] == ["failed", "failed", "done"]
    now = pair.sender.clock()
    with pair.sender.uow() as uow:
        uow.outbox.add(
            [
                {
                    "id": new_id(),
                    "action": "send_notification",
                    "document_id": doc,
                    "queue": "default",
                    "payload": {"notification_id": "n-1"},
                    "status": "waiting",
                    "attempts": 3,
                    "last_error": "SMTP refused",
                    "created_at": now,
                }
            ]
        )
        uow.commit()

    # Then the document's explanation tells its failure, not a retry of its own
    with pair.sender.uow(readonly=True) as uow:
        found = explain_row(uow, uow.documents.load(doc), now, CALENDAR)
    codes = [f.code for f in found.all()]
    assert "waiting_for_retry" not in codes and "job_queued" not in codes, codes
    assert all(f.facts.get("action") != "send_notification" for f in found.all())


def test_one_delivery_closes_every_escalation_its_dispatch_had_open(
    pair: Pair, served: str, make_document: Callable[..., str], notices: Notices
) -> None:
    # Given A's letter to B failed for good (B down), and was resent to a B still down
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    assert [pair.sender.runner.run(job) for _ in range(3)] == ["failed", "failed", "done"]
    [failed] = escalations(pair.sender)
    resend_from(pair, failed, "Thử lại")
    [again] = pair.jobs(doc)
    assert pair.sender.runner.run(again) == "failed"

    # When the resent dispatch is late too: two causes open on one dispatch
    advance(pair.sender, hours=19, minutes=1)  # Tuesday 10:06: past 10:05
    opened = {e.kind: e for e in escalations(pair.sender) if e.active}
    assert set(opened) == {"delivery_failed", "not_delivered"}

    # And B is back: one delivery
    pair.point_b_at(served)
    assert pair.sender.runner.run(again) == "done"

    # Then both closed in that one transition, each saying why, each chain whole
    after = {e.kind: e for e in escalations(pair.sender)}
    assert {kind: (e.state, e.active_key) for kind, e in after.items()} == {
        "delivery_failed": ("closed", None),
        "not_delivered": ("closed", None),
    }
    with pair.sender.uow(readonly=True) as uow:
        for kind, row in opened.items():
            assert chain_ok(pair.sender, row.id)[-1] == "close", kind
            [entry] = uow.audit.entries(row.id, "close")
            assert entry.payload["reason"] == "delivered"


def test_a_refusal_escalates_at_once_with_the_recipients_reason(
    pair: Pair, served: str, make_document: Callable[..., str], notices: Notices
) -> None:
    pair.point_b_at(served)
    _, job = pair.sent(make_document)
    assert pair.sender.runner.run(job) == "done"
    [received] = pair.received()

    pair.answer(received.id, "refuse", {"reason": "Không đúng thẩm quyền"})

    [refused] = escalations(pair.sender)
    assert (refused.kind, refused.severity) == ("refused_by_recipient", "high")
    assert "Không đúng thẩm quyền" in refused.detail["reason"]


def test_two_schedulers_racing_open_each_escalation_once(
    pair: Pair, make_document: Callable[..., str], notices: Notices
) -> None:
    docs = [pair.signed(make_document) for _ in range(12)]
    pair.sender.clock.advance(days=2)  # type: ignore[attr-defined]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            pair.sender.scheduler.run_due()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    opened = escalations(pair.sender)
    assert sorted(e.document_id or "" for e in opened) == sorted(docs)
    assert len(notices.sent) == len(docs)
    with pair.sender.uow(readonly=True) as uow:
        assert uow.timers.count_parked() == 0


def test_certificates_and_revocation_lists_running_out_are_escalated_until_renewed(
    pair: Pair, make_document: Callable[..., str], notices: Notices
) -> None:
    def check(runtime: Runtime) -> None:
        """The trust check timer fires (it runs hourly)."""
        with runtime.uow() as uow:
            runtime.revocation_lists.ensure_timer(uow, runtime.clock())
            uow.commit()
        advance(runtime, minutes=61)

    # Given B holds A's CRL (7 days): with a day left, B's supervisors are warned
    check(pair.receiver)
    assert escalations(pair.receiver, B) == []
    pair.receiver.clock.advance(days=6)  # type: ignore[attr-defined]
    check(pair.receiver)
    [crl] = escalations(pair.receiver, B)
    assert (crl.kind, crl.severity, crl.document_id) == ("crl_expiring", "high", None)
    assert escalations(pair.receiver, A) == []  # A signs elsewhere: not B's to warn
    check(pair.receiver)
    assert len(escalations(pair.receiver, B)) == 1  # once, however often it is checked

    # When a fresh CRL of A's authority is imported, the escalation closes itself
    with pair.sender.uow() as uow:
        fresh = keystore.publish_crl(uow, passphrase=PASS, now=pair.sender.clock())
        uow.commit()
    with pair.receiver.uow() as uow:
        issuers.import_crl(uow, pair.receiver.trust, fresh, now=pair.receiver.clock())
        uow.commit()
    check(pair.receiver)
    assert [(e.state, e.outcome) for e in escalations(pair.receiver, B)] == [
        ("closed", "cause_gone")
    ]

    # Given A's signer certificate (two years) with three weeks left: A is warned
    pair.sender.clock.advance(days=730 - 6 - 21)  # type: ignore[attr-defined]
    check(pair.sender)
    [expiring] = [e for e in escalations(pair.sender) if e.kind == "certificate_expiring"]
    assert expiring.detail["username"] == "pct"
    assert expiring.detail["certificate"] == "signer"

    # When the signer gets a new certificate, it closes itself
    with pair.sender.uow() as uow:
        keystore.issue_signer(
            uow, A, "pct", passphrase=PASS, crl_url=CRL_URL, now=pair.sender.clock()
        )
        uow.commit()
    check(pair.sender)
    [renewed] = [e for e in escalations(pair.sender) if e.id == expiring.id]
    assert (renewed.state, renewed.outcome) == ("closed", "cause_gone")
    with pair.sender.uow(readonly=True) as uow:
        [entry] = uow.audit.entries(expiring.id, "close")
        assert entry.payload["reason"] == "renewed"


@pytest.mark.parametrize(
    ("appointed", "watched_until"),
    [
        # Monday 20:00, after working hours: its hỏa tốc rule (15 working minutes) first
        ("2026-01-05T20:00:00+07:00", None),
        # Five minutes after it is sent: the appointment first
        ("{sent_plus_5}", "{sent_plus_5}"),
    ],
)
def test_a_hoa_toc_hen_gio_letter_is_due_at_its_appointed_time_or_its_rule(
    pair: Pair,
    make_document: Callable[..., str],
    notices: Notices,
    appointed: str,
    watched_until: str | None,
) -> None:
    # Given a hỏa tốc hẹn giờ letter with its appointed time, sent to an inbox that is down
    sent_at = pair.sender.clock()
    soon = (sent_at + timedelta(minutes=5)).isoformat()
    appointed = appointed.format(sent_plus_5=soon)
    pair.point_b_at(DOWN)
    doc = pair.signed(make_document, urgency=4, appointed_at=appointed)
    pair.sender.engine.fire(doc, "send", actor("clerk"))

    # Then its delivery is watched until the earlier of its appointment and its rule
    with pair.sender.uow(readonly=True) as uow:
        [rule] = [t for t in uow.timers.for_document(doc) if t.kind == "rule_deadline"]
        rules = pair.sender.watch.deadlines(uow, A)
    due = datetime.fromisoformat(watched_until.format(sent_plus_5=soon)) if watched_until else None
    expected = due or rules.deliver_by(sent_at, 4)
    assert expected == rule.deadline
    assert rule.payload["escalation"] == "not_delivered"

    # And once it passes undelivered, a critical escalation opens
    advance(pair.sender, minutes=30)
    [late] = escalations(pair.sender)
    assert (late.kind, late.severity) == ("not_delivered", "critical")


def test_a_hoa_toc_hen_gio_letter_is_sent_and_registered_by_its_appointment(
    pair: Pair, served: str, make_document: Callable[..., str], notices: Notices
) -> None:
    def rule_timers(runtime: Runtime, subject: str) -> dict[str, datetime]:
        with runtime.uow(readonly=True) as uow:
            return {
                t.payload["escalation"]: t.deadline
                for t in uow.timers.for_document(subject)
                if t.kind == "rule_deadline"
            }

    # Given a hỏa tốc hẹn giờ letter whose appointment is 5 minutes away (its rule: 15)
    pair.point_b_at(served)
    soon = pair.sender.clock() + timedelta(minutes=5)
    doc = pair.signed(make_document, urgency=4, appointed_at=soon.isoformat())

    # Then it is to go out by the appointment, and once that passes unsent it is escalated
    assert rule_timers(pair.sender, doc) == {"not_sent_in_time": soon}
    advance(pair.sender, minutes=6)
    [late] = escalations(pair.sender)
    assert (late.kind, late.document_id) == ("not_sent_in_time", doc)

    # And the recipient must register it by the appointment too (already past: at once)
    pair.sender.engine.fire(doc, "send", actor("clerk"))
    [job] = pair.jobs(doc)
    assert pair.sender.runner.run(job) == "done"
    [received] = pair.received()
    with pair.receiver.uow(readonly=True) as uow:
        [register] = [
            t
            for t in uow.timers.of_kind("rule_deadline")
            if t.payload.get("received_id") == received.id
        ]
    assert (register.payload["escalation"], register.deadline) == ("not_acknowledged", soon)


@pytest.mark.parametrize(
    ("fields", "written"),
    [
        ({"number": 5}, "05/UBND-TĐKT"),
        (
            {"number": 5, "doc_type": "QĐ", "symbol": "QĐ-UBND", "legal_normative": True},
            "05/{year}/QĐ-UBND",
        ),
    ],
)
def test_an_escalation_tells_the_number_and_symbol_as_the_document_writes_them(
    pair: Pair,
    make_document: Callable[..., str],
    notices: Notices,
    fields: dict[str, Any],
    written: str,
) -> None:
    # Given A's letter number 5 (or decision 5, a legal normative document), signed
    doc = pair.signed(make_document, **fields)
    year = str(document_row(pair.sender, doc).issued_on)[:4]

    # When it is left unsent past its send-by moment
    advance(pair.sender, days=1, hours=2)

    # Then what the supervisors are told writes it 05/… (and 05/YEAR/… for the decision)
    [(_, kind, event)] = notices.sent
    expected = written.format(year=year)
    content = render(kind, event, pair.sender.clock())
    assert (expected, expected) == (event["number_symbol"], content["number_symbol"])
    assert email_subject(content).endswith(f": {expected}")
    # And so does the notice the board shows
    with pair.sender.uow(readonly=True) as uow:
        [opened] = uow.escalations.active_of_document(doc)
        assert expected == notice(uow, opened)["number_symbol"]


def test_an_escalation_is_mailed_to_whom_the_agency_routes_it(
    make_runtime: Callable[..., Runtime],
    boot: Any,
    databases: Databases,
    db_kind: str,
    make_document: Callable[..., str],
) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        # Given A routes not_sent_in_time to its chánh văn phòng's address
        mailing = functools.partial(
            make_runtime, smtp_host="127.0.0.1", smtp_port=port, smtp_from="congvan@hue.gov.vn"
        )
        pair = make_pair(mailing, boot, databases, db_kind)
        with pair.sender.uow() as uow:
            managing.add_route(
                uow,
                A,
                kind="not_sent_in_time",
                channel="email",
                target="chanh.vp@hue.gov.vn",
                secret=None,
                by="test",
                now=pair.sender.clock(),
            )
            uow.commit()

        # When a signed letter is left unsent past its send-by moment
        pair.signed(make_document)
        advance(pair.sender, days=1, hours=2)
        with pair.sender.uow(readonly=True) as uow:
            [queued] = uow.notifications.page(A, None, limit=10)
        assert pair.sender.runner.run(queued.job_id) == "done"

    # Then the message says, in Vietnamese, which letter and what to do
    [(_, recipients, message, _)] = mailbox.messages
    assert recipients == ["chanh.vp@hue.gov.vn"]
    assert message["Subject"].startswith("[congvan] Văn bản chưa được gửi đúng hạn")
    text = message.get_content()
    assert "Việc cần làm: Phát hành ngay hoặc ghi rõ lý do chưa phát hành." in text
    assert "Trích yếu: " in text and "Mã cảnh báo: " in text


def test_an_escalation_left_open_reaches_the_leadership_route_only_when_it_rises(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A routes not_sent_in_time to its supervisors and risen escalations to its leaders
    with pair.sender.uow() as uow:
        for kind, target in (
            ("not_sent_in_time", "giamsat@hue.gov.vn"),
            ("risen", "lanhdao@hue.gov.vn"),
        ):
            managing.add_route(
                uow, A, kind=kind, channel="email", target=target, secret=None,
                by="test", now=pair.sender.clock(),
            )  # fmt: skip
        uow.commit()

    def told() -> list[tuple[int, str]]:
        with pair.sender.uow(readonly=True) as uow:
            rows = uow.notifications.page(A, None, limit=10)
            return sorted((json.loads(n.content)["level"], n.target) for n in rows)

    # When a signed letter is left unsent: level 1 goes to the supervisors only
    pair.signed(make_document)
    advance(pair.sender, days=1, hours=2)
    assert told() == [(1, "giamsat@hue.gov.vn")]

    # And left open a working day more, it rises: both are told
    advance(pair.sender, days=1)
    assert told() == [
        (1, "giamsat@hue.gov.vn"),
        (2, "giamsat@hue.gov.vn"),
        (2, "lanhdao@hue.gov.vn"),
    ]


def test_two_first_saves_of_an_agencys_time_rules_at_once_both_succeed(
    make_runtime: Callable[..., Runtime],
) -> None:
    # Given an agency with no time rules of its own, and one save under way (not committed)
    runtime = make_runtime()
    add_agency(runtime)
    at = runtime.clock()
    first = runtime.uow()
    first.__enter__()
    first.escalations.set_time_rules(A, {"deliver": [200]}, by="a", at=at)
    failed: list[BaseException] = []

    def second() -> None:
        try:
            with runtime.uow() as uow:
                uow.escalations.set_time_rules(A, {"deliver": [100]}, by="b", at=at)
                uow.commit()
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            failed.append(exc)

    # When a second first save waits on it, then the first commits
    racing = threading.Thread(target=second)
    racing.start()
    racing.join(timeout=1)  # it waits on the first's row (PostgreSQL) or on its lock (SQLite)
    first.commit()
    first.__exit__(None, None, None)
    racing.join()

    # Then neither fails: the last save stands
    assert failed == []
    with runtime.uow(readonly=True) as uow:
        assert {"deliver": [100]} == uow.escalations.time_rules(A)


def _escalation_said(pair: Pair, doc: str) -> dict[str, str]:
    """What the document's explanation says of its one open escalation."""
    with pair.sender.uow(readonly=True) as uow:
        found = explain_row(uow, uow.documents.load(doc), pair.sender.clock(), CALENDAR)
    [said] = [sentence(f) for f in found.all() if f.code == "escalation_open"]
    return said
