"""/v1/received: what other agencies sent, listed and handled by the receiving agency."""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from congvan.actions.signing.manifest import build_manifest
from tests.api.conftest import Api, assert_error
from tests.factories import PACKED_FILES, A, B, PackedFile, arrival, job_done, packed
from tests.unit.test_manifest import make_attachments, make_document


def _received(
    api: Api, message_id: str = "msg-1", agency: str = A, files: Sequence[PackedFile] = PACKED_FILES
) -> str:
    doc, _stored = api.runtime.engine.receive(arrival(message_id, agency_id=agency, files=files))
    return doc.id


def test_a_clerk_lists_and_reads_what_arrived_for_the_agency(
    make_api: Callable[..., Api],
) -> None:
    # Given two documents arrived for agency A and one for agency B
    api = make_api(jobs={"send_status": job_done})
    first, second = _received(api, "m-1"), _received(api, "m-2")
    _received(api, "m-3", agency=B)

    # When a clerk of A lists them, one page at a time
    page = api.get("/v1/received", params={"limit": 1})
    rest = api.get("/v1/received", params={"cursor": page.json()["next_cursor"]})

    # Then A's two come back newest first, each arrived (status 01) and waiting for a clerk
    assert page.status_code == rest.status_code == 200, page.text
    items = page.json()["items"] + rest.json()["items"]
    assert [i["id"] for i in items] == [second, first]
    assert {(i["state"], i["status_code"]) for i in items} == {("received", "01")}
    assert sorted(items[0]["allowed_events"]) == ["refuse", "register"]
    one = api.get(f"/v1/received/{first}")
    assert one.status_code == 200 and one.headers["ETag"].startswith('"1.')
    assert one.json()["symbol"] == "UBND-TĐKT"


def test_another_agencys_received_document_is_not_found(make_api: Callable[..., Api]) -> None:
    api = make_api(jobs={"send_status": job_done})
    theirs = _received(api, agency=B)
    assert_error(api.get(f"/v1/received/{theirs}"), 404, "not_found")
    response = api.client.post(f"/v1/received/{theirs}/events/register", headers=api.auth())
    assert_error(response, 404, "not_found")


def _fire(api: Api, received_id: str, event: str, role: str = "clerk", **body: Any) -> Any:
    return api.client.post(
        f"/v1/received/{received_id}/events/{event}",
        headers=api.auth(role),
        json=body or None,
    )


def test_registering_then_handling_reports_each_status_code(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(jobs={"send_status": job_done})
    doc = _received(api)

    registered = _fire(api, doc, "register")
    assert registered.status_code == 200, registered.text
    assert (registered.json()["to_state"], len(registered.json()["jobs"])) == ("registered", 1)
    view = api.get(f"/v1/received/{doc}").json()
    assert (view["status_code"], view["register_number"]) == ("03", 1)

    assert_error(_fire(api, doc, "assign"), 403, "forbidden")  # a clerk does not assign
    assert _fire(api, doc, "assign", "supervisor").status_code == 200
    assert _fire(api, doc, "process").status_code == 200
    done = _fire(api, doc, "complete")
    assert done.status_code == 200 and done.headers["ETag"] == '"5"'
    assert api.get(f"/v1/received/{doc}").json()["status_code"] == "06"
    assert_error(_fire(api, doc, "register"), 409, "invalid_transition")


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [("registr", 422, "unknown_event"), ("register", 409, "invalid_transition"),
     ("agree_recall", 409, None)],
)  # fmt: skip
def test_a_refused_event_names_the_events_the_view_offers(
    make_api: Callable[..., Api], event: str, status: int, code: str | None
) -> None:
    # Given a received document registered, with no request of its sender awaiting
    api = make_api(jobs={"send_status": job_done})
    doc = _received(api)
    assert _fire(api, doc, "register").status_code == 200
    offered = api.get(f"/v1/received/{doc}").json()["allowed_events"]
    assert "assign" in offered and "agree_recall" not in offered

    # When an event it does not offer is fired
    refused = _fire(api, doc, event)

    # Then the refusal lists what the view lists: no answer to a request nobody made
    assert refused.status_code == status, refused.text
    if code is not None:
        assert_error(refused, status, code)
        assert sorted(refused.json()["details"]["allowed"]) == sorted(offered)


