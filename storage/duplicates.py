"""SQL that finds earlier documents a new one would repeat."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)

from congvan.states.document import DRAFT, ISSUED, RECALLED, REPLACED
from congvan.states.policy import MAIN_FILE, Series

from .locks import hold
from .prepared import Prepared
from .tables import Attachment, CheckResult, Dispatch, Document

_documents = Document.__table__  # type: ignore[attr-defined]
_attachments = Attachment.__table__  # type: ignore[attr-defined]
_dispatches = Dispatch.__table__  # type: ignore[attr-defined]
_check_results = CheckResult.__table__  # type: ignore[attr-defined]
# The review check that gives a draft its number (actions/checks/duplicates.py).
NUMBER_CHECK = "duplicates.number"


def _in_series(series: Series) -> list[ColumnElement[bool]]:
    """Which of an agency's documents share ``series`` (the year is compared apart)."""
    d = _documents.c
    where = [d.legal_normative.is_(series.legal_normative)]
    if series.doc_type is not None:
        where.append(d.doc_type == series.doc_type)
    if series.symbol is not None:
        where.append(d.symbol == series.symbol)
    return where


def _number_checked(passed: bool) -> ColumnElement[bool]:
    """Whether the document's number check of its current revision passed (or, ``passed``
    False, ended otherwise)."""
    d, r = _documents.c, _check_results.c
    status = r.status == "passed" if passed else r.status != "passed"
    return (
        select(r.id)
        .where(r.document_id == d.id, r.revision == d.revision, r.code == NUMBER_CHECK, status)
        .exists()
    )


def _holds_a_number(exclude: str) -> ColumnElement[bool]:
    """A document past review holds its number; so does a draft in review now whose own
    number check passed (it came first), or that is older and not yet checked (two
    checked at once: the older wins). An abandoned draft holds nothing."""
    d = _documents.c
    passed_first = _number_checked(passed=True)
    in_review = d.submitted_revision == d.revision
    return or_(d.state != DRAFT, and_(in_review, or_(d.id < exclude, passed_first)))


# Documents sent hold their number for good: recalled or replaced too (review's
# duplicates.number counts them so), as a number is never issued twice in a year.
_HOLD_THEIR_NUMBER = (*ISSUED, RECALLED, REPLACED)


@functools.cache
def _sent_with_number(legal_normative: bool, doc_type: bool, symbol: bool) -> Prepared:
    """The query of ``sent_with_number`` for a series of this shape, built once.

    Every ``send`` asks it (twice: before its transaction and under its lock); building
    the statement and its cache key each time cost more than running it.
    """
    d = _documents.c
    where = [d.legal_normative.is_(legal_normative)]
    if doc_type:
        where.append(d.doc_type == bindparam("doc_type"))
    if symbol:
        where.append(d.symbol == bindparam("symbol"))
    return Prepared(
        select(d.id, d.state)
        .where(
            d.agency_id == bindparam("agency_id"),
            d.number == bindparam("number"),
            *where,
            func.substr(d.issued_on, 1, 4) == bindparam("year"),
            d.id != bindparam("exclude"),
            d.state.in_([bindparam(f"state_{i}", s) for i, s in enumerate(_HOLD_THEIR_NUMBER)]),
        )
        .order_by(d.id)
        .limit(1)
    )


# Statements for up to this many recipients are kept, one per count (a list of binds is
# what Prepared runs); a longer list goes through Connection.execute with an expanding IN.
_FILE_LISTS = 64


def _sent_with_file_query(organ_ids: Any, *, lineage: bool = False) -> Select[Any]:
    """``lineage``: the documents replaced are a list (``replaced``, expanding), else one."""
    replaced = (
        _dispatches.c.document_id.not_in(bindparam("replaced", expanding=True))
        if lineage
        else _dispatches.c.document_id != bindparam("replaced")
    )
    return (
        select(_dispatches.c.document_id.label("id"), _dispatches.c.organ_id)
        .join(_attachments, _attachments.c.document_id == _dispatches.c.document_id)
        .where(
            _attachments.c.sha256 == bindparam("sha256"),
            _attachments.c.role == MAIN_FILE,
            # The agency's, asked of each found by its file (a join would let SQLite start
            # from the agency's documents instead: one more per document it sent).
            select(_documents.c.id)
            .where(
                _documents.c.id == _dispatches.c.document_id,
                _documents.c.agency_id == bindparam("agency_id"),
            )
            .exists(),
            _dispatches.c.organ_id.in_(organ_ids),
            _dispatches.c.document_id != bindparam("exclude"),
            replaced,
        )
        .order_by(_dispatches.c.document_id)
        .limit(1)
    )


