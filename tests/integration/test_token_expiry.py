"""A token's lifetime is a number of days from 1, or none at all: never 0 or negative."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

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
        one_held, forever_held = (uow.agencies.token_holder(t.token) for t in (one, forever))
        assert one_held is not None and forever_held is not None
        assert one_held.valid_at(now)
        assert not one_held.valid_at(now + timedelta(days=2))
        assert forever_held.valid_at(now + timedelta(days=36500))


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


def test_a_user_made_without_a_name_is_named_later_and_a_name_is_never_blanked(
    runtime: Runtime,
) -> None:
    # Given a signer made with no full name or position (a token for them, say)
    add_agency(runtime)
    now = runtime.clock()
    with runtime.uow() as uow:
        made = directory.ensure_user(uow, AGENCY_ID, "pct", ["signer"], now)
        # When the same user is given again with a name and a position, then with neither
        named = directory.ensure_user(
            uow, AGENCY_ID, "pct", ["signer"], now, full_name="Nguyễn Văn Phương",
            position="Phó Chủ tịch",
        )  # fmt: skip
        again = directory.ensure_user(uow, AGENCY_ID, "pct", ["clerk"], now)
        uow.commit()

    # Then it is one user, named as last given, with both roles
    with runtime.uow(readonly=True) as uow:
        user = uow.agencies.user(AGENCY_ID, "pct")
    assert user is not None and made == named == again == user.id
    assert ("Nguyễn Văn Phương", "Phó Chủ tịch") == (user.full_name, user.position)
    assert ["clerk", "signer"] == sorted(user.roles.split(","))


def test_a_token_is_revoked_by_the_prefix_printed_with_it_or_by_itself(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    add_agency(runtime)
    cli_args = ["--data-dir", str(tmp_path), "--database-url", db_url]
    create = [*cli_args, "tokens", "create", "--agency", AGENCY_ID, "--role", "clerk"]
    assert 0 == cli.main(create)
    first_head, first = capsys.readouterr().out.splitlines()[-2:]
    assert 0 == cli.main(create)
    second = capsys.readouterr().out.splitlines()[-1]

    prefix = first_head.split("prefix ", 1)[1].split(" ", 1)[0]
    assert first.startswith(prefix) and len(prefix) == 12
    assert 0 == cli.main([*cli_args, "tokens", "revoke", prefix])
    assert 0 == cli.main([*cli_args, "tokens", "revoke", second])  # the whole token
    assert 2 == cli.main([*cli_args, "tokens", "revoke", prefix])  # revoked already
    assert "prefix" in capsys.readouterr().err


@pytest.mark.parametrize("user", ["", " pct", "a b", "рct", "pct@000.00.00.H57", "-x", "Lan…"])
def test_a_new_user_is_named_by_a_login_name_no_other_can_pass_for(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str, user: str
) -> None:
    # Given an agency
    add_agency(runtime)
    cli_args = ["--data-dir", str(tmp_path), "--database-url", db_url]

    # When a token is asked for a new user named by an empty name, a space, a Cyrillic
    # look-alike of "pct", an "@" (a certificate names its holder user@agency)...
    create = [*cli_args, "tokens", "create", "--agency", AGENCY_ID, "--role", "clerk"]
    assert 2 == cli.main([*create, f"--user={user}"])

    # Then it is refused, saying what a user name is made of, and no user or token is kept
    assert "error [invalid_input]: A user name" in capsys.readouterr().err
    with runtime.uow(readonly=True) as uow:
        assert uow.conn.execute(text("SELECT count(*) FROM users")).scalar() == 0
        assert uow.conn.execute(text("SELECT count(*) FROM api_tokens")).scalar() == 0


def test_a_token_for_a_user_holding_other_roles_says_the_roles_it_adds(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    # Given a signer pct
    add_agency(runtime)
    cli_args = ["--data-dir", str(tmp_path), "--database-url", db_url]
    create = [*cli_args, "tokens", "create", "--agency", AGENCY_ID, "--user", "pct"]
    assert 0 == cli.main([*create, "--role", "signer"])
    capsys.readouterr()

    # When a clerk's token is made for pct, the role named twice
    assert 0 == cli.main([*create, "--role", "clerk", "--role", "clerk"])

    # Then the roles pct now holds are said, and the token is bound to the clerk's once
    done = capsys.readouterr()
    assert f"note: pct@{AGENCY_ID} held signer; now clerk, signer" in done.err
    assert "(clerk), prefix" in done.out
    with runtime.uow(readonly=True) as uow:
        query = text("SELECT roles FROM api_tokens ORDER BY created_at, id")
        assert ["clerk"] in [[r] for r in uow.conn.execute(query).scalars()]


def test_a_token_that_cannot_be_shown_is_not_kept(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    # Given an agency, and an output that takes nothing (a full disk)
    add_agency(runtime)
    cli_args = ["--data-dir", str(tmp_path), "--database-url", db_url]
    create = [*cli_args, "tokens", "create", "--agency", AGENCY_ID, "--role", "clerk"]
    with open("/dev/full", "w") as full, pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", full)

        # When a token is made
        assert 2 == cli.main([*create, "--user", "vanthu"])

    # Then it says nothing was kept, and no token nobody saw is kept
    assert "nothing was kept" in capsys.readouterr().err
    with runtime.uow(readonly=True) as uow:
        assert uow.conn.execute(text("SELECT count(*) FROM api_tokens")).scalar() == 0
        assert uow.agencies.user(AGENCY_ID, "vanthu") is None
