"""Documents over HTTP: create with files, read, list and page, and fire events."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest

from congvan.actions.context import TransitionContext
from tests.api.conftest import LETTER, MAIN_PDF, A, Api, B, MakeApi, assert_error, sha256

APPENDIX_1 = "Phụ lục I: Danh sách cơ quan".encode()
APPENDIX_2 = bytes(range(256)) * 4


# -- create ------------------------------------------------------------------------------


def test_create_records_the_metadata_and_files_and_answers_201(api: Api) -> None:
    # When a clerk posts the letter with its main file and two appendices
    files = [
        ("main", ("1227-UBND-TDKT.pdf", MAIN_PDF, "application/pdf")),
        ("appendix", ("phu-luc-1.txt", APPENDIX_1, "text/plain; charset=utf-8")),
        ("appendix", ("phu-luc-2.bin", APPENDIX_2, "application/octet-stream")),
    ]
    response = api.create(files=files)

    # Then it is created, with where to find it and its version as ETag (then a digest
    # of what it answered: what it shows besides its row changes without its version)
    assert response.status_code == 201, response.text
    doc = response.json()
    assert response.headers["Location"] == f"/v1/documents/{doc['id']}"
    assert re.fullmatch(r'"1\.[0-9a-f]{12}"', response.headers["ETag"])
    assert (doc["state"], doc["version"], doc["agency_id"]) == ("draft", 1, A)
    assert doc["notation"] == "1227/UBND-TĐKT"
    assert doc["subject"] == LETTER["subject"]
    assert doc["signer"] == {
        "name": "Nguyễn Văn Phương",
        "position": "PHÓ CHỦ TỊCH",
        "competence": "KT. CHỦ TỊCH",
    }
    assert doc["recipients"] == LETTER["recipients"]
    # (approving or waiving a check waits for its submission: not offered before)
    assert doc["allowed_events"] == ["edit", "reject", "submit"]
    assert doc["created_by"] == f"clerk@{A}"

    # And each file is recorded with its digest, size, media type and role
    recorded = [
        {k: a[k] for k in ("sha256", "filename", "media_type", "size", "role")}
        for a in doc["attachments"]
    ]
    assert recorded == [
        {
            "sha256": sha256(data),
            "filename": name,
            "media_type": media_type,
            "size": len(data),
            "role": role,
        }
        for role, (name, data, media_type) in files
    ]

    # And each downloads byte for byte, with its media type and digest
    for role, (name, data, media_type) in files:
        got = api.get(f"/v1/documents/{doc['id']}/attachments/{sha256(data)}")
        assert got.status_code == 200, (role, got.text)
        assert got.content == data
        assert got.headers["content-type"] == media_type
        encoded = base64.b64encode(bytes.fromhex(sha256(data))).decode()
        assert got.headers["Repr-Digest"] == f"sha-256=:{encoded}:"
        assert got.headers["Digest"] == f"sha-256={encoded}"
        assert got.headers["ETag"] == f'"{sha256(data)}"'
        again = api.client.get(
            got.url, headers={**api.auth(), "If-None-Match": got.headers["ETag"]}
        )
        assert (again.status_code, again.content) == (304, b"")
        assert name in got.headers["Content-Disposition"]

    # And the document reads back as it was answered, with the same ETag
    again = api.get(response.headers["Location"])
    assert again.status_code == 200
    assert again.json() == doc
    assert again.headers["ETag"] == response.headers["ETag"]


def test_create_without_files_and_with_an_empty_file(api: Api) -> None:
    bare = api.create(files=[])
    assert bare.status_code == 201, bare.text
    assert bare.json()["attachments"] == []

    empty = api.create(files=[("main", ("trong.pdf", b"", "application/pdf"))])
    assert empty.status_code == 201, empty.text
    (attachment,) = empty.json()["attachments"]
    assert (attachment["size"], attachment["sha256"]) == (0, sha256(b""))
    got = api.get(f"/v1/documents/{empty.json()['id']}/attachments/{sha256(b'')}")
    assert (got.status_code, got.content) == (200, b"")


@pytest.mark.parametrize("roles", [("appendix", "appendix"), ("main", "appendix")])
def test_two_files_of_the_same_bytes_are_refused_and_nothing_kept(
    api: Api, roles: tuple[str, str]
) -> None:
    # A file is reached by its content: the second of two alike would never be downloaded
    main = ("main", ("thu.pdf", MAIN_PDF, "application/pdf"))
    if roles[0] == "main":  # an appendix of the main file's bytes
        files = [main, ("appendix", ("ban-sao.pdf", MAIN_PDF, "application/pdf"))]
    else:
        same = [("phu-luc.txt", b"same", "text/plain"), ("bang-ke.csv", b"same", "text/csv")]
        files = [main, *(("appendix", part) for part in same)]
    body = assert_error(api.create(files=files), 422, "invalid_input")
    assert (body["field"], body["reason"]) == ("files", "same_content")
    assert api.get("/v1/documents").json()["items"] == []


@pytest.mark.parametrize(
    "names",
    [("a.pdf", "a.pdf"), ("a.pdf", "A.PDF"), ("Phụ lục.pdf", "PHỤ LỤC.pdf"), ("ß.pdf", "SS.pdf"),
     ("a.pdf", "\uff41.pdf"), ("file.pdf", "\ufb01le.pdf"),
     # a letter of another script that passes for a Latin one (Cyrillic а, у; Greek Ο)
     ("a.pdf", "\u0430.pdf"), ("Quyết định.pdf", "Qu\u0443ết định.pdf"), ("O.pdf", "\u039f.pdf")],
)  # fmt: skip
def test_two_files_named_alike_ignoring_case_are_refused_and_nothing_kept(
    api: Api, names: tuple[str, str]
) -> None:
    # A package names each file once, ignoring case and look-alike letters (a fullwidth
    # a, a ligature): such a draft could never be sent
    files = [
        ("main", (names[0], MAIN_PDF, "application/pdf")),
        ("appendix", (names[1], b"%PDF-1.4 other", "application/pdf")),
    ]
    body = assert_error(api.create(files=files), 422, "invalid_input")
    assert (body["field"], body["reason"]) == ("files", "same_filename")
    assert api.get("/v1/documents").json()["items"] == []


@pytest.mark.parametrize("length", [300, 3000], ids=["long", "past-the-parser"])
def test_a_file_name_too_long_is_said_so_however_long(api: Api, length: int) -> None:
    # A name of hundreds of characters, or of thousands (past the form parser's bound on
    # a part's header line): the one refusal, never the parser's "invalid multipart data"
    files = [("main", ("ả" * length + ".pdf", MAIN_PDF, "application/pdf"))]
    details = assert_error(api.create(files=files), 422, "field_too_long")
    assert (details["field"], details["max_length"]) == ("filename", 255)
    assert api.get("/v1/documents").json()["items"] == []


def test_a_form_part_of_too_many_header_lines_is_refused_as_such(api: Api) -> None:
    lines = b"".join(b"X-Line-%d: v\r\n" % i for i in range(9))
    body = (
        b"--B\r\n" + lines + b'Content-Disposition: form-data; name="metadata"\r\n\r\n'
        b"{}\r\n--B--\r\n"
    )
    headers = {**api.auth(), "Content-Type": "multipart/form-data; boundary=B"}
    answer = api.client.post("/v1/documents", content=body, headers=headers)
    assert assert_error(answer, 422, "invalid_input")["field"] == "part headers"


def test_an_unknown_attachment_is_not_found(api: Api) -> None:
    doc_id = api.draft()["id"]
    for digest in [sha256(b"other"), "not-a-digest", "0" * 64]:
        response = api.get(f"/v1/documents/{doc_id}/attachments/{digest}")
        assert_error(response, 404, "not_found")


def test_an_unknown_document_is_not_found_on_every_route(api: Api) -> None:
    missing = "01900000-0000-7000-8000-000000000000"
    for path in [
        f"/v1/documents/{missing}",
        f"/v1/documents/{missing}/history",
        f"/v1/documents/{missing}/attachments/{sha256(MAIN_PDF)}",
    ]:
        details = assert_error(api.get(path), 404, "not_found")
        assert details == {"document_id": missing}
    response = api.fire(missing, "edit", body={"fields": {"place": "Huế"}})
    assert_error(response, 404, "not_found")


def test_create_with_an_idempotency_key_creates_once(api: Api) -> None:
    first = api.create(headers={"Idempotency-Key": "create-1227"})
    again = api.create(headers={"Idempotency-Key": "create-1227"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(api.get("/v1/documents").json()["items"]) == 1

    # The same key with other metadata, or another file, is a different request
    other = api.create(headers={"Idempotency-Key": "create-1227"}, subject="V/v khác")
    details = assert_error(other, 422, "idempotency_key_reused")
    assert details == {"key": "create-1227"}
    other_file = api.create(
        headers={"Idempotency-Key": "create-1227"},
        files=[("main", ("1227.pdf", b"%PDF other", "application/pdf"))],
    )
    assert_error(other_file, 422, "idempotency_key_reused")
    # and so is the same bytes under another name, another type or another part
    for files in (
        [("main", ("other-name.pdf", MAIN_PDF, "application/pdf"))],
        [("main", ("1227-UBND-TDKT.pdf", MAIN_PDF, "application/octet-stream"))],
        [("appendix", ("1227-UBND-TDKT.pdf", MAIN_PDF, "application/pdf"))],
    ):
        changed = api.create(headers={"Idempotency-Key": "create-1227"}, files=files)
        assert_error(changed, 422, "idempotency_key_reused")
    assert len(api.get("/v1/documents").json()["items"]) == 1


def test_idempotency_keys_of_creation_belong_to_one_agency(api: Api) -> None:
    ours = api.create(agency=A, headers={"Idempotency-Key": "k"})
    theirs = api.create(agency=B, headers={"Idempotency-Key": "k"})
    assert (ours.status_code, theirs.status_code) == (201, 201)
    assert ours.json()["id"] != theirs.json()["id"]
    assert theirs.json()["agency_id"] == B


# -- read and history --------------------------------------------------------------------


def test_history_lists_every_transition_oldest_first(api: Api) -> None:
    doc_id = api.draft()["id"]
    edited = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, if_match='"1"')
    assert edited.status_code == 200, edited.text
    rejected = api.fire(doc_id, "reject", role="reviewer", body={"reason": "Sai thể thức"})
    assert rejected.status_code == 200, rejected.text

    history = api.get(f"/v1/documents/{doc_id}/history")
    assert history.status_code == 200
    body = history.json()
    assert body["document_id"] == doc_id
    steps = [
        (e["version"], e["event"], e["from_state"], e["to_state"], e["actor"])
        for e in body["items"]
    ]
    assert steps == [
        (1, "create", "", "draft", f"clerk@{A}"),
        (2, "edit", "draft", "draft", f"clerk@{A}"),
        (3, "reject", "draft", "draft", f"reviewer@{A}"),
    ]
    doc = api.get(f"/v1/documents/{doc_id}").json()
    assert (doc["version"], doc["place"]) == (3, "Huế")


# -- list --------------------------------------------------------------------------------


def test_the_listing_filters_by_state_urgency_and_type(api: Api) -> None:
    cv = api.draft(urgency=0)["id"]
    urgent_cv = api.draft(urgency=3)["id"]
    qd = api.draft(doc_type="QĐ", urgency=3)["id"]

    def listed(**params: Any) -> list[str]:
        response = api.get("/v1/documents", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert listed() == [qd, urgent_cv, cv]
    assert listed(urgency=3) == [qd, urgent_cv]
    assert listed(doc_type="CV") == [urgent_cv, cv]
    assert listed(doc_type="QĐ") == [qd]
    assert listed(doc_type="CV", urgency=3) == [urgent_cv]
    assert listed(state="draft") == [qd, urgent_cv, cv]
    assert listed(state=["sent", "failed"]) == []
    assert listed(state=["draft", "sent"], urgency=0) == [cv]
    assert listed(doc_type="TB") == []
    created = api.clock().isoformat()
    assert listed(created_after=created) == [qd, urgent_cv, cv]
    assert listed(created_before=created) == []

    item = api.get("/v1/documents", params={"doc_type": "QĐ"}).json()["items"][0]
    assert set(item) == {
        "id",
        "agency_id",
        "notation",
        "doc_type",
        "subject",
        "urgency",
        "state",
        "version",
        "created_at",
        "updated_at",
    }


def test_cursor_pagination_walks_every_document_once_newest_first(api: Api) -> None:
    # Given eleven documents, created one after the other
    created = [api.draft(number=n)["id"] for n in range(1, 12)]
    # When the listing is read four at a time, following next_cursor
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        response = api.get("/v1/documents", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "the cursor never ends"
    # Then the pages are full but the last, with no duplicate and no gap, newest first
    assert [len(p) for p in pages] == [4, 4, 3]
    walked = [doc_id for page in pages for doc_id in page]
    assert walked == created[::-1]

    # And a filter holds across pages
    first = api.get("/v1/documents", params={"limit": 2, "state": "draft"}).json()
    rest = api.get(
        "/v1/documents", params={"limit": 20, "state": "draft", "cursor": first["next_cursor"]}
    ).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == created[::-1]
    assert rest["next_cursor"] is None


def test_a_page_that_ends_exactly_has_no_next_cursor(api: Api) -> None:
    for _ in range(3):
        api.draft()
    body = api.get("/v1/documents", params={"limit": 3}).json()
    assert (len(body["items"]), body["next_cursor"]) == (3, None)
    empty = api.get("/v1/documents", agency=B).json()
    assert empty == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "a",
        "abcd",
        "YWJj",  # base64 of "abc": decodes, but is no document id
        "%%%",
        "é",
        "MDE5MDAwMDAtMDAwMC03MDAwLTgwMDAtMDAwMDAwMDAwMDAw==",  # padded: not as given out
        "x" * 201,
    ],
)
def test_an_invalid_cursor_is_refused(api: Api, cursor: str) -> None:
    api.draft()
    response = api.get("/v1/documents", params={"cursor": cursor})
    details = assert_error(response, 422, "invalid_input")
    assert "cursor" in json.dumps(details)


def test_a_cursor_from_another_agency_shows_nothing_of_theirs(api: Api) -> None:
    for _ in range(3):
        api.draft(agency=A)
    theirs = api.get("/v1/documents", params={"limit": 1}).json()["next_cursor"]
    mine = api.draft(agency=B)["id"]
    response = api.get("/v1/documents", agency=B, params={"cursor": theirs})
    assert response.status_code == 200
    assert [i["agency_id"] for i in response.json()["items"]] in ([], [B])
    assert mine not in {i["id"] for i in api.get("/v1/documents").json()["items"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "bogus"}, "state"),
        ({"state": ["draft", "archived"]}, "state"),
        ({"urgency": 5}, "urgency"),
        ({"urgency": -1}, "urgency"),
        ({"urgency": "high"}, "urgency"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "9" * 30}, "limit"),
        ({"doc_type": "x" * 51}, "doc_type"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2026-12-03T16:27:20"}, "created_after"),  # no offset: no moment
        ({"created_before": "2026-12-03T09:00:00"}, "created_before"),
        ({"created_after": "1764547200"}, "created_after"),  # a number: not a moment
        ({"limit": "5_0"}, "limit"),
        ({"limit": "+5"}, "limit"),
        ({"urgency": "0_1"}, "urgency"),
        ({"created_before": "2026-13-01"}, "created_before"),
    ],
)
def test_bad_listing_parameters_are_refused(api: Api, params: dict[str, Any], field: str) -> None:
    response = api.get("/v1/documents", params=params)
    details = assert_error(response, 422, "invalid_input")
    assert field in json.dumps(details)


def test_an_unknown_state_filter_names_the_known_states(api: Api) -> None:
    details = assert_error(
        api.get("/v1/documents", params={"state": "bogus"}), 422, "invalid_input"
    )
    assert details["field"] == "state"
    assert "draft" in details["allowed"] and "acknowledged" in details["allowed"]


# -- events: If-Match --------------------------------------------------------------------


@pytest.mark.parametrize(
    "if_match", ['"1"', ' "1" ', '"7", "1"', '"x,y", "1"', '"1",', ', "1"', '"7", , "1"', "*", None]
)
def test_if_match_takes_the_etag_or_a_list_holding_it(api: Api, if_match: str | None) -> None:
    doc_id = api.draft()["id"]
    response = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, if_match=if_match)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert response.headers["ETag"] == '"2"'


@pytest.mark.parametrize(
    ("if_match", "names"),
    [
        ('W/"1"', []),  # a weak tag never matches: If-Match compares strongly (RFC 9110)
        ('W/"1", W/"2"', []),
        ('"01"', []),  # not the ETag we sent, though it reads as 1
        ('"x"', []),
        ('""', []),
        ('"2", "3"', [2, 3]),
    ],
)
def test_an_if_match_naming_no_current_version_is_a_version_conflict(
    api: Api, if_match: str, names: list[int]
) -> None:
    doc_id = api.draft()["id"]
    response = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, if_match=if_match)
    details = assert_error(response, 409, "version_conflict")
    assert details == {"expected_version": names, "current_version": 1}
    assert api.version(doc_id) == 1


@pytest.mark.parametrize(
    "if_match", ["abc", "", "W/", "1", " 1 ", '"1" "2"', "-1", "1.0", '"1', "x" * 51]
)
def test_a_malformed_if_match_is_invalid_input(api: Api, if_match: str) -> None:
    doc_id = api.draft()["id"]
    response = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, if_match=if_match)
    details = assert_error(response, 422, "invalid_input")
    assert "If-Match" in json.dumps(details)
    assert api.version(doc_id) == 1


def test_a_stale_if_match_is_a_version_conflict_naming_the_current_version(api: Api) -> None:
    doc_id = api.draft()["id"]
    assert api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, if_match='"1"').is_success

    response = api.fire(doc_id, "edit", body={"fields": {"place": "Hà Nội"}}, if_match='"1"')
    details = assert_error(response, 409, "version_conflict")
    assert details == {"expected_version": 1, "current_version": 2}
    ahead = api.fire(doc_id, "edit", body={"fields": {"place": "Hà Nội"}}, if_match='"7"')
    assert assert_error(ahead, 409, "version_conflict")["current_version"] == 2
    doc = api.get(f"/v1/documents/{doc_id}").json()
    assert (doc["version"], doc["place"]) == (2, "Huế")


# -- events: what is allowed -------------------------------------------------------------


@pytest.mark.parametrize("event", ["bogus", "%20"])
def test_an_unknown_event_tells_the_state_only_to_someone_who_fires_events(
    api: Api, event: str
) -> None:
    # An operator runs the installation and reads no documents: not even their state
    doc_id = api.draft()["id"]
    details = assert_error(api.fire(doc_id, event, role="operator"), 403, "forbidden")
    assert "state" not in details and "allowed" not in details
    assert api.version(doc_id) == 1


@pytest.mark.parametrize(
    ("event", "role", "status", "code"),
    [
        ("bogus", "clerk", 422, "unknown_event"),  # no such event: the caller's mistake
        ("sign", "signer", 409, "invalid_transition"),
        ("send", "clerk", 409, "invalid_transition"),
        ("resend", "supervisor", 409, "invalid_transition"),
    ],
)
def test_an_event_not_allowed_now_is_an_invalid_transition_with_the_allowed_ones(
    api: Api, event: str, role: str, status: int, code: str
) -> None:
    doc_id = api.draft()["id"]
    response = api.fire(doc_id, event, role=role, body={"reason": "thử"})
    details = assert_error(response, status, code)
    assert details == {
        "event": event,
        "state": "draft",
        "allowed": ["approve", "edit", "reject", "submit", "waive"],
    }
    assert api.version(doc_id) == 1


@pytest.mark.parametrize("body", [None, {}, {"reason": ""}, {"reason": "   "}, {"reason": None}])
@pytest.mark.parametrize("role", ["reviewer", "signer"])
def test_reject_needs_a_reason(api: Api, body: Any, role: str) -> None:
    doc_id = api.draft()["id"]
    response = api.fire(doc_id, "reject", role=role, body=body)
    details = assert_error(response, 422, "invalid_input")
    assert details == {"event": "reject", "field": "reason"}
    assert api.version(doc_id) == 1


def test_reject_with_a_reason_records_it(api: Api) -> None:
    doc_id = api.draft()["id"]
    response = api.fire(doc_id, "reject", role="signer", body={"reason": "Sai thể thức"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "document_id": doc_id,
        "event": "reject",
        "from_state": "draft",
        "to_state": "draft",
        "version": 2,
        "jobs": [],
        "derived": [],
    }
    entries = api.get(f"/v1/documents/{doc_id}/history").json()["items"]
    assert "Sai thể thức" in json.dumps(entries[-1], ensure_ascii=False)


def _holds(_ctx: TransitionContext) -> tuple[bool, str]:
    return True, ""


def _records_a_signature(ctx: TransitionContext) -> None:
    """Signs nothing, but leaves in the trail what a signature leaves (the API's schema)."""
    ctx.audit.update(
        {
            "signature_id": "fake",
            "cms_sha256": "0" * 64,
            "mode": "server",
            "manifest_sha256": "0" * 64,
            "certificate": "0" * 64,
            "signer": "fake",
            "send_by": ctx.now.isoformat(),
        }
    )


def test_sending_to_a_recipient_without_a_known_inbox_is_refused_and_changes_nothing(
    make_api: MakeApi,
) -> None:
    # Given a signed document (fakes for the checks, the signature and its validity)
    holds = {
        k: _holds
        for k in ("checks_cleared", "dated_this_year", "signer_has_authority", "signature_valid")
    }
    api = make_api(guards=holds, effects={"attach_signature": _records_a_signature})
    doc_id = api.draft()["id"]
    for step, by in [("approve", "reviewer"), ("sign", "signer")]:
        done = api.fire(doc_id, step, role=by)
        assert done.status_code == 200, done.text
    version = api.version(doc_id)
    assert "send" in api.get(f"/v1/documents/{doc_id}").json()["allowed_events"]

    # When the clerk sends it, none of its recipients being in the directory of peers
    response = api.fire(doc_id, "send", role="clerk", if_match=f'"{version}"')

    # Then it is refused naming them, and nothing changed
    details = assert_error(response, 422, "unknown_peer")
    recipients = [r["organ_id"] for r in api.get(f"/v1/documents/{doc_id}").json()["recipients"]]
    assert details == {"organ_ids": recipients}
    after = api.get(f"/v1/documents/{doc_id}").json()
    assert (after["state"], after["version"]) == ("signed", version)
    assert len(api.get(f"/v1/documents/{doc_id}/history").json()["items"]) == version


@pytest.mark.parametrize(
    ("named", "reason"),
    [
        ({}, "the document names no signer"),
        ({"signer_user": "nvphuong"}, "only nvphuong signs this document"),
    ],
    ids=["none-named", "another-named"],
)
def test_only_the_signer_the_document_names_signs_it(
    make_api: MakeApi, named: dict[str, str], reason: str
) -> None:
    # Given a reviewed document (a fake stands in for the review checks)
    api = make_api(guards={"checks_cleared": _holds, "dated_this_year": _holds})
    doc_id = api.draft(**named)["id"]
    assert api.fire(doc_id, "approve", role="reviewer").status_code == 200
    version = api.version(doc_id)
    # When a signer of the agency who is not the one it names signs it
    response = api.fire(doc_id, "sign", role="signer", if_match=f'"{version}"')
    # Then the guard refuses, saying why, and nothing changed
    details = assert_error(response, 409, "guard_failed")
    assert (details["event"], details["state"]) == ("sign", "reviewed")
    assert details["failed"] == ["signer_has_authority"]
    assert details["reasons"] == {"signer_has_authority": reason}
    after = api.get(f"/v1/documents/{doc_id}").json()
    assert (after["state"], after["version"]) == ("reviewed", version)


def test_edit_changes_fields_and_recipients(api: Api) -> None:
    doc_id = api.draft()["id"]
    recipients = [{"organ_id": "000.00.41.H57", "name": "UBND thị xã Hương Thủy"}]
    response = api.fire(
        doc_id,
        "edit",
        body={"fields": {"subject": "V/v mới", "urgency": 1}, "recipients": recipients},
        if_match='"1"',
    )
    assert response.status_code == 200, response.text
    doc = api.get(f"/v1/documents/{doc_id}").json()
    assert (doc["subject"], doc["urgency"], doc["urgency_label"]) == ("V/v mới", 1, "khẩn")
    assert doc["recipients"] == recipients

    nothing = api.fire(doc_id, "edit", body={"fields": {"subject": "V/v mới"}})
    assert_error(nothing, 422, "invalid_input")
    assert api.version(doc_id) == 2


def test_a_recipient_given_by_its_identifier_alone_is_named_as_the_directory_names_it(
    api: Api,
) -> None:
    # Given a letter to B (an agency of the directory) by its identifier alone, and to an
    # agency by its identifier and the name the clerk typed
    unknown = "000.00.31.H57"
    recipients = [{"organ_id": B}, {"organ_id": unknown, "name": "UBND thành phố Huế"}]
    doc = api.draft(recipients=recipients)

    # Then B is named as the directory names it; the typed name is kept as typed
    named = [(r["organ_id"], r["name"]) for r in doc["recipients"]]
    assert named == [(B, "Sở Nội vụ"), (unknown, "UBND thành phố Huế")]

    # And so when a draft's recipients are changed, by identifier alone too
    response = api.fire(doc["id"], "edit", body={"recipients": [{"organ_id": B, "name": " "}]})
    assert response.status_code == 200, response.text
    after = api.get(f"/v1/documents/{doc['id']}").json()
    assert [(r["organ_id"], r["name"]) for r in after["recipients"]] == [(B, "Sở Nội vụ")]


@pytest.mark.parametrize(
    "body",
    [
        {"fields": {"colour": "red"}},
        {"comment": "x"},
        {"fields": {"urgency": 9}},
        {"fields": {"secrecy": "secret"}},
        {"fields": {"issued_on": "2021-02-30"}},
        {"fields": "subject"},
        {"recipients": [{"organ_id": "bad id"}]},
        {"recipients": [{"organ_id": B, "fax": "1"}]},
        [],
        "edit",
    ],
)
def test_a_malformed_event_body_is_invalid_input(api: Api, body: Any) -> None:
    doc_id = api.draft()["id"]
    response = api.fire(doc_id, "edit", body=body, if_match='"1"')
    assert_error(response, 422, "invalid_input")
    assert api.version(doc_id) == 1


# -- events: Idempotency-Key -------------------------------------------------------------


def test_a_repeated_idempotency_key_replays_the_first_answer(api: Api) -> None:
    doc_id = api.draft()["id"]
    body = {"fields": {"place": "Huế"}}
    first = api.fire(doc_id, "edit", body=body, if_match='"1"', key="edit-place")
    assert first.status_code == 200, first.text

    again = api.fire(doc_id, "edit", body=body, if_match='"1"', key="edit-place")
    assert again.status_code == 200, again.text
    assert again.content == first.content
    assert again.headers["ETag"] == '"2"'
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.version(doc_id) == 2
    assert len(api.get(f"/v1/documents/{doc_id}/history").json()["items"]) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"body": {"fields": {"place": "Hà Nội"}}},
        {"if_match": '"2"'},
        {"if_match": None},
        {"event": "submit", "body": None},  # the same clerk's key, another event
    ],
    ids=["other body", "other version", "no If-Match", "other event"],
)
def test_a_reused_idempotency_key_with_another_request_is_refused(
    api: Api, change: dict[str, Any]
) -> None:
    doc_id = api.draft()["id"]
    done = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, if_match='"1"', key="k")
    assert done.status_code == 200, done.text
    request: dict[str, Any] = {
        "event": "edit",
        "body": {"fields": {"place": "Huế"}},
        "if_match": '"1"',
        **change,
    }
    event = request.pop("event")
    response = api.fire(doc_id, event, key="k", **request)
    details = assert_error(response, 422, "idempotency_key_reused")
    assert details == {"key": "k"}
    assert api.version(doc_id) == 2


