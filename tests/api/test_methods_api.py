"""HTTP methods and media types as RFC 9110 has them, on every route.

HEAD is answered wherever GET is (9.3.2), with GET's status and headers and no body; a
405 names in ``Allow`` every method served at the path (15.5.6), not the first route's;
a form route (multipart) refuses a body of another media type as 415 (15.5.16), as JSON
routes do, before anything is read or kept.
"""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import A, Api, assert_error
from tests.factories import LETTER, MAIN_PDF, B


def test_head_answers_as_get_would_with_no_body(api: Api) -> None:
    # Given a draft, its view, its history and the document list
    draft = api.draft()
    for path in ("/v1/documents", f"/v1/documents/{draft['id']}", "/v1/health"):
        got = api.client.get(path, headers=api.auth())
        # When each is asked for with HEAD
        head = api.client.head(path, headers=api.auth())

        # Then the answer is GET's, status and headers, without the body
        assert (head.status_code, head.content) == (200, b""), path
        for name in ("content-type", "content-length", "etag"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
        assert head.headers["x-request-id"]


def test_head_asks_for_the_same_token_and_answers_the_same_errors(api: Api) -> None:
    draft = api.draft()
    unauthenticated = api.client.head(f"/v1/documents/{draft['id']}")
    assert (unauthenticated.status_code, unauthenticated.content) == (401, b"")
    missing = api.client.head("/v1/documents/nothing-here", headers=api.auth())
    assert (missing.status_code, missing.content) == (404, b"")
    elsewhere = api.client.head(f"/v1/documents/{draft['id']}", headers=api.auth(agency=B))
    assert elsewhere.status_code in (403, 404) and elsewhere.content == b""


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/documents", "GET, HEAD, POST"),
        ("OPTIONS", "/v1/documents", "GET, HEAD, POST"),
        ("PUT", "/v1/inbox", "POST"),
        ("GET", "/v1/inbox", "POST"),
        ("HEAD", "/v1/status", "POST"),
    ],
)
def test_a_method_not_served_is_told_with_every_method_that_is(
    api: Api, method: str, path: str, allowed: str
) -> None:
    response = api.client.request(method, path, headers=api.auth())

    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    if method != "HEAD":
        assert_error(response, 405, "method_not_allowed")


def test_a_method_not_served_at_a_document_names_those_that_are(api: Api) -> None:
    draft = api.draft()
    response = api.client.put(f"/v1/documents/{draft['id']}", headers=api.auth(), json={})
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain", "application/xml", None],
)
def test_a_draft_sent_as_another_media_type_than_a_form_is_415_and_nothing_kept(
    api: Api, content_type: str | None
) -> None:
    # Given the letter's metadata sent as anything but a form (multipart, or URL-encoded)
    body = json.dumps({"metadata": LETTER}).encode()
    headers = api.auth(**({"Content-Type": content_type} if content_type else {}))

    # When it is posted as a new draft
    response = api.client.post("/v1/documents", headers=headers, content=body)

    # Then it is refused for its media type, and no draft is kept
    assert_error(response, 415, "unsupported_media_type")
    assert "multipart/form-data" in response.json()["message"]
    assert api.get("/v1/documents").json()["items"] == []


def test_a_form_route_still_reads_a_multipart_body(api: Api) -> None:
    # The check lets the media type it names through (its boundary parameter and all)
    response = api.create(files=[("main", ("1227.pdf", MAIN_PDF, "application/pdf"))])
    assert response.status_code == 201, response.text


