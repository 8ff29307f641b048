"""A job with an outside step: claimed in one transaction, acted with none, recorded in another."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from congvan.actions.context import JobContext
from congvan.actions.jobs import StagedJob
from congvan.storage.ids import new_id
from congvan.storage.outbox import DONE, FAILED, PENDING
from congvan.workflow.bootstrap import Runtime
from tests.conftest import MakeRuntime


@dataclass
class Probe(StagedJob[str]):
    """Records what each step saw; ``act`` fails while ``failures`` lasts."""

    runtime: Runtime | None = None
    failures: int = 0
    seen: list[tuple[str, Any]] = field(default_factory=list)

    def prepare(self, ctx: JobContext) -> str | None:
        self.seen.append(("prepare", ctx.job.payload["what"]))
        return str(ctx.job.payload["what"]) or None

    def act(self, work: str) -> str:
        assert self.runtime is not None
        # No connection of the pool is checked out: no transaction is open anywhere.
        self.seen.append(("act", self.runtime.db.pool.checkedout()))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the peer does not answer")
        return work.upper()

    def record(self, ctx: JobContext, work: str, outcome: str) -> None:
        self.seen.append(("record", outcome))

    def failed(self, ctx: JobContext, error: str, *, final: bool) -> None:
        self.seen.append(("failed", (error, final)))


def queue(runtime: Runtime, what: str) -> str:
    job_id = new_id()
    with runtime.uow() as uow:
        uow.outbox.add(
            [
                {
                    "id": job_id,
                    "action": "probe",
                    "document_id": None,
                    "queue": "default",
                    "status": PENDING,
                    "attempts": 0,
                    "created_at": runtime.clock(),
                    "payload": {"what": what},
                }
            ]
        )
        uow.commit()
    return job_id


def status(runtime: Runtime, job_id: str) -> tuple[str, int]:
    with runtime.uow(readonly=True) as uow:
        job = uow.outbox.get(job_id)
        assert job is not None
        return job.status, job.attempts


def test_the_outside_step_runs_with_no_transaction_open(make_runtime: MakeRuntime) -> None:
    # Given a staged job queued
    probe = Probe()
    runtime = make_runtime(jobs={"probe": probe})  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")

    # When it runs
    outcome = runtime.runner.run(job_id)

    # Then it was claimed, acted with no connection held, recorded, and is done
    assert "done" == outcome
    assert [("prepare", "stamp"), ("act", 0), ("record", "STAMP")] == probe.seen
    assert (DONE, 0) == status(runtime, job_id)
    # and a second delivery of its message does nothing
    assert "skipped" == runtime.runner.run(job_id)


def test_a_failed_outside_step_counts_and_the_last_one_is_final(
    make_runtime: MakeRuntime,
) -> None:
    probe = Probe(failures=5)
    runtime = make_runtime(jobs={"probe": probe}, job_max_attempts=2)  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "stamp")

    first, second = runtime.runner.run(job_id), runtime.runner.run(job_id)

    assert ("failed", "failed") == (first, second)
    failures = [value for step, value in probe.seen if step == "failed"]
    assert [
        ("ConnectionError: the peer does not answer", False),
        ("ConnectionError: the peer does not answer", True),
    ] == failures
    assert (FAILED, 2) == status(runtime, job_id)


def test_nothing_to_do_ends_the_job_without_acting(make_runtime: MakeRuntime) -> None:
    probe = Probe()
    runtime = make_runtime(jobs={"probe": probe})  # type: ignore[dict-item]
    probe.runtime = runtime
    job_id = queue(runtime, "")

    assert "done" == runtime.runner.run(job_id)
    assert [("prepare", "")] == probe.seen
