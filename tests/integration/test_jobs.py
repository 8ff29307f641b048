"""Outbox, relay, scheduler and job runner with the in-process broker, on real databases."""

# Asserts read `expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from sqlalchemy import func, select, text

from congvan.actions.calendar import _vietnam
from congvan.actions.context import JobContext
from congvan.actions.jobs import FALLBACK_ACTOR, deadline_timer, enqueue, new_job
from congvan.states.policy import job_backoff_seconds
from congvan.storage.clock import FrozenClock
from congvan.storage.outbox import DONE, ENQUEUED, FAILED, PENDING, Job
from congvan.storage.tables import IdempotentRequest
from congvan.storage.timers import JOB_DEADLINE, DueTimer
from congvan.workflow.bootstrap import Runtime
from tests.factories import actor, create_document
from tests.servers import wait_until

CLERK = actor("clerk")
DEADLINE = 300  # Settings.job_deadline_seconds by default
MARKS = "JOBS"  # the fake job marks its one effect as a row under this pseudo-agency


class RecordingJob:
    """A fake review-check job: it writes one row per job id and counts its runs."""

    def __init__(self, fail_with: str | None = None) -> None:
        self.fail_with = fail_with
        self.runs: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, ctx: JobContext) -> None:
        with self._lock:
            self.runs.append(ctx.job.id)
        # The effect: a row written in the transaction that marks the job done.
        ctx.uow.idempotency.remember(
            MARKS, ctx.job.id, "-", 200, {"action": ctx.job.action}, ctx.now
        )
        if self.fail_with:
            raise RuntimeError(self.fail_with)


def effects(runtime: Runtime) -> int:
    """How many times a fake job's effect was committed."""
    table = IdempotentRequest.__table__  # type: ignore[attr-defined]
    with runtime.uow(readonly=True) as uow:
        query = select(func.count()).select_from(table).where(table.c.agency_id == MARKS)
        return int(uow.conn.execute(query).scalar_one())


def job(runtime: Runtime, job_id: str) -> Job:
    with runtime.uow(readonly=True) as uow:
        found = uow.outbox.get(job_id)
    assert found is not None, job_id
    return found


def timers(runtime: Runtime, document_id: str) -> list[DueTimer]:
    with runtime.uow(readonly=True) as uow:
        return uow.timers.for_document(document_id)


def submit(runtime: Runtime, make_document: Callable[..., str], **fields: Any) -> tuple[str, str]:
    """A draft submitted for review checks; returns (document id, job id)."""
    doc = make_document(runtime, **fields)
    result = runtime.engine.fire(doc, "submit", CLERK)
    assert 1 == len(result.jobs)
    return doc, result.jobs[0]


@pytest.fixture
def recorder() -> RecordingJob:
    return RecordingJob()


@pytest.fixture
def checking(make_runtime: Callable[..., Runtime], recorder: RecordingJob) -> Runtime:
    """An installation whose review-check job is the recording fake."""
    return make_runtime(jobs={"run_review_checks": recorder})


# -- the outbox ------------------------------------------------------------------------


def test_a_transition_with_an_action_writes_a_job_and_its_deadline(
    checking: Runtime, make_document: Callable[..., str], clock: FrozenClock
):
    # When a clerk submits a draft
    doc, job_id = submit(checking, make_document)

    # Then one pending job and one deadline timer were committed with the transition
    written = job(checking, job_id)
    assert ("run_review_checks", PENDING, 0, "default") == (
        written.action,
        written.status,
        written.attempts,
        written.queue,
    )
    assert {"event": "submit", "version": 2, "revision": 2} == written.payload
    deadline = timers(checking, doc)
    assert [(JOB_DEADLINE, job_id)] == [(t.kind, t.ref_id) for t in deadline]
    assert clock() + timedelta(seconds=DEADLINE) == deadline[0].due_at


def test_an_urgent_documents_jobs_go_to_the_urgent_queue(
    checking: Runtime, make_document: Callable[..., str]
):
    _doc, job_id = submit(checking, make_document, urgency=3)  # hỏa tốc

    assert "urgent" == job(checking, job_id).queue


# -- relay and worker ------------------------------------------------------------------


