"""What a route takes once is given once, and what it does not take is not given.

Starlette keeps one of two equal form parts, query parameters or headers and FastAPI
drops the other without a word; JSON keeps the last of two equal keys. Each is refused:
422 ``repeated_field`` naming the field, and ``invalid_input`` for a part or a query
parameter the route does not take, so that a misspelt ``apendix`` is not a lost file.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import MAIN_PDF, A, Api, assert_error
from tests.api.test_encoding_api import META, form, part, post_form
from tests.api.test_limits_api import SHORT


def main(name: bytes = b"a.pdf", data: bytes = b"%PDF-1.4 a") -> bytes:
    return part(b'name="main"; filename="' + name + b'"', data, b"Content-Type: application/pdf")


def appendix(name: bytes) -> bytes:
    return part(b'name="appendix"; filename="' + name + b'"', b"%PDF-1.4 " + name)


METADATA = part(b'name="metadata"', META)


def listing(api: Api) -> list[dict[str, Any]]:
    return list(api.get("/v1/documents").json()["items"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (form(METADATA, main(b"a.pdf"), main(b"b.pdf")), "main"),
        (
            form(METADATA, part(b'name="metadata"', META.replace(b'"CV"', b'"QD"')), main()),
            "metadata",
        ),
        (form(METADATA, main(), METADATA), "metadata"),
    ],
    ids=["two main parts", "two metadata parts", "the same metadata twice"],
)
def test_a_part_given_twice_is_refused(api: Api, body: bytes, field: str) -> None:
    response = post_form(body)(api, "")
    details = assert_error(response, 422, "repeated_field")
    assert details == {"field": field, "location": "form part", "count": 2}
    assert listing(api) == []


def test_a_urlencoded_field_given_twice_is_refused(api: Api) -> None:
    metadata = json.dumps(SHORT).encode().replace(b"&", b"%26")
    body = b"metadata=" + metadata + b"&metadata=" + metadata
    response = post_form(body, b"application/x-www-form-urlencoded")(api, "")
    assert assert_error(response, 422, "repeated_field")["field"] == "metadata"
    assert listing(api) == []


def test_appendices_are_a_list_and_are_all_kept(api: Api) -> None:
    response = post_form(form(METADATA, main(), appendix(b"1.pdf"), appendix(b"2.pdf")))(api, "")
    assert response.status_code == 201, response.text
    names = [(a["role"], a["filename"]) for a in response.json()["attachments"]]
    assert sorted(names) == [("appendix", "1.pdf"), ("appendix", "2.pdf"), ("main", "a.pdf")]


@pytest.mark.parametrize("name", [b"mian", b"Main", b"appendix[]", b"apendix", b"file"])
def test_a_part_the_request_does_not_take_is_refused(api: Api, name: bytes) -> None:
    body = form(METADATA, main(), part(b'name="' + name + b'"; filename="x.pdf"', b"%PDF"))
    details = assert_error(post_form(body)(api, ""), 422, "invalid_input")
    assert (details["field"], details["location"]) == (name.decode(), "form part")
    assert details["takes"] == ["appendix", "main", "metadata"]
    assert listing(api) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=1&limit=50", "limit"),
        ("doc_type=CV&doc_type=QD", "doc_type"),
        ("cursor=a&cursor=b", "cursor"),
        ("urgency=0&urgency=3", "urgency"),
    ],
)
def test_a_single_query_parameter_given_twice_is_refused(api: Api, query: str, field: str) -> None:
    details = assert_error(api.get(f"/v1/documents?{query}"), 422, "repeated_field")
    assert details == {"field": field, "location": "query parameter", "count": 2}


def test_a_query_parameter_that_is_a_list_may_repeat(api: Api) -> None:
    doc_id = api.draft()["id"]
    response = api.get("/v1/documents?state=draft&state=sent")
    assert response.status_code == 200, response.text
    assert [d["id"] for d in response.json()["items"]] == [doc_id]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/documents?limt=5",
        "/v1/documents?state=draft&status=sent",
        "/v1/documents/{doc}?version=1",
        "/v1/documents/{doc}/history?limit=5&page=2",
    ],
)
def test_a_query_parameter_the_route_does_not_take_is_refused(api: Api, path: str) -> None:
    doc_id = api.draft()["id"]
    details = assert_error(api.get(path.format(doc=doc_id)), 422, "invalid_input")
    assert details["location"] == "query parameter"
    assert details["field"] in {"limt", "status", "version", "page"}


def _event(
    api: Api, doc_id: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> httpx.Response:
    base = [(b"authorization", b"Bearer " + api.tokens[A]["clerk"].encode())]
    base.append((b"content-type", b"application/json"))
    return api.raw("POST", f"/v1/documents/{doc_id}/events/edit", base + headers, body)


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ([(b"idempotency-key", b"a"), (b"idempotency-key", b"b")], "Idempotency-Key"),
        ([(b"idempotency-key", b"a"), (b"Idempotency-Key", b"a")], "Idempotency-Key"),
        ([(b"authorization", b"Bearer another")], "Authorization"),
        ([(b"content-type", b"text/plain")], "Content-Type"),
    ],
    ids=["two keys", "one key twice", "two tokens", "two media types"],
)
def test_a_header_given_twice_is_refused(
    api: Api, headers: list[tuple[bytes, bytes]], field: str
) -> None:
    doc_id = api.draft()["id"]
    response = _event(api, doc_id, headers, b'{"fields": {"place": "Hue"}}')
    details = assert_error(response, 422, "repeated_field")
    assert details == {"field": field, "location": "header", "count": 2}
    assert api.version(doc_id) == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_two_tokens_are_refused_whichever_comes_first(api: Api, method: str) -> None:
    # Given a valid token and another (garbage) one, in either order, on a read and a change
    doc_id = api.draft()["id"]
    valid = b"Bearer " + api.tokens[A]["clerk"].encode()
    path = f"/v1/documents/{doc_id}" + ("/events/edit" if method == "POST" else "")
    body = b'{"fields": {"place": "Hue"}}' if method == "POST" else b""
    for pair in ([valid, b"Bearer garbage"], [b"Bearer garbage", valid]):
        headers = [(b"authorization", value) for value in pair]
        headers += [(b"content-type", b"application/json")] if body else []
        # Then each is the same refusal, before either token is looked up
        details = assert_error(api.raw(method, path, headers, body), 422, "repeated_field")
        assert details == {"field": "Authorization", "location": "header", "count": 2}
    assert api.version(doc_id) == 1


@pytest.mark.parametrize(
    ("lines", "matched"),
    [([b'"9"', b'"1"'], True), ([b'"9"', b'"8"'], False), ([b'"1"', b'W/"1"'], True)],
)
def test_if_match_on_several_lines_is_the_list_they_make(
    api: Api, lines: list[bytes], matched: bool
) -> None:
    # If-Match is a list field: its lines are one list (RFC 9110 5.3), not a field repeated
    doc_id = api.draft()["id"]
    headers = [(b"if-match", line) for line in lines]
    response = _event(api, doc_id, headers, b'{"fields": {"place": "Hue"}}')
    if matched:
        assert response.status_code == 200, response.text
        assert api.version(doc_id) == 2
    else:
        details = assert_error(response, 409, "version_conflict")
        assert details["expected_version"] == [9, 8]
        assert api.version(doc_id) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"fields": {"place": "a"}, "fields": {"place": "b"}}',
        b'{"fields": {"place": "a", "place": "b"}}',
        b'{"reason": "ok", "reason": ""}',
    ],
    ids=["top level", "nested", "a reason twice"],
)
def test_a_json_key_given_twice_is_refused(api: Api, body: bytes) -> None:
    doc_id = api.draft()["id"]
    details = assert_error(_event(api, doc_id, [], body), 422, "repeated_field")
    assert details["location"] == "body"
    assert details["field"] in {"fields", "place", "reason"}
    assert api.version(doc_id) == 1


def test_a_metadata_key_given_twice_is_refused(api: Api) -> None:
    text = json.dumps({**SHORT, "recipients": []})[:-1] + ', "subject": "Khác"}'
    assert json.loads(text)["subject"] == "Khác"  # what json.loads alone would store
    details = assert_error(api.create(metadata=text), 422, "repeated_field")
    assert details == {"field": "subject", "location": "metadata"}
    nested = json.dumps(SHORT).replace('"organ_id": ', '"organ_id": "000.00.31.H57", "organ_id": ')
    details = assert_error(api.create(metadata=nested), 422, "repeated_field")
    assert details == {"field": "organ_id", "location": "metadata"}
    assert listing(api) == []


def test_a_request_as_the_readme_shows_it_is_taken(api: Api) -> None:
    # One of each part, one key, one If-Match: nothing here is refused
    created = api.create(files=[("main", ("thu.pdf", MAIN_PDF, "application/pdf"))])
    assert created.status_code == 201, created.text
    doc_id = created.json()["id"]
    response = _event(
        api,
        doc_id,
        [(b"if-match", b'"1"'), (b"idempotency-key", b"42")],
        b'{"fields": {"place": "Hue"}}',
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "position"), [(b"garbage", 0), (b'{"fields": {"place": "Hue"}', 27)]
)
def test_a_body_that_is_not_json_is_said_of_the_body_where_reading_stopped(
    api: Api, body: bytes, position: int
) -> None:
    doc_id = api.draft()["id"]
    details = assert_error(_event(api, doc_id, [], body), 422, "invalid_input")
    [error] = details["errors"]
    # (not a field named "0" or "27": the place in the text is its position)
    assert (error["field"], error["type"], error["position"]) == ("body", "json_invalid", position)
    assert api.version(doc_id) == 1
