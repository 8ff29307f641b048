"""The ``evidence`` command: export a document's evidence bundle, verify one offline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from congvan.states.errors import InvalidInput
from congvan.states.text import printable

from ..settings import Settings
from .files import regular_file, written_whole
from .runtime import Subparsers, runtime_for

if TYPE_CHECKING:
    from cryptography import x509

    from congvan.actions.exchange.evidence_report import Report


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "evidence",
        help="export a document's evidence bundle; verify one with no database",
    )
    esub = p.add_subparsers(dest="action", required=True)
    x = esub.add_parser(
        "export",
        help="write one ZIP: manifest, signatures, signed PDF, files, headers, receipts, "
        "status messages, audit chain, anchors, roots and CRLs",
        description="Exit 0 when written, 2 when the document does not exist or is unsigned.",
    )
    x.add_argument("document")
    x.add_argument("-o", "--output", metavar="FILE", help="default: evidence-DOCUMENT.zip")
    x.add_argument(
        "--digests-only",
        action="store_true",
        help="leave the files out: the signed manifest names each by its SHA-256",
    )
    v = esub.add_parser(
        "verify",
        help="check a bundle offline: every digest, signature, receipt, status, the audit "
        "chain and its anchors",
        description="Needs no database. Exit 0 when everything holds, 1 when something does "
        "not (a file that is not a bundle too), 2 when there is no such file or a --trust "
        "file holds no PEM certificate.",
    )
    v.add_argument("bundle")
    v.add_argument(
        "--trust",
        action="append",
        metavar="ROOT.pem",
        help="a root you trust (repeatable); without it the bundle's own roots are used, "
        "which proves only that the bundle is consistent",
    )
    v.add_argument(
        "--trust-for",
        action="append",
        metavar="AGENCY=ROOT.pem",
        help="the root that speaks for AGENCY (repeatable; pinned too): its messages, "
        "anchors and index must chain to it, not to another party's root",
    )
    v.add_argument("--json", action="store_true", help="the verdict as JSON")
    p.set_defaults(func=cmd_evidence)


def cmd_evidence(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "export":
        return _export(args.document, args.output, args.digests_only, settings)
    return _verify(Path(args.bundle), args.trust or [], args.trust_for or [], args.json)


def _export(document_id: str, output: str | None, digests_only: bool, settings: Settings) -> int:
    import hashlib

    from congvan.actions.exchange.evidence import write_bundle
    from congvan.actions.signing.agencykeys import AgencyKeys

    from ..evidence import gather

    path = Path(output or f"evidence-{document_id}.zip")
    with runtime_for(settings) as runtime, runtime.uow(readonly=True) as uow:
        evidence = gather(uow, runtime.trust, document_id, with_files=not digests_only)
        now = runtime.clock()
        # The issuing agency signs the index: what the bundle holds, as a whole.
        keys = AgencyKeys(settings.passphrase, runtime.trust)
        agency = keys.require(uow, evidence.agency_id, now)
        roots = runtime.trust.roots()
    with written_whole(str(path), "bundle") as sink:
        count = write_bundle(sink, evidence, now, agency)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path}: {count} members, sha256 {digest}")
    _warn_unless_verified(path, roots)
    return 0


# Checks that fail when the records are dated after the moment of export.
_AHEAD = frozenset({"crl_after_export", "clock_ahead"})


def export_hint(codes: set[str]) -> str:
    """What to do about a bundle that fails with ``codes``, said after them; or nothing."""
    if codes & _AHEAD:
        # (an anchor or CRL made after this clock's now, as a demo's clock runs ahead of
        # real time: anchoring again changes nothing until the clock passes them)
        return (
            " (what it holds is dated after this clock's now, as a demo's clock runs ahead "
            "of real time: export it again once the clock has passed them)"
        )
    if "unanchored" in codes:
        return " (run `congvan audit anchor`, then export again)"
    return ""


def _warn_unless_verified(path: Path, roots: list[x509.Certificate]) -> None:
    """Say so when the bundle just written would not verify as it is, against this
    installation's roots: exported all the same (a dispute may need it as it stands), but
    its reader should not be the first to learn it. Entries after the last anchor are
    the usual cause: `congvan audit anchor`, then export again; records dated after the
    clock's now (a demo's, which runs ahead) another, which only time mends."""
    from congvan.actions.exchange.evidence_checks import verify_bundle

    with path.open("rb") as stream:
        report = verify_bundle(stream, roots)
    failed = [c for c in report.checks if not c.ok]
    if not failed:
        return
    codes = ", ".join(sorted({c.code or "failed" for c in failed}))
    hint = export_hint({c.code for c in failed})
    print(
        f"warning: {path} does not verify as it is against this installation's roots: "
        f"{codes}{hint}; `congvan evidence verify` says why",
        file=sys.stderr,
    )


def _pinned(paths: list[str]) -> list[x509.Certificate]:
    from cryptography import x509

    from congvan.actions.signing.truststore import fingerprint, require_root

    roots = []
    for name in paths:
        data = regular_file(name, "trust").read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = "\x00"
        if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
            # A binary file (a bundle holds its own roots as PEM: it must not pin them)
            raise InvalidInput(
                f"{name} is not a PEM text file of certificates.", field="trust", path=name
            )
        try:
            found = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise InvalidInput(
                f"{name} holds no PEM certificate.", field="trust", path=name
            ) from exc
        for cert in found:
            try:  # as `keys trust` pins one: a leaf named a root would anchor nothing
                require_root(cert)
            except InvalidInput as exc:
                raise InvalidInput(
                    f"{name} holds a certificate that is no CA's ({exc.message}).",
                    field="trust",
                    path=name,
                    fingerprint=fingerprint(cert),
                ) from exc
        roots.extend(found)
    return roots


def _bound(pairs: list[str]) -> tuple[list[x509.Certificate], dict[str, frozenset[str]]]:
    """``AGENCY=ROOT.pem`` pairs: their roots, and each agency's root fingerprints."""
    from congvan.actions.signing.truststore import fingerprint
    from congvan.states.policy import is_organ_id

    roots: list[x509.Certificate] = []
    bound: dict[str, frozenset[str]] = {}
    for pair in pairs:
        agency, _, name = pair.partition("=")
        if not is_organ_id(agency) or not name:
            raise InvalidInput(
                f"--trust-for takes AGENCY=ROOT.pem, an agency id and a file: not {pair!r}.",
                field="trust_for",
            )
        found = _pinned([name])
        roots += found
        bound[agency] = bound.get(agency, frozenset()) | {fingerprint(c) for c in found}
    return roots, bound


