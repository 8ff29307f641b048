"""A post's whole exchange within its time, which httpx's (or smtplib's) timeouts do not bound.

httpx (through httpcore) bounds each read and each write on a socket, not the exchange: a
receiver sending its answer's head a byte at a time, each byte just before the read timeout,
or taking the request as slowly, or dragging out the TLS handshake, holds the posting thread
as long as it likes. ``watched(transport)`` makes every connection of a transport known to
the post using it; ``within(seconds)`` gives a post its deadline; one watchdog thread per
process shuts down the sockets of a post still running at its deadline, which ends whatever
read or write is waiting on them at once. The post then reads the broken exchange as what it
is (``Exchange.cut``, ``Exchange.wrote``): nothing sent, or an answer that did not come.

Before any socket, a host name is looked up (``getaddrinfo``), which no socket timeout bounds:
a resolver that does not answer holds the caller for as long as its own timeouts and retries
add up to. ``addresses`` looks a name up in a thread of its own and waits for it no longer
than the post's time left.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from .processes import PerProcess

# How late past its deadline a post may be cut: the watchdog wakes at most this often while
# posts run, whatever their number (it does not wake for each).
GRAIN = 0.1


class Exchange:
    """One post: its deadline, the sockets it used, and whether it ran out of time."""

    __slots__ = ("_lock", "cut", "deadline", "done", "late", "sockets", "wrote")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sockets: list[socket.socket] = []
        self.wrote = False  # some of the request went out: what follows has an unknown outcome
        self.late = False  # its deadline passed while it ran
        self.cut = False  # and the watchdog shut a connection of it
        self.done = False
        self._lock = threading.Lock()

    def uses(self, sock: socket.socket | None, *, writing: bool = False) -> None:
        with self._lock:
            self.wrote = self.wrote or writing
            if sock is None or self.done:
                return
            if sock not in self.sockets:
                self.sockets.append(sock)
            if self.late:
                self.cut = True
                _shut(sock)

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.late = True
            self.cut = bool(self.sockets)
            for sock in self.sockets:
                _shut(sock)

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self.sockets.clear()


def _shut(sock: socket.socket) -> None:
    """End both directions of ``sock``: a read or write waiting on it returns at once.

    The plain socket's own shutdown, also for a TLS one (whose ``shutdown`` would drop its
    TLS state under the thread using it); the thread using it closes it."""
    with contextlib.suppress(OSError):  # closed already, or never connected
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_current: ContextVar[Exchange | None] = ContextVar("congvan_post_exchange", default=None)


@contextlib.contextmanager
def within(seconds: float) -> Iterator[Exchange]:
    """Run a post (in this thread) that must be over ``seconds`` from now."""
    exchange = Exchange(time.monotonic() + seconds)
    token = _current.set(exchange)
    _watchdog.get().watch(exchange)
    try:
        yield exchange
    finally:
        exchange.finish()
        _current.reset(token)


def holding(sock: socket.socket | None) -> None:
    """The post running in this thread (if any) uses ``sock``: shut at its deadline too.

    For a client that is not httpx's (``smtplib``), told of each socket it opens."""
    exchange = _current.get()
    if exchange is not None:
        exchange.uses(sock)


# Name lookups running at once, at most: a resolver that never answers holds a thread each.
MAX_LOOKUPS = 16
_lookups = threading.BoundedSemaphore(MAX_LOOKUPS)


