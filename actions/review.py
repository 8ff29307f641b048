"""Review before sending: submit runs the checks as a job; approve needs them cleared."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from congvan.states.errors import Conflict, InvalidInput
from congvan.states.timeliness import DEFAULT_CUTOFF, VIETNAM
from congvan.storage.checks import ERROR, FAILED, PASSED, StoredResult
from congvan.storage.documents import DocumentRow
from congvan.storage.unit_of_work import UnitOfWork

from .calendar import VIETNAM_CALENDAR, WorkingCalendar
from .checks import CHECKS, Check, CheckInput
from .checks.duplicates import compares_documents
from .context import JobContext, TransitionContext
from .jobs import RetryLater, StagedJob


class Review:
    """The review checks, and the guard, effects and job built on them."""

    def __init__(
        self,
        checks: Sequence[Check] = CHECKS,
        *,
        max_attachment_bytes: int,
        max_subject_length: int,
        calendar: WorkingCalendar = VIETNAM_CALENDAR,
        send_cutoff: time = DEFAULT_CUTOFF,
        max_package_bytes: int | None = None,
    ) -> None:
        self.checks = list(checks)
        self.max_package_bytes = max_package_bytes
        self.calendar = calendar
        self.send_cutoff = send_cutoff
        self.max_attachment_bytes = max_attachment_bytes
        self.max_subject_length = max_subject_length

    # -- the job -----------------------------------------------------------------------------

    @property
    def job(self) -> ReviewJob:
        """The ``run_review_checks`` job: claim, check with no write lock held, record."""
        return ReviewJob(self)

    def run_checks(
        self, inp: CheckInput, *, only: Callable[[str], bool] | None = None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Every check (or those whose code ``only`` takes) on one revision: its results,
        and the codes of checks that crashed.

        A check that crashes is recorded as ``error`` with its reason, and the job is
        retried by the job mechanism: never a silent pass.
        """
        results, crashed = [], []
        for check in self.checks:
            if only is not None and not only(check.code):
                continue
            try:
                finding = check.run(inp)
                status = PASSED if finding.passed else FAILED
                vi = finding.vi or check.title_vi
                en = finding.en or check.title_en
                details = finding.details
            except Exception as exc:  # noqa: BLE001 - recorded as an error result and retried
                status, details = ERROR, {"error": type(exc).__name__}
                vi = f"Lỗi khi kiểm tra: {exc}"[:500]
                en = f"The check crashed: {exc}"[:500]
                crashed.append(check.code)
            results.append(
                {
                    "code": check.code,
                    "severity": check.severity,
                    "status": status,
                    "message_vi": vi,
                    "message_en": en,
                    "details": details,
                    "checked_at": inp.moment,
                }
            )
        return results, crashed

    def input_for(self, uow: UnitOfWork, doc: DocumentRow, now: datetime) -> CheckInput:
        return CheckInput(
            uow=uow,
            document=doc,
            today=now.astimezone(VIETNAM).date(),
            max_attachment_bytes=self.max_attachment_bytes,
            max_subject_length=self.max_subject_length,
            now=now,
            calendar=self.calendar,
            send_cutoff=self.send_cutoff,
            max_package_bytes=self.max_package_bytes,
        )

    # -- the guard ---------------------------------------------------------------------------

    def checks_cleared(self, ctx: TransitionContext) -> tuple[bool, str]:
        doc = ctx.uow.documents.load(ctx.document.id)
        if doc.submitted_revision != doc.revision:
            return False, "the current revision was not submitted for review"
        results = {r.code: r for r in ctx.uow.checks.for_revision(doc.id, doc.revision)}
        pending = [c.code for c in self.checks if c.code not in results]
        if pending:
            return False, f"checks not finished: {', '.join(pending)}"
        blocking = [c for c, r in results.items() if not r.cleared]
        if blocking:
            return False, f"checks not cleared: {', '.join(sorted(blocking))}"
        return True, ""

    # -- effects -----------------------------------------------------------------------------

    def record_submission(self, ctx: TransitionContext) -> None:
        """Open a new revision and send it for review.

        Every submission is checked afresh: results of an earlier round never count for a
        new one, even when nothing changed in between (an authority may have been revoked).
        """
        ctx.uow.documents.bump_revision(ctx.document.id)
        revision = ctx.uow.documents.mark_submitted(ctx.document.id)
        ctx.audit["revision"] = revision
        ctx.job_payload["revision"] = revision

    def withdraw_submission(self, ctx: TransitionContext) -> None:
        """A returned document leaves the review queue until it is submitted again."""
        ctx.uow.documents.mark_submitted(ctx.document.id, withdraw=True)

    def waive_check(self, ctx: TransitionContext) -> None:
        """A reviewer accepts a failed warning check of the current revision, with a reason."""
        code = str(ctx.data.get("code") or "")
        if not code:
            raise InvalidInput("Name the check to accept in `code`.", field="code")
        doc = ctx.uow.documents.load(ctx.document.id)
        if doc.submitted_revision != doc.revision:
            raise InvalidInput(
                "The document is not in review: submit it first.", field="code", code=code
            )
        results = {r.code: r for r in ctx.uow.checks.for_revision(doc.id, doc.revision)}
        result = results.get(code)
        if result is None:
            # A wrong code is a mistake in the request body, not a missing document: 422.
            raise InvalidInput(
                f"No result of check {code!r} for the current revision.",
                field="code",
                code=code,
                revision=doc.revision,
                known=sorted(results),
            )
        if result.severity != "warning" or result.status != FAILED:
            said = (
                f"Check {code} did not fail: there is nothing to accept."
                if result.status == PASSED
                else "Only a failed warning check can be accepted; a blocking one is fixed by "
                "editing the document."
            )
            raise InvalidInput(said, code=code, severity=result.severity, status=result.status)
        reason = str(ctx.data["reason"])
        by = ctx.actor.name
        if result.waived_by or not ctx.uow.checks.waive(
            doc.id, doc.revision, code, by=by, reason=reason, at=ctx.now
        ):
            # Once accepted, who accepted it and why stand (the trail keeps one waiver).
            raise Conflict(
                f"Check {code} was accepted already by {result.waived_by or 'another reviewer'}.",
                code=code,
                waived_by=result.waived_by or None,
            )
        ctx.audit.update({"code": code, "revision": doc.revision})


