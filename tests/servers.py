"""Real servers for the integration tests: PostgreSQL and Redis on free 127.0.0.1 ports."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from congvan.workflow.serving import free_port

PG_USER = "postgres"  # the OS account that runs the server when we are root
PG_BINARIES = ("initdb", "pg_ctl", "postgres")
START_TIMEOUT = 30.0


def wait_until(ready: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``ready`` until it answers true; raise ``TimeoutError`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} was not ready within {timeout:.0f}s")
        time.sleep(0.05)  # a poll interval, not a wait for an outcome


def postgres_bindir() -> Path:
    """Where initdb, pg_ctl and postgres live; a missing install is an error, never a skip."""
    on_path = [shutil.which(name) for name in PG_BINARIES]
    if all(on_path):
        return Path(on_path[0]).resolve().parent  # type: ignore[arg-type]
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all((Path(candidate) / name).exists() for name in PG_BINARIES):
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or in "
        "/usr/lib/postgresql/*/bin; install them (e.g. apt-get install postgresql)."
    )


def _as_server_user(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *argv]
    return argv


def _reachable_by_others(path: Path) -> bool:
    """Whether another OS user can walk down to ``path`` (pytest's tmp dirs are 0700)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


@contextlib.contextmanager
def start_postgres(
    tmpdir: Path | str, *, durable: bool = False, port: int | None = None
) -> Iterator[str]:
    """Run a throwaway PostgreSQL server (on ``port``, else a free one); yields the URL of
    its ``postgres`` database.

    Tests want speed: fsync, synchronous commit and full page writes are off. ``durable``
    keeps PostgreSQL's own defaults (all on), as a benchmark of a real deployment needs.
    """
    bindir = postgres_bindir()
    tmpdir = Path(tmpdir)
    if os.geteuid() == 0 and not _reachable_by_others(tmpdir):
        base = Path(tempfile.mkdtemp(prefix="congvan-pg-"))
    else:
        base = Path(tempfile.mkdtemp(prefix="pg-", dir=tmpdir))
    data, sockets, logfile = base / "data", base / "sockets", base / "server.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        os.chmod(base, 0o755)
        shutil.chown(base, PG_USER, PG_USER)
        shutil.chown(sockets, PG_USER, PG_USER)
    port = port or free_port()
    pg_ctl = str(bindir / "pg_ctl")
    try:
        subprocess.run(
            _as_server_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        fast = ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options = " ".join(
            [
                f"-p {port}",
                "-h 127.0.0.1",
                f"-k {sockets}",
                *([] if durable else fast),
                "-c max_connections=300",
            ]
        )
        subprocess.run(
            _as_server_user(
                [pg_ctl, "start", "-D", str(data), "-l", str(logfile), "-o", options, "-W"]
            ),
            check=True,
            capture_output=True,
        )
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        try:
            wait_until(lambda: _pg_accepts(url), timeout=START_TIMEOUT, what="PostgreSQL")
        except TimeoutError as exc:
            log = logfile.read_text(errors="replace") if logfile.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start:\n{log}") from exc
        yield url
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{exc.cmd[0]} failed: {exc.stderr.decode(errors='replace')}") from exc
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                check=False,
                capture_output=True,
            )
        shutil.rmtree(base, ignore_errors=True)


def _pg_accepts(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextlib.contextmanager
def start_redis(tmpdir: Path | str, port: int | None = None) -> Iterator[str]:
    """Run a throwaway Redis server with no persistence (on ``port``, else a free one);
    yields ``redis://127.0.0.1:port/0``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server was not found on PATH: run `bash tests/system-packages.sh` "
            "(README's test command runs it first)."
        )
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="redis-", dir=tmpdir))
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"redis-server exited with {process.returncode}: {err}")
            return _redis_answers(url)

        wait_until(ready, timeout=START_TIMEOUT, what="Redis")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()
