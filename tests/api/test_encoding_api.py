"""Text that is not UTF-8 is refused wherever it enters, with one code: invalid_encoding.

Starlette decodes a form part or a header that is not UTF-8 as Latin-1, and a path or a
query with U+FFFD for each bad byte; either way other letters than the client meant would
be stored or compared. Each case below sends such bytes through the real HTTP path and
must get 422 ``invalid_encoding`` naming where the text was, and change nothing.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from urllib.parse import quote_from_bytes

import httpx
import pytest

from congvan.workflow.api.encoding import READ_HEADERS
from tests.api.conftest import A, Api, assert_error
from tests.api.test_limits_api import SHORT

Send = Callable[[Api, str], httpx.Response]
META = json.dumps(SHORT, ensure_ascii=False).encode()
# The metadata with a subject in Latin-1 ("café"), the mistake a client makes most.
LATIN1_META = json.dumps({**SHORT, "subject": "X"}).encode().replace(b'"X"', b'"caf\xe9"')


def part(disposition: bytes, data: bytes, *headers: bytes) -> bytes:
    lines = [b"Content-Disposition: form-data; " + disposition, *headers]
    return b"--b\r\n" + b"\r\n".join(lines) + b"\r\n\r\n" + data + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--b--\r\n"


MAIN = part(b'name="main"; filename="a.pdf"', b"%PDF-1.4 x")


def clerk(api: Api, role: str = "clerk") -> tuple[bytes, bytes]:
    """The Authorization header of the clerk (or of ``role``)."""
    return (b"authorization", b"Bearer " + api.tokens[A][role].encode())


def post_form(body: bytes, content_type: bytes = b"multipart/form-data; boundary=b") -> Send:
    def send(api: Api, _doc_id: str) -> httpx.Response:
        headers = [clerk(api), (b"content-type", content_type)]
        return api.raw("POST", "/v1/documents", headers, body)

    return send


def get(path: bytes, *headers: tuple[bytes, bytes]) -> Send:
    def send(api: Api, doc_id: str) -> httpx.Response:
        target = path.replace(b"{doc}", doc_id.encode()).decode("ascii")
        return api.raw("GET", target, [clerk(api), *headers])

    return send


def edit(
    body: bytes, *headers: tuple[bytes, bytes], event: bytes = b"edit", role: str = "clerk"
) -> Send:
    def send(api: Api, doc_id: str) -> httpx.Response:
        path = f"/v1/documents/{doc_id}/events/{event.decode('ascii')}"
        given = dict(headers)
        given.setdefault(b"content-type", b"application/json")
        return api.raw("POST", path, [clerk(api, role), *given.items()], body)

    return send


PLACE = b'{"fields": {"place": "Hu\xe1\xba\xbf"}}'  # "Huế", well-formed UTF-8

# case: (request, where the answer says the text was: location, field)
NOT_UTF8: dict[str, tuple[Send, str, str]] = {
    # form parts: the metadata, any other text part, names, file names, part headers
    "Latin-1 letter in the metadata part": (
        post_form(form(part(b'name="metadata"', LATIN1_META), MAIN)),
        "form part",
        "metadata",
    ),
    "stray byte in the metadata part": (
        post_form(form(part(b'name="metadata"', META.replace(b"CV", b"C\xff")), MAIN)),
        "form part",
        "metadata",
    ),
    "cut-off letter at the end of the metadata part": (
        post_form(form(part(b'name="metadata"', META + b"\xe1\xba"), MAIN)),
        "form part",
        "metadata",
    ),
    "another text part": (
        post_form(form(part(b'name="metadata"', META), part(b'name="note"', b"\xfe"))),
        "form part",
        "note",
    ),
    "file name": (
        post_form(
            form(part(b'name="metadata"', META), part(b'name="main"; filename="\xff.pdf"', b"%"))
        ),
        "form part header",
        "Content-Disposition",
    ),
    "Latin-1 file name": (
        post_form(
            form(part(b'name="metadata"', META), part(b'name="main"; filename="th\xf9.pdf"', b"%"))
        ),
        "form part header",
        "Content-Disposition",
    ),
    "part name": (
        post_form(
            form(part(b'name="m\xffain"; filename="a.pdf"', b"%"), part(b'name="metadata"', META))
        ),
        "form part header",
        "Content-Disposition",
    ),
    "part media type": (
        post_form(
            form(
                part(b'name="metadata"', META),
                part(b'name="main"; filename="a.pdf"', b"%", b"Content-Type: text/\xe1\xba\xaf"),
            )
        ),
        "form part header",
        "content-type",
    ),
    "form declared Latin-1": (
        post_form(
            form(part(b'name="metadata"', LATIN1_META)),
            b"multipart/form-data; boundary=b; charset=iso-8859-1",
        ),
        "header",
        "Content-Type",
    ),
    "urlencoded form, percent-encoded": (
        post_form(
            b"metadata=" + quote_from_bytes(LATIN1_META).encode(),
            b"application/x-www-form-urlencoded",
        ),
        "form field",
        "metadata",
    ),
    "urlencoded form, raw byte": (
        post_form(
            b"metadata=" + LATIN1_META.replace(b"&", b"%26"), b"application/x-www-form-urlencoded"
        ),
        "form field",
        "metadata",
    ),
    # the query and the path
    "query value": (get(b"/v1/documents?doc_type=%FF"), "query parameter", "doc_type"),
    "Latin-1 query value": (get(b"/v1/documents?doc_type=Q%D0"), "query parameter", "doc_type"),
    "query name": (get(b"/v1/documents?limit=5&%FF=1"), "query parameter", "\ufffd"),
    "document id": (get(b"/v1/documents/%FF%FE"), "path", "/v1/documents/\ufffd\ufffd"),
    "attachment digest": (
        get(b"/v1/documents/{doc}/attachments/%C3"),
        "path",
        "/v1/documents/{doc}/attachments/\ufffd",
    ),
    "event name": (edit(b"{}", event=b"%E9dit"), "path", "/v1/documents/{doc}/events/\ufffddit"),
    # headers the API reads
    "Idempotency-Key": (edit(PLACE, (b"idempotency-key", b"kh\xf3a")), "header", "Idempotency-Key"),
    "Idempotency-Key in UTF-8": (
        edit(PLACE, (b"idempotency-key", "khóa".encode())),
        "header",
        "Idempotency-Key",
    ),
    "If-Match": (edit(PLACE, (b"if-match", b"\xb2")), "header", "If-Match"),
    "Authorization": (
        get(b"/v1/documents", (b"authorization", b"Bearer t\xf6ken")),
        "header",
        "Authorization",
    ),
    # JSON bodies
    "JSON body": (edit(b'{"fields": {"place": "Hu\xe9"}}'), "body", "body"),
    "JSON body in UTF-16": (edit('{"fields": {"place": "Huế"}}'.encode("utf-16")), "body", "body"),
    "JSON body declared Latin-1": (
        edit(PLACE, (b"content-type", b"application/json; charset=latin-1")),
        "header",
        "Content-Type",
    ),
    "JSON body of a reason": (
        edit(b'{"reason": "sai \xe0"}', event=b"reject", role="reviewer"),
        "body",
        "body",
    ),
}


def listing(api: Api) -> list[str]:
    return [d["id"] for d in api.get("/v1/documents", params={"limit": 50}).json()["items"]]


@pytest.mark.parametrize("case", NOT_UTF8.values(), ids=NOT_UTF8)
def test_text_that_is_not_utf8_is_refused_wherever_it_enters(
    api_any_db: Api, case: tuple[Send, str, str]
) -> None:
    # Given a draft
    api = api_any_db
    send, location, field = case
    doc_id = api.draft(metadata=SHORT)["id"]

    # When a request carries text that is not UTF-8
    response = send(api, doc_id)

    # Then it is refused, saying where, and nothing changed
    details = assert_error(response, 422, "invalid_encoding")
    assert (details["location"], details["field"]) == (location, field.replace("{doc}", doc_id))
    assert listing(api) == [doc_id]
    assert api.version(doc_id) == 1


def test_utf8_text_is_taken_in_every_place_the_refused_cases_use(api: Api) -> None:
    # The same places, well-formed: a letter split across the body's chunks, a file name,
    # a part's header, a query value and a JSON body, all in UTF-8.
    name = "Công văn số 1227.pdf".encode()
    body = form(
        part(b'name="metadata"', META), part(b'name="main"; filename="' + name + b'"', b"%")
    )
    split = body.index("thưởng".encode()) + 3  # inside "ư", two bytes

    def chunks() -> Iterator[bytes]:
        yield body[:split]
        yield body[split:]

    response = api.client.post(
        "/v1/documents",
        headers={**api.auth(), "Content-Type": "multipart/form-data; boundary=b; charset=UTF-8"},
        content=chunks(),
    )
    assert response.status_code == 201, response.text
    view = response.json()
    assert (view["subject"], view["attachments"][0]["filename"]) == (
        SHORT["subject"],
        "Công văn số 1227.pdf",
    )

    found = api.get("/v1/documents", params={"doc_type": "CV"}).json()["items"]
    assert [d["id"] for d in found] == [view["id"]]
    edited = edit(PLACE, (b"idempotency-key", b"edit-1"))(api, view["id"])
    assert edited.status_code == 200, edited.text
    assert api.get(f"/v1/documents/{view['id']}").json()["place"] == "Huế"


def test_a_urlencoded_form_in_utf8_is_read_as_utf8(api: Api) -> None:
    response = post_form(
        b"metadata=" + quote_from_bytes(META).encode(), b"application/x-www-form-urlencoded"
    )(api, "")
    assert response.status_code == 201, response.text
    assert response.json()["subject"] == SHORT["subject"]


def test_every_header_the_api_reads_is_checked(api: Api) -> None:
    # A header a route reads but the encoding check does not would slip through as Latin-1
    spec = api.client.get("/openapi.json").json()
    declared = {
        p["name"].lower()
        for path in spec["paths"].values()
        for op in path.values()
        for p in op.get("parameters", [])
        if p["in"] == "header"
    }
    assert declared
    assert declared <= {name.decode() for name in READ_HEADERS}


def test_a_urlencoded_form_with_raw_utf8_is_refused_not_read_as_latin1(api: Api) -> None:
    # Starlette reads what a urlencoded form does not percent-encode as Latin-1
    response = post_form(b"metadata=" + META, b"application/x-www-form-urlencoded")(api, "")
    details = assert_error(response, 422, "invalid_encoding")
    assert (details["location"], details["field"]) == ("form field", "metadata")
    assert listing(api) == []


def test_a_form_part_declaring_another_charset_is_refused(api: Api) -> None:
    latin1 = part(b'name="metadata"', LATIN1_META, b"Content-Type: text/plain; charset=latin-1")
    response = post_form(form(latin1, MAIN))(api, "")
    details = assert_error(response, 422, "invalid_encoding")
    assert details["location"] == "form part header"
    assert listing(api) == []


@pytest.mark.parametrize("cut", [10, 11, 500])
def test_a_multipart_body_cut_short_creates_nothing(api: Api, cut: int) -> None:
    # Its closing boundary and part of the main file are lost on the way
    body = form(part(b'name="metadata"', META), part(b'name="main"; filename="a.pdf"', b"%" * 600))
    response = post_form(body[:-cut])(api, "")
    details = assert_error(response, 422, "invalid_input")
    assert details["location"] == "body"
    assert listing(api) == []


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        None,
    ],
)
def test_a_json_route_given_another_media_type_answers_415_and_changes_nothing(
    api: Api, content_type: str | None
) -> None:
    doc = api.draft()
    body = json.dumps({"fields": {"place": "Đà Nẵng"}}).encode()
    # httpx names no type for raw content: the header is the test's own
    headers = api.auth("clerk") | ({"Content-Type": content_type} if content_type else {})
    for path in (f"/v1/documents/{doc['id']}/events/edit", "/v1/status"):
        answer = api.client.post(path, content=body, headers=headers)
        assert_error(answer, 415, "unsupported_media_type")
    assert api.get(f"/v1/documents/{doc['id']}").json()["place"] == doc["place"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON; charset=utf-8", "application/x+json"]
)
def test_a_json_body_is_taken_under_its_media_type_whatever_its_case(
    api: Api, content_type: str
) -> None:
    doc = api.draft()
    body = json.dumps({"fields": {"place": "Đà Nẵng"}}).encode()
    headers = api.auth("clerk") | {"Content-Type": content_type}
    answer = api.client.post(
        f"/v1/documents/{doc['id']}/events/edit", content=body, headers=headers
    )
    assert answer.status_code == 200, answer.text
    assert api.get(f"/v1/documents/{doc['id']}").json()["place"] == "Đà Nẵng"


@pytest.mark.parametrize("length", [257, 5000])
def test_a_boundary_too_long_to_parse_is_a_bad_request_wherever_it_is_sent(
    api: Api, length: int
) -> None:
    # Given a well-formed form whose boundary is longer than the parser takes (256 bytes)
    boundary = b"B" * length
    body = form(part(b'name="metadata"', META), MAIN).replace(b"--b", b"--" + boundary)
    content_type = b"multipart/form-data; boundary=" + boundary
    doc = api.draft()
    # When it is sent to a route reading a form, to one reading another body, to one
    # reading none, with and without a token
    # Then each answers as it would any body it cannot read: never a crash
    # (each by a role the route takes, or by nobody: None)
    answers = {
        ("POST", "/v1/documents", "clerk"): (400, "bad_request"),
        ("POST", f"/v1/documents/{doc['id']}/replace", "supervisor"): (400, "bad_request"),
        # (no token: refused before a byte of the body is read)
        ("POST", "/v1/documents", None): (401, "unauthenticated"),
        ("POST", f"/v1/documents/{doc['id']}/events/edit", "clerk"): (
            415,
            "unsupported_media_type",
        ),
        ("POST", "/v1/inbox", None): (415, "unsupported_media_type"),
        ("GET", "/v1/health", None): (200, None),
    }
    for (method, path, role), (status, code) in answers.items():
        headers = [(b"content-type", content_type), *([clerk(api, role)] if role else [])]
        response = api.raw(method, path, headers, body)
        if code is None:
            assert response.status_code == status, (path, response.text)
        else:
            assert_error(response, status, code)
    assert listing(api) == [doc["id"]]


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate, gzip", "GZIP"])
def test_a_body_in_a_content_coding_is_unsupported_not_read_as_its_bytes(
    api: Api, coding: str
) -> None:
    # A package gzipped for the way, or a JSON body: read as sent, a package would be
    # refused for good as not a ZIP
    package = gzip.compress(b"PK\x03\x04 a package")
    inbox = api.client.post(
        "/v1/inbox",
        content=package,
        headers={"Content-Type": "application/zip", "Content-Encoding": coding},
    )
    status = api.client.post(
        "/v1/status",
        content=gzip.compress(b"{}"),
        headers={"Content-Type": "application/json", "Content-Encoding": coding},
    )

    for answer in (inbox, status):
        assert assert_error(answer, 415, "unsupported_media_type") == {
            "content_encoding": coding.lower()
        }
        assert answer.headers["Accept-Encoding"] == "identity"
    # And identity is no coding at all: the body is read (and refused for what it is)
    plain = api.client.post(
        "/v1/inbox",
        content=b"not a zip",
        headers={"Content-Type": "application/zip", "Content-Encoding": "identity"},
    )
    assert plain.status_code == 422, plain.text
