"""The engine against real databases: transitions, refusals, races, crashes, dispatches."""

# Asserts read `expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from congvan.actions.context import SYSTEM
from congvan.states.errors import (
    ActionUnavailable,
    Conflict,
    Forbidden,
    GuardFailed,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    TransitionNotAllowed,
    UnknownEvent,
    VersionConflict,
)
from congvan.storage.documents import RecipientRow
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.engine import STEPS, Engine, FireResult, Idempotency
from congvan.workflow.views import document_view
from tests.factories import (
    OTHER_AGENCY_ID,
    SAMPLE_FIELDS,
    actor,
    chain_problems,
    document_row,
    does_nothing,
    dump_tables,
    history,
    holds,
    job_done,
    pipeline,
    sample_file,
    send_document,
)

CLERK = actor("clerk")
REVIEWER = actor("reviewer")
SIGNER = actor("signer")
SUPERVISOR = actor("supervisor")


def events(runtime: Runtime, document_id: str) -> list[str]:
    return [entry.event for entry in history(runtime, document_id)]


def dispatch_states(runtime: Runtime, document_id: str) -> dict[str, str]:
    with runtime.uow(readonly=True) as uow:
        return {d.organ_id: d.state for d in uow.dispatches.for_document(document_id)}


# -- plain transitions ---------------------------------------------------------------------


def test_create_edit_reject_round_trip(runtime: Runtime, make_document: Callable[..., str]):
    # Given a draft of letter 1227/UBND-TĐKT with its main file
    doc = make_document(runtime, files=[sample_file()])
    assert ("draft", 1) == (
        document_row(runtime, doc).state,
        document_row(runtime, doc).version,
    )

    # When a clerk corrects the place, and a reviewer sends it back
    edited = runtime.engine.fire(
        doc, "edit", CLERK, expected_version=1, data={"fields": {"place": "Huế"}}
    )
    rejected = runtime.engine.fire(
        doc, "reject", REVIEWER, expected_version=2, data={"reason": "Thiếu nơi nhận"}
    )

    # Then each step bumped the version, the edit was stored, the trail records both
    assert ("draft", "draft", 2) == (edited.from_state, edited.to_state, edited.version)
    assert ("draft", 3) == (rejected.to_state, rejected.version)
    row = document_row(runtime, doc)
    assert ("draft", 3, "Huế") == (row.state, row.version, row.place)
    assert SAMPLE_FIELDS["subject"] == row.subject
    trail = history(runtime, doc)
    assert ["create", "edit", "reject"] == [e.event for e in trail]
    assert [1, 2, 3] == [e.version for e in trail]
    assert {"changed": ["place"], "revision": 2} == trail[1].payload
    assert "Thiếu nơi nhận" == trail[2].payload["reason"]
    assert (2, None) == (row.revision, row.submitted_revision)
    assert row.audit_head == trail[-1].hash
    with runtime.uow(readonly=True) as uow:
        assert ["main"] == [a.role for a in uow.documents.attachments(doc)]
        assert sample_file()["data"] == uow.documents.blob(sample_file()["sha256"])
    assert {} == chain_problems(runtime)


def test_edit_of_recipients_is_stored_and_audited(
    runtime: Runtime, make_document: Callable[..., str]
):
    doc = make_document(runtime)
    recipients = [{"organ_id": "000.00.03.H57", "name": "Sở Y tế"}]

    runtime.engine.fire(doc, "edit", CLERK, data={"recipients": recipients})

    with runtime.uow(readonly=True) as uow:
        assert [RecipientRow(**r) for r in recipients] == uow.documents.recipients(doc)
    assert ["000.00.03.H57"] == history(runtime, doc)[-1].payload["recipients"]


def test_an_edit_that_changes_nothing_is_refused_and_leaves_no_trace(
    runtime: Runtime, make_document: Callable[..., str]
):
    doc = make_document(runtime)
    before = dump_tables(runtime)

    with pytest.raises(InvalidInput):
        runtime.engine.fire(doc, "edit", CLERK, data={"fields": {"number": 1227}})

    assert before == dump_tables(runtime)


