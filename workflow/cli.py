"""The ``congvan`` command: serve, worker, scheduler, demo, migrate, tokens, audit, verify,
graph."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from congvan.states import MACHINES, policy
from congvan.states.errors import CongvanError, InvalidEncoding, InvalidInput, NotFound
from congvan.states.graph import to_dot, to_mermaid

from .settings import Settings

if TYPE_CHECKING:
    from congvan.actions.signing.keystore import TrustMaterial

    from .bootstrap import Runtime

Command = Callable[[argparse.Namespace, Settings], int]


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
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
    from .directory import add_agency, set_numbering

    runtime = _runtime(settings)
    try:
        with runtime.uow() as uow:
            if args.action == "add":
                add_agency(
                    uow,
                    args.id,
                    args.name,
                    args.abbreviation,
                    runtime.clock(),
                    numbering=args.numbering,
                )
                uow.commit()
                print(f"added agency {args.id}")
            elif args.action == "set":
                before = set_numbering(uow, args.id, args.numbering, runtime.clock())
                uow.commit()
                print(f"agency {args.id} numbering: {before} → {args.numbering}")
            else:
                for a in uow.agencies.agencies():
                    print(f"{a['id']:<20} {a['abbreviation']:<10} {a['numbering']:<7} {a['name']}")
    finally:
        runtime.stop()
    return 0


def cmd_documents(args: argparse.Namespace, settings: Settings) -> int:
    from .showing import document_lines
    from .views import document_view

    runtime = _runtime(settings)
    try:
        with runtime.uow(readonly=True) as uow:
            row = uow.documents.get(args.id)
            if row is None:
                raise NotFound("No such document.", document_id=args.id)
            view = document_view(uow, row)
    finally:
        runtime.stop()
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=2, default=str))
    else:
        print("\n".join(document_lines(view)))
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
                    [t.strip() for t in args.doc_types.split(",")],  # the CLI's list syntax
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
                pinned = runtime.trust.fingerprints()
                for row in uow.signatures.certificates(args.agency):
                    subject = json.loads(row["subject"])
                    state = "revoked" if row["revoked_at"] else "valid"
                    if row["kind"] == "root":
                        state += ", pinned" if row["fingerprint"] in pinned else ", NOT pinned"
                    print(
                        f"{row['fingerprint'][:16]}  {row['kind']:<7} "
                        f"{subject.get('common_name', ''):<32} "
                        f"{row['not_after']:%Y-%m-%d}  {state}"
                        f"{'  (key stored)' if row['key_pem'] else ''}"
                    )
                return 0
            if args.action == "rewrap":
                return _keys_rewrap(uow, args, settings)
            if args.action == "init-ca":
                row = keystore.init_ca(
                    uow,
                    args.name,
                    args.organization,
                    passphrase=settings.ca_passphrase(),
                    now=now,
                    store=runtime.trust,
                )
                print(f"root pinned in {runtime.trust.directory}")
            elif args.action == "issue-signer":
                row = keystore.issue_signer(
                    uow,
                    args.agency,
                    args.user,
                    passphrase=settings.passphrase(),
                    ca_passphrase=settings.ca_passphrase(),
                    crl_url=settings.crl_url,
                    now=now,
                    valid_days=args.days,
                )
            elif args.action == "issue-agency":
                row = keystore.issue_agency(
                    uow,
                    args.agency,
                    passphrase=settings.passphrase(),
                    ca_passphrase=settings.ca_passphrase(),
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
                if args.kind == "root":
                    print(
                        "stored, NOT trusted: pin a root with `congvan keys trust FILE` "
                        f"(it writes to {runtime.trust.directory})"
                    )
            elif args.action == "trust":
                certs = keystore.trust(
                    uow,
                    runtime.trust,
                    _Path(args.file).read_bytes(),
                    now=now,
                    password=args.password,
                )
                uow.commit()
                for cert in certs:
                    print(
                        f"trusted root {keystore.fingerprint(cert)} "
                        f"pinned in {runtime.trust.directory}"
                    )
                return 0
            elif args.action == "untrust":
                if not runtime.trust.unpin(args.fingerprint):
                    print(f"no root {args.fingerprint} is pinned in {runtime.trust.directory}")
                    return 2
                print(f"root {args.fingerprint} is no longer trusted")
                return 0
            elif args.action == "import-crl":
                info = keystore.import_crl(uow, runtime.trust, _Path(args.file).read_bytes())
                uow.commit()
                print(
                    f"CRL {info['number']} of {info['issuer']} imported "
                    f"({info['revoked']} revoked; next update {info['next_update']})"
                )
                return 0
            elif args.action == "revoke":
                keystore.revoke(
                    uow,
                    args.fingerprint,
                    reason=args.reason,
                    passphrase=settings.ca_passphrase(),
                    now=now,
                    crl_days=settings.crl_days,
                )
                uow.commit()
                print(f"revoked {args.fingerprint}; a new CRL is published")
                return 0
            else:  # crl
                der = keystore.publish_crl(
                    uow, passphrase=settings.ca_passphrase(), now=now, days=settings.crl_days
                )
                uow.commit()
                _Path(args.out).write_bytes(der)
                print(f"CRL written to {args.out}")
                return 0
            uow.commit()
            print(f"{row['kind']} certificate {row['fingerprint']}")
    finally:
        runtime.stop()
    return 0


def _keys_rewrap(uow: Any, args: argparse.Namespace, settings: Settings) -> int:
    """Re-encrypt the stored keys in one transaction; prints counts, never a secret."""
    from tqdm import tqdm

    from congvan.actions.signing import keywrap, rewrap

    # Read every passphrase before any work: a missing one fails fast, nothing done.
    new_passphrase = _passphrase_from_env(args.new_passphrase_env, "--new-passphrase-env")
    new_ca_passphrase = _passphrase_from_env(args.new_ca_passphrase_env, "--new-ca-passphrase-env")
    kinds = [r["kind"] for r in rewrap.stored_keys(uow)]
    has_ca, has_others = "root" in kinds, any(k != "root" for k in kinds)
    # Only the passphrases of keys that exist are required (a CA-less install has no CA one).
    passphrase = settings.passphrase() if has_others else ""
    ca_passphrase = settings.ca_passphrase() if has_ca else ""
    bar = tqdm(total=len(kinds), unit="key", disable=_no_bar(args.progress), file=sys.stderr)
    try:
        done = rewrap.rewrap_keys(
            uow,
            passphrase=passphrase,
            ca_passphrase=ca_passphrase,
            new_passphrase=new_passphrase,
            new_ca_passphrase=new_ca_passphrase,
            force=args.force,
            progress=bar.update,
        )
        uow.commit()
    finally:
        bar.close()
    print(
        f"{done.ca + done.keys} key(s) re-encrypted ({done.ca} CA, {done.keys} agency or signer)"
        f" with {keywrap.current()}"
    )
    print(f"{done.unchanged} key(s) already at that cost left as they were (--force redoes them)")
    if new_passphrase is not None and has_others:
        print(
            f"agency and signer keys now open with ${args.new_passphrase_env}: set "
            "CONGVAN_KEY_PASSPHRASE to it and restart the servers and workers"
        )
    if new_ca_passphrase is not None and has_ca:
        print(
            f"the CA key now opens with ${args.new_ca_passphrase_env}: set "
            "CONGVAN_CA_KEY_PASSPHRASE to it"
        )
    return 0


def _passphrase_from_env(name: str | None, option: str) -> str | None:
    """A new passphrase read from the environment variable an option names (never argv)."""
    import os

    if name is None:
        return None
    value = os.environ.get(name, "")
    if not value:
        raise InvalidInput(f"{option} names {name}, which is not set or empty.", field=option)
    return value


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
    runtime = _runtime(settings)
    try:
        if args.action == "anchor":
            return _audit_anchor(runtime, args.agency)
        known = [_parse_known(item) for item in args.known or []]  # before any work
        return _audit_verify(runtime, args.document, args.progress, known)
    finally:
        runtime.stop()


def _no_bar(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None shows a bar only when stderr is a terminal."""
    return None if progress is None else not progress


