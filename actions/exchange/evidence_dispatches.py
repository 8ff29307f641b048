"""Judging what an evidence bundle holds of one dispatch: header, receipt, status messages.

Under ``dispatches/AGENCY/`` (``evidence``), checked against the document the rest of the
bundle proved (``Signed``):

    dispatch AGENCY     the issuing agency's CMS over package.json, as of its ``sent_at``;
                        the header names the recipient of its folder, the issuing agency,
                        the document, the signed manifest and the message id the audit
                        trail recorded at ``send`` (header_recipient, header_sender,
                        header_document_id, header_manifest_digest, header_message_id)
    receipt AGENCY      ``receipts.verify_receipt``: signed by the recipient agency, naming
                        the message id, the manifest and the package, which is assembled
                        again from the bundle when it holds the files (and ``signed.pdf``
                        when the header lists the signed PDF; else the receipt's own
                        digest is taken, and the verdict says so)
    status AGENCY NN    ``status.verify_status``: signed by the recipient agency, from it,
                        to the issuing one, about the message id; of code NN and about
                        the document (status_mismatch)

A receipt or status is judged as of when the audit trail records this installation took
it (the event it moved the dispatch by), as it was judged then: a certificate renewed
since the moment it claims does not refuse it, and a key compromised before it was taken
does (whatever moment its holder wrote). One the trail does not record is judged as of
the moment it claims, and the verdict says so.

Under ``requests/REQUEST/AGENCY/``, a recall's or update's package is checked the same way
against what the audit trail recorded of that request (``Request``): its business type and
message id, and the original it names, the document's own package to that recipient
(header_business_type, header_original); its receipt is taken at its own package digest
(the request's package is not re-assembled).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, cast

from congvan.actions.signing.keystore import TrustMaterial
from congvan.states.dispatch import STATUS_EVENTS
from congvan.states.errors import CongvanError
from congvan.states.timeliness import shown_exactly

from .envelope import read_canonical, verify_body
from .evidence import FILES, SIGNED_PDF, Bundle, claimed_moment, json_object
from .evidence_report import Report, revoked_later
from .package import FORMAT as PACKAGE_FORMAT
from .package import Header, read_header
from .receipts import verify_receipt
from .status import verify_status
from .writing import SealedHeader, assemble


@dataclass(frozen=True)
class Signed:
    """The document as the rest of the bundle proved it, which every dispatch must name."""

    document_id: str
    agency_id: str
    manifest: bytes
    signature: bytes
    filenames: tuple[str, ...]  # as the manifest lists them
    message_ids: Mapping[str, str]  # recorded in the audit trail at send, by recipient
    dispatches: Mapping[str, str]  # their ids, recorded at send, by recipient
    trust: TrustMaterial
    # When the trail records an event of a dispatch (its id, the event, the status code
    # that moved it): the moment the message behind it was taken, and judged.
    accepted_at: Callable[[str, str, str | None], datetime | None]


@dataclass(frozen=True)
class Request:
    """A recall or update of the document, as the audit trail recorded it."""

    id: str
    kind: str  # recall, update
    message_ids: Mapping[str, str]  # its packages', by recipient
    dispatches: Mapping[str, str]  # its dispatches' ids, by recipient


class DispatchChecks:
    """The checks of the dispatches of one bundle, added to its report."""

    def __init__(self, bundle: Bundle, report: Report, signed: Signed) -> None:
        self.bundle = bundle
        self.report = report
        self.signed = signed
        self.request: Request | None = None  # the request whose package is being checked
        self.dispatch_id: str | None = None  # the dispatch the trail records for the folder

    def check(self, folder: str, request: Request | None = None) -> None:
        """Check the dispatch under ``folder`` (``dispatches/AGENCY/``), or the package of
        ``request`` under it (``requests/REQUEST/AGENCY/``)."""
        recipient = folder.removesuffix("/").rsplit("/", 1)[1]
        self.request = request
        recorded = self.signed.dispatches if request is None else request.dispatches
        self.dispatch_id = recorded.get(recipient)
        item = f"dispatch {recipient}" if request is None else f"{request.kind} {recipient}"
        body = self.bundle.read(folder + "package.json")
        cms = self.bundle.read(folder + "agency.p7s")
        if body is None or cms is None:
            missing = folder + ("agency.p7s" if body else "package.json")
            self.report.fail(
                item, "member_missing", "the header or its signature is missing", missing
            )
            return
        header = self._header(item, folder, body, cms, recipient)
        if header is None:
            return
        self._receipt(folder, header)
        for name in self.bundle.names("status" if request is None else "request_status"):
            if name.startswith(folder):
                self._status(name, header)

    def _header(
        self, item: str, folder: str, body: bytes, cms: bytes, recipient: str
    ) -> Header | None:
        signed = self.signed
        try:
            header = read_header(read_canonical(body, PACKAGE_FORMAT))
            verdict = verify_body(
                body, cms, signed.trust, agency_id=header.sender, at=header.sent_at
            )
        except CongvanError as exc:
            self.report.refused(item, exc, folder + "agency.p7s")
            return None
        request = self.request
        recorded = (signed.message_ids if request is None else request.message_ids).get(recipient)
        if request is not None:
            original = header.original.message_id if header.original is not None else None
            for wrong, code, detail in (
                (
                    header.business_type != request.kind,
                    "business_type",
                    f"the header is a {header.business_type}, the trail records a {request.kind}",
                ),
                (
                    original != signed.message_ids.get(recipient),
                    "original",
                    "the header names another package than the document's to it",
                ),
            ):
                if wrong:
                    self.report.fail(item, f"header_{code}", detail, folder + "package.json")
                    return None
        for wrong, code, detail in (
            (header.recipient != recipient, "recipient", f"the header is for {header.recipient}"),
            (header.sender != signed.agency_id, "sender", f"the header is from {header.sender}"),
            (header.document_id != signed.document_id, "document_id", "another document"),
            (
                header.manifest_sha256 != hashlib.sha256(signed.manifest).hexdigest(),
                "manifest_digest",
                "the header names another manifest",
            ),
            (
                recorded != header.message_id,
                "message_id",
                f"the audit trail records message id {recorded} at send",
            ),
        ):
            if wrong:
                self.report.fail(item, f"header_{code}", detail, folder + "package.json")
                return None
        self.report.holds(
            item,
            f"package.json signed by {header.sender}, message id {header.message_id}, sent "
            f"{shown_exactly(header.sent_at)}{self.report.anchored(cms, signed.trust.roots)}",
            warning=revoked_later(verdict.later_revocation),
        )
        return header

    def _package_sha256(self, folder: str, header: Header) -> str | None:
        """The package's SHA-256, assembled again from the bundle; None without the files."""
        names = self.signed.filenames
        if self.request is not None:
            return None  # a request's package carries no files to assemble it from
        body = self.bundle.read(folder + "package.json")
        cms = self.bundle.read(folder + "agency.p7s")
        if not self.bundle.index.files_included or body is None or cms is None:
            return None
        if not all(self.bundle.has(FILES + n) for n in names):
            return ""  # a file is missing: no package digest can match
        sealed = SealedHeader(header.message_id, body, cms, header.manifest_sha256, header.sent_at)
        if header.signed_pdf is not None and not self.bundle.has(SIGNED_PDF):
            return ""  # the package carried a signed PDF the bundle lacks
        files = {n: cast(BinaryIO, self.bundle.open(FILES + n)) for n in names}
        signed_pdf = None
        if header.signed_pdf is not None:
            signed_pdf = cast(BinaryIO, self.bundle.open(SIGNED_PDF))
        try:
            written = assemble(
                io.BytesIO(),
                sealed,
                manifest=self.signed.manifest,
                signature=self.signed.signature,
                files=files,
                signed_pdf=signed_pdf,
            )
        except (ValueError, CongvanError):
            return ""  # not the files the header names
        finally:
            for stream in (*files.values(), *([signed_pdf] if signed_pdf else [])):
                stream.close()
        return written.sha256

    def _judged_at(
        self, body: bytes, key: str, header: Header, event: str | None, status: str | None
    ) -> tuple[datetime, str]:
        """The moment a receipt's or status's signature is judged at, and what it is: when
        the trail records that this installation took it (the event it moved the dispatch
        by), as it was judged then; else the moment it claims (``key``), which its signer
        chose."""
        taken = (
            None
            if self.dispatch_id is None or event is None
            else self.signed.accepted_at(self.dispatch_id, event, status)
        )
        if taken is not None:
            return taken, "its acceptance, as the audit trail records it"
        claimed = claimed_moment(body, key)
        if claimed is not None:
            return claimed, f"the {key} it claims: the audit trail records no acceptance of it"
        return header.sent_at, "the package's sending: it claims no moment"

    def _label(self, what: str, header: Header) -> str:
        kind = "" if self.request is None else f"{self.request.kind} "
        return f"{kind}{what} {header.recipient}"

    def _receipt(self, folder: str, header: Header) -> None:
        item, member = self._label("receipt", header), folder + "receipt.json"
        body, cms = self.bundle.read(member), self.bundle.read(folder + "receipt.p7s")
        if body is None or cms is None:
            if self.bundle.has(member) or self.bundle.has(folder + "receipt.p7s"):
                self.report.fail(item, "member_missing", "half a receipt is missing", member)
            else:
                self.report.holds(item, "no receipt kept: nothing here proves the package arrived")
            return
        package = self._package_sha256(folder, header)
        claimed = (json_object(body) or {}).get("package_sha256")
        judged_at, when = self._judged_at(body, "received_at", header, "deliver", None)
        try:
            receipt = verify_receipt(
                body,
                cms,
                self.signed.trust,
                expected_message_id=header.message_id,
                expected_package_sha256=str(claimed) if package is None else package,
                expected_manifest_sha256=header.manifest_sha256,
                expected_receiver=header.recipient,
                expected_sender=header.sender,
                now=judged_at,
            )
        except CongvanError as exc:
            self.report.refused(item, exc, member)
            return
        checked = "re-assembled, same"
        if package is None:
            checked = "not re-assembled (no files)" if self.request is None else "as received"
        self.report.holds(
            item,
            f"status 01 signed by {receipt.recipient} at {shown_exactly(receipt.received_at)}, "
            f"message id {receipt.message_id}; package {checked}; checked as of "
            f"{shown_exactly(judged_at)} ({when})"
            f"{self.report.anchored(cms, self.signed.trust.roots)}",
            warning=revoked_later(receipt.later_revocation),
        )

    def _status(self, member: str, header: Header) -> None:
        code = member.rsplit("status-", 1)[1].removesuffix(".json")
        item = f"{self._label('status', header)} {code}"
        body = self.bundle.read(member)
        cms = self.bundle.read(member.removesuffix("json") + "p7s")
        if body is None or cms is None:
            self.report.fail(
                item, "member_missing", "the status message or its signature is missing", member
            )
            return
        event = STATUS_EVENTS.get(code)
        judged_at, when = self._judged_at(body, "at", header, event, code)
        try:
            status = verify_status(
                body,
                cms,
                self.signed.trust,
                expected_recipient=header.sender,
                expected_from=header.recipient,
                expected_message_id=header.message_id,
                sent_at=header.sent_at,
                now=judged_at,
            )
        except CongvanError as exc:
            self.report.refused(item, exc, member)
            return
        if status.code != code or status.document_id != self.signed.document_id:
            self.report.fail(
                item,
                "status_mismatch",
                "the message is another status or about another document",
                member,
            )
            return
        self.report.holds(
            item,
            f"status {status.code} signed by {status.from_agency} at {shown_exactly(status.at)}, "
            f"checked as of {shown_exactly(judged_at)} ({when})"
            f"{self.report.anchored(cms, self.signed.trust.roots)}",
            warning=revoked_later(status.later_revocation),
        )