def test_an_event_not_allowed_now_names_the_allowed_ones(
    runtime: Runtime, make_document: Callable[..., str]
):
    doc = make_document(runtime)
    before = dump_tables(runtime)

    with pytest.raises(TransitionNotAllowed) as refused:
        runtime.engine.fire(doc, "send", CLERK)

    assert "invalid_transition" == refused.value.code
    assert 409 == refused.value.http_status
    assert {
        "event": "send",
        "state": "draft",
        "allowed": ["approve", "edit", "reject", "submit", "waive"],
    } == refused.value.details
    assert before == dump_tables(runtime)


def test_an_unknown_event_is_not_allowed(runtime: Runtime, make_document: Callable[..., str]):
    doc = make_document(runtime)

    with pytest.raises(UnknownEvent) as refused:
        runtime.engine.fire(doc, "publish", CLERK)

    assert refused.value.http_status == 422  # the caller's mistake, not the moment's
    assert ["approve", "edit", "reject", "submit", "waive"] == refused.value.details["allowed"]


def test_an_event_needing_a_missing_capability_is_unavailable(
    make_runtime: Callable[..., Runtime], make_document: Callable[..., str]
):
    # Given a signed document (fakes stand in for the review checks and the signature)
    runtime = make_runtime(
        guards={"checks_cleared": holds, "dated_this_year": holds, "signer_has_authority": holds},
        effects={"attach_signature": does_nothing},
    )
    doc = make_document(runtime)
    runtime.engine.fire(doc, "approve", REVIEWER)
    runtime.engine.fire(doc, "sign", SIGNER)
    before = dump_tables(runtime)
    # and an installation that declares delivery unavailable
    base = runtime.engine
    without_delivery = Engine(
        base.open_uow,
        guards=base.guards,
        effects=base.effects,
        jobs=sorted(base.jobs - {"deliver_dispatches"}),
        clock=runtime.clock,
        job_deadline_seconds=300,
        unavailable=["deliver_dispatches"],
    )

    # When a clerk sends it
    with pytest.raises(ActionUnavailable) as unavailable:
        without_delivery.fire(doc, "send", CLERK)

    # Then it is refused, naming what is missing, and nothing changed
    assert 501 == unavailable.value.http_status
    assert {"event": "send", "missing": ["deliver_dispatches"]} == unavailable.value.details
    assert before == dump_tables(runtime)
    assert "signed" == document_row(runtime, doc).state


def test_another_agencys_document_answers_as_missing(
    runtime: Runtime, make_document: Callable[..., str], make_agency: Callable[..., str]
):
    doc = make_document(runtime)
    make_agency(runtime, OTHER_AGENCY_ID, "UBND tỉnh Quảng Trị", "UBND")
    outsider = actor("clerk", agency=OTHER_AGENCY_ID)

    with pytest.raises(NotFound) as foreign:
        runtime.engine.fire(doc, "edit", outsider, data={"fields": {"place": "Đông Hà"}})
    with pytest.raises(NotFound) as missing:
        runtime.engine.fire("no-such-document", "edit", outsider)

    assert foreign.value.message == missing.value.message
    assert 404 == foreign.value.http_status
    assert 1 == document_row(runtime, doc).version


def test_an_event_needs_its_role(runtime: Runtime, make_document: Callable[..., str]):
    doc = make_document(runtime)

    with pytest.raises(Forbidden) as not_a_clerk:
        runtime.engine.fire(doc, "edit", REVIEWER, data={"fields": {"place": "Huế"}})
    with pytest.raises(Forbidden) as derived:
        runtime.engine.fire(doc, "delivered", SUPERVISOR)
    with pytest.raises(Forbidden):
        runtime.engine.create_document(REVIEWER, SAMPLE_FIELDS, [], [])

    assert ["clerk"] == not_a_clerk.value.details["needs"]
    assert "delivered" == derived.value.details["event"]
    assert 1 == document_row(runtime, doc).version


