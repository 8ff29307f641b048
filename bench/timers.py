"""A scheduler pass costs what is due, not what is waiting: timers, as ratios in one run.

What is measured
----------------
Two databases of the same schema (migrated as congvan migrates it): *big* holds
1,000,000 timers due in the future (``--timers``; 200,000 with ``--quick``), *small* none.
Before each timed pass, 1,000 timers due in the past (``--due``) are written to it, so a
pass always has the same work: big holds 1,001,000 timers of which 1,000 are due, small
1,000 of which 1,000 are due. The rows are bulk-loaded with the driver (``executemany``
on SQLite, ``COPY`` on PostgreSQL), outside the timings, with ids as congvan makes them
(UUIDv7: in creation order, so the newest rows' keys sit together as in a real table).

*scheduler* -- ``Scheduler.run_due()`` of ``workflow/scheduler.py`` as congvan builds it
(units of work on a ``make_engine`` engine, ``batch`` 200), with a handler that does
nothing: each tick takes a batch of due timers (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), fires each in its own savepoint and removes the fired ones, one transaction
per tick. *big ÷ small* is the pass's wall time on big over its wall time on small: a
pass that scanned the waiting timers would cost ~1,000 times more on big. Aim ≤ 1.5.

*raw* -- the ceiling for the firing rate, on big, with the plain driver (``sqlite3``,
``psycopg``): per batch of 200, one transaction of ``SELECT ... WHERE parked_at IS
NULL AND due_at <= ? ORDER BY due_at LIMIT 200`` (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL) reading the columns the scheduler reads, and one ``DELETE ... WHERE id IN
(...)`` of the same rows: what firing no-op timers must cost the database at the least.
The scheduler also takes a savepoint per timer (a failing handler undoes only its own
work); the ceiling does not. *fired/s ratio* is the scheduler's
timers per second on big over raw's. Aim ≥ 0.5.

*raw small* is raw on small, for comparison only: raw big ÷ raw small is what the size
of the tables and indexes costs the database itself (deeper B-trees, pages out of the
cache), which the scheduler's big ÷ small cannot be expected to beat.

The four sides run interleaved in rounds (5, or 3 with ``--quick``), alternating their
order, so that the machine's weather falls on all of them; times are summed over rounds.
Each pass must leave no due timer behind, and big must keep every future one.

*Memory*: peak RSS of this process at the end.

Run
---
From the repository root, with congvan installed::

    python bench/timers.py --quick             # SQLite, 200k waiting timers
    python bench/timers.py                     # SQLite, 1M waiting timers
    python bench/timers.py --postgres          # and PostgreSQL (a throwaway server)
    python bench/timers.py --postgres postgresql://user@host/throwaway_db

A benchmark, not a test: it prints its figures and exits 0 whatever they are.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, bench/ would come first on sys.path and bench/transitions.py would shadow
# the ``transitions`` library; the repository root gives ``tests`` and ``bench.*``.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from sqlalchemy import DateTime, Engine, text  # noqa: E402

from bench.transitions import memory_mb  # noqa: E402
from congvan.storage.database import make_engine  # noqa: E402
from congvan.storage.ids import new_id  # noqa: E402
from congvan.storage.schema import migrate  # noqa: E402
from congvan.storage.timers import DueTimer  # noqa: E402
from congvan.storage.unit_of_work import UnitOfWork  # noqa: E402
from congvan.workflow.scheduler import Scheduler  # noqa: E402

KIND = "bench_noop"
BATCH = 200
RATIO_AIM = 1.5
RATE_AIM = 0.5
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
COLUMNS = ("id", "kind", "ref_id", "document_id", "due_at", "payload", "attempts")
# What firing a timer needs of its row, as the scheduler reads it.
RAW_COLUMNS = "id, kind, ref_id, document_id, due_at, payload, attempts, last_error, parked_at"


def noop(_uow: UnitOfWork, _timer: DueTimer, _now: datetime) -> None:
    """A timer that asks for nothing: what is left is the scheduler's own cost."""


# -- databases -------------------------------------------------------------------------------


