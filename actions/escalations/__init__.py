"""Deadlines watched and escalations opened, owned and closed (states/escalation.py).

- ``rules.py``: which time rules a transition starts watching or keeps.
- ``broken.py``: whether a rule whose deadline passed is broken (its escalation opens).
- ``lifecycle.py``: how an escalation opens, is told, owned, snoozed, risen and closed.
- ``trust.py``: which certificates and revocation lists running out escalate.
- ``statuses.py``: a status message owed a sender and never given to it.
- ``base.py``: what they share: the rules, the calendar, the engine, the notifications.
"""

from .base import Notify
from .broken import BrokenRules
from .lifecycle import MAX_SNOOZE, notice
from .rules import SIGNATURE_CODES, Change, RuleTimers, refusal_kind
from .statuses import StatusWatch
from .trust import TrustCheck


class Watch(RuleTimers, BrokenRules, TrustCheck, StatusWatch):
    """Arms and cancels the time rules' timers, opens and closes escalations."""


__all__ = [
    "MAX_SNOOZE",
    "SIGNATURE_CODES",
    "Change",
    "Notify",
    "Watch",
    "notice",
    "refusal_kind",
]