def test_a_caller_without_the_role_is_told_so_before_what_is_wrong_with_the_data(
    runtime: Runtime, make_document: Callable[..., str]
):
    doc = make_document(runtime)
    # A reviewer's edit with data no event takes, a clerk's reject with a blank reason, a
    # signer's approve with a reason far too long: each is first a matter of role
    cases = [
        ("edit", REVIEWER, {"fields": {"place": "Huế"}, "bogus": 1}),
        ("reject", CLERK, {"reason": "\u200b"}),
        ("approve", SIGNER, {"reason": "x" * 100_000}),
        ("edit", SUPERVISOR, {"fields": {"place": "Hu\x00ế"}}),
    ]
    for event, who, data in cases:
        with pytest.raises(Forbidden) as refused:
            runtime.engine.fire(doc, event, who, data=data)
        assert event == refused.value.details["event"]
    assert 1 == document_row(runtime, doc).version


def test_a_stale_version_conflicts_and_names_the_current_one(
    runtime: Runtime, make_document: Callable[..., str]
):
    doc = make_document(runtime)
    runtime.engine.fire(doc, "edit", CLERK, expected_version=1, data={"fields": {"place": "Huế"}})

    with pytest.raises(VersionConflict) as conflict:
        runtime.engine.fire(
            doc, "edit", CLERK, expected_version=1, data={"fields": {"place": "Phú Lộc"}}
        )

    assert {"expected_version": 1, "current_version": 2} == conflict.value.details
    assert ("Huế", 2) == (
        document_row(runtime, doc).place,
        document_row(runtime, doc).version,
    )


# -- races -----------------------------------------------------------------------------


def race(threads: int, attempt: Callable[[int], FireResult]) -> list[FireResult | Conflict]:
    """Run ``attempt(i)`` on ``threads`` threads released at once; outcomes in order.

    A refusal with 409 is an outcome; any other error fails the test.
    """
    barrier = threading.Barrier(threads)

    def run(i: int) -> FireResult | Conflict:
        barrier.wait(timeout=10)
        try:
            return attempt(i)
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


def test_racing_edits_of_one_version_let_exactly_one_win(
    runtime: Runtime, make_document: Callable[..., str]
):
    threads, rounds = 8, 3
    doc = make_document(runtime)

    for round_ in range(rounds):
        # Given N clerks who all read the same version
        start = document_row(runtime, doc).version

        def edit(i: int, start: int = start, round_: int = round_) -> FireResult:
            place = f"round {round_} clerk {i}"
            return runtime.engine.fire(
                doc, "edit", CLERK, expected_version=start, data={"fields": {"place": place}}
            )

        # When they all fire at once
        outcomes = race(threads, edit)

        # Then exactly one wins and every other one is told the version moved on
        wins = [o for o in outcomes if isinstance(o, FireResult)]
        conflicts = [o for o in outcomes if isinstance(o, VersionConflict)]
        assert (1, threads - 1) == (len(wins), len(conflicts)), outcomes
        assert start + 1 == wins[0].version
        assert {(start, start + 1)} == {
            (c.details["expected_version"], c.details["current_version"]) for c in conflicts
        }
        row = document_row(runtime, doc)
        assert start + 1 == row.version
        assert f"round {round_} clerk {outcomes.index(wins[0])}" == row.place

    assert 1 + rounds == len(history(runtime, doc))
    assert {} == chain_problems(runtime)


def test_racing_events_naming_no_version_apply_one_after_another(
    runtime: Runtime, make_document: Callable[..., str]
):
    # Given reviewers who send a draft back without naming the version they saw
    threads = 6
    doc = make_document(runtime)

    # When they all do it at once
    outcomes = race(
        threads,
        lambda i: runtime.engine.fire(doc, "reject", REVIEWER, data={"reason": f"lý do {i}"}),
    )

    # Then each one applied on top of the one before
    assert all(isinstance(o, FireResult) for o in outcomes), outcomes
    assert list(range(2, threads + 2)) == sorted(o.version for o in outcomes)
    assert 1 + threads == document_row(runtime, doc).version
    assert {} == chain_problems(runtime)


