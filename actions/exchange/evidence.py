"""Format ``congvan-evidence/2``: everything needed to prove, offline, what became of a document.

An evidence bundle is a ZIP archive of stored members (never compressed, as a package's:
``archive`` bounds it the same way). ``index.json`` is RFC 8785 canonical JSON:

``format``        ``"congvan-evidence/2"``.
``document_id``   The document the bundle is about; ``agency_id`` the agency issuing it.
``exported_at``   When the bundle was written, ISO 8601 in UTC.
``audit_head``    ``{"version", "hash"}``: the last entry of the document's audit chain
                  at export, which ``audit/entries.json`` must end with.
``files``         ``"included"`` when the files the manifest lists are members, or
                  ``"digests"`` when only the manifest's digests of them are.
``members``       ``{"name", "role", "size", "sha256"}`` of every other member, in
                  archive order; a member's role follows from its name:

    manifest.json                     manifest            the signed manifest, as signed
    signature.p7s                     signature           the signer's detached CMS (DER)
    signature.tsr                     signature_timestamp the TSA's token over it, if any
    signed.pdf                        signed_pdf          the main PDF with its PAdES
                                                          signature, if one was made
    files/NAME                        file                each file the manifest lists
    dispatches/AGENCY/package.json    package_header      the header sealed for a recipient
    dispatches/AGENCY/agency.p7s      agency_signature    the issuing agency's CMS over it
    dispatches/AGENCY/receipt.json    receipt             the recipient's signed receipt
    dispatches/AGENCY/receipt.p7s     receipt_signature   (``congvan-receipt/1``)
    dispatches/AGENCY/status-NN.json  status              each status message (02–06)
    dispatches/AGENCY/status-NN.p7s   status_signature    (``congvan-status/1``)
    requests/REQUEST/AGENCY/…         request_header,     a recall's or update's package
                                      request_signature,  to a recipient (REQUEST: its id
                                      request_receipt,    in the audit trail), its receipt
                                      request_receipt_    and the answer (status 15 or 16),
                                      signature,          named as under dispatches/
                                      request_status,
                                      request_status_
                                      signature
    audit/entries.json                audit               the document's whole audit chain
    anchors/AGENCY/SEQ.json           anchor              each anchor listing a head of it
    anchors/AGENCY/SEQ.p7s            anchor_signature    (``congvan-audit-anchor/1``)
    anchors/AGENCY/SEQ.tsr            anchor_timestamp    the TSA's token over one, if any
    trust/roots/SHA256.pem            root                the pinned roots at export
    trust/cas/SHA256.pem              ca                  the CA certificates held at export
                                                          (not pinned): a path may pass
                                                          through one to a root; none anchors
    trust/crls/SHA256.crl             crl                 the newest CRL of every issuer (DER)

``index.p7s`` (not listed: it signs the list) is the issuing agency's detached CMS over
``index.json``'s exact bytes, made at ``exported_at`` with its organisational key. It is
what makes the bundle whole: every other piece is signed on its own, and without it a
bundle with the newest anchor, the later entries and the packages of a recall left out
would be a consistent earlier history. (``congvan-evidence/1`` had no ``index.p7s`` and
no ``audit_head``; it is refused, to be exported again.)

``audit/entries.json`` is canonical JSON ``{"document_id", "entries": [...]}``, each entry
with every column its hash covers: ``version``, ``actor``, ``event``, ``from_state``,
``to_state``, ``at`` (as hashed), ``payload`` (the stored text), ``payload_digest``,
``prev_hash`` and ``hash``. Every signed piece is the byte-for-byte original, so
``openssl cms -verify -binary`` checks each CMS over its neighbour as it checks a manifest's.

Example index (one line in reality, wrapped here)::

    {"agency_id":"000.00.00.H57","audit_head":{"hash":"9f2c…","version":9},
    "document_id":"doc-1","exported_at":"2026-03-02T…","files":"included",
    "format":"congvan-evidence/2","members":[{"name":"manifest.json",
    "role":"manifest","sha256":"5c0a…e1f3","size":733}, …]}

``write_bundle`` writes one from an ``Evidence``; ``open_bundle`` opens one without
trusting it (``archive``'s refusals, then ``index.json``'s format);
``evidence_checks.verify_bundle`` judges it.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import IO, Any, BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from congvan.actions.signing.agencykeys import AgencyKey
from congvan.actions.signing.truststore import fingerprint
from congvan.states.errors import CongvanError, MessageMalformed
from congvan.storage.audit import NewEntry, timestamp
from congvan.storage.canonical import MAX_SAFE_INTEGER

from .archive import Archive, Limits, open_archive, stored_entry
from .envelope import SHA256_HEX, Members, canonical, iso, read_canonical, sign_body

FORMAT = "congvan-evidence/2"
INDEX = "index.json"
INDEX_SIGNATURE = "index.p7s"
MANIFEST = "manifest.json"
SIGNATURE = "signature.p7s"
SIGNATURE_TOKEN = "signature.tsr"
SIGNED_PDF = "signed.pdf"
FILES = "files/"
AUDIT = "audit/entries.json"
DISPATCHES = "dispatches/"  # then AGENCY/, holding:
REQUESTS = "requests/"  # then REQUEST/AGENCY/, holding the same
RECEIPT = "receipt.json"
INDEX_MEMBERS = (
    "format",
    "document_id",
    "agency_id",
    "exported_at",
    "audit_head",
    "files",
    "members",
)
MEMBER_MEMBERS = ("name", "role", "size", "sha256")
AUDIT_FIELDS = (
    "version",
    "actor",
    "event",
    "from_state",
    "to_state",
    "at",
    "payload",
    "payload_digest",
    "prev_hash",
    "hash",
)
# What verification reads, at most: a file is hashed in chunks, the signed PDF is read
# whole (to verify it) and bounded like a large file; every other member (signatures,
# JSON, roots, CRLs) is read whole and is small.
LIMITS = Limits(
    max_total_size=1 << 30, max_parts=5000, max_part_size=256 << 20, max_metadata_size=16 << 20
)
_FIXED = {
    MANIFEST: "manifest",
    SIGNATURE: "signature",
    SIGNATURE_TOKEN: "signature_timestamp",
    SIGNED_PDF: "signed_pdf",
    AUDIT: "audit",
}
_STEP = r"[^/]+"
_PATTERNS = (
    (re.compile(rf"files/{_STEP}"), "file"),
    (re.compile(rf"dispatches/{_STEP}/package\.json"), "package_header"),
    (re.compile(rf"dispatches/{_STEP}/agency\.p7s"), "agency_signature"),
    (re.compile(rf"dispatches/{_STEP}/receipt\.json"), "receipt"),
    (re.compile(rf"dispatches/{_STEP}/receipt\.p7s"), "receipt_signature"),
    (re.compile(rf"dispatches/{_STEP}/status-\d\d\.json"), "status"),
    (re.compile(rf"dispatches/{_STEP}/status-\d\d\.p7s"), "status_signature"),
    (re.compile(rf"requests/{_STEP}/{_STEP}/package\.json"), "request_header"),
    (re.compile(rf"requests/{_STEP}/{_STEP}/agency\.p7s"), "request_signature"),
    (re.compile(rf"requests/{_STEP}/{_STEP}/receipt\.json"), "request_receipt"),
    (re.compile(rf"requests/{_STEP}/{_STEP}/receipt\.p7s"), "request_receipt_signature"),
    (re.compile(rf"requests/{_STEP}/{_STEP}/status-\d\d\.json"), "request_status"),
    (re.compile(rf"requests/{_STEP}/{_STEP}/status-\d\d\.p7s"), "request_status_signature"),
    (re.compile(rf"anchors/{_STEP}/\d+\.json"), "anchor"),
    (re.compile(rf"anchors/{_STEP}/\d+\.p7s"), "anchor_signature"),
    (re.compile(rf"anchors/{_STEP}/\d+\.tsr"), "anchor_timestamp"),
    (re.compile(r"trust/roots/[0-9a-f]{64}\.pem"), "root"),
    (re.compile(r"trust/cas/[0-9a-f]{64}\.pem"), "ca"),
    (re.compile(r"trust/crls/[0-9a-f]{64}\.crl"), "crl"),
)


def role_of(name: str) -> str | None:
    """The role a member of this name has; None for a name the format does not allow."""
    if name in _FIXED:
        return _FIXED[name]
    return next((role for pattern, role in _PATTERNS if pattern.fullmatch(name)), None)


@dataclass(frozen=True)
class DispatchEvidence:
    """What was sent to one recipient and what it answered."""

    recipient: str
    header: bytes  # package.json, as sealed
    header_cms: bytes
    receipt: tuple[bytes, bytes] | None  # body, CMS
    statuses: tuple[tuple[str, bytes, bytes], ...]  # code, body, CMS
    request_id: str = ""  # a recall's or update's package; "" for the document's own

    @property
    def folder(self) -> str:
        if self.request_id:
            return f"{REQUESTS}{self.request_id}/{self.recipient}/"
        return f"{DISPATCHES}{self.recipient}/"


@dataclass(frozen=True)
class AnchorEvidence:
    """An anchor listing a head of the document's chain."""

    agency_id: str
    seq: int
    body: bytes
    cms: bytes
    token: bytes | None


