"""This installation's own inbox and status route as an httpx transport, for deliveries
and status messages between agencies it serves (``actions.exchange.local``).

The package, receipt and status message are the very bytes a peer would get, judged by
the same ``Inbox.accept`` and ``Statuses.accept`` the HTTP routes call, and answered as
those routes answer: 201 (200 the second time) with the receipt, 200 with the status
taken, or the refusal's HTTP status and error body, which the jobs read as they read a
peer's.
"""

from __future__ import annotations

import io
import json
import logging

import httpx

from congvan.actions.exchange.local import LOCAL_INBOX, LOCAL_STATUS
from congvan.states.errors import CongvanError, MessageMalformed

from .inbox import Inbox
from .statuses import Statuses, decoded

log = logging.getLogger("congvan.local_exchange")
_INBOX_PATH = httpx.URL(LOCAL_INBOX).path
_STATUS_PATH = httpx.URL(LOCAL_STATUS).path


def local_transport(inbox: Inbox, statuses: Statuses) -> httpx.MockTransport:
    """A transport that hands a POST to our inbox or status route over in the process."""

    def handle(request: httpx.Request) -> httpx.Response:
        try:
            if request.method == "POST" and request.url.path == _INBOX_PATH:
                answer = inbox.accept(io.BytesIO(request.content))
                return httpx.Response(201 if answer.stored else 200, json=answer.wire())
            if request.method == "POST" and request.url.path == _STATUS_PATH:
                taken = statuses.accept(*_status_of(request.content))
                state = {"dispatch_id": taken.dispatch_id, "state": taken.state, "new": taken.new}
                return httpx.Response(200, json=state)
            return httpx.Response(404, json={"code": "not_found", "message": "No such route."})
        except CongvanError as exc:
            return httpx.Response(exc.http_status, json=exc.to_dict())
        except Exception:  # as the API answers what it did not foresee: 500, retried
            log.exception("local handover failed", extra={"action": "local_exchange.error"})
            return httpx.Response(
                500, json={"code": "internal_error", "message": "The handover failed."}
            )

    return httpx.MockTransport(handle)


def _status_of(content: bytes) -> tuple[bytes, bytes]:
    """What StatusSending posts, as the route reads it."""
    try:
        message = json.loads(content)
        status, status_cms = message["status"], message["status_cms"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageMalformed("The status message is not JSON.", reason="not_json") from exc
    return decoded(str(status), str(status_cms))