def _audit_anchor(runtime: Any, agency: str | None) -> int:
    now = runtime.clock()
    with runtime.uow() as uow:
        if agency is None:
            made = runtime.anchoring.anchor_all(uow, now)
        else:
            row = uow.signatures.agency_certificate(agency, now)
            if row is None:
                print(
                    f"agency {agency} has no organisational certificate with a stored key "
                    "(congvan keys issue-agency)"
                )
                return 2
            made = {agency: runtime.anchoring.anchor_agency(uow, agency, row, now)}
        uow.commit()
    if not made:
        print("no agency has an organisational certificate with a stored key")
        return 2
    with runtime.uow(readonly=True) as uow:
        for agency_id, heads in sorted(made.items()):
            print(f"{agency_id}: {heads} head(s) anchored" if heads else f"{agency_id}: no change")
            latest = uow.anchors.latest(agency_id)
            if latest is not None:
                # Kept outside this database, it lets `audit verify --known` notice the
                # newest anchors deleted, which nothing inside the database can.
                print(f"   latest anchor: {agency_id}:{latest['seq']}:{latest['body_sha256']}")
    return 0


def _check_known(uow: Any, known: list[tuple[str, int, str]]) -> list[str]:
    """Problems with anchors recorded elsewhere, as report lines."""
    import hashlib

    lines = []
    for agency_id, seq, digest in known:
        anchor = uow.anchors.get(agency_id, seq)
        if anchor is None:
            lines.append(f"BROKEN known anchor {seq} of {agency_id}: it is gone")
        elif hashlib.sha256(bytes(anchor["body"])).hexdigest() != digest:
            lines.append(f"BROKEN known anchor {seq} of {agency_id}: it is not the one recorded")
    return lines