@dataclass(frozen=True)
class Evidence:
    """Everything a bundle holds, gathered from one installation."""

    document_id: str
    agency_id: str
    manifest: bytes
    signature: bytes
    signature_token: bytes | None
    signed_pdf: bytes | None
    files: Mapping[str, bytes] | None  # by the manifest's filename; None: digests only
    dispatches: tuple[DispatchEvidence, ...]
    audit: tuple[NewEntry, ...]  # the entries as stored, oldest first
    anchors: tuple[AnchorEvidence, ...]
    roots: tuple[x509.Certificate, ...]
    crls: tuple[bytes, ...]
    cas: tuple[x509.Certificate, ...] = ()  # held, not pinned: links of a path, no anchors


def audit_body(document_id: str, entries: Sequence[NewEntry]) -> bytes:
    """``audit/entries.json`` for entries as stored (``at`` a datetime, payload text)."""
    listed = [
        {**{name: getattr(entry, name) for name in AUDIT_FIELDS}, "at": timestamp(entry.at)}
        for entry in entries
    ]
    return canonical({"document_id": document_id, "entries": listed})


def members_of(evidence: Evidence) -> Iterator[tuple[str, bytes]]:
    """Every member but the index, in archive order: name and bytes."""
    yield MANIFEST, evidence.manifest
    yield SIGNATURE, evidence.signature
    if evidence.signature_token is not None:
        yield SIGNATURE_TOKEN, evidence.signature_token
    if evidence.signed_pdf is not None:
        yield SIGNED_PDF, evidence.signed_pdf
    for name, data in (evidence.files or {}).items():
        yield FILES + name, data
    for dispatch in evidence.dispatches:
        folder = dispatch.folder
        yield folder + "package.json", dispatch.header
        yield folder + "agency.p7s", dispatch.header_cms
        if dispatch.receipt is not None:
            yield folder + "receipt.json", dispatch.receipt[0]
            yield folder + "receipt.p7s", dispatch.receipt[1]
        for code, body, cms in dispatch.statuses:
            yield f"{folder}status-{code}.json", body
            yield f"{folder}status-{code}.p7s", cms
    yield AUDIT, audit_body(evidence.document_id, evidence.audit)
    for anchor in evidence.anchors:
        stem = f"anchors/{anchor.agency_id}/{anchor.seq}"
        yield stem + ".json", anchor.body
        yield stem + ".p7s", anchor.cms
        if anchor.token is not None:
            yield stem + ".tsr", anchor.token
    for root in evidence.roots:
        yield f"trust/roots/{fingerprint(root)}.pem", root.public_bytes(Encoding.PEM)
    for ca in evidence.cas:
        yield f"trust/cas/{fingerprint(ca)}.pem", ca.public_bytes(Encoding.PEM)
    for crl in evidence.crls:
        yield f"trust/crls/{hashlib.sha256(crl).hexdigest()}.crl", crl


