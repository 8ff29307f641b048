"""What notifications cost: queued inside a transition, sent by the job after it.

What is measured
  queue    transactions per second that queue a warning to R routes
           (``queue_notifications``: match the routes, render, one notification row, one
           outbox job and its deadline timer per route) against transactions queueing R
           plain jobs (``enqueue``: the outbox row and its timer, what any transition's job
           costs), in the same run: what a warning adds over a job.
  send     webhook notifications per second through the send job (claim, render the body,
           sign it, POST to a receiver on 127.0.0.1, record the attempt), one after another
           as one worker thread runs them, against raw signed ``httpx`` posts of the same
           bodies to the same receiver with a new client each, as the job makes them.

SQLite embedded default, synchronous=FULL. Run: python bench/notifications.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/transitions.py would shadow
# the `transitions` library that congvan imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]

import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from congvan.actions.jobs import enqueue, new_job  # noqa: E402
from congvan.actions.notices import sign  # noqa: E402
from congvan.actions.notifications import queue_notifications  # noqa: E402
from congvan.actions.posting import tls  # noqa: E402
from congvan.storage.database import make_engine  # noqa: E402
from congvan.storage.schema import migrate  # noqa: E402
from congvan.workflow.bootstrap import Runtime, bootstrap  # noqa: E402
from congvan.workflow.directory import add_agency  # noqa: E402
from congvan.workflow.notifications import add_route  # noqa: E402
from congvan.workflow.serving import serve_in_thread  # noqa: E402
from congvan.workflow.settings import Settings  # noqa: E402

AGENCY = "000.00.00.H57"
SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
EVENT = {
    "escalation_id": "0192f000-0000-7000-8000-0000000000e1",
    "level": 1,
    "severity": "khẩn",
    "document_id": "0192f000-0000-7000-8000-0000000000d0",
    "number_symbol": "1227/UBND-TĐKT",
    "subject": "Về việc thực hiện gửi, nhận văn bản điện tử",
    "recipient_id": "000.00.11.H57",
    "recipient_name": "Sở Nội vụ",
    "what_to_do": "Gọi văn thư Sở Nội vụ để tiếp nhận văn bản trong ngày.",
    "link": "/v1/documents/0192f000-0000-7000-8000-0000000000d0",
}


async def _taken(_request: Request) -> Response:
    await _request.body()
    return Response(status_code=204)


RECEIVER = Starlette(routes=[Route("/hook", _taken, methods=["POST"])])


def installation(directory: Path) -> Runtime:
    url = f"sqlite:///{directory / 'congvan.db'}"
    migrate(make_engine(url))
    # The bench's receiver listens on this machine.
    settings = Settings(
        data_dir=directory, database_url=url, notify_private_networks=["127.0.0.0/8"]
    )
    runtime = bootstrap(settings)
    with runtime.uow() as uow:
        add_agency(uow, AGENCY, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND", runtime.clock())
        uow.commit()
    return runtime


def rate(n: int, work: object) -> float:
    started = time.perf_counter()
    for _ in range(n):
        work()  # type: ignore[operator]
    return n / (time.perf_counter() - started)


def queue_rates(runtime: Runtime, n: int, routes: int, url: str) -> tuple[float, float]:
    with runtime.uow() as uow:
        for i in range(routes):
            add_route(
                uow, AGENCY, kind="*", channel="webhook", target=f"{url}?r={i}",
                secret=SECRET, by="bench", now=runtime.clock(),
                networks=runtime.settings.private_networks(),
            )  # fmt: skip
        uow.commit()

    def bare() -> None:
        with runtime.uow() as uow:
            now = runtime.clock()
            enqueue(uow, [new_job("bench_job", now, agency_id=None) for _ in range(routes)], now)
            uow.commit()

    def queued() -> None:
        with runtime.uow() as uow:
            queue_notifications(uow, agency_id=AGENCY, kind="not_delivered", event=EVENT)
            uow.commit()

    return rate(n, bare), rate(n, queued)


def send_rates(runtime: Runtime, n: int, url: str) -> tuple[float, float]:
    with runtime.uow(readonly=True) as uow:
        jobs = [x.job_id for x in uow.notifications.page(AGENCY, "pending", limit=n)]
    body = b'{"id":"bench","text":"' + "Văn bản chưa đến".encode() + b'"}'

    def raw() -> None:
        stamp = int(time.time())
        headers = {
            "X-Congvan-Timestamp": str(stamp),
            "X-Congvan-Signature": sign(SECRET, stamp, body),
        }
        with httpx.Client(verify=tls(), timeout=10) as client:
            assert client.post(url, content=body, headers=headers).status_code == 204

    ceiling = rate(len(jobs), raw)
    todo = iter(jobs)

    def job() -> None:
        assert runtime.runner.run(next(todo)) == "done"

    return ceiling, rate(len(jobs), job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    n = 100 if args.quick else 500
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(RECEIVER) as base:
        url = f"{base}/hook"
        for routes in (1, 3):
            runtime = installation(Path(tmp) / f"r{routes}")
            try:
                bare, queued = queue_rates(runtime, n, routes, url)
                print(
                    f"queue  {routes} route(s): {queued:8.0f} transactions/s, as many plain "
                    f"jobs {bare:8.0f}/s, ratio {queued / bare:.2f}"
                )
                if routes == 3:
                    ceiling, sent = send_rates(runtime, n, url)
                    print(
                        f"send   webhook: {sent:8.0f} notifications/s, raw signed posts "
                        f"{ceiling:8.0f}/s, ratio {sent / ceiling:.2f}"
                    )
            finally:
                runtime.stop()


if __name__ == "__main__":
    main()
