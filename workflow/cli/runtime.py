"""What a command runs with: its settings, the runtime it opens and always stops, a bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, TypeVar, overload

from congvan.states.errors import InvalidInput

from ..settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine as SqlEngine
    from tqdm import tqdm

    from congvan.actions.signing.truststore import TrustStore
    from congvan.storage.clock import Clock
    from congvan.storage.unit_of_work import UnitOfWork

    from ..bootstrap import Runtime

Command = Callable[[argparse.Namespace, Settings], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_R = TypeVar("_R", bound=_Stoppable)


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings, with the global options' overrides."""
    overrides: dict[str, Any] = {}
    for option, given in (("--data-dir", "data_dir"), ("--database-url", "database_url")):
        value = getattr(args, given, None)
        if value is not None and not value.strip():  # an unset variable in a script
            raise InvalidInput(
                f"{option} is empty: name one, or leave the option out.", field=given
            )
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "database_url", None) is not None:
        overrides["database_url"] = args.database_url
    return Settings(**overrides)


@dataclass(frozen=True)
class Store:
    """The database, the clock and the trust store: all a command that reads or writes rows
    needs. No broker, engine, relay or scheduler is built."""

    db: SqlEngine
    clock: Clock
    trust: TrustStore

    def uow(self, readonly: bool = False) -> UnitOfWork:
        from congvan.storage.unit_of_work import UnitOfWork

        return UnitOfWork(self.db, readonly=readonly)

    def stop(self) -> None:
        self.db.dispose()


def open_store(settings: Settings) -> Store:
    """Connect to the migrated database of ``settings``, as :func:`bootstrap` does."""
    from congvan.actions.signing.truststore import TrustStore
    from congvan.storage.clock import utcnow
    from congvan.storage.database import make_engine
    from congvan.storage.schema import ensure_migrated

    _refuse_missing_file(settings.db_url)
    db = make_engine(
        settings.db_url, synchronous=settings.sqlite_synchronous, pool_size=settings.db_pool_size
    )
    try:
        ensure_migrated(db)
    except BaseException:
        db.dispose()
        raise
    return Store(db, utcnow, TrustStore(settings.trust_path))


def _refuse_missing_file(url: str) -> None:
    """A SQLite database no file holds yet is not migrated: said as such, before opening
    it would make the file and its folders (a command's mistyped --data-dir would leave
    an empty database behind)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from congvan.states.errors import DatabaseNotReady

    try:
        parsed = make_url(url)
    except (ValueError, ArgumentError):
        return  # not a URL: make_engine says so, in its own words
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return  # PostgreSQL, or what make_engine refuses in its own words
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return
    path = Path(parsed.database)
    if path.exists() or (path.parent.exists() and not path.parent.is_dir()):
        return  # there, or a folder that is not one: said by opening it
    raise DatabaseNotReady(
        f"There is no database at {parsed.database}: run `congvan migrate` first (or name "
        "the installation's folder with --data-dir).",
        path=parsed.database[:300],
    )


@overload
def runtime_for(settings: Settings) -> AbstractContextManager[Store]: ...
@overload
def runtime_for(settings: Settings, *, wired: Literal[True]) -> AbstractContextManager[Runtime]: ...
def runtime_for(settings: Settings, *, wired: bool = False) -> AbstractContextManager[Any]:
    """What a command runs with, stopped when the block ends.

    By default only the database, the clock and the trust store (:class:`Store`). With
    ``wired`` the whole :class:`Runtime` of :func:`bootstrap` (broker, engine, actors), of
    which the command starts what it needs: nothing starts by itself.
    """
    if not wired:
        return _stopping(open_store(settings))
    from ..bootstrap import bootstrap

    _refuse_missing_file(settings.db_url)  # as open_store does: no empty database made
    return _stopping(bootstrap(settings))


@contextmanager
def _stopping(runtime: _R) -> Iterator[_R]:
    try:
        yield runtime
    finally:
        runtime.stop()


def whole_number(what: str, low: int, high: int) -> Callable[[str], int]:
    """An argument type: a whole number from ``low`` to ``high``, else a usage error
    naming ``what`` ("a port is 0 to 65535, not 'x'")."""

    def read(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{what} is {low} to {high}, not {value!r}")
        return number

    return read


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )


def progress_bar(total: int, unit: str, progress: bool | None) -> tqdm[Any]:
    """A bar on stderr, never in the printed report; ``None`` shows it on a terminal only."""
    from tqdm import tqdm

    disable = None if progress is None else not progress
    return tqdm(total=total, unit=unit, disable=disable, file=sys.stderr)
