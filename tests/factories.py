"""Factories, fakes and snapshots shared by the tests (integration and API)."""

from __future__ import annotations

import functools
import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import algos as asn1_algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import select

from congvan.actions.context import Actor, Effect, Guard, JobAction, JobContext, TransitionContext
from congvan.actions.exchange.envelope import canonical
from congvan.actions.signing import pki
from congvan.states.policy import ROLES
from congvan.storage.audit import AuditEvent
from congvan.storage.audit_checks import verify_chains
from congvan.storage.documents import DocumentRow
from congvan.storage.ids import new_id
from congvan.storage.signatures import SignatureRow
from congvan.storage.tables import metadata
from congvan.storage.unit_of_work import UnitOfWork
from congvan.workflow import directory
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.engine.creating import Arrival

# The sample letter every test document is modelled on: 1227/UBND-TĐKT of Thừa Thiên Huế.
AGENCY_ID = "000.00.00.H57"
AGENCY_NAME = "UBND tỉnh Thừa Thiên Huế"
OTHER_AGENCY_ID = "000.00.00.H58"
SAMPLE_FIELDS: dict[str, Any] = {
    "number": 1227,
    "symbol": "UBND-TĐKT",
    "doc_type": "CV",
    "place": "Thừa Thiên Huế",
    "issued_on": "2021-02-06",
    "subject": (
        "V/v tăng cường gửi, nhận văn bản điện tử giữa các cơ quan hành chính nhà nước "
        "nhằm phòng, chống dịch COVID-19"
    ),
    "content": (
        "Thực hiện Quyết định số 28/2018/QĐ-TTg của Thủ tướng Chính phủ về việc gửi, nhận "
        "văn bản điện tử giữa các cơ quan trong hệ thống hành chính nhà nước..."
    ),
    "signer_name": "Nguyễn Văn Phương",
    "signer_competence": "KT. CHỦ TỊCH",
    "signer_position": "PHÓ CHỦ TỊCH",
}
SAMPLE_RECIPIENTS: list[dict[str, str]] = [
    {"organ_id": "000.00.01.H57", "name": "Văn phòng UBND tỉnh"},
    {"organ_id": "000.00.02.H57", "name": "Sở Thông tin và Truyền thông"},
]

# The API tests' directory: the province (AGENCY_ID) and one of its departments.
A = AGENCY_ID
B = "000.00.11.H57"  # Sở Nội vụ tỉnh Thừa Thiên Huế
AGENCIES = {A: ("Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND"), B: ("Sở Nội vụ", "SNV")}

# The same letter as a clerk enters it over HTTP: a shorter subject, no content.
LETTER: dict[str, Any] = {
    **{name: value for name, value in SAMPLE_FIELDS.items() if name != "content"},
    "subject": "V/v tăng cường gửi, nhận văn bản điện tử giữa các cơ quan hành chính nhà nước",
    "urgency": 0,
    "recipients": [
        {"organ_id": B, "name": "Sở Nội vụ tỉnh Thừa Thiên Huế"},
        {"organ_id": "000.00.31.H57", "name": "UBND thành phố Huế"},
    ],
}
MAIN_PDF = b"%PDF-1.4\n% 1227/UBND-TDKT\n" + bytes(range(256))


# -- fakes for capabilities this installation does not provide yet -----------------------
# (checks_cleared is installed, but faked here so a draft need not pass the real checks)


def holds(_ctx: TransitionContext) -> tuple[bool, str]:
    return True, ""


def does_nothing(_ctx: TransitionContext) -> None:
    return None


FAKE_GUARDS: dict[str, Guard] = {
    name: holds
    for name in (
        "checks_cleared",
        "dated_this_year",
        "signer_has_authority",
        "signature_valid",
        "not_duplicate",
    )
}
FAKE_EFFECTS: dict[str, Effect] = {"attach_signature": does_nothing, "seal_packages": does_nothing}


def job_done(_ctx: JobContext) -> None:
    return None


def pipeline(**jobs: JobAction) -> dict[str, Any]:
    """Bootstrap arguments that let a document go all the way to ``sent`` with fakes."""
    return {
        "guards": FAKE_GUARDS,
        "effects": FAKE_EFFECTS,
        "jobs": {"run_review_checks": job_done, "deliver_dispatches": job_done, **jobs},
    }


# -- factories ---------------------------------------------------------------------------


def add_agency(
    runtime: Runtime,
    agency_id: str = AGENCY_ID,
    name: str = AGENCY_NAME,
    abbreviation: str = "UBND",
) -> str:
    """Register an agency unless it exists; returns its id."""
    with runtime.uow() as uow:
        if uow.agencies.agency(agency_id) is None:
            directory.add_agency(uow, agency_id, name, abbreviation, runtime.clock())
            uow.commit()
    return agency_id


