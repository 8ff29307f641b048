"""A command opens what it needs and no more, and closes it however it ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest import CaptureFixture, MonkeyPatch

from congvan.workflow.cli import main
from congvan.workflow.cli.runtime import Store, runtime_for
from congvan.workflow.settings import Settings


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

    # And a command that sends jobs is wired by bootstrap, which builds the broker
    with pytest.raises(ValueError, match="unsupported broker URL scheme"):
        main([*cli, "audit", "anchor"])


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