_SENT_WITH_FILE = _sent_with_file_query(bindparam("organ_ids", expanding=True), lineage=True)


@functools.cache
def _sent_with_file(count: int) -> Prepared:
    """``sent_with_file``'s query for ``count`` recipients, built once."""
    return Prepared(_sent_with_file_query([bindparam(f"organ_{i}") for i in range(count)]))


class DuplicateRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def hold_issuing(self, agency_id: str) -> None:
        """Wait until no other transaction judges or spends one of the agency's numbers or
        files (a send, a review verdict on a number), and hold off the next until this one
        ends: each then reads what the one before it wrote."""
        hold(self.conn, f"congvan.issuing:{agency_id}")

    def same_number(
        self, agency_id: str, number: int, series: Series, year: str, *, exclude: str
    ) -> dict[str, Any] | None:
        """Another document of the agency holding this number in ``series`` in ``year``."""
        d = _documents.c
        row = self.conn.execute(
            select(d.id, d.state, d.number, d.issued_on, d.symbol, d.doc_type, d.legal_normative)
            .where(
                d.agency_id == agency_id,
                d.number == number,
                *_in_series(series),
                func.substr(d.issued_on, 1, 4) == year,
                d.id != exclude,
                _holds_a_number(exclude),
            )
            .order_by(d.id)
            .limit(1)
        ).first()
        return dict(row._mapping) if row else None

    def sent_with_number(
        self, agency_id: str, number: int, series: Series, year: str, *, exclude: str
    ) -> dict[str, Any] | None:
        """A document of the agency already sent with this number in ``series`` in ``year``."""
        query = _sent_with_number(
            bool(series.legal_normative), series.doc_type is not None, series.symbol is not None
        )
        params = {"agency_id": agency_id, "number": number, "year": year, "exclude": exclude}
        if series.doc_type is not None:
            params["doc_type"] = series.doc_type
        if series.symbol is not None:
            params["symbol"] = series.symbol
        row = query.first(self.conn, params)
        return {"id": row[0], "state": row[1]} if row else None

    def shared_numbers(
        self, agency_id: str, from_year: str, *, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Numbers that the agency's administrative documents hold under more than one
        symbol in one year, ``from_year`` on: what one series for all would repeat.

        Held as ``same_number`` holds them: past review, or in review now, unless its own
        number check failed (a draft refused for its number holds none).
        """
        d = _documents.c
        number_refused = _number_checked(passed=False)
        year = func.substr(d.issued_on, 1, 4)
        symbols = func.count(func.distinct(d.symbol))
        rows = self.conn.execute(
            select(
                year.label("held_year"),
                d.number,
                symbols.label("symbols"),
                func.min(d.symbol).label("first_symbol"),
                func.max(d.symbol).label("last_symbol"),
            )
            .where(
                d.agency_id == agency_id,
                d.legal_normative.is_(False),
                d.number.is_not(None),
                year >= from_year,
                or_(
                    d.state != DRAFT,
                    and_(d.submitted_revision == d.revision, ~number_refused),
                ),
            )
            # By the output name: PostgreSQL binds substr's arguments anew in GROUP BY.
            .group_by(literal_column("held_year"), d.number)
            .having(symbols > 1)
            .order_by(literal_column("held_year"), d.number)
            .limit(limit)
        ).all()
        return [dict(r._mapping) for r in rows]

    def sent_with_file(
        self,
        agency_id: str,
        sha256: str,
        organ_ids: Sequence[str],
        *,
        exclude: str,
        replaced: list[str] | tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        """An earlier document of the agency whose main file, with these bytes, went to one
        of these (another agency's documents are its own business: never named here).

        ``replaced``: the documents ``exclude`` replaces, the one it names and those that
        one replaced in turn, which a replacement may repeat (its number, date or
        recipients corrected, the file the same).
        """
        if not organ_ids:
            return None
        if len(organ_ids) > _FILE_LISTS or len(replaced) > 1:
            params = {
                "agency_id": agency_id,
                "sha256": sha256,
                "organ_ids": list(organ_ids),
                "exclude": exclude,
                "replaced": list(replaced) or [""],
            }
            found = self.conn.execute(_SENT_WITH_FILE, params).first()
            row = tuple(found) if found else None
        else:
            binds = {f"organ_{i}": organ_id for i, organ_id in enumerate(organ_ids)}
            row = _sent_with_file(len(organ_ids)).first(
                self.conn,
                {
                    "agency_id": agency_id,
                    "sha256": sha256,
                    "exclude": exclude,
                    "replaced": replaced[0] if replaced else "",
                    **binds,
                },
            )
        return {"id": row[0], "organ_id": row[1]} if row else None