def test_racing_events_on_one_dispatch_apply_once(
    make_runtime: Callable[..., Runtime], make_document: Callable[..., str]
):
    # Given a pending dispatch and several delivery workers that picked it up at once
    threads = 6
    runtime = make_runtime(**pipeline())
    doc = make_document(runtime)
    first, _second = send_document(runtime, doc).values()

    # When they all start it
    outcomes = race(threads, lambda _i: runtime.engine.fire_dispatch(first, "start"))

    # Then one attempt started, and the others saw it was already under way
    started = [o for o in outcomes if isinstance(o, FireResult)]
    refused = [o for o in outcomes if isinstance(o, TransitionNotAllowed)]
    assert (1, threads - 1) == (len(started), len(refused)), outcomes
    assert {"sending"} == {o.details["state"] for o in refused}
    with runtime.uow(readonly=True) as uow:
        dispatch = uow.dispatches.get(first)
    assert ("sending", 1) == (dispatch.state, dispatch.attempts)
    assert 1 == events(runtime, doc).count("dispatch.start")
    assert {} == chain_problems(runtime)


# -- crashes ---------------------------------------------------------------------------


class Crash(Exception):
    """The process died at a step of a transition."""


def raiser(step: str, fired: list[str]) -> Callable[[str], None]:
    def fault(at: str) -> None:
        if at == step:
            fired.append(at)
            raise Crash(at)

    return fault


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_of_a_transition_leaves_no_trace(
    step: str, make_runtime: Callable[..., Runtime], make_document: Callable[..., str]
):
    # Given a submit that writes an audit entry, an outbox row, a timer and a remembered
    # answer to its Idempotency-Key
    runtime = make_runtime(jobs={"run_review_checks": job_done})
    doc = make_document(runtime)
    request = Idempotency.of("submit-1227", doc, "submit", by="u-clerk")
    before = dump_tables(runtime)
    fired: list[str] = []
    runtime.engine.fault = raiser(step, fired)

    # When the transition dies at this step
    with pytest.raises(Crash):
        runtime.engine.fire(doc, "submit", CLERK, expected_version=1, idempotency=request)

    # Then the database holds exactly what it held before
    assert [step] == fired
    assert before == dump_tables(runtime)

    # And the same request, sent again, goes through as a first request
    runtime.engine.fault = lambda _step: None
    result = runtime.engine.fire(doc, "submit", CLERK, expected_version=1, idempotency=request)
    assert (2, False, 1) == (result.version, result.replayed, len(result.jobs))


@pytest.mark.parametrize("step", [s for s in STEPS if s != "remembered"])
def test_a_crash_at_any_step_of_a_dispatch_event_leaves_no_trace(
    step: str, make_runtime: Callable[..., Runtime], make_document: Callable[..., str]
):
    # Given a sent document whose first recipient has it and whose second is being sent
    runtime = make_runtime(**pipeline())
    doc = make_document(runtime)
    first, second = send_document(runtime, doc).values()
    for dispatch in (first, second):
        runtime.engine.fire_dispatch(dispatch, "start")
    runtime.engine.fire_dispatch(first, "deliver")
    before = dump_tables(runtime)
    fired: list[str] = []
    runtime.engine.fault = raiser(step, fired)

    # When delivering to the second one (which also moves the document) dies at this step
    with pytest.raises(Crash):
        runtime.engine.fire_dispatch(second, "deliver")

    # Then nothing changed
    assert [step] == fired
    assert before == dump_tables(runtime)
    assert "sent" == document_row(runtime, doc).state


# -- dispatches ------------------------------------------------------------------------


@pytest.fixture
def sending(make_runtime: Callable[..., Runtime]) -> Runtime:
    """An installation whose checks, signing and delivery are fakes."""
    return make_runtime(**pipeline(), dispatch_max_attempts=2)


def test_send_creates_one_pending_dispatch_per_recipient(
    sending: Runtime, make_document: Callable[..., str]
):
    doc = make_document(sending)

    dispatches = send_document(sending, doc)

    assert "sent" == document_row(sending, doc).state
    assert {"000.00.01.H57": "pending", "000.00.02.H57": "pending"} == dispatch_states(sending, doc)
    assert history(sending, doc)[-1].payload["dispatches"] == dispatches
    # And one delivery job per dispatch
    with sending.uow(readonly=True) as uow:
        jobs = uow.outbox.for_document(doc)
    assert {("deliver_dispatches", d) for d in dispatches.values()} == {
        (j.action, j.payload["dispatch_id"]) for j in jobs
    }
    assert len(jobs) == 2