def test_idempotency_keys_of_events_belong_to_one_agency(api: Api) -> None:
    ours = api.draft(agency=A)["id"]
    theirs = api.draft(agency=B)["id"]
    first = api.fire(ours, "edit", body={"fields": {"place": "Huế"}}, key="shared")
    assert first.status_code == 200, first.text
    # The same key in agency B, for another request, is B's own first use
    other = api.fire(theirs, "edit", agency=B, body={"fields": {"place": "Đà Nẵng"}}, key="shared")
    assert other.status_code == 200, other.text
    assert "Idempotent-Replayed" not in other.headers
    assert other.json()["document_id"] == theirs
    # And A's key is still A's
    reused = api.fire(ours, "edit", body={"fields": {"place": "Đà Nẵng"}}, key="shared")
    assert_error(reused, 422, "idempotency_key_reused")


def test_an_idempotency_key_longer_than_200_characters_is_refused(api: Api) -> None:
    doc_id = api.draft()["id"]
    response = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, key="k" * 201)
    details = assert_error(response, 422, "invalid_input")
    assert "Idempotency-Key" in json.dumps(details)
    assert api.version(doc_id) == 1


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../etc/thư mời họp.pdf", "thư mời họp.pdf"),
        ("C:\\Users\\vanthu\\Công văn 1227.pdf", "Công văn 1227.pdf"),
    ],
)
def test_a_file_name_is_a_name_and_downloads_in_utf_8(api: Api, sent: str, kept: str) -> None:
    # Given a letter whose main file is sent with a path, and Vietnamese letters
    response = api.create(files=[("main", (sent, MAIN_PDF, "application/pdf"))])
    assert response.status_code == 201, response.text
    (main,) = response.json()["attachments"]

    # Then only the last part of the path is kept
    assert main["filename"] == kept

    # And it downloads under that name in UTF-8 (RFC 6266), with an ASCII fallback
    got = api.get(f"/v1/documents/{response.json()['id']}/attachments/{main['sha256']}")
    disposition = got.headers["Content-Disposition"]
    assert f"filename*=UTF-8''{quote(kept, safe='')}" in disposition
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback.isascii() and "?" not in fallback and "/" not in fallback


