"""A recall's or update's outcome, from its recipients' answers."""

from __future__ import annotations

import pytest

from congvan.workflow.views import _outcome


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        # awaited while any answer is, whatever the others said
        ({"agreed", "awaiting_answer"}, "awaiting_answer"),
        ({"refused", "sending"}, "awaiting_answer"),
        ({"agreed"}, "agreed"),
        # some agreed, the rest refused or never got it: neither agreed nor refused
        ({"agreed", "refused"}, "partly_agreed"),
        ({"agreed", "undelivered"}, "partly_agreed"),
        ({"refused"}, "refused"),
        ({"refused", "undelivered"}, "refused"),
        ({"undelivered"}, "undelivered"),
    ],
)
def test_a_requests_outcome_is_told_by_every_answer(answers: set[str], outcome: str) -> None:
    assert _outcome(answers) == outcome