def test_the_document_follows_its_dispatches_to_delivered_and_acknowledged(
    sending: Runtime, make_document: Callable[..., str]
):
    doc = make_document(sending)
    first, second = send_document(sending, doc).values()
    fire = sending.engine.fire_dispatch

    # Started and one delivered: the document is still only sent
    fire(first, "start")
    fire(second, "start")
    one = fire(first, "deliver")
    assert ([], "delivered") == (one.derived, one.to_state)
    assert "sent" == document_row(sending, doc).state

    # Every recipient has it: delivered
    both = fire(second, "deliver")
    assert ["delivered"] == both.derived
    assert "delivered" == document_row(sending, doc).state

    # Every recipient registered it: acknowledged
    assert [] == fire(first, "acknowledge").derived
    last = fire(second, "acknowledge")
    assert ["acknowledged"] == last.derived
    row = document_row(sending, doc)
    assert ("acknowledged", last.version) == (row.state, row.version)
    assert [
        "dispatch.start",
        "dispatch.start",
        "dispatch.deliver",
        "dispatch.deliver",
        "delivered",
        "dispatch.acknowledge",
        "dispatch.acknowledge",
        "acknowledged",
    ] == events(sending, doc)[4:]
    assert {} == chain_problems(sending)


def test_acknowledged_straight_from_sending(sending: Runtime, make_document: Callable[..., str]):
    doc = make_document(sending)
    dispatches = send_document(sending, doc).values()

    for dispatch in dispatches:
        sending.engine.fire_dispatch(dispatch, "start")
        result = sending.engine.fire_dispatch(dispatch, "acknowledge")

    assert ["acknowledged"] == result.derived
    assert "acknowledged" == document_row(sending, doc).state


def test_a_refusal_fails_the_document_and_stands_against_a_resend(
    sending: Runtime, make_document: Callable[..., str]
):
    doc = make_document(sending)
    dispatches = send_document(sending, doc)
    first, second = dispatches.values()
    fire = sending.engine.fire_dispatch
    fire(first, "start")
    fire(second, "start")
    fire(first, "deliver")

    # When the second recipient refuses it
    refused = fire(second, "refuse", data={"error": "02: sai thể thức"})

    # Then the document has failed, and its view offers no resend (nothing failed for good)
    assert ["failed"] == refused.derived
    assert "failed" == document_row(sending, doc).state
    with sending.uow(readonly=True) as uow:
        offered = document_view(uow, uow.documents.load(doc))["allowed_events"]
    assert "resend" not in offered
    assert {"000.00.01.H57": "delivered", "000.00.02.H57": "rejected"} == dispatch_states(
        sending, doc
    )

    # When a supervisor resends it
    with pytest.raises(GuardFailed) as refusal:
        sending.engine.fire(doc, "resend", SUPERVISOR, data={"reason": "Gửi lại"})

    # Then the refusal stands: the same package would get the same answer (a corrected
    # document goes as a replacement); nothing was changed
    assert refusal.value.details["failed"] == ["a_dispatch_failed"]
    assert "failed" == document_row(sending, doc).state
    assert {"000.00.01.H57": "delivered", "000.00.02.H57": "rejected"} == dispatch_states(
        sending, doc
    )
    assert {} == chain_problems(sending)


def test_a_dispatch_out_of_attempts_fails_for_good(
    sending: Runtime, make_document: Callable[..., str]
):
    # Given two attempts allowed per dispatch
    doc = make_document(sending)
    first, _second = send_document(sending, doc).values()
    fire = sending.engine.fire_dispatch

    # When the first attempt times out, it may retry
    fire(first, "start")
    assert "pending" == fire(first, "retry", data={"error": "timeout"}).to_state

    # When the second one does too, no attempts are left
    fire(first, "start")
    with pytest.raises(GuardFailed) as spent:
        fire(first, "retry", data={"error": "timeout"})
    assert ["attempts_left"] == spent.value.details["failed"]

    # And failing it fails the document
    failed = fire(first, "fail", data={"error": "timeout"})
    assert ["failed"] == failed.derived
    with sending.uow(readonly=True) as uow:
        row = uow.dispatches.get(first)
    assert ("failed", 2, "timeout") == (row.state, row.attempts, row.last_error)
    assert "failed" == document_row(sending, doc).state

    # When a supervisor resends it
    resent = sending.engine.fire(
        doc, "resend", SUPERVISOR, data={"reason": "Sở đã khôi phục hệ thống"}
    )

    # Then it is sent again: the failed dispatch starts over, one delivery job is queued
    assert ("failed", "sent") == (resent.from_state, resent.to_state)
    assert 1 == len(resent.jobs)
    with sending.uow(readonly=True) as uow:
        again = uow.dispatches.get(first)
    assert (0, "pending") == (again.attempts, again.state)
    assert [row.organ_id] == history(sending, doc)[-1].payload["resent_to"]
    assert {} == chain_problems(sending)


