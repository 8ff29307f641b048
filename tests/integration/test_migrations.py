"""The migrations build exactly the schema the tables declare, and unwind to nothing.

Each test runs on an empty SQLite file and on an empty PostgreSQL database of its own (not
the migrated template the other tests copy), so it sees only what the migrations create.
"""

# Asserts read `expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from pprint import pformat
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from congvan.states.errors import DatabaseNotReady
from congvan.storage.database import make_engine
from congvan.storage.schema import (
    alembic_config,
    at_latest,
    current_revision,
    ensure_migrated,
    head_revision,
    latest_file_revision,
    migrate,
)
from congvan.storage.tables import metadata
from tests.databases import Databases


# Types are compared on both databases and come out clean: on SQLite, Alembic does not
# mistake the DATETIME it reads back for a change from DateTime(timezone=True). Server
# defaults are compared on PostgreSQL only: SQLite reads an empty-string default back as
# the text '' and Alembic reports every such column as changed.
def compare_options(engine: Engine) -> dict[str, bool]:
    return {"compare_type": True, "compare_server_default": engine.dialect.name != "sqlite"}


@pytest.fixture
def empty_db_url(databases: Databases, db_kind: str) -> str:
    """The URL of an empty database of each kind: no table, not even alembic_version."""
    return databases.empty(db_kind)


@pytest.fixture
def engine(empty_db_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_db_url)
    yield engine
    engine.dispose()


def drift(engine: Engine) -> list[Any]:
    """What autogenerate would change to bring the database to the tables' schema."""
    with engine.connect() as conn:
        return compare_metadata(
            MigrationContext.configure(conn, opts=compare_options(engine)), metadata
        )


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_the_migrations_build_the_schema_the_tables_declare(engine: Engine):
    # Given an empty database
    assert set() == table_names(engine)

    # When every migration runs
    revision = migrate(engine)

    # Then the database is at the head revision and differs from the tables in nothing
    assert head_revision(engine) == revision
    differences = drift(engine)
    assert [] == differences, "migrations and tables differ:\n" + pformat(differences)


def test_the_latest_migration_files_name_is_alembics_head_and_each_names_its_revision(
    engine: Engine,
):
    # Given the migrations, as alembic reads them
    scripts = ScriptDirectory.from_config(alembic_config(engine))

    # Then each file names its revision first, and the latest name is alembic's head (the
    # quick check every process starts with reads it so)
    for script in scripts.walk_revisions():
        assert Path(str(script.path)).name.startswith(f"{script.revision}_"), script.path
    assert latest_file_revision() == head_revision(engine)
    # And a database at the head passes that quick check, one a revision behind does not
    migrate(engine)
    assert at_latest(engine)
    command.downgrade(alembic_config(engine), "-1")
    assert not at_latest(engine)
    with pytest.raises(DatabaseNotReady, match="run `congvan migrate` first"):
        ensure_migrated(engine)


def test_downgrading_to_base_and_upgrading_again(engine: Engine):
    # Given a database migrated to the head revision
    migrate(engine)

    # When it is downgraded to base
    command.downgrade(alembic_config(engine), "base")

    # Then only alembic_version is left, naming no revision
    assert {"alembic_version"} == table_names(engine)
    assert current_revision(engine) is None

    # When it is upgraded again
    revision = migrate(engine)

    # Then it is back at the head revision with the tables' schema
    assert head_revision(engine) == revision
    differences = drift(engine)
    assert [] == differences, "migrations and tables differ:\n" + pformat(differences)


def test_a_database_a_newer_version_made_is_said_to_be_so_not_sent_to_migrate(
    engine: Engine,
) -> None:
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))

    with pytest.raises(DatabaseNotReady) as refused:
        ensure_migrated(engine)
    with pytest.raises(DatabaseNotReady) as migrating:
        migrate(engine)

    assert "newer version" in refused.value.message
    assert "congvan migrate" not in refused.value.message
    assert refused.value.details["current"] == "9999_from_the_future"
    # and `congvan migrate` itself says the same, not alembic's "Can't locate revision"
    assert migrating.value.message == refused.value.message


def test_tables_without_a_record_of_their_revision_are_not_migrated_over(
    engine: Engine,
) -> None:
    # Given a database whose alembic_version lost its row (its tables all there)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))

    # Then migrate refuses, saying why, rather than failing halfway ("table exists")
    with pytest.raises(DatabaseNotReady) as refused:
        migrate(engine)
    assert "no record of their revision" in refused.value.message


def test_another_programs_tables_named_as_ours_are_not_migrated_over(engine: Engine) -> None:
    # Given a database another program made, with a table named as one of congvan's
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE documents (x INTEGER)"))

    # Then migrate refuses, saying whose it is, rather than failing halfway ("table exists")
    with pytest.raises(DatabaseNotReady) as refused:
        migrate(engine)
    assert "another program's database" in refused.value.message
    assert "(documents)" in refused.value.message
    assert table_names(engine) == {"documents"}


