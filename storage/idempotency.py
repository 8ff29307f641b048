"""SQL for remembered answers to requests that carried an Idempotency-Key."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from .tables import IdempotentRequest

_requests = IdempotentRequest.__table__  # type: ignore[attr-defined]


class IdempotencyRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def find(self, agency_id: str, key: str) -> tuple[str, int, dict[str, Any]] | None:
        c = _requests.c
        row = self.conn.execute(
            select(c.fingerprint, c.status_code, c.response).where(
                c.agency_id == agency_id, c.key == key
            )
        ).first()
        return (row[0], row[1], json.loads(row[2])) if row else None

    def remember(
        self,
        agency_id: str,
        key: str,
        fingerprint: str,
        status_code: int,
        response: dict[str, Any],
        at: datetime,
    ) -> None:
        self.conn.execute(
            insert(_requests),
            [
                {
                    "agency_id": agency_id,
                    "key": key,
                    "fingerprint": fingerprint,
                    "status_code": status_code,
                    "response": json.dumps(response),
                    "created_at": at,
                }
            ],
        )