@pytest.mark.parametrize("sent", ["..", ".", "/", " ", "\u00a0", "dir/"])
def test_a_file_name_that_names_no_file_is_refused(api: Api, sent: str) -> None:
    # Never stored under a name made up: the clerk is told to name the file
    response = api.create(files=[("main", (sent, MAIN_PDF, "application/pdf"))])
    assert assert_error(response, 422, "invalid_input")["field"] == "main"
    assert api.get("/v1/documents").json()["items"] == []


@pytest.mark.parametrize(
    "sent",
    ["Phụ lục.pdf.", "Quyết định: số 5.pdf", "Phụ lục.pdf:Zone.Identifier", "CON", "nul.pdf",
     "COM1.txt", "a?.pdf", "a|b.pdf", "<a>.pdf", "..\uff0fPhụ lục.pdf", "Phụ lục 1\u22152.pdf",
     "Phụ lục\uff1a 1.pdf"],
)  # fmt: skip
def test_a_file_name_no_recipients_system_could_keep_is_refused_at_once(
    api: Api, sent: str
) -> None:
    # Taken, it could never be sent: Windows drops a trailing dot (another file's name),
    # reads a colon as a stream of another file, opens a device; told now, not at send
    response = api.create(files=[("main", (sent, MAIN_PDF, "application/pdf"))])
    details = assert_error(response, 422, "invalid_input")
    assert (details["field"], details["filename"]) == ("main", sent)
    assert api.get("/v1/documents").json()["items"] == []


