"""Stored bytes read a slice at a time: a file of tens of megabytes is served, hashed or
opened as a ZIP without being held whole, by every request at once."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from .unit_of_work import UnitOfWork

# What one read takes from the database, and what a reader holds at once.
SLICE = 256 * 1024


class StoredBytes(io.RawIOBase):
    """The bytes stored under a digest, seekable and read-only, each read a transaction
    of its own (bytes stored under a digest never change, so the slices are of one file):
    what reads it may go on after the request's own unit of work has ended."""

    def __init__(
        self, open_uow: Callable[[], AbstractContextManager[UnitOfWork]], sha256: str, size: int
    ) -> None:
        self._open_uow = open_uow
        self.sha256 = sha256
        self.size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self.size - self._position, SLICE)
        if wanted <= 0:
            return 0
        with self._open_uow() as uow:
            data = uow.documents.blob_slice(self.sha256, self._position, wanted)
        if len(data) != wanted:  # gone, or not the size its row says
            raise OSError(f"the stored bytes of {self.sha256} end early")
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def stored_bytes(
    open_uow: Callable[[], AbstractContextManager[UnitOfWork]], sha256: str, size: int
) -> io.BufferedReader:
    """``StoredBytes`` buffered a slice at a time."""
    return io.BufferedReader(StoredBytes(open_uow, sha256, size), buffer_size=SLICE)


def slices(reader: io.BufferedIOBase) -> Iterator[bytes]:
    """What ``reader`` holds from where it stands, a slice at a time."""
    while chunk := reader.read(SLICE):
        yield chunk
