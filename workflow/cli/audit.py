"""The ``audit`` command: verify the audit chains and their anchors, and anchor the heads."""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import TYPE_CHECKING

from congvan.states.errors import Conflict, InvalidInput, NotFound

from ..settings import Settings
from .runtime import Store, Subparsers, add_progress_option, progress_bar, runtime_for
from .verdict import print_trust_notes

if TYPE_CHECKING:
    from congvan.storage.unit_of_work import UnitOfWork

    from ..bootstrap import Runtime


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("audit", help="verify the audit chains and their signed anchors")
    asub = p.add_subparsers(dest="action", required=True)
    v = asub.add_parser(
        "verify",
        help="check every chain (or one document's) and every anchor",
        description="Exit 0 when everything verifies, 1 when something is broken, 2 when "
        "there is no such document.",
    )
    v.add_argument("document", nargs="?")
    add_progress_option(v)
    v.add_argument(
        "--known",
        action="append",
        metavar="AGENCY:SEQ:SHA256",
        help="an anchor recorded elsewhere (as `audit anchor` prints it); it must still be "
        "here, unchanged",
    )
    n = asub.add_parser(
        "anchor",
        help="sign the heads changed since the last anchor, with each agency's key",
        description="Needs CONGVAN_KEY_PASSPHRASE and an organisational certificate per "
        "agency (congvan keys issue-agency). The scheduler does this every "
        "CONGVAN_AUDIT_ANCHOR_MINUTES.",
    )
    n.add_argument("--agency", help="only this agency")
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "anchor":
        with runtime_for(settings, wired=True) as runtime:
            return _audit_anchor(runtime, args.agency)
    known = [_parse_known(item) for item in args.known or []]  # before any work
    with runtime_for(settings) as runtime:
        return _audit_verify(runtime, args.document, args.progress, known)


def _audit_anchor(runtime: Runtime, agency: str | None) -> int:
    from congvan.actions.jobs import RetryLater

    if agency is not None:
        with runtime.uow(readonly=True) as uow:
            if uow.agencies.agency(agency) is None:
                raise NotFound(f"No agency {agency} in the directory.", field="agency")
    try:
        made = runtime.anchoring.anchor(runtime.uow, runtime.clock(), agency)
    except RetryLater as exc:  # another anchor (a command, the timer) won the race
        raise Conflict(f"{exc}: nothing was kept, run it again.") from None
    if not made:
        whose = f"Agency {agency} has" if agency is not None else "No agency has"
        raise InvalidInput(
            f"{whose} an organisational certificate with a stored key to sign anchors "
            "with: congvan keys issue-agency --agency AGENCY.",
            field="agency",
        )
    with runtime.uow(readonly=True) as uow:
        for agency_id, heads in sorted(made.items()):
            print(f"{agency_id}: {heads} head(s) anchored" if heads else f"{agency_id}: no change")
            latest = uow.anchors.latest(agency_id)
            if latest is not None:
                # Kept outside this database, it lets `audit verify --known` notice the
                # newest anchors deleted, which nothing inside the database can.
                digest = hashlib.sha256(bytes(latest.body)).hexdigest()  # not the column's
                print(f"   latest anchor: {agency_id}:{latest.seq}:{digest}")
    return 0


def _check_known(uow: UnitOfWork, known: list[tuple[str, int, str]]) -> list[str]:
    """Problems with anchors recorded elsewhere, as report lines."""
    lines = []
    for agency_id, seq, digest in known:
        anchor = uow.anchors.get(agency_id, seq)
        if anchor is None:
            lines.append(f"BROKEN known anchor {seq} of {agency_id}: it is gone")
        elif hashlib.sha256(bytes(anchor.body)).hexdigest() != digest:
            lines.append(f"BROKEN known anchor {seq} of {agency_id}: it is not the one recorded")
    return lines


def _parse_known(item: str) -> tuple[str, int, str]:
    parts = item.rsplit(":", 2)
    well_formed = (
        len(parts) == 3
        and parts[1].isascii()
        and parts[1].isdigit()
        and len(parts[1]) <= 9  # a sequence number the databases keep
        and len(parts[2]) == 64
        and all(c in "0123456789abcdefABCDEF" for c in parts[2])
    )
    if not well_formed:
        raise InvalidInput(
            "--known takes AGENCY:SEQ:SHA256 as `audit anchor` prints it.",
            field="known",
            given=item[:200],
        )
    return parts[0], int(parts[1]), parts[2].lower()


def _audit_verify(
    runtime: Store, document: str | None, progress: bool | None, known: list[tuple[str, int, str]]
) -> int:
    from congvan.actions.anchoring import verify_anchors
    from congvan.actions.signing import keystore

    checked = broken = 0
    with runtime.uow(readonly=True) as uow:
        print_trust_notes(
            keystore.trust_material(uow, runtime.trust, noting_ignored=True), runtime.trust
        )
        if document is not None and not document.strip():
            raise InvalidInput("The document id is empty.", field="document")
        total = 1 if document else uow.audit.count_chains()
        bar = progress_bar(total, "chain", progress)
        for doc_id, problem in uow.audit.verify(document):
            checked += 1
            bar.update()
            if problem is not None:
                broken += 1
                where = f"version {problem.version}" if problem.version else "its head"
                entry = f" (entry {problem.entry_id})" if problem.entry_id is not None else ""
                bar.write(
                    f"BROKEN {doc_id}: {problem.problem} at {where}{entry}: {problem.detail}",
                    file=sys.stdout,
                )
        bar.close()
        if document and checked == 0:
            raise NotFound(f"No document {document!r}.", document_id=document)
        anchors = bad_anchors = 0
        # With a document (outgoing, received or an escalation), every agency's anchors
        # still, and of their heads only the document's: the agency its row names is a
        # bare column SQL can change.
        for agency_id in uow.anchors.agencies_with_anchors():
            for seq, anchor_problem in verify_anchors(uow, runtime.trust, agency_id, document):
                anchors += 1
                if anchor_problem is not None:
                    bad_anchors += 1
                    where = ""
                    if anchor_problem.document_id:
                        where = (
                            f" for {anchor_problem.document_id} version {anchor_problem.version}"
                        )
                    print(
                        f"BROKEN anchor {seq} of {agency_id}: {anchor_problem.problem}"
                        f"{where}: {anchor_problem.detail}"
                    )
        missing = _check_known(uow, known)
    for line in missing:
        print(line)
    print(f"{checked} chain(s) checked, {broken} broken")
    print(f"{anchors} anchor(s) checked, {bad_anchors} broken")
    if known:
        print(f"{len(known)} known anchor(s) checked, {len(missing)} broken")
    return 1 if broken or bad_anchors or missing else 0
