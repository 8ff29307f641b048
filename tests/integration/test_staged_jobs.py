"""A job with an outside step: claimed in one transaction, acted with none, recorded in another."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import InterfaceError, OperationalError

from congvan.actions.context import JobContext
from congvan.actions.jobs import StagedJob, enqueue, new_job
from congvan.storage.clock import FrozenClock
from congvan.storage.database import passing_trouble
from congvan.storage.outbox import DONE, FAILED, PENDING, RUNNING, WAITING, OutboxRepository
from congvan.storage.timers import TimerBusy
from congvan.workflow.bootstrap import Runtime
from tests.conftest import MakeRuntime
from tests.factories import actor


@dataclass
class Probe(StagedJob[str]):
    """Records what each step saw; ``act`` fails while ``failures`` lasts."""

    runtime: Runtime | None = None
    failures: int = 0
    seen: list[tuple[str, Any]] = field(default_factory=list)

    def prepare(self, ctx: JobContext) -> str | None:
        self.seen.append(("prepare", ctx.job.payload["what"]))
        return str(ctx.job.payload["what"]) or None

    def act(self, work: str) -> str:
        assert self.runtime is not None
        # No connection of the pool is checked out: no transaction is open anywhere.
        self.seen.append(("act", self.runtime.db.pool.checkedout()))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the peer does not answer")
        return work.upper()

    def record(self, ctx: JobContext, work: str, outcome: str) -> None:
        self.seen.append(("record", outcome))

    def failed(self, ctx: JobContext, error: str, *, final: bool) -> None:
        self.seen.append(("failed", (error, final)))


def queue(runtime: Runtime, what: str) -> str:
    job = new_job("probe", runtime.clock(), payload={"what": what}, agency_id=None)
    with runtime.uow() as uow:
        enqueue(uow, [job], runtime.clock() + timedelta(seconds=DEADLINE))
        uow.commit()
    return str(job["id"])


DEADLINE = 300


def raising(error: Exception) -> Callable[..., None]:
    """A stand-in for a step that meets ``error`` however it is called."""

    def step(*_args: Any, **_kwargs: Any) -> None:
        raise error

    return step


def status(runtime: Runtime, job_id: str) -> tuple[str, int]:
    with runtime.uow(readonly=True) as uow:
        job = uow.outbox.get(job_id)
        assert job is not None
        return job.status, job.attempts


def test_the_outside_step_runs_with_no_transaction_open(make_runtime: MakeRuntime) -> None:
    # Given a staged job queued
    probe = Probe()
    runtime = make_runtime(jobs={"probe": probe})  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")

    # When it runs
    outcome = runtime.runner.run(job_id)

    # Then it was claimed, acted with no connection held, recorded, and is done
    assert "done" == outcome
    assert [("prepare", "stamp"), ("act", 0), ("record", "STAMP")] == probe.seen
    assert (DONE, 0) == status(runtime, job_id)
    # and a second delivery of its message does nothing
    assert "skipped" == runtime.runner.run(job_id)


def test_a_failed_outside_step_counts_and_the_last_one_is_final(
    make_runtime: MakeRuntime,
) -> None:
    probe = Probe(failures=5)
    runtime = make_runtime(jobs={"probe": probe}, job_max_attempts=2)  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")

    first, second = runtime.runner.run(job_id), runtime.runner.run(job_id)

    assert ("failed", "failed") == (first, second)
    failures = [value for step, value in probe.seen if step == "failed"]
    assert [
        ("ConnectionError: the peer does not answer", False),
        ("ConnectionError: the peer does not answer", True),
    ] == failures
    assert (FAILED, 2) == status(runtime, job_id)


def test_nothing_to_do_ends_the_job_without_acting(make_runtime: MakeRuntime) -> None:
    probe = Probe()
    runtime = make_runtime(jobs={"probe": probe})  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "")

    assert "done" == runtime.runner.run(job_id)
    assert [("prepare", "")] == probe.seen


def test_a_job_no_worker_takes_waits_through_every_deadline_and_runs_once_taken(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given a staged job queued that no worker takes for a long while (the broker down or
    # its message lost, every worker stopped)
    probe = Probe()
    runtime = make_runtime(jobs={"probe": probe}, job_max_attempts=2)  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")

    # When its deadline passes far more often than its attempts allow
    for _ in range(5):
        clock.advance(seconds=DEADLINE + 1)
        runtime.scheduler.run_due()

    # Then nothing was tried, so nothing is counted: it is queued again each time, with
    # a deadline, and runs once a worker takes it
    assert status(runtime, job_id) == (PENDING, 0)
    assert probe.seen == []
    with runtime.uow(readonly=True) as uow:
        assert [t.ref_id for t in uow.timers.of_kind("job_deadline")] == [job_id]
    assert runtime.runner.run(job_id) == "done"
    assert [step for step, _ in probe.seen] == ["prepare", "act", "record"]


def test_a_job_whose_worker_dies_every_time_gives_up_and_its_failed_hook_runs(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given a staged job whose worker takes it and dies mid-act, twice (its lease ends
    # with no outcome recorded)
    probe = Probe()
    runtime = make_runtime(jobs={"probe": probe}, job_max_attempts=2)  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")
    for _ in range(2):
        assert not isinstance(runtime.runner._claim(job_id), str)  # taken, never recorded
        clock.advance(seconds=DEADLINE + 1)
        runtime.scheduler.run_due()

    # Then it failed for good, and its own hook said so (a timestamp row would not be
    # left pending for ever)
    assert status(runtime, job_id) == (FAILED, 2)
    lease_ended = "the worker's lease ended with no outcome recorded"
    assert [v for step, v in probe.seen if step == "failed"] == [
        (lease_ended, False),
        (lease_ended, True),
    ]
    with runtime.uow(readonly=True) as uow:
        assert [t for t in uow.timers.of_kind("job_deadline") if t.ref_id == job_id] == []


@dataclass
class Held(Probe):
    """A staged job whose outside step waits until the test lets it go."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def act(self, work: str) -> str:
        self.entered.set()
        self.release.wait()
        return super().act(work)


