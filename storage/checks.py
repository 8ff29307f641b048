"""SQL for review check results, one row per (document, revision, check)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from congvan.states import vocabulary
from congvan.states.document import DRAFT

from .clock import as_utc
from .documents import DOCUMENT_COLUMNS, DocumentRow
from .tables import CheckResult, Document

_results = CheckResult.__table__  # type: ignore[attr-defined]
_documents = Document.__table__  # type: ignore[attr-defined]

PASSED = vocabulary.CHECK_PASSED
FAILED = vocabulary.CHECK_FAILED
ERROR = vocabulary.CHECK_ERROR
BLOCKING = vocabulary.BLOCKING
WARNING = vocabulary.WARNING


@dataclass(frozen=True)
class StoredResult:
    code: str
    revision: int
    severity: str
    status: str
    message_vi: str
    message_en: str
    details: dict[str, Any]
    checked_at: datetime
    waived_by: str
    waived_at: datetime | None
    waive_reason: str

    @property
    def waivable(self) -> bool:
        """A failed warning no reviewer has accepted yet: what a waiver takes."""
        return self.status == FAILED and self.severity == WARNING and not self.waived_by

    @property
    def cleared(self) -> bool:
        """Passed, or a failed warning a reviewer accepted."""
        if self.status == PASSED:
            return True
        return self.status == FAILED and self.severity == WARNING and bool(self.waived_by)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "revision": self.revision,
            "severity": self.severity,
            "status": self.status,
            "cleared": self.cleared,
            "message": {"vi": self.message_vi, "en": self.message_en},
            "details": self.details,
            "checked_at": self.checked_at.isoformat(),
            "waived_by": self.waived_by or None,
            "waived_at": self.waived_at.isoformat() if self.waived_at else None,
            "waive_reason": self.waive_reason or None,
        }


def _stored(row: Any) -> StoredResult:
    return StoredResult(
        code=row.code,
        revision=row.revision,
        severity=row.severity,
        status=row.status,
        message_vi=row.message_vi,
        message_en=row.message_en,
        details=json.loads(row.details),
        checked_at=as_utc(row.checked_at),
        waived_by=row.waived_by,
        waived_at=as_utc(row.waived_at) if row.waived_at else None,
        waive_reason=row.waive_reason,
    )


class CheckRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record(self, document_id: str, revision: int, results: Sequence[dict[str, Any]]) -> None:
        """Write results for one revision, replacing earlier runs of the same checks.

        A reviewer's acceptance of a failed warning survives a re-run that fails the same
        way: the same bytes were accepted once and need not be accepted again.
        """
        if not results:
            return
        c = _results.c
        codes = [r["code"] for r in results]
        where = (c.document_id == document_id, c.revision == revision, c.code.in_(codes))
        kept = {
            row.code: row
            for row in self.conn.execute(
                select(
                    c.code, c.status, c.severity, c.waived_by, c.waived_at, c.waive_reason
                ).where(*where, c.waived_by != "")
            )
        }
        self.conn.execute(delete(_results).where(*where))
        rows = []
        for r in results:
            row = {
                **r,
                "document_id": document_id,
                "revision": revision,
                "details": json.dumps(r.get("details", {}), ensure_ascii=False, default=str),
            }
            old = kept.get(r["code"])
            if old is not None and (old.status, old.severity) == (r["status"], r["severity"]):
                row.update(
                    waived_by=old.waived_by, waived_at=old.waived_at, waive_reason=old.waive_reason
                )
            rows.append(row)
        self.conn.execute(insert(_results), rows)

    def for_revision(self, document_id: str, revision: int) -> list[StoredResult]:
        c = _results.c
        rows = self.conn.execute(
            select(_results)
            .where(c.document_id == document_id, c.revision == revision)
            .order_by(c.code)
        )
        return [_stored(r) for r in rows]

    def waive(
        self, document_id: str, revision: int, code: str, *, by: str, reason: str, at: datetime
    ) -> bool:
        c = _results.c
        result = self.conn.execute(
            update(_results)
            .where(
                c.document_id == document_id,
                c.revision == revision,
                c.code == code,
                c.status == FAILED,
                c.severity == WARNING,
                c.waived_by == "",  # a waiver stands: never written over
            )
            .values(waived_by=by, waived_at=at, waive_reason=reason)
        )
        return result.rowcount == 1

    def queue(
        self, agency_id: str, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[DocumentRow]:
        """Drafts of an agency submitted at their current revision, oldest first.

        ``after`` is the (updated_at, id) of the last one seen on the page before.
        """
        d = _documents.c
        query = select(*DOCUMENT_COLUMNS).where(
            d.agency_id == agency_id, d.state == DRAFT, d.submitted_revision == d.revision
        )
        if after is not None:
            at, last_id = after
            query = query.where(or_(d.updated_at > at, and_(d.updated_at == at, d.id > last_id)))
        rows = self.conn.execute(query.order_by(d.updated_at, d.id).limit(limit))
        return [DocumentRow(*r) for r in rows]
