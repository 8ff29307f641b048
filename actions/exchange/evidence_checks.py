"""Judging a ``congvan-evidence/2`` bundle offline: no database, no network, no settings.

``verify_bundle`` reports one ``Check`` per item, failed ones with a stable ``code`` and the
member they concern, and goes on after a failure so that one verdict lists every problem:

    bundle                  the archive is safe to read (``archive``'s limits) and
                            ``index.json`` is a canonical index: else the only check
    members                 every member listed is present, reads back (member_damaged),
                            with its size and SHA-256 (member_missing, member_size,
                            member_digest), and none is unlisted (member_extra)
    trust                   the roots: those pinned by the caller (``--trust``) or else
                            those the bundle ships, which it says proves little
    signature               the signer's CMS over the manifest, at the moment the audit
                            trail says it was accepted, naming the manifest's signer
    signed_pdf              the PAdES signature of ``signed.pdf``, as of then (left out
                            with the files: it holds the main file's bytes)
    files                   each file against the manifest's size and SHA-256; with
                            the files left out ("digests"), none in the bundle
                            (file_unexpected)
    dispatch AGENCY,        each dispatch's header, receipt and status messages
    receipt AGENCY,         (``evidence_dispatches``), against the manifest and the
    status AGENCY NN        message ids the audit trail recorded at ``send``; and all
                            the trail records: a dispatch per recipient sent to
                            (dispatch_missing), the receipt of each delivered one, the
                            status of each acknowledged (03) or refused after it arrived
                            (02) one, and of each report 04–06 (evidence_missing)
    audit                   the chain recomputed from its entries, version 1 on
    anchor AGENCY SEQ       the agency's CMS over the anchor; each head it lists for the
                            document is the hash of the chain's entry at that version
    anchored                some anchor signs an entry of the chain, and the chain goes on
                            from it (later entries rest on the hash chain alone)

Signatures are judged with ``verification`` and the exchange formats' own verifiers,
against the roots and the bundled CRLs, each at the moment the evidence itself gives;
``evidence_report`` keeps the verdict and which root anchored each signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, BinaryIO

from cryptography import x509

from congvan.actions.signing.certpath import CLOCK_SKEW
from congvan.actions.signing.keystore import TrustMaterial
from congvan.actions.signing.revocation import signed_by
from congvan.actions.signing.signedpdf import verify_signed_main
from congvan.actions.signing.truststore import fingerprint
from congvan.actions.signing.verification import verify_manifest_signature
from congvan.states.dispatch import PROGRESS_EVENTS
from congvan.states.errors import CongvanError, ManifestMismatch
from congvan.states.received import STATUS_LABEL
from congvan.states.timeliness import shown_exactly

from .evidence import (
    DISPATCHES,
    FILES,
    INDEX,
    INDEX_SIGNATURE,
    MANIFEST,
    RECEIPT,
    REQUESTS,
    SIGNATURE,
    SIGNATURE_TOKEN,
    SIGNED_PDF,
    Bundle,
    json_object,
    open_bundle,
)
from .evidence_chain import ChainChecks
from .evidence_dispatches import DispatchChecks, Request, Signed
from .evidence_report import Report, revoked_later
from .package import main_pdf


def verify_bundle(
    stream: BinaryIO,
    pinned: Sequence[x509.Certificate] | None = None,
    bound: Mapping[str, frozenset[str]] | None = None,
) -> Report:
    """Judge the bundle in ``stream`` (seekable); with ``pinned``, only those roots count,
    and with ``bound`` (root fingerprints by agency, among ``pinned``) only those speak
    for an agency named there."""
    report = Report()
    if pinned is not None:  # each root once, however often it was given
        pinned = list({fingerprint(root): root for root in pinned}.values())
    try:
        bundle = open_bundle(stream)
    except CongvanError as exc:
        _refused(report, exc)
        return report
    with bundle:
        report.sha256, report.document_id = bundle.sha256, bundle.index.document_id
        try:
            _Judge(bundle, report, pinned, bound or {}).run()
        except CongvanError as exc:  # a member a check read past: a verdict all the same
            _refused(report, exc)
    return report


def _refused(report: Report, exc: CongvanError) -> None:
    part = exc.details.get("part")
    report.fail("bundle", str(exc.details.get("reason", exc.code)), exc.message, part)


# Members checked only beside their folder's package.json: a receipt, a status message, an
# agency signature (an anchor's signature and token are checked beside its body).
_BESIDE_A_PACKAGE = frozenset(
    {
        "agency_signature",
        "receipt",
        "receipt_signature",
        "status",
        "status_signature",
        "request_signature",
        "request_receipt",
        "request_receipt_signature",
        "request_status",
        "request_status_signature",
    }
)


class _Judge(ChainChecks):
    """The checks over one opened bundle, in the order the module's docstring gives."""

    def __init__(
        self,
        bundle: Bundle,
        report: Report,
        pinned: Sequence[x509.Certificate] | None,
        bound: Mapping[str, frozenset[str]],
    ) -> None:
        self.bundle = bundle
        self.report = report
        self.pinned = pinned
        self.bound = bound
        self.document_id = bundle.index.document_id
        self.agency_id = bundle.index.agency_id
        self.trust = TrustMaterial(roots=[], crls=[])
        self.entries: list[dict[str, Any]] = []
        self.anchored = 0  # the highest version of the chain a valid anchor signs
        self.manifest: bytes | None = None
        self.cms = b""
        self.document: dict[str, Any] = {}
        # Each member's size and SHA-256 as read (``members``): what later checks judge.
        self.measured: dict[str, tuple[int, str] | None] = {}

    def run(self) -> None:
        self.members()
        self.roots()
        self.audit()
        self.index()  # what the issuing agency signed as the whole bundle
        self.anchors()  # before what the trail's entries decide: see _event
        self.signature()
        self.files()
        self.dispatches()
        self.placed()

    # -- members and trust ---------------------------------------------------------------

    def placed(self) -> None:
        """Every member is one a check read: none waits beside a member that is not there
        (a receipt in a folder with no package, an anchor's signature with no anchor),
        where it would be listed, digested and never judged."""
        for listed in self.bundle.index.members:
            name, role = listed.name, listed.role
            if role in _BESIDE_A_PACKAGE:
                needed = name.rsplit("/", 1)[0] + "/package.json"
            elif role in ("anchor_signature", "anchor_timestamp"):
                needed = name.rsplit(".", 1)[0] + ".json"
            else:
                continue
            if not self.bundle.has(needed):
                detail = f"{name} has no {needed} to be checked against"
                self.report.fail("members", "member_unplaced", detail, name)

    def members(self) -> None:
        bundle, before = self.bundle, len(self.report.checks)
        for listed in bundle.index.members:
            name = listed.name
            measured = bundle.measure(name) if name in bundle.archive.members else None
            self.measured[name] = measured
            if name not in bundle.archive.members:
                self.report.fail("members", "member_missing", f"{name} is missing", name)
            elif measured is None:
                self.report.fail("members", "member_damaged", f"{name} does not read back", name)
            elif measured[0] != listed.size:
                self.report.fail("members", "member_size", f"{name} is not its listed size", name)
            elif measured[1] != listed.sha256:
                detail = f"{name} is not the member index.json lists (SHA-256 differs)"
                self.report.fail("members", "member_digest", detail, name)
        unlisted = set(bundle.archive.members) - set(bundle.listed) - {INDEX, INDEX_SIGNATURE}
        for name in sorted(unlisted):
            self.report.fail("members", "member_extra", f"{name} is not listed in index.json", name)
        # One index, one archive (as a package's header): the members in the order it
        # lists them, after it and its signature; those missing or extra are named above.
        expected = [INDEX, INDEX_SIGNATURE, *bundle.listed]
        present = set(bundle.archive.members)
        if [n for n in bundle.archive.members if n in expected] != [
            n for n in expected if n in present
        ]:
            detail = (
                f"the members are not in the order {INDEX} lists them "
                f"({INDEX}, {INDEX_SIGNATURE}, then its members)"
            )
            self.report.fail("members", "member_order", detail, None)
        if len(self.report.checks) == before:
            count = len(bundle.index.members)
            self.report.holds("members", f"{count} members, each its listed size and SHA-256")

    def _certificates(self, role: str, folder: str) -> list[x509.Certificate]:
        """The certificates of ``role`` the bundle ships, each named by its SHA-256."""
        found: list[x509.Certificate] = []
        for name in self.bundle.names(role):
            data = self.bundle.read(name)
            try:
                cert = x509.load_pem_x509_certificate(data or b"")
            except ValueError:
                self.report.fail(
                    "trust", f"{role}_unreadable", f"{name} is not a PEM certificate", name
                )
                continue
            if name != f"trust/{folder}/{fingerprint(cert)}.pem":
                self.report.fail(
                    "trust", f"{role}_misnamed", f"{name} holds another certificate", name
                )
                continue
            found.append(cert)
        return found

    def roots(self) -> None:
        shipped = self._certificates("root", "roots")
        # The CAs held where it was exported: links a path may take to a root, whoever's
        # roots judge it (they anchor nothing, so the bundle's own may be taken).
        cas = tuple(self._certificates("ca", "cas"))
        crls = []
        for name in self.bundle.names("crl"):
            data = self.bundle.read(name)
            if data is None:
                continue  # missing or damaged: the members check names it
            try:
                crl = x509.load_der_x509_crl(data)
            except ValueError:
                # Named here, not left to fail every signature the CRL would have judged.
                detail = f"{name} is not a DER certificate revocation list"
                self.report.fail("trust", "crl_unreadable", detail, name)
                continue
            if name != f"trust/crls/{hashlib.sha256(data).hexdigest()}.crl":
                self.report.fail("trust", "crl_misnamed", f"{name} holds another CRL", name)
                continue
            exported = self.bundle.index.exported_at
            if crl.last_update_utc > exported + CLOCK_SKEW:
                # Not the CRL the exporter held: one issued since would judge the signatures
                # by what it says now (a later CRL may even leave a revocation out).
                detail = (
                    f"{name} was issued {shown_exactly(crl.last_update_utc)}, after the bundle "
                    f"was exported ({shown_exactly(exported)})"
                )
                self.report.fail("trust", "crl_after_export", detail, name)
                continue
            known = [c for c in (*shipped, *cas, *(self.pinned or ())) if c.subject == crl.issuer]
            if known and not any(signed_by(crl, c) for c in known):
                # Never one its issuer made: a forgery, or the member was tampered with
                # (ignored by the revocation checks, it would still be counted as used)
                detail = f"{name} is not signed by its issuer, {crl.issuer.rfc4514_string()}"
                self.report.fail("trust", "crl_invalid", detail, name)
                continue
            crls.append(data)
        shipped_fps = [fingerprint(c) for c in shipped]
        if self.pinned is None:
            self.trust = TrustMaterial(roots=shipped, crls=crls, intermediates=cas)
            self.report.trust_source, self.report.roots = "bundle", shipped_fps
            detail = (
                f"{len(shipped)} root(s) shipped in the bundle and {len(crls)} CRL(s); no root "
                "pinned (--trust ROOT.pem): a bundle verifying against its own roots proves "
                "only that it is consistent"
            )
        else:
            self.trust = TrustMaterial(
                roots=list(self.pinned), crls=crls, bound=self.bound, intermediates=cas
            )
            pinned_fps = [fingerprint(c) for c in self.pinned]
            self.report.trust_source, self.report.roots = "pinned", pinned_fps
            shipped_too = [fp for fp in pinned_fps if fp in shipped_fps]
            detail = (
                f"{len(pinned_fps)} root(s) pinned by you, {len(shipped_too)} of them also "
                f"shipped in the bundle; {len(crls)} CRL(s) from the bundle"
            )
            if self.bound:
                detail += f"; roots bound to {', '.join(sorted(self.bound))}"
            taken = frozenset().union(*self.bound.values())
            free = [fp for fp in pinned_fps if fp not in taken]
            if len(pinned_fps) > 1 and free:
                # Two parties' roots pinned, one bound to no agency: its CA could issue a
                # certificate naming any agency not bound, and its signatures would hold.
                warning = (
                    f"{len(free)} pinned root(s) bound to no agency speak for every agency "
                    "not bound: bind each party's root with --trust-for AGENCY=ROOT.pem"
                )
                self.report.holds("trust", detail, warning=warning)
                return
        self.report.holds("trust", detail)

    # -- the document -------------------------------------------------------------------

    def signature(self) -> None:
        manifest, cms = self.bundle.read(MANIFEST), self.bundle.read(SIGNATURE)
        if manifest is None or cms is None:
            missing = MANIFEST if manifest is None else SIGNATURE
            self.report.fail("signature", "member_missing", f"no {missing} to verify", missing)
            return
        self.manifest, self.cms = manifest, cms
        self.document = json_object(manifest) or {}
        accepted = self._event(
            "sign",
            cms_sha256=hashlib.sha256(cms).hexdigest(),
            manifest_sha256=hashlib.sha256(manifest).hexdigest(),
        )
        if accepted is None:
            self.report.fail(
                "signature",
                "signature_unrecorded",
                "the audit trail records no acceptance of this signature"
                + (
                    " before its last anchor (a later one rests on unkeyed hashes: anchor "
                    "the trail, then export)"
                    if self.anchored
                    else ""
                ),
                SIGNATURE,
            )
            return
        expected = {
            "common_name": self.document.get("signer_name"),
            "title": self.document.get("signer_position"),
            "organizational_unit": self.agency_id,
        }
        wanted = {k: v for k, v in expected.items() if isinstance(v, str) and v}
        try:
            verdict = verify_manifest_signature(
                manifest,
                cms,
                trust_roots=self.trust.roots_for(self.agency_id),
                crls=self.trust.crls,
                intermediates=self.trust.intermediates,
                at=accepted["at"],
                expected_signer=wanted,
                timestamp_token=self.bundle.read(SIGNATURE_TOKEN),
            )
        except CongvanError as exc:
            changed = isinstance(exc, ManifestMismatch)  # the manifest is what changed
            self.report.refused("signature", exc, MANIFEST if changed else SIGNATURE)
            return
        when = (
            "its timestamp"
            if verdict.time_source == "timestamp"
            else "its acceptance, as the audit trail records it"
        )
        self.report.holds(
            "signature",
            f"{SIGNATURE} signs {MANIFEST}: {verdict.signer.common_name} "
            f"({verdict.signer.organizational_unit}), checked as of "
            f"{shown_exactly(verdict.checked_at)} ({when}){self._root(cms)}",
            warning=revoked_later(verdict.later_revocation),
        )
        pdf_sha256 = accepted["payload"].get("signed_pdf_sha256")
        pdf = self.bundle.read(SIGNED_PDF) if self.bundle.has(SIGNED_PDF) else None
        if not self.bundle.index.files_included and (pdf is not None or pdf_sha256):
            # It holds the main file's bytes: left out with the files.
            if pdf is not None:
                detail = f"index.json says the files are left out, yet {SIGNED_PDF} is here"
                self.report.fail("signed_pdf", "file_unexpected", detail, SIGNED_PDF)
            else:
                self.report.holds(
                    "signed_pdf",
                    f"left out with the files; the audit trail records its SHA-256 {pdf_sha256}",
                )
        elif pdf is None and pdf_sha256:
            self.report.fail(
                "signed_pdf",
                "member_missing",
                "the signed PDF the audit trail records is not in the bundle",
                SIGNED_PDF,
            )
        elif pdf is not None:
            self._signed_pdf(pdf, pdf_sha256, verdict.checked_at, verdict.signer.sha256)

    def _signed_pdf(self, pdf: bytes, recorded: str | None, at: datetime, signer: str) -> None:
        if hashlib.sha256(pdf).hexdigest() != recorded:
            self.report.fail(
                "signed_pdf",
                "signed_pdf_unrecorded",
                "the audit trail records another signed PDF",
                SIGNED_PDF,
            )
            return
        main = main_pdf(self.document)
        try:
            # As the inbox holds it: the manifest's main PDF with one signature appended,
            # by the manifest's signer, under the roots the issuing agency is held to.
            main_bytes = None if main is None else self.bundle.read(FILES + main)
            if main_bytes is None:
                raise ManifestMismatch("The manifest names no main PDF in the bundle.")
            verify_signed_main(
                main_bytes,
                pdf,
                certificate=signer,
                trust_roots=self.trust.roots_for(self.agency_id),
                crls=self.trust.crls,
                intermediates=self.trust.intermediates,
                at=at,
            )
        except CongvanError as exc:
            self.report.refused("signed_pdf", exc, SIGNED_PDF)
            return
        self.report.holds("signed_pdf", f"{SIGNED_PDF}: its PAdES signature verifies")

    def _attachments(self) -> list[dict[str, Any]]:
        listed = self.document.get("attachments")
        return [a for a in listed if isinstance(a, dict)] if isinstance(listed, list) else []

    def files(self) -> None:
        attachments = self._attachments()
        if not self.bundle.index.files_included:
            # A bundle saying "digests" must hold no file: a forged one would stand
            # unchecked beside the digests.
            held = sorted(self.bundle.names("file"))
            if held:
                self.report.fail(
                    "files",
                    "file_unexpected",
                    f"index.json says the files are left out, yet {held[0]} is in the bundle",
                    held[0],
                )
                return
            self.report.holds(
                "files",
                f"{len(attachments)} file(s) named by their "
                "SHA-256 in the signed manifest; their bytes are not in the bundle",
            )
            return
        problems = 0
        names = {FILES + str(a.get("filename")) for a in attachments}
        for attachment in attachments:
            name = FILES + str(attachment.get("filename"))
            if not self.bundle.has(name):
                self.report.fail(
                    "files", "file_missing", f"{name}, listed by the manifest, is missing", name
                )
                problems += 1
                continue
            # The bytes as read (``members``), not what index.json says of them.
            measured = self.measured.get(name)
            if measured is None or measured != (attachment.get("size"), attachment.get("sha256")):
                self.report.fail(
                    "files", "file_mismatch", f"{name} is not the file the manifest signs", name
                )
                problems += 1
        for name in sorted(set(self.bundle.names("file")) - names):
            self.report.fail("files", "file_extra", f"{name} is not listed by the manifest", name)
            problems += 1
        if not problems:
            self.report.holds(
                "files",
                f"{len(attachments)} file(s), each the size and SHA-256 the manifest signs",
            )

    def dispatches(self) -> None:
        folders = [n.removesuffix("package.json") for n in self.bundle.names("package_header")]
        if self.manifest is None:
            for folder in folders:
                detail = "no signed manifest to check the header against"
                self.report.fail(f"dispatch {folder[11:-1]}", "member_missing", detail, MANIFEST)
            return
        sent = self._event("send")
        recorded = (sent or {}).get("payload", {}).get("message_ids")
        dispatches = (sent or {}).get("payload", {}).get("dispatches")
        signed = Signed(
            document_id=self.document_id,
            agency_id=self.agency_id,
            manifest=self.manifest,
            signature=self.cms,
            filenames=tuple(str(a.get("filename")) for a in self._attachments()),
            message_ids=recorded if isinstance(recorded, dict) else {},
            dispatches=dispatches if isinstance(dispatches, dict) else {},
            trust=self.trust,
            accepted_at=self.accepted_at,
        )
        checks = DispatchChecks(self.bundle, self.report, signed)
        for folder in folders:
            checks.check(folder)
        self._recorded_evidence(sent, folders)
        self._requests(checks)

    def _requests(self, checks: DispatchChecks) -> None:
        """Each recall's or update's packages, receipts and answers, against what the trail
        recorded of the request; none the trail does not record."""
        requests: dict[str, Request] = {}
        for entry in self.entries:
            recorded = entry["payload"].get("request")
            if entry["event"] in ("recall", "update") and isinstance(recorded, dict):
                message_ids, dispatches = (
                    entry["payload"].get("message_ids"),
                    recorded.get("dispatches"),
                )
                if isinstance(message_ids, dict) and isinstance(dispatches, dict):
                    request_id = str(recorded.get("id"))
                    # The first record of a request stands: one appended later (after the
                    # last anchor, by anyone) cannot narrow what it must account for.
                    requests.setdefault(
                        request_id, Request(request_id, entry["event"], message_ids, dispatches)
                    )
        folders = [n.removesuffix("package.json") for n in self.bundle.names("request_header")]
        for folder in folders:
            request_id = folder.removeprefix(REQUESTS).split("/", 1)[0]
            request = requests.get(request_id)
            if request is None:
                detail = "the audit trail records no such recall or update of the document"
                self.report.fail(f"request {request_id}", "request_unrecorded", detail, folder)
                continue
            checks.check(folder, request)
        for request in requests.values():
            wanted = {
                "dispatch.deliver": (RECEIPT, "delivered"),
                "dispatch.agree": (_status("15"), "agreed (15)"),
                "dispatch.decline": (_status("16"), "declined (16)"),
            }
            self._held(
                f"{REQUESTS}{request.id}/", request.kind, request.dispatches, wanted, folders
            )

    def _recorded_evidence(self, sent: dict[str, Any] | None, folders: list[str]) -> None:
        """What the verified audit trail records must be in the bundle: a dispatch for each
        recipient the document was sent to, the receipt of each delivered one, the status
        message of each acknowledged (03) or refused after arriving (02) one, and of each
        report of its handling (04–06) the trail records. A bundle a
        dispute rests on cannot drop what would tell against its holder."""
        recorded = (sent or {}).get("payload", {}).get("dispatches")
        if not isinstance(recorded, dict):
            return
        wanted = {
            "dispatch.deliver": (RECEIPT, "delivered"),
            "dispatch.acknowledge": (_status("03"), "acknowledged (03)"),
            # a refusal of the package itself (by the inbox) has no status message
            "dispatch.refuse": (_status("02"), "refused (02)"),
            # the recipient's reports of its handling
            **{
                f"dispatch.{event}": (_status(code), f"reported {STATUS_LABEL[code]}")
                for code, event in PROGRESS_EVENTS.items()
            },
        }
        self._held(
            DISPATCHES, "dispatch", recorded, wanted, folders, once_arrived="dispatch.refuse"
        )

    def _held(
        self,
        prefix: str,
        label: str,
        dispatches: Mapping[str, str],
        wanted: Mapping[str, tuple[str, str]],
        folders: list[str],
        *,
        once_arrived: str = "",
    ) -> None:
        """Each of ``dispatches`` (their ids by recipient) has its folder under ``prefix``,
        holding the member ``wanted`` for each event the trail records of it (the event
        ``once_arrived`` only when it was delivered or the trail says a status message
        moved it)."""
        for recipient, dispatch_id in sorted(dispatches.items()):
            folder, item = f"{prefix}{recipient}/", f"{label} {recipient}"
            if folder not in folders:
                detail = "the audit trail records the sending to it; the bundle holds none"
                self.report.fail(item, "dispatch_missing", detail, folder)
                continue
            entries = [e for e in self.entries if e["payload"].get("dispatch_id") == dispatch_id]
            events = {str(e["event"]) for e in entries}
            # Moved by a status message, the trail says so (its code): then the message
            # is wanted whether or not the dispatch was seen to arrive (one that failed,
            # every answer lost, then refused by its recipient).
            by_status = {str(e["event"]) for e in entries if e["payload"].get("status")}
            arrived = "dispatch.deliver" in events or self.bundle.has(folder + RECEIPT)
            for event, (name, what) in wanted.items():
                needed = event in events and (
                    arrived or event != once_arrived or event in by_status
                )
                if needed and not self.bundle.has(folder + name):
                    detail = f"the audit trail records it {what}; {folder + name} is missing"
                    self.report.fail(item, "evidence_missing", detail, folder + name)


def _status(code: str) -> str:
    return f"status-{code}.json"
