"""The scheduler isolates failures: a timer whose handler raises never starves the others.

Each timer fires in its own savepoint; a failure is counted on the timer's row, the timer
is taken again after a doubling backoff, and parked after the limit. Several schedulers
running at once never fire one timer twice (SQLite and PostgreSQL).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from pytest import CaptureFixture, LogCaptureFixture

from congvan.actions.jobs import JobRunner, enqueue, new_job
from congvan.storage.clock import ClockWatch, FrozenClock, utcnow
from congvan.storage.ids import new_id
from congvan.storage.timers import DueTimer
from congvan.storage.unit_of_work import UnitOfWork
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.cli import main
from congvan.workflow.scheduler import Scheduler

from ..conftest import MakeRuntime

FAILING = "test_failing"
RECORDED = "test_recorded"


class Recorder:
    """A handler that notes which timers it fired (thread-safe)."""

    def __init__(self) -> None:
        self.fired: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        with self.lock:
            self.fired[timer.id] += 1


def broken(uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
    """Writes something, then fails: what it wrote must be undone with it."""
    add_timers(uow, RECORDED, 1, now + timedelta(days=365), ref="written by a failed handler")
    raise RuntimeError("the escalation service is down")


def add_timers(
    uow: UnitOfWork, kind: str, n: int, due_at: datetime, *, ref: str = "test"
) -> list[str]:
    ids = [new_id() for _ in range(n)]
    uow.timers.add([{"id": i, "kind": kind, "ref_id": ref, "due_at": due_at} for i in ids])
    return ids


def seed(runtime: Runtime, kind: str, n: int, due_at: datetime) -> list[str]:
    with runtime.uow() as uow:
        ids = add_timers(uow, kind, n, due_at)
        uow.commit()
    return ids


def timer(runtime: Runtime, timer_id: str) -> DueTimer | None:
    with runtime.uow(readonly=True) as uow:
        found = [t for t in uow.timers.of_kind(FAILING) if t.id == timer_id]
    return found[0] if found else None


def scheduler_of(runtime: Runtime, recorder: Recorder, *, batch: int = 200) -> Scheduler:
    scheduler = Scheduler(
        runtime.uow,
        runtime.clock,
        max_attempts=3,
        retry_seconds=30,
        retry_cap_seconds=50,
        batch=batch,
        handlers={FAILING: broken, RECORDED: recorder},
    )
    return scheduler


def test_a_failing_timer_due_first_does_not_starve_the_timers_behind_it(
    runtime: Runtime, clock: FrozenClock
) -> None:
    # Given a timer whose handler raises, due before three others, and one timer per tick
    recorder = Recorder()
    scheduler = scheduler_of(runtime, recorder, batch=1)
    [failing] = seed(runtime, FAILING, 1, clock() - timedelta(minutes=5))
    others = seed(runtime, RECORDED, 3, clock() - timedelta(minutes=1))

    # When the scheduler ticks four times
    for _ in range(4):
        scheduler.tick()

    # Then the three behind it fired, once each
    assert recorder.fired == Counter(dict.fromkeys(others, 1))
    # And the failure was counted on its row, its error kept, and it waits for its backoff
    kept = timer(runtime, failing)
    assert kept is not None
    assert kept.attempts == 1
    assert kept.last_error == "RuntimeError: the escalation service is down"
    assert kept.due_at == clock() + timedelta(seconds=30)
    assert kept.parked_at is None
    # And what the failed handler wrote was undone with it
    with runtime.uow(readonly=True) as uow:
        refs = {t.ref_id for t in uow.timers.of_kind(RECORDED)}
    assert "written by a failed handler" not in refs


def test_a_timer_that_keeps_failing_backs_off_then_is_parked_visibly(
    runtime: Runtime, clock: FrozenClock
) -> None:
    # Given a timer whose handler always raises, and a limit of three attempts
    scheduler = scheduler_of(runtime, Recorder())
    [failing] = seed(runtime, FAILING, 1, clock())

    # When it fails once: taken again after 30 s; twice: after 50 s (doubled, capped)
    assert scheduler.run_due() == 1
    assert scheduler.run_due() == 0  # not before its backoff
    clock.advance(seconds=30)
    assert scheduler.run_due() == 1
    kept = timer(runtime, failing)
    assert kept is not None
    assert (kept.attempts, kept.due_at) == (2, clock() + timedelta(seconds=50))

    # And the third failure parks it: kept, listed, never taken again
    clock.advance(seconds=50)
    assert scheduler.run_due() == 1
    clock.advance(days=30)
    assert scheduler.run_due() == 0
    with runtime.uow(readonly=True) as uow:
        parked = uow.timers.parked()
        assert [(t.id, t.attempts) for t in parked] == [(failing, 3)]
        assert uow.timers.count_parked() == 1
        assert uow.timers.next_due() is None  # a parked timer is not "next"

    # When an operator retries it, it is taken once more with its count reset
    with runtime.uow() as uow:
        assert uow.timers.unpark(failing, clock())
        assert not uow.timers.unpark(new_id(), clock())
        uow.commit()
    assert scheduler.run_due() == 1
    kept = timer(runtime, failing)
    assert kept is not None
    assert (kept.attempts, kept.parked_at) == (1, None)


def test_a_timer_of_an_unknown_kind_is_counted_and_parked_not_dropped(
    runtime: Runtime, clock: FrozenClock
) -> None:
    scheduler = scheduler_of(runtime, Recorder())
    with runtime.uow() as uow:
        [orphan] = add_timers(uow, "no_such_kind", 1, clock())
        uow.commit()
    for _ in range(3):
        scheduler.run_due()
        clock.advance(minutes=5)
    with runtime.uow(readonly=True) as uow:
        [parked] = uow.timers.parked()
    assert parked.id == orphan
    assert parked.last_error == "LookupError: no handler for timers of kind 'no_such_kind'"


def test_two_schedulers_at_once_fire_every_timer_exactly_once(
    runtime: Runtime, clock: FrozenClock
) -> None:
    # Given many due timers and two schedulers with small batches
    recorder = Recorder()
    ids = seed(runtime, RECORDED, 400, clock())
    schedulers = [scheduler_of(runtime, recorder, batch=25) for _ in range(2)]

    # When both run at the same time
    threads = [threading.Thread(target=s.run_due) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every timer fired once, and none is left
    assert recorder.fired == Counter(dict.fromkeys(ids, 1))
    with runtime.uow(readonly=True) as uow:
        assert uow.timers.of_kind(RECORDED) == []


def test_a_scheduler_holding_a_timer_neither_loses_it_nor_lets_another_fire_it(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given a scheduler whose handler is stuck on the first timer it took
    runtime = make_runtime()
    entered, release = threading.Event(), threading.Event()
    recorder = Recorder()

    def stuck(uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        entered.set()
        release.wait()
        recorder(uow, timer, now)

    holding = scheduler_of(runtime, recorder, batch=1)
    holding.handlers[FAILING] = stuck
    [held] = seed(runtime, FAILING, 1, clock() - timedelta(seconds=1))
    rest = seed(runtime, RECORDED, 50, clock())
    first = threading.Thread(target=holding.tick)
    first.start()
    entered.wait()

    # When another scheduler runs meanwhile (on PostgreSQL it skips the locked row; on
    # SQLite it waits for the one writer), and the first is released
    other = threading.Thread(target=scheduler_of(runtime, recorder).run_due)
    other.start()
    release.set()
    first.join()
    other.join()

    # Then the held timer fired once (by its holder) and every other timer once
    assert recorder.fired == Counter(dict.fromkeys([held, *rest], 1))
    assert timer(runtime, held) is None


def test_an_operator_lists_parked_timers_and_retries_one_from_the_cli(
    runtime: Runtime, clock: FrozenClock, db_url: str, tmp_path: Path, capsys: CaptureFixture[str]
) -> None:
    # Given a timer parked after failing three times
    scheduler = scheduler_of(runtime, Recorder())
    [failing] = seed(runtime, FAILING, 1, clock())
    for _ in range(3):
        scheduler.run_due()
        clock.advance(hours=1)
    cli = ["--data-dir", str(tmp_path), "--database-url", db_url, "timers"]

    # When the operator lists parked timers, they see it with its last error
    assert main([*cli, "parked"]) == 0
    listed = capsys.readouterr().out
    assert failing in listed
    assert "3 attempts" in listed
    assert "RuntimeError: the escalation service is down" in listed

    # And retrying it takes it off the list; retrying an unknown id says so and exits 2
    assert main([*cli, "retry", failing]) == 0
    assert main([*cli, "retry", failing]) == 2
    assert f"error [not_found]: No parked timer '{failing}'." in capsys.readouterr().err
    assert main([*cli, "parked"]) == 0
    assert "no parked timers" in capsys.readouterr().out
    kept = timer(runtime, failing)
    assert kept is not None
    assert (kept.attempts, kept.parked_at) == (0, None)


def test_the_backoff_doubles_up_to_its_cap_however_many_attempts(runtime: Runtime) -> None:
    scheduler = scheduler_of(runtime, Recorder())
    waits = [scheduler.backoff(n).total_seconds() for n in (1, 2, 3, 1000)]
    assert waits == [30, 50, 50, 50]


class Stepped:
    """This machine's clock, stepped ``by`` since the process started (an NTP step, a
    virtual machine resumed)."""

    def __init__(self, by: timedelta) -> None:
        self.by = by

    def __call__(self) -> datetime:
        return utcnow() + self.by


def test_a_clock_stepped_since_start_neither_judges_nor_sets_a_lease_until_it_agrees(
    runtime: Runtime, clock: FrozenClock, db_kind: str, caplog: LogCaptureFixture
) -> None:
    # Given due timers, a job to run, and this machine's clock stepped 10 minutes ahead
    # of the database server's since the scheduler and the workers started
    recorder = Recorder()
    ids = seed(runtime, RECORDED, 3, clock())
    with runtime.uow() as uow:
        job = new_job("test_noop", clock(), agency_id=None)
        enqueue(uow, [job], clock() + timedelta(minutes=5))
        uow.commit()
    wall = Stepped(timedelta(minutes=10))
    watch = ClockWatch(timedelta(seconds=30), every=0, wall=wall)
    scheduler = scheduler_of(runtime, recorder)
    scheduler.clock_watch = watch
    ran: list[str] = []
    runner = JobRunner(
        runtime.uow,
        {"test_noop": lambda ctx: ran.append(ctx.job.id)},
        clock,
        max_attempts=3,
        clock_watch=watch,
    )

    # When the scheduler ticks and a worker takes the job
    fired = scheduler.run_due()
    outcome = runner.run(job["id"])

    # Then on PostgreSQL (whose server has a clock of its own) nothing is judged or run:
    # no timer fired, the job waits its turn with no attempt counted, and it is said why
    with runtime.uow(readonly=True) as uow:
        left = [t.id for t in uow.timers.of_kind(RECORDED)]
        attempts = uow.outbox.get(job["id"]).attempts  # type: ignore[union-attr]
    if db_kind == "postgres":
        assert (fired, outcome, ran, attempts) == (0, "waiting", [], 0)
        assert sorted(left) == sorted(ids)
        [said] = [r for r in caplog.records if r.__dict__.get("action") == "clock.off"]
        assert "600 s ahead of the database server's" in said.getMessage()
    else:  # SQLite is read by this machine's clock: there is nothing to disagree with
        assert (fired, outcome, ran, left) == (3, "done", [job["id"]], [])
        return

    # And once the clock agrees again, everything goes on as before
    wall.by = timedelta(0)
    assert scheduler.run_due() == 3
    clock.advance(minutes=1)  # past the turn the job waits
    scheduler.run_due()
    assert runner.run(job["id"]) == "done" and ran == [job["id"]]
    assert any(r.__dict__.get("action") == "clock.agrees" for r in caplog.records)
