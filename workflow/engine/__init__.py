"""The engine: the one way a document, a dispatch or any machine of states/ changes state.

- ``core.py``: ``Engine`` — fire an event (load, check, transition, persist) in one
  transaction, with idempotency keys, version checks and retries of lost races.
- ``bindings.py``: how each machine is bound to its rows (a new machine is a spec plus a
  binding).
- ``stepping.py``: the steps every transition takes inside its transaction.
- ``preparation.py``: heavy work done before the write transaction opens.
- ``creating.py``: creating a document.
- ``requests.py``: what recalls and updates lead to: a recalled document, a replacement.
- ``results.py``: idempotency keys and what a fired event answers.
"""

from .core import Engine
from .results import Expected, FireResult, Idempotency
from .stepping import STEPS

__all__ = ["STEPS", "Engine", "Expected", "FireResult", "Idempotency"]
