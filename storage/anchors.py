"""SQL for audit anchors: signed lists of audit chain heads, one chain of anchors per agency."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from .clock import as_utc
from .locks import hold
from .stored import Stored, WrongKind, altered
from .tables import AuditAnchor, AuditEntry, chain_heads

_anchors = AuditAnchor.__table__  # type: ignore[attr-defined]
_audit = AuditEntry.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class AnchorRow:
    """An agency's audit chain heads at one moment, signed with its key, as stored."""

    id: str
    agency_id: str
    seq: int  # the anchor's place in the agency's own chain of anchors, from 1
    created_at: datetime
    body: bytes  # RFC 8785 JSON, the bytes the CMS signs
    body_sha256: str
    cms: bytes
    certificate_fingerprint: str
    heads: int  # how many document heads the body lists


ANCHOR_FIELDS = tuple(f.name for f in dataclasses.fields(AnchorRow))
# Every column in AnchorRow's order, so that a row builds the record by position.
_COLUMNS = tuple(_anchors.c[name] for name in ANCHOR_FIELDS)
_STORED = Stored(_COLUMNS, AnchorRow)  # read to be verified
_SEQ = ANCHOR_FIELDS.index("seq")


class AnchorRepository:
    """Appends anchors and reads them back; like the audit trail, it has no update."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, row: AnchorRow) -> None:
        self.conn.execute(insert(_anchors), [dataclasses.asdict(row)])

    def latest(self, agency_id: str, *, holding: bool = False) -> AnchorRow | None:
        """The agency's newest anchor; ``holding``: hold the agency's anchors until the
        transaction ends, for the next one chained to it (two runs at once: the second
        finds the first's)."""
        if holding:
            hold(self.conn, f"congvan.anchors:{agency_id}")
        row = self.conn.execute(
            select(*_COLUMNS)
            .where(_anchors.c.agency_id == agency_id)
            .order_by(_anchors.c.seq.desc())
            .limit(1)
        ).first()
        return AnchorRow(*row) if row else None

    def by_id(self, anchor_id: str) -> AnchorRow | None:
        row = self.conn.execute(select(*_COLUMNS).where(_anchors.c.id == anchor_id)).first()
        return AnchorRow(*row) if row else None

    def get(self, agency_id: str, seq: int) -> AnchorRow | None:
        row = self.conn.execute(
            select(*_COLUMNS).where(_anchors.c.agency_id == agency_id, _anchors.c.seq == seq)
        ).first()
        return AnchorRow(*row) if row else None

    def of_agency(self, agency_id: str, batch: int = 200) -> Iterator[AnchorRow]:
        """Every anchor of the agency, oldest first, read in batches."""
        for anchor in self.as_stored(agency_id, batch):
            if isinstance(anchor, WrongKind):
                raise altered(f"anchor {anchor.row.get('seq')!r} of agency {agency_id}", anchor)
            yield anchor

    def as_stored(self, agency_id: str, batch: int = 200) -> Iterator[AnchorRow | WrongKind]:
        """Every anchor of the agency, oldest first, as stored: one holding a value its
        column cannot (SQL wrote it) is named, for a verification to report."""
        seq = _anchors.c.seq
        last: Any = None
        while True:
            query = select(*_STORED.columns).where(_anchors.c.agency_id == agency_id)
            if last is not None:
                query = query.where(seq > last)
            rows = self.conn.execute(query.order_by(seq).limit(batch)).all()
            if not rows:
                return
            for raw in rows:
                read = _STORED.read(self.conn.dialect, raw)
                yield read if isinstance(read, WrongKind) else AnchorRow(*read)
            last = rows[-1][_SEQ]

    def covering(
        self, agency_id: str, document_id: str, since: datetime | None = None
    ) -> list[AnchorRow]:
        """The agency's anchors (made at or after ``since``) listing a head of the document.

        Each anchor's body is read: an export's cost, not a transition's.
        """
        found = []
        for anchor in self.of_agency(agency_id):
            if since is not None and as_utc(anchor.created_at) < since:
                continue
            heads = json.loads(bytes(anchor.body)).get("heads", [])
            if any(head[0] == document_id for head in heads):
                found.append(anchor)
        return found

    def agencies_with_anchors(self) -> list[str]:
        rows = self.conn.execute(select(_anchors.c.agency_id).distinct())
        return sorted(r[0] for r in rows)

    def heads_changed_since(
        self, agency_id: str, since: datetime | None
    ) -> list[tuple[str, int, str]]:
        """(chain, version, audit head) of the agency's chains changed since ``since``.

        Its outgoing documents' chains and its received documents'.
        """
        d = chain_heads().c
        query = select(d.id, d.version, d.audit_head).where(d.agency_id == agency_id)
        if since is not None:
            query = query.where(d.updated_at >= since)
        return [(r.id, r.version, r.audit_head) for r in self.conn.execute(query.order_by(d.id))]

    def entry_hash(self, document_id: str, version: int) -> str | None:
        """The stored hash of one audit entry, or None when there is no such entry."""
        return self.entry_hashes([(document_id, version)]).get((document_id, version))

    def entry_hashes(
        self, entries: Sequence[tuple[str, int]], batch: int = 500
    ) -> dict[tuple[str, int], str]:
        """The stored hashes of these (document, version) entries; missing ones are absent."""
        a = _audit.c
        wanted = set(entries)
        chains = sorted({d for d, _v in wanted})
        found: dict[tuple[str, int], str] = {}
        for start in range(0, len(chains), batch):
            # By the chains (the index's first column) and the versions asked: a row-value
            # IN is a scan of every audit entry on SQLite.
            part = set(chains[start : start + batch])
            versions = sorted({v for d, v in wanted if d in part})
            query = select(a.document_id, a.version, a.hash).where(
                a.document_id.in_(sorted(part)), a.version.in_(versions)
            )
            for r in self.conn.execute(query):
                if (r.document_id, r.version) in wanted:
                    found[(r.document_id, r.version)] = str(r.hash)
        return found
