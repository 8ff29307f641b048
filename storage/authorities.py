"""SQL for signing authorities: who may sign what for which agency, and when."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, tuple_, update

from .locks import hold
from .tables import SigningAuthority

_authorities = SigningAuthority.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class AuthorityRow:
    """One grant to a signer of an agency: the document types it covers and when, as stored."""

    id: str
    agency_id: str
    signer: str  # username in that agency
    doc_types: str  # comma-separated type codes, or *
    competence: str  # e.g. KT. CHỦ TỊCH; "" for any
    valid_from: str  # ISO dates, inclusive
    valid_until: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None


AUTHORITY_FIELDS = tuple(f.name for f in dataclasses.fields(AuthorityRow))
# Every column in AuthorityRow's order, so that a row builds the record by position.
_COLUMNS = tuple(_authorities.c[name] for name in AUTHORITY_FIELDS)


class AuthorityRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, row: AuthorityRow) -> None:
        self.conn.execute(insert(_authorities), [dataclasses.asdict(row)])

    def hold_granting(self, agency_id: str) -> None:
        """Wait until no other transaction grants the agency's authorities, and hold off
        the next until this one ends (a grant looks for its twin before it inserts)."""
        hold(self.conn, f"congvan.authorities:{agency_id}")

    def revoke(self, authority_id: str, agency_id: str, at: datetime) -> bool:
        c = _authorities.c
        result = self.conn.execute(
            update(_authorities)
            .where(c.id == authority_id, c.agency_id == agency_id, c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return result.rowcount == 1

    def get(self, authority_id: str, agency_id: str) -> AuthorityRow | None:
        """One of ``agency_id``'s authorities, revoked or not."""
        c = _authorities.c
        query = select(*_COLUMNS).where(c.id == authority_id, c.agency_id == agency_id)
        row = self.conn.execute(query).first()
        return None if row is None else AuthorityRow(*row)

    def for_agency(self, agency_id: str, signer: str | None = None) -> list[AuthorityRow]:
        c = _authorities.c
        query = select(*_COLUMNS).where(c.agency_id == agency_id)
        if signer is not None:
            query = query.where(c.signer == signer)
        return [AuthorityRow(*r) for r in self.conn.execute(query.order_by(c.signer, c.valid_from))]

    def page(
        self, agency_id: str, *, after: tuple[str, str, str] | None = None, limit: int
    ) -> list[AuthorityRow]:
        """An agency's authorities by (signer, valid_from, id): ``limit`` after ``after``."""
        c = _authorities.c
        query = select(*_COLUMNS).where(c.agency_id == agency_id)
        if after is not None:
            query = query.where(tuple_(c.signer, c.valid_from, c.id) > tuple_(*after))
        query = query.order_by(c.signer, c.valid_from, c.id).limit(limit)
        return [AuthorityRow(*r) for r in self.conn.execute(query)]

    def holding(self, agency_id: str, signer: str, doc_type: str, on: str) -> AuthorityRow | None:
        """The authority that lets ``signer`` sign ``doc_type`` for the agency on date ``on``."""
        held = self.holdings(agency_id, signer, doc_type, on)
        return held[0] if held else None

    def holdings(self, agency_id: str, signer: str, doc_type: str, on: str) -> list[AuthorityRow]:
        """Every authority that lets ``signer`` sign ``doc_type`` for the agency on ``on``."""
        held = []
        for row in self.for_agency(agency_id, signer):
            if row.revoked_at is not None:
                continue
            if row.valid_from > on or (row.valid_until and row.valid_until < on):
                continue
            types = {t.strip() for t in row.doc_types.split(",")}
            if "*" in types or doc_type in types:
                held.append(row)
        return held
