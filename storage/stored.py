"""Rows read back to be verified: a value its column cannot hold is named, never raised.

SQLite keeps whatever SQL writes in a column -- text in a number's or a moment's, bytes in
text's, NULL anywhere its constraint is not checked again -- and someone who can write the
database can put there what SQLAlchemy's reading of the column cannot take. The rows a
verification reads (audit entries, anchors) are read here as the driver gives them; each
value is then read as its column's type reads it and must be of the kind the record holds.
The first one that is not is named (:class:`WrongKind`), so that the verification says
the row was altered instead of failing with it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from types import NoneType
from typing import Any

from sqlalchemy import Column, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import Label
from sqlalchemy.types import NullType

from congvan.states.errors import Conflict


@dataclass(frozen=True)
class WrongKind:
    """A row holding, in ``column``, a value its column's type cannot read or not of its
    kind; ``row`` is the row as the driver gave it, by column name."""

    column: str
    row: dict[str, Any]

    def number(self, name: str) -> int | None:
        """The row's ``name`` when it is a whole number (to say where it is), else None."""
        value = self.row.get(name)
        return value if type(value) is int else None


class Stored:
    """Reads rows of ``columns`` as stored: ``columns`` to select, ``read`` each row; the
    kind of each value is the type of the field of ``record`` (a dataclass) named as its
    column is."""

    def __init__(self, columns: Sequence[Column[Any]], record: type) -> None:
        self._columns = tuple(columns)
        # As the driver gives each value: no processing that could fail on a stranger's.
        self.columns: tuple[Label[Any], ...] = tuple(
            type_coerce(c, NullType()).label(c.key) for c in columns
        )
        hints = typing.get_type_hints(record)
        self._kinds = tuple(_kind(hints[c.key]) for c in columns)

    def read(self, dialect: Dialect, raw: Sequence[Any]) -> tuple[Any, ...] | WrongKind:
        """``raw``'s values as the columns' types read them, each of its kind."""
        values = []
        for column, kinds, value in zip(self._columns, self._kinds, raw, strict=True):
            processor = column.type._cached_result_processor(dialect, None)
            try:
                read = value if processor is None or value is None else processor(value)
            except Exception:  # noqa: BLE001 -- whatever a processor raises on a stranger's value
                return self._wrong(column, raw)
            if read is None and not column.nullable:
                return self._wrong(column, raw)
            if read is not None and not _of_kind(read, kinds):
                return self._wrong(column, raw)
            values.append(read)
        return tuple(values)

    def _wrong(self, column: Column[Any], raw: Sequence[Any]) -> WrongKind:
        return WrongKind(column.key, {c.key: v for c, v in zip(self._columns, raw, strict=True)})


def altered(what: str, wrong: WrongKind) -> Conflict:
    """The error for a caller that needs the row whole (an export): ``what`` was altered."""
    return Conflict(
        f"The stored {what} holds a value its column cannot ({wrong.column}): it was altered "
        "by SQL; `congvan audit verify` tells what else was.",
        column=wrong.column,
    )


def _kind(hint: Any) -> tuple[type, ...]:
    """The classes a field's type hint admits (``int | None``: int; None is the column's)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(k for a in typing.get_args(hint) if a is not NoneType for k in _kind(a))
    if hint is bytes:
        return (bytes, memoryview)
    return (typing.get_origin(hint) or hint,)


def _of_kind(value: Any, kinds: tuple[type, ...]) -> bool:
    if int in kinds and type(value) is bool:
        return False  # a bool is an int to Python, not to a column of numbers
    return isinstance(value, kinds)
