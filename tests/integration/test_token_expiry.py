"""A token's lifetime is a number of days from 1, or none at all: never 0 or negative."""

from __future__ import annotations

from datetime import timedelta

import pytest

from congvan.states.errors import InvalidInput
from congvan.workflow import cli, directory
from congvan.workflow.bootstrap import Runtime
from tests.factories import AGENCY_ID, add_agency


def clerk(runtime: Runtime) -> str:
    add_agency(runtime)
    with runtime.uow() as uow:
        user_id = directory.ensure_user(uow, AGENCY_ID, "vanthu", ["clerk"], runtime.clock())
        uow.commit()
    return user_id


@pytest.mark.parametrize("days", [0, -1, -30, 3651])
def test_a_lifetime_of_zero_or_less_days_is_refused(runtime: Runtime, days: int) -> None:
    user_id = clerk(runtime)
    with runtime.uow() as uow, pytest.raises(InvalidInput) as refused:
        directory.create_token(uow, user_id, runtime.clock(), days)
    assert refused.value.details["field"] == "expires_days"


def test_a_lifetime_in_days_or_none(runtime: Runtime) -> None:
    user_id = clerk(runtime)
    now = runtime.clock()
    with runtime.uow() as uow:
        one = directory.create_token(uow, user_id, now, 1)
        forever = directory.create_token(uow, user_id, now, None)
        uow.commit()
    with runtime.uow(readonly=True) as uow:
        assert uow.agencies.principal_for_token(one.token, now) is not None
        assert uow.agencies.principal_for_token(one.token, now + timedelta(days=2)) is None
        assert uow.agencies.principal_for_token(forever.token, now + timedelta(days=36500))


def test_the_cli_refuses_zero_days(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    add_agency(runtime)
    settings = runtime.settings
    code = cli.main(
        [
            "--data-dir",
            str(settings.data_dir),
            "--database-url",
            settings.db_url,
            "tokens",
            "create",
            "--agency",
            AGENCY_ID,
            "--role",
            "clerk",
            "--expires-days",
            "0",
        ]
    )
    assert code == 2
    assert "expires_in_days is a number of days from 1" in capsys.readouterr().err
