"""One dramatiq actor per job kind: its own name, time limit, retries, concurrency, log context."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from congvan.actions.anchoring import JOB as ANCHOR_JOB
from congvan.actions.context import JobContext
from congvan.actions.jobs import FALLBACK_ACTOR, StagedJob, enqueue, new_job
from congvan.actions.timestamping import JOB as TIMESTAMP_JOB
from congvan.workflow.actors import ActorSpec, specs_for
from congvan.workflow.bootstrap import KNOWN_ACTORS, Runtime
from congvan.workflow.logs import configure_logging
from tests.conftest import MakeRuntime


def queue(runtime: Runtime, kind: str, n: int = 1) -> list[str]:
    jobs = [new_job(kind, runtime.clock(), agency_id=None) for _ in range(n)]
    with runtime.uow() as uow:
        enqueue(uow, jobs, runtime.clock() + timedelta(minutes=5))
        uow.commit()
    return [str(j["id"]) for j in jobs]


def test_each_job_kind_has_its_own_actor_with_its_own_limits(runtime: Runtime) -> None:
    actors = runtime.broker.actors
    for kind, lease in (
        ("run_review_checks", timedelta(minutes=2)),
        (ANCHOR_JOB, timedelta(minutes=5)),
        (TIMESTAMP_JOB, timedelta(minutes=1)),
    ):
        options = actors[kind].options
        # Retries are database timers, never the broker's
        assert options["max_retries"] == 0
        # The broker interrupts a little after the lease the runner gives the job
        assert options["time_limit"] == int(lease.total_seconds() * 1000) + 5_000
        assert runtime.runner.policy(kind).time_limit == lease
    assert actors[ANCHOR_JOB].options["concurrency"] == 1
    assert FALLBACK_ACTOR in actors
    # A TSA may be away a while: its jobs back off longer than the default
    timestamp = runtime.runner.policy(TIMESTAMP_JOB).backoff
    assert timestamp.after(1) > runtime.runner.policy("run_review_checks").backoff.after(1)


def test_delivery_waits_follow_the_settings(make_runtime: MakeRuntime) -> None:
    # Given an installation whose peers are retried sooner than by default
    runtime = make_runtime(
        delivery_retry_seconds=0.5,
        delivery_retry_cap_seconds=4,
        delivery_retry_jitter=0.5,
        delivery_lease_seconds=30,
    )
    # Then delivery and status messages wait that long, with jitter; other jobs do not
    for kind in ("deliver_dispatches", "send_status"):
        policy = runtime.runner.policy(kind)
        assert (policy.backoff.first, policy.backoff.cap, policy.backoff.jitter) == (
            timedelta(seconds=0.5),
            timedelta(seconds=4),
            0.5,
        )
        assert policy.time_limit == timedelta(seconds=30)
        assert runtime.broker.get_actor(kind).options["time_limit"] == 35_000
    assert runtime.runner.policy("run_review_checks").backoff.jitter == 0


def test_the_relay_sends_each_job_to_its_kinds_actor(make_runtime: MakeRuntime) -> None:
    # Given jobs of a known kind and of a kind with no spec of its own
    ran: list[str] = []

    def plain(ctx: JobContext) -> None:
        ran.append(ctx.job.id)

    runtime = make_runtime(jobs={"plain_kind": plain})
    sent: list[tuple[str, str]] = []
    enqueue_message = runtime.broker.enqueue

    def spy(message, *, delay=None):  # type: ignore[no-untyped-def]
        sent.append((message.actor_name, message.args[0]))
        return enqueue_message(message, delay=delay)

    runtime.broker.enqueue = spy  # type: ignore[method-assign]
    [plain_job] = queue(runtime, "plain_kind")
    [anchor_job] = queue(runtime, ANCHOR_JOB)

    # When the relay runs
    runtime.relay.drain()

    # Then each went to the actor named after its kind (which every kind has)
    assert sorted(sent) == sorted([("plain_kind", plain_job), (ANCHOR_JOB, anchor_job)])
    assert "plain_kind" in runtime.broker.actors
    # And a job whose kind has no actor at all goes to the fallback one
    assert runtime.relay._actor_for("never_installed") == FALLBACK_ACTOR


class Overlaps(StagedJob[str]):
    """Notes how many of its outside steps run at once (outside any transaction)."""

    def __init__(self) -> None:
        self.running = self.peak = 0
        self.lock = threading.Lock()
        self.gate = threading.Barrier(2, timeout=0.2)

    def prepare(self, ctx: JobContext) -> str:
        return ctx.job.id

    def act(self, work: str) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            self.gate.wait()  # two at once would meet here; one alone times out
        except threading.BrokenBarrierError:
            self.gate.reset()
        with self.lock:
            self.running -= 1

    def record(self, ctx: JobContext, work: str, outcome: None) -> None:
        return None


def test_a_kinds_concurrency_caps_how_many_run_at_once(make_runtime: MakeRuntime) -> None:
    # Given a kind allowed one at a time, four jobs of it, and four worker threads
    one_at_a_time = Overlaps()
    KNOWN_ACTORS["serial_kind"] = ActorSpec("serial_kind", concurrency=1)
    try:
        runtime = make_runtime(jobs={"serial_kind": one_at_a_time}, worker_threads=4)  # type: ignore[dict-item]
    finally:
        del KNOWN_ACTORS["serial_kind"]
    ids = queue(runtime, "serial_kind", 4)

    # When the workers run them all
    runtime.start(relay=False, scheduler=False)
    runtime.join()

    # Then they all ran, never two at once
    with runtime.uow(readonly=True) as uow:
        assert {uow.outbox.get(i).status for i in ids} == {"done"}  # type: ignore[union-attr]
    assert one_at_a_time.peak == 1


class Hangs(StagedJob[str]):
    """An outside step that does not end until it is let go (a receiver never answering)."""

    def __init__(self) -> None:
        self.let_go = threading.Event()
        self.started = threading.Semaphore(0)

    def prepare(self, ctx: JobContext) -> str:
        return ctx.job.id

    def act(self, work: str) -> None:
        self.started.release()
        self.let_go.wait()

    def record(self, ctx: JobContext, work: str, outcome: None) -> None:
        return None


class Quick(StagedJob[str]):
    def __init__(self) -> None:
        self.done = threading.Event()

    def prepare(self, ctx: JobContext) -> str:
        return ctx.job.id

    def act(self, work: str) -> None:
        self.done.set()

    def record(self, ctx: JobContext, work: str, outcome: None) -> None:
        return None


def test_a_kind_whose_jobs_hang_never_takes_every_worker_thread(
    make_runtime: MakeRuntime,
) -> None:
    # Given a kind allowed more at once than there are worker threads, whose jobs may hang
    # and do (webhook receivers that never answer), and two worker threads
    hangs, quick = Hangs(), Quick()
    KNOWN_ACTORS["hanging_kind"] = ActorSpec("hanging_kind", concurrency=8, may_hang=True)
    try:
        runtime = make_runtime(
            jobs={"hanging_kind": hangs, "quick_kind": quick},  # type: ignore[dict-item]
            worker_threads=2,
        )
    finally:
        del KNOWN_ACTORS["hanging_kind"]
    hanging = queue(runtime, "hanging_kind", 3)
    runtime.start(relay=False, scheduler=False)
    runtime.relay.flush()
    runtime.relay.drain()
    assert hangs.started.acquire(timeout=30)  # one hangs now, in one thread
    try:
        # When a job of another kind comes meanwhile
        queue(runtime, "quick_kind")
        runtime.relay.flush()
        runtime.relay.drain()
        # Then it runs on the thread left to other kinds, while the others wait queued
        assert quick.done.wait(timeout=30)
        assert not hangs.started.acquire(timeout=0.5)  # never two of the hanging kind
    finally:
        hangs.let_go.set()
    runtime.join()
    with runtime.uow(readonly=True) as uow:
        assert {uow.outbox.get(i).status for i in hanging} == {"done"}  # type: ignore[union-attr]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    yield stream
    logging.getLogger().handlers.clear()


def test_a_jobs_log_lines_carry_its_id_and_kind(
    make_runtime: MakeRuntime, json_log: io.StringIO
) -> None:
    # Given a job that logs, run by a worker through the broker
    def chatty(ctx: JobContext) -> None:
        logging.getLogger("congvan.test").info("working", extra={"action": "test.work"})

    runtime = make_runtime(jobs={"chatty": chatty})
    [job_id] = queue(runtime, "chatty")
    runtime.start(relay=True, scheduler=False)
    runtime.join()

    # Then its line names the job and its kind (bound by middleware, not by the job)
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    [work] = [line for line in lines if line.get("action") == "test.work"]
    assert (work["job_id"], work["job_kind"]) == (job_id, "chatty")
    # And lines logged after the job carry no stale job context
    logging.getLogger("congvan.test").info("after", extra={"action": "test.after"})
    after = json.loads(json_log.getvalue().splitlines()[-1])
    assert "job_id" not in after


def test_every_job_kind_of_the_installation_gets_a_spec() -> None:
    specs = specs_for(["run_review_checks", "brand_new"], KNOWN_ACTORS)
    assert [s.job for s in specs] == ["run_review_checks", "brand_new"]
    assert specs[1] == ActorSpec("brand_new")
