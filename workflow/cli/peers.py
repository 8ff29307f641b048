"""The ``peers`` command: the directory of agencies other congvan instances serve."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from congvan.states import policy

from ..settings import Settings
from . import files
from .files import read_bounded
from .runtime import Subparsers, runtime_for

if TYPE_CHECKING:
    from ..peers import PeerAdded


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("peers", help="manage the directory of peers (agencies served elsewhere)")
    psub = p.add_subparsers(dest="action", required=True)
    a = psub.add_parser("add", help="add or update an agency's inbox and certificates")
    a.add_argument("agency_id", metavar="AGENCY_ID", help="e.g. 000.00.00.H58")
    a.add_argument("--name", default="", help="needed when the agency is new here")
    a.add_argument("--abbreviation", default="", help="needed when the agency is new here")
    a.add_argument("--inbox-url", required=True, help="https URL its packages are posted to")
    a.add_argument(
        "--certificate",
        metavar="FILE",
        help="its organisational certificate(s): PEM, DER or PKCS#7 (needed unless it holds "
        "one valid now)",
    )
    a.add_argument(
        "--timeout",
        type=int,
        help="seconds one delivery request may take (default: the entry's own, or "
        f"{policy.PEER_TIMEOUT_SECONDS} for a new one)",
    )
    a.add_argument(
        "--concurrency",
        type=int,
        help="deliveries in flight to it at most (default: the entry's own, or "
        f"{policy.PEER_CONCURRENCY} for a new one)",
    )
    a.add_argument(
        "--allow-http", action="store_true", help="accept a plain http URL to a non-loopback host"
    )
    a = psub.add_parser("list", help="list the peers")
    a.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    a = psub.add_parser("remove", help="remove a peer (the agency and its certificates stay)")
    a.add_argument("agency_id", metavar="AGENCY_ID")
    a = psub.add_parser(
        "import", help="add or update every peer of a directory file (all or nothing)"
    )
    a.add_argument("file", metavar="FILE", help="a congvan-directory/1 JSON file")
    a.add_argument(
        "--allow-http", action="store_true", help="accept plain http URLs to non-loopback hosts"
    )
    a = psub.add_parser(
        "export", help="print the directory file of our agencies for other instances"
    )
    a.add_argument(
        "agency_ids",
        metavar="AGENCY_ID",
        nargs="*",
        help="our agencies to list (default: every agency holding its organisational key)",
    )
    a.add_argument(
        "--inbox-url-base",
        required=True,
        metavar="URL",
        help="this instance's public URL; each inbox is URL/v1/inbox (one per instance), "
        "or URL with {agency_id} replaced",
    )
    a.add_argument(
        "--allow-http", action="store_true", help="accept a plain http URL to a non-loopback host"
    )
    p.set_defaults(func=cmd_peers)


def cmd_peers(args: argparse.Namespace, settings: Settings) -> int:
    from .. import peers

    with runtime_for(settings) as runtime, runtime.uow() as uow:
        now = runtime.clock()
        if args.action == "list":
            listed = peers.list_peers(uow)
            if args.json:
                rows = [
                    {
                        "agency_id": p.agency_id,
                        "inbox_url": p.inbox_url,
                        "transport": p.transport,
                        "timeout_seconds": p.timeout_seconds,
                        "max_concurrency": p.max_concurrency,
                        "created_at": p.created_at.isoformat(),
                        "updated_at": p.updated_at.isoformat(),
                    }
                    for p in listed
                ]
                print(json.dumps(rows, ensure_ascii=False, indent=2))
            else:
                if not listed:
                    print("no peers")
                for p in listed:
                    print(
                        f"{p.agency_id:<20} {p.transport:<5} {p.timeout_seconds:>4}s "
                        f"×{p.max_concurrency:<3} {p.inbox_url}"
                    )
            return 0
        if args.action == "export":
            data = peers.export_directory(
                uow,
                args.agency_ids,
                peers.default_inbox_url(args.inbox_url_base),
                now=now,
                allow_http=args.allow_http,
            )
            sys.stdout.write(data.decode("utf-8"))
            return 0
        if args.action == "remove":
            waiting = peers.remove_peer(uow, args.agency_id)
            uow.commit()
            print(f"removed peer {args.agency_id} (the agency and its certificates stay)")
            if waiting:
                print(
                    f"warning: {waiting} dispatch(es) to it not yet delivered will fail at "
                    "their next attempt (unknown_peer); add the peer again and resend them",
                    file=sys.stderr,
                )
            return 0
        if args.action == "import":
            data = read_bounded(args.file, "file", files.DIRECTORY)
            added = peers.import_directory(
                uow, data, now, trust=runtime.trust, allow_http=args.allow_http
            )
            uow.commit()
            for done in added:
                print(_said(done))
            print(f"imported {len(added)} peer(s)")
            return 0
        done = peers.add_peer(
            uow,
            args.agency_id,
            name=args.name,
            abbreviation=args.abbreviation,
            inbox_url=args.inbox_url,
            certificates=(
                read_bounded(args.certificate, "certificate", files.CERTIFICATES)
                if args.certificate
                else None
            ),
            trust=runtime.trust,
            timeout=args.timeout,
            concurrency=args.concurrency,
            now=now,
            allow_http=args.allow_http,
        )
        uow.commit()
        print(_said(done))
    return 0


def _said(done: PeerAdded) -> str:
    verb = "added" if done.created else "updated" if done.changed else "unchanged"
    agency = " (new agency)" if done.agency_created else ""
    return (
        f"{verb} peer {done.peer.agency_id}{agency}: {done.peer.inbox_url}, "
        f"{len(done.certificates)} new certificate(s)"
    )