def _parse_known(item: str) -> tuple[str, int, str]:
    parts = item.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[2]) != 64:
        raise SystemExit(f"--known takes AGENCY:SEQ:SHA256 as `audit anchor` prints it: {item!r}")
    return parts[0], int(parts[1]), parts[2].lower()


def _audit_verify(
    runtime: Any, document: str | None, progress: bool | None, known: list[tuple[str, int, str]]
) -> int:
    from tqdm import tqdm

    from congvan.actions.anchoring import verify_anchors
    from congvan.actions.signing import keystore

    checked = broken = 0
    with runtime.uow(readonly=True) as uow:
        _print_trust_notes(keystore.trust_material(uow, runtime.trust), runtime)
        total = 1 if document else uow.documents.count()
        # On a terminal (or with --progress) a bar on stderr; never in the printed report.
        bar = tqdm(total=total, unit="chain", disable=_no_bar(progress), file=sys.stderr)
        for doc_id, problem in uow.audit.verify(document):
            checked += 1
            bar.update()
            if problem is not None:
                broken += 1
                where = f"version {problem.version}" if problem.version else "its head"
                bar.write(
                    f"BROKEN {doc_id}: {problem.problem} at {where} "
                    f"(entry {problem.entry_id}): {problem.detail}",
                    file=sys.stdout,
                )
        bar.close()
        if document and checked == 0:
            print(f"no document {document}")
            return 2
        anchors = bad_anchors = 0
        agencies = uow.anchors.agencies_with_anchors()
        if document:  # its agency's anchors, and of their heads only the document's
            doc = uow.documents.get(document)
            agencies = [a for a in agencies if doc and a == doc["agency_id"]]
        for agency_id in agencies:
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


# -- verify ------------------------------------------------------------------------------

