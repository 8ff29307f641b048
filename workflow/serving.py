"""Run the API on a real socket inside this process (the demo and the tests use it)."""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from .api.wire import JsonErrorsH11Protocol


def freeze_loaded() -> None:
    """Leave what this process has loaded so far out of the garbage collector's passes.

    A server keeps what it loaded to start (modules, the app and its routes, the tables'
    metadata, the models: some 270,000 objects) until it stops, and a full collection
    walked them all again: a pause of about 180 ms, holding the GIL, every few thousand
    requests. ``gc.freeze`` moves them to a permanent generation; what the process makes
    afterwards is collected as before. Called once the process is ready to serve.
    """
    gc.freeze()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, timeout: float = 20.0, port: int | None = None
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (on ``port``, else a free one) until the block ends;
    yields the base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            http=JsonErrorsH11Protocol,
        )
    )
    thread = threading.Thread(target=server.run, name="congvan-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
