"""Timestamps from the configured TSA for the signatures we make and our audit anchors.

The ``sign`` transition and the anchor job run inside transactions, and a transaction never
waits on the network (DESIGN principle 8). So they only ask: ``request`` writes a pending
``timestamps`` row and a ``timestamp_signature`` outbox job in the caller's transaction.
After commit the job (a ``StagedJob``) reads the signature value in a short transaction,
asks the TSA and verifies its token against the pinned roots with none open, and keeps
the token in another. A TSA that is down never blocks signing: every failed attempt is
recorded on the row, and after the job's last attempt it is ``unavailable`` with the
error, visible in the API and the CLI, and the signature stands on its claimed time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from cryptography import x509

from congvan.states.vocabulary import STAMP_NONE
from congvan.storage.clock import as_utc
from congvan.storage.ids import new_id
from congvan.storage.timestamps import PENDING as STAMP_PENDING
from congvan.storage.timestamps import STAMPED
from congvan.storage.unit_of_work import UnitOfWork

from .context import JobContext
from .jobs import StagedJob, enqueue, new_job
from .signing import keystore
from .signing.timestamps import (
    Stamp,
    embedded_token,
    request_token,
    signature_value,
    verify_token,
)
from .signing.truststore import TrustStore
from .signing.verification import Verdict

log = logging.getLogger("congvan.timestamping")

JOB = "timestamp_signature"
SUBJECTS = ("signature", "anchor")


@dataclass(frozen=True)
class StampWork:
    """What the outside step needs: where to ask, what to stamp, what to trust."""

    subject: str
    subject_id: str
    url: str
    signature_value: bytes
    roots: list[x509.Certificate]
    crls: list[bytes]
    intermediates: tuple[x509.Certificate, ...] = ()


class Timestamping(StagedJob[StampWork]):
    """Asks the TSA at ``url`` (None: none configured) for tokens, after commit."""

    def __init__(
        self,
        url: str | None,
        trust: TrustStore,
        *,
        timeout: float,
        job_deadline: timedelta,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.trust = trust  # a token is verified against the pinned roots before it is kept
        self.timeout = timeout
        self.job_deadline = job_deadline
        self.transport = transport

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def request(
        self,
        uow: UnitOfWork,
        subject: str,
        subject_id: str,
        now: datetime,
        document_id: str | None = None,
        *,
        agency_id: str | None,
    ) -> None:
        """In the caller's transaction: a pending row and the job that will fill it (work
        of ``agency_id``, whose signature or anchor it stamps)."""
        if not self.configured:
            return
        if subject not in SUBJECTS:
            raise ValueError(f"cannot timestamp a {subject!r}")
        uow.timestamps.add(
            {
                "id": new_id(),
                "subject": subject,
                "subject_id": subject_id,
                "status": STAMP_PENDING,
                "source": "tsa",
                "created_at": now,
            }
        )
        job = new_job(
            JOB,
            now,
            agency_id=agency_id,
            document_id=document_id,
            payload={"subject": subject, "id": subject_id},
        )
        enqueue(uow, [job], now + self.job_deadline)

    # -- the job -----------------------------------------------------------------------

    def prepare(self, ctx: JobContext) -> StampWork | None:
        subject, subject_id = ctx.job.payload["subject"], ctx.job.payload["id"]
        row = ctx.uow.timestamps.get(subject, subject_id)
        if row is None or row.status != STAMP_PENDING:
            return None  # stamped already, or given up
        if not self.url:
            raise LookupError("no timestamp authority is configured (CONGVAN_TSA_URL)")
        cms = _cms_of(ctx.uow, subject, subject_id)
        trust = keystore.trust_material(ctx.uow, self.trust)
        return StampWork(
            subject=subject,
            subject_id=subject_id,
            url=self.url,
            signature_value=signature_value(cms),
            roots=list(trust.roots),
            crls=list(trust.crls),
            intermediates=trust.intermediates,
        )

    def act(self, work: StampWork) -> Stamp:
        token = request_token(
            work.url, work.signature_value, timeout=self.timeout, transport=self.transport
        )
        # A token we would later refuse is no timestamp: check it before keeping it.
        return verify_token(
            token,
            work.signature_value,
            trust_roots=work.roots,
            crls=work.crls,
            intermediates=work.intermediates,
        )

    def record(self, ctx: JobContext, work: StampWork, outcome: Stamp) -> None:
        ctx.uow.timestamps.stamped(
            work.subject,
            work.subject_id,
            outcome.token,
            outcome.authority,
            outcome.gen_time,
            at=ctx.now,
        )
        log.info(
            "timestamped",
            extra={"action": "timestamp.stamped", "subject": work.subject, "id": work.subject_id},
        )

    def failed(self, ctx: JobContext, error: str, *, final: bool) -> None:
        payload = ctx.job.payload
        ctx.uow.timestamps.failed(payload["subject"], payload["id"], error, final=final, at=ctx.now)
        log.warning(
            "timestamp unavailable" if final else "timestamp attempt failed",
            extra={
                "action": "timestamp.unavailable" if final else "timestamp.failed",
                "subject": payload["subject"],
                "id": payload["id"],
            },
        )


def _cms_of(uow: UnitOfWork, subject: str, subject_id: str) -> bytes:
    if subject == "signature":
        signature = uow.signatures.signature(subject_id)
        if signature is None:
            raise LookupError(f"no signature {subject_id}")
        return bytes(signature.cms)
    anchor = uow.anchors.by_id(subject_id)
    if anchor is None:
        raise LookupError(f"no anchor {subject_id}")
    return bytes(anchor.cms)


def stored_token(uow: UnitOfWork, subject: str, subject_id: str) -> bytes | None:
    """The token the TSA gave for this subject after commit, or None.

    An embedded token travels inside the CMS itself and is not returned here.
    """
    row = uow.timestamps.get(subject, subject_id)
    if row is None or row.status != STAMPED or row.source != "tsa" or not row.token:
        return None
    return bytes(row.token)


def record_embedded(
    uow: UnitOfWork, signature_id: str, cms: bytes, verdict: Verdict, now: datetime
) -> None:
    """Keep the valid token an uploaded CMS carries (the CMS keeps its bytes too)."""
    uow.timestamps.add(
        {
            "id": new_id(),
            "subject": "signature",
            "subject_id": signature_id,
            "status": STAMPED,
            "source": "embedded",
            "token": embedded_token(cms),
            "authority": verdict.timestamp_authority or "",
            "gen_time": verdict.timestamp,
            "created_at": now,
        }
    )


def timestamp_view(uow: UnitOfWork, subject: str, subject_id: str) -> dict[str, Any]:
    """The timestamp of a signature or anchor as plain JSON (status ``none`` if not asked)."""
    row = uow.timestamps.get(subject, subject_id)
    if row is None:
        return {"status": STAMP_NONE}
    return {
        "status": row.status,
        "source": row.source,
        "time": as_utc(row.gen_time).isoformat() if row.gen_time else None,
        "authority": row.authority or None,
        "error": row.error or None,
        "attempts": row.attempts,
    }
