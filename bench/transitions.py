"""Transitions per second through the engine, as a ratio to a raw ceiling measured in the same run.

What is measured
----------------
*Engine*: ``Engine.fire(document_id, "submit", clerk)`` on drafts. ``submit`` goes
draft -> draft and names the job ``run_review_checks``, so each transition does the whole
work of a job-writing transition, in one transaction::

    BEGIN IMMEDIATE
    SELECT the document head             (FOR UPDATE on PostgreSQL)
    INSERT the hash-chained audit entry
    UPDATE the document                  (versioned: WHERE id = ? AND version = ?)
    INSERT the outbox row
    INSERT the job's deadline timer
    COMMIT

The runtime comes from ``bootstrap()`` with the engine's own settings (SQLite: a file in a
temporary directory, WAL, ``synchronous=FULL``) and ``jobs={"run_review_checks": lambda
ctx: None}``. Unless ``--effects`` is given, every effect the ``submit`` edge names (today
``record_submission``: four statements opening a new revision and marking it submitted) is
a no-op too, so that the engine does the ceiling's work and no more; with ``--effects``
the figure includes what those effects cost. No worker, relay or scheduler thread is
started; the relay kick after each commit only sets an Event nobody waits on. Transitions
go round-robin over ``--documents`` drafts (100 by default) of one agency, one at a time
from one thread.

*raw* -- the ceiling the ratio divides by: the versioned ``UPDATE documents``, the
``INSERT INTO audit_entries`` and the ``INSERT INTO outbox``, with the columns the engine
writes, issued with the plain ``sqlite3`` module (``psycopg`` on PostgreSQL), one
transaction each (``BEGIN IMMEDIATE`` ... ``COMMIT``), on the same database file, schema
and indexes, with the same ``journal_mode=WAL`` and ``synchronous=FULL``. Values are
precomputed constants (only ids and versions change), so it measures the database, not
Python. It works on its own drafts, so the engine's audit chains stay valid.

*raw+* -- for information: raw plus the two statements the engine also has to run (the
SELECT of the head and the INSERT of the timer). The gap between raw and raw+ is what
those two statements cost the database, not engine overhead.

The three are interleaved in chunks (250 transitions with ``--quick``, else 1,000), after
500 warm-up transactions each, alternating which of engine and raw goes first: on a shared
machine both see the same disk and CPU weather, so the ratio holds up better than two
separate runs would. Each side's wall time and process CPU time (user + system, which
includes the fsync system calls) are summed over its chunks. The ratio is
engine rate / raw rate; the median of the per-chunk ratios is printed beside it, and a
warning when the raw rate varied more than twofold between chunks (a busy machine).
Each section ends by checking what the engine wrote: one outbox row and one timer per
transition, and every engine draft's audit chain verifies.

*Memory*: peak RSS (``VmHWM`` in ``/proc/self/status``, else ``ru_maxrss``) and current
RSS after 10,000 and after 100,000 engine transitions (2,000 and 5,000 with ``--quick``).

*PostgreSQL* (unless ``--no-pg``): the same, with ``psycopg`` for raw, on PostgreSQL's
durable defaults (``fsync=on``, ``synchronous_commit=on``). The server is, in this order:
``--pg URL`` or ``$CONGVAN_BENCH_PG_URL`` (give it a throwaway database: tables are
created and rows left behind); the machine's service at 127.0.0.1:5432 with trust auth
and a temporary database (created, then dropped) if ``--pg-service`` is given; else a
throwaway cluster started from the installed ``initdb``/``pg_ctl`` (as the ``postgres``
OS user when run as root) on a free 127.0.0.1 port, removed at the end. If none can be had,
the PostgreSQL section says so and is skipped.

``--profile [N]`` then runs N more engine transitions on SQLite twice: once timing each
phase of a transition with ``perf_counter`` around the storage calls (little overhead, so
the phases add up to the real time), once under cProfile (top functions by own time).

Run
---
From the repository root, with congvan installed (``pip install -e .``)::

    python bench/transitions.py --quick             # 5k SQLite + 2k PostgreSQL, < 1 minute
    python bench/transitions.py                     # 100k SQLite + 20k PostgreSQL
    python bench/transitions.py --no-pg --profile   # SQLite only, then where time goes
    python bench/transitions.py --pg postgresql://user@host/throwaway_db

It prints lines such as::

    sqlite    engine 1,523/s  raw 5,012/s  ratio 0.30 (aim >= 0.25) ok

A benchmark, not a test: it prints its figures and exits 0 whatever they are. (Run as a
script its folder would come first on ``sys.path``, and this file's name would shadow the
``transitions`` library the state machines use, so the script takes its folder off.)
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import pwd
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# ``transitions`` library the state machines are built with: take the folder off again.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]

AIM = 0.25
WARMUP = 500
AGENCY = "000.00.00.H57"


# -- memory ------------------------------------------------------------------------------


def memory_mb() -> tuple[float, float]:
    """(peak RSS, current RSS) of this process in MiB."""
    try:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                fields[key] = int(value.split()[0]) / 1024
        return fields["VmHWM"], fields["VmRSS"]
    except (OSError, KeyError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, float("nan")


# -- the engine ------------------------------------------------------------------------------


@dataclass
class Setup:
    runtime: Any
    clerk: Any
    engine_docs: list[str]
    raw_docs: list[str]


def submit_effects() -> tuple[str, ...]:
    """The effects the installation runs inside a ``submit`` transition, if any."""
    from congvan.states import DOCUMENT

    return tuple(e for t in DOCUMENT.edges("submit", "draft") for e in t.effects)


def setup_runtime(url: str, documents: int, *, keep_effects: bool = False) -> Setup:
    """Migrate, bootstrap with a no-op review job, add an agency and its drafts.

    Unless ``keep_effects``, the effects ``submit`` runs are replaced by no-ops too, so
    that the engine does the work of the ceiling's statements and no more.
    """
    from congvan.actions.context import Actor
    from congvan.storage.database import make_engine
    from congvan.storage.schema import migrate
    from congvan.workflow import directory
    from congvan.workflow.bootstrap import bootstrap
    from congvan.workflow.settings import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="congvan-bench-settings-"))
    settings = Settings(data_dir=data_dir, database_url=url, sqlite_synchronous="FULL")
    schema_engine = make_engine(settings.db_url)
    migrate(schema_engine)
    schema_engine.dispose()
    noop: Callable[[Any], None] = lambda ctx: None  # noqa: E731
    effects = {} if keep_effects else dict.fromkeys(submit_effects(), noop)
    runtime = bootstrap(settings, jobs={"run_review_checks": noop}, effects=effects)
    with runtime.uow() as uow:
        directory.add_agency(uow, AGENCY, "UBND tỉnh Thừa Thiên Huế", "UBND", runtime.clock())
        uow.commit()
    clerk = Actor("clerk@H57", AGENCY, frozenset({"clerk"}))

    def draft(i: int) -> str:
        fields = {"doc_type": "CV", "subject": f"V/v thử tải {i}", "symbol": "UBND-VP"}
        recipients = [{"organ_id": "000.00.01.H57", "name": "Sở Nội vụ"}]
        return str(runtime.engine.create_document(clerk, fields, recipients, [])["id"])

    engine_docs = [draft(i) for i in range(documents)]
    raw_docs = [draft(documents + i) for i in range(documents)]
    shutil.rmtree(data_dir, ignore_errors=True)
    return Setup(runtime, clerk, engine_docs, raw_docs)


@dataclass(frozen=True)
class Spent:
    """Wall, user CPU and system CPU seconds (system includes the fsync calls)."""

    wall: float = 0.0
    user: float = 0.0
    system: float = 0.0

    @staticmethod
    def now() -> Spent:
        usage = resource.getrusage(resource.RUSAGE_SELF)  # microsecond resolution
        return Spent(time.perf_counter(), usage.ru_utime, usage.ru_stime)

    def __sub__(self, other: Spent) -> Spent:
        return Spent(self.wall - other.wall, self.user - other.user, self.system - other.system)

    def __add__(self, other: Spent) -> Spent:
        return Spent(self.wall + other.wall, self.user + other.user, self.system + other.system)

    def per(self, n: int) -> str:
        us = 1e6 / n
        return (
            f"{self.wall * us:,.0f} us wall, CPU {self.user * us:,.0f} user + "
            f"{self.system * us:,.0f} system"
        )


class EngineLoop:
    """Fires ``submit`` round-robin over the engine's drafts, ``n`` at a time."""

    def __init__(self, setup: Setup) -> None:
        self.fire = setup.runtime.engine.fire
        self.docs = setup.engine_docs
        self.clerk = setup.clerk
        self.done = 0

    def run(self, n: int) -> Spent:
        """Fire ``n`` transitions; the time they took."""
        fire, docs, clerk, count = self.fire, self.docs, self.clerk, len(self.docs)
        start = Spent.now()
        for i in range(self.done, self.done + n):
            fire(docs[i % count], "submit", clerk)
        self.done += n
        return Spent.now() - start


