"""Named locks held until the transaction ends, for checks no unique index can make.

Some rules read rows other than the ones they write: "no number sent twice a year",
"no package stored twice", "one review verdict per number". Two transactions checking at
once would each find nothing and both go on. PostgreSQL takes a transaction-scoped
advisory lock on the rule's name (the second waits until the first ends, then reads what
it wrote); SQLite needs none, as its writer holds the whole database.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, bindparam, func, select

from .prepared import Prepared

_HOLD = Prepared(select(func.pg_advisory_xact_lock(bindparam("key"))))


def hold(conn: Connection, name: str) -> None:
    """Wait until no other transaction holds ``name``, and hold it until this one ends."""
    if conn.dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    _HOLD.first(conn, {"key": key})


def hold_agency(conn: Connection, agency_id: str) -> None:
    """Hold the agency's place in the directory: whether it exists, and who serves it
    (its users and keys here, or a peer entry naming another instance), is decided by one
    transaction at a time."""
    hold(conn, f"congvan.agency:{agency_id}")