def test_other_transitions_commit_while_a_job_acts(
    make_runtime: MakeRuntime, make_document: Callable[..., str]
) -> None:
    # Given a job whose outside step is held open (a barrier), on SQLite or PostgreSQL
    held = Held()
    runtime = make_runtime(jobs={"probe": held})  # type: ignore[dict-item]
    held.runtime = runtime
    job_id = queue(runtime, "stamp")
    worker = threading.Thread(target=runtime.runner.run, args=(job_id,))
    worker.start()
    held.entered.wait()
    try:
        # When other transitions run meanwhile, they commit (nothing holds a write lock)
        document_id = make_document(runtime)
        runtime.engine.fire(document_id, "submit", actor("clerk"))
        with runtime.uow(readonly=True) as uow:
            assert uow.documents.load(document_id).state == "draft"
            assert uow.documents.load(document_id).submitted_revision == 2
        # And the job is running, leased, and a second message for it is skipped
        assert status(runtime, job_id) == (RUNNING, 0)
        assert runtime.runner.run(job_id) == "skipped"
    finally:
        held.release.set()
        worker.join()

    # Then the job ends done, its outcome recorded once
    assert status(runtime, job_id) == (DONE, 0)
    assert held.seen.count(("record", "STAMP")) == 1


def test_a_worker_that_dies_mid_job_is_redriven_when_its_lease_ends(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given a job claimed by a worker that then died (its outside step never returned)
    probe = Probe()
    runtime = make_runtime(jobs={"probe": probe})  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")
    claimed = runtime.runner._claim(job_id)
    assert not isinstance(claimed, str)
    lease, action, work = claimed
    assert lease == clock() + timedelta(seconds=DEADLINE)
    with runtime.uow(readonly=True) as uow:
        [deadline] = [t for t in uow.timers.of_kind("job_deadline") if t.ref_id == job_id]
    assert deadline.due_at == lease  # the deadline timer is the lease

    # When the lease ends and the scheduler fires the timer
    clock.advance(seconds=DEADLINE)
    assert runtime.scheduler.run_due() == 1

    # Then the attempt is counted and the job is queued again for another worker
    assert status(runtime, job_id) == (PENDING, 1)
    with runtime.uow(readonly=True) as uow:
        job = uow.outbox.get(job_id)
    assert job is not None
    assert job.lease_until is None
    assert runtime.runner.run(job_id) == "done"
    # And the dead worker's outcome, if it ever came back, is not recorded over it
    assert runtime.runner._record(job_id, lease, action, work, "LATE") == "skipped"
    assert ("record", "LATE") not in probe.seen


@dataclass
class Overtaken(Probe):
    """Its first outside step outlives its lease: meanwhile ``meanwhile`` runs (the job
    re-driven and done by another worker), then the step fails."""

    meanwhile: Callable[[], None] | None = None

    def act(self, work: str) -> str:
        if self.meanwhile is not None:
            step, self.meanwhile = self.meanwhile, None
            step()
            raise ConnectionError("the peer does not answer")
        return super().act(work)


@pytest.mark.parametrize("then", ["done", "running elsewhere"])
def test_a_worker_failing_after_its_lease_ended_leaves_the_job_to_whoever_took_it(
    make_runtime: MakeRuntime, clock: FrozenClock, then: str
) -> None:
    # Given a job whose outside step outlives its lease: the scheduler re-drives it, and
    # another worker runs it to the end (or is running it), before the first one fails
    probe = Overtaken()
    runtime = make_runtime(jobs={"probe": probe})  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")

    def overtaken() -> None:
        clock.advance(seconds=DEADLINE)
        assert runtime.scheduler.run_due() == 1
        if then == "done":
            assert runtime.runner.run(job_id) == "done"
        else:
            assert not isinstance(runtime.runner._claim(job_id), str)

    probe.meanwhile = overtaken

    # When the first worker's outside step then fails
    assert runtime.runner.run(job_id) == "failed"

    # Then its failure is not counted over the other worker's: the job stays as it left it
    # (one attempt: the one whose lease ended, counted when the scheduler re-drove it)
    expected = (DONE, 1) if then == "done" else (RUNNING, 1)
    assert expected == status(runtime, job_id)
    [(error, final)] = [value for step, value in probe.seen if step == "failed"]
    assert ("lease ended" in error, final) == (True, False)


@dataclass
class Editor(StagedJob[str]):
    """Records its outcome by firing an event on the document, in the same transaction."""

    fail_after_firing: bool = False

    def prepare(self, ctx: JobContext) -> str:
        return str(ctx.job.payload["document_id"])

    def act(self, work: str) -> str:
        return "Về việc tổ chức Hội nghị (đã sửa)"

    def record(self, ctx: JobContext, work: str, outcome: str) -> None:
        assert ctx.events is not None
        ctx.events.fire_on_within(
            ctx.uow, "document", work, "edit", data={"fields": {"subject": outcome}}
        )
        if self.fail_after_firing:
            raise RuntimeError("the outcome could not be kept")


@pytest.mark.parametrize("fails", [False, True], ids=["kept", "rolled-back"])
def test_a_job_fires_the_events_its_outcome_implies_in_its_record_step(
    make_runtime: MakeRuntime, make_document: Callable[..., str], fails: bool
) -> None:
    # Given a draft, and a job that will edit it from its record step
    editor = Editor(fail_after_firing=fails)
    runtime = make_runtime(jobs={"editor": editor})  # type: ignore[dict-item]
    document_id = make_document(runtime)
    job = new_job("editor", runtime.clock(), payload={"document_id": document_id}, agency_id=None)
    with runtime.uow() as uow:
        enqueue(uow, [job], runtime.clock() + timedelta(seconds=DEADLINE))
        uow.commit()

    # When it runs
    outcome = runtime.runner.run(str(job["id"]))

    # Then the event and the job's end commit together, or neither does
    with runtime.uow(readonly=True) as uow:
        doc = uow.documents.get(document_id)
    assert doc is not None
    if fails:
        assert outcome == "failed"
        assert (doc.version, doc.subject) != (2, "Về việc tổ chức Hội nghị (đã sửa)")
        assert doc.version == 1
        assert status(runtime, str(job["id"]))[1] == 1
    else:
        assert outcome == "done"
        assert (doc.version, doc.subject) == (2, "Về việc tổ chức Hội nghị (đã sửa)")
        assert status(runtime, str(job["id"])) == (DONE, 0)


def test_a_deadline_whose_job_another_transaction_holds_is_looked_at_again_uncounted(
    make_runtime: MakeRuntime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job taken by a worker whose lease has ended, its row held by another
    # transaction (that worker recording it at last) when the scheduler fires the deadline
    probe = Probe()
    runtime = make_runtime(jobs={"probe": probe})  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")
    assert not isinstance(runtime.runner._claim(job_id), str)
    clock.advance(seconds=DEADLINE + 1)

    # When the scheduler fires it: the scheduler holds the timer, the other transaction
    # the job's row and is about to delete the timer, so neither may wait for the other
    if runtime.db.dialect.name == "postgresql":
        with runtime.uow() as holder:
            holder.outbox.get(job_id, for_update=True)
            assert runtime.scheduler.tick() == 1
    else:  # SQLite's writers take turns as a whole: the row as the scheduler finds it
        with monkeypatch.context() as m:
            m.setattr(OutboxRepository, "get_unless_held", lambda self, job_id: None)
            assert runtime.scheduler.tick() == 1

    # Then it is put off a moment, nothing counted (no failure, no attempt)...
    with runtime.uow(readonly=True) as uow:
        [timer] = [t for t in uow.timers.of_kind("job_deadline") if t.ref_id == job_id]
    assert (timer.attempts, timer.due_at) == (0, clock() + TimerBusy.RETRY)
    assert status(runtime, job_id) == (RUNNING, 0)
    # ...and fired once the row is free: the lease ended, that counts
    clock.advance(seconds=2)
    assert runtime.scheduler.tick() == 1
    assert status(runtime, job_id) == (PENDING, 1)


@pytest.mark.parametrize("step", ["outcome", "failure"])
def test_what_a_job_did_is_kept_once_the_database_is_back_not_at_its_leases_end(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    step: str,
) -> None:  # fmt: skip
    # Given a staged job whose outside step is done (or failed) while the database
    # restarts: the transaction keeping it fails twice, then the database is back
    caplog.set_level(logging.INFO, "congvan.jobs")
    probe = Probe(failures=1 if step == "failure" else 0)
    runtime = make_runtime(jobs={"probe": probe})  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")
    runner = runtime.runner
    keep = runner._record if step == "outcome" else runner.record_failure
    tries: list[int] = []

    def restarting(*args: Any, **kwargs: Any) -> Any:
        tries.append(1)
        if len(tries) <= 2:
            raise OperationalError("UPDATE", {}, Exception("the database system is starting up"))
        return keep(*args, **kwargs)

    monkeypatch.setattr(runner, "_record" if step == "outcome" else "record_failure", restarting)

    # When a worker runs it
    said = runner.run(job_id)

    # Then it kept what it did as soon as the database was back, in the same run: the
    # outcome recorded and the job done, or the failure counted and the job waiting
    assert len(tries) == 3
    if step == "outcome":
        assert (said, status(runtime, job_id)) == ("done", (DONE, 0))
        assert ("record", "STAMP") in probe.seen
    else:
        assert (said, status(runtime, job_id)) == ("failed", (WAITING, 1))  # its backoff
    waits = [r for r in caplog.records if r.getMessage().startswith("job waits for the database")]
    assert len(waits) == 2 and not any(
        r.getMessage().startswith("job put off") for r in caplog.records
    )


def test_a_job_waiting_for_the_database_stops_waiting_when_its_process_stops(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job whose outcome cannot be kept, the database away for good
    probe = Probe()
    runtime = make_runtime(jobs={"probe": probe})  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")
    down = raising(OperationalError("UPDATE", {}, Exception("could not connect to server")))
    monkeypatch.setattr(runtime.runner, "_record", down)
    monkeypatch.setattr(runtime.runner, "record_failure", down)
    # When the process stops while a worker waits
    worker = threading.Thread(target=lambda: said.append(runtime.runner.run(job_id)))
    said: list[str] = []
    worker.start()
    runtime.runner.stopping.wait(0.6)
    runtime.runner.stop()
    worker.join(timeout=30)
    # Then the worker is free at once: the job left to its lease's end, as before
    assert not worker.is_alive() and said == ["failed"]
    assert status(runtime, job_id) == (RUNNING, 0)


def test_a_job_whose_failure_cannot_be_recorded_while_the_database_is_away_is_put_off(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a job whose step meets the database gone, and whose failure cannot be
    # recorded either (the database restarting)
    probe = Probe()
    runtime = make_runtime(jobs={"probe": probe})  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")
    gone = OperationalError("SELECT 1", {}, Exception("the database system is shutting down"))
    down = raising(gone)
    monkeypatch.setattr(Probe, "act", down)
    monkeypatch.setattr(runtime.runner, "record_failure", down)
    runtime.runner.keeping = timedelta(0)  # (it waits for the database no time at all)

    # When a worker runs it: a line saying so, no traceback, nothing raised to the broker
    assert runtime.runner.run(job_id) == "failed"
    [line] = [r for r in caplog.records if r.getMessage().startswith("job put off")]
    assert (line.levelname, line.exc_info) == ("WARNING", None)
    assert "the database is unavailable" in line.getMessage()

    # And a fault of another kind is raised as ever
    monkeypatch.setattr(runtime.runner, "record_failure", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        runtime.runner.run(queue(runtime, "stamp"))


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (OperationalError("x", {}, Exception("server closed the connection")), "unavailable"),
        (InterfaceError("x", {}, Exception("connection already closed")), "unavailable"),
        (ValueError("a bug"), None),
    ],
)
def test_what_a_background_pass_gets_past_by_itself(error: Exception, said: str | None) -> None:
    trouble = passing_trouble(error)
    assert (trouble is None) if said is None else (said in str(trouble))
