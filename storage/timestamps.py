"""SQL for timestamp tokens: one row per stamped signature or anchor, updated as it goes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from congvan.states import vocabulary

from .tables import Timestamp

_timestamps = Timestamp.__table__  # type: ignore[attr-defined]

PENDING = vocabulary.STAMP_PENDING
STAMPED = vocabulary.STAMP_STAMPED
UNAVAILABLE = vocabulary.STAMP_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class TimestampRow:
    """The timestamp token asked for a signature or an anchor, and how asking went, as stored."""

    id: str
    subject: str  # signature | anchor
    subject_id: str
    status: str  # pending | stamped | unavailable
    source: str  # tsa (asked after commit) | embedded (uploaded)
    token: bytes | None
    authority: str
    gen_time: datetime | None
    error: str
    attempts: int
    created_at: datetime
    updated_at: datetime


TIMESTAMP_FIELDS = tuple(f.name for f in dataclasses.fields(TimestampRow))
# Every column in TimestampRow's order, so that a row builds the record by position.
_COLUMNS = tuple(_timestamps.c[name] for name in TIMESTAMP_FIELDS)


class TimestampRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, row: dict[str, Any]) -> None:
        self.conn.execute(insert(_timestamps), [{"updated_at": row["created_at"], **row}])

    def get(self, subject: str, subject_id: str) -> TimestampRow | None:
        t = _timestamps.c
        row = self.conn.execute(
            select(*_COLUMNS).where(t.subject == subject, t.subject_id == subject_id)
        ).first()
        return TimestampRow(*row) if row else None

    def of(self, subject: str, subject_ids: Sequence[str]) -> dict[str, TimestampRow]:
        """The rows of these subjects, by subject id; those never stamped are absent."""
        t = _timestamps.c
        found: dict[str, TimestampRow] = {}
        for start in range(0, len(subject_ids), 500):
            rows = self.conn.execute(
                select(*_COLUMNS).where(
                    t.subject == subject, t.subject_id.in_(list(subject_ids[start : start + 500]))
                )
            )
            found.update({r.subject_id: TimestampRow(*r) for r in rows})
        return found

    def stamped(
        self,
        subject: str,
        subject_id: str,
        token: bytes,
        authority: str,
        gen_time: datetime,
        at: datetime,
    ) -> bool:
        """Keep the token of a pending request; ``False`` when it is not pending any more."""
        return self._update(
            subject,
            subject_id,
            status=STAMPED,
            token=token,
            authority=authority,
            gen_time=gen_time,
            error="",
            updated_at=at,
        )

    def failed(
        self, subject: str, subject_id: str, error: str, *, final: bool, at: datetime
    ) -> bool:
        """Record a failed request; ``final`` gives up (unavailable), else it stays pending."""
        t = _timestamps.c
        values: dict[str, Any] = {
            "error": error[:4000],
            "attempts": t.attempts + 1,
            "updated_at": at,
        }
        if final:
            values["status"] = UNAVAILABLE
        return self._update(subject, subject_id, **values)

    def _update(self, subject: str, subject_id: str, **values: Any) -> bool:
        t = _timestamps.c
        result = self.conn.execute(
            update(_timestamps)
            .where(t.subject == subject, t.subject_id == subject_id, t.status == PENDING)
            .values(**values)
        )
        return result.rowcount == 1
