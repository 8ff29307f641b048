"""SQL that finds earlier documents a new one would repeat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy import true as sa_true

from .tables import Attachment, Dispatch, Document

_documents = Document.__table__  # type: ignore[attr-defined]
_attachments = Attachment.__table__  # type: ignore[attr-defined]
_dispatches = Dispatch.__table__  # type: ignore[attr-defined]


class DuplicateRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def same_number(
        self, agency_id: str, number: int, symbol: str | None, year: str, *, exclude: str
    ) -> dict[str, Any] | None:
        """Another document of the agency holding this number (with ``symbol``, unless
        None: any symbol) in ``year``.

        A number is held by a document past review, or by an earlier draft that is in
        review now; an abandoned draft holds nothing.
        """
        d = _documents.c
        row = self.conn.execute(
            select(d.id, d.state, d.issued_on, d.symbol)
            .where(
                d.agency_id == agency_id,
                d.number == number,
                d.symbol == symbol if symbol is not None else sa_true(),
                func.substr(d.issued_on, 1, 4) == year,
                d.id != exclude,
                or_(
                    d.state != "draft",
                    and_(d.id < exclude, d.submitted_revision == d.revision),
                ),
            )
            .order_by(d.id)
            .limit(1)
        ).first()
        return dict(row._mapping) if row else None

    def sent_with_number(
        self, agency_id: str, number: int, symbol: str | None, year: str, *, exclude: str
    ) -> dict[str, Any] | None:
        """A document of the agency already sent with this number (and ``symbol``, unless
        None) in ``year``."""
        d = _documents.c
        row = self.conn.execute(
            select(d.id, d.state)
            .where(
                d.agency_id == agency_id,
                d.number == number,
                d.symbol == symbol if symbol is not None else sa_true(),
                func.substr(d.issued_on, 1, 4) == year,
                d.id != exclude,
                d.state.in_(["sent", "delivered", "acknowledged", "failed"]),
            )
            .order_by(d.id)
            .limit(1)
        ).first()
        return dict(row._mapping) if row else None

    def sent_with_file(
        self, sha256: str, organ_ids: Sequence[str], *, exclude: str
    ) -> dict[str, Any] | None:
        """An earlier document whose main file, with these bytes, went to one of these."""
        if not organ_ids:
            return None
        a, s = _attachments.c, _dispatches.c
        row = self.conn.execute(
            select(s.document_id.label("id"), s.organ_id)
            .join(_attachments, a.document_id == s.document_id)
            .where(
                a.sha256 == sha256,
                a.role == "main",
                s.organ_id.in_(list(organ_ids)),
                s.document_id != exclude,
            )
            .order_by(s.document_id)
            .limit(1)
        ).first()
        return dict(row._mapping) if row else None
