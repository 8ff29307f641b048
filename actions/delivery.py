"""Delivery: one job per dispatch posts its package to the recipient's inbox.

Claim (a short transaction): the dispatch starts an attempt (pending → sending, counted on
its row) and the job reads what it sends — the sealed header, the manifest, the signer's
signature, the files, the signed PDF when the header lists one — and the peer's inbox and
timeout. Act (no transaction): the package is assembled (the same bytes on every attempt)
and posted with httpx. Record (a short transaction): the attempt is logged with its
outcome, HTTP status and latency, and the dispatch moves:

- ``delivered``: the answer is a receipt signed by the recipient agency naming our
  message id, package and manifest → ``deliver`` (the receipt is kept);
- ``refused``: a 4xx with the receiver's reason (a package it will never take) →
  ``refuse`` (rejected, status 02);
- ``transient`` (not sent: connection refused; or 408, 429, 5xx), ``unknown`` (the request
  left and no answer came: it may have arrived) and ``bad_receipt`` (an answer that is not
  a valid receipt): ``retry`` while attempts remain — the job waits on a database timer
  (backoff) and runs again with the same message id, which the receiver deduplicates —
  else ``fail``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import json
import logging
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from congvan.states.dispatch import (
    ACKNOWLEDGED,
    ANSWERED,
    REJECTED,
    STATUS_EVENTS,
)
from congvan.states.errors import CongvanError, GuardFailed, TransitionNotAllowed
from congvan.states.text import printable
from congvan.storage.clock import Clock, utcnow
from congvan.storage.dispatches import AttemptRow, DispatchRow, SealedDispatch
from congvan.storage.unit_of_work import UnitOfWork

from .context import SYSTEM, JobContext
from .exchange.archive import CHUNK
from .exchange.local import (
    LOCAL_INBOX,
    LOCAL_TIMEOUT_SECONDS,
    LocalTransport,
    local_transport_of,
    served_here,
)
from .exchange.package import Written
from .exchange.receipts import verify_receipt
from .exchange.writing import SealedHeader, assemble, reseal_header
from .jobs import Busy, RetryLater, StagedJob
from .posting import NOT_NOW, answer_said, json_of, post, refusal_of, retry_after
from .signing import keystore
from .signing.agencykeys import AgencyKeys
from .signing.truststore import TrustStore

log = logging.getLogger("congvan.delivery")

DELIVERED, REFUSED, TRANSIENT, UNKNOWN, BAD_RECEIPT = (
    "delivered",
    "refused",
    "transient",
    "unknown",
    "bad_receipt",
)
# Where a status message (03, 02; 15, 16 for a recall or update) takes a dispatch whose
# attempt is still under way: the recipient answered before our receipt was recorded.
_OVERTAKEN = frozenset({ACKNOWLEDGED, REJECTED, *ANSWERED})
# A package up to this size is assembled and posted in memory; a larger one goes through a
# temporary file and is posted from it as it is read.
IN_MEMORY = 1 << 20
Transport = Callable[[], httpx.BaseTransport | None]


@dataclass(frozen=True)
class Parcel:
    """What one attempt sends, read when the job was claimed."""

    dispatch_id: str
    document_id: str
    attempt: int
    recipient: str
    sender: str
    url: str
    timeout: float
    sealed: SealedHeader
    manifest: bytes
    signature: bytes
    files: dict[str, bytes]
    signed_pdf: bytes | None
    trust: keystore.TrustMaterial
    started_at: datetime


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended."""

    outcome: str
    http_status: int | None
    latency_ms: int
    error: str = ""
    package_sha256: str = ""
    receipt: bytes = b""
    receipt_cms: bytes = b""
    retry_after: timedelta | None = None  # what the peer asked (429, 503 Retry-After)


