"""The ``keys`` command: the certification authority, certificates, CRLs, stored keys."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from congvan.states.errors import InvalidInput, NotFound
from congvan.states.timeliness import in_vietnam, shown_on_the_clock
from congvan.storage.clock import as_utc

from ..settings import Settings
from . import files
from .files import read_bounded, read_text_bounded
from .runtime import Subparsers, add_progress_option, progress_bar, runtime_for

# A root pinned that runs out within this is said: its successor is pinned before then.
ROOT_RUNS_OUT_SOON = timedelta(days=30)

if TYPE_CHECKING:
    from congvan.storage.signatures import CertificateRow


def add_parser(sub: Subparsers) -> None:
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
    k.add_argument("--password-file", metavar="FILE", help=_P12_HELP)
    k.add_argument("--password", help=argparse.SUPPRESS)  # refused: see _p12_password
    k = ksub.add_parser(
        "trust", help="pin root certificates (PEM, DER, PKCS#7) as trusted, in the trust store"
    )
    k.add_argument("file")
    k.add_argument("--password-file", metavar="FILE", help=_P12_HELP)
    k.add_argument("--password", help=argparse.SUPPRESS)  # refused: see _p12_password
    k = ksub.add_parser("untrust", help="remove a root from the trust store")
    k.add_argument("fingerprint", help="the root's full SHA-256 fingerprint (hex)")
    k = ksub.add_parser("import-crl", help="import another CA's CRL (DER or PEM)")
    k.add_argument("file")
    k = ksub.add_parser("revoke", help="revoke a certificate of our CA and publish a new CRL")
    k.add_argument("fingerprint")
    k.add_argument(
        "--reason",
        default="unspecified",
        help="key_compromise, superseded, cessation_of_operation, affiliation_changed, ... "
        "(RFC 5280; default unspecified)",
    )
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
    add_progress_option(k)
    p.set_defaults(func=cmd_keys)


_P12_HELP = (
    "a PKCS#12 file's password: the first line of FILE (else CONGVAN_P12_PASSWORD; never "
    "on the command line, where ps and the shell's history show it)"
)


def _p12_password(path: str | None, given: str | None = None) -> str | None:
    """A PKCS#12 password from ``path``'s first line, else CONGVAN_P12_PASSWORD, else None;
    one ``given`` on the command line is refused."""
    if given is not None:
        raise InvalidInput(
            "A password is not taken on the command line (ps and the shell's history show "
            "it): give --password-file FILE or set CONGVAN_P12_PASSWORD.",
            field="password",
        )
    if path is None:
        return os.environ.get("CONGVAN_P12_PASSWORD") or None
    text = read_text_bounded(path, "password_file", files.SECRET)
    return text.splitlines()[0] if text else ""


def _standing(row: CertificateRow, now: datetime) -> str:
    """How ``keys list`` says a certificate stands at ``now``."""
    from congvan.storage.clock import as_utc

    if row.revoked_at:
        return "revoked"
    if as_utc(row.not_after) <= now:
        return "expired"
    return "not yet valid" if as_utc(row.not_before) > now else "valid"


def _warn_if_crl_here(settings: Settings) -> None:
    """Say so when the certificate about to be issued names a revocation list at an address
    of this machine (CONGVAN_PUBLIC_URL unset): other agencies checking it would ask their
    own machine. Fine for one laptop; not for certificates that leave it."""
    host = urlsplit(settings.crl_url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        how = (
            "CONGVAN_PUBLIC_URL names this machine"
            if settings.public_url != type(settings).model_fields["public_url"].default
            else "set CONGVAN_PUBLIC_URL to the address other agencies reach"
        )
        print(
            f"warning: the certificate names {settings.crl_url} for its revocation list, an "
            f"address of this machine ({how}): other agencies would ask their own machine "
            "for it; fine for certificates that never leave this one",
            file=sys.stderr,
        )


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from congvan.actions.signing import issuers, keystore

    with runtime_for(settings) as runtime, runtime.uow() as uow:
        now = runtime.clock()
        if args.action == "list":
            known = args.agency is None or uow.agencies.agency(args.agency) is not None
            if not known and uow.peers.get(args.agency) is None:
                # Neither one of ours nor a peer: said, not listed as nothing
                raise NotFound(f"No agency or peer {args.agency}.", agency_id=args.agency[:35])
            pinned = runtime.trust.fingerprints()
            listed = uow.signatures.certificates(args.agency)
            if not listed:
                print("no certificates")
            # columns as wide as their longest entry: an agency's name may be long
            kinds = max((len(row.kind) for row in listed), default=0)
            names = max((len(row.subject.common_name) for row in listed), default=0)
            for row in listed:
                state = _standing(row, now)
                if row.kind == "root":
                    state += ", pinned" if row.fingerprint in pinned else ", NOT pinned"
                print(
                    f"{row.fingerprint[:16]}  {row.kind:<{kinds}}  "
                    f"{row.subject.common_name:<{names}}  "
                    f"{in_vietnam(as_utc(row.not_after)):%d/%m/%Y}  {state}"
                    f"{'  (key stored)' if row.key_pem else ''}"
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
            _warn_if_crl_here(settings)  # once issued: a refused one names nothing
        elif args.action == "issue-agency":
            row = keystore.issue_agency(
                uow,
                args.agency,
                passphrase=settings.passphrase(),
                ca_passphrase=settings.ca_passphrase(),
                crl_url=settings.crl_url,
                now=now,
            )
            _warn_if_crl_here(settings)
        elif args.action == "import":
            rows = keystore.import_certificate(
                uow,
                read_bounded(args.file, "file", files.CERTIFICATES),
                kind=args.kind,
                now=now,
                agency_id=args.agency,
                username=args.user,
                password=_p12_password(args.password_file, args.password),
                store=runtime.trust,
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
                read_bounded(args.file, "file", files.CERTIFICATES),
                now=now,
                password=_p12_password(args.password_file, args.password),
            )
            uow.commit()
            for cert in certs:
                print(
                    f"trusted root {keystore.fingerprint(cert)} pinned in {runtime.trust.directory}"
                )
                left = cert.not_valid_after_utc - now
                if left < ROOT_RUNS_OUT_SOON:
                    print(
                        f"warning: this root runs out in {max(left.days, 0)} day(s), at "
                        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: nothing under it "
                        "verifies after that; pin its successor before then",
                        file=sys.stderr,
                    )
            return 0
        elif args.action == "untrust":
            if not runtime.trust.unpin(args.fingerprint):
                raise NotFound(
                    f"No root {args.fingerprint} is pinned in {runtime.trust.directory}.",
                    fingerprint=args.fingerprint[:64],
                )
            print(f"root {args.fingerprint} is no longer trusted")
            return 0
        elif args.action == "import-crl":
            data = read_bounded(args.file, "file", files.CRL)
            info = issuers.import_crl(uow, runtime.trust, data, now=now)
            uow.commit()
            print(
                f"CRL {info['number']} of {info['issuer']} "
                f"{'held already, unchanged' if info['unchanged'] else 'imported'} "
                f"({info['revoked']} revoked; next update "
                f"{shown_on_the_clock(datetime.fromisoformat(info['next_update']))}, "
                "Vietnam time)"
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
            # Written before it is committed, kept once it is: a full disk publishes nothing
            with files.written_whole(args.out, "CRL") as sink:
                sink.write(der)
                sink.flush()
                uow.commit()
            print(f"CRL written to {args.out}")
            return 0
        uow.commit()
        print(f"{row.kind} certificate {row.fingerprint}")
    return 0


def _keys_rewrap(uow: Any, args: argparse.Namespace, settings: Settings) -> int:
    """Re-encrypt the stored keys in one transaction; prints counts, never a secret."""
    from congvan.actions.signing import keywrap, rewrap

    # Read every passphrase before any work: a missing one fails fast, nothing done.
    new_passphrase = _passphrase_from_env(args.new_passphrase_env, "--new-passphrase-env")
    new_ca_passphrase = _passphrase_from_env(args.new_ca_passphrase_env, "--new-ca-passphrase-env")
    kinds = [r.kind for r in rewrap.stored_keys(uow)]
    has_ca, has_others = "root" in kinds, any(k != "root" for k in kinds)
    # Only the passphrases of keys that exist are required (a CA-less install has no CA one).
    passphrase = settings.passphrase() if has_others else ""
    ca_passphrase = settings.ca_passphrase() if has_ca else ""
    bar = progress_bar(len(kinds), "key", args.progress)
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