PHASES = (
    ("open: connect + BEGIN IMMEDIATE", "congvan.storage.unit_of_work", "UnitOfWork", "__enter__"),
    ("SELECT head", "congvan.storage.documents", "DocumentRepository", "head"),
    ("INSERT audit entry", "congvan.storage.audit", "AuditRepository", "append"),
    ("UPDATE document", "congvan.storage.documents", "DocumentRepository", "advance"),
    ("INSERT outbox row", "congvan.storage.outbox", "OutboxRepository", "add"),
    ("INSERT timer", "congvan.storage.timers", "TimerRepository", "add"),
    ("COMMIT (incl. fsync)", "congvan.storage.unit_of_work", "UnitOfWork", "commit"),
    ("close: rollback-if-open + pool", "congvan.storage.unit_of_work", "UnitOfWork", "__exit__"),
    ("engine: resolve + audit hash + job", "congvan.workflow.engine.stepping", "Stepper", "step"),
)


def phase_profile(setup: Setup, n: int) -> str:
    """Wall time per phase of a transition, timed around the storage calls."""
    import importlib

    spent = dict.fromkeys([p[0] for p in PHASES], 0)
    patched = []

    def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter_ns() - start

        return wrapper

    for label, module, cls_name, attr in PHASES:
        cls = getattr(importlib.import_module(module), cls_name)
        original = cls.__dict__[attr]
        patched.append((cls, attr, original))
        setattr(cls, attr, timed(label, original))
    try:
        wall = EngineLoop(setup).run(n).wall
    finally:
        for cls, attr, original in patched:
            setattr(cls, attr, original)
    total = wall * 1e9 / n
    lines = [f"  {'phase':<38} {'us/transition':>13} {'share':>6}"]
    for label, ns in spent.items():
        lines.append(f"  {label:<38} {ns / n / 1000:13.1f} {ns / n / total:6.0%}")
    rest = total - sum(spent.values()) / n
    lines.append(f"  {'engine: the rest of fire()':<38} {rest / 1000:13.1f} {rest / total:6.0%}")
    lines.append(f"  {'total':<38} {total / 1000:13.1f}")
    return "\n".join(lines)


