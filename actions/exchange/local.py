"""Between two agencies this installation serves: the same package, receipt and status
messages, handed over in the process instead of over the network.

A province often runs one installation for all its agencies; a letter from the province
to one of its departments is signed, sealed, received, registered and answered exactly as
one to another installation, and leaves the same evidence. Only the transport differs:
the URLs below name this installation (``.invalid`` never resolves, RFC 2606, so nothing
addressed to them can reach the network), and the job posts them through the transport
the installation wires (``workflow.local_exchange``), which calls its own inbox and status
route.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx

from congvan.storage.unit_of_work import UnitOfWork

LOCAL_INBOX = "http://this-installation.invalid/v1/inbox"
LOCAL_STATUS = "http://this-installation.invalid/v1/status"
# How long a handover may take: as a peer's default delivery timeout.
LOCAL_TIMEOUT_SECONDS = 30.0

# The installation's own inbox and status route, as an httpx transport (None: not wired).
LocalTransport = Callable[[], httpx.BaseTransport | None]


def served_here(uow: UnitOfWork, agency_id: str, at: datetime) -> bool:
    """Whether ``agency_id`` is one of ours: its organisational key is held here."""
    return uow.signatures.agency_certificate(agency_id, at) is not None


def local_transport_of(local: LocalTransport) -> httpx.BaseTransport:
    transport = local()
    if transport is None:
        raise RuntimeError("this installation's own inbox is not wired for local delivery")
    return transport
