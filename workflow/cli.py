"""The ``congvan`` command: serve, worker, scheduler, demo, migrate, tokens, audit, graph."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from congvan.states import MACHINES
from congvan.states.errors import CongvanError, InvalidInput
from congvan.states.graph import to_dot, to_mermaid

from .settings import Settings

Command = Callable[[argparse.Namespace, Settings], int]


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return Settings(**overrides)


def _runtime(settings: Settings):  # type: ignore[no-untyped-def]
    from .bootstrap import bootstrap

    return bootstrap(settings)


def cmd_migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from congvan.storage.database import make_engine
    from congvan.storage.schema import migrate

    engine = make_engine(settings.db_url, synchronous=settings.sqlite_synchronous)
    revision = migrate(engine)
    print(f"database {engine.url.render_as_string(hide_password=True)} is at revision {revision}")
    engine.dispose()
    return 0


def _configure_logs(settings: Settings) -> None:
    from .logs import configure_logging

    configure_logging(settings.log_level, json=settings.log_json)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from .api import create_app

    _configure_logs(settings)
    runtime = _runtime(settings)
    app = create_app(runtime, background=not args.no_workers)
    uvicorn.run(
        app,
        log_config=None,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level="info",
    )
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def cmd_worker(_args: argparse.Namespace, settings: Settings) -> int:
    _configure_logs(settings)
    runtime = _runtime(settings)
    if runtime.embedded:
        raise InvalidInput(
            "With the embedded broker (memory://) the workers run inside "
            "`congvan serve`; set CONGVAN_BROKER_URL=redis://… for separate "
            "worker processes."
        )
    runtime.start(workers=True, relay=False, scheduler=False)
    print(f"worker running {settings.worker_threads} threads; Ctrl-C stops it")
    _wait_for_signal()
    runtime.stop()
    return 0


def cmd_scheduler(_args: argparse.Namespace, settings: Settings) -> int:
    _configure_logs(settings)
    runtime = _runtime(settings)
    if runtime.embedded:
        raise InvalidInput(
            "With the embedded broker the scheduler runs inside "
            "`congvan serve`; set CONGVAN_BROKER_URL=redis://… to run it apart."
        )
    runtime.start(workers=False, relay=True, scheduler=True)
    print("scheduler and outbox relay running; Ctrl-C stops them")
    _wait_for_signal()
    runtime.stop()
    return 0


def cmd_demo(args: argparse.Namespace, _settings: Settings) -> int:
    from .demo import run_demo

    return run_demo(Path(args.data_dir) if args.data_dir else None)


def cmd_agencies(args: argparse.Namespace, settings: Settings) -> int:
    from .directory import add_agency

    runtime = _runtime(settings)
    try:
        with runtime.uow() as uow:
            if args.action == "add":
                add_agency(uow, args.id, args.name, args.abbreviation, runtime.clock())
                uow.commit()
                print(f"added agency {args.id}")
            else:
                for a in uow.agencies.agencies():
                    print(f"{a['id']:<20} {a['abbreviation']:<10} {a['name']}")
    finally:
        runtime.stop()
    return 0


def cmd_authorities(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import date

    from .directory import add_authority

    runtime = _runtime(settings)
    try:
        with runtime.uow() as uow:
            if args.action == "add":
                try:
                    valid_from = date.fromisoformat(args.valid_from)
                    valid_until = date.fromisoformat(args.valid_until) if args.valid_until else None
                except ValueError as exc:
                    raise InvalidInput(f"Dates are YYYY-MM-DD: {exc}") from exc
                row = add_authority(
                    uow,
                    args.agency,
                    args.signer,
                    args.doc_types.split(","),
                    args.competence,
                    valid_from,
                    valid_until,
                    by="cli",
                    now=runtime.clock(),
                )
                uow.commit()
                print(
                    f"authority {row['id']}: {args.signer} signs {row['doc_types']} for "
                    f"{args.agency} from {row['valid_from']} until {row['valid_until'] or '—'}"
                )
            else:
                for a in uow.authorities.for_agency(args.agency):
                    state = "revoked" if a["revoked_at"] else "active"
                    print(
                        f"{a['id']}  {a['signer']:<20} {a['doc_types']:<12} "
                        f"{a['competence']:<20} {a['valid_from']} → {a['valid_until'] or '—'} "
                        f"{state}"
                    )
    finally:
        runtime.stop()
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path as _Path

    from congvan.actions.signing import keystore

    runtime = _runtime(settings)
    try:
        with runtime.uow() as uow:
            now = runtime.clock()
            if args.action == "list":
                for row in uow.signatures.certificates(args.agency):
                    subject = json.loads(row["subject"])
                    state = "revoked" if row["revoked_at"] else "valid"
                    print(
                        f"{row['fingerprint'][:16]}  {row['kind']:<7} "
                        f"{subject.get('common_name', ''):<32} "
                        f"{row['not_after']:%Y-%m-%d}  {state}"
                        f"{'  (key stored)' if row['key_pem'] else ''}"
                    )
                return 0
            if args.action == "init-ca":
                row = keystore.init_ca(
                    uow, args.name, args.organization, passphrase=settings.passphrase(), now=now
                )
            elif args.action == "issue-signer":
                row = keystore.issue_signer(
                    uow,
                    args.agency,
                    args.user,
                    passphrase=settings.passphrase(),
                    crl_url=settings.crl_url,
                    now=now,
                    valid_days=args.days,
                )
            elif args.action == "issue-agency":
                row = keystore.issue_agency(
                    uow,
                    args.agency,
                    passphrase=settings.passphrase(),
                    crl_url=settings.crl_url,
                    now=now,
                )
            elif args.action == "import":
                rows = keystore.import_certificate(
                    uow,
                    _Path(args.file).read_bytes(),
                    kind=args.kind,
                    now=now,
                    agency_id=args.agency,
                    username=args.user,
                    password=args.password,
                )
                row = rows[0]
            elif args.action == "revoke":
                keystore.revoke(
                    uow,
                    args.fingerprint,
                    reason=args.reason,
                    passphrase=settings.passphrase(),
                    now=now,
                )
                uow.commit()
                print(f"revoked {args.fingerprint}; a new CRL is published")
                return 0
            else:  # crl
                der = keystore.publish_crl(uow, passphrase=settings.passphrase(), now=now)
                uow.commit()
                _Path(args.out).write_bytes(der)
                print(f"CRL written to {args.out}")
                return 0
            uow.commit()
            print(f"{row['kind']} certificate {row['fingerprint']}")
    finally:
        runtime.stop()
    return 0


def cmd_tokens(args: argparse.Namespace, settings: Settings) -> int:
    from .directory import create_token, ensure_user

    runtime = _runtime(settings)
    try:
        with runtime.uow() as uow:
            now = runtime.clock()
            if args.action == "revoke":
                count = uow.agencies.revoke_token(args.prefix, now)
                uow.commit()
                print(f"revoked {count} token(s)")
                return 0 if count else 1
            username = args.user or "-".join(args.role)
            user_id = ensure_user(
                uow,
                args.agency,
                username,
                args.role,
                now,
                full_name=args.full_name,
                position=args.position,
            )
            issued = create_token(uow, user_id, now, args.expires_days)
            uow.commit()
    finally:
        runtime.stop()
    print(f"token for {username}@{args.agency} ({', '.join(args.role)}); shown only once:")
    print(issued.token)
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from congvan.storage.audit import verify_chains

    runtime = _runtime(settings)
    checked = broken = 0
    try:
        with runtime.uow(readonly=True) as uow:
            for doc_id, problem in verify_chains(uow.conn, args.document):
                checked += 1
                if problem is not None:
                    broken += 1
                    where = f"version {problem.version}" if problem.version else "its head"
                    print(
                        f"BROKEN {doc_id}: {problem.problem} at {where} "
                        f"(entry {problem.entry_id}): {problem.detail}"
                    )
    finally:
        runtime.stop()
    if args.document and checked == 0:
        print(f"no document {args.document}")
        return 2
    print(f"{checked} chain(s) checked, {broken} broken")
    return 1 if broken else 0


def cmd_graph(args: argparse.Namespace, _settings: Settings) -> int:
    render = to_dot if args.format == "dot" else to_mermaid
    names = list(MACHINES) if args.machine == "all" else [args.machine]
    for name in names:
        if args.format == "mermaid":
            print(f"%% {name}")
        print(render(MACHINES[name]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="congvan",
        description="Workflow engine for official electronic documents between state agencies.",
    )
    parser.add_argument(
        "--data-dir",
        help="where the embedded database lives "
        "(default: $CONGVAN_DATA_DIR or ~/.local/share/congvan)",
    )
    parser.add_argument("--database-url", help="overrides CONGVAN_DATABASE_URL")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the HTTP API (with workers on the embedded default)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
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
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("agencies", help="manage the directory of agencies")
    asub = p.add_subparsers(dest="action", required=True)
    a = asub.add_parser("add", help="add an agency")
    a.add_argument("id", help="electronic identifier, e.g. 000.00.00.H57")
    a.add_argument("--name", required=True)
    a.add_argument("--abbreviation", required=True, help="e.g. UBND")
    asub.add_parser("list", help="list agencies")
    p.set_defaults(func=cmd_agencies)

    p = sub.add_parser("authorities", help="manage signing authorities")
    asub = p.add_subparsers(dest="action", required=True)
    a = asub.add_parser("add", help="grant a signer authority to sign for an agency")
    a.add_argument("--agency", required=True)
    a.add_argument("--signer", required=True, help="user name of a user with the signer role")
    a.add_argument("--doc-types", default="*", help="comma-separated types, or * (default)")
    a.add_argument("--competence", default="", help="e.g. 'KT. CHỦ TỊCH'")
    a.add_argument("--from", dest="valid_from", required=True, help="YYYY-MM-DD")
    a.add_argument("--until", dest="valid_until", help="YYYY-MM-DD (inclusive)")
    a = asub.add_parser("list", help="list an agency's authorities")
    a.add_argument("--agency", required=True)
    p.set_defaults(func=cmd_authorities)

    p = sub.add_parser("keys", help="certification authority, certificates, CRLs")
    ksub = p.add_subparsers(dest="action", required=True)
    k = ksub.add_parser("init-ca", help="create this installation's certification authority")
    k.add_argument("--name", required=True)
    k.add_argument("--organization", required=True)
    k = ksub.add_parser("issue-signer", help="issue a signer's personal certificate")
    k.add_argument("--agency", required=True)
    k.add_argument("--user", required=True)
    k.add_argument("--days", type=int, default=730)
    k = ksub.add_parser("issue-agency", help="issue an agency's organisational certificate")
    k.add_argument("--agency", required=True)
    k = ksub.add_parser("import", help="import certificates (PEM, DER, PKCS#7, PKCS#12)")
    k.add_argument("file")
    k.add_argument("--kind", choices=("root", "agency", "signer"), required=True)
    k.add_argument("--agency")
    k.add_argument("--user")
    k.add_argument("--password", help="for a PKCS#12 file")
    k = ksub.add_parser("revoke", help="revoke a certificate and publish a new CRL")
    k.add_argument("fingerprint")
    k.add_argument("--reason", default="unspecified")
    k = ksub.add_parser("crl", help="publish a fresh CRL and write it (DER)")
    k.add_argument("--out", required=True)
    k = ksub.add_parser("list", help="list certificates")
    k.add_argument("--agency")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("tokens", help="create or revoke API tokens")
    tsub = p.add_subparsers(dest="action", required=True)
    t = tsub.add_parser("create", help="create a token (printed once; only its hash is kept)")
    t.add_argument("--agency", required=True)
    t.add_argument(
        "--role",
        required=True,
        action="append",
        help="clerk, reviewer, signer, supervisor or operator (repeatable)",
    )
    t.add_argument("--user", help="user name (default: the roles joined)")
    t.add_argument("--full-name", default="")
    t.add_argument("--position", default="")
    t.add_argument("--expires-days", type=int)
    r = tsub.add_parser("revoke", help="revoke tokens by their printed prefix")
    r.add_argument("prefix")
    p.set_defaults(func=cmd_tokens)

    p = sub.add_parser("audit", help="verify the audit chains")
    asub = p.add_subparsers(dest="action", required=True)
    v = asub.add_parser("verify", help="check every chain, or one document's")
    v.add_argument("document", nargs="?")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("graph", help="print the state machines (Mermaid or Graphviz dot)")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.add_argument("--machine", choices=(*MACHINES, "all"), default="all")
    p.set_defaults(func=cmd_graph)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        code: int = args.func(args, settings)
        return code
    except CongvanError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        if exc.details:
            print(json.dumps(exc.details, ensure_ascii=False), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