def cprofile_engine(setup: Setup, n: int, top: int = 25) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    EngineLoop(setup).run(n)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- the raw ceiling ---------------------------------------------------------------------

UPDATE = (
    "UPDATE documents SET state={p}, version={p}, audit_head={p}, updated_at={p} "
    "WHERE documents.id = {p} AND documents.version = {p}"
)
INSERT_AUDIT = (
    "INSERT INTO audit_entries (document_id, version, actor, event, from_state, to_state, "
    "at, payload, payload_digest, prev_hash, hash) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox (id, action, document_id, queue, payload, status, attempts, "
    "last_error, created_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
SELECT_HEAD = (
    "SELECT documents.id, documents.agency_id, documents.state, documents.version, "
    "documents.audit_head, documents.urgency FROM documents WHERE documents.id = {p}"
)
INSERT_TIMER = (
    "INSERT INTO timers (id, kind, ref_id, document_id, due_at, payload) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
)

HASH = "9db508f253ffda2b0d86407895d5801af092deb68c5c01efae261f91b72f2b06"
DIGEST = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


class RawLoop:
    """The ceiling: the same statements on the bare driver, one transaction each.

    Subclasses open the connection and say how to begin, execute and commit. Only ids and
    versions change between transactions; every other value is a precomputed constant.
    """

    placeholder = "?"
    lock = ""  # appended to the SELECT of the head (the engine locks it on PostgreSQL)

    def __init__(self, docs: list[str], versions: dict[str, int], now: Any, due: Any) -> None:
        self.docs = docs
        self.versions = versions
        self.now = now
        self.due = due
        p = self.placeholder
        self.update = UPDATE.format(p=p)
        self.audit = INSERT_AUDIT.format(p=p)
        self.outbox = INSERT_OUTBOX.format(p=p)
        self.head = SELECT_HEAD.format(p=p) + self.lock
        self.timer = INSERT_TIMER.format(p=p)
        self.prefix = uuid.uuid4().hex[:8]
        self.serial = 0
        self.done = 0

    def begin(self) -> None:
        raise NotImplementedError

    def execute(self, sql: str, params: tuple[Any, ...]) -> int:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def next_id(self) -> str:
        self.serial += 1
        return f"{self.prefix}-0000-7000-8000-{self.serial:012x}"

    def run(self, n: int, *, full: bool = False) -> Spent:
        """``n`` transactions (``full``: with the SELECT and the timer too); time taken."""
        execute, docs, count, versions = self.execute, self.docs, len(self.docs), self.versions
        now, due = self.now, self.due
        start = Spent.now()
        for i in range(self.done, self.done + n):
            doc = docs[i % count]
            version = versions[doc]
            self.begin()
            if full:
                execute(self.head, (doc,))
            execute(
                self.audit,
                (doc, version + 1, "clerk@H57", "submit", "draft", "draft", now, "{}",
                 DIGEST, HASH, HASH),
            )  # fmt: skip
            if execute(self.update, ("draft", version + 1, HASH, now, doc, version)) != 1:
                raise RuntimeError("raw ceiling: the versioned UPDATE missed")
            job = self.next_id()
            execute(
                self.outbox,
                (job, "run_review_checks", doc, "default", '{"event": "submit", "version": 2}',
                 "pending", 0, "", now),
            )  # fmt: skip
            if full:
                execute(self.timer, (self.next_id(), "job_deadline", job, doc, due, "{}"))
            self.commit()
            versions[doc] = version + 1
        self.done += n
        return Spent.now() - start


class RawSqlite(RawLoop):
    def __init__(self, path: str, docs: list[str]) -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        if (mode, sync) != ("wal", 2):  # 2 = FULL
            raise RuntimeError(f"raw SQLite is not WAL + FULL: {mode}, {sync}")
        marks = ",".join("?" * len(docs))
        versions = dict(
            conn.execute(f"SELECT id, version FROM documents WHERE id IN ({marks})", docs)
        )
        self.conn = conn
        # SQLAlchemy stores SQLite datetimes as this text; so do we.
        now = datetime.now(UTC)
        text = "%Y-%m-%d %H:%M:%S.%f"
        super().__init__(
            docs, versions, now.strftime(text), (now + timedelta(minutes=5)).strftime(text)
        )

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def execute(self, sql: str, params: tuple[Any, ...]) -> int:
        return self.conn.execute(sql, params).rowcount

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class RawPostgres(RawLoop):
    placeholder = "%s"
    lock = " FOR UPDATE"

    def __init__(self, url: str, docs: list[str]) -> None:
        import psycopg

        self.conn = psycopg.connect(url)  # not autocommit: the first statement opens a transaction
        with self.conn.cursor() as cur:
            cur.execute("SELECT id, version FROM documents WHERE id = ANY(%s)", (docs,))
            versions = dict(cur.fetchall())
        self.conn.commit()
        self.cur = self.conn.cursor()
        now = datetime.now(UTC)
        super().__init__(docs, versions, now, now + timedelta(minutes=5))

    def begin(self) -> None:
        pass

    def execute(self, sql: str, params: tuple[Any, ...]) -> int:
        self.cur.execute(sql, params)
        return self.cur.rowcount

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


# -- the interleaved run -----------------------------------------------------------------


@dataclass
class Totals:
    engine_t: Spent = Spent()
    raw_t: Spent = Spent()
    plus_t: Spent = Spent()
    raw_rates: list[float] = field(default_factory=list)
    engine_n: int = 0
    raw_n: int = 0
    round_ratios: list[float] = field(default_factory=list)
    memory: list[tuple[int, float, float]] = field(default_factory=list)  # (n, peak, rss)

    @property
    def engine(self) -> float:
        return self.engine_n / self.engine_t.wall

    @property
    def raw(self) -> float:
        return self.raw_n / self.raw_t.wall

    @property
    def plus(self) -> float:
        return self.raw_n / self.plus_t.wall

    @property
    def median_ratio(self) -> float:
        ordered = sorted(self.round_ratios)
        return ordered[len(ordered) // 2]


def interleave(
    engine: EngineLoop,
    raw: RawLoop,
    n: int,
    chunk: int,
    checkpoints: set[int],
    out: Callable[[str], None],
    *,
    progress_every: int,
) -> Totals:
    """Alternate chunks of engine, raw and raw+ transactions until the engine did ``n``.

    Interleaving makes the ratio robust to whatever else the machine does meanwhile:
    both sides see the same disk and CPU weather.
    """
    engine.run(WARMUP)
    raw.run(WARMUP)
    raw.run(WARMUP, full=True)
    totals = Totals()
    since = (0.0, 0.0, 0)
    while totals.engine_n < n:
        size = min(chunk, n - totals.engine_n)
        round_no = totals.engine_n // chunk
        # Alternate who goes first, so that neither side always pays for the other's
        # WAL checkpoint or cache misses.
        if round_no % 2:
            r = raw.run(size)
            e = engine.run(size)
        else:
            e = engine.run(size)
            r = raw.run(size)
        totals.plus_t += raw.run(size, full=True)
        totals.engine_t += e
        totals.raw_t += r
        totals.engine_n += size
        totals.raw_n += size
        totals.round_ratios.append(r.wall / e.wall)
        totals.raw_rates.append(size / r.wall)
        if totals.engine_n in checkpoints:
            peak, rss = memory_mb()
            totals.memory.append((totals.engine_n, peak, rss))
        if totals.engine_n % progress_every == 0 or totals.engine_n == n:
            e_s, r_s, done = since
            m = totals.engine_n - done
            e_rate = m / (totals.engine_t.wall - e_s)
            r_rate = m / (totals.raw_t.wall - r_s)
            peak, rss = memory_mb()
            out(
                f"  {totals.engine_n:>7,}  engine {e_rate:7,.0f}/s  raw {r_rate:7,.0f}/s  "
                f"ratio {e_rate / r_rate:.2f}   peak RSS {peak:6.1f} MiB  RSS {rss:6.1f} MiB"
            )
            since = (totals.engine_t.wall, totals.raw_t.wall, totals.engine_n)
    return totals


def check_rows(setup: Setup, fired: int) -> str:
    """One outbox row and one timer per engine transition, and every audit chain verifies."""
    from sqlalchemy import func, select

    from congvan.storage.audit_checks import verify_document
    from congvan.storage.tables import OutboxJob, Timer

    docs = setup.engine_docs
    with setup.runtime.uow(readonly=True) as uow:
        counts = [
            uow.conn.execute(
                select(func.count()).select_from(t).where(t.c.document_id.in_(docs))
            ).scalar_one()
            for t in (OutboxJob.__table__, Timer.__table__)  # type: ignore[attr-defined]
        ]
        problems = [
            problem
            for doc in docs
            if (head := uow.documents.head(doc)) is not None
            and (problem := verify_document(uow.conn, doc, head.audit_head)) is not None
        ]
    verdict = "ok" if counts == [fired, fired] and not problems else "MISMATCH"
    return (
        f"  check: {fired:,} transitions fired, {counts[0]:,} outbox rows, {counts[1]:,} timers, "
        f"{len(docs) - len(problems)}/{len(docs)} audit chains verify -- {verdict}"
    )


# -- PostgreSQL servers ------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free 127.0.0.1 port; removed on exit."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("initdb/pg_ctl not found")
    base = Path(tempfile.mkdtemp(prefix="congvan-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log = base / "data", base / "server.log"
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)

    try:
        run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        run(
            pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start",
        )  # fmt: skip
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {detail.strip()[:300]}") from exc
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def service_database() -> Iterator[str]:
    """A temporary database on the machine's service at 127.0.0.1:5432 (trust auth)."""
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"congvan_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgres_url(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    url = args.pg or os.environ.get("CONGVAN_BENCH_PG_URL")
    if url:
        yield url, "given URL"
    elif args.pg_service:
        with service_database() as url:
            yield url, "service at 127.0.0.1:5432, temporary database"
    else:
        with throwaway_postgres() as url:
            yield url, "throwaway server"


# -- the report --------------------------------------------------------------------------


def report(label: str, totals: Totals, out: Callable[[str], None]) -> None:
    ratio = totals.engine / totals.raw
    verdict = "ok" if ratio >= AIM else "BELOW AIM"
    out(f"  per transaction: engine {totals.engine_t.per(totals.engine_n)}")
    out(f"                   raw    {totals.raw_t.per(totals.raw_n)}")
    out(f"                   raw+   {totals.plus_t.per(totals.raw_n)}")
    rates = sorted(totals.raw_rates)
    low, high = rates[len(rates) // 10], rates[-1 - len(rates) // 10]
    out(
        f"  raw rate across rounds: {low:,.0f}..{high:,.0f}/s (10th..90th percentile)"
        + ("  -- the machine was busy; the ratio is less reliable" if high > 2 * low else "")
    )
    out(
        f"  raw+ (SELECT + UPDATE + 3 INSERT, the engine's full statement list) "
        f"{totals.plus:,.0f}/s; engine / raw+ = {totals.engine / totals.plus:.2f}"
    )
    out(
        f"{label:<9} engine {totals.engine:,.0f}/s  raw {totals.raw:,.0f}/s  "
        f"ratio {ratio:.2f} (aim >= {AIM}) {verdict}   "
        f"[median of {len(totals.round_ratios)} rounds {totals.median_ratio:.2f}]"
    )


def bench_sqlite(args: argparse.Namespace, out: Callable[[str], None]) -> None:
    n = args.transitions
    first = 2_000 if args.quick else 10_000
    checkpoints = {min(first, n), n}
    tmp = Path(tempfile.mkdtemp(prefix="congvan-bench-sqlite-"))
    try:
        path = tmp / "congvan.db"
        setup = setup_runtime(f"sqlite:///{path}", args.documents, keep_effects=args.effects)
        out(
            f"sqlite: {path} (WAL, synchronous=FULL); {n:,} engine transitions over "
            f"{args.documents} drafts, interleaved with as many raw and raw+ ones in chunks "
            f"of {args.chunk}, after {WARMUP} warm-up each"
        )
        raw = RawSqlite(str(path), setup.raw_docs)
        try:
            every = max(args.chunk, n // 10)
            totals = interleave(
                EngineLoop(setup), raw, n, args.chunk, checkpoints, out, progress_every=every
            )
        finally:
            raw.close()
        report("sqlite", totals, out)
        (n1, peak1, rss1), (n2, peak2, rss2) = totals.memory[0], totals.memory[-1]
        out(
            f"sqlite    peak RSS {peak1:.1f} MiB at {n1:,}, {peak2:.1f} MiB at {n2:,} "
            f"(+{peak2 - peak1:.1f} MiB); RSS {rss1:.1f} -> {rss2:.1f} MiB"
        )
        out(check_rows(setup, WARMUP + totals.engine_n))
        if args.profile:
            out(f"\nphases of {args.profile:,} more engine transitions on SQLite (wall time):")
            out(phase_profile(setup, args.profile))
            out(f"\ncProfile of {args.profile:,} more engine transitions (own time):")
            out(cprofile_engine(setup, args.profile))
        setup.runtime.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_postgres(args: argparse.Namespace, out: Callable[[str], None]) -> None:
    n = args.pg_transitions
    with contextlib.ExitStack() as stack:
        try:
            url, where = stack.enter_context(postgres_url(args))
        except Exception as exc:  # noqa: BLE001 -- whatever stops us getting a server
            out(f"postgres  skipped: {exc}")
            return
        setup = setup_runtime(url, args.documents, keep_effects=args.effects)
        stack.callback(setup.runtime.stop)
        engine_url = setup.runtime.db.url
        pre_ping = getattr(setup.runtime.db.pool, "_pre_ping", False)
        raw_url = url.replace("postgresql+psycopg://", "postgresql://")
        out(
            f"postgres: {where}; {n:,} engine transitions over {args.documents} drafts, "
            f"interleaved with as many raw and raw+ ones in chunks of {args.chunk}"
        )
        raw = RawPostgres(raw_url, setup.raw_docs)
        stack.callback(raw.close)
        totals = interleave(
            EngineLoop(setup),
            raw,
            n,
            args.chunk,
            set(),
            out,
            progress_every=max(args.chunk, n // 4),
        )
        report("postgres", totals, out)
        if pre_ping:
            out(
                f"          ({engine_url.drivername}; the pool pre-pings each checkout: one "
                "round trip per transition the raw loop does not make)"
            )
        out(check_rows(setup, WARMUP + totals.engine_n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5k SQLite / 2k PostgreSQL")
    parser.add_argument("--transitions", type=int, help="SQLite engine transitions")
    parser.add_argument("--pg-transitions", type=int, help="PostgreSQL engine transitions")
    parser.add_argument("--documents", type=int, default=100, help="drafts to spread over")
    parser.add_argument("--chunk", type=int, help="transitions per interleaved chunk")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL URL (a throwaway database)")
    parser.add_argument(
        "--pg-service",
        action="store_true",
        help="use the service at 127.0.0.1:5432 (trust auth) with a temporary database",
    )
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument(
        "--effects",
        action="store_true",
        help="keep the effects submit runs (by default they are no-ops, see the docstring)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=5_000,
        default=0,
        metavar="N",
        help="then profile N more engine transitions on SQLite (default 5000)",
    )
    args = parser.parse_args(argv)
    args.transitions = args.transitions or (5_000 if args.quick else 100_000)
    args.pg_transitions = args.pg_transitions or (2_000 if args.quick else 20_000)
    args.chunk = args.chunk or (250 if args.quick else 1_000)

    def out(text: str) -> None:
        print(text, flush=True)

    # Killed, still remove the temporary files and stop a throwaway PostgreSQL server.
    signal.signal(signal.SIGTERM, lambda _signo, _frame: sys.exit(143))

    started = time.perf_counter()
    out(
        f"congvan transitions bench  python {sys.version.split()[0]}  "
        f"sqlite {sqlite3.sqlite_version}  cpus {os.cpu_count()}"
    )
    effects = submit_effects()
    if effects:
        out(
            f"submit runs the effect(s) {', '.join(effects)}: "
            + ("kept (--effects)" if args.effects else "replaced by no-ops (--effects keeps them)")
        )
    if not args.no_sqlite:
        bench_sqlite(args, out)
    if not args.no_pg:
        bench_postgres(args, out)
    out(f"done in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