Directory = tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]


def seed_directory(uow: UnitOfWork, now: datetime) -> Directory:
    """Agencies A and B, one user per role in each, one token per user: (tokens, users)."""
    tokens: dict[str, dict[str, str]] = {}
    users: dict[str, dict[str, str]] = {}
    for agency, (name, abbreviation) in AGENCIES.items():
        directory.add_agency(uow, agency, name, abbreviation, now)
        tokens[agency], users[agency] = {}, {}
        for role in ROLES:
            users[agency][role] = directory.ensure_user(uow, agency, role, [role], now)
            tokens[agency][role] = directory.create_token(uow, users[agency][role], now).token
    return tokens, users


def actor(roles: str | Sequence[str], agency: str = AGENCY_ID, name: str | None = None) -> Actor:
    """A person of ``agency`` with ``roles`` (one role name or several)."""
    roles = [roles] if isinstance(roles, str) else list(roles)
    return Actor(
        name=name or f"{'-'.join(sorted(roles))}@{agency}",
        agency_id=agency,
        roles=frozenset(roles),
    )


def create_document(
    runtime: Runtime,
    *,
    by: Actor | None = None,
    recipients: Sequence[Mapping[str, str]] | None = None,
    files: Sequence[Mapping[str, Any]] = (),
    **overrides: Any,
) -> str:
    """A draft modelled on letter 1227/UBND-TĐKT; returns its id."""
    by = by or actor("clerk")
    assert by.agency_id is not None
    add_agency(runtime, by.agency_id)
    created = runtime.engine.create_document(
        by,
        {**SAMPLE_FIELDS, **overrides},
        SAMPLE_RECIPIENTS if recipients is None else recipients,
        files,
    )
    return str(created["id"])


def sample_file(data: bytes = b"%PDF-1.4 1227/UBND-TDKT", **overrides: Any) -> dict[str, Any]:
    """The main file of a document, as ``create_document`` takes it."""
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "filename": "1227-UBND-TDKT.pdf",
        "media_type": "application/pdf",
        "size": len(data),
        "role": "main",
        "data": data,
        **overrides,
    }


def send_document(runtime: Runtime, document_id: str) -> dict[str, str]:
    """Approve, sign and send a draft (fakes stand in for checks and signing).

    Returns the dispatch id for each recipient's organ id.
    """
    runtime.engine.fire(document_id, "approve", actor("reviewer"))
    runtime.engine.fire(document_id, "sign", actor("signer"))
    runtime.engine.fire(document_id, "send", actor("clerk"))
    with runtime.uow(readonly=True) as uow:
        return {d.organ_id: d.id for d in uow.dispatches.for_document(document_id)}


# -- reading the database ----------------------------------------------------------------


def add_signature_row(
    uow: UnitOfWork,
    document_id: str,
    manifest: bytes,
    cms: bytes,
    at: datetime,
    *,
    mode: str = "upload",
    fingerprint: str = "0" * 64,
    signed_pdf_sha256: str = "",
) -> None:
    """The signature row of a document signed outside the ``sign`` effect (faked there);
    ``signed_pdf_sha256`` names the signed PDF kept with it, if any."""
    uow.signatures.add_signature(
        SignatureRow(
            id=new_id(),
            document_id=document_id,
            revision=1,
            manifest=manifest,
            manifest_sha256=hashlib.sha256(manifest).hexdigest(),
            cms=cms,
            mode=mode,
            signer="Nguyễn Văn Phương",
            certificate_fingerprint=fingerprint,
            signing_time=at,
            signed_pdf_sha256=signed_pdf_sha256,
            created_at=at,
        )
    )


def document_row(runtime: Runtime, document_id: str) -> DocumentRow:
    with runtime.uow(readonly=True) as uow:
        row = uow.documents.get(document_id)
    assert row is not None, document_id
    return row


def history(runtime: Runtime, document_id: str) -> list[AuditEvent]:
    with runtime.uow(readonly=True) as uow:
        return uow.audit.history(document_id)


def chain_problems(runtime: Runtime) -> dict[str, Any]:
    """The documents whose audit chain does not verify, with the first problem of each."""
    with runtime.uow(readonly=True) as uow:
        return {doc: problem for doc, problem in verify_chains(uow.conn) if problem is not None}


# -- snapshots ----------------------------------------------------------------


