"""The audit chain in an evidence bundle: its entries, the anchors signing them, and the
index the issuing agency signed at export (``evidence_checks`` runs these as part of its
verdict; the module docstring there lists every check).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from congvan.actions.anchoring import FORMAT as ANCHOR_FORMAT
from congvan.actions.signing.certpath import AHEAD_OF_CLOCK
from congvan.actions.signing.keystore import TrustMaterial
from congvan.actions.signing.verification import verify_manifest_signature
from congvan.states.errors import CongvanError, MessageMalformed
from congvan.states.timeliness import shown_exactly
from congvan.storage.audit_checks import verify_entries

from .envelope import check_moment, verify_body
from .evidence import (
    AUDIT,
    INDEX,
    INDEX_SIGNATURE,
    Bundle,
    claimed_moment,
    json_object,
    read_audit,
)
from .evidence_report import Report, offline, revoked_later


def signed_when_it_says(name: str, moment: datetime, signing_time: datetime | None) -> None:
    """The index and each anchor are signed as they are made, at the moment they name
    (revocation is judged as of it): a signature made earlier or later, beyond the clock
    skew, is not of what it says (``MessageMismatch``, reason ``moment``)."""
    check_moment(
        name,
        moment,
        signed_at=signing_time,
        not_before=signing_time,
        since=("signed_at", "the agency signed it"),
    )


@contextmanager
def as_stated(name: str, moment: datetime) -> Iterator[None]:
    """Verification as of the moment a body states: a signature made after it is not
    "ahead of the clock" (the clock is the body's own) but made later than it says
    (``moment``, as one made before it is)."""
    try:
        yield
    except CongvanError as exc:
        signed = exc.details.get("signing_time")
        later = exc.details.get("reason") in (AHEAD_OF_CLOCK, "clock_ahead")
        if not (later and isinstance(signed, str)):
            raise
        signed_when_it_says(name, moment, datetime.fromisoformat(signed))
        raise


class ChainChecks:
    """The chain's checks, on the state a judge of one bundle keeps."""

    bundle: Bundle
    report: Report
    trust: TrustMaterial
    document_id: str
    agency_id: str
    entries: list[dict[str, Any]]
    anchored: int  # the highest version of the chain a valid anchor signs

    def _root(self, cms: bytes) -> str:
        return self.report.anchored(cms, self.trust.roots)

    def index(self) -> None:
        """``index.p7s``: the issuing agency signed ``index.json`` (every member's digest,
        the chain's head) when it exported the bundle, so nothing was left out since."""
        index = self.bundle.index
        cms = None
        if INDEX_SIGNATURE in self.bundle.archive.members:
            try:  # not listed (the index cannot list its own signature): read here
                cms = self.bundle.archive.read(INDEX_SIGNATURE)
            except MessageMalformed as exc:
                self.bundle.damaged.add(INDEX_SIGNATURE)
                reason = str(exc.details.get("reason") or exc.code)
                self.report.fail("index", reason, offline(exc), INDEX_SIGNATURE)
                return
        if cms is None:
            self.report.fail(
                "index",
                "index_unsigned",
                f"{INDEX} is not signed by the issuing agency ({INDEX_SIGNATURE} is missing): "
                "what the bundle leaves out could not be told",
                INDEX_SIGNATURE,
            )
            return
        try:
            with as_stated("exported_at", index.exported_at):
                verdict = verify_body(
                    index.raw, cms, self.trust, agency_id=self.agency_id, at=index.exported_at
                )
            signed_when_it_says("exported_at", index.exported_at, verdict.signing_time)
        except CongvanError as exc:
            reason = str(exc.details.get("reason") or exc.code)
            self.report.fail("index", reason, offline(exc), INDEX_SIGNATURE)
            return
        version, head = index.audit_head
        last = self.entries[-1] if self.entries else None
        if last is None or (last["version"], last["hash"]) != (version, head):
            ends = f"version {last['version']}" if last else "nothing readable"
            self.report.fail(
                "index",
                "audit_head",
                f"{AUDIT} ends at {ends}; the signed index says the chain ended at version "
                f"{version} when it was exported",
                AUDIT,
            )
            return
        self.report.holds(
            "index",
            f"{INDEX} signed by {verdict.signer.organizational_unit} at "
            f"{shown_exactly(index.exported_at)}: every member listed, the chain ending at "
            f"version {version}{self._root(cms)}",
            warning=revoked_later(verdict.later_revocation),
        )

    def audit(self) -> None:
        data = self.bundle.read(AUDIT)
        if data is None:
            self.report.fail("audit", "member_missing", f"no {AUDIT}", AUDIT)
            return
        entries = read_audit(data, self.document_id)
        if entries is None:
            self.report.fail(
                "audit", "audit_malformed", f"{AUDIT} is not this document's chain", AUDIT
            )
            return
        problem = verify_entries(self.document_id, entries, None)
        if problem is not None:
            where = f"version {problem.version}" if problem.version else "its end"
            self.report.fail(
                "audit",
                f"chain_{problem.problem}",
                f"{problem.problem} at {where}: {problem.detail}",
                AUDIT,
            )
            return
        payloads = [json_object(e.payload.encode()) for e in entries]
        if any(p is None for p in payloads):
            self.report.fail(
                "audit", "audit_malformed", "an entry's payload is not a JSON object", AUDIT
            )
            return
        self.entries = [
            {**dataclasses.asdict(e), "payload": p} for e, p in zip(entries, payloads, strict=True)
        ]
        self.report.holds("audit", f"{len(entries)} entries, every hash recomputed")

    def _event(self, event: str, **wanted: str) -> dict[str, Any] | None:
        """The latest entry of ``event`` whose payload has the ``wanted`` values, if any.

        A payload without one of them matches it, as ``stored.accepted_at`` reads entries
        written before the audit trail recorded it.

        Entries after the last anchor rest on unkeyed hashes: anyone can append to the
        chain. So when an anchored entry records ``event``, only anchored entries are
        read: an appended ``send`` or ``sign`` cannot change which recipients must be
        accounted for or when the signature was made. Only an event no anchor covers yet
        is read from the tail (and the verdict says the tail rests on the chain alone).
        """
        entries = [e for e in self.entries if e["event"] == event]
        anchored = [e for e in entries if e["version"] <= self.anchored]
        for entry in reversed(anchored or entries):
            payload = entry["payload"]
            if all(payload.get(key, value) == value for key, value in wanted.items()):
                return dict(entry)
        return None

    def accepted_at(self, dispatch_id: str, event: str, status: str | None) -> datetime | None:
        """When the trail records ``dispatch.EVENT`` of ``dispatch_id`` (moved by status
        ``status`` when given): when this installation took the message that moved it,
        the moment its signature was judged at. The first such entry, read as ``_event``
        reads (anchored entries alone when one records it)."""
        entries = [
            e
            for e in self.entries
            if e["event"] == f"dispatch.{event}"
            and e["payload"].get("dispatch_id") == dispatch_id
            and (status is None or e["payload"].get("status") == status)
        ]
        anchored = [e for e in entries if e["version"] <= self.anchored]
        chosen = (anchored or entries)[:1]
        return chosen[0]["at"] if chosen else None

    def anchors(self) -> None:
        anchored = 0
        for name in self.bundle.names("anchor"):
            anchored = max(anchored, self._anchor(name))
        self.anchored = anchored
        total = len(self.entries)
        if not self.entries:
            self.report.fail("anchored", "unanchored", "no verified audit chain to anchor")
        elif not anchored:
            carried = len(self.bundle.names("anchor"))
            self.report.fail(
                "anchored",
                "unanchored",
                (
                    f"none of the bundle's {carried} anchor(s) holds (see each anchor's "
                    "line): the chain rests on unkeyed hashes"
                    if carried
                    else "no anchor in the bundle signs an entry of the chain: it rests on "
                    "unkeyed hashes (`congvan audit anchor`, then export)"
                ),
            )
        else:
            later = (
                ""
                if anchored == total
                else (f"; versions {anchored + 1}–{total} rest on the hash chain from it")
            )
            self.report.holds(
                "anchored", f"versions 1–{anchored} of {total} signed by an anchor{later}"
            )

    def _anchor(self, name: str) -> int:
        """Check one anchor; the highest version of the chain it signs (0: none, or bad)."""
        agency, seq = name.removeprefix("anchors/").removesuffix(".json").split("/")
        item = f"anchor {agency} {seq}"
        body = self.bundle.read(name)
        cms = self.bundle.read(name.removesuffix("json") + "p7s")
        if body is None or cms is None:
            self.report.fail(item, "member_missing", "the anchor or its signature is missing", name)
            return 0
        content = json_object(body) or {}
        at = claimed_moment(body, "at")
        if at is None:
            self.report.fail(
                item, "anchor_malformed", "the anchor names no moment it was made", name
            )
            return 0
        try:
            with as_stated("at", at):
                verdict = verify_manifest_signature(
                    body,
                    cms,
                    trust_roots=self.trust.roots_for(agency),
                    crls=self.trust.crls,
                    intermediates=self.trust.intermediates,
                    at=at,
                    expected_signer={"organizational_unit": agency},
                    profile="agency",
                    timestamp_token=self.bundle.read(name.removesuffix("json") + "tsr"),
                )
            signed_when_it_says("at", at, verdict.signing_time)
        except CongvanError as exc:
            self.report.refused(item, exc, name)
            return 0
        heads = content.get("heads")
        if (
            (content.get("format"), content.get("agency_id"), str(content.get("seq")))
            != (
                ANCHOR_FORMAT,
                agency,
                seq,
            )
            or agency != self.agency_id
            or not isinstance(heads, list)
        ):
            self.report.fail(
                item, "anchor_mismatch", "not an anchor of the document's agency", name
            )
            return 0
        hashes = {e["version"]: e["hash"] for e in self.entries}
        signed = [
            (head[1], head[2])
            for head in heads
            if isinstance(head, list) and len(head) == 3 and head[0] == self.document_id
        ]
        for version, head in signed:
            if type(version) is not int or hashes.get(version) != head:
                self.report.fail(
                    item,
                    "anchor_head",
                    f"it signs version {version} of the chain with "
                    "another hash than the audit slice's",
                    name,
                )
                return 0
        top = max((v for v, _h in signed), default=0)
        self.report.holds(
            item,
            f"signs version {top} of the chain, at {shown_exactly(at)}{self._root(cms)}",
            warning=revoked_later(verdict.later_revocation),
        )
        return top
