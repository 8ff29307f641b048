"""A webhook as a supervisor sees it: by its origin, its errors too, whatever form the
address or the receiver's answer takes in them (a path or query may carry its token)."""

from __future__ import annotations

import pytest

from congvan.workflow.notifications import _error_shown, shown_target

TARGET = "https://hooks.hue.gov.vn:8443/hooks/T0KEN%2Fabc?key=s3cr%C3%AAt"
SECRETS = ("T0KEN", "s3cr", "key=")


@pytest.mark.parametrize(
    "error",
    [
        "404: Cannot POST /hooks/T0KEN%2Fabc?key=s3cr%C3%AAt",
        "404: Cannot POST /hooks/T0KEN/abc?key=s3crêt",  # echoed decoded
        '400: {"error": "bad token T0KEN"}',  # the token alone, in the receiver's words
        f"not sent: ConnectError: {TARGET}",
        "no answer: ReadTimeout: /hooks/T0KEN%2Fabc?key=s3cr%C3%AAt",
        "no answer: ReadTimeout: /hooks/T0KEN/abc?key=s3crêt",
    ],
)
def test_an_error_never_shows_a_webhooks_path_or_query(error: str) -> None:
    shown = _error_shown("webhook", TARGET, error)
    assert not any(secret in shown for secret in SECRETS), shown
    assert shown.split(":", 1)[0] == error.split(":", 1)[0]  # what happened stays said


def test_the_origin_stays_and_a_mailbox_is_shown_whole() -> None:
    origin = shown_target("webhook", TARGET).removesuffix("/…")
    assert origin == "https://hooks.hue.gov.vn:8443"
    assert origin in _error_shown("webhook", TARGET, f"not sent: ConnectError: {TARGET}")
    said = "550 5.1.1 vanthu@hue.gov.vn: no such user"
    assert said == _error_shown("email", "vanthu@hue.gov.vn", said)


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("https://[2001:db8:1::5]:8443/hook?token=T", "https://[2001:db8:1::5]:8443/…"),
        ("https://[2001:db8:1::5]/", "https://[2001:db8:1::5]"),
        ("https://hooks.example.vn/?token=T", "https://hooks.example.vn/…"),
        ("https://hooks.example.vn/", "https://hooks.example.vn"),
    ],
)
def test_a_webhook_is_shown_by_an_origin_that_reads_as_one(target: str, shown: str) -> None:
    # An IPv6 literal keeps its brackets (its port would read as part of it), and a query
    # on the bare path is hidden as a path is
    assert shown == shown_target("webhook", target)