# The points a verdict reports: name, label, what it means.
_POINTS = {
    "intact": ("intact", "the signed content is unchanged (the manifest, or the PDF's bytes)"),
    "valid": ("valid", "the signature verifies with the certificate's key"),
    "trusted": ("trusted", "the certificate path leads to a trusted root"),
    "not_revoked": ("not revoked", "no CRL revokes a certificate of the path"),
    "key_usage_ok": ("key usage", "digitalSignature, nonRepudiation, the right profile"),
    "covers_entire_file": ("only signatures added", "nothing but signatures added to the PDF"),
    "valid_at_signing_time": ("valid at signing time", "the claimed time is inside the validity"),
    "signer_matches": ("signer matches", "name, position and agency of the document's signer"),
}
# The order the verifiers check them in; each stops at the first failure.
_CMS_CHECKS = (
    "valid",
    "intact",
    "trusted",
    "not_revoked",
    "key_usage_ok",
    "valid_at_signing_time",
    "signer_matches",
)
_PDF_CHECKS = (
    "valid",
    "intact",
    "trusted",
    "not_revoked",
    "key_usage_ok",
    "covers_entire_file",
    "valid_at_signing_time",
)


def _failed_point(exc: CongvanError) -> str:
    """Which point of the verdict a verification error stands for: by its class only."""
    from congvan.states import errors

    by_class: tuple[tuple[type[CongvanError], str], ...] = (
        (errors.PdfModified, "covers_entire_file"),
        (errors.ManifestMismatch, "intact"),
        (errors.CertificateRevoked, "not_revoked"),
        (errors.RevocationUnknown, "not_revoked"),
        (errors.ChainUntrusted, "trusted"),
        (errors.CertificateExpired, "trusted"),  # at the moment of checking
        (errors.CertificateNotYetValid, "trusted"),
        (errors.KeyUsageInvalid, "key_usage_ok"),  # and the certificate's profile
        (errors.SignerMismatch, "signer_matches"),
        (errors.SigningTimeInvalid, "valid_at_signing_time"),
        (errors.TimestampInvalid, "valid_at_signing_time"),
    )
    for cls, point in by_class:
        if isinstance(exc, cls):
            return point
    return "valid"  # malformed, a weak algorithm, or the signature does not verify


def _print_trust_notes(trust: TrustMaterial, runtime: Runtime) -> None:
    """Say which roots the database holds that the trust store does not pin."""
    for fp in trust.ignored:
        print(
            f"note          root {fp[:16]}… is in the database but not pinned in "
            f"{runtime.trust.directory}: it is NOT trusted (`congvan keys trust FILE` pins one)"
        )


def _print_points(checks: Sequence[str], marks: dict[str, str], notes: dict[str, str]) -> None:
    for point in sorted(checks, key=list(_POINTS).index):
        label, meaning = _POINTS[point]
        print(f"  {marks[point]} {label:<22} {notes.get(point, meaning)}")