def test_an_uploaded_html_file_is_served_as_uploaded_and_never_sniffed(api: Api) -> None:
    page = b"<html><script>alert(1)</script></html>"
    response = api.create(
        files=[
            ("main", ("thu.pdf", MAIN_PDF, "application/pdf")),
            ("appendix", ("trang.html", page, "text/html")),
        ]
    )
    assert response.status_code == 201, response.text
    html = next(a for a in response.json()["attachments"] if a["filename"] == "trang.html")

    got = api.get(f"/v1/documents/{response.json()['id']}/attachments/{html['sha256']}")

    assert got.content == page
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Disposition"].startswith("attachment")


def test_a_create_waiting_on_the_database_does_not_hold_up_other_requests(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a create whose engine call is held (a slow disk, a locked database)
    entered, release, let_go = threading.Event(), threading.Event(), threading.Event()
    create = api.runtime.engine.create_document

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(timeout=30)  # a blocked event loop never releases it: then time out
        let_go.set()
        return create(*args, **kwargs)

    monkeypatch.setattr(api.runtime.engine, "create_document", held)
    body = {"metadata": json.dumps(LETTER, ensure_ascii=False)}
    files = {"main": ("1227.pdf", MAIN_PDF, "application/pdf")}

    async def meanwhile() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            creating = asyncio.create_task(
                client.post("/v1/documents", headers=api.auth(), data=body, files=files)
            )
            await anyio.to_thread.run_sync(entered.wait)
            # When another request comes in while the create waits, it is answered
            health = await client.get("/v1/health")
            answered_while_held = not let_go.is_set()
            release.set()
            return health.status_code, answered_while_held, (await creating).status_code

    # Then the health check is answered while the create still waits, and both succeed
    assert anyio.run(meanwhile) == (200, True, 201)


@pytest.mark.parametrize(
    "declared",
    ["not a media type", "pdf", "application/", "/pdf", "text/html\x07", "a/b" + "c" * 200],
)
def test_a_part_whose_media_type_is_not_one_is_refused(api: Api, declared: str) -> None:
    files = [("main", ("thu.pdf", MAIN_PDF, declared))]
    response = api.create(files=files)
    details = assert_error(response, 422, "invalid_input")
    assert details["field"] == "media_type"
    assert api.get("/v1/documents").json()["items"] == []


@pytest.mark.parametrize(
    ("declared", "kept"),
    [
        ("Application/PDF", "application/pdf"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ("", "application/octet-stream"),
    ],
)
def test_a_parts_media_type_is_kept_in_lower_case_with_its_parameters(
    api: Api, declared: str, kept: str
) -> None:
    created = api.create(files=[("main", ("thu.pdf", MAIN_PDF, declared))])
    assert created.status_code == 201, created.text
    [attachment] = created.json()["attachments"]
    assert attachment["media_type"] == kept


def test_if_match_takes_a_long_list_of_etags(api: Api) -> None:
    doc_id = api.draft()["id"]
    tags = ", ".join(f'"{n}"' for n in range(100, 160)) + ', "1"'
    response = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, if_match=tags)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("if_none_match", "status"), [('"1"', 422), ("*", 412)])
