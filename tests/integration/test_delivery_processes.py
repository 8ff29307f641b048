"""The same deliveries on both brokers, with everything running as it does in production.

``embedded``: the sender's workers, relay and scheduler are threads of its process (the
default, SQLite). ``redis``: the sender's relay and scheduler run in this process and its
deliveries in ``congvan worker`` processes fed through a real redis-server (PostgreSQL).
Both sides serve their API with uvicorn on loopback; the receiver's clerk registers what
arrives and its status messages go back through its own outbox. Clocks are real here
(workers are other processes): retries wait fractions of a second, leases a few seconds.

Faults: the receiver down, then answering 503, then up; attempts spent, then resent; the
same job sent to the workers three times at once; and in Redis mode a worker SIGKILLed in
the middle of a delivery, and Redis stopped, flushed and restarted while letters are sent.
Every test ends with the same checks: every letter delivered and acknowledged once, no
job left over, both sides' audit chains intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from congvan.storage.clock import utcnow
from congvan.storage.peers import Peer
from congvan.workflow.api.app import create_app
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.serving import free_port, serve_in_thread
from tests.databases import Databases
from tests.factories import actor
from tests.installations import PASS, SENDER_FAKES, A, B, Pair, link
from tests.servers import start_redis, wait_until

# Each mode on the database it is deployed with.
SETUPS = [("embedded", "sqlite"), ("redis", "postgresql")]
REDIS_ONLY = [("redis", "postgresql")]
LEASE_SECONDS = 5
FAST: dict[str, Any] = {
    "relay_poll_seconds": 0.05,
    "scheduler_poll_seconds": 0.05,
    "delivery_retry_seconds": 0.2,
    "delivery_retry_cap_seconds": 1.0,
    "delivery_lease_seconds": LEASE_SECONDS,
    "job_deadline_seconds": LEASE_SECONDS,  # a job lost with Redis is re-driven by then
    "audit_anchor_minutes": 0,
    "sqlite_synchronous": "NORMAL",
    "key_passphrase": PASS,
}
OUTCOME_WAIT = 90.0  # a deadline for outcomes to appear, not a measure of speed


class Workers:
    """``congvan worker`` processes sharing the sender's database, trust store and Redis."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, n: int = 1) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(n):
            log = self.logs / f"worker-{len(self.running)}.log"
            process = subprocess.Popen(
                [sys.executable, "-m", "congvan.workflow.cli", "worker"],
                env=self.env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            self.running.append(process)
            started.append(process)
            wait_until(
                lambda log=log, process=process: self._ready(log, process),
                timeout=60,
                what="a worker process",
            )
        return started

    @staticmethod
    def _ready(log: Path, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited: {log.read_text(errors='replace')}")
        return b"worker running" in log.read_bytes()

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Front:
    """B's inbox behind a door the test controls: it answers 503 to the first
    ``unavailable`` posts, and can hold every answer (after B stored the package) until
    ``release`` is set. It counts the posts that reached B."""

    def __init__(self, app: ASGIApp, *, unavailable: int = 0) -> None:
        self.app = app
        self.unavailable = unavailable
        self.posts = 0
        self.stored = 0
        self.holding = threading.Event()  # an answer is being held
        self.release = threading.Event()
        self.release.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/inbox":
            await self.app(scope, receive, send)
            return
        self.posts += 1
        if self.posts <= self.unavailable:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"busy"})
            return
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        self.stored += 1
        if not self.release.is_set():
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        for message in answer:
            await send(message)


