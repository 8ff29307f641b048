"""The process commands: serve, worker, scheduler; and migrate and demo."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from congvan.states.errors import InvalidInput, Unavailable
from congvan.states.timeliness import LAST_DAY

from ..settings import Settings
from .runtime import Subparsers, runtime_for, whole_number

log = logging.getLogger("congvan.serving")
# Between two looks for a PostgreSQL server not up yet at start (seconds).
DATABASE_WAIT_SECONDS = 2.0

if TYPE_CHECKING:
    from ..bootstrap import Runtime


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("serve", help="run the HTTP API (with workers on the embedded default)")
    p.add_argument("--host", help="the address to listen on (default: CONGVAN_HOST, 127.0.0.1)")
    p.add_argument(
        "--port",
        type=_port,
        help="the port to listen on (default: CONGVAN_PORT, 8000; 0: any free one, logged)",
    )
    p.add_argument("--no-workers", action="store_true", help="API only")
    p.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="run dramatiq worker threads (Redis broker)").set_defaults(
        func=cmd_worker
    )
    sub.add_parser("scheduler", help="run the timer scheduler and outbox relay").set_defaults(
        func=cmd_scheduler
    )
    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(
        func=cmd_migrate
    )
    p = sub.add_parser("demo", help="drive the sample letter 1227/UBND-TĐKT through the engine")
    for action in p._actions:  # the installation's options, as the demo takes them
        if action.dest == "data_dir":
            action.help = (
                "an empty folder to run in, its two installations kept there afterwards "
                "(default: a temporary folder, removed at the end)"
            )
        elif action.dest == "database_url":
            action.help = argparse.SUPPRESS  # it makes its own two (refused when given)
    p.add_argument(
        "--start",
        type=_moment,
        help="play it as if it began at this moment (ISO 8601 with its offset); default: now",
    )
    p.set_defaults(func=cmd_demo)


_port = whole_number("a port", 0, 65535)


FIRST_DEMO_DAY = date(2000, 1, 1)


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 moment: {value!r}") from exc
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"give the moment's UTC offset: {value!r}")
    from congvan.actions.signing.keystore import CA_VALID_DAYS

    # Its certification authority is valid ten years on from the start, within the days
    # reckoned with (to the end of 2100).
    latest = LAST_DAY - timedelta(days=CA_VALID_DAYS)
    try:
        day = moment.astimezone(UTC).date()
    except OverflowError:  # a moment whose UTC falls outside years 1-9999
        day = None
    if day is None or not FIRST_DEMO_DAY <= day <= latest:
        raise argparse.ArgumentTypeError(
            f"the demo starts from {FIRST_DEMO_DAY} to {latest} (UTC): {value!r}"
        )
    return moment


def cmd_migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from congvan.storage.database import make_engine, shown_url
    from congvan.storage.schema import migrate

    engine = make_engine(settings.db_url, synchronous=settings.sqlite_synchronous)
    revision = migrate(engine)
    print(f"database {shown_url(engine.url)} is at revision {revision}")
    engine.dispose()
    return 0


def _database_up(settings: Settings) -> None:
    """Wait for a PostgreSQL server that takes no connections yet (containers starting
    together, a database restarting), as for Redis: one warning, then on once it does. A
    server that refuses us (a wrong password, no such database) is told at once."""
    from congvan.storage.database import make_engine, wait_until_up

    if not settings.db_url.startswith("postgresql"):
        return  # SQLite: a file of this machine, there or not

    def said(exc: BaseException) -> None:
        log.warning(
            "the database is not reachable yet; waiting for it",
            extra={"action": "database.unreachable", "error": str(exc)[:300]},
        )

    engine = make_engine(settings.db_url, pool_size=1)
    try:
        wait_until_up(engine, said, every=DATABASE_WAIT_SECONDS)
    finally:
        engine.dispose()


def _configure_logs(settings: Settings) -> None:
    from ..logs import configure_logging

    configure_logging(settings.log_level, json=settings.log_json)


def _keys_unlock(runtime: Runtime) -> None:
    """Refuse to start a process that signs in the background (receipts, status messages,
    packages, anchors) when the stored organisational keys cannot be unlocked: without
    CONGVAN_KEY_PASSPHRASE, or with a wrong one, every such job would fail and retry."""
    from congvan.actions.signing import pki
    from congvan.actions.signing.keywrap import KeyUndecryptable

    with runtime.uow(readonly=True) as uow:
        stored = uow.signatures.an_agency_key()
    if stored is None:
        return  # no key yet: nothing to unlock
    try:
        pki.load_private_key(stored.key_pem.encode(), runtime.settings.passphrase())
    except KeyUndecryptable as exc:
        raise InvalidInput(
            "CONGVAN_KEY_PASSPHRASE does not unlock the stored organisational keys "
            f"(tried {stored.agency_id}'s).",
            field="CONGVAN_KEY_PASSPHRASE",
        ) from exc


def _ca_key_unlocks(runtime: Runtime) -> None:
    """Refuse to start the scheduler, which republishes this installation's CRL before it
    runs out, when the CA key kept here does not open: it would only log the failure each
    time, until every verifier took our certificates as unverifiable for want of a CRL."""
    from congvan.actions.signing import pki
    from congvan.actions.signing.keywrap import KeyUndecryptable

    with runtime.uow(readonly=True) as uow:
        held = [r for r in uow.signatures.roots() if r.key_pem]
    if not held:
        return  # no CA here: nothing to republish
    try:
        pki.load_private_key(held[-1].key_pem.encode(), runtime.settings.ca_passphrase())
    except KeyUndecryptable as exc:
        raise InvalidInput(
            "The CA private key kept here does not open, and the scheduler republishes its "
            "CRL with it: set CONGVAN_CA_KEY_PASSPHRASE to the CA's passphrase (unset, "
            "CONGVAN_KEY_PASSPHRASE is tried).",
            field="CONGVAN_CA_KEY_PASSPHRASE",
        ) from exc


def _broker_usable(runtime: Runtime) -> None:
    """Refuse to start on a Redis that answers but refuses us (a database number it does
    not have, a wrong password): every consumer would fail on it every few seconds, the
    reason nowhere. One not reachable now is waited for, as when it goes down later."""
    if runtime.embedded:
        return
    import redis

    url = runtime.settings.broker_url.get_secret_value()
    # A client of its own, bounded in time: an address that drops packets is not waited on.
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except (redis.AuthenticationError, redis.ResponseError) as exc:
        raise InvalidInput(
            f"The Redis server of CONGVAN_BROKER_URL refuses this connection: {exc}",
            field="broker_url",
        ) from None
    except redis.RedisError as exc:
        log.warning(
            "the broker is not reachable yet; its work waits for it",
            extra={"action": "broker.unreachable", "error": str(exc)[:200]},
        )
    finally:
        client.close()


def _trust_usable(runtime: Runtime) -> None:
    """Refuse to start a process that verifies in the background (receipts, status
    messages, packages) when its trust folder cannot be used: every user of the machine
    may change it (each job would fail on it), or it holds no root while this
    installation has an organisational key (a CONGVAN_TRUST_DIR mistyped or a volume not
    mounted: every receipt would not verify, and each delivery spend its attempts on
    packages its recipients took)."""
    roots = runtime.trust.roots()  # InvalidInput: a folder or file anyone may change
    if roots:
        return
    with runtime.uow(readonly=True) as uow:
        keyed = uow.signatures.an_agency_key() is not None
    if keyed:
        folder = runtime.settings.trust_path
        raise InvalidInput(
            f"The trust folder {folder} holds no root certificate, yet this installation "
            "holds an organisational key: nothing it receives would verify. Name the folder "
            "`keys init-ca` and `keys trust` wrote to (CONGVAN_TRUST_DIR, else DATA_DIR/trust).",
            field="CONGVAN_TRUST_DIR",
            path=str(folder),
        )


def _clock_agrees(runtime: Runtime) -> None:
    """Refuse to start a process whose clock differs from the database server's by more
    than the leases allow (PostgreSQL; SQLite is read on this machine, by this clock)."""
    if runtime.db.dialect.name != "postgresql":
        return
    allowed = runtime.settings.clock_allowance()
    before = runtime.clock()
    with runtime.db.connect() as conn:
        server = conn.execute(text("SELECT CURRENT_TIMESTAMP")).scalar_one()
    after = runtime.clock()
    skew = before + (after - before) / 2 - server
    if abs(skew) > allowed:
        raise InvalidInput(
            f"This machine's clock is {abs(skew).total_seconds():.0f} s "
            f"{'ahead of' if skew > timedelta(0) else 'behind'} the database server's; "
            f"leases and timers allow {allowed.total_seconds():.0f} s. Set the clock "
            "(NTP) and start again.",
            field="clock",
            skew_seconds=round(skew.total_seconds(), 1),
            allowed_seconds=allowed.total_seconds(),
        )


@contextlib.contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM is how a service (serve, worker, scheduler) is stopped: it ends the process
    with status 0 wherever it stands, waiting for the database at start as much as
    running (what was committed stays, what was under way rolls back), as a supervisor
    (systemd, a container runtime) expects of a clean stop; not 143, a failure to it."""
    before = signal.signal(signal.SIGTERM, _stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from ..api import create_app

    with _stopped_by_sigterm(), _started(settings) as runtime:
        _keys_unlock(runtime)  # the inbox signs receipts; its workers, statuses
        if runtime.embedded and not args.no_workers:
            _ca_key_unlocks(runtime)  # its scheduler republishes our CRL
        _trust_usable(runtime)
        _clock_agrees(runtime)
        _broker_usable(runtime)
        # API only: on Redis its jobs still go straight to the broker once committed; on
        # the embedded broker they wait in the table for the relay of `congvan serve`.
        if args.no_workers and runtime.embedded:
            print(
                "note: API only, on the embedded broker: review checks, signing and "
                "delivery wait in the database until a `congvan serve` without "
                "--no-workers runs on it (or set CONGVAN_BROKER_URL=redis://… and run "
                "`congvan worker` and `congvan scheduler`)",
                file=sys.stderr,
            )
        from ..api.wire import JsonErrorsH11Protocol

        app = create_app(
            runtime,
            background=not args.no_workers,
            hand_off=args.no_workers and not runtime.embedded,
        )
        from sqlalchemy.engine import make_url

        from congvan.storage.database import shown_url

        from ..serving import freeze_loaded

        host = args.host or settings.host
        port = settings.port if args.port is None else args.port  # 0: any free port
        _can_listen(host, port)
        log.info(
            "serving",
            extra={
                "action": "serve.start",
                "database": shown_url(make_url(settings.db_url)),
                "data_dir": str(settings.data_dir),
                "broker": "embedded" if runtime.embedded else "redis",
                "workers": not args.no_workers,
            },
        )
        freeze_loaded()
        # uvicorn stops cleanly on SIGTERM, then raises it again at itself: the default
        # action would end the process there (exit 143, this installation left unclosed);
        # the handler of _stopped_by_sigterm, set again, takes it as the end of the run.
        try:
            uvicorn.run(
                app,
                log_config=None,
                host=host,
                port=port,
                log_level="info",
                http=JsonErrorsH11Protocol,
            )
        finally:
            signal.signal(signal.SIGTERM, _stopped)
    return 0


def _stopped(_signal: int, _frame: object) -> None:
    raise SystemExit(0)


def _can_listen(host: str, port: int) -> None:
    """Refuse at once, in one coded line, an address this machine cannot listen on (a
    port in use, a host that is none of its own), which uvicorn would only log."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _name, address = found[0]
        with socket.socket(family, kind, proto) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            listener.bind(address)
    except (OSError, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise Unavailable(
            f"Cannot listen on {host}:{port}: {why}. Choose another --port (0: any free one) "
            "or --host.",
            host=host,
            port=port,
        ) from None


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def cmd_worker(_args: argparse.Namespace, settings: Settings) -> int:
    return _run_apart(
        settings,
        "With the embedded broker (memory://) the workers run inside "
        "`congvan serve`; set CONGVAN_BROKER_URL=redis://… for separate "
        "worker processes.",
        f"worker running {settings.worker_threads} threads; Ctrl-C stops it",
        workers=True,
        hand_off=True,
    )


def cmd_scheduler(_args: argparse.Namespace, settings: Settings) -> int:
    return _run_apart(
        settings,
        "With the embedded broker the scheduler runs inside "
        "`congvan serve`; set CONGVAN_BROKER_URL=redis://… to run it apart.",
        "scheduler and outbox relay running; Ctrl-C stops them",
        relay=True,
        scheduler=True,
    )


def _run_apart(
    settings: Settings,
    refusal: str,
    running: str,
    *,
    workers: bool = False,
    relay: bool = False,
    scheduler: bool = False,
    hand_off: bool = False,
) -> int:
    """Run background threads in their own process until a signal; refused on the
    embedded broker, whose queues live inside ``congvan serve``."""
    if settings.broker_url.get_secret_value().startswith("memory://"):  # before any log
        raise InvalidInput(refusal)
    with _stopped_by_sigterm(), _started(settings) as runtime:
        if runtime.embedded:
            raise InvalidInput(refusal)
        _keys_unlock(runtime)
        if scheduler:
            _ca_key_unlocks(runtime)
        _trust_usable(runtime)
        _clock_agrees(runtime)
        _broker_usable(runtime)
        runtime.start(workers=workers, relay=relay, scheduler=scheduler, hand_off=hand_off)
        from ..serving import freeze_loaded

        freeze_loaded()
        print(running)
        _wait_for_signal()
    return 0


@contextlib.contextmanager
def _started(settings: Settings) -> Iterator[Runtime]:
    """The process's logs set up, its database waited for, and its runtime built."""
    _configure_logs(settings)
    _database_up(settings)
    with runtime_for(settings, wired=True) as runtime:
        yield runtime


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from ..demo import run_demo

    if getattr(args, "database_url", None):
        raise InvalidInput(
            "The demo makes its own two installations, each with its SQLite database in "
            "--data-dir (or a temporary folder): --database-url is not for it.",
            field="database_url",
        )

    given = settings.key_passphrase.get_secret_value() if settings.key_passphrase else None
    data_dir = Path(args.data_dir) if args.data_dir else None
    return run_demo(data_dir, start=args.start, passphrase=given or None)