def test_a_failed_document_is_under_way_again_when_its_failed_recipient_says_it_has_it(
    sending: Runtime, make_document: Callable[..., str]
):
    # Given a document whose first dispatch failed for good (its outcome unknown) while
    # the second is still under way: the document failed
    doc = make_document(sending)
    first, second = send_document(sending, doc).values()
    fire = sending.engine.fire_dispatch
    fire(second, "start")
    fire(first, "start")
    fire(first, "retry", data={"error": "timeout"})
    fire(first, "start")
    assert ["failed"] == fire(first, "fail", data={"error": "timeout"}).derived

    # When the first recipient's signed status says it registered it after all (03-06)
    settled = fire(first, "report_completed")

    # Then nothing has failed any more: the document is under way again, waiting for the
    # second, and follows it to acknowledged
    assert (["recovered"], "sent") == (settled.derived, document_row(sending, doc).state)
    assert ["acknowledged"] == fire(second, "acknowledge").derived
    assert "acknowledged" == document_row(sending, doc).state
    assert {} == chain_problems(sending)


def test_dispatch_events_are_checked_like_document_events(
    sending: Runtime, make_document: Callable[..., str]
):
    doc = make_document(sending)
    first, _second = send_document(sending, doc).values()

    with pytest.raises(TransitionNotAllowed) as early:
        sending.engine.fire_dispatch(first, "deliver")
    with pytest.raises(Forbidden):
        sending.engine.fire_dispatch(first, "start", actor=CLERK)
    with pytest.raises(NotFound):
        sending.engine.fire_dispatch("no-such-dispatch", "start", actor=SYSTEM)

    # (a recipient's status, or its answer to a request, may come between attempts: an
    # answer lost, it has it)
    assert {
        "start",
        "acknowledge",
        "agree",
        "decline",
        "refuse",
        "report_assigned",
        "report_processing",
        "report_completed",
    } == set(early.value.details["allowed"])
    assert "pending" == dispatch_states(sending, doc)["000.00.01.H57"]


# -- idempotency -----------------------------------------------------------------------


def test_a_repeated_request_gets_the_first_answer(
    runtime: Runtime, make_document: Callable[..., str]
):
    doc = make_document(runtime)
    data = {"fields": {"place": "Huế"}}
    request = Idempotency.of("edit-42", doc, "edit", data, by="u-clerk")

    first = runtime.engine.fire(doc, "edit", CLERK, data=data, idempotency=request)
    again = runtime.engine.fire(doc, "edit", CLERK, data=data, idempotency=request)

    assert dataclasses.replace(first, replayed=True) == again
    assert False is first.replayed
    assert 2 == document_row(runtime, doc).version
    assert ["create", "edit"] == events(runtime, doc)


def test_a_key_reused_for_another_request_is_refused(
    runtime: Runtime, make_document: Callable[..., str]
):
    doc = make_document(runtime)
    first = {"fields": {"place": "Huế"}}
    other = {"fields": {"place": "Phú Vang"}}
    runtime.engine.fire(
        doc,
        "edit",
        CLERK,
        data=first,
        idempotency=Idempotency.of("edit-42", doc, first, by="u-clerk"),
    )
    before = dump_tables(runtime)

    with pytest.raises(IdempotencyKeyReused) as reused:
        runtime.engine.fire(
            doc,
            "edit",
            CLERK,
            data=other,
            idempotency=Idempotency.of("edit-42", doc, other, by="u-clerk"),
        )

    assert "idempotency_key_reused" == reused.value.code
    assert before == dump_tables(runtime)