@dataclass
class Exchange:
    """A sender and a receiver, both served, in one of the two modes."""

    mode: str
    pair: Pair
    workers: Workers | None
    front: Front
    inbox: str  # B's inbox URL, behind the front
    redis_url: str | None = None
    letters: list[str] = field(default_factory=list)

    @property
    def sender(self) -> Runtime:
        return self.pair.sender

    def send(self, make_document: Callable[..., str], n: int = 1) -> list[str]:
        docs = [self.pair.signed(make_document) for _ in range(n)]
        for doc in docs:
            self.sender.engine.fire(doc, "send", actor("clerk"))
        self.sender.relay.kick()
        self.letters += docs
        return docs

    def states(self, docs: list[str] | None = None) -> dict[str, str]:
        with self.sender.uow(readonly=True) as uow:
            return {
                d.id: d.state
                for doc in (docs or self.letters)
                for d in uow.dispatches.for_document(doc)
            }

    def wait_for(self, state: str, docs: list[str] | None = None, *, register: bool = True) -> None:
        """Until every dispatch is in ``state``; B's clerk registers arrivals meanwhile."""

        def reached() -> bool:
            if register:
                self.register_arrivals()
            return set(self.states(docs).values()) == {state}

        try:
            wait_until(reached, timeout=OUTCOME_WAIT, what=f"every dispatch {state}")
        except TimeoutError:
            pytest.fail(f"{self.states(docs)}\n{self.attempts()}\n{self._worker_output()}")

    def register_arrivals(self) -> None:
        """B's clerk registers every new arrival (status 03 goes back to A)."""
        receiver = self.pair.receiver
        for received in self.pair.received():
            if received.state == "received":
                receiver.engine.fire_on("received", received.id, "register", actor("clerk", B))
        receiver.relay.kick()

    def attempts(self) -> dict[str, list[tuple[int, str, int | None]]]:
        with self.sender.uow(readonly=True) as uow:
            return {
                d.id: [
                    (a.attempt, a.outcome, a.http_status) for a in uow.dispatches.attempts_of(d.id)
                ]
                for doc in self.letters
                for d in uow.dispatches.for_document(doc)
            }

    def _worker_output(self) -> str:
        return self.workers.output()[-4000:] if self.workers else ""

    def check_settled(self) -> None:
        """Each letter acknowledged, stored once at B; no job left; no chain broken."""
        self.wait_for("acknowledged")
        received = self.pair.received()
        with self.sender.uow(readonly=True) as uow:
            sent = {d.message_id for doc in self.letters for d in uow.dispatches.for_document(doc)}
        assert sorted(r.message_id for r in received) == sorted(sent)
        assert {r.state for r in received} == {"registered"}
        for runtime in (self.sender, self.pair.receiver):
            # Settled: nothing queued, running or waiting (jobs still finishing their
            # record step are given the time to)
            wait_until(
                lambda runtime=runtime: _open_jobs(runtime) == {},
                timeout=OUTCOME_WAIT,
                what="every job done",
            )
            with runtime.uow(readonly=True) as uow:
                problems = [p for _, p in uow.audit.verify() if p is not None]
            assert problems == []


def _open_jobs(runtime: Runtime) -> dict[str, int]:
    with runtime.uow(readonly=True) as uow:
        counts = uow.outbox.counts()
    return {status: n for status, n in counts.items() if status not in ("done",) and n}