def test_the_relay_and_a_worker_run_the_job_once(
    checking: Runtime, make_document: Callable[..., str], recorder: RecordingJob
):
    # Given a submitted draft and a running worker
    doc, job_id = submit(checking, make_document)
    checking.start(relay=False, scheduler=False)

    # When the relay sends the outbox and the queues drain
    assert 1 == checking.relay.drain()
    checking.join(timeout_ms=10_000)

    # Then the job ran once, is done, and its deadline is gone
    assert [job_id] == recorder.runs
    assert DONE == job(checking, job_id).status
    assert [] == timers(checking, doc)
    assert 1 == effects(checking)
    assert 0 == checking.relay.drain()


def test_a_reset_timer_is_due_anew_with_no_failures_counted(
    checking: Runtime, make_document: Callable[..., str], clock: FrozenClock
):
    # Given a job's deadline timer that failed twice and was parked
    doc, job_id = submit(checking, make_document)
    [first] = timers(checking, doc)
    with checking.uow() as uow:
        uow.timers.park(first.id, 2, "boom", clock())
        uow.commit()

    # When it is reset to a later time with a payload
    later = clock() + timedelta(minutes=7)
    with checking.uow() as uow:
        reset = deadline_timer(job_id, doc, later, agency_id=None, backoff=True)
        uow.timers.reset(reset)
        uow.commit()

    # Then it is the one timer of that job: due then, nothing counted, nothing parked
    [timer] = timers(checking, doc)
    assert (timer.kind, timer.ref_id, timer.due_at) == (JOB_DEADLINE, job_id, later)
    assert (timer.attempts, timer.last_error, timer.parked_at) == (0, None, None)
    assert {"reason": "backoff"} == timer.payload

    # And a reset of a timer that is not there adds it
    with checking.uow() as uow:
        uow.timers.cancel(JOB_DEADLINE, job_id)
        uow.timers.reset(deadline_timer(job_id, doc, later, agency_id=None))
        uow.commit()
    [added] = timers(checking, doc)
    assert (added.ref_id, added.due_at, added.payload) == (job_id, later, {})


def test_the_relay_stops_at_a_batch_short_of_full(
    checking: Runtime, make_document: Callable[..., str], monkeypatch: pytest.MonkeyPatch
):
    # Given three pending jobs and batches of two
    for _ in range(3):
        submit(checking, make_document)
    checking.relay.batch = 2
    passes: list[int] = []
    relay_once = checking.relay.relay_once

    def counted() -> int:
        passes.append(relay_once())
        return passes[-1]

    monkeypatch.setattr(checking.relay, "relay_once", counted)

    # When it drains, then drains again
    assert 3 == checking.relay.drain()
    assert 0 == checking.relay.drain()

    # Then a batch short of full ended the first drain: no pass that could find nothing
    assert [2, 1, 0] == passes


def test_only_a_job_that_queued_jobs_wakes_the_relay(
    make_runtime: Callable[..., Runtime],
    make_document: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
):
    def queues_one(ctx: JobContext) -> None:
        if ctx.job.payload.get("follow_up"):
            return
        enqueue(
            ctx.uow,
            [new_job("follow_up", ctx.now, payload={"follow_up": True}, agency_id=None)],
            ctx.now,
        )

    runtime = make_runtime(jobs={"run_review_checks": queues_one, "follow_up": queues_one})
    _doc, job_id = submit(runtime, make_document)
    kicks: list[str] = []
    monkeypatch.setattr(runtime.relay, "kick", lambda: kicks.append("kick"))

    # The job queued a follow-up: the relay is told once the record step committed
    assert "done" == runtime.runner.run(job_id)
    assert ["kick"] == kicks
    with runtime.uow(readonly=True) as uow:
        [follow_up] = [j for j in uow.outbox.claim_pending(10) if j.action == "follow_up"]

    # The follow-up queued nothing: nobody is woken for nothing
    assert "done" == runtime.runner.run(follow_up.id)
    assert ["kick"] == kicks


# -- the hand-over: jobs sent from memory once their transaction commits ----------------


