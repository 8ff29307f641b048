"""A command opens what it needs and no more, and closes it however it ends."""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import BinaryIO

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from pytest import CaptureFixture, MonkeyPatch

from congvan.actions.signing import pki
from congvan.states.errors import InvalidInput
from congvan.storage.clock import utcnow
from congvan.storage.database import make_engine
from congvan.workflow.cli import files, main, serving
from congvan.workflow.cli.runtime import Store, runtime_for
from congvan.workflow.cli.serving import _clock_agrees, _database_up
from congvan.workflow.serving import free_port
from congvan.workflow.settings import Settings
from tests.databases import Databases
from tests.servers import start_postgres


def test_commands_that_only_read_and_write_rows_never_build_a_broker(
    db_url: str, tmp_path: Path, capsys: CaptureFixture[str], monkeypatch: MonkeyPatch
) -> None:
    # Given a migrated database and a broker URL that bootstrap refuses to build
    monkeypatch.setenv("CONGVAN_BROKER_URL", "amqp://nowhere")
    cli = ["--data-dir", str(tmp_path), "--database-url", db_url]

    # When the operator adds an agency, lists it and lists the parked timers
    assert (
        main([*cli, "agencies", "add", "000.00.00.H57", "--name", "UBND", "--abbreviation", "UBND"])
        == 0
    )
    assert main([*cli, "agencies", "list"]) == 0
    assert main([*cli, "timers", "parked"]) == 0

    # Then each ran on the database alone
    out = capsys.readouterr().out
    assert "added agency 000.00.00.H57" in out
    assert "no parked timers" in out

    # And a command that sends jobs is wired by bootstrap, which builds the broker: it
    # refuses the URL in one coded line
    assert main([*cli, "audit", "anchor"]) == 2
    assert "error [invalid_input]: CONGVAN_BROKER_URL is memory://" in capsys.readouterr().err


def test_a_list_with_nothing_in_it_says_so(tmp_path: Path, capsys: CaptureFixture[str]) -> None:
    # Given a new installation: its tables, one agency
    data = ["--data-dir", str(tmp_path)]
    assert main([*data, "migrate"]) == 0
    capsys.readouterr()
    lists = [
        (["agencies", "list"], "no agencies: `congvan agencies add` adds one"),
        (["peers", "list"], "no peers"),
        (["notify", "list"], "no notification routes"),
        (["keys", "list"], "no certificates"),
        (["authorities", "list", "--agency", "000.00.00.H57"], "no signing authorities"),
        (["documents", "list", "--agency", "000.00.00.H57"], "no documents"),
        (["documents", "list", "--agency", "000.00.00.H57", "--state", "sent"],
         "no documents in sent"),
    ]  # fmt: skip
    for argv, said in lists:
        if argv[0] == "authorities":
            agency = ["000.00.00.H57", "--name", "UBND", "--abbreviation", "UBND"]
            assert main([*data, "agencies", "add", *agency]) == 0
            capsys.readouterr()

        # When each list is asked for
        assert main([*data, *argv]) == 0

        # Then it says it holds nothing, not a blank as if the command had done nothing
        assert capsys.readouterr().out == f"{said}\n", argv


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("CONGVAN_WORKING_HOURS", "25:00-26:00", "hour must be in 0..23"),
        ("CONGVAN_TIME_RULES", '{"bogus": [1]}', "unknown rules bogus"),
        ("CONGVAN_TIME_RULES", '{"deliver": [1, 2, 3, 4, 5, 6]}', "one value per urgency"),
        ("CONGVAN_EXTRA_DAYS_OFF", "2027-04-30", "not JSON"),
        ("CONGVAN_EXTRA_DAYS_OFF", "[0]", "written as a string, YYYY-MM-DD"),
        ("CONGVAN_EXTRA_WORKING_DAYS", '["2300-01-01"]', "must fall within 1901 to 2100"),
    ],
)
def test_a_time_setting_that_cannot_be_is_named_by_its_variable(
    name: str, value: str, said: str, capsys: CaptureFixture[str], monkeypatch: MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)

    assert main(["graph"]) == 2

    message, details = capsys.readouterr().err.splitlines()[:2]
    assert message.startswith("error [invalid_input]: A setting is not valid") and said in message
    assert f"{name}:" in message or f"{name} " in message
    assert json.loads(details)["settings"] == [name]


@pytest.mark.parametrize("db_kind", ["sqlite"])
def test_parked_timers_are_listed_in_vietnam_time_as_every_other_moment(
    db_url: str, tmp_path: Path, capsys: CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, text

    cli = ["--data-dir", str(tmp_path), "--database-url", db_url]
    assert main([*cli, "migrate"]) == 0
    parked = datetime(2026, 12, 4, 17, 30, tzinfo=UTC).replace(tzinfo=None)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO timers (id, kind, ref_id, due_at, payload, attempts, parked_at, "
                "last_error) VALUES ('t1', 'audit_anchor', 'audit_anchor', :at, '{}', 8, :at, 'x')"
            ),
            {"at": parked},
        )
    engine.dispose()
    capsys.readouterr()

    assert main([*cli, "timers", "parked"]) == 0

    assert "2026-12-05T00:30:00+07:00" in capsys.readouterr().out


