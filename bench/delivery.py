"""Documents delivered end to end per second between two local instances, against a ceiling.

What is measured
----------------
Two installations on this machine, each with its own SQLite file (WAL,
``synchronous=FULL``) and one trust store: the *sender* (agency A) and the *receiver*
(agencies B1..B50, each with its organisational key), both APIs served by uvicorn in a
thread of this process (the receiver's ``POST /v1/inbox``, the sender's ``POST /v1/status``).
Documents are prepared before anything is timed: a draft with one main file of its own
(32 KiB; ``--file-kib`` for another size, say a scanned decision of a few MiB) and a
number of its own, approved (review checks faked), and signed with a real CMS by A's
signer (the ``sign`` transition's PDF work faked, as ``tests/installations.py`` does).

The timed flow of one document to N recipients, nothing faked:

1. this process fires ``send`` (``not_duplicate`` looks for an earlier number or file,
   one package header per recipient is signed with A's key, N dispatches and N
   ``deliver_dispatches`` jobs are written; ``signature_valid`` is faked, as the faked
   ``sign`` recorded no acceptance for it to find);
2. a worker runs each job: the package is posted to the receiver's inbox, which verifies
   the header's agency signature and the signer's signature, signs a receipt and stores
   the received document; the worker verifies the receipt and records ``delivered``;
3. a clerk thread of this process registers each received document on the receiver
   (``register`` through the receiver's engine, as its API would), whose ``send_status``
   job signs status 03 and posts it to the sender, which verifies it: ``acknowledged``.

The rate is documents acknowledged by every recipient per second of wall time, from the
first ``send`` to the last acknowledgement, with at most ``--window`` dispatches in flight
(documents are sent as earlier ones finish) by ``--senders`` threads at once (4), as that
many back-office clients would: one thread firing sends one after another measures how
long one ``send`` takes (about 40 database round trips), not how many the system carries.
Latencies, send to delivered (every recipient has it) and send to acknowledged, are read
from the audit trail's timestamps. Beside the CPU of our processes, the machine's busy
cores (every process: PostgreSQL's and Redis's too) are printed.

Modes: *embedded* -- the sender's in-process workers (4 threads), relay and scheduler; the
receiver's too. *redis* -- as a province deploys it: a PostgreSQL server of our own
(``tests/servers.py``, with PostgreSQL's durable defaults: fsync and synchronous_commit
on) holding both installations' databases, a Redis server of our own, the sender's API,
relay and scheduler in this process, and 2 ``congvan worker`` processes running the
delivery jobs; the receiver -- another agency's installation -- runs in a process of its
own (its API, its in-process workers and the clerk thread), as it would on its own
machine, so that it does not contend with the sender for this process's GIL.

The ceiling, measured in the same run, interleaved with the flow: each section's
documents are sent in two halves, and the pieces are measured before, between and after
them; each piece's median counts, so one slow moment of the disk does not decide the
ratio. The raw cost of the pieces one document needs --
  HTTP    N package posts and N status posts (real sizes) to a bare FastAPI endpoint on
          the same stack (uvicorn in a thread of this process), one keep-alive httpx client;
  sign    3N detached CMS signatures (N headers, N receipts, N statuses), cryptography's
          PKCS7SignatureBuilder with an RSA-2048 key (``bench/signing.py``'s raw sign);
  verify  4N CMS verifications (per recipient: the header's and the signer's at the
          inbox, the receipt, the status): digest + RSA math only
          (``bench/signing.py``'s raw verify);
  SQL     as many raw transactions (UPDATE + 2 INSERT, one transaction each,
          ``bench/transitions.py``'s raw loop: SQLite's BEGIN IMMEDIATE .. COMMIT with
          fsync, or psycopg on the same PostgreSQL server, fsync and synchronous commit
          on) as audit entries the flow wrote on both sides per document;
  jobs    2N no-op dramatiq messages (a delivery and a status per recipient), sent and
          taken by one worker thread on a broker of the mode's kind (the in-process one,
          or the same Redis): DESIGN.md's raw dramatiq no-op throughput. The ratio
          without this piece, as the first figures were taken, is printed beside.
The composite ceiling is (cores used) / (the sum of those costs), with one core for the
embedded mode (one process) and min(usable cpus, 4) for redis (this process, 2 workers
and the receiver's process); the ratio is achieved / ceiling (aim >= 0.5). CPU per
document (user + system of this process, the workers and the receiver's process; not
PostgreSQL's or Redis's) is printed beside it, and what the kernel did for those processes:
context switches per document (a thread waiting for the GIL, a lock, a socket or the disk is
switched out; in a process of many threads running short SQL statements and socket calls,
most switches are the GIL changing hands) and the share of their CPU in system time.

Keys are made at a low PBKDF2 cost: unlocking each once per process is not delivery.
Peak RSS is VmHWM of each process (in embedded mode this one holds both installations).

``--profile [N]`` samples each timed flow with py-spy (``bench/sampling.py``; only the
thread holding the GIL, so CPU, not waiting) in this process and in the workers, and
prints the top N functions by cumulative and by own share.

Run: python bench/delivery.py [--quick] [--recipients 1,5,10,50] [--no-redis] [--profile]

A benchmark, not a test: it prints its figures and exits 0 whatever they are.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# Run as a script, bench/ would come first on sys.path and bench/transitions.py would shadow
# the ``transitions`` library; the repository root gives ``tests`` and ``bench.*``.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import dramatiq  # noqa: E402
import httpx  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from sqlalchemy import Connection, text  # noqa: E402

from bench import sampling  # noqa: E402
from bench.signing import raw_sign, raw_verifier  # noqa: E402
from bench.transitions import RawPostgres, RawSqlite, memory_mb, setup_runtime  # noqa: E402
from congvan.actions.signing import keywrap  # noqa: E402
from congvan.states.timeliness import in_vietnam  # noqa: E402
from congvan.storage.database import begin_readonly, make_engine  # noqa: E402
from congvan.storage.schema import migrate  # noqa: E402
from congvan.workflow.api.app import create_app  # noqa: E402
from congvan.workflow.bootstrap import Runtime, bootstrap, make_broker  # noqa: E402
from congvan.workflow.serving import free_port, freeze_loaded, serve_in_thread  # noqa: E402
from congvan.workflow.settings import Settings  # noqa: E402
from tests.factories import (  # noqa: E402
    actor,
    create_document,
    does_nothing,
    holds,
    job_done,
    sample_file,
)
from tests.installations import Pair, link  # noqa: E402
from tests.servers import start_postgres, start_redis  # noqa: E402

AIM = 0.5
PASS = "delivery bench passphrase"
FILE_KIB = 32  # the main file of each letter, unless --file-kib says otherwise
WORKERS = 2
POLL = 0.02  # seconds between looks (the watcher's, the clerk's): an interval, not a wait


def agency_ids(n: int) -> list[str]:
    return [f"000.00.{i:02d}.H57" for i in range(1, n + 1)]


# -- processes -----------------------------------------------------------------------------


def proc_status(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of a live process from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cpu, peak


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (every process: PostgreSQL's, Redis's)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def looking(runtime: Runtime) -> Connection:
    """A read-only connection: on SQLite a plain BEGIN, never the writers' lock, however
    often the bench looks."""
    conn = runtime.db.connect()
    begin_readonly(conn)
    return conn


class Reader:
    """One driver connection kept for the looks the bench repeats while it times a flow.

    The watcher and the clerk look every ``POLL``: through a pooled SQLAlchemy connection
    each look cost more Python than a delivery's own transaction, CPU that the flow
    measured as its own. Here a look is the query on the driver's cursor (on SQLite a lone
    SELECT is its own read transaction; on PostgreSQL the transaction it opened is rolled
    back), so that observing the flow costs it next to nothing.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.raw = runtime.db.raw_connection()
        self.driver: Any = self.raw.driver_connection
        self.marker = "?" if runtime.db.dialect.paramstyle == "qmark" else "%s"

    def rows(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """``sql`` with ``{}`` where the markers of ``params`` go, run as one read."""
        marks = ",".join([self.marker] * len(params))
        cursor = self.driver.cursor()
        try:
            cursor.execute(sql.format(marks), tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()
            if self.marker == "%s":
                self.driver.rollback()

    def close(self) -> None:
        self.raw.close()


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Kernel:
    """What the kernel did for our processes: context switches and system CPU seconds.

    Each time a thread waits (for the GIL another thread holds, a lock, a socket, the
    disk) the kernel switches it out: in one process of many threads doing short SQL
    statements and socket calls, most switches are the GIL changing hands.
    """

    switches: int
    system: float

    def __sub__(self, other: Kernel) -> Kernel:
        return Kernel(self.switches - other.switches, self.system - other.system)


def kernel_of(pids: list[int]) -> Kernel:
    """This process's switches and system CPU, and those of ``pids`` (every thread's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    switches, system = usage.ru_nvcsw + usage.ru_nivcsw, usage.ru_stime
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        system += int(fields[12]) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
                for line in (task / "status").read_text().splitlines():
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
    return Kernel(switches, system)


@contextlib.contextmanager
def worker_processes(env: dict[str, str], count: int, logs: Path) -> Iterator[list[int]]:
    """``count`` ``congvan worker`` processes, ready to take jobs; stopped on exit."""
    script = Path(sys.executable).with_name("congvan")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "congvan.workflow.cli"]
    procs = []
    try:
        for i in range(count):
            out = (logs / f"worker-{i}.log").open("wb")
            procs.append(
                subprocess.Popen([*command, "worker"], env=env, stdout=subprocess.PIPE, stderr=out)
            )
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()  # "worker running ..." once consuming
            if "worker running" not in line:
                raise RuntimeError(f"a worker did not start: {line!r}; see {logs}")
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def receiver_settings(values: dict[str, object]) -> Settings:
    return Settings(
        data_dir=Path(str(values["data_dir"])),
        database_url=str(values["database_url"]),
        trust_dir=Path(str(values["trust_dir"])),
        key_passphrase=PASS,
    )


@contextlib.contextmanager
def receiver_process(values: dict[str, object], logs: Path) -> Iterator[int]:
    """The receiver served by a process of its own (see ``serve_receiver``); its pid."""
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-receiver"]
    out = (logs / "receiver.log").open("wb")
    proc = subprocess.Popen(
        [*command, json.dumps(values)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=out
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "receiver running" not in line:
            raise RuntimeError(f"the receiver did not start: {line!r}; see {logs}")
        yield proc.pid
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # its signal to stop
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_receiver(values: dict[str, object]) -> int:
    """In the receiver's process: its API, its workers and the clerk, until stdin closes."""
    keywrap.KDF_ITERATIONS = 1_000  # as the keys were made (see the docstring)
    receiver = bootstrap(receiver_settings(values))
    port = int(str(values["port"]))
    with serve_in_thread(create_app(receiver), port=port):
        receiver.start()
        freeze_loaded()  # as `congvan serve` does once ready
        clerk = Clerk(receiver)
        clerk.start()
        try:
            print("receiver running", flush=True)
            sys.stdin.read()  # until the bench closes it
        finally:
            clerk.stopping.set()
            clerk.join()
            receiver.stop()
    return 0


# -- the two installations -----------------------------------------------------------------


@dataclass
class Site:
    """Both installations of one mode, served and started."""

    pair: Pair
    receiver_inbox: str
    workers: list[int]
    cores: int
    receiver_pid: int | None = None  # the receiver's own process (redis mode)
    made: int = 0  # documents prepared so far (their numbers)
    file_bytes: int = FILE_KIB * 1024  # each letter's main file

    @property
    def others(self) -> list[int]:
        """Our processes besides this one: the workers, and the receiver's if apart."""
        return [*self.workers, *([self.receiver_pid] if self.receiver_pid else [])]

    @property
    def sender(self) -> Runtime:
        return self.pair.sender

    @property
    def receiver(self) -> Runtime:
        return self.pair.receiver


def migrated(url: str) -> str:
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


def database(folder: Path, pg_url: str | None, name: str) -> str:
    """A new empty database: a SQLite file in ``folder``, or ``name`` on the PostgreSQL."""
    if pg_url is None:
        return f"sqlite:///{folder / f'{name}.db'}"
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_url.rsplit("/", 1)[0] + f"/{name}"


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@contextlib.contextmanager
def site(
    mode: str, base: Path, agencies: int, redis_url: str | None, pg_url: str | None
) -> Iterator[Site]:
    """The sender and receiver of ``mode`` with ``agencies`` receiving agencies, running.

    Their databases are SQLite files, or two databases of the PostgreSQL at ``pg_url``.
    """
    trust = base / "trust"
    sender_dir, receiver_dir = base / "sender", base / "receiver"
    for d in (sender_dir, receiver_dir):
        d.mkdir(parents=True)
    sender_url = migrated(database(sender_dir, pg_url, "congvan_sender"))
    receiver_url = migrated(database(receiver_dir, pg_url, "congvan_receiver"))
    env = {
        "CONGVAN_DATA_DIR": str(sender_dir),
        "CONGVAN_DATABASE_URL": sender_url,
        "CONGVAN_TRUST_DIR": str(trust),
        "CONGVAN_KEY_PASSPHRASE": PASS,
        "CONGVAN_BROKER_URL": redis_url or "memory://",
        "CONGVAN_LOG_LEVEL": "WARNING",
    }
    sender = bootstrap(
        Settings(
            data_dir=sender_dir,
            database_url=sender_url,
            trust_dir=trust,
            key_passphrase=PASS,
            broker_url=env["CONGVAN_BROKER_URL"],
        ),
        # signature_valid wants the acceptance the real ``sign`` records in the audit trail
        guards={"checks_cleared": holds, "signer_has_authority": holds, "signature_valid": holds},
        effects={"attach_signature": does_nothing},
        jobs={"run_review_checks": job_done},
    )
    receiver = bootstrap(
        Settings(
            data_dir=receiver_dir, database_url=receiver_url, trust_dir=trust, key_passphrase=PASS
        )
    )
    apart = redis_url is not None  # the receiver in a process of its own
    with contextlib.ExitStack() as stack:
        stack.callback(receiver.stop)
        stack.callback(sender.stop)
        sender_base = stack.enter_context(serve_in_thread(create_app(sender)))
        if apart:
            receiver_base = f"http://127.0.0.1:{free_port()}"
        else:
            receiver_base = stack.enter_context(serve_in_thread(create_app(receiver)))
        ids = agency_ids(agencies)
        pair = link(
            sender,
            receiver,
            PASS,
            [(i, f"Sở {i}", "S") for i in ids],
            sender_inbox=f"{sender_base}/v1/inbox",
        )
        inbox = f"{receiver_base}/v1/inbox"
        for organ_id in ids:
            pair.point_at(organ_id, inbox, concurrency=8)
        workers: list[int] = []
        receiver_pid = None
        if redis_url is None:
            receiver.start()
            sender.start()
            cores = 1
        else:
            # Set up here (keys, peers); from now on served by its own process only.
            receiver_settings = {
                "data_dir": str(receiver_dir),
                "database_url": receiver_url,
                "trust_dir": str(trust),
                "port": int(receiver_base.rsplit(":", 1)[1]),
            }
            receiver_pid = stack.enter_context(receiver_process(receiver_settings, base))
            sender.start(workers=False)
            env = {**os.environ, **env}
            workers = stack.enter_context(worker_processes(env, WORKERS, base))
            cores = min(usable_cpus(), 2 + WORKERS)
        freeze_loaded()  # as `congvan serve` does once ready; its workers do too
        yield Site(pair, inbox, workers, cores, receiver_pid)


def prepare(s: Site, count: int, to: list[str]) -> list[str]:
    """``count`` signed letters to ``to``, each with a number and a main file of its own."""
    docs = []
    for _ in range(count):
        s.made += 1
        data = b"%PDF-1.4\n% bench " + str(s.made).encode() + b"\n"
        data += os.urandom(max(0, s.file_bytes - len(data)))
        main = sample_file(data, filename=f"bench-{s.made}.pdf")
        today = in_vietnam(s.pair.sender.clock()).date().isoformat()  # numbered this year
        docs.append(
            s.pair.signed(create_document, to, files=[main], number=s.made, issued_on=today)
        )
    return docs


# -- the timed flow ------------------------------------------------------------------------


class Clerk(threading.Thread):
    """Registers every document the receiver holds unregistered, until stopped."""

    def __init__(self, receiver: Runtime) -> None:
        super().__init__(name="bench-clerk", daemon=True)
        self.receiver = receiver
        self.stopping = threading.Event()
        self.registered = 0

    def run(self) -> None:
        reader = Reader(self.receiver)
        try:
            agencies = [row[0] for row in reader.rows("SELECT id FROM agencies", [])]
            # Each agency's unregistered documents by the (agency, state) index, as its
            # clerks' list reads them: a look costs the same however many came before.
            query = "SELECT id, agency_id FROM received_documents"
            query += " WHERE agency_id IN ({}) AND state = 'received'"
            while not self.stopping.is_set():
                waiting = reader.rows(query, agencies)
                for received_id, agency_id in waiting:
                    self.receiver.engine.fire_on(
                        "received", received_id, "register", actor("clerk", agency_id)
                    )
                    self.registered += 1
                if not waiting:
                    self.stopping.wait(POLL)
        finally:
            reader.close()


@dataclass
class Flow:
    wall: float
    cpu: float  # seconds, every process of ours
    cpu_workers: float  # seconds, the worker processes' part of it
    cpu_receiver: float  # seconds, the receiver's process's part of it (redis mode)
    cpu_machine: float  # seconds, every process on the machine (the databases' too)
    delivered: list[float]  # send -> delivered, seconds, per document
    acknowledged: list[float]
    audit_entries: int  # written on both sides during the run
    kernel: Kernel  # our processes'

    def __add__(self, other: Flow) -> Flow:
        return Flow(
            self.wall + other.wall,
            self.cpu + other.cpu,
            self.cpu_workers + other.cpu_workers,
            self.cpu_receiver + other.cpu_receiver,
            self.cpu_machine + other.cpu_machine,
            sorted(self.delivered + other.delivered),
            sorted(self.acknowledged + other.acknowledged),
            self.audit_entries + other.audit_entries,
            Kernel(
                self.kernel.switches + other.kernel.switches,
                self.kernel.system + other.kernel.system,
            ),
        )


def count(runtime: Runtime, sql: str) -> int:
    with looking(runtime) as conn:
        return int(conn.execute(text(sql)).scalar_one())


def states_of(reader: Reader, docs: list[str]) -> dict[str, str]:
    query = "SELECT id, state FROM documents WHERE id IN ({})"
    return {str(doc): str(state) for doc, state in reader.rows(query, docs)}


def run_flow(s: Site, docs: list[str], window: int, timeout: float, senders: int = 1) -> Flow:
    """Send ``docs`` with at most ``window`` in flight; wait until every one is acknowledged.

    ``senders`` threads fire the sends, as that many clients of the API would at once.

    Each look at the sender reads the states of the documents in flight only, so that
    watching costs the same however many were sent before.
    """
    audit_sql = "SELECT count(*) FROM audit_entries"
    audit_before = count(s.sender, audit_sql) + count(s.receiver, audit_sql)
    clerk = Clerk(s.receiver)  # the receiver's own process runs its clerk
    if s.receiver_pid is None:
        clerk.start()
    workers0 = sum(proc_status(pid)[0] for pid in s.workers)
    receiver0 = proc_status(s.receiver_pid)[0] if s.receiver_pid else 0.0
    cpu0 = own_cpu() + workers0 + receiver0
    kernel0 = kernel_of(s.others)
    machine0 = machine_busy()
    clerk_actor = actor("clerk")
    started = time.perf_counter()
    deadline = started + timeout
    sent = done = 0
    in_flight: list[str] = []
    sends: list[Future[object]] = []
    pool = ThreadPoolExecutor(senders, thread_name_prefix="bench-sender")
    watcher = Reader(s.sender)
    try:
        while done < len(docs):
            while sent < len(docs) and len(in_flight) < window:
                sends.append(pool.submit(s.sender.engine.fire, docs[sent], "send", clerk_actor))
                in_flight.append(docs[sent])
                sent += 1
            time.sleep(POLL)
            for failed in [f for f in sends if f.done() and f.exception() is not None]:
                raise RuntimeError("a send failed") from failed.exception()
            sends = [f for f in sends if not f.done()]
            states = states_of(watcher, in_flight)
            in_flight = [d for d in in_flight if states[d] != "acknowledged"]
            done = sent - len(in_flight)
            if time.perf_counter() > deadline or "failed" in states.values():
                raise RuntimeError(f"{done}/{len(docs)} acknowledged; see the dispatches")
        wall = time.perf_counter() - started
        workers = sum(proc_status(pid)[0] for pid in s.workers) - workers0
        receiver = (proc_status(s.receiver_pid)[0] if s.receiver_pid else 0.0) - receiver0
        cpu = own_cpu() + workers + workers0 + receiver + receiver0 - cpu0
        kernel = kernel_of(s.others) - kernel0
        machine = machine_busy() - machine0
    finally:
        pool.shutdown(cancel_futures=True)
        watcher.close()
        if clerk.is_alive():
            clerk.stopping.set()
            clerk.join()
    audit = count(s.sender, audit_sql) + count(s.receiver, audit_sql) - audit_before
    delivered, acknowledged = latencies(s.sender, docs)
    return Flow(wall, cpu, workers, receiver, machine, delivered, acknowledged, audit, kernel)


def latencies(sender: Runtime, docs: list[str]) -> tuple[list[float], list[float]]:
    """Send -> delivered and send -> acknowledged of each document, from the database.

    Delivered is when the last of its dispatches' successful attempts finished, or its
    acknowledgement if that came first (a status message may overtake a receipt);
    acknowledged is its audit entry.
    """
    marks = ",".join(f":d{i}" for i in range(len(docs)))
    params = {f"d{i}": d for i, d in enumerate(docs)}
    queries = {
        "sent": "SELECT document_id, min(at) FROM audit_entries "
        f"WHERE document_id IN ({marks}) AND to_state = 'sent' GROUP BY document_id",
        "acknowledged": "SELECT document_id, min(at) FROM audit_entries "
        f"WHERE document_id IN ({marks}) AND to_state = 'acknowledged' GROUP BY document_id",
        "delivered": "SELECT d.document_id, max(a.finished_at) FROM dispatches d "
        "JOIN dispatch_attempts a ON a.dispatch_id = d.id AND a.outcome = 'delivered' "
        f"WHERE d.document_id IN ({marks}) GROUP BY d.document_id",
    }
    at: dict[str, dict[str, datetime]] = {}
    with looking(sender) as conn:
        for state, sql in queries.items():
            at[state] = {
                doc: m if isinstance(m, datetime) else datetime.fromisoformat(m)
                for doc, m in conn.execute(text(sql), params)
            }

    # A status overtaking a receipt acknowledges first; the attempt is recorded just after.
    delivered = {
        d: min(at["delivered"].get(d, at["acknowledged"][d]), at["acknowledged"][d]) for d in docs
    }
    sent = at["sent"]
    return (
        sorted((delivered[d] - sent[d]).total_seconds() for d in docs),
        sorted((at["acknowledged"][d] - sent[d]).total_seconds() for d in docs),
    )


def leftovers(s: Site) -> str:
    """What did not go straight through: attempts not delivered (by outcome, with an
    error), jobs not done or retried (with an error)."""
    attempts = text(
        "SELECT outcome, count(*), max(error) FROM dispatch_attempts "
        "WHERE outcome <> 'delivered' GROUP BY outcome"
    )
    jobs = text(
        "SELECT action, status, count(*), max(last_error) FROM outbox "
        "WHERE status <> 'done' OR attempts > 1 GROUP BY action, status"
    )
    with looking(s.sender) as conn:
        tried = [
            f"{n} {outcome} ({str(error)[:120]})" for outcome, n, error in conn.execute(attempts)
        ]
    found = []
    for side, runtime in (("sender", s.sender), ("receiver", s.receiver)):
        with looking(runtime) as conn:
            for action, status, n, error in conn.execute(jobs):
                found.append(f"{side} {n} {action} {status} ({str(error)[:120]})")
    return (
        "  check: delivery attempts not delivered: "
        + ("; ".join(tried) or "none")
        + "; jobs not done or retried: "
        + ("; ".join(found) or "none")
    )


# -- the pieces of the ceiling -------------------------------------------------------------


@dataclass
class Pieces:
    """Seconds each piece costs, measured raw."""

    http_package: float
    http_status: float
    sign: float
    verify: float
    transaction: float
    job: float

    @staticmethod
    def median(samples: list[Pieces]) -> Pieces:
        """Each piece's median over ``samples`` (taken before, between and after the flow)."""
        fields = [f.name for f in dataclasses.fields(Pieces)]
        return Pieces(*(statistics.median(getattr(p, name) for p in samples) for name in fields))

    def per_document(self, recipients: int, transactions: float) -> dict[str, float]:
        n = recipients
        return {
            "HTTP": n * (self.http_package + self.http_status),
            "sign": 3 * n * self.sign,
            "verify": 4 * n * self.verify,
            "SQL": transactions * self.transaction,
            "jobs": 2 * n * self.job,
        }


def seconds_each(operation: Callable[[], object], seconds: float) -> float:
    """Seconds per call: a few warm-up calls, then calls for about ``seconds``."""
    for _ in range(3):
        operation()
    calls, start = 0, time.perf_counter()
    while True:
        operation()
        calls += 1
        spent = time.perf_counter() - start
        if spent >= seconds:
            return spent / calls


@contextlib.contextmanager
def bare_endpoint() -> Iterator[str]:
    """A FastAPI endpoint that reads the body and answers a small JSON, served like ours."""
    app = FastAPI()

    @app.post("/bare")
    async def bare(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    with serve_in_thread(app) as base:
        yield f"{base}/bare"


class RawJobs:
    """No-op dramatiq messages on a broker of the mode's kind, taken by one worker thread."""

    def __init__(self, broker_url: str) -> None:
        self.broker = make_broker(broker_url)
        self.taken = 0
        self.changed = threading.Condition()

        def noop() -> None:
            with self.changed:
                self.taken += 1
                self.changed.notify()

        self.actor = dramatiq.actor(noop, broker=self.broker, queue_name="bench_noop")
        # Its own queue only: the broker declares congvan's, whose jobs are not ours to take
        # (on Redis, the sender's delivery messages would go to a broker knowing no actor).
        self.worker = dramatiq.Worker(
            self.broker, queues={"bench_noop"}, worker_threads=1, worker_timeout=100
        )
        self.worker.start()

    def run(self, count: int) -> None:
        """Send ``count`` messages and wait until the worker took them all."""
        with self.changed:
            goal = self.taken + count
        for _ in range(count):
            self.actor.send()
        with self.changed:
            if not self.changed.wait_for(lambda: self.taken >= goal, timeout=60):
                raise RuntimeError("the raw jobs were not taken within a minute")

    def seconds_each(self, seconds: float) -> float:
        """Seconds per message, sent and taken, in batches for about ``seconds``."""
        self.run(20)
        messages, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.run(50)
            messages += 50
        return (time.perf_counter() - start) / messages

    def close(self) -> None:
        self.worker.stop()
        self.broker.close()


class Ceiling:
    """Measures the raw pieces: a bare endpoint, raw CMS, raw SQL transactions, no-op jobs."""

    def __init__(self, base: Path, pair: Pair, pg_url: str | None, broker_url: str) -> None:
        self.stack = contextlib.ExitStack()
        self.jobs = RawJobs(broker_url)
        self.stack.callback(self.jobs.close)
        self.url = self.stack.enter_context(bare_endpoint())
        self.client = self.stack.enter_context(httpx.Client(timeout=30))
        raw_url = database(base, pg_url, "congvan_raw")
        setup = setup_runtime(raw_url, 20)
        self.stack.callback(setup.runtime.stop)
        self.raw = (
            RawSqlite(raw_url.removeprefix("sqlite:///"), setup.raw_docs)
            if pg_url is None
            else RawPostgres(raw_url, setup.raw_docs)
        )
        self.stack.callback(self.raw.close)
        if isinstance(self.raw, RawPostgres):
            with self.raw.conn.cursor() as cur:
                settings = {
                    name: cur.execute(f"SHOW {name}").fetchone()
                    for name in ("fsync", "synchronous_commit")
                }
            self.raw.conn.commit()
            if any(value != ("on",) for value in settings.values()):
                raise RuntimeError(f"PostgreSQL is not durable: {settings}")
        self.key = SimpleNamespace(cert=pair.signer_cert, key=pair.signer_key)  # RSA-2048

    def close(self) -> None:
        self.stack.close()

    def measure(self, package: bytes, status: bytes, header: bytes, seconds: float) -> Pieces:
        url, client = self.url, self.client
        headers = {"Content-Type": "application/zip"}
        cms = raw_sign(header, self.key)
        verify = raw_verifier(header, self.key)
        self.raw.run(50)
        return Pieces(
            http_package=seconds_each(
                lambda: client.post(url, content=package, headers=headers), seconds
            ),
            http_status=seconds_each(
                lambda: client.post(url, content=status, headers={"Content-Type": "x/json"}),
                seconds,
            ),
            sign=seconds_each(lambda: raw_sign(header, self.key), seconds),
            verify=seconds_each(lambda: verify(cms), seconds),
            transaction=seconds_each(lambda: self.raw.run(1), seconds),
            job=self.jobs.seconds_each(seconds),
        )

    def fresh_client_post(self, package: bytes, seconds: float) -> float:
        """A package post with a new httpx.Client each time (a new connection per post)."""

        def post() -> None:
            with httpx.Client(timeout=30) as client:
                client.post(self.url, content=package, headers={"Content-Type": "x/zip"})

        return seconds_each(post, seconds)


def samples(s: Site) -> tuple[bytes, bytes, bytes]:
    """A package, a status message body and a package header as they travelled."""
    import base64
    import json

    with s.receiver.uow(readonly=True) as uow:
        [row] = uow.conn.execute(
            text("SELECT package_sha256, receipt, receipt_cms FROM received_documents LIMIT 1")
        ).all()
        package = bytes(uow.documents.blob(row[0]) or b"")
    receipt = {"status": base64.b64encode(row[1]).decode(), "cms": base64.b64encode(row[2])}
    status = json.dumps({k: str(v) for k, v in receipt.items()}).encode()
    with s.sender.uow(readonly=True) as uow:
        header = uow.conn.execute(text("SELECT header FROM dispatches LIMIT 1")).scalar_one()
    return package, status, bytes(header)


# -- the report ------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


def section(
    s: Site, mode: str, n: int, args: argparse.Namespace, ceiling: Ceiling, out: Callable[..., None]
) -> None:
    to = agency_ids(n)
    count_docs = max(args.min_docs, math.ceil(args.dispatches / n))
    warm = prepare(s, 1, to)
    docs = prepare(s, count_docs, to)
    window = max(1, args.window // n)
    run_flow(s, warm, 1, args.timeout)  # unlocks keys, remembers the signers' paths
    package, status, header = samples(s)

    def measure() -> Pieces:
        return ceiling.measure(package, status, header, args.seconds)

    # The ceiling is sampled before, between the two halves of the flow and after it, and
    # each piece's median is taken: a moment of slow disk or a busy neighbour on one side
    # does not decide the ratio.
    taken = [measure()]
    half = len(docs) // 2
    sampler = sampling.Sampler([os.getpid(), *s.others]) if args.profile else None
    try:
        flow = run_flow(s, docs[:half], window, args.timeout, args.senders)
        if sampler is None:
            taken.append(measure())
        flow += run_flow(s, docs[half:], window, args.timeout, args.senders)
    finally:
        profiles = sampler.stop() if sampler else []
    taken.append(measure())
    if sampler is not None:
        taken.append(measure())
    pieces = Pieces.median(taken)
    rate = len(docs) / flow.wall
    transactions = flow.audit_entries / len(docs)
    costs = pieces.per_document(n, transactions)
    total = sum(costs.values())
    ceiling_rate = s.cores / total
    ratio = rate / ceiling_rate
    verdict = "meets" if ratio >= AIM else "BELOW"
    parts = "  ".join(f"{k} {v * 1000:.1f}" for k, v in costs.items())
    out(
        f"  {mode:<8} N={n:<3} {len(docs):>4} docs  window {window:>2}  "
        f"achieved {rate:7.2f} docs/s ({rate * n:7.1f} dispatches/s)  "
        f"ceiling {ceiling_rate:7.2f}/s  ratio {ratio:.2f} (aim >= {AIM}: {verdict})"
    )
    without_jobs = rate / (s.cores / (total - costs["jobs"]))
    out(
        f"           pieces per doc (ms): {parts}  = {total * 1000:.1f} ms x {s.cores} core(s); "
        f"{transactions:.1f} transactions/doc; ratio without the jobs piece {without_jobs:.2f}"
    )
    out(
        f"           CPU per doc {flow.cpu / len(docs) * 1000:.1f} ms "
        f"({flow.cpu / len(docs) / total:.1f}x the pieces), "
        f"{flow.cpu / flow.wall:.2f} cores busy"
        + (
            f" (this process {(flow.cpu - flow.cpu_workers - flow.cpu_receiver) / flow.wall:.2f}, "
            f"workers {flow.cpu_workers / flow.wall:.2f}, "
            f"receiver {flow.cpu_receiver / flow.wall:.2f})"
            if s.workers
            else ""
        )
        + f"; the machine {flow.cpu_machine / flow.wall:.2f} of {usable_cpus()}"
    )
    out(
        f"           kernel: {flow.kernel.switches / len(docs):.0f} context switches per doc, "
        f"{flow.kernel.system / flow.cpu:.0%} of the CPU in system time"
    )
    d, a = flow.delivered, flow.acknowledged
    ms = [pct(v, q) * 1000 for v in (d, a) for q in (0.5, 0.99)]
    out(
        f"           send->delivered p50 {ms[0]:6.0f} ms  p99 {ms[1]:6.0f} ms   "
        f"send->acknowledged p50 {ms[2]:6.0f} ms  p99 {ms[3]:6.0f} ms"
    )
    spread = sorted(p.transaction * 1e3 for p in taken)
    out(
        f"           raw (median of {len(taken)}): HTTP package ({len(package) / 1024:.0f} KiB) "
        f"{pieces.http_package * 1e3:.2f} ms, status {pieces.http_status * 1e3:.2f} ms; "
        f"sign {pieces.sign * 1e3:.2f} ms; verify {pieces.verify * 1e3:.3f} ms; "
        f"SQL transaction {pieces.transaction * 1e3:.2f} ms "
        f"({', '.join(f'{t:.2f}' for t in spread)}); no-op job {pieces.job * 1e3:.2f} ms"
    )
    if profiles:
        here, workers = profiles[0], sampling.Stacks()
        for stacks in profiles[1 : 1 + len(s.workers)]:
            workers.counts.update(stacks.counts)
        out(f"           profile of the timed flow, this process ({mode} N={n}):")
        out("\n".join(here.top(args.profile)))
        if s.workers:
            out(f"           profile of the timed flow, the {len(s.workers)} worker processes:")
            out("\n".join(workers.top(args.profile)))
        if s.receiver_pid:
            out("           profile of the timed flow, the receiver's process:")
            out("\n".join(profiles[-1].top(args.profile)))


def memory_line(s: Site, out: Callable[..., None]) -> None:
    here = "the sender" if s.receiver_pid else "both installations"
    peaks = [f"this process ({here}) {memory_mb()[0]:.0f} MiB"]
    peaks += [f"worker {pid} {proc_status(pid)[1]:.0f} MiB" for pid in s.workers]
    if s.receiver_pid:
        peaks.append(f"receiver {s.receiver_pid} {proc_status(s.receiver_pid)[1]:.0f} MiB")
    out(f"  peak RSS: {', '.join(peaks)}")


def bench_mode(
    mode: str,
    args: argparse.Namespace,
    base: Path,
    out: Callable[..., None],
    *,
    redis_url: str | None = None,
    pg_url: str | None = None,
) -> None:
    base.mkdir()
    most = max(args.recipients)
    with site(mode, base, most, redis_url, pg_url) as s:
        s.file_bytes = args.file_kib * 1024
        out(
            f"{mode}: sender + receiver ({most} agencies) "
            + (
                f"on PostgreSQL {pg_url} (fsync, synchronous_commit on), Redis at {redis_url}, "
                f"sender's API, relay + scheduler here, {WORKERS} worker processes, "
                f"the receiver in a process of its own; "
                f"{s.cores} of {usable_cpus()} cpus counted"
                if redis_url
                else "on SQLite files (WAL, FULL), in-process workers (4 threads each)"
            )
        )
        ceiling = Ceiling(base, s.pair, pg_url, redis_url or "memory://")
        try:
            if args.fresh_client:
                package = samples_after_warmup(s, args)
                fresh = ceiling.fresh_client_post(package, args.seconds)
                out(
                    f"  info: a package post with a new httpx.Client each time {fresh * 1e3:.2f} ms"
                )
            for n in args.recipients:
                section(s, mode, n, args, ceiling, out)
            memory_line(s, out)
        finally:
            out(leftovers(s))
            ceiling.close()


def samples_after_warmup(s: Site, args: argparse.Namespace) -> bytes:
    docs = prepare(s, 1, agency_ids(1))
    run_flow(s, docs, 1, args.timeout)
    return samples(s)[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-receiver"]:  # the receiver's own process (redis mode)
        return serve_receiver(json.loads(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="recipients 1 and 5, few documents")
    parser.add_argument("--recipients", help="comma-separated (default 1,5,10,50)")
    parser.add_argument("--dispatches", type=int, help="dispatches per section (docs x N)")
    parser.add_argument("--min-docs", type=int, help="at least this many documents per section")
    parser.add_argument("--window", type=int, default=16, help="dispatches in flight at most")
    parser.add_argument(
        "--senders", type=int, default=4, help="threads firing sends at once (API clients)"
    )
    parser.add_argument("--seconds", type=float, help="per raw piece")
    parser.add_argument(
        "--file-kib", type=int, default=FILE_KIB, help="each letter's main file, KiB (32)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="per section")
    parser.add_argument("--no-redis", action="store_true", help="embedded mode only")
    parser.add_argument("--no-embedded", action="store_true", help="redis mode only")
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=30,
        default=0,
        help="sample each timed flow with py-spy; print the top N functions (default 30)",
    )
    parser.add_argument(
        "--fresh-client", action="store_true", help="also time a post with a new client"
    )
    args = parser.parse_args(argv)
    if args.profile and not sampling.available():
        parser.error("--profile needs py-spy (pip install py-spy)")
    default = "1,5" if args.quick else "1,5,10,50"
    args.recipients = [int(r) for r in (args.recipients or default).split(",")]
    args.dispatches = args.dispatches or (30 if args.quick else 300)
    args.min_docs = args.min_docs or (6 if args.quick else 12)
    args.seconds = args.seconds or (0.1 if args.quick else 0.5)
    if args.file_kib < 1:
        parser.error("--file-kib is at least 1")

    def out(line: str) -> None:
        print(line, flush=True)

    signal.signal(signal.SIGTERM, lambda _signo, _frame: sys.exit(143))
    keywrap.KDF_ITERATIONS = 1_000  # see the docstring: keys unlock once per process
    started = time.perf_counter()
    out(
        f"congvan delivery bench  python {sys.version.split()[0]}  cpus {os.cpu_count()}  "
        f"timed: send -> delivered -> registered by a clerk thread on the receiver -> "
        f"status 03 -> acknowledged; main file {args.file_kib} KiB"
    )
    base = Path(tempfile.mkdtemp(prefix="congvan-bench-delivery-"))
    try:
        if not args.no_embedded:
            bench_mode("embedded", args, base / "embedded", out)
        if not args.no_redis:
            with start_redis(base) as redis_url, start_postgres(base, durable=True) as pg_url:
                bench_mode("redis", args, base / "redis", out, redis_url=redis_url, pg_url=pg_url)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out(f"done in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
