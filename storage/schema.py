"""Alembic migrations, applied by ``congvan migrate``; the app refuses an old schema."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from congvan.states.errors import DatabaseNotReady
from congvan.storage.database import begin_readonly, shown_url, use_wal
from congvan.storage.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

# (alembic is imported where a migration is read or run: every process checks the schema
# as it starts, and /health on each call, by one query against the latest file's name)
MIGRATIONS = Path(__file__).parent / "migrations"
# A migration's file: its revision, four digits, then its purpose ("0027_tokens_….py").
_MIGRATION_FILE = re.compile(r"(\d{4})_\w+\.py")


@functools.cache
def latest_file_revision() -> str:
    """The revision of the latest migration, read from the files' names (each names its
    revision first; tests hold this to alembic's own head)."""
    names = (_MIGRATION_FILE.fullmatch(p.name) for p in (MIGRATIONS / "versions").iterdir())
    return max(found.group(1) for found in names if found)


def at_latest(engine: Engine) -> bool:
    """Whether the database says it is at the latest revision, by one query; False for
    anything else (no such table, another revision, two rows), which the full check
    then tells apart."""
    try:
        with engine.connect() as conn, begin_readonly(conn):
            found = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except SQLAlchemyError:
        return False
    return [tuple(row) for row in found] == [(latest_file_revision(),)]


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def known_revision(engine: Engine, revision: str) -> bool:
    """Whether ``revision`` is one of this version's migrations."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config(engine))
    return any(script.revision == revision for script in scripts.walk_revisions())


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    # Reading the revision is no migration: alembic's notes on opening its context ("Context
    # impl PostgresqlImpl.") would stand before a process's own words, its refusal among them.
    notes = logging.getLogger("alembic.runtime.migration")
    level = notes.level
    notes.setLevel(max(level, logging.WARNING))
    try:
        # A reader: on SQLite, never queued behind the writers of the file
        with engine.connect() as conn, begin_readonly(conn):
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        notes.setLevel(level)


def migrate(engine: Engine, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``; returns the revision now in force.

    Refused (``DatabaseNotReady``) when a newer version made the database, or when it holds
    congvan's tables with no record of their revision: no migration can be chosen then.
    One at a time per database (``_one_at_a_time``): a second, started meanwhile (two
    containers starting together), waits for the first, then finds what it left."""
    with _one_at_a_time(engine):
        return _migrate(engine, revision)


# The PostgreSQL advisory lock a migration holds: "congvan" in ASCII, one key for all.
MIGRATION_LOCK = 0x636F6E6776616E


@contextlib.contextmanager
def _one_at_a_time(engine: Engine) -> Iterator[None]:
    """Hold the database's migration lock: on PostgreSQL a session advisory lock, on a
    SQLite file an exclusive ``flock`` of the file (apart from the POSIX locks SQLite
    takes on it, so its readers and writers never meet it). Between reading the revision
    and writing the next, another migration would run the same steps again."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            conn.commit()  # the lock is the session's: no transaction held open meanwhile
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    descriptor = os.open(database, os.O_RDWR | os.O_CREAT, 0o600)  # SQLite would create it
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # the flock goes with it


def _migrate(engine: Engine, revision: str) -> str | None:
    current = current_revision(engine)
    if current is not None:
        _refuse_unknown(engine, current)
    elif inspect(engine).has_table("agencies"):
        raise DatabaseNotReady(
            f"The database {shown_url(engine.url)} holds congvan's tables but no record of "
            "their revision (its alembic_version table is empty or gone): which migrations "
            "it had cannot be told; restore it from a backup, or write the revision back "
            "(`alembic stamp`) if you know it.",
            current=None,
        )
    elif clashing := _tables_not_made_here(engine):
        raise DatabaseNotReady(
            f"The database {shown_url(engine.url)} holds tables named as congvan's "
            f"({', '.join(clashing[:5])}) and no record of a congvan revision: another "
            "program's database; give congvan one of its own.",
            current=None,
        )
    from alembic import command

    command.upgrade(alembic_config(engine), revision)
    use_wal(engine)
    return current_revision(engine)


def _tables_not_made_here(engine: Engine) -> list[str]:
    """Tables named as congvan's in a database with no congvan revision (sorted)."""
    ours = set(metadata.tables)
    return sorted(ours & set(inspect(engine).get_table_names()))


def _refuse_unknown(engine: Engine, current: str) -> None:
    """A revision this version does not know: a newer one made the database."""
    if known_revision(engine, current):
        return
    head = head_revision(engine)
    raise DatabaseNotReady(
        f"The database {shown_url(engine.url)} is at revision {current}, which this version "
        f"of congvan does not know (it knows up to {head}): a newer version made it; run "
        "that version (or a later one), never migrate it back with this one.",
        current=current,
        head=head,
    )


def ensure_migrated(engine: Engine) -> None:
    """Raise :class:`DatabaseNotReady` unless the schema is at the latest revision."""
    if at_latest(engine):
        return
    current = current_revision(engine)
    head = head_revision(engine)
    if current != head:
        url = shown_url(engine.url)
        if current is not None:
            _refuse_unknown(engine, current)
        raise DatabaseNotReady(
            f"The database {url} is at revision {current or 'none'}, not {head}: "
            "run `congvan migrate` first.",
            current=current,
            head=head,
        )