def test_a_refusal_without_a_reason_is_refused_and_with_one_is_kept(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(jobs={"send_status": job_done})
    doc = _received(api)
    assert_error(_fire(api, doc, "refuse"), 422, "invalid_input")
    refused = _fire(api, doc, "refuse", reason="Gửi nhầm cơ quan")
    assert refused.status_code == 200, refused.text
    view = api.get(f"/v1/received/{doc}").json()
    assert (view["state"], view["status_code"], view["reason"]) == (
        "refused",
        "02",
        "Gửi nhầm cơ quan",
    )


def test_a_filter_by_an_unknown_state_names_the_states(api: Api) -> None:
    response = api.get("/v1/received", params={"state": "sent"})
    body = assert_error(response, 422, "invalid_input")
    assert "registered" in str(body)


# -- the files of a received document ----------------------------------------------------

MAIN = b"%PDF-1.4 1227/UBND-TDKT " + bytes(range(256)) * 8
SIGNED = MAIN + b"\n% and the signer's signature\n"
APPENDIX = b"PK\x03\x04 phu luc"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
LETTER_FILES: tuple[PackedFile, ...] = (
    ("files/1227-UBND-TĐKT.pdf", "main", "application/pdf", MAIN),
    ("files/Phụ lục danh sách.docx", "appendix", DOCX, APPENDIX),
    ("signed/1227-UBND-TĐKT.pdf", "signed_pdf", "application/pdf", SIGNED),
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_received_document_lists_its_files_with_the_signed_pdf(api: Api) -> None:
    # Given a letter that arrived with its main PDF, an appendix and the signed PDF
    doc = _received(api, files=LETTER_FILES)

    # When a clerk reads it
    view = api.get(f"/v1/received/{doc}")

    # Then its files are listed by the name to download them by, role, size and digest
    assert view.status_code == 200, view.text
    assert view.json()["files"] == [
        {
            "name": name.split("/", 1)[1] if name.startswith("files/") else name,
            "role": role,
            "media_type": media_type,
            "size": len(data),
            "sha256": _sha256(data),
        }
        for name, role, media_type, data in LETTER_FILES
    ]


def test_a_received_document_shows_what_its_sender_signed(
    make_api: Callable[..., Api],
) -> None:
    # Given legal normative decision 05/2026/QĐ-UBND, signed for the chairman by a deputy
    api = make_api(jobs={"send_status": job_done})
    manifest = build_manifest(
        make_document(
            number=5,
            symbol="QĐ-UBND",
            doc_type="QĐ",
            issued_on="2026-03-02",
            legal_normative=True,
            due_date="2026-03-20",
        ),
        make_attachments(),
    )
    package = packed("m-lnorm", A, manifest, PACKED_FILES)
    sha256 = hashlib.sha256(package).hexdigest()
    doc, _ = api.runtime.engine.receive(
        arrival("m-lnorm", manifest=manifest, package=package, package_sha256=sha256)
    )

    # When a clerk reads it, then the notation is written with its year, and the signer,
    # place and deadline are shown as signed
    signed = api.get(f"/v1/received/{doc.id}").json()["signed"]
    assert signed == {
        "notation": "05/2026/QĐ-UBND",
        "legal_normative": True,
        "place": "Thừa Thiên Huế",
        "signer_name": "Nguyễn Văn Phương",
        "signer_position": "PHÓ CHỦ TỊCH",
        "signer_competence": "KT. CHỦ TỊCH",
        "due_date": "2026-03-20",
        "appointed_at": None,
    }


@pytest.mark.parametrize(
    "lowered",
    [{"max_attachment_bytes": 100}, {"max_attachments": 1}, {"max_request_bytes": 1024}],
    ids=["file-size", "files", "request-size"],
)
def test_what_was_taken_stays_readable_after_the_inbox_limits_are_lowered(
    make_api: Callable[..., Api], lowered: dict[str, int]
) -> None:
    # Given a letter taken when the limits allowed it (stored as the inbox stores one), and
    # the operator has since lowered the inbox's limits below its files
    api = make_api(jobs={"send_status": job_done}, **lowered)
    doc = _received(api, files=LETTER_FILES)

    # When a clerk reads it and downloads its files
    view = api.get(f"/v1/received/{doc}")
    main = api.client.get(f"/v1/received/{doc}/files/1227-UBND-TĐKT.pdf", headers=api.auth())
    signed = api.client.get(
        f"/v1/received/{doc}/files/signed/1227-UBND-TĐKT.pdf", headers=api.auth()
    )

    # Then they are served as they arrived: today's limits judge what arrives from now on
    assert view.status_code == 200, view.text
    assert len(view.json()["files"]) == len(LETTER_FILES)
    assert (main.status_code, main.content) == (200, MAIN)
    assert (signed.status_code, signed.content) == (200, SIGNED)
    # Each with its length, not in chunks
    assert main.headers["content-length"] == str(len(MAIN))
    assert "transfer-encoding" not in main.headers


@pytest.mark.parametrize(
    ("name", "data", "media_type", "disposition"),
    [
        (
            "1227-UBND-TĐKT.pdf",
            MAIN,
            "application/pdf",
            "attachment; filename=\"1227-UBND-TDKT.pdf\"; filename*=UTF-8''1227-UBND-T%C4%90KT.pdf",
        ),
        (
            "Phụ lục danh sách.docx",
            APPENDIX,
            DOCX,
            'attachment; filename="Phu luc danh sach.docx"; '
            "filename*=UTF-8''Ph%E1%BB%A5%20l%E1%BB%A5c%20danh%20s%C3%A1ch.docx",
        ),
        (
            "signed/1227-UBND-TĐKT.pdf",
            SIGNED,
            "application/pdf",
            "attachment; filename=\"1227-UBND-TDKT.pdf\"; filename*=UTF-8''1227-UBND-T%C4%90KT.pdf",
        ),
    ],
    ids=["main", "appendix", "signed-pdf"],
)
def test_a_clerk_downloads_a_received_file_named_as_it_was_sent(
    api: Api, name: str, data: bytes, media_type: str, disposition: str
) -> None:
    doc = _received(api, files=LETTER_FILES)

    got = api.get(f"/v1/received/{doc}/files/{name}")

    assert got.status_code == 200, got.text
    assert got.content == data
    assert got.headers["content-type"] == media_type
    assert got.headers["content-disposition"] == disposition
    assert got.headers["etag"] == f'"{_sha256(data)}"'
    encoded = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert got.headers["repr-digest"] == f"sha-256=:{encoded}:"  # RFC 9530
    assert got.headers["digest"] == f"sha-256={encoded}"  # RFC 3230: base64, not hex


@pytest.mark.parametrize(
    ("listed", "served"),
    [
        ("text/plain; charset=windows-1258", "text/plain; charset=windows-1258"),
        ("text/plain", "text/plain"),  # no charset said: none is made up
        ("Text/CSV; header=present", "text/csv; header=present"),
        ("not a media type", "application/octet-stream"),
        ('text/plain; name="ố"', "application/octet-stream"),  # no header carries it
    ],
)
def test_a_received_file_is_served_as_the_media_type_its_package_gives_it(
    api: Api, listed: str, served: str
) -> None:
    # Given a received text appendix, in the encoding its sender wrote it in
    text = "Công văn".encode("cp1258")
    files = (*LETTER_FILES[:1], ("files/ghi-chu.txt", "appendix", listed, text))
    doc = _received(api, files=files)

    # When it is downloaded
    got = api.get(f"/v1/received/{doc}/files/ghi-chu.txt")

    # Then it comes with its own type and parameters, nothing added
    assert (got.status_code, got.content) == (200, text)
    assert got.headers["content-type"] == served


def test_a_file_named_in_decomposed_unicode_is_the_same_file(api: Api) -> None:
    # A Mac writes "Phụ lục" decomposed (NFD): the same name, other code points
    doc = _received(api, files=LETTER_FILES)
    name = "Phụ lục danh sách.docx"
    decomposed = unicodedata.normalize("NFD", name)
    assert decomposed != name

    got = api.get(f"/v1/received/{doc}/files/{decomposed}")

    assert (got.status_code, got.content) == (200, APPENDIX)


@pytest.mark.parametrize(
    "name",
    [
        "nothing.pdf",
        "manifest.json",  # a part of the package, not a file of the letter
        "signature.p7s",
        "files/1227-UBND-TĐKT.pdf",  # names are the manifest's, not the package's
        "signed/Phụ lục danh sách.docx",
    ],
)
def test_a_name_that_is_no_file_of_the_document_is_not_found(api: Api, name: str) -> None:
    doc = _received(api, files=LETTER_FILES)

    details = assert_error(api.get(f"/v1/received/{doc}/files/{name}"), 404, "not_found")

    assert details["received_id"] == doc


def test_another_agencys_received_files_are_not_found(api: Api) -> None:
    # Given a letter that arrived for agency B, with its files
    theirs = _received(api, agency=B, files=LETTER_FILES)

    # Then a clerk of A gets "not found" for it and its files, as for a missing document
    for path in ("", "/files/1227-UBND-TĐKT.pdf", "/files/signed/1227-UBND-TĐKT.pdf"):
        details = assert_error(api.get(f"/v1/received/{theirs}{path}"), 404, "not_found")
        assert details == {"received_id": theirs}
    missing = assert_error(api.get("/v1/received/nothing/files/x.pdf"), 404, "not_found")
    assert missing == {"received_id": "nothing"}


def test_received_files_need_a_token(api: Api) -> None:
    doc = _received(api, files=LETTER_FILES)

    answer = api.client.get(f"/v1/received/{doc}/files/1227-UBND-TĐKT.pdf")

    assert_error(answer, 401, "unauthenticated")


def test_a_media_type_that_is_not_one_is_served_as_bytes(api: Api) -> None:
    odd = ("files/notes.html", "appendix", "text/html; charset=utf-8<script>", b"<p>x</p>")
    doc = _received(api, files=(*PACKED_FILES, odd))

    got = api.get(f"/v1/received/{doc}/files/notes.html")

    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/octet-stream"
