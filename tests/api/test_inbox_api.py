"""POST /v1/inbox: a package from another agency is verified, stored once, answered signed."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import rfc8785
from cryptography import x509

from congvan.actions.exchange.envelope import sign_body
from congvan.actions.exchange.package import RECALL, UPDATE, Original
from congvan.actions.exchange.receipts import verify_receipt
from congvan.actions.exchange.writing import assemble, seal_header
from congvan.actions.signing import issuers, keystore, pki
from congvan.actions.signing.agencykeys import AgencyKey
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.manifest import build_manifest
from congvan.workflow import directory
from tests.api.conftest import Api, assert_error
from tests.exchange_world import members, zipped
from tests.factories import SAMPLE_FIELDS, A, B

PASS = "inbox test passphrase"
C = "000.00.31.H57"  # an agency this installation does not receive for
MAIN_PDF = b"%PDF-1.4\n% 1227/UBND-TDKT\n" + bytes(range(256)) * 20


@dataclass
class Sender:
    """Agency A's side: its organisational key and a signer's, both issued by our CA."""

    api: Api
    signer_key: pki.PrivateKey
    signer_cert: x509.Certificate

    def package(
        self,
        *,
        recipient: str = B,
        message_id: str = "dispatch-1",
        agency: AgencyKey | None = None,
        about: Original | None = None,
        sent_at: datetime | None = None,
        signed_at: datetime | None = None,
        recipients: list[str] | None = None,
        changes: dict[str, str | None] | None = None,
        **fields: Any,
    ) -> bytes:
        """A's package for ``recipient``, sealed with A's key held here or ``agency``; a
        recall of the document ``about`` names, when given; saying it was sent at
        ``sent_at`` (its header still signed now, or at ``signed_at``), when given; its
        manifest naming ``recipients`` (else the one it is for). With ``changes``, an
        update of ``about`` correcting them, not a recall."""
        now = self.api.clock()
        attachment = {
            "role": "main",
            "filename": "1227-UBND-TĐKT.pdf",
            "media_type": "application/pdf",
            "size": len(MAIN_PDF),
            "sha256": hashlib.sha256(MAIN_PDF).hexdigest(),
        }
        document = {"id": "doc-1227", "revision": 1, "agency_id": A, **SAMPLE_FIELDS, **fields}
        manifest = build_manifest(
            {**document, "recipients": recipients or [recipient]}, [attachment]
        )
        with self.api.runtime.uow(readonly=True) as uow:
            held = self.api.runtime.inbox.keys.require(uow, A, now)
        agency = agency or held
        cms = sign_manifest(
            manifest,
            key=self.signer_key,
            cert=self.signer_cert,
            chain=list(held.chain),
            signing_time=now - timedelta(minutes=5),
        )
        sealed = seal_header(
            message_id=message_id,
            recipient=recipient,
            manifest=manifest,
            signature=cms,
            agency=agency,
            sent_at=sent_at or now,
            **_request(about, changes),
            original=about,
        )
        if sent_at is not None:
            signature = sign_body(sealed.header, agency, signed_at or now)
            sealed = dataclasses.replace(sealed, agency_signature=signature)
        sink = io.BytesIO()
        files = {attachment["filename"]: io.BytesIO(MAIN_PDF)}
        assemble(sink, sealed, manifest=manifest, signature=cms, files=files)
        return sink.getvalue()


def _request(about: Original | None, changes: dict[str, str | None] | None) -> dict[str, Any]:
    """The header members of a recall of ``about`` (an update with ``changes``)."""
    if about is None:
        return {}
    if changes is None:
        return {"business_type": RECALL, "reason": "Gửi nhầm"}
    return {"business_type": UPDATE, "reason": "Sửa", "changes": changes}


@pytest.fixture
def sender(make_api: Callable[..., Api]) -> Sender:
    """One installation holding A (the sender) and B (the recipient), each with its key."""
    return _sender(make_api(key_passphrase=PASS))


@pytest.fixture
def sender_any_db(make_api_any_db: Callable[..., Api]) -> Sender:
    """``sender`` on SQLite and on PostgreSQL (the test runs once on each)."""
    return _sender(make_api_any_db(key_passphrase=PASS))


def _sender(api: Api) -> Sender:
    now = api.clock()
    with api.runtime.uow() as uow:
        keystore.init_ca(
            uow, "Inbox CA", "UBND tỉnh", passphrase=PASS, now=now, store=api.runtime.trust
        )
        for agency in (A, B):
            keystore.issue_agency(uow, agency, passphrase=PASS, crl_url="http://x/crl", now=now)
        directory.ensure_user(
            uow, A, "pct", ["signer"], now, full_name="Nguyễn Văn Phương", position="PHÓ CHỦ TỊCH"
        )
        row = keystore.issue_signer(uow, A, "pct", passphrase=PASS, crl_url="http://x/crl", now=now)
        uow.commit()
    api.clock.advance(hours=1)  # the letter is signed after the certificates were issued
    key = pki.load_private_key(row.key_pem.encode(), PASS)
    cert = x509.load_pem_x509_certificate(row.cert_pem.encode())
    return Sender(api, key, cert)


def deliver(api: Api, package: bytes) -> Any:
    return api.client.post(
        "/v1/inbox", content=package, headers={"Content-Type": "application/zip"}
    )


def test_a_package_saying_it_was_sent_after_it_was_signed_is_refused(sender: Sender) -> None:
    # Given A's package whose header says it was sent a day, or years, after A signed it
    now = sender.api.clock()
    for later in (timedelta(days=1), timedelta(days=365 * 10)):
        response = deliver(sender.api, sender.package(message_id="later", sent_at=now + later))

        # Then it is refused (its receipt could never be later than its sending), unkept
        body = assert_error(response, 422, "message_mismatch")
        assert (body["reason"], body["member"]) == ("moment", "sent_at")
    assert sender.api.get("/v1/received", agency=B).json()["items"] == []


def test_a_package_saying_it_was_sent_before_it_was_signed_is_refused(sender: Sender) -> None:
    # Given A's packages whose header says it was sent before A signed it (a day, ten
    # years), or, signed as it says, before the document it carries was signed (5 min ago)
    now = sender.api.clock()
    for message_id, sent_at, signed_at, bound in (
        ("day", now - timedelta(days=1), now, "signed_at"),
        ("years", now - timedelta(days=3650), now, "signed_at"),
        ("early", now - timedelta(minutes=20), now - timedelta(minutes=20), "document_signed_at"),
    ):
        package = sender.package(message_id=message_id, sent_at=sent_at, signed_at=signed_at)
        response = deliver(sender.api, package)

        # Then each is refused (a clerk would judge its timeliness by it), unkept
        body = assert_error(response, 422, "message_mismatch")
        assert (body["reason"], body["member"], bound in body) == ("moment", "sent_at", True)
    assert sender.api.get("/v1/received", agency=B).json()["items"] == []

    # And one sent within the clock skew of its signing is taken
    package = sender.package(message_id="skew", sent_at=now - timedelta(minutes=4))
    assert 201 == deliver(sender.api, package).status_code


@pytest.mark.parametrize("sent_at", ["1900-12-31T12:00:00+00:00", "2101-01-01T00:00:00+07:00"])
def test_a_package_saying_it_was_sent_outside_the_years_reckoned_with_is_malformed(
    sender: Sender, sent_at: str
) -> None:
    # Given A's package whose header says it was sent in 1900, or in 2101
    parts = members(sender.package())
    content = {**json.loads(parts["package.json"]), "sent_at": sent_at}
    package = zipped({**parts, "package.json": rfc8785.dumps(content)})

    # Then it is refused naming the member (no deadline counts from such a day), unkept
    body = assert_error(deliver(sender.api, package), 422, "message_malformed")
    assert (body["reason"], body["member"]) == ("member", "sent_at")
    assert sender.api.get("/v1/received", agency=B).json()["items"] == []


def test_a_package_is_answered_with_a_receipt_the_sender_can_verify(sender: Sender) -> None:
    # Given A's package of letter 1227 for B
    api = sender.api
    package = sender.package()

    # When it is delivered to the inbox
    response = deliver(api, package)

    # Then B answers a receipt (status 01) signed with its organisational key, naming it
    assert response.status_code == 201, response.text
    body = base64.b64decode(response.json()["receipt"])
    cms = base64.b64decode(response.json()["receipt_cms"])
    with api.runtime.uow(readonly=True) as uow:
        trust = keystore.trust_material(uow, api.runtime.trust, [B])
        manifest_sha256 = uow.received.page(B).items[0].manifest_sha256
    receipt = verify_receipt(
        body,
        cms,
        trust,
        expected_message_id="dispatch-1",
        expected_package_sha256=hashlib.sha256(package).hexdigest(),
        expected_manifest_sha256=manifest_sha256,
        expected_receiver=B,
        expected_sender=A,
        now=api.clock(),
    )
    assert (receipt.status, receipt.sender) == ("01", A)

    # And B's clerks find it arrived
    listed = api.get("/v1/received", agency=B).json()["items"]
    assert [(i["id"], i["sender_id"], i["state"]) for i in listed] == [
        (receipt.received_document_id, A, "received")
    ]
    assert api.get("/v1/received", agency=A).json()["items"] == []


def test_the_same_package_delivered_again_gets_the_first_receipt(sender: Sender) -> None:
    api = sender.api
    package = sender.package()
    first = deliver(api, package)
    api.clock.advance(minutes=3)
    again = deliver(api, package)
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(api.get("/v1/received", agency=B).json()["items"]) == 1


def test_a_package_for_an_agency_not_received_here_is_misaddressed(sender: Sender) -> None:
    response = deliver(sender.api, sender.package(recipient=C))
    body = assert_error(response, 403, "misaddressed")
    assert body["reason"] == "recipient"


def test_a_tampered_file_is_refused_and_nothing_is_stored(sender: Sender) -> None:
    parts = members(sender.package())
    name = "files/1227-UBND-TĐKT.pdf"
    package = zipped({**parts, name: parts[name].replace(b"1227", b"1228")})
    body = assert_error(deliver(sender.api, package), 422, "package_tampered")
    assert body["reason"] == "part_digest"
    assert sender.api.get("/v1/received", agency=B).json()["items"] == []


@pytest.mark.parametrize("junk", [b"", b"not a zip", b"PK\x03\x04" + b"\x00" * 40])
def test_what_is_not_a_package_is_refused_as_malformed(sender: Sender, junk: bytes) -> None:
    response = deliver(sender.api, junk)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "message_malformed"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/json", "multipart/form-data; boundary=x", "application/zipx"],
)
def test_a_body_not_sent_as_a_zip_is_refused_before_it_is_read(
    sender: Sender, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = sender.api.client.post("/v1/inbox", content=sender.package(), headers=headers)
    assert_error(response, 415, "unsupported_media_type")
    assert sender.api.get("/v1/received", agency=B).json()["items"] == []


@pytest.mark.parametrize(
    "content_type", ["Application/ZIP", "application/zip; charset=binary", "application/zip; x=1"]
)
def test_the_media_type_is_read_as_http_reads_it(sender: Sender, content_type: str) -> None:
    # A charset says nothing of bytes: `file --mime` gives a ZIP charset=binary
    headers = {"Content-Type": content_type}
    response = sender.api.client.post("/v1/inbox", content=sender.package(), headers=headers)
    assert response.status_code == 201, response.text


def test_another_package_under_a_message_id_received_before_is_refused(sender: Sender) -> None:
    api = sender.api
    first = deliver(api, sender.package())
    assert first.status_code == 201, first.text
    api.clock.advance(minutes=3)

    # The same message id, sealed again: another package (its sent_at, its digest)
    body = assert_error(deliver(api, sender.package()), 409, "message_id_reused")

    assert body["reason"] == "message_id"
    [kept] = api.get("/v1/received", agency=B).json()["items"]
    assert kept["id"] == base64_receipt_id(first)


def base64_receipt_id(response: Any) -> str:
    receipt = json.loads(base64.b64decode(response.json()["receipt"]))
    return str(receipt["received_document_id"])


@pytest.mark.parametrize(
    "fields",
    [{"signer_name": "Lê Văn Tư"}, {"signer_position": "CHỦ TỊCH"}],
)
def test_a_manifest_signed_by_another_than_the_signer_it_names_is_refused(
    sender: Sender, fields: dict[str, str]
) -> None:
    # The certificate is Nguyễn Văn Phương's, PHÓ CHỦ TỊCH of A; the letter names another
    body = assert_error(
        deliver(sender.api, sender.package(**fields)), 422, "document_signature_invalid"
    )
    assert body["reason"] == "signer_mismatch"
    assert sender.api.get("/v1/received", agency=B).json()["items"] == []


def test_the_signers_name_is_matched_as_people_write_it(sender: Sender) -> None:
    package = sender.package(signer_name="nguyễn  văn phương", signer_position="Phó Chủ tịch")
    assert deliver(sender.api, package).status_code == 201


BAD_METADATA = [
    ("urgency", "abc"),
    ("urgency", 7),
    ("number", "abc"),
    ("number", 1.5),
    ("number", 2**40),
    ("subject", {"a": 1}),
    ("subject", "V/v khen thưởng\x00"),
    ("issued_on", "not-a-date"),
    ("issued_on", "0001-01-01"),
    ("issued_on", "2021-W05-5"),
    ("due_date", "20210301"),
    ("due_date", "9999-12-31"),
    ("appointed_at", "2101-01-01T00:00:00+07:00"),
    ("appointed_at", "1900-12-31T23:59:59+07:00"),
    ("symbol", "UBND-" + "X" * 10_000),
    ("signer_position", "PHÓ CHỦ TỊCH\n"),
]


def test_metadata_a_document_cannot_hold_is_refused_and_nothing_kept(sender: Sender) -> None:
    for field, value in BAD_METADATA:
        response = deliver(sender.api, sender.package(**{field: value}))
        body = assert_error(response, 422, "message_malformed")
        assert (body["reason"], body["field"]) == ("metadata", field), (field, value)
    assert sender.api.get("/v1/received", agency=B).json()["items"] == []


def _as_long_as(start: str, length: int) -> str:
    return (start + "." * length)[:length]


# As long as congvan-package/1 lets a sender choose them: another QCVN 102 system writes
# its agency, the date, number and symbol in a document id.
LONGEST_DOCUMENT_ID = _as_long_as("000.00.00.H57,2021/02/06,1227/UBND-TDKT", 200)
LONGEST_MESSAGE_ID = _as_long_as("dispatch-1", 200)


def test_identifiers_as_long_as_the_format_allows_are_kept_on_either_database(
    sender_any_db: Sender,
) -> None:
    # Given A's letter under a document id and a message id of 200 characters, and its
    # recall under another message id of 200
    api, number, symbol = sender_any_db.api, SAMPLE_FIELDS["number"], SAMPLE_FIELDS["symbol"]
    letter = sender_any_db.package(message_id=LONGEST_MESSAGE_ID, id=LONGEST_DOCUMENT_ID)
    recall_id = _as_long_as("recall-1", 200)
    about = Original(LONGEST_MESSAGE_ID, LONGEST_DOCUMENT_ID, number, symbol)
    recall = sender_any_db.package(message_id=recall_id, id=LONGEST_DOCUMENT_ID, about=about)

    # When both are delivered to B
    answers = [deliver(api, letter), deliver(api, recall)]

    # Then B keeps them as they came, on PostgreSQL as on SQLite
    assert [201, 201] == [a.status_code for a in answers], answers[-1].text
    (listed,) = api.get("/v1/received", agency=B).json()["items"]
    assert (LONGEST_MESSAGE_ID, LONGEST_DOCUMENT_ID) == (
        listed["message_id"],
        listed["sender_document_id"],
    )
    requests = api.get(f"/v1/received/{listed['id']}", agency=B).json()["requests"]
    assert [("recall", recall_id)] == [(r["kind"], r["message_id"]) for r in requests]


@pytest.mark.parametrize("member", ["message_id", "document_id"])
def test_an_identifier_longer_than_the_format_allows_is_malformed_on_either_database(
    sender_any_db: Sender, member: str
) -> None:
    # Given A's package naming an identifier of 201 characters (its header canonical: the
    # member is what is wrong with it)
    parts = members(sender_any_db.package())
    content = json.loads(parts["package.json"])
    content[member] = _as_long_as(content[member], 201)
    package = zipped({**parts, "package.json": rfc8785.dumps(content)})

    # When it is delivered to B
    response = deliver(sender_any_db.api, package)

    # Then it is refused as malformed, naming the member, and nothing is kept
    details = assert_error(response, 422, "message_malformed")
    assert ("member", member) == (details["reason"], details["member"])
    assert [] == sender_any_db.api.get("/v1/received", agency=B).json()["items"]


def test_whom_we_receive_for_is_told_only_to_a_sender_whose_signature_holds(
    sender: Sender,
) -> None:
    # A package for an agency hosted here and one for an agency that is not, both with a
    # junk agency signature: the same answer, that the sender is not authenticated
    for recipient in (B, C):
        parts = members(sender.package(recipient=recipient))
        forged = zipped({**parts, "agency.p7s": b"not a signature"})
        assert_error(deliver(sender.api, forged), 401, "agency_signature_invalid")


def _agency_key(issued: pki.Issued, chain: list[x509.Certificate]) -> AgencyKey:
    return AgencyKey(
        A, pki.load_private_key(issued.key_pem, PASS), issued.certificate, tuple(chain)
    )


def test_only_a_certificate_held_for_the_sender_speaks_for_it(sender: Sender) -> None:
    # Another installation's root, pinned here (as for any peer), with its CRL: it can
    # issue a certificate naming A, and so can our own CA, unknown to this directory
    api = sender.api
    now = api.clock()
    terms = {"valid_from": now - timedelta(days=1), "valid_days": 365}
    other = pki.create_ca("Q Root", "Installation Q", passphrase=PASS, **terms)
    api.runtime.trust.pin(other.certificate)
    crl = pki.make_crl(
        other,
        PASS,
        [],
        this_update=now - timedelta(hours=1),
        next_update=now + timedelta(days=7),
        number=1,
    )
    with api.runtime.uow() as uow:
        issuers.import_crl(uow, api.runtime.trust, crl, now=api.clock())
        uow.commit()
    from_q = pki.issue_agency_certificate(
        other,
        PASS,
        agency_id=A,
        agency_name="Not A",
        passphrase=PASS,
        crl_url="http://q/crl",
        **terms,
    )
    with api.runtime.uow() as uow:  # issued by our CA, then not kept
        unheld_row = keystore.issue_agency(uow, A, passphrase=PASS, crl_url="http://x/crl", now=now)
        ours = uow.signatures.roots()[0]
    unheld = AgencyKey(
        A,
        pki.load_private_key(unheld_row.key_pem.encode(), PASS),
        x509.load_pem_x509_certificate(unheld_row.cert_pem.encode()),
        (x509.load_pem_x509_certificate(ours.cert_pem.encode()),),
    )

    for n, key in enumerate((_agency_key(from_q, [other.certificate]), unheld)):
        # When a package says it is A's under either certificate
        response = deliver(api, sender.package(message_id=f"forged-{n}", agency=key))

        # Then nothing is kept, and the sender is told to come back (a renewal of A's not
        # yet imported looks the same): not a refusal it would record for good
        body = assert_error(response, 503, "verification_deferred")
        assert (body["reason"], body["agency_id"]) == ("certificate_not_listed", A)
    assert api.get("/v1/received", agency=B).json()["items"] == []

    # Once the certificate is held for A (its directory entry renewed), it speaks for A
    with api.runtime.uow() as uow:
        uow.signatures.add_certificate(unheld_row)
        uow.commit()
    assert deliver(api, sender.package(message_id="renewed", agency=unheld)).status_code == 201


def test_a_document_its_issuing_agency_addressed_to_itself_is_refused(sender: Sender) -> None:
    # Given A's packages whose signed manifest names A itself among its recipients: one
    # for A, one for B (A and B both named), each under A's signatures
    for message_id, recipient, named in (("self", A, [A]), ("both", B, [B, A])):
        package = sender.package(message_id=message_id, recipient=recipient, recipients=named)
        response = deliver(sender.api, package)

        # Then each is refused as review refuses it (an agency does not send to itself)
        body = assert_error(response, 422, "message_malformed")
        assert (body["reason"], body["field"]) == ("metadata", "recipients")
    for agency in (A, B):
        assert sender.api.get("/v1/received", agency=agency).json()["items"] == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"signer_name": "Lê Văn Tư"}, "signer_name"),  # another than the certificate names
        ({"signer_position": "CHỦ TỊCH"}, "signer_position"),
        ({"issued_on": "2019-02-06"}, "issued_on"),  # another year: the number is the year's
        ({"due_date": "2020-01-01"}, "due_date"),  # before the date of issue (2021-02-06)
    ],
)
def test_an_update_renaming_the_signer_or_redating_into_another_year_is_refused(
    sender: Sender, changes: dict[str, str], field: str
) -> None:
    # Given A's letter received at B
    assert deliver(sender.api, sender.package(message_id="orig")).status_code == 201
    about = Original("orig", "doc-1227", SAMPLE_FIELDS["number"], SAMPLE_FIELDS["symbol"])

    # When A's update asks B to write another signer, or another year, than the signed
    # document has (a package of the right format, sealed by A)
    answer = deliver(sender.api, sender.package(message_id="upd-1", about=about, changes=changes))

    # Then B refuses it for good, as A's own update would have been refused, and keeps no
    # request for its clerk to agree to
    details = assert_error(answer, 422, "message_malformed")
    assert (details["reason"], details["field"]) == ("correction", field)
    [received] = sender.api.get("/v1/received", agency=B).json()["items"]
    with sender.api.runtime.uow(readonly=True) as uow:
        assert uow.received.requests(received["id"]) == []

    # And an update correcting how the signer is written (case, spacing) is taken
    written = {"signer_name": "nguyễn  văn phương"}
    taken = deliver(sender.api, sender.package(message_id="upd-2", about=about, changes=written))
    assert taken.status_code == 201, taken.text


def test_conditions_a_peer_sends_are_judged_though_it_sends_no_token(sender: Sender) -> None:
    # The inbox and the status route take no token (their messages are signed), and a
    # condition they cannot hold is refused there as anywhere: nothing is done
    api = sender.api
    for path, body, kind in (
        ("/v1/inbox", sender.package(), "application/zip"),
        ("/v1/status", b"{}", "application/json"),
    ):
        for header, value, status, code in (
            ("If-Match", '"999"', 412, "precondition_failed"),
            ("If-None-Match", "*", 412, "precondition_failed"),
            ("Idempotency-Key", "k-1", 422, "invalid_input"),
        ):
            response = api.client.post(
                path, content=body, headers={"Content-Type": kind, header: value}
            )
            assert_error(response, status, code)
            assert response.json()["details"]["field"] == header, (path, header)
        # * among others, or given twice, is * all the same
        for values in (['"x", *'], ["*", "*"], ['"x"', "*"]):
            response = api.client.post(
                path,
                content=body,
                headers=[("Content-Type", kind), *(("If-None-Match", v) for v in values)],
            )
            assert_error(response, 412, "precondition_failed")
    assert api.get("/v1/received", agency=B).json()["items"] == []
    # and a package sent as it should be is taken
    assert deliver(api, sender.package()).status_code == 201