class Handed:
    """What a relay was handed and how often it read the table."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.jobs: list[str] = []
        self.passes = 0
        relay = runtime.relay
        hand_off, relay_once = relay.hand_off, relay.relay_once

        def handed(jobs: Any) -> None:
            self.jobs += [j.id for j in jobs]
            hand_off(jobs)

        def counted() -> int:
            self.passes += 1
            return relay_once()

        monkeypatch.setattr(relay, "hand_off", handed)
        monkeypatch.setattr(relay, "relay_once", counted)


def test_a_committed_job_is_handed_to_the_broker_with_no_pass_over_the_table(
    checking: Runtime,
    make_document: Callable[..., str],
    recorder: RecordingJob,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given workers and a relay whose next poll comes only after a minute (its pass on
    # starting done)
    checking.relay.poll_seconds = 60
    seen = Handed(checking, monkeypatch)
    checking.start(scheduler=False)
    wait_until(lambda: seen.passes == 1, timeout=10, what="the relay's pass on starting")
    passes_at_start = seen.passes

    # When a clerk submits a draft
    _doc, job_id = submit(checking, make_document)

    # Then its job was written enqueued, handed over once committed, and run: the relay
    # never read the table for it
    wait_until(lambda: job(checking, job_id).status == DONE, timeout=10, what="the job")
    assert [job_id] == seen.jobs
    assert [job_id] == recorder.runs
    assert passes_at_start == seen.passes
    with checking.uow(readonly=True) as uow:
        [row] = uow.conn.execute(
            text("SELECT enqueued_at, created_at FROM outbox WHERE id = :id"), {"id": job_id}
        ).all()
    assert row[0] is not None and row[0] == row[1]


def test_jobs_of_a_rolled_back_savepoint_or_transaction_are_never_handed_over(
    checking: Runtime, make_document: Callable[..., str], monkeypatch: pytest.MonkeyPatch
):
    checking.relay.poll_seconds = 60
    checking.start(workers=False, scheduler=False)
    seen = Handed(checking, monkeypatch)
    doc = make_document(checking)
    now = checking.clock()
    kept, undone, dropped = (new_job("k", now, document_id=doc, agency_id=None) for _ in range(3))

    # A savepoint rolled back takes its job with it; the rest of the transaction stays
    with checking.uow() as uow:
        enqueue(uow, [kept], now)
        with pytest.raises(RuntimeError), uow.savepoint():
            enqueue(uow, [undone], now)
            raise RuntimeError("undone")
        uow.commit()
    # A transaction that never commits hands over nothing
    with checking.uow() as uow:
        enqueue(uow, [dropped], now)

    assert [kept["id"]] == seen.jobs
    with checking.uow(readonly=True) as uow:
        assert [kept["id"]] == [j.id for j in uow.outbox.for_document(doc)]


def test_a_job_the_broker_refuses_waits_pending_and_the_poll_sends_it(
    checking: Runtime,
    make_document: Callable[..., str],
    recorder: RecordingJob,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given a broker that refuses one message (Redis down for a moment)
    checking.relay.poll_seconds = 0.2
    enqueue_message = checking.broker.enqueue
    refused: list[str] = []

    def refuse_once(message: dramatiq.Message[Any], *, delay: int | None = None) -> Any:
        if not refused:
            refused.append(message.args[0])
            raise ConnectionError("broker down")
        return enqueue_message(message, delay=delay)

    monkeypatch.setattr(checking.broker, "enqueue", refuse_once)
    checking.start(scheduler=False)

    # When a job is handed over
    _doc, job_id = submit(checking, make_document)

    # Then the refused job went back to pending, and the next poll sent it
    wait_until(lambda: job(checking, job_id).status == DONE, timeout=10, what="the job")
    assert [job_id] == refused
    assert [job_id] == recorder.runs


def test_a_broker_refusing_jobs_is_logged_with_why_once_not_every_poll(
    checking: Runtime,
    make_document: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    # Given a job, and a broker that refuses every message (Redis down)
    _doc, job_id = submit(checking, make_document)
    enqueue_message = checking.broker.enqueue

    def down(message: dramatiq.Message[Any], *, delay: int | None = None) -> Any:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(checking.broker, "enqueue", down)

    # When the relay tries it on three passes in a row, then the broker comes back
    with caplog.at_level(logging.INFO, logger="congvan.relay"):
        for _ in range(3):
            assert [job_id] == checking.relay._send([job(checking, job_id)])
        monkeypatch.setattr(checking.broker, "enqueue", enqueue_message)
        assert [] == checking.relay._send([job(checking, job_id)])

    # Then the refusal is logged once, saying why, and the recovery once
    said = [(r.getMessage(), getattr(r, "error", None)) for r in caplog.records]
    assert said == [
        (
            "broker refused jobs",
            "ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused.",
        ),
        ("broker takes jobs again", None),
    ]


def test_jobs_handed_to_a_relay_that_stops_wait_pending_for_the_next_one(
    checking: Runtime, make_document: Callable[..., str], monkeypatch: pytest.MonkeyPatch
):
    # Given a relay loop that cannot send (stuck on a slow broker)
    checking.relay.poll_seconds = 60
    checking.start(workers=False, scheduler=False)
    monkeypatch.setattr(checking.relay, "flush", lambda: 0)
    _doc, job_id = submit(checking, make_document)
    assert ENQUEUED == job(checking, job_id).status

    # When the process stops its relay
    checking.relay.stop()

    # Then the job is pending again, for the next relay to send at once
    assert PENDING == job(checking, job_id).status
    # And a transaction that began before the stop and commits after it leaves its job
    # pending too
    assert not checking.relay.handing_off()
    checking.relay.hand_off([job(checking, job_id)])
    assert PENDING == job(checking, job_id).status


def test_a_worker_process_relay_sends_what_it_is_handed_and_never_polls(
    checking: Runtime,
    make_document: Callable[..., str],
    recorder: RecordingJob,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given a pending job written where no relay ran (a command-line process)
    _pending_doc, pending_job = submit(checking, make_document)
    assert PENDING == job(checking, pending_job).status

    # When a worker process starts, its relay handing over only
    checking.relay.poll_seconds = 0.05
    checking.start(relay=False, scheduler=False, hand_off=True)
    seen = Handed(checking, monkeypatch)
    _doc, handed_job = submit(checking, make_document)

    # Then what its own transactions write runs, and the table is left to the scheduler
    wait_until(lambda: job(checking, handed_job).status == DONE, timeout=10, what="the job")
    threading.Event().wait(0.3)  # several poll intervals
    assert 0 == seen.passes
    assert PENDING == job(checking, pending_job).status
    assert [handed_job] == recorder.runs


def test_background_relay_runs_jobs_soon_after_commit(
    checking: Runtime, make_document: Callable[..., str], recorder: RecordingJob
):
    # Given workers and the relay loop running in the background
    checking.start(scheduler=False)

    # When a clerk submits a draft
    _doc, job_id = submit(checking, make_document)

    # Then the commit kicks the relay and the job is done without anyone draining
    wait_until(lambda: job(checking, job_id).status == DONE, timeout=10, what="the job")
    assert [job_id] == recorder.runs


def test_running_a_job_twice_has_the_effect_of_once(
    checking: Runtime, make_document: Callable[..., str], recorder: RecordingJob
):
    _doc, job_id = submit(checking, make_document)

    first = checking.runner.run(job_id)
    second = checking.runner.run(job_id)

    assert ("done", "skipped") == (first, second)
    assert [job_id] == recorder.runs
    assert 1 == effects(checking)


def test_a_message_delivered_twice_runs_the_job_once(
    checking: Runtime, make_document: Callable[..., str], recorder: RecordingJob
):
    # Given a job relayed once and its message redelivered by the broker
    _doc, job_id = submit(checking, make_document)
    checking.relay.drain()
    checking.broker.enqueue(
        dramatiq.Message(
            queue_name="default", actor_name=FALLBACK_ACTOR, args=(job_id,), kwargs={}, options={}
        )
    )

    # When a worker takes both messages
    checking.start(relay=False, scheduler=False)
    checking.join(timeout_ms=10_000)

    # Then the job's effect happened once
    assert [job_id] == recorder.runs
    assert 1 == effects(checking)


# -- recovery from lost messages -------------------------------------------------------


def test_a_job_never_relayed_is_redriven_after_its_deadline(
    checking: Runtime,
    make_document: Callable[..., str],
    recorder: RecordingJob,
    clock: FrozenClock,
):
    # Given a transition that committed, and a process that died before relaying
    doc, job_id = submit(checking, make_document)
    assert 0 == checking.scheduler.run_due()  # nothing is due before the deadline

    # When the deadline passes and the scheduler runs
    clock.advance(seconds=DEADLINE + 1)
    assert 1 == checking.scheduler.run_due()

    # Then the job is pending again with a fresh deadline; nothing was tried, so no
    # attempt is counted
    redriven = job(checking, job_id)
    assert (PENDING, 0) == (redriven.status, redriven.attempts)
    assert [(JOB_DEADLINE, job_id)] == [(t.kind, t.ref_id) for t in timers(checking, doc)]
    assert clock() < timers(checking, doc)[0].due_at

    # And the relay sends it, and a worker runs it
    checking.start(relay=False, scheduler=False)
    assert 1 == checking.relay.drain()
    checking.join(timeout_ms=10_000)
    assert [job_id] == recorder.runs
    assert DONE == job(checking, job_id).status
    assert [] == timers(checking, doc)


def test_a_message_the_broker_lost_is_redriven_after_its_deadline(
    checking: Runtime,
    make_document: Callable[..., str],
    recorder: RecordingJob,
    clock: FrozenClock,
):
    # Given a job relayed to a broker that then lost the message (Redis restarted)
    doc, job_id = submit(checking, make_document)
    assert 1 == checking.relay.drain()
    assert ENQUEUED == job(checking, job_id).status
    checking.broker.flush_all()

    # When the deadline passes
    clock.advance(seconds=DEADLINE + 1)
    assert 1 == checking.scheduler.run_due()

    # Then it is sent again and runs
    assert PENDING == job(checking, job_id).status
    checking.start(relay=False, scheduler=False)
    assert 1 == checking.relay.drain()
    checking.join(timeout_ms=10_000)
    assert [job_id] == recorder.runs
    assert 1 == effects(checking)
    assert DONE == job(checking, job_id).status
    assert [] == timers(checking, doc)


def test_a_done_job_is_not_redriven(
    checking: Runtime, make_document: Callable[..., str], clock: FrozenClock
):
    _doc, job_id = submit(checking, make_document)
    checking.runner.run(job_id)

    clock.advance(seconds=DEADLINE * 10)

    assert 0 == checking.scheduler.run_due()
    assert (DONE, 0) == (job(checking, job_id).status, job(checking, job_id).attempts)


def test_a_job_whose_messages_never_reach_a_worker_is_never_given_up(
    make_runtime: Callable[..., Runtime],
    make_document: Callable[..., str],
    recorder: RecordingJob,
    clock: FrozenClock,
):
    # Given three attempts per job, and messages that do not reach a worker for hours (the
    # broker down, every worker stopped: losing Redis delays work, never loses it)
    runtime = make_runtime(jobs={"run_review_checks": recorder}, job_max_attempts=3)
    doc, job_id = submit(runtime, make_document)

    # When many more deadlines than attempts pass unconfirmed
    for _ in range(10):
        clock.now = timers(runtime, doc)[0].due_at
        assert 1 == runtime.scheduler.run_due()

    # Then nothing was tried or counted, a deadline still watches it, and it runs once a
    # worker takes it
    assert (PENDING, 0) == (job(runtime, job_id).status, job(runtime, job_id).attempts)
    assert [(JOB_DEADLINE, job_id)] == [(t.kind, t.ref_id) for t in timers(runtime, doc)]
    assert [] == recorder.runs
    assert "done" == runtime.runner.run(job_id)
    assert [job_id] == recorder.runs


# -- failing jobs ----------------------------------------------------------------------


def test_a_failing_job_backs_off_and_gives_up_after_max_attempts(
    make_runtime: Callable[..., Runtime],
    make_document: Callable[..., str],
    clock: FrozenClock,
):
    # Given a job that always fails, with three attempts allowed
    failing = RecordingJob(fail_with="cổng trục liên thông không trả lời")
    runtime = make_runtime(jobs={"run_review_checks": failing}, job_max_attempts=3)
    doc, job_id = submit(runtime, make_document)

    for attempt in (1, 2):
        # When it runs and fails
        assert "failed" == runtime.runner.run(job_id)

        # Then the attempt and its error are recorded, its effect rolled back, and a
        # backoff timer replaces the deadline
        failed = job(runtime, job_id)
        assert attempt == failed.attempts
        assert "RuntimeError: cổng trục liên thông không trả lời" == _last_error(runtime, job_id)
        assert 0 == effects(runtime)
        backoff = timers(runtime, doc)
        assert [(JOB_DEADLINE, job_id)] == [(t.kind, t.ref_id) for t in backoff]
        assert clock() + timedelta(seconds=job_backoff_seconds(attempt)) == backoff[0].due_at

        # And when the backoff ends, the scheduler requeues it without counting a new failure
        clock.now = backoff[0].due_at
        assert 1 == runtime.scheduler.run_due()
        requeued = job(runtime, job_id)
        assert (PENDING, attempt) == (requeued.status, requeued.attempts)
        assert 1 == runtime.relay.drain()

    # When the third attempt fails too, the job is failed for good
    assert "failed" == runtime.runner.run(job_id)
    final = job(runtime, job_id)
    assert (FAILED, 3) == (final.status, final.attempts)
    assert [] == timers(runtime, doc)
    assert [job_id] * 3 == failing.runs

    # And nothing brings it back
    clock.advance(hours=24)
    assert 0 == runtime.scheduler.run_due()
    assert "skipped" == runtime.runner.run(job_id)
    assert [job_id] * 3 == failing.runs


def _last_error(runtime: Runtime, job_id: str) -> str:
    from congvan.storage.tables import OutboxJob

    table = OutboxJob.__table__  # type: ignore[attr-defined]
    with runtime.uow(readonly=True) as uow:
        query = select(table.c.last_error).where(table.c.id == job_id)
        return str(uow.conn.execute(query).scalar_one())


def test_a_job_runs_through_a_redis_broker(
    make_runtime: Callable[..., Runtime],
    make_document: Callable[..., str],
    recorder: RecordingJob,
    redis_url: str,
):
    # Given the distributed setup: the same code with Redis as the broker
    runtime = make_runtime(jobs={"run_review_checks": recorder}, broker_url=redis_url)
    runtime.start(scheduler=False)

    # When a clerk submits a draft
    _doc, job_id = submit(runtime, make_document)

    # Then the relay sends it through Redis and a worker runs it
    wait_until(lambda: job(runtime, job_id).status == DONE, timeout=10, what="the job")
    assert [job_id] == recorder.runs


def test_a_review_job_of_an_earlier_submission_records_nothing(runtime: Runtime) -> None:
    # Given a draft submitted (job 1), returned, and submitted again (job 2)
    doc_id = create_document(runtime)
    first = runtime.engine.fire(doc_id, "submit", actor("clerk")).jobs[0]
    runtime.engine.fire(doc_id, "reject", actor("reviewer"), data={"reason": "Sửa lại"})
    second = runtime.engine.fire(doc_id, "submit", actor("clerk")).jobs[0]

    # When only the first job runs
    assert "done" == runtime.runner.run(first)

    # Then the new revision still waits for its own checks
    with runtime.uow() as uow:
        revision = uow.documents.load(doc_id).revision
        assert [] == uow.checks.for_revision(doc_id, revision)
    assert "done" == runtime.runner.run(second)
    with runtime.uow() as uow:
        assert uow.checks.for_revision(doc_id, revision)


def test_review_checks_run_with_no_write_lock_held(
    runtime: Runtime, make_document: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a submitted draft whose checks are held open while they run (a barrier)
    doc, job_id = submit(runtime, make_document)
    other = make_document(runtime)
    entered, release = threading.Event(), threading.Event()
    run_checks = runtime.review.run_checks

    def held(inp: Any, **only: Any) -> Any:
        entered.set()
        release.wait()
        return run_checks(inp, **only)

    monkeypatch.setattr(runtime.review, "run_checks", held)
    worker = threading.Thread(target=runtime.runner.run, args=(job_id,))
    worker.start()
    entered.wait()
    try:
        # When another transition runs meanwhile, it commits
        runtime.engine.fire(other, "submit", actor("clerk"))
    finally:
        release.set()
        worker.join()

    # Then the checks were recorded for the held document all the same
    assert job(runtime, job_id).status == DONE
    with runtime.uow(readonly=True) as uow:
        assert uow.checks.for_revision(doc, 2)


def test_a_process_loads_its_years_of_days_off_as_it_starts(checking: Runtime, clock: FrozenClock):
    # Given no year of days off loaded in this process yet
    _vietnam.cache_clear()

    # When its background threads start
    checking.start(workers=False, relay=False, scheduler=False)

    # Then this year's and next year's are loaded, before any transition needs them
    hits = _vietnam.cache_info().hits
    today = clock().date()
    _vietnam(today.year)
    _vietnam(today.year + 1)
    assert hits + 2 == _vietnam.cache_info().hits


def test_an_api_only_process_hands_its_jobs_to_the_broker_while_it_serves(
    checking: Runtime, make_document: Callable[..., str]
):
    # Given the API served alone beside workers elsewhere (`serve --no-workers` on Redis)
    from fastapi.testclient import TestClient

    from congvan.workflow.api import create_app

    app = create_app(checking, hand_off=True)
    with TestClient(app):
        # When a transition writes a job while it serves
        handing_off = checking.relay.handing_off()
        _doc, job_id = submit(checking, make_document)

        # Then the job went to the broker once committed, with no pass over the table
        wait_until(
            lambda: checking.broker.queues["default"].qsize() == 1, timeout=10, what="the job"
        )
    assert handing_off
    assert ENQUEUED == job(checking, job_id).status
    assert not checking.relay.handing_off()  # and it stopped with the app


def test_a_commit_stands_when_the_stopped_relay_cannot_put_its_jobs_back(
    checking: Runtime, make_document: Callable[..., str], monkeypatch: pytest.MonkeyPatch
):
    # Given a transaction begun while the relay ran, committing after it stopped, with
    # the database refusing the relay's own transaction
    checking.relay.poll_seconds = 60
    checking.start(workers=False, scheduler=False)
    doc = make_document(checking)
    now = checking.clock()
    written = new_job("k", now, document_id=doc, agency_id=None)
    with checking.uow() as uow:
        enqueue(uow, [written], now)
        checking.relay.stop()

        def refused() -> Any:
            raise OSError("database gone")

        monkeypatch.setattr(checking.relay, "open_uow", refused)

        # When it commits, the commit is not undone nor reported as failed
        uow.commit()

    # Then the job is kept, enqueued, for its deadline timer to re-drive
    assert ENQUEUED == job(checking, written["id"]).status
    assert [JOB_DEADLINE] == [t.kind for t in timers(checking, doc)]


def test_join_waits_for_the_pass_the_relay_loop_has_under_way(
    checking: Runtime,
    make_document: Callable[..., str],
    recorder: RecordingJob,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given the relay loop in the middle of a pass: it took the handed-over job and the
    # broker is slow to take it
    taken, release = threading.Event(), threading.Event()
    enqueue = checking.broker.enqueue

    def slow_enqueue(message: Any, **options: Any) -> Any:
        taken.set()
        release.wait(5)
        return enqueue(message, **options)

    monkeypatch.setattr(checking.broker, "enqueue", slow_enqueue)
    checking.start(scheduler=False)
    _doc, job_id = submit(checking, make_document)
    assert taken.wait(5), "the loop took the job"

    # When someone joins meanwhile (tests and the demo do, to wait for the work)
    joining = threading.Thread(target=checking.join)
    joining.start()
    threading.Event().wait(0.2)
    still_waiting = joining.is_alive()
    release.set()
    joining.join(10)

    # Then join waited for that pass and the job it sent: the job is done when it returns
    assert still_waiting
    assert not joining.is_alive()
    assert job(checking, job_id).status == DONE
    assert [job_id] == recorder.runs