def results_view(results: Sequence[StoredResult], checks: Sequence[Check]) -> dict[str, Any]:
    """Results of one revision, with the checks still pending named."""
    done = {r.code for r in results}
    return {
        "results": [r.as_dict() for r in results],
        "pending": [c.code for c in checks if c.code not in done],
        "cleared": bool(results)
        and all(r.cleared for r in results)
        and all(c.code in done for c in checks),
    }


@dataclass(frozen=True)
class CheckWork:
    document_id: str
    revision: int
    open_uow: Callable[..., UnitOfWork]
    now: datetime


@dataclass(frozen=True)
class ReviewJob(StagedJob[CheckWork]):
    """Checks run between two short write transactions, reading in a read-only one.

    Parsing PDFs and comparing documents is the job's work; on SQLite a write
    transaction would hold every other writer back meanwhile, so none is open.
    """

    review: Review

    def prepare(self, ctx: JobContext) -> CheckWork | None:
        doc = _still_in_review(ctx.uow, ctx.job.document_id, ctx.job.payload)
        if doc is None:
            return None  # edited or returned since: nobody waits for these results
        return CheckWork(doc.id, doc.revision, ctx.open_uow, ctx.now)

    def act(self, work: CheckWork) -> tuple[list[dict[str, Any]], list[str]]:
        with work.open_uow(readonly=True) as uow:
            doc = uow.documents.get(work.document_id)
            if doc is None or doc.revision != work.revision:
                return [], []
            return self.review.run_checks(self.review.input_for(uow, doc, work.now))

    def record(
        self,
        ctx: JobContext,
        work: CheckWork,
        outcome: tuple[list[dict[str, Any]], list[str]],
    ) -> None:
        results, crashed = outcome
        doc = _still_in_review(ctx.uow, work.document_id, {"revision": work.revision})
        if doc is None or not results:
            return  # the revision moved on while the checks ran: nothing to keep
        # The checks comparing it with other documents ran in a read-only transaction: two
        # drafts holding one number, checked at once, each found the other not yet
        # judged. Judged again here, one verdict at a time, each sees the one before it.
        ctx.uow.duplicates.hold_issuing(doc.agency_id)
        again, crashed_again = self.review.run_checks(
            self.review.input_for(ctx.uow, doc, ctx.now), only=compares_documents
        )
        fresh = {r["code"]: r for r in again}
        results = [fresh.get(r["code"], r) for r in results]
        crashed = [c for c in crashed if c not in fresh] + crashed_again
        ctx.uow.checks.record(work.document_id, work.revision, results)
        if crashed:
            raise RetryLater(f"checks crashed: {', '.join(crashed)}")


def _still_in_review(
    uow: UnitOfWork, document_id: str | None, payload: Mapping[str, Any]
) -> DocumentRow | None:
    """The document if its current revision is the one submitted (and asked for)."""
    doc = uow.documents.get(document_id) if document_id else None
    if doc is None or doc.submitted_revision != doc.revision:
        return None
    if payload.get("revision", doc.revision) != doc.revision:
        return None  # a later submission has its own job
    return doc