def _verify(bundle: Path, trust: list[str], trust_for: list[str], as_json: bool) -> int:
    from congvan.actions.exchange.evidence_checks import verify_bundle

    try:
        bound_roots, bound = _bound(trust_for)
        pinned = (_pinned(trust) + bound_roots) if trust or trust_for else None
        regular_file(str(bundle), "bundle")
    except InvalidInput as exc:
        if not as_json:
            raise
        error = {"code": exc.code, "message": exc.message, "details": exc.details}
        print(json.dumps({"bundle": str(bundle), "error": error}, ensure_ascii=False))
        return 2
    with bundle.open("rb") as stream:
        report = verify_bundle(stream, pinned, bound)
    if as_json:
        print(json.dumps({"bundle": str(bundle), **report.as_dict()}, ensure_ascii=False))
    else:
        _print(bundle, report)
    return 0 if report.verified else 1


def _print(bundle: Path, report: Report) -> None:
    # What the bundle names (its members, what a check quotes of them) is a stranger's
    # text: written with its control characters escaped, never obeyed by the terminal.
    _say(f"bundle        {bundle} (sha256 {report.sha256 or '—'})")
    _say(f"document      {report.document_id or '—'}")
    source = "pinned by you" if report.trust_source == "pinned" else "shipped in the bundle"
    for fp in report.roots:
        anchored = "anchored signatures" if fp in report.anchored_by else "anchored nothing"
        _say(f"root          {fp} ({source}; {anchored})")
    for check in report.checks:
        mark = "✓" if check.ok else "✗"
        code = "" if check.ok else f"[{check.code}] "
        _say(f"  {mark} {check.item:<26} {code}{check.detail}")
        if check.warning:
            _say(f"  ! {'':<26} {check.warning}")
    failed = [c for c in report.checks if not c.ok]
    if not failed:
        _say("VERIFIED")
        if report.trust_source == "bundle":
            _say(
                "              against the roots the bundle ships: pin the root you trust "
                "with --trust ROOT.pem for a verdict that proves who signed"
            )
    else:
        members = sorted({c.member for c in failed if c.member})
        where = f": {', '.join(members)}" if members else ""
        _say(f"NOT VERIFIED  {len(failed)} of {len(report.checks)} checks failed{where}")


def _say(line: str) -> None:
    """One line of the report, whatever it quotes shown as text (``printable``)."""
    # (an escape is at most six characters: nothing is cut)
    sys.stdout.write(printable(line, limit=6 * len(line)) + "\n")
