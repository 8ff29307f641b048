"""Two agencies that exchange documents, their keys, a signer, and the packages between them.

Built with ``actions.signing.pki`` (the CA ``congvan keys`` uses) and no database: a pinned
root with its CRL; the sending agency (the province, ``A``) and the receiving one (its
department of home affairs, ``B``), each with an organisational certificate; a signer of
A, with the letter as a real PDF and that PDF signed by the signer (PAdES); and the wrong
ones the tests need: a root nobody pinned, a revoked agency certificate, an agency
certificate naming a third agency, another signer of A.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography import x509

from congvan.actions.exchange.envelope import sign_body
from congvan.actions.exchange.package import Written
from congvan.actions.exchange.writing import write_package
from congvan.actions.signing import pades, pki
from congvan.actions.signing.agencykeys import AgencyKey
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.keystore import TrustMaterial
from congvan.actions.signing.manifest import build_manifest
from congvan.workflow.letters import sample_pdf
from tests.factories import SAMPLE_FIELDS

A = "000.00.00.H57"  # UBND tỉnh Thừa Thiên Huế
B = "000.00.11.H57"  # Sở Nội vụ
C = "000.00.31.H57"  # UBND thành phố Huế
NOW = datetime.now(UTC).replace(microsecond=0)
SENT_AT = NOW - timedelta(minutes=5)
PASSPHRASE = "exchange tests"
CRL_URL = "http://pki.congvan.test/root.crl"
MAIN_PDF = b"%PDF-1.4\n% 1227/UBND-TDKT\n" + bytes(range(256)) * 40
MAIN_NAME = "1227-UBND-TĐKT.pdf"
APPENDIX = "Phụ lục danh sách đơn vị.pdf"


@dataclass(frozen=True)
class Person:
    key: pki.PrivateKey
    cert: x509.Certificate


@dataclass
class World:
    root: pki.Issued
    trust: TrustMaterial
    agencies: dict[str, AgencyKey]
    signer: Person
    person_of_a: Person  # a signer's certificate, used where the agency's is wanted
    unpinned_a: AgencyKey  # A's organisational certificate from a root nobody pinned
    revoked_a: AgencyKey
    a_naming_c: Person  # an agency certificate of C, offered as A's
    other_signer: Person  # another signer of A
    pdf: bytes  # the letter as a real PDF, to be signed
    files: dict[str, bytes] = field(default_factory=dict)

    def signed(self, pdf: bytes | None = None, *, by: Person | None = None) -> bytes:
        """``pdf`` (the letter's by default) signed in PAdES by ``by`` (the signer)."""
        by = by or self.signer
        return pades.sign_pdf(
            self.pdf if pdf is None else pdf,
            key=by.key,
            cert=by.cert,
            chain=[self.root.certificate],
            signer_name=SAMPLE_FIELDS["signer_name"],
            position=SAMPLE_FIELDS["signer_position"],
            agency_name="UBND tỉnh Thừa Thiên Huế",
            signing_time=SENT_AT - timedelta(hours=1),
        )

    def document(
        self, agency_id: str = A, document_id: str = "doc-1", *, main: bytes = MAIN_PDF
    ) -> tuple[bytes, bytes]:
        """The manifest of a letter of ``agency_id`` and the signer's CMS over it."""
        attachments = [
            _attachment("main", MAIN_NAME, main),
            _attachment("appendix", APPENDIX, self.files[APPENDIX]),
        ]
        document = {
            "id": document_id,
            "revision": 1,
            "agency_id": agency_id,
            **SAMPLE_FIELDS,
            # An agency does not send a document to itself.
            "recipients": [r for r in (B, C) if r != agency_id],
        }
        manifest = build_manifest(document, attachments)
        cms = sign_manifest(
            manifest,
            key=self.signer.key,
            cert=self.signer.cert,
            chain=[self.root.certificate],
            signing_time=SENT_AT - timedelta(hours=1),
        )
        return manifest, cms

    def write(
        self,
        *,
        recipient: str = B,
        message_id: str = "dispatch-7f3a",
        main: bytes = MAIN_PDF,
        signed_pdf: bytes | None = None,
    ) -> tuple[bytes, Written]:
        """A's package of the sample letter for ``recipient``: its bytes and what A keeps.

        ``main`` is the letter's main file, ``signed_pdf`` what travels as it signed.
        """
        manifest, cms = self.document(main=main)
        sink = io.BytesIO()
        written = write_package(
            sink,
            message_id=message_id,
            recipient=recipient,
            manifest=manifest,
            signature=cms,
            files={name: io.BytesIO(data) for name, data in self.file_bytes(main).items()},
            agency=self.agencies[A],
            sent_at=SENT_AT,
            signed_pdf=signed_pdf,
        )
        return sink.getvalue(), written

    def write_signed(self, signed_pdf: bytes | None = None) -> bytes:
        """A's package of the letter as a real PDF with ``signed_pdf`` (the signer's)."""
        return self.write(main=self.pdf, signed_pdf=signed_pdf or self.signed())[0]

    def file_bytes(self, main: bytes = MAIN_PDF) -> dict[str, bytes]:
        return {MAIN_NAME: main, APPENDIX: self.files[APPENDIX]}


def _attachment(role: str, filename: str, data: bytes) -> dict[str, Any]:
    return {
        "role": role,
        "filename": filename,
        "media_type": "application/pdf",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


@functools.cache
def build_world() -> World:
    """The PKI above; a few seconds of RSA key generation, so built once per session."""
    root = pki.create_ca(
        "Congvan Test Root", "Congvan Test PKI", passphrase=PASSPHRASE, **_terms(3650)
    )
    other_root = pki.create_ca(
        "Somebody Else's Root", "Elsewhere", passphrase=PASSPHRASE, **_terms(3650)
    )
    agencies = {agency: _agency(root, agency) for agency in (A, B, C)}
    revoked = _agency(root, A)
    signer = _signer(root, SAMPLE_FIELDS["signer_name"], f"signer@{A}")
    crl = pki.make_crl(
        root,
        PASSPHRASE,
        [(revoked.cert.serial_number, NOW - timedelta(days=2), x509.ReasonFlags.key_compromise)],
        this_update=NOW - timedelta(hours=1),
        next_update=NOW + timedelta(days=7),
        number=1,
    )
    c = agencies[C]
    return World(
        root=root,
        trust=TrustMaterial(roots=[root.certificate], crls=[crl]),
        agencies=agencies,
        signer=signer,
        person_of_a=signer,
        unpinned_a=_agency(other_root, A),
        revoked_a=revoked,
        a_naming_c=Person(c.key, c.cert),
        other_signer=_signer(root, "Trần Thị Hoa", f"hoa@{A}"),
        pdf=sample_pdf(),
        files={APPENDIX: b"%PDF-1.4\n% phu luc\n" + b"\x00\xff" * 500},
    )


def _terms(days: int) -> dict[str, Any]:
    return {"valid_from": NOW - timedelta(days=30), "valid_days": days}


def _agency(ca: pki.Issued, agency_id: str) -> AgencyKey:
    issued = pki.issue_agency_certificate(
        ca,
        PASSPHRASE,
        agency_id=agency_id,
        agency_name=f"Cơ quan {agency_id}",
        passphrase=PASSPHRASE,
        crl_url=CRL_URL,
        **_terms(1095),
    )
    person = _load(issued)
    return AgencyKey(agency_id, person.key, person.cert, (ca.certificate,))


def _signer(ca: pki.Issued, name: str, user_id: str) -> Person:
    return _load(
        pki.issue_signer_certificate(
            ca,
            PASSPHRASE,
            full_name=name,
            position=SAMPLE_FIELDS["signer_position"],
            agency_id=A,
            agency_name="UBND tỉnh Thừa Thiên Huế",
            user_id=user_id,
            passphrase=PASSPHRASE,
            crl_url=CRL_URL,
            **_terms(730),
        )
    )


def _load(issued: pki.Issued) -> Person:
    return Person(pki.load_private_key(issued.key_pem, PASSPHRASE), issued.certificate)


# -- taking packages apart and putting them back together ------------------------------


def members(package: bytes) -> dict[str, bytes]:
    """The archive's members by name, in archive order."""
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def zipped(parts: Mapping[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=compression) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return sink.getvalue()


def header(parts: Mapping[str, bytes]) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(parts["package.json"])
    return content


def resigned(
    parts: Mapping[str, bytes],
    change: Callable[[dict[str, Any]], None] = lambda _content: None,
    *,
    by: AgencyKey | Person,
    body: Callable[[dict[str, Any]], bytes] = rfc8785.dumps,
) -> dict[str, bytes]:
    """``parts`` with package.json changed by ``change`` and signed again by ``by``."""
    content = header(parts)
    change(content)
    new_body = body(content)
    if isinstance(by, AgencyKey):
        cms = sign_body(new_body, by, SENT_AT)
    else:
        cms = sign_manifest(new_body, key=by.key, cert=by.cert, chain=[], signing_time=SENT_AT)
    return {**parts, "package.json": new_body, "agency.p7s": cms}


def listed(name: str, role: str, media_type: str, data: bytes) -> dict[str, Any]:
    """A ``parts`` entry of package.json for ``data``."""
    return {
        "name": name,
        "role": role,
        "media_type": media_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