def test_a_database_shared_with_another_programs_tables_is_migrated(engine: Engine) -> None:
    # Given a database holding tables of another program, none named as congvan's
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE payroll (x INTEGER)"))

    # Then congvan's tables are made beside them
    migrate(engine)
    assert {"payroll", "documents", "alembic_version"} <= table_names(engine)


def test_an_older_database_is_sent_to_migrate(engine: Engine) -> None:
    migrate(engine, "0001")
    with pytest.raises(DatabaseNotReady) as refused:
        ensure_migrated(engine)
    assert "run `congvan migrate`" in refused.value.message


def test_a_database_holding_a_request_upgrades_through_the_tables_it_rebuilds(
    engine: Engine,
) -> None:
    # Given a database at 0024 holding a received document and a recall pointing at it
    # (SQLite rebuilds received_documents at 0025: copied, the old one dropped)
    migrate(engine, "0024")
    now = "2026-12-02 01:00:00"
    rows = {
        "agencies": {"id": "000.00.11.H57", "name": "Sở Nội vụ", "abbreviation": "SNV",
                     "created_at": now, "numbering": "agency"},
        "received_documents": {
            "id": "r-1", "agency_id": "000.00.11.H57", "sender_id": "000.00.00.H57",
            "message_id": "m-1", "state": "registered", "version": 2, "audit_head": "h",
            "urgency": 0, "sender_document_id": "d-1", "symbol": "UBND-TĐKT",
            "doc_type": "CV", "subject": "V/v", "issued_on": "2026-12-01", "manifest": b"{}",
            "manifest_sha256": "m", "package_sha256": "p", "receipt": b"r",
            "receipt_cms": b"c", "reason": "", "received_at": now, "updated_at": now,
            "corrections": "{}",
        },
        "received_requests": {
            "id": "q-1", "received_id": "r-1", "kind": "recall", "message_id": "m-2",
            "reason": "Gửi nhầm", "changes": "{}", "state": "awaiting", "answer_reason": "",
            "package_sha256": "p2", "receipt": b"r", "receipt_cms": b"c", "received_at": now,
        },
    }  # fmt: skip
    with engine.begin() as conn:
        for table, row in rows.items():
            names = ", ".join(row)
            marks = ", ".join(f":{name}" for name in row)
            conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({marks})"), row)

    # When it is upgraded to the head revision
    migrate(engine)

    # Then every row is kept, each still pointing at its parent, at the tables' schema
    assert head_revision(engine) == current_revision(engine)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT received_id FROM received_requests")).scalars()
        assert ["r-1"] == list(found)
    assert [] == drift(engine)


def test_a_token_kept_from_before_its_roles_were_its_own_keeps_what_it_could_do(
    engine: Engine,
) -> None:
    # Given a database at 0026 holding a clerk and reviewer's user and two tokens of it
    migrate(engine, "0026")
    now = "2026-12-02 01:00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO agencies (id, name, abbreviation, created_at, numbering) "
                "VALUES ('000.00.11.H57', 'Sở Nội vụ', 'SNV', :now, 'agency')"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO users (id, agency_id, username, full_name, position, roles, "
                "created_at) VALUES ('u-1', '000.00.11.H57', 'van.thu', '', '', "
                "'clerk,reviewer', :now)"
            ),
            {"now": now},
        )
        for n in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO api_tokens (id, user_id, token_hash, prefix, created_at) "
                    f"VALUES ('t-{n}', 'u-1', 'h{n}', 'p{n}', :now)"
                ),
                {"now": now},
            )

    # When it is upgraded to the head revision
    migrate(engine)

    # Then each token is bound to the roles its user held
    assert head_revision(engine) == current_revision(engine)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT roles FROM api_tokens ORDER BY id")).scalars()
        assert list(found) == ["clerk,reviewer", "clerk,reviewer"]


def test_two_migrations_at_once_both_end_at_the_head(empty_db_url: str) -> None:
    # Given two processes migrating one empty database at once (containers that each run
    # `congvan migrate` as they start)
    command_line = [sys.executable, "-m", "congvan.workflow.cli"]
    runs = [
        subprocess.Popen(
            [*command_line, "--database-url", empty_db_url, "migrate"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    # Then the second waits for the first and finds the schema at its revision: neither fails
    assert [code for code, _out, _err in outcomes] == [0, 0], outcomes
    engine = make_engine(empty_db_url)
    try:
        assert current_revision(engine) == head_revision(engine)
        assert [] == drift(engine)
    finally:
        engine.dispose()
