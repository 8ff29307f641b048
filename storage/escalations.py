"""SQL for escalations (each heads its own audit chain) and agencies' own time rules."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .chains import ChainHeads, ChainStatements, advancing, heading
from .clock import as_utc
from .documents import decode_cursor, encode_cursor
from .locks import hold
from .prepared import Prepared
from .tables import AgencyTimeRules, EscalationRow

_escalations = EscalationRow.__table__  # type: ignore[attr-defined]
_rules = AgencyTimeRules.__table__  # type: ignore[attr-defined]
_c = _escalations.c


@dataclass(frozen=True, slots=True)
class Escalation:
    """An escalation's row, times in aware UTC and its detail decoded."""

    id: str
    agency_id: str
    kind: str
    cause: str
    active_key: str | None
    state: str
    version: int
    audit_head: str
    severity: str
    level: int
    urgency: int
    document_id: str | None
    dispatch_id: str | None
    received_id: str | None
    organ_id: str
    owner: str
    due_at: datetime | None
    rise_at: datetime | None
    snoozed_until: datetime | None
    outcome: str
    detail: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    @property
    def active(self) -> bool:
        return self.active_key is not None


_NAMES = tuple(f.name for f in fields(Escalation))
_COLUMNS = [_c[name] for name in _NAMES]
_TIMES = ("due_at", "rise_at", "snoozed_until", "opened_at", "updated_at", "closed_at")


def _row(row: Any) -> Escalation:
    values = dict(zip(_NAMES, tuple(row), strict=True))
    for name in _TIMES:
        if values[name] is not None:
            values[name] = as_utc(values[name])
    values["detail"] = json.loads(values["detail"] or "{}")
    return Escalation(**values)


_by_id = _c.id == bindparam("escalation_id")
_INSERT = Prepared(insert(_escalations))
_GET = Prepared(select(*_COLUMNS).where(_by_id))
_ACTIVE = Prepared(select(*_COLUMNS).where(_c.active_key == bindparam("active_key")))
# ``active_key IN (...)`` with as many keys as asked, each arity built once.
_ACTIVE_AMONG: dict[int, Prepared] = {}


def _active_among(count: int) -> Prepared:
    found = _ACTIVE_AMONG.get(count)
    if found is None:
        keys: list[Any] = [bindparam(f"key{i}") for i in range(count)]
        found = _ACTIVE_AMONG.setdefault(
            count, Prepared(select(*_COLUMNS).where(_c.active_key.in_(keys)))
        )
    return found


_HEAD = Prepared(heading(_escalations))
_HEAD_FOR_UPDATE = Prepared(heading(_escalations).with_for_update())
_ADVANCE = advancing(_escalations)
# Read by every transition that starts watching a time rule.
_TIME_RULES = Prepared(select(_rules.c.rules).where(_rules.c.agency_id == bindparam("agency_id")))
_ACTIVE_OF_DOCUMENT = Prepared(
    select(*_COLUMNS).where(_c.document_id == bindparam("document_id"), _c.active_key.is_not(None))
)


@dataclass(frozen=True, slots=True)
class EscalationPage:
    items: list[Escalation]
    next_cursor: str | None


class EscalationRepository(ChainHeads):
    chain = ChainStatements(_HEAD, _HEAD_FOR_UPDATE, _ADVANCE, _escalations)

    def add(self, row: Mapping[str, Any]) -> None:
        values = dict(row)
        values["detail"] = json.dumps(values.get("detail") or {}, sort_keys=True)
        _INSERT.execute(self.conn, [values])

    def get(self, escalation_id: str) -> Escalation | None:
        row = _GET.first(self.conn, {"escalation_id": escalation_id})
        return _row(row) if row else None

    def active(self, active_key: str) -> Escalation | None:
        """The open (or claimed, or snoozed) escalation of this cause, if any."""
        row = _ACTIVE.first(self.conn, {"active_key": active_key})
        return _row(row) if row else None

    def active_among(self, active_keys: Sequence[str]) -> list[Escalation]:
        """The open (or claimed, or snoozed) escalations of these causes, in one look."""
        if not active_keys:
            return []
        params = {f"key{i}": key for i, key in enumerate(active_keys)}
        return [_row(r) for r in _active_among(len(active_keys)).all(self.conn, params)]

    def active_of_document(self, document_id: str) -> list[Escalation]:
        rows = _ACTIVE_OF_DOCUMENT.all(self.conn, {"document_id": document_id})
        return sorted((_row(r) for r in rows), key=lambda e: e.opened_at)

    def of_document(self, document_id: str) -> list[Escalation]:
        rows = self.conn.execute(
            select(*_COLUMNS).where(_c.document_id == document_id).order_by(_c.opened_at)
        )
        return [_row(r) for r in rows]

    def active_of_received(self, received_id: str) -> list[Escalation]:
        rows = self.conn.execute(
            select(*_COLUMNS).where(_c.received_id == received_id, _c.active_key.is_not(None))
        )
        return [_row(r) for r in rows]

    def set(self, escalation_id: str, **values: Any) -> None:
        """Change its other columns (owner, level, snooze, outcome, …)."""
        if "detail" in values:
            values["detail"] = json.dumps(values["detail"], sort_keys=True)
        self._changed(escalation_id)
        self.conn.execute(update(_escalations).where(_c.id == escalation_id).values(**values))

    def page(
        self,
        agency_id: str,
        *,
        states: Sequence[str] = (),
        kinds: Sequence[str] = (),
        document_id: str | None = None,
        owner: str | None = None,
        level: int | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> EscalationPage:
        """Newest first, ``limit`` at a time; the cursor is the last id seen."""
        query = select(*_COLUMNS).where(_c.agency_id == agency_id)
        if states:
            query = query.where(_c.state.in_(list(states)))
        if kinds:
            query = query.where(_c.kind.in_(list(kinds)))
        if document_id:
            query = query.where(_c.document_id == document_id)
        if owner is not None:
            query = query.where(_c.owner == owner)
        if level is not None:
            query = query.where(_c.level == level)
        if cursor:
            query = query.where(_c.id < decode_cursor(cursor, "escalations"))
        rows = self.conn.execute(query.order_by(_c.id.desc()).limit(limit + 1)).all()
        items = [_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return EscalationPage(
            items, encode_cursor(items[-1].id, "escalations") if more and items else None
        )

    # -- an agency's own time rules --------------------------------------------------------

    def time_rules(self, agency_id: str, *, holding: bool = False) -> dict[str, Any]:
        """The overrides an agency set (rule → five values); empty when it set none.
        ``holding``: until the transaction ends, no other reads them holding (a change
        made on what was read, judged against the tag its client read)."""
        if holding:
            hold(self.conn, f"congvan.time_rules:{agency_id}")
        row = _TIME_RULES.first(self.conn, {"agency_id": agency_id})
        return dict(json.loads(row[0])) if row and row[0] else {}

    def set_time_rules(
        self, agency_id: str, rules: Mapping[str, Any], *, by: str, at: datetime
    ) -> None:
        body = json.dumps(dict(rules), sort_keys=True)
        values = {"rules": body, "updated_by": by, "updated_at": at}
        # One statement: two first saves at once cannot both insert (the last one stands).
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        self.conn.execute(
            dialect.insert(_rules)
            .values(agency_id=agency_id, **values)
            .on_conflict_do_update(index_elements=[_rules.c.agency_id], set_=values)
        )
