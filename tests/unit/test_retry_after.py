"""A peer's Retry-After: seconds or an HTTP date, never negative, never beyond six hours."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest

from congvan.actions.posting import retry_after as _retry_after


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("120", timedelta(seconds=120)),
        ("0", timedelta(0)),
        ("-5", timedelta(0)),
        ("99999999", timedelta(hours=6)),
        ("100000000000000", timedelta(hours=6)),
        ("9" * 30, timedelta(hours=6)),
        (" 120 ", timedelta(seconds=120)),
        ("-" + "9" * 30, timedelta(0)),
        # past the digits Python turns into a number at all
        ("9" * 5000, timedelta(hours=6)),
        ("0" * 4990 + "60", timedelta(seconds=60)),
        ("-" + "9" * 5000, timedelta(0)),
        ("+5", None),
        ("1_000", None),
        ("١٢٠", None),
        ("1.5", None),
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


@pytest.mark.parametrize("form", ["%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%c"])
def test_every_form_of_http_date_is_read_as_gmt(form: str) -> None:
    # RFC 9110 5.6.7: IMF-fixdate, the obsolete RFC 850 form and asctime's, which has no zone.
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
    text = when.strftime("%a %b %e %H:%M:%S %Y") if form == "%c" else when.strftime(form)
    wait = _retry_after(text)
    assert wait is not None, text
    assert timedelta(minutes=29) < wait <= timedelta(minutes=30)


@pytest.mark.parametrize(
    "text", ["Fri, 31 Dec 9999 23:59:59 +1400", "Mon, 01 Jan 0001 00:00:00 GMT"]
)
def test_an_http_date_at_the_ends_of_time_is_bounded(text: str) -> None:
    assert _retry_after(text) in (timedelta(0), timedelta(hours=6), None)
