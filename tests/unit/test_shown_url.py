"""A database URL as it is shown (errors, `migrate`, the configuration summary): never its
password, wherever the URL holds it."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from congvan.storage.database import shown_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:sekrit@h/db",
        "postgresql://u@h/db?password=sekrit",  # libpq reads it there too
        "postgresql://u@h/db?sslmode=require&PASSWORD=sekrit",
        "postgresql://u@h/db?sslpassword=sekrit",  # the client key's
    ],
)
def test_a_password_is_never_shown(url: str) -> None:
    shown = shown_url(make_url(url))
    assert "sekrit" not in shown
    assert shown.startswith("postgresql://u") and "h/db" in shown


def test_what_is_not_secret_is_shown_as_it_is() -> None:
    assert shown_url(make_url("postgresql://u@h:5433/db?sslmode=require")) == (
        "postgresql://u@h:5433/db?sslmode=require"
    )
