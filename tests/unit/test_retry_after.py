"""A peer's Retry-After: seconds or an HTTP date, never negative, never beyond six hours."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest

from congvan.actions.delivery import _retry_after


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("120", timedelta(seconds=120)),
        ("0", timedelta(0)),
        ("-5", timedelta(0)),
        ("99999999", timedelta(hours=6)),
        (None, None),
        ("", None),
        ("soon", None),
    ],
)
def test_a_retry_after_in_seconds_is_bounded(header: str | None, wait: timedelta | None) -> None:
    assert _retry_after(header) == wait


def test_a_retry_after_as_an_http_date_is_the_time_until_then() -> None:
    when = datetime.now(UTC) + timedelta(minutes=30)
    wait = _retry_after(email.utils.format_datetime(when, usegmt=True))
    assert wait is not None
    assert timedelta(minutes=29) < wait <= timedelta(minutes=30)