def write_bundle(
    sink: IO[bytes], evidence: Evidence, exported_at: datetime, agency: AgencyKey
) -> int:
    """Write the bundle of ``evidence`` into ``sink``, its index signed by ``agency`` (the
    issuing agency's key); how many members it has."""
    if agency.agency_id != evidence.agency_id:
        raise ValueError(f"the index is signed by the issuing agency, {evidence.agency_id}")
    if not evidence.audit:
        raise ValueError("a document's evidence has its audit chain")
    members = list(members_of(evidence))
    for name, _data in members:
        if role_of(name) is None:  # e.g. a file name with a slash: never written
            raise ValueError(f"{name!r} cannot be a member of {FORMAT}")
    index = canonical(
        {
            "format": FORMAT,
            "document_id": evidence.document_id,
            "agency_id": evidence.agency_id,
            "exported_at": iso(exported_at),
            "audit_head": {"version": evidence.audit[-1].version, "hash": evidence.audit[-1].hash},
            "files": "digests" if evidence.files is None else "included",
            "members": [
                {
                    "name": name,
                    "role": role_of(name),
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
                for name, data in members
            ],
        }
    )
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(stored_entry(INDEX, exported_at), index)
        archive.writestr(
            stored_entry(INDEX_SIGNATURE, exported_at), sign_body(index, agency, exported_at)
        )
        for name, data in members:
            archive.writestr(stored_entry(name, exported_at), data)
    return len(members) + 2


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """A member as ``index.json`` lists it."""

    name: str
    role: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Index:
    """What ``index.json`` says."""

    document_id: str
    agency_id: str
    exported_at: datetime
    audit_head: tuple[int, str]  # the last entry's version and hash at export
    files_included: bool
    members: tuple[Listed, ...]
    raw: bytes = b""  # index.json's exact bytes, as index.p7s signs them


class _Small:
    """The members read whole: all but the document's files."""

    def __contains__(self, name: object) -> bool:
        return name != SIGNED_PDF and not (isinstance(name, str) and name.startswith(FILES))


class Bundle:
    """A bundle whose archive and index are well formed; nothing in it is trusted yet."""

    def __init__(self, archive: Archive, index: Index) -> None:
        self.archive = archive
        self.index = index
        self.listed = {m.name: m for m in index.members}
        self.damaged: set[str] = set()  # members whose bytes do not read back (CRC, size)

    @property
    def sha256(self) -> str:
        return self.archive.sha256

    def has(self, name: str) -> bool:
        return name in self.archive.members and name in self.listed and name not in self.damaged

    def measure(self, name: str) -> tuple[int, str] | None:
        """A present member's size and SHA-256, read in chunks; None (and damaged) when its
        bytes do not read back."""
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in self.archive.chunks(name):
                digest.update(chunk)
                size += len(chunk)
        except MessageMalformed:
            self.damaged.add(name)
            return None
        return size, digest.hexdigest()

    def read(self, name: str) -> bytes | None:
        """A member listed, present and whole; None otherwise."""
        return self.archive.read(name) if self.has(name) else None

    def open(self, name: str) -> IO[bytes]:
        return self.archive.open(name)

    def names(self, role: str) -> list[str]:
        """The listed members of a role, in index order."""
        return [m.name for m in self.index.members if m.role == role]

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_bundle(stream: BinaryIO, limits: Limits = LIMITS) -> Bundle:
    """Open a bundle from ``stream`` (seekable), refusing an unsafe archive or a bad index.

    Members missing, extra or changed are not refused here: ``verify_bundle`` names them.
    """
    archive = open_archive(stream, limits, _Small())
    try:
        if INDEX not in archive.members:
            raise MessageMalformed(f"The bundle has no {INDEX}.", reason="missing_part", part=INDEX)
        raw = archive.read(INDEX)
        try:
            index = _index(read_canonical(raw, FORMAT), raw)
        except CongvanError as exc:  # what is wrong is in the index: it is named
            exc.details.setdefault("part", INDEX)
            raise
        return Bundle(archive, index)
    except BaseException:
        archive.close()
        raise


def _index(content: dict[str, Any], exact: bytes) -> Index:
    members = Members(content, INDEX_MEMBERS)
    head = content["audit_head"]
    if (
        not isinstance(head, dict)
        or set(head) != {"version", "hash"}
        or type(head["version"]) is not int
        or head["version"] < 1
        or not isinstance(head["hash"], str)
        or not SHA256_HEX.fullmatch(head["hash"])
    ):
        raise MessageMalformed(
            "audit_head must be {version, hash} of the chain's last entry.",
            reason="member",
            member="audit_head",
        )
    raw = content["members"]
    if not isinstance(raw, list):
        raise MessageMalformed("members must be a list.", reason="member", member="members")
    listed = tuple(_listed(item) for item in raw)
    names = {m.name for m in listed}
    if len(names) != len(listed) or INDEX in names or INDEX_SIGNATURE in names:
        raise MessageMalformed("members lists a name twice.", reason="duplicate_name")
    return Index(
        document_id=members.identifier("document_id"),
        agency_id=members.organ_id("agency_id"),
        exported_at=members.moment("exported_at"),
        audit_head=(head["version"], head["hash"]),
        files_included=members.choice("files", ("included", "digests")) == "included",
        members=listed,
        raw=exact,
    )


def _listed(raw: Any) -> Listed:
    if not isinstance(raw, dict):
        raise MessageMalformed("A member must be an object.", reason="member", member="members")
    members = Members(raw, MEMBER_MEMBERS)
    name, size = raw["name"], raw["size"]
    if not isinstance(name, str) or role_of(name) is None or raw["role"] != role_of(name):
        raise MessageMalformed(
            "A member's name or role is not one this format allows.",
            reason="unsafe_name",
            part=str(name)[:300],
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise MessageMalformed("A member's size must be a count of bytes.", reason="member")
    return Listed(name, str(raw["role"]), size, members.sha256("sha256"))


def json_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object ``data`` holds; None for anything else (its size bounded by LIMITS)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def claimed_moment(body: bytes, key: str) -> datetime | None:
    """The moment a signed JSON body claims under ``key``, read before it is verified (the
    moment as of which its signature is judged); None when it claims none."""
    return _aware((json_object(body) or {}).get(key))


def _aware(value: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.utcoffset() is not None else None


def read_audit(data: bytes, document_id: str) -> list[NewEntry] | None:
    """The entries ``audit/entries.json`` holds, shaped as stored rows (``at`` a datetime),
    when they are the document's and well typed; None otherwise."""
    content = json_object(data)
    if content is None or content.get("document_id") != document_id:
        return None
    listed = content.get("entries")
    if not isinstance(listed, list):
        return None
    entries = []
    for entry in listed:
        if not isinstance(entry, dict) or set(entry) != set(AUDIT_FIELDS):
            return None
        texts = [entry[name] for name in AUDIT_FIELDS if name != "version"]
        version = entry["version"]
        if type(version) is not int or not 1 <= version <= MAX_SAFE_INTEGER:
            return None  # a version no chain holds (JSON's integers end at 2**53 - 1)
        if not all(isinstance(t, str) for t in texts):
            return None
        at = _aware(entry["at"])
        if at is None:
            return None
        entries.append(NewEntry(**{**entry, "document_id": document_id, "at": at}))
    return entries