class Delivery(StagedJob[Parcel]):
    """The ``deliver_dispatches`` job: one attempt to deliver one dispatch."""

    def __init__(
        self,
        trust: TrustStore,
        transport: Transport = lambda: None,
        *,
        clock: Clock = utcnow,
        keys: AgencyKeys | None = None,
        lease: timedelta = timedelta(minutes=11),
        turn: timedelta = timedelta(seconds=2),
    ) -> None:
        self.trust = trust
        self.clock = clock  # when an answer came, which its receipt is judged at
        self.keys = keys  # to seal a package anew after a renewal (see _sealed_now)
        self._ders: dict[str, bytes] = {}
        # Every wait on a peer ends well within the job's lease, so that a slow peer is
        # never taken for a dead worker.
        self.lease = lease
        self.longest_wait = lease.total_seconds() * 0.8
        self.transport = transport  # tests hand in their own; None: the network
        # This installation's own inbox, for agencies it serves (wired by bootstrap).
        self.local: LocalTransport = lambda: None
        # A job finding its peer at its limit takes its turn again after about this long.
        self.turn = turn

    def prepare(self, ctx: JobContext) -> Parcel | None:
        uow = ctx.uow
        dispatch_id = str(ctx.job.payload["dispatch_id"])
        dispatch = _locked(uow, dispatch_id, ctx.job.document_id)
        if dispatch is None:
            return None
        # The recipient's status settled the dispatch while an attempt of this job was
        # under way, and that attempt ended with no outcome kept (its worker died): the
        # package goes once more under its message id, for the signed receipt the
        # receiver keeps for it (the proof it arrived). It moves nothing.
        fetching = dispatch.state in _OVERTAKEN
        if fetching and uow.dispatches.receipt(dispatch_id) is not None:
            return None
        if not fetching and dispatch.state not in ("pending", "sending"):
            return None  # delivered, refused or given up meanwhile: nothing to do
        sealed = uow.dispatches.sealed(dispatch_id)
        # The peer's row is locked while its deliveries in flight are counted, so that
        # claims in every process and on every machine keep to its limit together.
        peer = uow.peers.get(dispatch.organ_id, for_update=True)
        if peer is not None:
            under_way = uow.dispatches.in_flight(dispatch.organ_id, ctx.now, besides=dispatch_id)
            if under_way >= peer.max_concurrency:
                raise Busy(
                    f"{under_way} deliveries to {peer.agency_id} are under way "
                    f"(it takes {peer.max_concurrency} at once)",
                    retry_in=self.turn * random.uniform(0.5, 1.0),
                )
        head = uow.documents.head(dispatch.document_id)
        signature = uow.signatures.latest_signature(dispatch.document_id)
        if sealed is None or head is None or signature is None:
            raise CongvanError(f"Dispatch {dispatch_id} has nothing sealed to deliver.")
        assert ctx.events is not None
        local = peer is None and served_here(uow, dispatch.organ_id, ctx.now)
        if peer is None and not local:
            # Its peer entry was removed after the send: no attempt can be made. It fails
            # now, saying why (the document fails with it and a supervisor is told), and
            # is resent once the peer is added again.
            error = f"unknown_peer: no peer entry for agency {dispatch.organ_id} any more"
            if dispatch.state == "pending":
                ctx.events.fire_on_within(uow, "dispatch", dispatch_id, "start", actor=SYSTEM)
            ctx.events.fire_on_within(
                uow, "dispatch", dispatch_id, "fail", actor=SYSTEM, data={"error": error}
            )
            return None
        if dispatch.state == "sending" and not self._interrupted(ctx, dispatch):
            return None  # no attempts left: failed for good
        if not fetching:
            ctx.events.fire_on_within(uow, "dispatch", dispatch_id, "start", actor=SYSTEM)
        uow.dispatches.posting(dispatch_id, until=ctx.now + self.lease)
        # Numbered over the dispatch's life: a resend gives it fresh attempts (its row's
        # count starts again), and the log keeps those before it.
        attempt = uow.dispatches.attempts_logged(dispatch_id) + 1
        if not fetching:
            sealed = self._sealed_now(uow, dispatch, sealed, head.agency_id, ctx.now)
        manifest = bytes(signature.manifest)
        files = {}
        for entry in json.loads(manifest)["attachments"]:
            data = uow.documents.blob(entry["sha256"])
            if data is None:
                raise CongvanError(f"The file {entry['filename']} is no longer stored.")
            files[entry["filename"]] = bytes(data)
        header = json.loads(sealed.header)
        seal = SealedHeader(
            sealed.message_id,
            sealed.header,
            sealed.header_cms,
            header["manifest_sha256"],
            datetime.fromisoformat(header["sent_at"]),
        )
        signed_pdf = None
        if seal.signed_pdf is not None:  # by the digest sealed, whatever was signed since
            signed_pdf = uow.documents.blob(seal.signed_pdf.sha256)
            if signed_pdf is None:
                raise CongvanError("The signed PDF is no longer stored.")
        return Parcel(
            dispatch_id=dispatch_id,
            document_id=dispatch.document_id,
            attempt=attempt,
            recipient=dispatch.organ_id,
            sender=head.agency_id,
            url=LOCAL_INBOX if peer is None else peer.inbox_url,
            timeout=min(
                LOCAL_TIMEOUT_SECONDS if peer is None else float(peer.timeout_seconds),
                self.longest_wait,
            ),
            sealed=seal,
            manifest=manifest,
            signature=bytes(signature.cms),
            files=files,
            signed_pdf=None if signed_pdf is None else bytes(signed_pdf),
            trust=keystore.trust_material(uow, self.trust, [dispatch.organ_id]),
            started_at=ctx.now,
        )

    def _sealed_now(
        self, uow: UnitOfWork, dispatch: DispatchRow, sealed: SealedDispatch, agency: str,
        now: datetime,
    ) -> SealedDispatch:  # fmt: skip
        """The header as it goes on this attempt: sealed anew by the agency's certificate
        valid now when the one that sealed it is not that any more (renewed, the old one
        revoked as superseded) and every attempt so far certainly left nothing with the
        recipient (``_never_reached``).

        The recipient judges the agency's signature as it takes a package, and holds
        nothing under this message id yet: the old seal would be refused for good. A
        package that may have arrived goes as it was sealed, the bytes the recipient took
        (it answers them with its first receipt, judged as of when it took them). With no
        usable certificate at all (revoked, expired, not renewed yet), a package that never
        reached its recipient waits: posted under its old seal it would be refused for good.
        """
        if self.keys is None:
            return sealed
        current = uow.signatures.agency_fingerprint(agency, now)
        if current is not None and self._der_of(uow, current) in sealed.header_cms:
            return sealed  # a CMS carries its signer's certificate as it is (DER)
        if not all(_never_reached(a) for a in uow.dispatches.attempts_of(dispatch.id)):
            return sealed
        if current is None:
            raise CongvanError(
                f"Agency {agency} has no usable organisational certificate to seal the "
                "package with (revoked or expired): renew it (`congvan keys issue-agency`); "
                "the package is sealed anew then.",
                agency_id=agency,
            )
        fresh = reseal_header(sealed.header, self.keys.require(uow, agency, now), now)
        resealed = SealedDispatch(fresh.message_id, fresh.header, fresh.agency_signature)
        uow.dispatches.seal(dispatch.id, resealed)
        log.info(
            "package sealed anew by the agency's current certificate",
            extra={"action": "delivery.resealed", "dispatch_id": dispatch.id},
        )
        return resealed

    def _der_of(self, uow: UnitOfWork, fingerprint: str) -> bytes:
        """The DER of a certificate held here, by its fingerprint (read once a process)."""
        der = self._ders.get(fingerprint)
        if der is None:
            row = uow.signatures.certificate(fingerprint)
            if row is None:
                return b"\x00"  # never in a CMS
            der = x509.load_pem_x509_certificate(row.cert_pem.encode()).public_bytes(
                serialization.Encoding.DER
            )
            self._ders[fingerprint] = der
        return der

    def _interrupted(self, ctx: JobContext, dispatch: DispatchRow) -> bool:
        """An attempt began and was never recorded (its worker died; the lease ran out).

        Its package may have arrived: it is logged as outcome unknown and counts against
        the dispatch's attempts like any other, so a job that keeps dying mid-post is
        never retried past the limit. True when an attempt is left for this run.
        """
        self._log_interrupted(ctx, dispatch)
        return _retry_or_fail(ctx, dispatch.id, "attempt interrupted")

    def _log_interrupted(
        self,
        ctx: JobContext,
        dispatch: DispatchRow,
        why: str = "the attempt's worker stopped before recording it",
    ) -> None:
        ctx.uow.dispatches.log_attempt(
            AttemptRow(
                dispatch_id=dispatch.id,
                attempt=ctx.uow.dispatches.attempts_logged(dispatch.id) + 1,
                started_at=(
                    dispatch.posting_until - self.lease
                    if dispatch.posting_until is not None
                    else dispatch.updated_at
                ),
                finished_at=ctx.now,
                outcome=UNKNOWN,
                http_status=None,
                latency_ms=0,
                error=printable(f"interrupted: {why}"),
            )
        )

    def act(self, work: Parcel) -> Outcome:
        # Written once to a file (in memory while small) and posted from it: a large package
        # is never held whole in memory, once or in copies, while it travels.
        with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY) as package:
            written = assemble(
                package,
                work.sealed,
                manifest=work.manifest,
                signature=work.signature,
                files={name: io.BytesIO(data) for name, data in work.files.items()},
                signed_pdf=None if work.signed_pdf is None else io.BytesIO(work.signed_pdf),
            )
            package.seek(0)
            if written.size <= IN_MEMORY:
                content: bytes | Iterator[bytes] = package.read()
            else:
                content = iter(functools.partial(package.read, CHUNK), b"")
            return self._post(work, written, content)

    def _post(self, work: Parcel, written: Written, content: bytes | Iterator[bytes]) -> Outcome:
        started = time.perf_counter()

        def spent() -> int:
            return int((time.perf_counter() - started) * 1000)

        local = work.url == LOCAL_INBOX
        try:
            response = post(
                local_transport_of(self.local) if local else self.transport(),
                work.url,
                timeout=work.timeout,
                content=content,
                # Its length told up front, streamed or not (never sent in chunks).
                headers={"Content-Type": "application/zip", "Content-Length": str(written.size)},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Outcome(TRANSIENT, None, spent(), f"not sent: {type(exc).__name__}: {exc}")
        except (httpx.TransportError, httpx.StreamError) as exc:  # it left; no answer came
            return Outcome(UNKNOWN, None, spent(), f"no answer: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - whatever reading the answer raised
            # The package may have arrived: an attempt of unknown outcome, recorded as one
            # (with what was raised), never a job failure that leaves no attempt behind.
            said = printable(f"no answer read: {type(exc).__name__}: {exc}")[:1000]
            return Outcome(UNKNOWN, None, spent(), said)
        latency, status = spent(), response.status_code
        if status >= 500 or status in NOT_NOW:
            wait = retry_after(response.headers.get("Retry-After"))
            return Outcome(TRANSIENT, status, latency, answer_said(response), retry_after=wait)
        if status >= 400:
            if refusal_of(response) is not None:  # the receiver's own, with its reason
                return Outcome(REFUSED, status, latency, answer_said(response))
            said = f"not a refusal by the inbox (no reason given): {answer_said(response)}"
            return Outcome(TRANSIENT, status, latency, said)
        try:
            answer = json_of(response)
            body = base64.b64decode(answer["receipt"], validate=True)
            cms = base64.b64decode(answer["receipt_cms"], validate=True)
            verify_receipt(
                body,
                cms,
                work.trust,
                expected_message_id=work.sealed.message_id,
                expected_package_sha256=written.sha256,
                expected_manifest_sha256=written.manifest_sha256,
                expected_receiver=work.recipient,
                expected_sender=work.sender,
                # As of the answer, not of the claim: a receipt is signed once the whole
                # package has arrived, which on a slow line is minutes after it left.
                now=self.clock(),
                sent_at=work.sealed.sent_at,
            )
        except CongvanError as exc:
            return Outcome(BAD_RECEIPT, status, latency, f"{exc.code}: {exc.message}")
        except (ValueError, KeyError, TypeError) as exc:
            return Outcome(BAD_RECEIPT, status, latency, f"not a receipt: {exc}")
        return Outcome(DELIVERED, status, latency, "", written.sha256, body, cms)

    def record(self, ctx: JobContext, work: Parcel, outcome: Any) -> None:
        assert isinstance(outcome, Outcome) and ctx.events is not None
        uow, events = ctx.uow, ctx.events
        uow.documents.head(work.document_id, for_update=True)  # see _locked
        uow.dispatches.log_attempt(
            AttemptRow(
                dispatch_id=work.dispatch_id,
                attempt=work.attempt,
                started_at=work.started_at,
                finished_at=ctx.now,
                outcome=outcome.outcome,
                http_status=outcome.http_status,
                latency_ms=outcome.latency_ms,
                error=printable(outcome.error),
            )
        )
        uow.dispatches.posting(work.dispatch_id, until=None)
        log.info(
            "delivery attempt",
            extra={
                "action": "dispatch.attempt",
                "dispatch_id": work.dispatch_id,
                "outcome": outcome.outcome,
                "http_status": outcome.http_status,
                "latency_ms": outcome.latency_ms,
            },
        )
        fire = events.fire_on_within
        if outcome.outcome == DELIVERED:
            uow.dispatches.keep_receipt(work.dispatch_id, outcome.receipt, outcome.receipt_cms)
        current = uow.dispatches.get(work.dispatch_id)
        if current is not None and current.state in _OVERTAKEN:
            # The recipient's status came first and settled the dispatch (03, 02, 15, 16):
            # the attempt is logged as it went, whatever it was, and moves nothing.
            return
        if outcome.outcome == DELIVERED:
            fire(uow, "dispatch", work.dispatch_id, "deliver", actor=SYSTEM)
            # The status messages that came ahead of the receipt and the dispatch could not
            # take then (an answer to a recall or update), each in turn, as the trail
            # keeps them all.
            for status in uow.dispatches.statuses_of(work.dispatch_id):
                event = STATUS_EVENTS.get(status.code)
                if event is not None:
                    with contextlib.suppress(TransitionNotAllowed):
                        data = status.event_data()
                        fire(uow, "dispatch", work.dispatch_id, event, actor=SYSTEM, data=data)
            return
        if outcome.outcome == REFUSED:
            data = {"error": outcome.error}
            fire(uow, "dispatch", work.dispatch_id, "refuse", actor=SYSTEM, data=data)
            return
        if not _retry_or_fail(ctx, work.dispatch_id, outcome.error):
            return
        raise RetryLater(f"{outcome.outcome}: {outcome.error}", not_before=outcome.retry_after)

    def failed(self, ctx: JobContext, error: str, *, final: bool) -> None:
        """A failure the job counted: its attempt is over; when the job gave up (its own
        attempts spent), the dispatch fails for good."""
        dispatch = _locked(ctx.uow, str(ctx.job.payload["dispatch_id"]), ctx.job.document_id)
        if dispatch is None:
            return
        if dispatch.posting_until is not None and dispatch.state in _OVERTAKEN:
            # The recipient's status came while the attempt was out: the dispatch is
            # settled, and the attempt is logged here, as no later run would see it.
            self._log_interrupted(ctx, dispatch, error)
        ctx.uow.dispatches.posting(dispatch.id, until=None)
        if not final or ctx.events is None:
            return
        # Given up between attempts too (pending): failed, so that a resend may take it up
        # again; left pending it would wait for a job that no longer runs.
        if dispatch.state == "pending":
            ctx.events.fire_on_within(ctx.uow, "dispatch", dispatch.id, "start", actor=SYSTEM)
        if dispatch.state in ("pending", "sending"):
            ctx.events.fire_on_within(
                ctx.uow, "dispatch", dispatch.id, "fail", actor=SYSTEM, data={"error": error}
            )


def _locked(
    uow: UnitOfWork, dispatch_id: str, document_id: str | None = None
) -> DispatchRow | None:
    """The dispatch, its document's row locked first (PostgreSQL), as the engine and the
    status messages lock them: a dispatch row is never held while its document is waited
    for, so two transactions on one document wait in turn and never deadlock.

    ``document_id``, when the caller knows it (a delivery job names its document), is
    locked straight away: the dispatch is then read once, its document held.
    """
    if document_id is not None:
        uow.documents.head(document_id, for_update=True)
        dispatch = uow.dispatches.get(dispatch_id)
        if dispatch is None or dispatch.document_id == document_id:
            return dispatch
    dispatch = uow.dispatches.get(dispatch_id)
    if dispatch is None:
        return None
    uow.documents.head(dispatch.document_id, for_update=True)
    return uow.dispatches.get(dispatch_id)


def _retry_or_fail(ctx: JobContext, dispatch_id: str, error: str) -> bool:
    """The attempt did not deliver: back to pending if attempts remain (True), else fail."""
    assert ctx.events is not None
    data = {"error": error}
    try:
        ctx.events.fire_on_within(
            ctx.uow, "dispatch", dispatch_id, "retry", actor=SYSTEM, data=data
        )
    except GuardFailed:  # no attempts left
        ctx.events.fire_on_within(ctx.uow, "dispatch", dispatch_id, "fail", actor=SYSTEM, data=data)
        return False
    return True


def _never_reached(attempt: AttemptRow) -> bool:
    """Whether an attempt certainly left nothing with the recipient: no connection was
    made, or it was turned away before its body was taken (408, 425, 429). A 5xx may come
    from a gateway after the inbox took the package; an answer lost, or not a receipt,
    may follow its arrival."""
    return attempt.outcome == TRANSIENT and (
        attempt.http_status is None or attempt.http_status in NOT_NOW
    )