def addresses(host: str, port: int, timeout: float | None = None) -> list[str] | None:
    """The addresses of ``host``, in the resolver's order, looked up within the time left
    to the post running in this thread (and within ``timeout``); ``None`` when there is
    nothing to bound: no post runs, or ``host`` is an address already.

    Raises ``TimeoutError`` when the answer does not come in time, and what the resolver
    raised (``socket.gaierror``: no such name; ``UnicodeError``: a name IDNA cannot write)."""
    exchange = _current.get()
    if exchange is None or _is_address(host):
        return None
    left = exchange.deadline - time.monotonic()
    if timeout is not None:
        left = min(left, timeout)
    started = time.monotonic()
    if not _lookups.acquire(timeout=max(left, 0)):
        raise TimeoutError(f"{MAX_LOOKUPS} name lookups wait already; {host} not looked up")
    lookup = _Lookup(host, port)
    threading.Thread(target=lookup.run, name="congvan-name-lookup", daemon=True).start()
    if not lookup.done.wait(max(left - (time.monotonic() - started), 0)):
        raise TimeoutError(f"looking up {host} took longer than {round(max(left, 0), 1):g} s")
    if lookup.error is not None:
        raise lookup.error
    return lookup.found


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])  # an IPv6 address may name its zone
    except ValueError:
        return False
    return True


class _Lookup:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.found: list[str] = []
        self.error: Exception | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            found = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)
            self.found = list(dict.fromkeys(str(entry[4][0]) for entry in found))
        except Exception as exc:  # noqa: BLE001 -- the caller's to raise, in its own thread
            self.error = exc
        finally:
            _lookups.release()
            self.done.set()


class _Watchdog:
    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, Exchange]] = []
        self._order = itertools.count()
        threading.Thread(target=self._run, name="congvan-post-deadlines", daemon=True).start()

    def watch(self, exchange: Exchange) -> None:
        with self._wake:
            heapq.heappush(self._due, (exchange.deadline, next(self._order), exchange))
            if self._due[0][2] is exchange:  # earlier than what it waits for
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                late: list[Exchange] = []
                while self._due and self._due[0][0] <= now:
                    late.append(heapq.heappop(self._due)[2])
                if not late:
                    wait = max(self._due[0][0] - now, GRAIN) if self._due else None
                    self._wake.wait(wait)
                    continue
            for exchange in late:
                exchange.expire()


# This process's watchdog, its thread started on first use (a process started by fork
# starts its own).
_watchdog = PerProcess(_Watchdog)


def _socket_of(stream: httpcore.NetworkStream) -> socket.socket | None:
    sock = stream.get_extra_info("socket")
    return sock if isinstance(sock, socket.socket) else None


class _Stream(httpcore.NetworkStream):
    """A connection that tells the post using it (connected, TLS begun, request written)."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._socket = _socket_of(inner)
        self._tell()

    def _tell(self, *, writing: bool = False) -> None:
        exchange = _current.get()
        if exchange is not None:
            exchange.uses(self._socket, writing=writing)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._tell(writing=True)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._tell()
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            found = addresses(host, port, timeout)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (OSError, UnicodeError) as exc:  # the resolver's answer: no such name
            raise httpcore.ConnectError(f"{host}: {exc}") from exc

        def connect(address: str) -> httpcore.NetworkStream:
            inner = self._inner
            options = socket_options
            return _Stream(
                inner.connect_tcp(address, port, timeout, local_address, socket_options=options)
            )

        if found is None:
            return connect(host)
        # Each address in turn, as socket.create_connection tries them.
        failed: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in found:
            try:
                return connect(address)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        raise failed or httpcore.ConnectError(f"{host}: no address")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def watched(transport: httpx.BaseTransport | None) -> None:
    """Make the connections of an httpx transport (its own pool, direct or through a proxy)
    known to the posts using them; any other transport (a test's) is left as it is."""
    if isinstance(transport, httpx.HTTPTransport):
        pool = transport._pool
        if not isinstance(pool._network_backend, _Backend):
            # httpx builds its pool without a way to pass a network backend: its own, told.
            pool._network_backend = _Backend(pool._network_backend)


def watched_client(client: httpx.Client) -> httpx.Client:
    """``client`` with every transport it may use watched (its mounts: the proxies)."""
    watched(client._transport)
    for transport in client._mounts.values():
        watched(transport)
    return client
