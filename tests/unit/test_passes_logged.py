"""A background loop's passes, said in the log: an outage once a minute, not each pass."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from congvan.workflow.logs import Passes

AWAY = OperationalError("SELECT 1", {}, Exception("connection refused"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, object]]:
    lines = [
        (r.levelno, r.getMessage(), getattr(r, "passes_put_off", None)) for r in caplog.records
    ]
    caplog.clear()
    return lines


def test_an_outage_is_said_as_it_starts_once_a_minute_after_and_once_as_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.passes")
    clock = Clock()
    passes = Passes(logging.getLogger("test.passes"), "relay", clock)

    # Given the database away for two minutes and a half, a pass every half second
    for _ in range(300):
        passes.failed(AWAY)
        clock.now += 0.5
    # Then the outage was said as it began, then once a minute with the passes put off
    warned = "relay pass put off: the database is unavailable"
    assert said(caplog) == [
        (logging.WARNING, warned, None),
        (logging.WARNING, warned, 119),
        (logging.WARNING, warned, 119),
    ]

    # When a pass goes through again: said once, with how long it lasted
    passes.passed()
    passes.passed()
    [back] = caplog.records
    assert (back.levelno, back.getMessage()) == (logging.INFO, "relay passes again")
    assert back.__dict__["seconds_put_off"] == 150.0
    caplog.clear()

    # And the next outage is said at once
    passes.failed(AWAY)
    assert said(caplog) == [(logging.WARNING, warned, None)]


def test_a_fault_is_said_with_its_traceback_and_said_again_when_what_goes_wrong_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.passes")
    clock = Clock()
    passes = Passes(logging.getLogger("test.passes"), "scheduler", clock)

    # A fault of ours, each pass: an error with its traceback, then not again each pass
    for _ in range(10):
        passes.failed(ValueError("bad row"))
        clock.now += 1
    [fault] = caplog.records
    assert fault.levelno == logging.ERROR and fault.exc_info is not None
    caplog.clear()

    # What goes wrong changing is said at once, whatever the minute
    passes.failed(AWAY)
    passes.failed(ValueError("another row"))
    assert [(level, message) for level, message, _ in said(caplog)] == [
        (logging.WARNING, "scheduler pass put off: the database is unavailable"),
        (logging.ERROR, "scheduler pass failed"),
    ]
    # A pass that goes through says nothing when none failed before it
    passes.passed()
    passes.passed()
    assert [message for _, message, _ in said(caplog)] == ["scheduler passes again"]