class Store:
    """One database: its congvan engine and a plain driver connection beside it."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.engine: Engine = make_engine(url)
        migrate(self.engine)
        self.postgres = self.engine.dialect.name == "postgresql"
        self.raw: Any = self._connect()
        # The text SQLAlchemy stores a moment as on this database (SQLite keeps text).
        processor = DateTime(timezone=True).dialect_impl(self.engine.dialect)
        self._moment = processor.bind_processor(self.engine.dialect) or (lambda v: v)

    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(self.engine.url.render_as_string(hide_password=False)
                                   .replace("postgresql+psycopg://", "postgresql://"),
                                   autocommit=True)  # fmt: skip
        path = self.engine.url.database
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def load(self, n: int, due: Callable[[int], datetime], chunk: int = 50_000) -> None:
        """Write ``n`` timers of the no-op kind, the i-th due at ``due(i)``, in bulk."""
        for start in range(0, n, chunk):
            rows = [
                (new_id(), KIND, "bench", None, self._moment(due(i)), "{}", 0)
                for i in range(start, min(n, start + chunk))
            ]
            if self.postgres:
                with (
                    self.raw.cursor() as cur,
                    cur.copy(f"COPY timers ({', '.join(COLUMNS)}) FROM STDIN") as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
            else:
                self.raw.execute("BEGIN IMMEDIATE")
                self.raw.executemany(
                    f"INSERT INTO timers ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self.raw.execute("COMMIT")
        if self.postgres:
            self.raw.execute("ANALYZE timers")

    def due_left(self) -> int:
        with self.engine.connect() as conn:
            query = text("SELECT count(*) FROM timers WHERE due_at <= :now")
            return int(conn.execute(query, {"now": NOW}).scalar_one())

    def total(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM timers")).scalar_one())

    def close(self) -> None:
        self.raw.close()
        self.engine.dispose()


def past(i: int) -> datetime:
    """Due moments spread over the hour before NOW."""
    return NOW - timedelta(seconds=1 + (i * 7) % 3600)


def future(i: int) -> datetime:
    """Waiting moments spread over the year after NOW."""
    return NOW + timedelta(seconds=60 + (i * 7919) % (365 * 86400))


# -- the three sides -------------------------------------------------------------------------


def scheduler_pass(store: Store) -> int:
    scheduler = Scheduler(
        lambda: UnitOfWork(store.engine), lambda: NOW, batch=BATCH, handlers={KIND: noop}
    )
    return scheduler.run_due()


def raw_pass(store: Store) -> int:
    """Take and delete every due timer with the plain driver, one batch per transaction."""
    fired = 0
    if store.postgres:
        take = (
            f"SELECT {RAW_COLUMNS} FROM timers WHERE parked_at IS NULL AND due_at <= %s "
            "ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        while True:
            with store.raw.transaction():
                ids = [r[0] for r in store.raw.execute(take, (NOW, BATCH))]
                if ids:
                    store.raw.execute("DELETE FROM timers WHERE id = ANY(%s)", (ids,))
            fired += len(ids)
            if len(ids) < BATCH:
                return fired
    take = (
        f"SELECT {RAW_COLUMNS} FROM timers WHERE parked_at IS NULL AND due_at <= ? "
        "ORDER BY due_at LIMIT ?"
    )
    now = store._moment(NOW)
    while True:
        store.raw.execute("BEGIN IMMEDIATE")
        ids = [r[0] for r in store.raw.execute(take, (now, BATCH))]
        if ids:
            marks = ", ".join("?" * len(ids))
            store.raw.execute(f"DELETE FROM timers WHERE id IN ({marks})", ids)
        store.raw.execute("COMMIT")
        fired += len(ids)
        if len(ids) < BATCH:
            return fired


@dataclass
class Side:
    label: str
    store: Store
    fire: Callable[[Store], int]
    seconds: float = 0.0
    fired: int = 0
    passes: list[float] = field(default_factory=list)

    def run(self, due: int) -> None:
        self.store.load(due, past)
        started = time.perf_counter()
        fired = self.fire(self.store)
        spent = time.perf_counter() - started
        left = self.store.due_left()
        if fired != due or left:
            raise RuntimeError(f"{self.label}: fired {fired} of {due}, {left} due left")
        self.seconds += spent
        self.fired += fired
        self.passes.append(spent)

    @property
    def rate(self) -> float:
        return self.fired / self.seconds if self.seconds else 0.0


def bench(label: str, big: Store, small: Store, args: argparse.Namespace, out: Any) -> None:
    started = time.perf_counter()
    big.load(args.timers, future)
    out(f"{label}: loaded {args.timers:,} waiting timers in {time.perf_counter() - started:.1f}s")
    sides = [
        Side("scheduler big", big, scheduler_pass),
        Side("scheduler small", small, scheduler_pass),
        Side("raw big", big, raw_pass),
        Side("raw small", small, raw_pass),
    ]
    warm = [Side(s.label, s.store, s.fire) for s in sides]
    for side in warm:  # compiled statements, warm caches and pages: not timed
        side.run(args.due)
    for r in range(args.rounds):
        for side in sides if r % 2 == 0 else list(reversed(sides)):
            side.run(args.due)
    if big.total() != args.timers:
        raise RuntimeError(f"{label}: the waiting timers changed: {big.total():,}")
    sched_big, sched_small, raw, raw_small = sides
    per = {s.label: s.seconds / args.rounds * 1000 for s in sides}
    ratio = sched_big.seconds / sched_small.seconds
    rate = sched_big.rate / raw.rate
    out(
        f"{label}: one pass firing {args.due:,} due  "
        f"with {args.timers + args.due:,} timers {per['scheduler big']:.1f} ms  "
        f"with {args.due:,} timers {per['scheduler small']:.1f} ms  "
        f"big ÷ small {ratio:.2f} (aim ≤ {RATIO_AIM}) {'ok' if ratio <= RATIO_AIM else 'LOW'}"
    )
    out(
        f"{label}: fired/s scheduler {sched_big.rate:,.0f}  raw {raw.rate:,.0f}  "
        f"ratio {rate:.2f} (aim ≥ {RATE_AIM}) {'ok' if rate >= RATE_AIM else 'LOW'}"
    )
    out(
        f"{label}: for comparison, raw big ÷ raw small {raw.seconds / raw_small.seconds:.2f}: "
        "what the bigger tables and indexes cost the database itself"
    )
    spread = max(raw.passes) / min(raw.passes)
    if spread > 2:
        out(f"{label}: warning: raw passes varied {spread:.1f}-fold (a busy machine?)")


# -- running ---------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres(given: str) -> Iterator[str]:
    """The URL given, else a throwaway server started as the tests start theirs."""
    if given:
        yield given
        return
    from tests.servers import start_postgres

    with (
        tempfile.TemporaryDirectory(prefix="congvan-bench-timers-") as folder,
        start_postgres(folder, durable=True) as url,
    ):
        yield url


def new_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k waiting timers, 3 rounds")
    parser.add_argument("--timers", type=int, help="waiting timers on big (default 1,000,000)")
    parser.add_argument("--due", type=int, default=1_000, help="due timers per pass")
    parser.add_argument("--rounds", type=int, help="timed passes of each side")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="",
        default=None,
        metavar="URL",
        help="also on PostgreSQL: a throwaway server, or the server at URL (its databases "
        "are created beside the URL's)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    args = parser.parse_args(argv)
    args.timers = args.timers or (200_000 if args.quick else 1_000_000)
    args.rounds = args.rounds or (3 if args.quick else 5)

    def out(line: str) -> None:
        print(line, flush=True)

    # Killed, still remove the temporary files and stop a throwaway PostgreSQL server.
    signal.signal(signal.SIGTERM, lambda _signo, _frame: sys.exit(143))
    started = time.perf_counter()
    out(f"congvan timers bench  python {sys.version.split()[0]}  sqlite {sqlite3.sqlite_version}")
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="congvan-bench-timers-") as folder:
            stores = [Store(f"sqlite:///{folder}/{n}.db", n) for n in ("big", "small")]
            try:
                bench("sqlite", *stores, args, out)
            finally:
                for store in stores:
                    store.close()
    if args.postgres is not None:
        with postgres(args.postgres) as admin:
            tag = uuid.uuid4().hex[:8]
            urls = [new_database(admin, f"congvan_timers_{n}_{tag}") for n in ("big", "small")]
            stores = [Store(url, n) for url, n in zip(urls, ("big", "small"), strict=True)]
            try:
                bench("postgresql", *stores, args, out)
            finally:
                for store in stores:
                    store.close()
    peak, current = memory_mb()
    out(f"memory: peak {peak:.0f} MiB, now {current:.0f} MiB")
    out(f"done in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
