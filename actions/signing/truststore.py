"""The trust store: the root certificates every verification trusts, pinned outside the database.

A directory the operator controls (``CONGVAN_TRUST_DIR``, by default ``trust/`` beside the
embedded database) holds one PEM file per trusted root, named by its SHA-256 fingerprint.
``congvan keys init-ca`` pins our own root there and ``congvan keys trust FILE`` pins a
root made elsewhere. Someone who can write SQL can add a row to the ``certificates`` table,
but not a file here: a root that is only in the database is ignored, and the commands that
verify say so (DESIGN.md principle 9).

The store reads the directory again only when it changed (its listing and files' mtimes),
so asking it for the roots on every verification costs a ``stat`` per file.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from congvan.states.errors import InvalidInput

SUFFIX = ".pem"
_FINGERPRINT = re.compile(r"[0-9a-fA-F]{64}")


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of a certificate's DER, in lower-case hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class Pinned:
    """A pinned root and the file that pins it."""

    fingerprint: str
    certificate: x509.Certificate
    path: Path


class TrustStore:
    """The pinned roots in one directory; safe to share between threads."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._pinned: tuple[Pinned, ...] = ()

    def pinned(self) -> tuple[Pinned, ...]:
        """Every pinned root, in fingerprint order; an absent directory pins nothing."""
        with self._lock:
            listing = self._listing()
            if listing != self._seen:
                self._pinned = tuple(self._read(name) for name, _m, _s in listing)
                self._seen = listing
            return self._pinned

    def roots(self) -> list[x509.Certificate]:
        """The trusted roots, for a verifier."""
        return [p.certificate for p in self.pinned()]

    def fingerprints(self) -> frozenset[str]:
        return frozenset(p.fingerprint for p in self.pinned())

    def is_pinned(self, cert: x509.Certificate) -> bool:
        return fingerprint(cert) in self.fingerprints()

    def pin(self, cert: x509.Certificate) -> Path:
        """Trust a root: write it to the directory (idempotent); the file's path."""
        require_root(cert)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        path = self.directory / f"{fingerprint(cert)}{SUFFIX}"
        if not path.exists():
            # A temporary file of its own: two pinning the same root at once (threads or
            # processes) never write, or move away, each other's.
            handle, name = tempfile.mkstemp(dir=self.directory, prefix=".pin-", suffix=".tmp")
            temporary = Path(name)
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(cert.public_bytes(serialization.Encoding.PEM))
                # Whatever the umask: only its owner may change what is trusted.
                temporary.chmod(0o644)
                os.replace(temporary, path)  # whole or not at all
            finally:
                temporary.unlink(missing_ok=True)
        with self._lock:
            self._seen = None
        return path

    def unpin(self, fp: str) -> bool:
        """Stop trusting the root with this fingerprint; whether one was pinned."""
        if not _FINGERPRINT.fullmatch(fp):  # never a path: ../../x.pem is not a root of ours
            raise InvalidInput(
                "A root is named by its SHA-256 fingerprint: 64 hexadecimal digits.",
                field="fingerprint",
            )
        path = self.directory / f"{fp.lower()}{SUFFIX}"
        if not path.is_file():
            return False
        path.unlink()
        with self._lock:
            self._seen = None
        return True

    def _listing(self) -> tuple[tuple[str, int, int], ...]:
        try:
            _owned(self.directory, os.stat(self.directory).st_mode, "folder")
            with os.scandir(self.directory) as scan:
                entries = sorted(
                    (e for e in scan if e.name.endswith(SUFFIX) and e.is_file()),
                    key=lambda e: e.name,
                )
        except FileNotFoundError:
            return ()
        stats = [(e.name, e.stat()) for e in entries]  # one stat per file
        for name, st in stats:
            _owned(self.directory / name, st.st_mode, "file")
        return tuple((name, st.st_mtime_ns, st.st_size) for name, st in stats)

    def _read(self, name: str) -> Pinned:
        path = self.directory / name
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError as exc:
            raise InvalidInput(
                f"The trust store file {path} is not a PEM certificate.", path=str(path)
            ) from exc
        fp = fingerprint(cert)
        if name != f"{fp}{SUFFIX}":
            # A file renamed or edited by hand: trust it only under its true name.
            raise InvalidInput(
                f"The trust store file {path} holds the certificate {fp}; name it {fp}{SUFFIX}.",
                path=str(path),
            )
        return Pinned(fp, cert, path)


def _owned(path: Path, mode: int, what: str) -> None:
    """Refuse a trust store every user of the machine may change (as OpenSSH's StrictModes
    refuses such a key file): a root anyone pins decides whom this installation trusts."""
    if mode & stat.S_IWOTH:
        raise InvalidInput(
            f"The trust store {what} {path} may be changed by every user of this machine "
            f"(mode {stat.S_IMODE(mode):04o}): only its owner may decide what is trusted; "
            f"`chmod o-w {path}`.",
            path=str(path),
        )


def require_root(cert: x509.Certificate) -> None:
    """Only CA certificates can be trust anchors."""
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise InvalidInput(
            "Only a CA certificate can be pinned as a trusted root.",
            fingerprint=fingerprint(cert),
        )