def test_what_an_operator_can_mend_is_said_in_one_coded_line_never_a_traceback(
    tmp_path: Path, capsys: CaptureFixture[str], monkeypatch: MonkeyPatch
) -> None:
    not_sqlite = tmp_path / "junk"
    not_sqlite.mkdir()
    (not_sqlite / "congvan.db").write_bytes(b"not a database at all" * 100)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        ({"CONGVAN_LOG_LEVEL": "nope"}, ["graph"], "invalid_input"),
        ({"CONGVAN_WORKER_THREADS": "-5"}, ["graph"], "invalid_input"),
        # Past any sensible bound: a job's deadline past year 9999, a loop that never wakes
        ({"CONGVAN_JOB_DEADLINE_SECONDS": "1000000000000"}, ["graph"], "invalid_input"),
        ({"CONGVAN_RELAY_POLL_SECONDS": "inf"}, ["graph"], "invalid_input"),
        ({"CONGVAN_SCHEDULER_POLL_SECONDS": "1e300"}, ["graph"], "invalid_input"),
        ({"CONGVAN_DELIVERY_RETRY_SECONDS": "1e308"}, ["graph"], "invalid_input"),
        ({"CONGVAN_TIMER_RETRY_SECONDS": "nan"}, ["graph"], "invalid_input"),
        ({"CONGVAN_EXTRA_DAYS_OFF": '["2300-01-01"]'}, ["graph"], "invalid_input"),
        ({"CONGVAN_PUBLIC_URL": "javascript:alert(1)"}, ["graph"], "invalid_input"),
        ({"CONGVAN_PUBLIC_URL": "https://x.vn:99999"}, ["graph"], "invalid_input"),
        ({"CONGVAN_PUBLIC_URL": "https://u:secret@x.vn"}, ["graph"], "invalid_input"),
        ({"CONGVAN_PUBLIC_URL": "https://[::1"}, ["graph"], "invalid_input"),
        # A timestamp authority or mail server no connection could be made to
        ({"CONGVAN_TSA_URL": "https://tsa.vn:99999/tsr"}, ["graph"], "invalid_input"),
        ({"CONGVAN_TSA_URL": "tsa.vn/tsr"}, ["graph"], "invalid_input"),
        ({"CONGVAN_TSA_URL": "https://tsa.vn/t sr"}, ["graph"], "invalid_input"),
        ({"CONGVAN_TSA_URL": "http://tsa.vn:0/tsr"}, ["graph"], "invalid_input"),
        ({"CONGVAN_SMTP_FROM": "not an address"}, ["graph"], "invalid_input"),
        ({"CONGVAN_SMTP_FROM": "a@hue.vn, b@hue.vn"}, ["graph"], "invalid_input"),
        ({"CONGVAN_SMTP_CA_FILE": str(tmp_path / "no-ca.pem")}, ["graph"], "invalid_input"),
        # Limits past what any request or page could be (a page size past SQLite's integers)
        ({"CONGVAN_MAX_PAGE_SIZE": "99999999999999999999999"}, ["graph"], "invalid_input"),
        ({"CONGVAN_MAX_REQUEST_BYTES": "1e30"}, ["graph"], "invalid_input"),
        ({"CONGVAN_BODY_MIN_BYTES_PER_SECOND": str(1 << 40)}, ["graph"], "invalid_input"),
        ({"CONGVAN_SMTP_HOST": "smtp://mail.vn"}, ["graph"], "invalid_input"),
        ({"CONGVAN_SMTP_HOST": "mail server.vn"}, ["graph"], "invalid_input"),
        ({"CONGVAN_SMTP_HOST": "mail..vn"}, ["graph"], "invalid_input"),
        # A Redis URL no connection can be made from, said before any process starts
        ({"CONGVAN_BROKER_URL": "redis://:secret@127.0.0.1:99999/0"}, ["worker"], "invalid_input"),
        ({"CONGVAN_BROKER_URL": "redis://:secret@[::1/0"}, ["scheduler"], "invalid_input"),
        ({"CONGVAN_BROKER_URL": "redis://:secret@h:port/0"}, ["worker"], "invalid_input"),
        ({"CONGVAN_BROKER_URL": "redis://:secret@127.0.0.1/db"}, ["worker"], "invalid_input"),
        # Bytes that are not UTF-8 in a variable (handed on as lone surrogates): named, the
        # value never said
        ({"CONGVAN_DATA_DIR": "/tmp/\udcff\udcfe"}, ["graph"], "invalid_encoding"),
        ({"CONGVAN_KEY_PASSPHRASE": "secret\udcff"}, ["graph"], "invalid_encoding"),
        # A read where no database is: said, and nothing made there
        ({}, ["--data-dir", str(tmp_path / "typo" / "a"), "agencies", "list"],
         "database_not_migrated"),
        ({"CONGVAN_DATABASE_URL": f"sqlite:///{tmp_path}/none/x.db"}, ["agencies", "list"],
         "database_not_migrated"),
        # Commands that wire the whole runtime (its broker, its actors) as well
        *(
            ({}, ["--data-dir", str(tmp_path / "typo" / "b"), *argv], "database_not_migrated")
            for argv in (
                ["time-rules", "show", "000.00.00.H57"], ["audit", "anchor"],
                ["escalations", "claim", "e1", "--user", "u"],
                ["documents", "recall", "d1", "--reason", "r", "--as", "u"],
            )
        ),
        # A process apart on the embedded broker is refused before its database is asked
        *(
            ({}, ["--data-dir", str(tmp_path / "typo" / "b"), argv], "invalid_input")
            for argv in ("worker", "scheduler")
        ),
        ({"CONGVAN_DATABASE_URL": "postgresql://u:secret@[::1"}, ["migrate"], "invalid_input"),
        # not a URL, for a command that opens the store without migrating it
        *(
            ({"CONGVAN_DATABASE_URL": "postgresql://u:secret@[::1/db"}, argv, "invalid_input")
            for argv in (["peers", "list"], ["stuck"], ["timers", "parked"])
        ),
        ({"CONGVAN_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/x"}, ["agencies", "list"],
         "database_unavailable"),
        # Another database or driver, SQLite in memory, an option its driver cannot take
        ({"CONGVAN_DATABASE_URL": "mysql://u:secret@127.0.0.1/x"}, ["migrate"], "invalid_input"),
        ({"CONGVAN_DATABASE_URL": "postgresql+asyncpg://u:secret@h/x"}, ["migrate"],
         "invalid_input"),
        ({"CONGVAN_DATABASE_URL": "sqlite+aiosqlite:///x.db"}, ["migrate"], "invalid_input"),
        ({"CONGVAN_DATABASE_URL": "sqlite://"}, ["migrate"], "invalid_input"),
        ({"CONGVAN_DATABASE_URL": "sqlite:///:memory:"}, ["agencies", "list"], "invalid_input"),
        ({"CONGVAN_DATABASE_URL": "sqlite:///file:x?mode=memory&uri=true"}, ["migrate"],
         "invalid_input"),
        ({"CONGVAN_DATABASE_URL": f"sqlite:///{tmp_path}/x.db?timeout=abc"}, ["migrate"],
         "invalid_input"),
        # SQLite options SQLAlchemy would drop with a warning, or take to no good here
        *(
            ({"CONGVAN_DATABASE_URL": f"sqlite:///{tmp_path}/x.db?{query}"}, ["migrate"],
             "invalid_input")
            for query in ("mode=ro&bogus=1", "timeout=5", "uri=true&mode=ro")
        ),
        ({"CONGVAN_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/x?bogus=1"}, ["migrate"],
         "invalid_input"),
        ({}, ["--data-dir", str(not_sqlite), "agencies", "list"], "database_unavailable"),
        ({}, ["--data-dir", str(a_file), "agencies", "list"], "invalid_input"),
        ({}, ["keys", "trust", str(tmp_path / "missing.pem")], "invalid_input"),
        ({}, ["keys", "trust", str(tmp_path)], "invalid_input"),
        ({}, ["audit", "verify", ""], "invalid_input"),
        ({}, ["audit", "verify", "no-such-document"], "not_found"),
        ({}, ["audit", "verify", "--known", "junk"], "invalid_input"),
        ({}, ["audit", "verify", "--known", f"000.00.00.H57:{'9' * 30}:{'0' * 64}"],
         "invalid_input"),
        ({}, ["tokens", "revoke", "nope"], "not_found"),
        # The demo makes its own installations: a database named for it is not taken
        ({}, ["demo", "--database-url", f"sqlite:///{tmp_path}/demo.db"], "invalid_input"),
        ({}, ["--database-url", f"sqlite:///{tmp_path}/demo.db", "demo"], "invalid_input"),
        ({}, ["tokens", "create", "--agency", "h37.02.02", "--role", "clerk"], "invalid_input"),
        ({}, ["time-rules", "show", "000.00.99.H57"], "not_found"),
        ({}, ["authorities", "list", "--agency", "000.00.99.H57"], "not_found"),
        ({}, ["escalations", "list", "000.00.99.H57"], "not_found"),
        ({}, ["escalations", "list", "000.00.00.H57", "--limit", "0"], "invalid_input"),
        ({}, ["escalations", "list", "000.00.00.H57", "--limit", "-5"], "invalid_input"),
        ({}, ["stuck", "--agency", "000.00.99.H57"], "not_found"),
        ({}, ["keys", "list", "--agency", "000.00.99.H57"], "not_found"),
        ({}, ["stuck", "--agency", "bad agency"], "not_found"),
        ({}, ["notify", "dead-letters", "--agency", "000.00.99.H57"], "not_found"),
        ({}, ["notify", "list", "000.00.99.H57"], "not_found"),
        ({}, ["timers", "retry", "ab\ncd"], "not_found"),
        # Names for a certificate that no certificate can hold, or that a terminal obeys
        *(
            ({"CONGVAN_KEY_PASSPHRASE": "p" * 12},
             ["keys", "init-ca", "--name", name, "--organization", organization], "invalid_input")
            for name, organization in (
                ("CA\x1b[31mRED", "UBND"), ("CA\u202eAC", "UBND"), ("CA", "U\u200bB"),
                (" ", "UBND"), ("Thừa Thiên Huế " * 5, "UBND"),
            )
        ),
        # A device, read past what a file of its kind holds, is refused, not read for ever
        ({}, ["keys", "import", "/dev/zero", "--kind", "root"], "payload_too_large"),
        ({}, ["keys", "trust", "/dev/zero"], "payload_too_large"),
        ({}, ["keys", "import-crl", "/dev/zero"], "payload_too_large"),
        ({}, ["peers", "import", "/dev/zero"], "payload_too_large"),
        ({}, ["keys", "import", str(a_file), "--kind", "root", "--password-file", "/dev/zero"],
         "payload_too_large"),
    ]  # fmt: skip
    assert main(["--data-dir", str(tmp_path / "d"), "migrate"]) == 0
    capsys.readouterr()
    for env, argv, code in cases:
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            args = argv if argv[0] == "--data-dir" else ["--data-dir", str(tmp_path / "d"), *argv]
            assert main(args) == 2, (env, argv)
        err = capsys.readouterr().err
        said = [line for line in err.splitlines() if not line.startswith('{"event": ')]
        assert said[0].startswith(f"error [{code}]:"), (env, argv, err)  # past a process's logs
        assert "secret" not in err and "Traceback" not in err, (env, argv, err)
        assert "secret" not in err and "Traceback" not in err
    assert not (tmp_path / "typo").exists() and not (tmp_path / "none").exists()