def test_a_repeated_create_creates_one_document(runtime: Runtime, make_agency: Callable[..., str]):
    make_agency(runtime)
    request = Idempotency.of("create-1227", SAMPLE_FIELDS, by="u-clerk")

    first = runtime.engine.create_document(CLERK, SAMPLE_FIELDS, [], [], idempotency=request)
    again = runtime.engine.create_document(CLERK, SAMPLE_FIELDS, [], [], idempotency=request)

    assert {**first, "replayed": True} == again
    with runtime.uow(readonly=True) as uow:
        assert 1 == uow.documents.count()


def test_racing_requests_with_one_key_transition_once(
    runtime: Runtime, make_document: Callable[..., str]
):
    # Given one request that a client sent several times at once
    threads = 6
    doc = make_document(runtime)
    data = {"fields": {"place": "Huế"}}
    request = Idempotency.of("edit-race", doc, "edit", data, by="u-clerk")

    outcomes = race(
        threads,
        lambda _i: runtime.engine.fire(doc, "edit", CLERK, data=data, idempotency=request),
    )

    # Then one copy made the transition and every other copy got its answer
    assert all(isinstance(o, FireResult) for o in outcomes), outcomes
    assert [False] + [True] * (threads - 1) == sorted(o.replayed for o in outcomes)
    assert {2} == {o.version for o in outcomes}
    assert 2 == document_row(runtime, doc).version
    assert ["create", "edit"] == events(runtime, doc)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"reason": "Thiếu nơi nhận\x00"}, "reason"),
        ({"reason": "Thiếu \x1b[2J nơi nhận"}, "reason"),
        ({"fields": {"place": "Huế\r\nX-Injected: 1"}}, "fields.place"),
    ],
)
def test_what_a_person_writes_is_checked_however_it_comes_not_only_over_http(
    runtime: Runtime, make_document: Callable[..., str], data: dict[str, Any], field: str
) -> None:
    # The command line fires events straight on the engine, past the API's own checks
    doc = make_document(runtime, files=[sample_file()])
    event, who = ("reject", REVIEWER) if "reason" in data else ("edit", CLERK)
    with pytest.raises(InvalidInput) as refused:
        runtime.engine.fire(doc, event, who, data=data)
    assert refused.value.details["field"] == field
    assert document_row(runtime, doc).version == 1
    # A reason may span lines
    runtime.engine.fire(doc, "reject", REVIEWER, data={"reason": "Thiếu nơi nhận;\nsai số"})


def test_a_transition_the_database_rolled_back_for_another_is_run_again(
    runtime: Runtime, make_document: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database that undoes the first attempt of an edit, as PostgreSQL undoes one
    # of two transactions that deadlock (sqlstate 40P01)
    doc = make_document(runtime, files=[sample_file()])
    engine = runtime.engine
    once = engine._fire_once
    undone: list[str] = []

    class Deadlock(Exception):
        sqlstate = "40P01"

    def deadlocked_once(*args: Any, **kwargs: Any) -> FireResult:
        if not undone:
            undone.append("edit")
            raise OperationalError("UPDATE documents …", {}, Deadlock())
        return once(*args, **kwargs)

    monkeypatch.setattr(engine, "_fire_once", deadlocked_once)

    # When a clerk edits it, the version in hand
    edited = engine.fire(doc, "edit", CLERK, expected_version=1, data={"fields": {"place": "Huế"}})

    # Then the edit is made once, as if nothing had happened
    assert (["edit"], 2) == (undone, edited.version)
    assert ["create", "edit"] == events(runtime, doc)
    assert {} == chain_problems(runtime)


def test_another_database_error_is_not_run_again(
    runtime: Runtime, make_document: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = make_document(runtime, files=[sample_file()])
    calls: list[int] = []

    def broken(*_args: Any, **_kwargs: Any) -> FireResult:
        calls.append(1)
        raise OperationalError("UPDATE documents …", {}, Exception("disk I/O error"))

    monkeypatch.setattr(runtime.engine, "_fire_once", broken)

    with pytest.raises(OperationalError):
        runtime.engine.fire(doc, "edit", CLERK, data={"fields": {"place": "Huế"}})
    assert [1] == calls
