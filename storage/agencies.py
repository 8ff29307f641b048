"""SQL for agencies, their users, and API tokens (kept only as SHA-256 hashes)."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from .locks import hold, hold_agency
from .prepared import Prepared
from .tables import Agency, ApiToken, User

_agencies = Agency.__table__  # type: ignore[attr-defined]
_users = User.__table__  # type: ignore[attr-defined]
_tokens = ApiToken.__table__  # type: ignore[attr-defined]


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AgencyRow:
    """A state agency as stored, named by its electronic identifier (mã định danh)."""

    id: str
    name: str
    abbreviation: str
    numbering: str  # states.policy.NUMBERING
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserRow:
    """A person or back-office system acting for one agency, as stored."""

    id: str
    agency_id: str
    username: str
    full_name: str
    position: str
    roles: str  # comma-separated, from states.policy.ROLES
    created_at: datetime


AGENCY_FIELDS = tuple(f.name for f in dataclasses.fields(AgencyRow))
USER_FIELDS = tuple(f.name for f in dataclasses.fields(UserRow))
# Every column in the record's order, so that a row builds the record by position.
_AGENCY_COLUMNS = tuple(_agencies.c[name] for name in AGENCY_FIELDS)
_USER_COLUMNS = tuple(_users.c[name] for name in USER_FIELDS)
# Every send reads its agency's numbering (see prepared.py).
_AGENCY = Prepared(select(*_AGENCY_COLUMNS).where(_agencies.c.id == bindparam("agency_id")))


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user of one agency with some roles."""

    user_id: str
    username: str
    agency_id: str
    roles: frozenset[str]
    full_name: str = ""
    position: str = ""

    @property
    def actor(self) -> str:
        return f"{self.username}@{self.agency_id}"


@dataclass(frozen=True)
class TokenHolder:
    """Whose a token is, and until when (None: no end)."""

    principal: Principal
    expires_at: datetime | None

    def valid_at(self, now: datetime) -> bool:
        if self.expires_at is None:
            return True
        expires = self.expires_at  # read back without its zone (SQLite): in now's
        return (expires if expires.tzinfo else expires.replace(tzinfo=now.tzinfo)) > now


class AgencyRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def hold(self, agency_id: str) -> None:
        """Hold the agency's place in the directory until the transaction ends
        (``locks.hold_agency``): a check of whether it exists or who serves it, then a
        write on it, is not undone by another at once."""
        hold_agency(self.conn, agency_id)

    def add_agency(self, row: AgencyRow) -> None:
        self.conn.execute(insert(_agencies), [dataclasses.asdict(row)])

    def agency(self, agency_id: str) -> AgencyRow | None:
        row = _AGENCY.first(self.conn, {"agency_id": agency_id})
        return AgencyRow(*row) if row else None

    def agencies(self, *, after: str | None = None, limit: int | None = None) -> list[AgencyRow]:
        """Agencies by identifier: all of them, or ``limit`` after the id ``after``."""
        c = _agencies.c
        query = select(*_AGENCY_COLUMNS)
        if after is not None:
            query = query.where(c.id > after)
        return [AgencyRow(*r) for r in self.conn.execute(query.order_by(c.id).limit(limit))]

    def rename(self, agency_id: str, name: str, abbreviation: str) -> None:
        self.conn.execute(
            update(_agencies)
            .where(_agencies.c.id == agency_id)
            .values(name=name, abbreviation=abbreviation)
        )

    def set_numbering(self, agency_id: str, numbering: str) -> bool:
        result = self.conn.execute(
            update(_agencies).where(_agencies.c.id == agency_id).values(numbering=numbering)
        )
        return result.rowcount == 1

    def add_user(self, row: UserRow) -> None:
        self.conn.execute(insert(_users), [dataclasses.asdict(row)])

    def set_user_names(self, user_id: str, *, full_name: str, position: str) -> None:
        self.conn.execute(
            update(_users)
            .where(_users.c.id == user_id)
            .values(full_name=full_name, position=position)
        )

    def set_user_roles(self, user_id: str, roles: list[str]) -> None:
        self.conn.execute(
            update(_users).where(_users.c.id == user_id).values(roles=",".join(roles))
        )

    def user(self, agency_id: str, username: str, *, holding: bool = False) -> UserRow | None:
        """The agency's user of that name; ``holding``: hold the name until the
        transaction ends (``locks.hold``), for a change made on what is read here (roles
        merged in, or the user created), which another at once would otherwise undo."""
        if holding:
            hold(self.conn, f"congvan.users:{agency_id}:{username}")
        c = _users.c
        row = self.conn.execute(
            select(*_USER_COLUMNS).where(c.agency_id == agency_id, c.username == username)
        ).first()
        return UserRow(*row) if row else None

    def user_roles(self, user_id: str) -> list[str]:
        """The roles the user holds (none for no such user)."""
        found = self.conn.execute(select(_users.c.roles).where(_users.c.id == user_id)).first()
        return sorted(r for r in (found.roles if found else "").split(",") if r)

    def has_users(self, agency_id: str) -> bool:
        """Whether anyone acts for the agency here: then it is one of ours."""
        query = select(_users.c.id).where(_users.c.agency_id == agency_id).limit(1)
        return self.conn.execute(query).first() is not None

    def add_token(self, row: dict[str, Any]) -> None:
        self.conn.execute(insert(_tokens), [row])

    def token_holder(self, token: str) -> TokenHolder | None:
        """Whose ``token`` is, and until when (None: no end), when it is one of this
        installation's and not revoked; expired or not."""
        t, u = _tokens.c, _users.c
        row = self.conn.execute(
            select(
                u.id,
                u.username,
                u.agency_id,
                u.roles,
                t.roles.label("token_roles"),
                u.full_name,
                u.position,
                t.expires_at,
                t.revoked_at,
            )
            .join(_users, u.id == t.user_id)
            .where(t.token_hash == hash_token(token))
        ).first()
        if row is None or row.revoked_at is not None:
            return None
        principal = Principal(
            user_id=row.id,
            username=row.username,
            agency_id=row.agency_id,
            # The token's roles its user still holds: a clerk's token stays a clerk's
            roles=frozenset(row.roles.split(",")) & frozenset(row.token_roles.split(",")) - {""},
            full_name=row.full_name,
            position=row.position,
        )
        return TokenHolder(principal, row.expires_at)

    def revoke_token(self, prefix: str, at: datetime) -> int:
        result = self.conn.execute(
            update(_tokens)
            .where(_tokens.c.prefix == prefix, _tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(result.rowcount)