def test_the_openapi_document_declares_415_on_every_route_taking_a_body(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    taking = [
        (path, method)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert ("/v1/documents", "post") in taking
    missing = [
        (path, method)
        for path, method in taking
        if "415" not in spec["paths"][path][method]["responses"]
    ]
    assert missing == []


# -- conditional reads (RFC 9110 13.1.1, 13.1.2) ---------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("held", ['"{v}"', 'W/"{v}"', '"9", "{v}"', ', "{v}"', "*"])
def test_a_read_naming_the_tag_the_client_holds_is_not_modified(
    api: Api, method: str, held: str
) -> None:
    # Given a document and its ETag, as the client read it before
    doc = api.draft()
    path = f"/v1/documents/{doc['id']}"
    etag = api.client.get(path, headers=api.auth()).headers["etag"]
    version = etag.strip('"')

    # When it asks again naming that tag (weakly compared: W/ matches too)
    headers = {**api.auth(), "If-None-Match": held.format(v=version)}
    again = api.client.request(method, path, headers=headers)

    # Then 304: no body, the same ETag
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == etag
    assert "content-type" not in again.headers


def test_if_none_match_on_several_lines_is_the_list_they_make(api: Api) -> None:
    # Given a document's ETag, named on the second of two If-None-Match lines
    doc = api.draft()
    path = f"/v1/documents/{doc['id']}"
    etag = api.client.get(path, headers=api.auth()).headers["etag"].encode()
    auth = [(b"authorization", b"Bearer " + api.tokens[A]["clerk"].encode())]
    lines = [(b"if-none-match", b'"77"'), (b"if-none-match", etag)]

    # Then the read is not modified: the lines are one list (RFC 9110 5.3)
    assert api.raw("GET", path, auth + lines, b"").status_code == 304


def test_a_read_naming_another_tag_is_answered_in_full(api: Api) -> None:
    doc = api.draft()
    path = f"/v1/documents/{doc['id']}"
    headers = {**api.auth(), "If-None-Match": '"7", W/"8"'}
    got = api.client.get(path, headers=headers)
    assert got.status_code == 200 and got.json()["id"] == doc["id"]


@pytest.mark.parametrize("header", ["If-None-Match", "If-Match"])
@pytest.mark.parametrize("value", ["1", "garbage", '"1', ",", ""])
def test_a_condition_that_is_no_tag_list_is_refused_on_a_read_as_on_a_change(
    api: Api, header: str, value: str
) -> None:
    # A client writing the version unquoted would otherwise get no check at all on a read
    doc = api.draft()
    path = f"/v1/documents/{doc['id']}"
    got = api.client.get(path, headers={**api.auth(), header: value})
    assert got.status_code == 422, got.text
    assert got.json()["code"] == "invalid_input"
    assert got.json()["details"] == {"field": header}
    assert "id" not in got.json()
    # HEAD says the same, with no body; a change with it is refused in the same words
    assert api.client.head(path, headers={**api.auth(), header: value}).status_code == 422
    if header == "If-Match":
        changed = api.client.post(
            f"{path}/events/submit", headers={**api.auth(), header: value}, json={}
        )
        assert changed.status_code == 422 and changed.json()["code"] == "invalid_input"
    # Without a token, the token is what is refused first
    assert api.client.get(path, headers={header: value}).status_code == 401


@pytest.mark.parametrize(
    ("condition", "status"),
    [('"{v}"', 200), ('"9", "{v}"', 200), ("*", 200), ('"9"', 412), ('W/"{v}"', 412)],
)
def test_a_read_asking_for_another_version_fails_its_precondition(
    api: Api, condition: str, status: int
) -> None:
    # Given a document at some version
    doc = api.draft()
    path = f"/v1/documents/{doc['id']}"
    version = api.client.get(path, headers=api.auth()).headers["etag"].strip('"')

    # When it is read only if it is (strongly) one of the tags named
    got = api.client.get(path, headers={**api.auth(), "If-Match": condition.format(v=version)})

    # Then 200 when it is, else 412 with the error's own code and no document
    assert got.status_code == status
    if status == 412:
        assert got.json()["code"] == "precondition_failed"
        assert got.headers["etag"] == f'"{version}"'


@pytest.mark.parametrize(
    ("header", "condition", "status"),
    [
        ("If-Match", '"zzz"', 412),
        ("If-Match", '"3", "4"', 412),
        ("If-Match", "*", 200),
        ("If-None-Match", '"zzz"', 200),
        ("If-None-Match", "*", 304),
        ("If-Match", "3", 422),
    ],
)
@pytest.mark.parametrize("path", ["/v1/documents", "/v1/metrics", "/v1/agencies"])
def test_a_read_with_no_entity_tag_is_judged_as_having_none(
    api: Api, path: str, header: str, condition: str, status: int
) -> None:
    # RFC 9110 13.1.1: a representation with no entity tag matches no tag an If-Match
    # names (only *, it exists); 13.1.2: If-None-Match * fails (it exists), a tag holds
    role = "supervisor" if path == "/v1/metrics" else "clerk"
    assert "etag" not in api.client.get(path, headers=api.auth(role)).headers

    got = api.client.get(path, headers={**api.auth(role), header: condition})

    assert got.status_code == status, got.text
    if status == 412:
        assert got.json()["code"] == "precondition_failed"
    assert api.client.head(path, headers={**api.auth(role), header: condition}).status_code == (
        status
    )


@pytest.mark.parametrize("header", ["If-Match", "If-None-Match"])
def test_a_read_refused_for_its_query_says_so_whatever_its_condition(api: Api, header: str) -> None:
    # Given a read its route refuses (422: a state no document is in), asked with a
    # condition; then the route's own refusal, whole: not another error's body
    got = api.client.get("/v1/documents?state=bogus", headers={**api.auth(), header: '"x"'})
    assert got.status_code == 422, got.text
    assert got.json()["code"] == "invalid_input"
    assert got.json()["details"]["field"] == "state"
    assert int(got.headers["content-length"]) == len(got.content)


@pytest.mark.parametrize("header", ["If-Match", "If-None-Match"])
def test_a_condition_that_is_not_ascii_is_refused_as_every_header_read(
    api: Api, header: str
) -> None:
    doc = api.draft()
    got = api.client.get(
        f"/v1/documents/{doc['id']}", headers={**api.auth(), header: '"\xe9"'.encode("latin-1")}
    )
    assert got.status_code == 422, got.text
    assert (got.json()["code"], got.json()["details"]["field"]) == ("invalid_encoding", header)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=OTHER; boundary=BOUND",
        "application/json; charset=latin-1; charset=utf-8",
        "application/json; charset=utf-8; CHARSET=utf-8",
    ],
)
def test_a_request_media_type_giving_a_parameter_twice_is_refused(
    api: Api, content_type: str
) -> None:
    # A filter in front taking the first boundary (or charset) would judge another body
    before = api.client.get("/v1/documents", headers=api.auth()).json()
    got = api.client.post(
        "/v1/documents",
        headers={**api.auth(), "Content-Type": content_type},
        content=b'--BOUND\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{}'
        b"\r\n--BOUND--\r\n",
    )
    details = assert_error(got, 422, "repeated_field")
    assert details["location"] == "header"
    assert api.client.get("/v1/documents", headers=api.auth()).json() == before


def test_a_condition_on_a_read_that_fails_otherwise_changes_nothing(api: Api) -> None:
    # A missing document is 404 whatever the condition; no token is 401
    assert (
        api.client.get(
            "/v1/documents/nothing", headers={**api.auth(), "If-None-Match": "*"}
        ).status_code
        == 404
    )
    assert api.client.get("/v1/documents", headers={"If-None-Match": "*"}).status_code == 401


@pytest.mark.parametrize("slash", ["%2F", "%2f"])
def test_an_encoded_slash_is_no_path_separator(api: Api, slash: str) -> None:
    # Given a draft its clerk can read at /v1/documents/ID
    doc_id = api.draft()["id"]
    auth = [(b"authorization", b"Bearer " + api.tokens[A]["clerk"].encode())]
    assert api.raw("GET", f"/v1/documents/{doc_id}", auth).status_code == 200

    # Then the same path with its slashes encoded names nothing (RFC 3986 2.2: data)
    read = api.raw("GET", f"/v1/documents{slash}{doc_id}", auth)
    assert_error(read, 404, "not_found")
    fired = api.raw("POST", f"/v1/documents/{doc_id}{slash}events{slash}submit", auth)
    assert_error(fired, 404, "not_found")
    assert api.version(doc_id) == 1