@pytest.mark.parametrize("argv", [["migrate"], ["agencies", "list"]])
def test_a_database_of_a_later_version_is_said_in_one_coded_line(
    tmp_path: Path, capsys: CaptureFixture[str], argv: list[str]
) -> None:
    # Given a database a later version migrated, at a revision this one does not know
    data = ["--data-dir", str(tmp_path)]
    assert main([*data, "migrate"]) == 0
    engine = make_engine(f"sqlite:///{tmp_path}/congvan.db")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    engine.dispose()
    capsys.readouterr()

    # When a command opens it, it says so in one coded line, never a traceback
    assert main([*data, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error [database_not_migrated]:"), err
    assert "does not know" in err and "Traceback" not in err


def test_the_store_is_stopped_when_the_command_fails(
    db_url: str, tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    stopped: list[Store] = []
    stop = Store.stop

    def recording_stop(self: Store) -> None:
        stopped.append(self)
        stop(self)

    monkeypatch.setattr(Store, "stop", recording_stop)
    settings = Settings(data_dir=tmp_path, database_url=db_url)

    with pytest.raises(RuntimeError), runtime_for(settings) as store:
        raise RuntimeError("the command failed")

    assert [store] == stopped


# The years reckoned with end in 2100, and the demo's CA is valid ten years from its start
REFUSED_STARTS = [
    "9999-12-31T23:59:00+07:00",
    "2100-06-01T09:00:00+07:00",
    "2091-01-03T07:00:00+07:00",
    "1999-12-31T23:00:00+00:00",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59-01:00",  # in UTC, past the last year a moment can have
    "0001-01-01T00:00:00+01:00",  # in UTC, before the first
    "soon",
]


def test_the_demo_never_writes_into_the_installation_the_environment_names(
    tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    from congvan.workflow.demo.run import _DemoSettings

    # Given an operator's environment naming their installation's database and trust folder
    theirs = tmp_path / "theirs"
    monkeypatch.setenv("CONGVAN_DATABASE_URL", f"sqlite:///{theirs / 'congvan.db'}")
    monkeypatch.setenv("CONGVAN_TRUST_DIR", str(theirs / "trust"))
    monkeypatch.setenv("CONGVAN_DATA_DIR", str(theirs))

    # When the demo makes the settings of one of its installations (as install() does)
    ours = tmp_path / "demo" / "province"
    settings = _DemoSettings(data_dir=ours)

    # Then they are the demo folder's, whatever the environment says
    assert settings.db_url == f"sqlite:///{ours / 'congvan.db'}"
    assert settings.trust_path == ours / "trust"


@pytest.mark.parametrize("start", REFUSED_STARTS)
def test_the_demo_refuses_a_start_it_cannot_play_from(
    start: str, capsys: CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["demo", "--start", start])
    assert refused.value.code == 2
    assert "--start" in capsys.readouterr().err


@pytest.mark.parametrize("db_kind", ["sqlite"])
def test_an_api_only_server_on_the_embedded_broker_says_where_its_work_waits(
    db_url: str, tmp_path: Path, capsys: CaptureFixture[str], monkeypatch: MonkeyPatch
) -> None:
    import uvicorn

    from congvan.workflow import serving

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_kw: served.append(app))
    # Once ready, before it serves, the process leaves what it loaded out of the GC's passes
    # (recorded here instead: a freeze would keep this test process's garbage for good).
    monkeypatch.setattr(serving, "freeze_loaded", lambda: served.append("frozen"))
    cli = ["--data-dir", str(tmp_path), "--database-url", db_url]

    assert 0 == main([*cli, "serve", "--no-workers"])
    said = capsys.readouterr().err
    assert 0 == main([*cli, "serve"])

    assert ["frozen", "frozen"] == served[0::2]
    assert 4 == len(served)
    assert "API only, on the embedded broker" in said
    assert "API only" not in capsys.readouterr().err


def test_a_process_that_signs_in_the_background_will_not_start_unable_to_unlock_its_keys(
    tmp_path: Path, monkeypatch: MonkeyPatch, capsys: CaptureFixture[str]
) -> None:
    # Given an installation whose agency has its organisational key, stored encrypted
    data = ["--data-dir", str(tmp_path / "d")]
    monkeypatch.setenv("CONGVAN_KEY_PASSPHRASE", "đúng mật khẩu")
    for argv in (
        ["migrate"],
        ["agencies", "add", "000.00.00.H57", "--name", "UBND tỉnh", "--abbreviation", "UBND"],
        ["keys", "init-ca", "--name", "CA tỉnh", "--organization", "UBND tỉnh"],
        ["keys", "issue-agency", "--agency", "000.00.00.H57"],
    ):
        assert main([*data, *argv]) == 0, argv
    capsys.readouterr()

    # When serve, a worker or the scheduler starts with no passphrase, or a wrong one
    monkeypatch.setenv("CONGVAN_BROKER_URL", "redis://127.0.0.1:1/0")  # never reached
    for passphrase, says in (("", "Set CONGVAN_KEY_PASSPHRASE"), ("sai", "does not unlock")):
        monkeypatch.setenv("CONGVAN_KEY_PASSPHRASE", passphrase)
        for command in ("serve", "worker", "scheduler"):
            # Then it refuses at once, saying which variable, instead of failing every job
            assert main([*data, command]) == 2, (command, passphrase)
            err = capsys.readouterr().err
            [line] = [x for x in err.splitlines() if x.startswith("error [")]  # logs beside
            assert line.startswith("error [invalid_input]:") and says in line, (command, err)
            assert "Traceback" not in err

    def started(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("started although it cannot do its work")

    monkeypatch.setattr("congvan.workflow.cli.serving._wait_for_signal", started)
    monkeypatch.setattr("uvicorn.run", started)

    # And so a process running the scheduler (which republishes the CRL with the CA key)
    # when the CA key does not open with the CA's passphrase, naming that setting
    monkeypatch.setenv("CONGVAN_KEY_PASSPHRASE", "đúng mật khẩu")
    monkeypatch.setenv("CONGVAN_CA_KEY_PASSPHRASE", "sai mật khẩu CA")
    for command, broker in (("serve", "memory://"), ("scheduler", "redis://127.0.0.1:1/0")):
        monkeypatch.setenv("CONGVAN_BROKER_URL", broker)
        assert main([*data, command]) == 2, command
        err = capsys.readouterr().err
        [line] = [x for x in err.splitlines() if x.startswith("error [")]
        assert line.startswith("error [invalid_input]:"), (command, err)
        assert "CONGVAN_CA_KEY_PASSPHRASE" in line and "CRL" in line, (command, err)
    monkeypatch.delenv("CONGVAN_CA_KEY_PASSPHRASE")
    monkeypatch.setenv("CONGVAN_BROKER_URL", "redis://127.0.0.1:1/0")

    # And so when its trust folder is mistyped (no root in it), or anyone may change it
    # (a process that starts regardless fails here at once, instead of running on)
    monkeypatch.setenv("CONGVAN_KEY_PASSPHRASE", "đúng mật khẩu")
    open_to_all = tmp_path / "d" / "trust"
    open_to_all.chmod(0o777)
    for folder, says in ((tmp_path / "trsut", "holds no root"), (open_to_all, "0777")):
        monkeypatch.setenv("CONGVAN_TRUST_DIR", str(folder))
        for command in ("serve", "worker", "scheduler"):
            assert main([*data, command]) == 2, (command, folder)
            err = capsys.readouterr().err
            [line] = [x for x in err.splitlines() if x.startswith("error [")]
            assert line.startswith("error [invalid_input]:") and says in line, (command, err)


def test_a_user_is_named_in_one_line_of_bounded_text_or_refused(
    tmp_path: Path, capsys: CaptureFixture[str]
) -> None:
    # A name goes into tokens, logs and (a signer's) certificate, which bounds it to 64
    data = ["--data-dir", str(tmp_path)]
    assert main([*data, "migrate"]) == 0
    agency = ["--agency", "000.00.00.H57"]
    add = ["agencies", "add", "000.00.00.H57", "--name", "UBND tỉnh", "--abbreviation", "UBND"]
    assert main([*data, *add]) == 0
    capsys.readouterr()
    cases = [
        (["--user", "u" * 40_000], "field_too_long"),
        (["--user", "van\nthu"], "invalid_input"),
        (["--user", " vanthu"], "invalid_input"),
        (["--user", "pct", "--full-name", "Nguyễn " * 20], "field_too_long"),
        # 53 letters, 72 bytes: more than a certificate's common name holds
        (
            [
                "--user",
                "pct",
                "--full-name",
                "Tôn Nữ Thị Hoàng Khuê Nguyễn Phước Thừa Thiên Huế Đà",
            ],
            "field_too_long",
        ),
        (["--user", "pct", "--full-name", "Nguyễn Văn\u202e Phương"], "invalid_input"),
        (["--user", "pct", "--position", "P" * 65], "field_too_long"),
    ]
    for extra, code in cases:
        assert main([*data, "tokens", "create", *agency, "--role", "signer", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith(f"error [{code}]:") and "Traceback" not in err, (extra, err)
    # Nothing was made by any of them; a proper one is
    assert main([*data, "tokens", "create", *agency, "--role", "signer", "--user", "pct"]) == 0


def test_a_pkcs12_password_is_read_from_a_file_or_the_environment_never_an_argument(
    tmp_path: Path, capsys: CaptureFixture[str], monkeypatch: MonkeyPatch
) -> None:
    root = pki.create_ca("Root", "PKI", passphrase="x" * 12, valid_from=utcnow(), valid_days=30)
    key = pki.load_private_key(root.key_pem, "x" * 12)
    p12 = tmp_path / "root.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"root", key, root.certificate, None, BestAvailableEncryption("mật khẩu".encode())
        )
    )
    (tmp_path / "password").write_text("mật khẩu\n", encoding="utf-8")
    data = ["--data-dir", str(tmp_path / "d")]
    assert main([*data, "migrate"]) == 0
    importing = [*data, "keys", "import", str(p12), "--kind", "root"]

    # As an argument: refused, saying where it goes
    assert main([*importing, "--password", "mật khẩu"]) == 2
    assert "--password-file" in capsys.readouterr().err
    # A wrong one says what it may be
    (tmp_path / "wrong").write_text("sai\n", encoding="utf-8")
    capsys.readouterr()
    assert main([*importing, "--password-file", str(tmp_path / "wrong")]) == 2
    assert "right password" in capsys.readouterr().err
    # From a file's first line, or from the environment
    assert main([*importing, "--password-file", str(tmp_path / "password")]) == 0
    monkeypatch.setenv("CONGVAN_P12_PASSWORD", "mật khẩu")
    assert main([*data, "keys", "trust", str(p12)]) == 0


def test_names_typed_decomposed_at_the_command_line_are_kept_in_nfc(tmp_path: Path) -> None:
    # Given an agency, a signer's name and position typed decomposed (macOS, some input
    # methods), as the API keeps them: one way
    import unicodedata

    def nfd(text: str) -> str:
        return unicodedata.normalize("NFD", text)

    data = ["--data-dir", str(tmp_path)]
    assert main([*data, "migrate"]) == 0
    name, abbreviation = "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND"
    add = ["agencies", "add", "000.00.00.H57", "--name", nfd(name), "--abbreviation", "UBND"]
    assert main([*data, *add]) == 0
    person = ["--full-name", nfd("Nguyễn Văn Phương"), "--position", nfd("Phó Chủ tịch")]
    token = ["tokens", "create", "--agency", "000.00.00.H57", "--role", "signer", "--user"]
    assert main([*data, *token, "pct", *person]) == 0

    # Then what is kept is NFC, the same text as typed precomposed
    with runtime_for(Settings(data_dir=tmp_path)) as runtime, runtime.uow(readonly=True) as uow:
        agency = uow.agencies.agency("000.00.00.H57")
        user = uow.agencies.user("000.00.00.H57", "pct")
    assert agency is not None and (agency.name, agency.abbreviation) == (name, abbreviation)
    assert user is not None and (user.full_name, user.position) == (
        "Nguyễn Văn Phương",
        "Phó Chủ tịch",
    )


@pytest.mark.parametrize(
    ("skew", "deadline", "refused"),
    [(0, 300, False), (20, 300, False), (-120, 300, True), (120, 300, True), (20, 8, True)],
)
def test_a_process_whose_clock_differs_from_the_databases_will_not_start(
    databases: Databases, skew: int, deadline: int, refused: bool
) -> None:
    # Given a PostgreSQL server, and a process whose clock is ``skew`` seconds off it,
    # with jobs leased ``deadline`` seconds (a quarter of it allowed, 30 s at most)
    engine = make_engine(databases.new("postgres").url)
    settings = Settings(job_deadline_seconds=deadline, delivery_lease_seconds=660)
    runtime = SimpleNamespace(
        db=engine, settings=settings, clock=lambda: utcnow() + timedelta(seconds=skew)
    )
    try:
        # When it starts: refused when its leases would be judged wrong elsewhere
        if not refused:
            _clock_agrees(runtime)  # type: ignore[arg-type]
            return
        with pytest.raises(InvalidInput) as caught:
            _clock_agrees(runtime)  # type: ignore[arg-type]
        assert caught.value.details["field"] == "clock"
        assert ("ahead of" if skew > 0 else "behind") in caught.value.message
    finally:
        engine.dispose()


def test_a_read_leaves_another_programs_database_file_as_it_was(
    tmp_path: Path, capsys: CaptureFixture[str]
) -> None:
    # Given a data folder whose database file is another program's
    path = tmp_path / "congvan.db"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE notes (x INTEGER)")
    other.close()
    before = path.read_bytes()

    # When a command reads it
    assert main(["--data-dir", str(tmp_path), "documents", "list", "--agency", "X"]) == 2

    # Then it is refused, and the file is byte for byte as it was (no journal mode written)
    assert "error [database_not_migrated]" in capsys.readouterr().err
    assert path.read_bytes() == before
    # While `migrate` beside it, in a database of congvan's own, makes it in WAL mode
    own = tmp_path / "own"
    assert main(["--data-dir", str(own), "migrate"]) == 0
    with sqlite3.connect(own / "congvan.db") as made_here:
        assert made_here.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    made_here.close()


def test_a_vietnamese_public_url_is_named_as_certificates_name_it() -> None:
    settings = Settings(public_url="https://congvan.thừathiênhuế.vn:8443/base")
    assert settings.public_url == "https://congvan.xn--thathinhu-q4a4215f3oa.vn:8443/base"
    assert settings.crl_url.startswith(settings.public_url)


def test_a_data_dir_set_empty_is_refused_not_taken_for_the_current_folder(
    tmp_path: Path, capsys: CaptureFixture[str], monkeypatch: MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONGVAN_DATA_DIR", "")
    assert main(["migrate"]) == 2
    assert "CONGVAN_DATA_DIR is empty" in capsys.readouterr().err
    assert [] == list(tmp_path.iterdir())
    # The option given empty (an unset variable in a script) is named as the option
    monkeypatch.delenv("CONGVAN_DATA_DIR")
    for option in ("--data-dir", "--database-url"):
        assert main([option, " ", "migrate"]) == 2
        said = capsys.readouterr().err
        assert f"error [invalid_input]: {option} is empty" in said and "CONGVAN_" not in said
    assert [] == list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"CONGVAN_SEND_CUTOFF": "06:00"}, ["CONGVAN_SEND_CUTOFF", "CONGVAN_WORKING_HOURS"]),
        (
            {"CONGVAN_TIME_RULES": '{"register_grace": [600, 600, 600, 600, 600]}'},
            ["CONGVAN_TIME_RULES", "CONGVAN_WORKING_HOURS"],
        ),
    ],
)
def test_settings_at_odds_with_the_working_day_are_named_and_no_other(
    tmp_path: Path,
    capsys: CaptureFixture[str],
    monkeypatch: MonkeyPatch,
    variables: dict[str, str],
    named: list[str],
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert main(["--data-dir", str(tmp_path), "agencies", "list"]) == 2
    said = capsys.readouterr().err
    assert json.loads(said.splitlines()[-1])["settings"] == named, said


class _FullDisk:
    """A file on a disk with no room left: every write is refused."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> object:
        return getattr(self.file, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def test_a_full_disk_is_said_in_one_line_and_leaves_nothing_half_done(
    tmp_path: Path, capsys: CaptureFixture[str], monkeypatch: MonkeyPatch
) -> None:
    # Given an installation with its certification authority (one CRL published)
    monkeypatch.setenv("CONGVAN_KEY_PASSPHRASE", "a passphrase for the test")
    cli = ["--data-dir", str(tmp_path / "d")]
    assert main([*cli, "migrate"]) == 0
    assert main([*cli, "keys", "init-ca", "--name", "CA", "--organization", "UBND"]) == 0
    settings = Settings(data_dir=tmp_path / "d")

    def crls() -> int:
        """The number the next CRL would take: one more for each published."""
        with runtime_for(settings) as store, store.uow(readonly=True) as uow:
            [root] = [c for c in uow.signatures.certificates() if c.kind == "root"]
            return uow.signatures.next_crl_number(root.fingerprint)

    published = crls()
    capsys.readouterr()

    # When a CRL is written to a disk with no room left
    opened = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda *a, **k: _FullDisk(opened(*a, **k)))
    out = tmp_path / "ca.crl"
    assert main([*cli, "keys", "crl", "--out", str(out)]) == 2

    # Then it is said in one coded line; no file is left, and no new CRL was published
    err = capsys.readouterr().err
    assert err.startswith("error [unavailable]: Reading or writing failed: No space left")
    assert "Traceback" not in err
    assert [] == list(tmp_path.glob("*.crl")) + list(tmp_path.glob(".*.part"))
    assert published == crls()


def test_a_report_printed_to_a_full_disk_is_said_in_one_line() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "congvan.workflow.cli", "graph"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert 2 == done.returncode, done.stderr
    assert done.stderr.startswith("error [unavailable]: Reading or writing failed: No space")
    assert "Traceback" not in done.stderr


def test_a_row_another_change_added_meanwhile_is_said_as_already_exists(
    tmp_path: Path, capsys: CaptureFixture[str], monkeypatch: MonkeyPatch
) -> None:
    # Given a command whose insert meets the unique key of a row another process just added
    import sqlite3

    import sqlalchemy.exc

    from congvan.workflow import directory

    def raced(*_args: object, **_kwargs: object) -> None:
        orig = sqlite3.IntegrityError("UNIQUE constraint failed: agencies.id")
        orig.sqlite_errorname = "SQLITE_CONSTRAINT_PRIMARYKEY"
        raise sqlalchemy.exc.IntegrityError("INSERT INTO agencies ...", {}, orig)

    assert main(["--data-dir", str(tmp_path), "migrate"]) == 0
    monkeypatch.setattr(directory, "add_agency", raced)
    capsys.readouterr()

    # When it runs, then it says so in one coded line, not as a database that is down
    code = main(["--data-dir", str(tmp_path), "agencies", "add", "000.00.00.H57",
                 "--name", "UBND", "--abbreviation", "UBND"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error [already_exists]:"), err


def test_a_demo_begun_late_in_the_day_plays_from_that_morning() -> None:
    from datetime import datetime

    from congvan.states.timeliness import VIETNAM
    from congvan.workflow.demo.run import morning_of_a_late_start

    # Before the last half hour of a day (Vietnam time), it plays from now
    assert morning_of_a_late_start(datetime(2026, 12, 31, 23, 29, tzinfo=VIETNAM)) is None
    assert morning_of_a_late_start(datetime(2026, 12, 31, 9, 0, tzinfo=VIETNAM)) is None
    # After, from that morning: its letter dated and reviewed the same day, and what it
    # issues (certificates first) valid at once in real time, for commands run afterwards
    late = datetime(2026, 12, 31, 23, 59, 40, tzinfo=VIETNAM)
    assert morning_of_a_late_start(late) == datetime(2026, 12, 31, 7, 30, tzinfo=VIETNAM)


def test_checking_the_schema_says_nothing_before_a_processs_own_words(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from congvan.storage.database import make_engine
    from congvan.storage.schema import ensure_migrated, migrate

    engine = make_engine(db_url)
    migrate(engine)
    caplog.clear()
    with caplog.at_level("INFO"):
        ensure_migrated(engine)
    engine.dispose()

    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


@pytest.mark.parametrize(
    ("before", "after", "taken"),
    [
        (["--data-dir", "/a"], [], "/a"),
        ([], ["--data-dir", "/b"], "/b"),
        (["--data-dir", "/a"], ["--data-dir=/b"], "/b"),
        ([], [], None),
    ],
)
def test_the_installations_options_are_taken_before_or_after_the_command(
    before: list[str], after: list[str], taken: str | None
) -> None:
    # Given the folder named before the command, after it (as `congvan demo --data-dir D`
    # reads), both (the later one wins), or neither
    from congvan.workflow.cli import build_parser

    parser = build_parser()
    for command in (["demo"], ["peers", "list"]):
        args = parser.parse_args([*before, *command, *after])
        # Then the command reads that folder, and the database URL stays unset
        assert (args.data_dir, args.database_url) == (taken, None), command


def test_every_commands_help_opens_with_what_it_does() -> None:
    # Given every command and sub-command of the command line
    import argparse

    from congvan.workflow.cli import build_parser

    def commands(
        parser: argparse.ArgumentParser, path: str
    ) -> list[tuple[str, argparse.ArgumentParser]]:
        found = [(path, parser)]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found += commands(child, f"{path} {name}")
        return found

    every = commands(build_parser(), "congvan")
    # Then each one's --help says what it does, as one sentence, before its options
    assert len(every) > 60
    undescribed = [path for path, parser in every if not parser.description]
    assert [] == undescribed
    for path, parser in every:
        assert parser.description is not None and parser.description.endswith("."), path
        assert not parser.description.endswith(".."), path


def test_a_redis_that_refuses_the_broker_url_is_refused_at_start(
    tmp_path: Path, monkeypatch: MonkeyPatch, capsys: CaptureFixture[str], redis_server: str
) -> None:
    # Given an installation, and a broker URL naming a database its Redis does not have
    data = ["--data-dir", str(tmp_path / "d")]
    assert main([*data, "migrate"]) == 0
    capsys.readouterr()
    host = redis_server.rsplit("/", 1)[0]
    monkeypatch.setenv("CONGVAN_BROKER_URL", f"{host}/99")

    def started(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("started on a broker that refuses it")

    monkeypatch.setattr("congvan.workflow.cli.serving._wait_for_signal", started)
    monkeypatch.setattr("uvicorn.run", started)
    for command in ("worker", "scheduler", "serve"):
        # When a process that uses the broker starts
        assert main([*data, command]) == 2, command

        # Then it refuses at once, saying what the server said, never the URL
        err = capsys.readouterr().err
        [line] = [x for x in err.splitlines() if x.startswith("error [")]
        assert line.startswith("error [invalid_input]:") and "DB index" in line, (command, err)
        assert "Traceback" not in err


def test_a_process_waits_for_a_database_server_not_up_yet_and_goes_on_once_it_is(
    tmp_path: Path,
) -> None:
    # Given the address of a PostgreSQL server that is not up yet (containers starting
    # together)
    port = free_port()
    settings = Settings(
        data_dir=tmp_path, database_url=f"postgresql://postgres@127.0.0.1:{port}/postgres"
    )
    waited = threading.Event()
    ended: list[BaseException | None] = []

    def start() -> None:
        try:
            _database_up(settings)
            ended.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            ended.append(exc)

    # When a process starts on it, it waits, saying so once...
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serving, "DATABASE_WAIT_SECONDS", 0.1)
        patch.setattr(serving.log, "warning", lambda *a, **k: waited.set())
        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        assert waited.wait(30) and thread.is_alive() and not ended
        # ...and goes on as soon as the server takes connections
        with start_postgres(tmp_path, port=port):
            thread.join(timeout=60)
    assert ended == [None]


def test_a_database_server_that_refuses_the_process_is_said_at_once_never_waited_for(
    postgres_server: str, tmp_path: Path, capsys: CaptureFixture[str], monkeypatch: MonkeyPatch
) -> None:
    # A database the server does not have, a role it does not know: its FATAL answer
    base = postgres_server.rsplit("@", 1)[1].rsplit("/", 1)[0]

    def waits(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("waited for a server that refused the process")

    monkeypatch.setattr(serving.log, "warning", waits)  # fails here, never hangs
    for url in (f"postgresql://postgres@{base}/no_such_db", f"postgresql://nobody@{base}/x"):
        monkeypatch.setenv("CONGVAN_DATABASE_URL", url)
        monkeypatch.setenv("CONGVAN_BROKER_URL", "redis://127.0.0.1:1/0")
        assert main(["--data-dir", str(tmp_path), "scheduler"]) == 2
        said = capsys.readouterr().err
        assert "error [database_unavailable]" in said, said


def test_a_crl_address_on_this_machine_is_said_as_it_came(
    tmp_path: Path, capsys: CaptureFixture[str]
) -> None:
    from congvan.workflow.cli.keys import _warn_if_crl_here

    _warn_if_crl_here(Settings(data_dir=tmp_path))  # unset: the default, on loopback
    assert "set CONGVAN_PUBLIC_URL" in capsys.readouterr().err
    _warn_if_crl_here(Settings(data_dir=tmp_path, public_url="http://127.0.0.1:9000"))
    said = capsys.readouterr().err
    assert "CONGVAN_PUBLIC_URL names this machine" in said and "set CONGVAN" not in said
    _warn_if_crl_here(Settings(data_dir=tmp_path, public_url="https://congvan.example.vn"))
    assert capsys.readouterr().err == ""


def test_a_process_checking_its_schema_logs_no_line_of_alembics_own() -> None:
    from congvan.workflow.logs import configure_logging

    configure_logging("INFO", json=True)
    assert not logging.getLogger("alembic.runtime.plugins").isEnabledFor(logging.INFO)