def _verdict_marks(verdict: Any, checks: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    # A point the verdict does not report separately held, or it would have raised.
    marks = {p: "✓" if getattr(verdict, p, True) else "✗" for p in checks}
    notes = {}
    if "signer_matches" in checks and verdict.signer_matches is None:
        marks["signer_matches"] = "–"
        notes["signer_matches"] = "not checked: no expected signer for a file"
    if verdict.signing_time is None:
        marks["valid_at_signing_time"] = "–"
        notes["valid_at_signing_time"] = "not checked: the signature claims no signing time"
    return marks, notes


def _error_marks(exc: CongvanError, checks: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    failed = _failed_point(exc)
    position = checks.index(failed) if failed in checks else 0
    marks = {p: "✓" if i < position else "–" for i, p in enumerate(checks)}
    marks[failed] = "✗"
    notes = {p: "not checked" for i, p in enumerate(checks) if i > position}
    notes[failed] = exc.message
    return marks, notes


def _signed_by(cms_der: bytes) -> tuple[dict[str, Any] | None, datetime | None]:
    """Who the CMS's signer certificate names, and the claimed signing time.

    Read for display only (also when verification fails); nothing here is trusted.
    """
    from asn1crypto import cms as asn1_cms
    from cryptography import x509

    from congvan.actions.signing import pki

    try:
        signed_data = asn1_cms.ContentInfo.load(cms_der)["content"]
        signer_info = signed_data["signer_infos"][0]
        kind, sid = signer_info["sid"].name, signer_info["sid"].chosen
        signing_time = None
        for attr in signer_info["signed_attrs"]:
            if attr["type"].native == "signing_time":
                signing_time = attr["values"][0].native
        for choice in signed_data["certificates"]:
            cert = choice.chosen
            if choice.name == "certificate" and (
                (
                    kind == "issuer_and_serial_number"
                    and cert.serial_number == sid["serial_number"].native
                )
                or (kind == "subject_key_identifier" and cert.key_identifier == sid.native)
            ):
                info = pki.describe(x509.load_der_x509_certificate(cert.dump()))
                return {
                    "name": info["common_name"],
                    "position": info["title"],
                    "agency": info["organization"],
                    "agency_id": info["agency_id"],
                    "sha256": info["sha256_fingerprint"],
                    "serial": info["serial"],
                    "issuer": info["issuer_common_name"],
                    "validity": f"{info['not_before']} → {info['not_after']}",
                }, signing_time
        return None, signing_time
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None, None


def _print_signer(cms_der: bytes, verdict: Any) -> None:
    from congvan.actions.signing.signing import VIETNAM

    signer, claimed = _signed_by(cms_der)
    if verdict is not None:
        claimed = verdict.signing_time
        if signer is None:  # a PDF: the verdict names the signer
            named = verdict.signer
            signer = {
                "name": named.get("common_name"),
                "position": named.get("title"),
                "agency": named.get("organization"),
                "agency_id": named.get("organizational_unit"),
                "sha256": named.get("sha256"),
                "serial": named.get("serial_number"),
                "issuer": named.get("issuer"),
                "validity": f"{named.get('not_before')} → {named.get('not_after')}",
            }
    if signer is None:
        print("signer        (no readable signer certificate in the signature)")
    else:
        agency = signer["agency"] or "—"
        if signer["agency_id"]:
            agency = f"{agency} ({signer['agency_id']})"
        print(f"signer        {signer['name'] or '—'}")
        print(f"position      {signer['position'] or '—'}")
        print(f"agency        {agency}")
        print(f"certificate   sha256 {signer['sha256']}")
        print(
            f"              serial {signer['serial']}, issued by {signer['issuer'] or '—'}, "
            f"valid {signer['validity']}"
        )
    if claimed is not None:
        print(
            f"signing time  {claimed.astimezone(VIETNAM).isoformat()} (time claimed by the signer)"
        )
    stamped = getattr(verdict, "timestamp", None)
    if stamped is not None:
        print(
            f"timestamp     {stamped.astimezone(VIETNAM).isoformat()} by "
            f"{verdict.timestamp_authority} (RFC 3161; the checks rest on this time)"
        )
    if verdict is not None and hasattr(verdict, "signature_count"):
        print(
            f"signatures    {verdict.signature_count} in the file; the last, in field "
            f"{verdict.field_name}, covers {verdict.coverage}"
        )


def _report(
    verify: Callable[[], Any],
    cms_der: bytes,
    header: Sequence[str],
    footer: Sequence[str],
    checks: Sequence[str] = _CMS_CHECKS,
) -> int:
    """Run a verification, print each point and who signed; 0 when it verifies, else 1."""
    from congvan.states.errors import SignatureError

    for text in header:
        print(text)
    verdict = None
    try:
        verdict = verify()
    except SignatureError as exc:
        print(f"NOT VERIFIED  error [{exc.code}]: {exc.message}")
        details = {k: v for k, v in exc.details.items() if k not in ("signer", "serial_number")}
        if details:
            print(f"              {json.dumps(details, ensure_ascii=False, default=str)}")
        _print_points(checks, *_error_marks(exc, checks))
        _print_signer(cms_der, None)
    else:
        later = getattr(verdict, "later_revocation", None)
        if later:
            print(
                f"VERIFIED, BUT a certificate of the path ({later['subject']}, serial "
                f"{later['serial_number']}) was revoked after this moment: on "
                f"{later['revoked_at']}, reason {later['reason'] or 'not given'}"
            )
        else:
            print("VERIFIED")
        _print_points(checks, *_verdict_marks(verdict, checks))
        _print_signer(cms_der, verdict)
    for text in footer:
        print(text)
    return 1 if verdict is None else 0


def _read_cms(data: bytes) -> bytes:
    """A CMS signature file as DER: DER as is, PEM (CMS or PKCS7 armour) decoded."""
    import base64
    import binascii

    if b"-----BEGIN" not in data:
        return data
    lines = data.decode("ascii", "replace").splitlines()
    body = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("-----")]
    try:
        return base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("The PEM signature file is not valid base64.") from exc


def _verify_document(document_id: str, runtime: Runtime) -> int:
    import hashlib

    from congvan.actions.signing import keystore
    from congvan.actions.signing.signing import VIETNAM, manifest_of, verify_stored
    from congvan.actions.timestamping import timestamp_view
    from congvan.storage.clock import as_utc

    with runtime.uow(readonly=True) as uow:
        trust = keystore.trust_material(uow, runtime.trust)
        doc = uow.documents.get(document_id)
        if doc is None:
            print(f"no document {document_id}")
            return 2
        signature = uow.signatures.latest_signature(document_id)
        if signature is None:
            print(f"document {document_id} is not signed ({doc['state']})")
            return 2
        manifest = manifest_of(uow, document_id)
        cms_der = bytes(signature["cms"])
        notation = policy.written_notation(doc)
        current = hashlib.sha256(manifest).hexdigest()
        accepted = as_utc(signature["created_at"]).astimezone(VIETNAM).isoformat()
        header = [
            f"document      {document_id} {notation} ({doc['state']}, revision {doc['revision']})",
            f"signature     revision {signature['revision']}, {signature['mode']} mode, "
            f"accepted {accepted}; checked as of then",
        ]
        footer = [f"manifest      sha256 {signature['manifest_sha256']} (signed)"]
        if current != signature["manifest_sha256"]:
            footer.append(f"              sha256 {current} (the document now)")
        _print_trust_notes(trust, runtime)
        stamp = timestamp_view(uow, "signature", signature["id"])
        if stamp["status"] in ("pending", "unavailable"):
            error = f": {stamp['error']}" if stamp["error"] else ""
            footer.append(f"timestamp     {stamp['status']}{error}")
        return _report(
            lambda: verify_stored(uow, signature, manifest, doc, trust), cms_der, header, footer
        )


def _verify_file(path: Path, content: str | None, runtime: Runtime) -> int:
    import hashlib

    from congvan.actions.signing import keystore
    from congvan.actions.signing.signing import VIETNAM
    from congvan.actions.signing.verification import verify_manifest_signature

    data = path.read_bytes()
    now = runtime.clock()
    with runtime.uow(readonly=True) as uow:
        trust = keystore.trust_material(uow, runtime.trust)
    _print_trust_notes(trust, runtime)
    checked = (
        f"checked at    {now.astimezone(VIETNAM).isoformat()} with {len(trust.roots)} "
        f"trusted root(s) and {len(trust.crls)} CRL(s)"
    )
    if data.startswith(b"%PDF"):
        return _verify_pdf(path, data, trust, now, checked)
    if content is None:
        raise InvalidInput(
            "A detached CMS signature needs the signed manifest: --content MANIFEST.",
            field="content",
        )
    manifest_path = Path(content)
    if not manifest_path.is_file():
        print(f"no such file {content}")
        return 2
    manifest = manifest_path.read_bytes()
    cms_der = _read_cms(data)
    return _report(
        lambda: verify_manifest_signature(
            manifest, cms_der, trust_roots=trust.roots, crls=trust.crls, at=now
        ),
        cms_der,
        [f"signature     {path} (detached CMS, {len(cms_der)} bytes)", checked],
        [f"manifest      sha256 {hashlib.sha256(manifest).hexdigest()} ({manifest_path})"],
    )


def _verify_pdf(path: Path, data: bytes, trust: TrustMaterial, now: datetime, checked: str) -> int:
    from congvan.actions.signing.pades import verify_pdf

    return _report(
        lambda: verify_pdf(data, trust_roots=trust.roots, crls=trust.crls, at=now),
        _last_pdf_cms(data),
        [f"signature     {path} (PDF, {len(data)} bytes; every signature is checked)", checked],
        [],
        _PDF_CHECKS,
    )


def _last_pdf_cms(data: bytes) -> bytes:
    """The CMS of the PDF's last signature, to name its signer; empty if unreadable."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        signatures = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures
        return bytes(signatures[-1].pkcs7_content) if signatures else b""
    except Exception:  # noqa: BLE001 - display only; verify_pdf reports what is wrong
        return b""


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    target = Path(args.target)
    runtime = _runtime(settings)  # verifying needs no key passphrase
    try:
        if args.content is not None or target.is_file():
            if not target.is_file():
                print(f"no such file {args.target}")
                return 2
            return _verify_file(target, args.content, runtime)
        return _verify_document(args.target, runtime)
    finally:
        runtime.stop()


def cmd_timers(args: argparse.Namespace, settings: Settings) -> int:
    """List parked timers (failed too often), or take one again now."""
    runtime = _runtime(settings)
    try:
        with runtime.uow() as uow:
            if args.action == "retry":
                if not uow.timers.unpark(args.timer, runtime.clock()):
                    print(f"no parked timer {args.timer}", file=sys.stderr)
                    return 2
                uow.commit()
                print(f"timer {args.timer} will be taken again now")
                return 0
            parked = uow.timers.parked()
        for t in parked:
            at = t.parked_at.isoformat() if t.parked_at else ""
            print(f"{t.id}  {t.kind:<14} {t.ref_id:<36} {at}  {t.attempts} attempts")
            print(f"    {t.last_error}")
        if not parked:
            print("no parked timers")
        return 0
    finally:
        runtime.stop()


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
    a.add_argument(
        "--numbering",
        choices=sorted(policy.NUMBERING),
        default=policy.DEFAULT_NUMBERING,
        help="agency: one number series for all documents (Decree 30 Art. 15, the "
        "default); symbol: one series per symbol",
    )
    a = asub.add_parser("set", help="change an agency's settings")
    a.add_argument("id", help="electronic identifier, e.g. 000.00.00.H57")
    a.add_argument(
        "--numbering",
        choices=sorted(policy.NUMBERING),
        required=True,
        help="the series administrative documents are numbered in from now on; refused "
        "while this year's numbers would repeat in it",
    )
    asub.add_parser("list", help="list agencies")
    p.set_defaults(func=cmd_agencies)

    p = sub.add_parser("documents", help="read documents")
    dsub = p.add_subparsers(dest="action", required=True)
    d = dsub.add_parser("show", help="a document, its signer and its signing's timeliness")
    d.add_argument("id", help="the document's id")
    d.add_argument("--json", action="store_true", help="the whole view, as GET returns it")
    p.set_defaults(func=cmd_documents)

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
    k = ksub.add_parser(
        "trust", help="pin root certificates (PEM, DER, PKCS#7) as trusted, in the trust store"
    )
    k.add_argument("file")
    k.add_argument("--password", help="for a PKCS#12 file")
    k = ksub.add_parser("untrust", help="remove a root from the trust store")
    k.add_argument("fingerprint", help="the root's full SHA-256 fingerprint (hex)")
    k = ksub.add_parser("import-crl", help="import another CA's CRL (DER or PEM)")
    k.add_argument("file")
    k = ksub.add_parser("revoke", help="revoke a certificate of our CA and publish a new CRL")
    k.add_argument("fingerprint")
    k.add_argument("--reason", default="unspecified")
    k = ksub.add_parser("crl", help="publish a fresh CRL and write it (DER)")
    k.add_argument("--out", required=True)
    k = ksub.add_parser("list", help="list certificates")
    k.add_argument("--agency")
    k = ksub.add_parser(
        "rewrap",
        help="re-encrypt the stored private keys at the current KDF cost",
        description="Re-encrypts every stored private key (PBES2, PBKDF2-HMAC-SHA256, "
        "600,000 iterations, AES-256-CBC) in one transaction: if any key does not open "
        "with its current passphrase (CONGVAN_CA_KEY_PASSPHRASE for the CA key, "
        "CONGVAN_KEY_PASSPHRASE for the others), nothing changes. New passphrases are "
        "read from environment variables, never from the command line.",
    )
    k.add_argument(
        "--new-passphrase-env",
        metavar="VAR",
        help="re-encrypt the agency and signer keys under the passphrase in $VAR",
    )
    k.add_argument(
        "--new-ca-passphrase-env",
        metavar="VAR",
        help="re-encrypt the CA key under the passphrase in $VAR",
    )
    k.add_argument(
        "--force", action="store_true", help="also re-encrypt keys already at the current cost"
    )
    k.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
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

    p = sub.add_parser("audit", help="verify the audit chains and their signed anchors")
    asub = p.add_subparsers(dest="action", required=True)
    v = asub.add_parser(
        "verify",
        help="check every chain (or one document's) and every anchor",
        description="Exit 0 when everything verifies, 1 when something is broken, 2 when "
        "there is no such document.",
    )
    v.add_argument("document", nargs="?")
    v.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
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

    p = sub.add_parser(
        "verify",
        help="verify a document's latest signature, or a signature file (CMS or PDF)",
        description="Exit 0 when the signature verifies, 1 when it does not, 2 when there "
        "is nothing to verify (no such document, unsigned, no such file).",
    )
    p.add_argument("target", metavar="FILE|DOCUMENT", help="a document id, or a signature file")
    p.add_argument(
        "--content",
        metavar="MANIFEST",
        help="the signed manifest, for a detached CMS signature file (DER or PEM)",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "timers",
        help="timers that failed too often (parked), and taking one again",
        description="A timer whose handler fails is retried with a doubling wait and parked "
        "after CONGVAN_TIMER_MAX_ATTEMPTS failures; parked timers wait for an operator.",
    )
    tsub = p.add_subparsers(dest="action", required=True)
    tsub.add_parser("parked", help="list parked timers with their last error")
    t = tsub.add_parser("retry", help="take a parked timer again now, its count reset")
    t.add_argument("timer", help="the timer's id, as `timers parked` prints it")
    p.set_defaults(func=cmd_timers)

    p = sub.add_parser("graph", help="print the state machines (Mermaid or Graphviz dot)")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.add_argument("--machine", choices=(*MACHINES, "all"), default="all")
    p.set_defaults(func=cmd_graph)
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    """Every argument is UTF-8 text, as the API asks of its input.

    Python hands undecodable bytes of the command line on as lone surrogates, which
    the database would refuse halfway through a command.
    """
    for name, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                option = name.replace("_", "-")
                raise InvalidEncoding(
                    f"The argument {option} is not UTF-8 text.", field=option, location="argument"
                ) from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_arguments(args)
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
