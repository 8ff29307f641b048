"""Files a command is handed: read whole, but never past what such a file can hold; and
files it writes: whole or not at all.

A certificate, a CRL or a directory file is read into memory to be parsed; a path that
names a device (``/dev/zero``), a pipe or a mistaken multi-gigabyte file must end in a
clear refusal, not in the machine's memory running out. A bundle or a CRL is written
beside its name and renamed onto it once whole, so a full disk leaves no half file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from congvan.states.errors import InvalidInput, PayloadTooLarge

MiB = 1024 * 1024
# Most a file of each kind may hold: a bundle of certificates, a CA's CRL (a few hundred
# thousand entries), a directory of a province's peers, a password or secret.
CERTIFICATES = 16 * MiB
CRL = 64 * MiB
DIRECTORY = 16 * MiB
MANIFEST = 16 * MiB  # what a detached signature signs: a manifest, a receipt, an index
SECRET = 64 * 1024


def regular_file(name: str, what: str) -> Path:
    """The path ``name`` when it is a file to read (a ``what``); else one clear refusal
    saying what it is instead: missing, a folder, a device or a pipe."""
    path = Path(name)
    if path.is_file():
        return path
    if path.is_dir():
        found = "is a folder"
    elif path.exists():
        found = "is not a regular file (a device, a pipe or a socket)"
    else:
        found = "does not exist"
    raise InvalidInput(f"The {what} {name} {found}.", field=what, path=name[:300])


def read_bounded(name: str, what: str, max_bytes: int) -> bytes:
    """The bytes of the file ``name`` (a ``what``), refused past ``max_bytes``."""
    try:
        with Path(name).open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidInput(
            f"The {what} {name} cannot be read: {exc.strerror or exc}.", field=what
        ) from exc
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The {what} {name} holds more than {max_bytes} bytes: not a file of its kind.",
            field=what,
            max_bytes=max_bytes,
        )
    return data


def read_text_bounded(name: str, what: str, max_bytes: int) -> str:
    """As ``read_bounded``, as UTF-8 text."""
    try:
        return read_bounded(name, what, max_bytes).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"The {what} {name} is not UTF-8 text.", field=what) from exc


@contextmanager
def written_whole(name: str, what: str) -> Iterator[BinaryIO]:
    """A file to write a ``what`` to, renamed onto ``name`` once the block ends well.

    The bytes go to a new file of our own beside it (O_EXCL: never one planted there, nor
    a link's target). A caller with more to do before the file counts (a commit) does it
    last in the block, after ``flush``: a full disk says so before. On any failure the new
    file is removed and ``name`` is left as it was.
    """
    path = Path(name)
    if (path.exists() or path.is_symlink()) and not path.is_file():
        # A device, a FIFO, a folder: renaming onto it would replace it
        raise InvalidInput(
            f"{name} is not a regular file; name a file for the {what}.",
            field="output",
            path=name[:300],
        )
    if not path.parent.is_dir():
        above = next((p for p in path.parents if p.exists() or p.is_symlink()), None)
        if above is not None and not above.is_dir():
            raise InvalidInput(
                f"{above} is a file, not a folder: the {what} cannot be written under it.",
                field="output",
                path=name[:300],
            )
        raise InvalidInput(
            f"The folder {path.parent} for the {what} does not exist.",
            field="output",
            path=name[:300],
        )
    try:
        handle, temporary_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".part", dir=path.parent
        )
    except OSError as exc:  # the folder takes no new file: read-only, not ours, /proc ...
        raise InvalidInput(
            f"The {what} cannot be written in the folder {path.parent}: "
            f"{exc.strerror or type(exc).__name__}.",
            field="output",
            path=name[:300],
        ) from None
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as sink:
            yield sink
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
