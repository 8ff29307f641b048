"""SQL for the directory of peers: the inbox where each agency served elsewhere takes deliveries."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from congvan.states.errors import InvalidInput

from .clock import as_utc
from .locks import hold_agency
from .prepared import Prepared
from .tables import Peer as PeerRow

_peers = PeerRow.__table__  # type: ignore[attr-defined]
_c = _peers.c


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer's row: the agency, its inbox and how deliveries to it are made."""

    agency_id: str
    inbox_url: str
    transport: str
    timeout_seconds: int
    max_concurrency: int
    created_at: datetime
    updated_at: datetime


_COLUMNS = [_c[f.name] for f in fields(Peer)]
# What every delivery's claim runs, built once and run through Prepared (see prepared.py).
_get = select(*_COLUMNS).where(_c.agency_id == bindparam("agency_id"))
_GET = Prepared(_get)
_GET_FOR_UPDATE = Prepared(_get.with_for_update())


def _peer(row: tuple[object, ...]) -> Peer:
    peer = Peer(*row)  # type: ignore[arg-type]
    # SQLite hands timestamps back naive; they were stored as UTC.
    return replace(peer, created_at=as_utc(peer.created_at), updated_at=as_utc(peer.updated_at))


class PeerRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def put(self, peer: Peer) -> bool:
        """Add the peer, or update the one of its agency (keeping when it was added).

        Returns True when it was added.
        """
        values = {f.name: getattr(peer, f.name) for f in fields(Peer)}
        changed = {k: v for k, v in values.items() if k not in ("agency_id", "created_at")}
        result = self.conn.execute(
            update(_peers).where(_c.agency_id == peer.agency_id).values(**changed)
        )
        if result.rowcount == 1:
            return False
        self.conn.execute(insert(_peers), [values])
        return True

    def refuse_served_elsewhere(self, agency_id: str, what: str) -> None:
        """InvalidInput when another instance serves the agency (it has a peer entry):
        ``what`` (its users, its keys) would make this instance take it over. Holds the
        agency (``locks.hold_agency``) so that no peer entry is added before ``what`` is."""
        hold_agency(self.conn, agency_id)
        peer = self.get(agency_id)
        if peer is not None:
            raise InvalidInput(
                f"Agency {agency_id} is served by another instance (its peer entry takes "
                f"deliveries at {peer.inbox_url[:200]}); {what} belong there, or here once "
                "its peer entry is removed (`congvan peers remove`).",
                field="agency_id",
                agency_id=agency_id,
            )

    def get(self, agency_id: str, *, for_update: bool = False) -> Peer | None:
        """The peer; ``for_update`` holds its row until the transaction ends (PostgreSQL;
        SQLite's write transactions are one at a time already)."""
        query = _GET_FOR_UPDATE if for_update else _GET
        row = query.first(self.conn, {"agency_id": agency_id})
        return _peer(row) if row else None

    def list(self, *, after: str | None = None, limit: int | None = None) -> list[Peer]:
        """Peers by agency id: all of them, or ``limit`` after the agency id ``after``."""
        query = select(*_COLUMNS)
        if after is not None:
            query = query.where(_c.agency_id > after)
        rows = self.conn.execute(query.order_by(_c.agency_id).limit(limit))
        return [_peer(tuple(r)) for r in rows]

    def remove(self, agency_id: str) -> bool:
        """Forget the agency's peer entry; False when it had none."""
        result = self.conn.execute(delete(_peers).where(_c.agency_id == agency_id))
        return result.rowcount == 1
