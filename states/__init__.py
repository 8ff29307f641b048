"""Pure definitions: the document and dispatch machines, their policies and errors.

Nothing here performs I/O, reads a clock, or imports another congvan layer.
"""

from .dispatch import DISPATCH
from .document import DOCUMENT
from .machine import allowed_events, derive_document_state, resolve
from .spec import MachineSpec, Transition

MACHINES = {"document": DOCUMENT, "dispatch": DISPATCH}

__all__ = [
    "DISPATCH",
    "DOCUMENT",
    "MACHINES",
    "MachineSpec",
    "Transition",
    "allowed_events",
    "derive_document_state",
    "resolve",
]
