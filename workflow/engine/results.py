"""What callers hand the engine and what it answers: idempotency keys, fired results."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from congvan.states.errors import AlreadyExists, IdempotencyKeyReused
from congvan.storage.unit_of_work import UnitOfWork

# The version a caller expects its subject at (If-Match), or several: any one of them.
Expected = int | tuple[int, ...]


def matches(expected: Expected, version: int) -> bool:
    return version == expected if isinstance(expected, int) else version in expected


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key and the fingerprint of the request that carried it."""

    key: str  # as stored: the caller's own (see ``of``)
    fingerprint: str
    given: str = ""  # as the caller wrote it, for messages

    @staticmethod
    def of(key: str, *parts: Any, by: str) -> Idempotency:
        """The key as ``by`` (the caller's name) gave it: each person's keys are their own,
        so two people of one agency choosing the same key ("1") never replay each other's
        answers. The stored key is a digest of both (64 characters, whatever their size)."""
        material = json.dumps(parts, sort_keys=True, default=str).encode()
        own = hashlib.sha256(f"{by}\x00{key}".encode()).hexdigest()
        return Idempotency(own, hashlib.sha256(material).hexdigest(), given=key)


@dataclass(frozen=True)
class FireResult:
    """What a fired event did."""

    document_id: str
    event: str
    from_state: str
    to_state: str
    version: int
    jobs: list[str] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def replay(uow: UnitOfWork, agency_id: str, idempotency: Idempotency) -> dict[str, Any] | None:
    """The answer stored with this key, or None; a key reused for another request is refused."""
    found = uow.idempotency.find(agency_id, idempotency.key)
    if found is None:
        return None
    fingerprint, _status, response = found
    if fingerprint != idempotency.fingerprint:
        raise IdempotencyKeyReused(key=idempotency.given or idempotency.key)
    return response


def commit(uow: UnitOfWork, idempotency: Idempotency | None) -> None:
    """Commit; a unique-key collision is a duplicate, or with a key a raced twin request."""
    if idempotency is not None:
        uow.commit()  # an IntegrityError here is a raced key; the caller replays
        return
    try:
        uow.commit()
    except IntegrityError as exc:
        raise AlreadyExists("This would duplicate an existing record.") from exc