def dump_tables(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: a snapshot to compare."""
    with runtime.uow(readonly=True) as uow:
        return {
            table.name: [
                tuple(row)
                for row in uow.conn.execute(
                    select(table).order_by(*(table.primary_key.columns or table.columns))
                )
            ]
            for table in metadata.sorted_tables
        }


SENDER_ID = "000.00.00.H40"  # a sending agency on another instance
# (part name, role, media type, bytes) of a received letter's files
PackedFile = tuple[str, str, str, bytes]
PACKED_FILES: tuple[PackedFile, ...] = (
    ("files/1227-UBND-TĐKT.pdf", "main", "application/pdf", b"%PDF-1.4 1227/UBND-TDKT"),
)


def packed(
    message_id: str,
    agency_id: str,
    manifest: bytes,
    files: Sequence[PackedFile] = PACKED_FILES,
) -> bytes:
    """A package from ``SENDER_ID`` as ``open_package`` reads it; nothing in it is signed
    (``agency.p7s`` and ``signature.p7s`` are placeholders), as the inbox judged that."""
    placeholder = b"cms"
    members = [
        ("manifest.json", "manifest", "application/json", manifest),
        ("signature.p7s", "signature", "application/pkcs7-signature", placeholder),
        *files,
    ]
    header = canonical(
        {
            "format": "congvan-package/1",
            "message_id": message_id,
            "sender": SENDER_ID,
            "recipient": agency_id,
            "business_type": "new",
            "document_id": "doc-1227",
            "sent_at": "2021-02-06T02:15:00+00:00",
            "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "parts": [
                {
                    "name": name,
                    "role": role,
                    "media_type": media_type,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
                for name, role, media_type, data in members
            ],
        }
    )
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("package.json", header)
        archive.writestr("agency.p7s", placeholder)
        for name, _role, _media_type, data in members:
            archive.writestr(name, data)
    return sink.getvalue()


def arrival(
    message_id: str = "msg-1",
    agency_id: str = AGENCY_ID,
    files: Sequence[PackedFile] = PACKED_FILES,
    **changes: Any,
) -> Arrival:
    """A package from ``SENDER_ID`` as the inbox would store it once verified: its
    ``metadata`` what its manifest says (as the inbox reads it from there), unless a
    ``manifest`` is given."""
    document_id = changes.get("sender_document_id", f"doc-{message_id}")  # one per package
    metadata = changes.get(
        "metadata", {"number": 1227, "symbol": "UBND-TĐKT", "doc_type": "CV", "urgency": 0}
    )
    manifest = canonical(
        {
            "format": "congvan-manifest/1",
            "document_id": document_id,
            "recipients": [agency_id],
            **metadata,
        }
    )
    package = packed(message_id, agency_id, manifest, files)
    facts: dict[str, Any] = {
        "id": new_id(),
        "agency_id": agency_id,
        "sender_id": SENDER_ID,
        "message_id": message_id,
        "sender_document_id": document_id,
        "manifest": manifest,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "metadata": metadata,
        "package_sha256": hashlib.sha256(package).hexdigest(),
        "package": package,
        "receipt": b'{"status":"01"}',
        "receipt_cms": b"cms",
    }
    return Arrival(**{**facts, **changes})


# -- a peer's certificate -------------------------------------------------------------------

_ELSEWHERE_PASS = "another installation's passphrase"


@functools.cache
def _elsewhere_ca() -> pki.Issued:
    """The CA of another installation (EC, valid 2020-2050): its agencies are our peers."""
    return pki.create_ca(
        "CA of another installation",
        "Ủy ban nhân dân tỉnh Quảng Trị",
        passphrase=_ELSEWHERE_PASS,
        valid_from=datetime(2020, 1, 1, tzinfo=UTC),
        valid_days=365 * 30,
        key_type="ec",
    )


def peer_certificate(runtime: Runtime, agency_id: str, name: str = "Sở") -> bytes:
    """An organisational certificate of ``agency_id`` (PEM) made by another installation's
    CA, whose root ``runtime`` now trusts: what `congvan peers add --certificate` takes."""
    ca = _elsewhere_ca()
    runtime.trust.pin(x509.load_pem_x509_certificate(ca.cert_pem))
    return pki.issue_agency_certificate(
        ca,
        _ELSEWHERE_PASS,
        agency_id=agency_id,
        agency_name=name,
        passphrase=_ELSEWHERE_PASS,
        valid_from=runtime.clock() - timedelta(days=1),
        valid_days=730,
        crl_url="http://127.0.0.1:8000/v1/pki/crl",
        key_type="ec",
    ).cert_pem


def signed_with_sha1(cert: x509.Certificate, ca_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """``cert`` signed again by ``ca_key`` with SHA-1 (cryptography signs no certificate with
    it): what an old CA still issues, and what no signature here may rest on."""
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    algorithm = asn1_algos.SignedDigestAlgorithm({"algorithm": "sha1_rsa"})
    parsed["tbs_certificate"]["signature"] = algorithm
    parsed["signature_algorithm"] = algorithm
    tbs = parsed["tbs_certificate"].dump(force=True)
    parsed["signature_value"] = ca_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    return x509.load_der_x509_certificate(parsed.dump(force=True))
