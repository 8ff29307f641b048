"""Pure definitions: the machines (document, dispatch, received), their policies and errors.

Nothing here performs I/O, reads a clock, or imports another congvan layer.
"""

from .dispatch import DISPATCH
from .document import DOCUMENT
from .escalation import ESCALATION
from .machine import allowed_events, derive_document_state, resolve
from .received import RECEIVED_DOCUMENT
from .spec import MachineSpec, Transition

MACHINES = {
    "document": DOCUMENT,
    "dispatch": DISPATCH,
    "received": RECEIVED_DOCUMENT,
    "escalation": ESCALATION,
}

__all__ = [
    "DISPATCH",
    "DOCUMENT",
    "ESCALATION",
    "MACHINES",
    "RECEIVED_DOCUMENT",
    "MachineSpec",
    "Transition",
    "allowed_events",
    "derive_document_state",
    "resolve",
]