def test_a_change_conditioned_on_if_none_match_is_refused_and_nothing_done(
    api: Api, if_none_match: str, status: int
) -> None:
    # A change names the version it is made on with If-Match; If-None-Match is not dropped
    doc_id = api.draft()["id"]
    response = api.client.post(
        f"/v1/documents/{doc_id}/events/edit",
        headers={**api.auth(), "If-None-Match": if_none_match},
        json={"fields": {"place": "Huế"}},
    )
    assert response.status_code == status, response.text
    assert api.version(doc_id) == 1


def test_an_attachment_named_by_its_digest_in_upper_case_hex_is_the_same(api: Api) -> None:
    response = api.create(files=[("main", ("thu.pdf", MAIN_PDF, "application/pdf"))])
    (main,) = response.json()["attachments"]

    got = api.get(f"/v1/documents/{response.json()['id']}/attachments/{main['sha256'].upper()}")

    assert (got.status_code, got.content) == (200, MAIN_PDF)
    assert got.headers["etag"] == f'"{main["sha256"]}"'


def test_a_text_attachment_is_served_as_uploaded_with_no_charset_made_up(api: Api) -> None:
    # Given a text appendix uploaded as text/plain, its bytes in a legacy encoding
    text = "Công văn".encode("cp1258")
    files = [
        ("main", ("thu.pdf", MAIN_PDF, "application/pdf")),
        ("appendix", ("ghi-chu.txt", text, "text/plain")),
    ]
    response = api.create(files=files)
    [kept] = [a for a in response.json()["attachments"] if a["role"] == "appendix"]

    # When it is downloaded
    got = api.get(f"/v1/documents/{response.json()['id']}/attachments/{kept['sha256']}")

    # Then its type is the one it was uploaded with: no charset=utf-8 it never had
    assert (got.status_code, got.content) == (200, text)
    assert got.headers["content-type"] == kept["media_type"] == "text/plain"


@pytest.mark.parametrize("name", ["doc_type", "state", "cursor", "created_after", "limit"])
def test_a_filter_given_empty_is_refused_not_guessed(api: Api, name: str) -> None:
    api.draft()
    details = assert_error(api.get("/v1/documents", params={name: ""}), 422, "invalid_input")
    assert name in json.dumps(details)


def test_approving_and_waiving_are_not_offered_before_the_revisions_checks_ran(
    api: Api,
) -> None:
    doc_id = api.draft()["id"]
    assert not {"approve", "waive"} & set(
        api.get(f"/v1/documents/{doc_id}").json()["allowed_events"]
    )

    submitted = api.fire(doc_id, "submit")

    # (approve's guard refuses a revision whose checks have not all run: see
    # test_review_flow_api for the steps after them)
    assert submitted.status_code == 200, submitted.text
    assert not {"approve", "waive"} & set(
        api.get(f"/v1/documents/{doc_id}").json()["allowed_events"]
    )
