"""Audit anchors: an agency's audit chain heads, signed with its organisational key.

Each document's audit trail is a hash chain, so an edited, removed or reordered entry no
longer verifies. But the hashes are unkeyed: someone able to write SQL could rewrite a
whole chain, recompute every hash and the document's head, and the chain would verify
again. An anchor closes that for everything before it. Periodically (a database timer, and
``congvan audit anchor``) each agency with an organisational certificate and stored key
signs the heads of its documents changed since its last anchor:

    {"format": "congvan-audit-anchor/1", "agency_id": …, "seq": n, "at": …,
     "previous": SHA-256 of anchor n-1's body (64 zeros for the first),
     "heads": [[document_id, version, entry hash], …]}

as RFC 8785 canonical JSON under a detached CMS, like a manifest. ``verify_anchors`` checks
each anchor's signature (as of when it was made), the anchors' own chain (no anchor
removed or inserted, none changed), and that every head it lists is still the stored hash
of that document's entry at that version. With ``verify_document`` recomputing every hash
from the entries' contents, a rewritten chain is caught at the first anchored version.
What happened after an agency's latest anchor is protected by the hash chain alone, and an
anchor deleted from the end is noticed only by someone who kept its hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from congvan.states.errors import SignatureError
from congvan.storage.anchors import AnchorRow
from congvan.storage.audit import GENESIS
from congvan.storage.canonical import canonical_bytes
from congvan.storage.clock import as_utc
from congvan.storage.ids import new_id
from congvan.storage.signatures import CertificateRow
from congvan.storage.stored import WrongKind
from congvan.storage.timers import AUDIT_ANCHOR, DueTimer
from congvan.storage.unit_of_work import UnitOfWork

from .context import JobContext
from .jobs import RetryLater, StagedJob, enqueue, new_job
from .signing import keystore
from .signing.agencykeys import AgencyKeys
from .signing.truststore import TrustStore
from .signing.verification import verify_manifest_signature
from .timestamping import Timestamping, stored_token

log = logging.getLogger("congvan.anchoring")

FORMAT = "congvan-audit-anchor/1"
JOB = "anchor_audit"
# A transition's updated_at is its start; it may commit a moment later. Heads changed this
# long before the previous anchor are looked at again (listing one twice is harmless).
OVERLAP = timedelta(minutes=10)
# Heads in one anchor: its body stays under about 600 KB.
MAX_HEADS = 5000


@dataclass(frozen=True)
class AnchorProblem:
    """Why an anchor, or a head it lists, does not hold."""

    agency_id: str
    seq: int
    problem: str  # signature | sequence | previous | body | head | altered (its row)
    detail: str
    document_id: str | None = None
    version: int | None = None


@dataclass(frozen=True)
class AnchorDraft:
    """An agency's next anchors, built from its heads in a transaction, signed after it.

    ``bodies`` are anchors ``after_seq + 1``, ``+ 2``…, each chained to the one before; no
    body: nothing changed since the agency's latest anchor.
    """

    agency_id: str
    certificate: CertificateRow
    after_seq: int  # the agency's latest anchor when the bodies were built (0: none)
    at: datetime
    bodies: tuple[bytes, ...]
    heads: tuple[int, ...]  # how many heads each body lists


class Anchoring(StagedJob[list[AnchorDraft]]):
    """Makes anchors with each agency's organisational key; a job and a timer drive it.

    The job reads the heads in a short transaction, signs with no transaction open and
    keeps the anchors in another (DESIGN principle 8). Signing outside is sound: a head
    names an entry the trail never changes, so what was read stays true; a head changed
    after the read is listed by the next anchor (``OVERLAP``); and the anchors are kept
    only if the agency's latest anchor is still the one they chain to.
    """

    def __init__(
        self,
        passphrase: Callable[[], str],
        trust: TrustStore,
        every: timedelta | None,
        job_deadline: timedelta = timedelta(minutes=5),
        timestamping: Timestamping | None = None,
    ) -> None:
        self.passphrase = passphrase
        self.trust = trust
        self.keys = AgencyKeys(passphrase, trust)
        self.timestamping = timestamping  # stamps each anchor after commit, when configured
        self.every = every  # None: no timer; ``congvan audit anchor`` only
        self.job_deadline = job_deadline  # re-driven by the scheduler when not done by then

    def anchor(
        self, open_uow: Callable[[], UnitOfWork], now: datetime, agency_id: str | None = None
    ) -> dict[str, int]:
        """Anchor every agency that has a key (or one); heads anchored per agency.

        The three steps of the job, for ``congvan audit anchor``.
        """
        with open_uow() as uow:
            drafts = self.drafts(uow, now, agency_id)
        signatures = self.sign(drafts)
        with open_uow() as uow:
            made = self.keep(uow, drafts, signatures, now)
            uow.commit()
        return made

    def drafts(
        self, uow: UnitOfWork, now: datetime, agency_id: str | None = None
    ) -> list[AnchorDraft]:
        """The next anchors of every agency with a usable key (or of one), unsigned."""
        ids = [a.id for a in uow.agencies.agencies()] if agency_id is None else [agency_id]
        drafts = []
        for agency in ids:
            certificate = uow.signatures.agency_certificate(agency, now)
            if certificate is not None:
                drafts.append(self._draft(uow, agency, certificate, now))
        return drafts

    def _draft(
        self, uow: UnitOfWork, agency_id: str, certificate: CertificateRow, now: datetime
    ) -> AnchorDraft:
        """The agency's heads changed since its last anchor, ``MAX_HEADS`` to a body."""
        previous = uow.anchors.latest(agency_id)
        since = None
        already: set[tuple[str, int, str]] = set()
        if previous is not None:
            since = as_utc(previous.created_at) - OVERLAP
            already = {tuple(h) for h in json.loads(previous.body)["heads"]}
        heads = [h for h in uow.anchors.heads_changed_since(agency_id, since) if h not in already]
        after = 0 if previous is None else previous.seq
        # Its body's digest, not the column beside it (a bare column SQL can change).
        link = GENESIS if previous is None else hashlib.sha256(bytes(previous.body)).hexdigest()
        bodies: list[bytes] = []
        counts: list[int] = []
        for start in range(0, len(heads), MAX_HEADS):
            part = heads[start : start + MAX_HEADS]
            body = canonical_bytes(
                {
                    "format": FORMAT,
                    "agency_id": agency_id,
                    "seq": after + len(bodies) + 1,
                    "at": as_utc(now).isoformat(),
                    "previous": link,
                    "heads": [list(h) for h in part],
                }
            )
            bodies.append(body)
            counts.append(len(part))
            link = hashlib.sha256(body).hexdigest()
        return AnchorDraft(agency_id, certificate, after, now, tuple(bodies), tuple(counts))

    def sign(self, drafts: list[AnchorDraft]) -> list[tuple[bytes, ...]]:
        """Each draft's bodies signed with its agency's key (unlocked on first use)."""
        signed: list[tuple[bytes, ...]] = []
        for draft in drafts:
            if not draft.bodies:
                signed.append(())
                continue
            signer = self.keys.signer(draft.agency_id, draft.certificate)
            signed.append(tuple(signer.sign(body, draft.at) for body in draft.bodies))
        return signed

    def keep(
        self,
        uow: UnitOfWork,
        drafts: list[AnchorDraft],
        signatures: list[tuple[bytes, ...]],
        now: datetime,
    ) -> dict[str, int]:
        """Store the signed anchors; heads anchored per agency.

        Refused (``RetryLater``) for an agency that anchored meanwhile: these bodies chain
        to an anchor that is no longer its latest, and a new run starts from the new one.
        """
        made: dict[str, int] = {}
        for draft, cms in zip(drafts, signatures, strict=True):
            made[draft.agency_id] = sum(draft.heads)
            if not draft.bodies:
                continue
            latest = uow.anchors.latest(draft.agency_id, holding=True)
            if (0 if latest is None else latest.seq) != draft.after_seq:
                raise RetryLater(f"agency {draft.agency_id} was anchored meanwhile")
            for offset, (body, signature, count) in enumerate(
                zip(draft.bodies, cms, draft.heads, strict=True), start=1
            ):
                seq = draft.after_seq + offset
                anchor_id = new_id()
                uow.anchors.add(
                    AnchorRow(
                        id=anchor_id,
                        agency_id=draft.agency_id,
                        seq=seq,
                        created_at=draft.at,
                        body=body,
                        body_sha256=hashlib.sha256(body).hexdigest(),
                        cms=signature,
                        certificate_fingerprint=draft.certificate.fingerprint,
                        heads=count,
                    )
                )
                if self.timestamping is not None:
                    self.timestamping.request(
                        uow, "anchor", anchor_id, now, agency_id=draft.agency_id
                    )
                log.info(
                    "audit anchored",
                    extra={"action": "audit.anchor", "agency": draft.agency_id, "seq": seq},
                )
        return made

    # -- driven by the database --------------------------------------------------------

    def prepare(self, ctx: JobContext) -> list[AnchorDraft] | None:
        """The ``anchor_audit`` job, claimed: the drafts; None when no head changed."""
        drafts = self.drafts(ctx.uow, ctx.now)
        return drafts if any(d.bodies for d in drafts) else None

    def act(self, work: list[AnchorDraft]) -> list[tuple[bytes, ...]]:
        """Sign, with no transaction open."""
        return self.sign(work)

    def record(
        self, ctx: JobContext, work: list[AnchorDraft], outcome: list[tuple[bytes, ...]]
    ) -> None:
        """Keep the anchors in the transaction that ends the job."""
        self.keep(ctx.uow, work, outcome, ctx.now)

    def on_timer(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        """The anchor timer fired: queue the job and set the next timer (exactly one)."""
        # the installation's: it anchors every agency with a key
        enqueue(uow, [new_job(JOB, now, agency_id=None)], now + self.job_deadline)
        uow.timers.cancel(AUDIT_ANCHOR, AUDIT_ANCHOR)
        if self.every is not None:
            self.ensure_timer(uow, now)

    def ensure_timer(self, uow: UnitOfWork, now: datetime) -> None:
        """Set the anchor timer unless one is set."""
        if self.every is None or uow.timers.of_kind(AUDIT_ANCHOR):
            return
        uow.timers.add(
            [
                {
                    "id": new_id(),
                    "kind": AUDIT_ANCHOR,
                    "ref_id": AUDIT_ANCHOR,
                    "document_id": None,
                    "due_at": now + self.every,
                }
            ]
        )


def verify_anchors(
    uow: UnitOfWork, store: TrustStore, agency_id: str, document_id: str | None = None
) -> Iterator[tuple[int, AnchorProblem | None]]:
    """Check each anchor of the agency, oldest first: ``(seq, problem or None)``.

    Signatures are checked against the pinned roots of ``store`` and must be made with
    the agency's organisational certificate. With ``document_id``, every anchor's
    signature and link are still checked, but of the heads only that document's.
    """
    trust = keystore.trust_material(uow, store)
    previous, expected_seq = GENESIS, 1
    for anchor in uow.anchors.as_stored(agency_id):
        if isinstance(anchor, WrongKind):
            # Its row holds what its column cannot (SQL wrote it): altered. The next one
            # is still checked, against its body if that can be read.
            seq = anchor.number("seq") or expected_seq
            detail = f"the anchor's row holds a value its column cannot: {anchor.column}"
            yield seq, AnchorProblem(agency_id, seq, "altered", detail)
            body = anchor.row.get("body")
            previous = hashlib.sha256(body).hexdigest() if isinstance(body, bytes) else ""
            expected_seq = seq + 1
            continue
        seq = anchor.seq
        problem = _check_anchor(uow, anchor, agency_id, previous, expected_seq, trust, document_id)
        yield seq, problem
        previous = hashlib.sha256(bytes(anchor.body)).hexdigest()
        expected_seq = seq + 1


def _check_anchor(
    uow: UnitOfWork,
    anchor: AnchorRow,
    agency_id: str,
    previous: str,
    expected_seq: int,
    trust: keystore.TrustMaterial,
    document_id: str | None,
) -> AnchorProblem | None:
    seq = anchor.seq
    body = bytes(anchor.body)

    def problem(kind: str, detail: str, **where: Any) -> AnchorProblem:
        return AnchorProblem(agency_id, seq, kind, detail, **where)

    if seq != expected_seq:
        return problem("sequence", f"anchor {expected_seq} is missing before {seq}")
    try:
        # The moment the anchor was made, as its signed body states it (a forged body
        # fails the signature); the row's created_at is a bare column SQL can move.
        at = datetime.fromisoformat(json.loads(body)["at"])
        if at.tzinfo is None:
            raise ValueError("naive")
    except (ValueError, KeyError, TypeError):
        return problem("body", "the signed body names no moment it was made")
    try:
        verify_manifest_signature(
            body,
            bytes(anchor.cms),
            trust_roots=trust.roots,
            crls=trust.crls,
            intermediates=trust.intermediates,
            at=at,
            expected_signer={"organizational_unit": agency_id},
            profile="agency",
            timestamp_token=stored_token(uow, "anchor", anchor.id),
        )
    except SignatureError as exc:
        return problem("signature", f"{exc.code}: {exc.message}")
    content = json.loads(body)
    if content.get("format") != FORMAT or content.get("agency_id") != agency_id:
        return problem("body", "the signed body is not an anchor of this agency")
    if content.get("seq") != seq:
        return problem("body", f"the signed body says anchor {content.get('seq')}")
    if content.get("previous") != previous:
        return problem("previous", "the anchor before this one was changed or replaced")
    if anchor.body_sha256 != hashlib.sha256(body).hexdigest():
        # The digest `audit anchor` prints, to be kept elsewhere for `--known`.
        return problem("altered", "its stored SHA-256 is not its body's")
    heads = [
        (listed, version, head)
        for listed, version, head in content["heads"]
        if document_id is None or listed == document_id
    ]
    stored_hashes = uow.anchors.entry_hashes([(d, v) for d, v, _h in heads])
    for listed, version, head in heads:
        stored = stored_hashes.get((listed, version))
        if stored != head:
            detail = "the entry is gone" if stored is None else "the entry was rewritten"
            return problem("head", detail, document_id=listed, version=version)
    return None