@pytest.fixture(params=SETUPS, ids=["-".join(s) for s in SETUPS])
def setup(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def db_kind(setup: tuple[str, str]) -> str:
    return setup[1]


@pytest.fixture
def attempts() -> int:
    """The sender's dispatch_max_attempts (a test may parametrize another)."""
    return 3


@pytest.fixture
def redis_port(setup: tuple[str, str], tmp_path: Path) -> Iterator[int | None]:
    """A redis-server of this test's own (it is stopped and restarted by some)."""
    if setup[0] != "redis":
        yield None
        return
    port = free_port()
    with start_redis(tmp_path, port):
        yield port


@pytest.fixture
def exchange(
    setup: tuple[str, str],
    boot: Any,
    databases: Databases,
    db_url: str,
    redis_port: int | None,
    tmp_path: Path,
    attempts: int,
) -> Iterator[Exchange]:
    mode = setup[0]
    redis_url = f"redis://127.0.0.1:{redis_port}/0" if redis_port else None
    broker = {"broker_url": redis_url} if redis_url else {}
    sender = boot(
        db_url, **SENDER_FAKES, clock=utcnow, **FAST, **broker, dispatch_max_attempts=attempts
    )
    receiver = boot(databases.new(setup[1]).url, clock=utcnow, **FAST)
    pair = link(sender, receiver, PASS)
    front = Front(create_app(receiver))
    workers = None
    if mode == "redis":
        logs = tmp_path / "workers"
        logs.mkdir()
        workers = Workers(_worker_env(sender, redis_url or "", db_url, attempts), logs)
        sender.start(workers=False)
    else:
        sender.start()
    receiver.start()
    with (
        serve_in_thread(create_app(sender)) as sender_base,
        serve_in_thread(front) as receiver_base,
    ):
        with receiver.uow() as uow:
            now = receiver.clock()
            uow.peers.put(Peer(A, f"{sender_base}/v1/inbox", "http", 5, 4, now, now))
            uow.commit()
        inbox = f"{receiver_base}/v1/inbox"
        pair.point_b_at(inbox)
        try:
            yield Exchange(mode, pair, workers, front, inbox, redis_url)
        finally:
            front.release.set()
            if workers is not None:
                workers.stop()


def _worker_env(sender: Runtime, redis_url: str, db_url: str, attempts: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONGVAN_")}
    env["PYTHONUNBUFFERED"] = "1"  # "worker running" reaches the log at once
    settings = {
        **FAST,
        "data_dir": str(sender.settings.data_dir),
        "database_url": db_url,
        "broker_url": redis_url,
        "dispatch_max_attempts": attempts,
        "worker_threads": 4,
    }
    env.update({f"CONGVAN_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def test_letters_are_delivered_and_acknowledged(
    exchange: Exchange, make_document: Callable[..., str]
) -> None:
    if exchange.workers:
        exchange.workers.start(2)
    exchange.send(make_document, 4)
    exchange.check_settled()
    assert exchange.front.posts == 4  # one post per letter: nothing delivered twice


@pytest.mark.parametrize("attempts", [8])
def test_a_receiver_down_then_busy_then_up_gets_each_letter_once(
    exchange: Exchange, make_document: Callable[..., str]
) -> None:
    # Given B down (its port closed), then answering 503 once, then up
    closed = f"http://127.0.0.1:{free_port()}"
    exchange.pair.point_b_at(f"{closed}/v1/inbox")
    if exchange.workers:
        exchange.workers.start(2)
    exchange.send(make_document)
    wait_until(lambda: any(exchange.attempts().values()), timeout=OUTCOME_WAIT, what="an attempt")
    exchange.front.unavailable = exchange.front.posts + 1
    exchange.pair.point_b_at(exchange.inbox)

    # Then the letter arrives once, after the refused connection and the 503
    exchange.check_settled()
    [attempts] = exchange.attempts().values()
    outcomes = [(outcome, status) for _, outcome, status in attempts]
    assert outcomes[0] == ("transient", None)
    assert outcomes[-2:] == [("transient", 503), ("delivered", 201)]
    assert {o for o, _ in outcomes[:-1]} == {"transient"}
    assert exchange.front.stored == 1


def test_a_letter_failed_past_its_attempts_is_resent_with_the_same_message(
    exchange: Exchange, make_document: Callable[..., str]
) -> None:
    # Given B unreachable for all three attempts: the dispatch and the letter fail
    exchange.pair.point_b_at(f"http://127.0.0.1:{free_port()}/v1/inbox")
    if exchange.workers:
        exchange.workers.start(2)
    [doc] = exchange.send(make_document)
    exchange.wait_for("failed")
    [first] = exchange.states().values()
    with exchange.sender.uow(readonly=True) as uow:
        [failed] = uow.dispatches.for_document(doc)
    assert failed.attempts == 3

    # When B is back and a supervisor resends the letter
    exchange.pair.point_b_at(exchange.inbox)
    exchange.sender.engine.fire(
        doc, "resend", actor("supervisor"), data={"reason": "Sở Nội vụ đã hoạt động lại"}
    )
    exchange.sender.relay.kick()

    # Then it arrives under the message id it was first sealed with
    exchange.check_settled()
    [received] = exchange.pair.received()
    assert received.message_id == failed.message_id
    assert first == "failed"


def test_the_same_job_handed_to_workers_three_times_posts_once(
    exchange: Exchange, make_document: Callable[..., str]
) -> None:
    # Given B slow to answer, so that copies of the job arrive while the first is out
    exchange.front.release.clear()
    if exchange.workers:
        exchange.workers.start(2)
    [doc] = exchange.send(make_document)
    assert exchange.front.holding.wait(OUTCOME_WAIT)
    [job] = exchange.pair.jobs(doc)
    actor_ = exchange.sender.broker.get_actor("deliver_dispatches")
    for _ in range(3):
        actor_.send(job)
    exchange.front.release.set()

    exchange.check_settled()
    assert (exchange.front.posts, exchange.front.stored) == (1, 1)
    [attempts] = exchange.attempts().values()
    assert [(n, o) for n, o, _ in attempts] == [(1, "delivered")]


@pytest.mark.parametrize("setup", REDIS_ONLY, ids=["redis-postgresql"], indirect=True)
def test_a_worker_killed_mid_delivery_is_replaced_at_its_lease(
    exchange: Exchange, make_document: Callable[..., str]
) -> None:
    # Given one worker, killed (SIGKILL) while B holds the answer to the package it stored
    assert exchange.workers is not None
    exchange.front.release.clear()
    [worker] = exchange.workers.start(1)
    exchange.send(make_document)
    assert exchange.front.holding.wait(OUTCOME_WAIT)
    worker.kill()
    worker.wait()
    exchange.front.release.set()

    # When another worker is there when the lease ends
    exchange.workers.start(1)
    exchange.wait_for("delivered", register=False)

    # Then the lost attempt is on record as unknown, and the retry got B's first receipt
    exchange.check_settled()
    [attempts] = exchange.attempts().values()
    assert [(n, o) for n, o, _ in attempts] == [(1, "unknown"), (2, "delivered")]
    assert exchange.front.stored == 2 and len(exchange.pair.received()) == 1


@pytest.mark.parametrize("setup", REDIS_ONLY, ids=["redis-postgresql"], indirect=True)
def test_redis_stopped_flushed_and_restarted_while_sending_loses_nothing(
    exchange: Exchange, make_document: Callable[..., str], tmp_path: Path, redis_port: int
) -> None:
    assert exchange.workers is not None
    exchange.workers.start(2)
    exchange.send(make_document, 2)
    # When Redis goes away (its queued messages with it) while more letters are sent
    _stop_redis(redis_port)
    exchange.send(make_document, 2)
    # ...and comes back empty on the same port
    with start_redis(tmp_path, redis_port):
        # Then every letter is delivered once: the database re-drives what Redis lost
        exchange.check_settled()
        assert exchange.front.stored == 4


def _stop_redis(port: int) -> None:
    client = redis.Redis(port=port)
    with contextlib.suppress(redis.ConnectionError):
        client.shutdown(nosave=True)
    client.close()
    wait_until(lambda: not _answers(port), timeout=30, what="Redis to stop")


def _answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
