"""Every input limit has its own answer, and no malformed input gets a 500."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from congvan.workflow import directory
from congvan.workflow.jsontext import MAX_JSON_VALUES
from tests.api.conftest import LETTER, A, Api, B, MakeApi, assert_error, sha256

LIMITS = {
    "max_request_bytes": 64 * 1024,
    "max_attachment_bytes": 2000,
    "max_attachments": 3,
    "max_recipients": 3,
    "max_text_length": 20,
    "max_subject_length": 30,
    "max_content_length": 50,
    "max_page_size": 5,
}
# The letter, cut to fit the small limits.
SHORT = {
    **LETTER,
    "subject": "V/v thi đua khen thưởng",
    "recipients": [{"organ_id": B, "name": "Sở Nội vụ"}],
}


@pytest.fixture
def small(make_api: MakeApi) -> Api:
    """The app with small limits."""
    return make_api(**LIMITS)


def pdf(size: int) -> tuple[str, bytes, str]:
    return (f"{size}.pdf", b"%" * size, "application/pdf")


def nothing_created(api: Api) -> bool:
    return bool(api.get("/v1/documents", params={"limit": 5}).json()["items"] == [])


# -- request size ------------------------------------------------------------------------


def test_a_body_declared_larger_than_allowed_is_refused_unread(small: Api) -> None:
    response = small.create(metadata=SHORT, files=[("main", pdf(70_000))])
    details = assert_error(response, 413, "payload_too_large")
    assert details == {"max_bytes": LIMITS["max_request_bytes"]}
    assert response.headers["Connection"] == "close"
    assert nothing_created(small)


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def test_a_streamed_body_without_content_length_is_cut_off_at_the_limit(small: Api) -> None:
    # Given a multipart body sent in chunks, with no Content-Length to judge it by
    response = small.client.post(
        "/v1/documents",
        headers=small.auth(**{"Content-Type": "multipart/form-data; boundary=b"}),
        content=_chunks(200_000),
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    # Then it is refused as too large, with the same details as a declared one
    details = assert_error(response, 413, "payload_too_large")
    assert details == {"max_bytes": LIMITS["max_request_bytes"]}
    assert nothing_created(small)


def test_a_streamed_event_body_is_cut_off_too_and_a_small_one_passes(small: Api) -> None:
    doc_id = small.draft(metadata=SHORT)["id"]
    url = f"/v1/documents/{doc_id}/events/edit"
    headers = small.auth(**{"Content-Type": "application/json"})

    big = small.client.post(url, headers=headers, content=_chunks(100_000))
    assert_error(big, 413, "payload_too_large")

    body = json.dumps({"fields": {"place": "Huế"}}).encode()
    ok = small.client.post(url, headers=headers, content=iter([body[:5], body[5:]]))
    assert "content-length" not in ok.request.headers
    assert ok.status_code == 200, ok.text
    assert small.version(doc_id) == 2


def test_a_status_message_body_anyone_may_post_is_capped_at_a_megabyte(api: Api) -> None:
    # A status message is a few kilobytes; the route takes no token, so no caller may
    # make the server read and parse the installation's whole request limit
    cap = 1024 * 1024
    headers = {"Content-Type": "application/json"}
    declared = api.client.post("/v1/status", headers=headers, content=b"[" + b"0," * cap + b"0]")
    streamed = api.client.post("/v1/status", headers=headers, content=_chunks(cap + 1))
    assert "content-length" not in streamed.request.headers

    for response in (declared, streamed):
        assert assert_error(response, 413, "payload_too_large") == {"max_bytes": cap}
    # While one under the cap is read, and refused for what it is
    assert api.client.post("/v1/status", headers=headers, content=b"[]").status_code == 422


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"reason": ' + b"9" * 5000 + b"}"],
    ids=["nested_100000_deep", "number_of_5000_digits"],
)
def test_json_python_cannot_read_is_invalid_input_on_every_json_route(
    api: Api, body: bytes
) -> None:
    doc_id = api.draft()["id"]
    headers = api.auth(**{"Content-Type": "application/json"})
    for url in (f"/v1/documents/{doc_id}/events/submit", "/v1/status"):
        response = api.client.post(url, headers=headers, content=body)
        assert assert_error(response, 422, "invalid_input") == {"field": "body"}, url


def create_declaring(api: Api, length: bytes, body: bytes) -> httpx.Response:
    """A clerk's create request whose ``Content-Length`` says ``length``, ``body`` sent."""
    token = api.tokens[A]["clerk"].encode()
    headers = [
        (b"authorization", b"Bearer " + token),
        (b"content-type", b"multipart/form-data; boundary=b"),
        (b"content-length", length),
    ]
    return api.raw("POST", "/v1/documents", headers, body=body)


def test_a_content_length_that_understates_the_body_does_not_lift_the_limit(small: Api) -> None:
    response = create_declaring(small, b"10", b"x" * 100_000)
    assert_error(response, 413, "payload_too_large")
    assert nothing_created(small)


@pytest.mark.parametrize("declared", [b"9" * 5000, b"0" * 5000 + b"70000"])
def test_a_content_length_of_thousands_of_digits_is_refused_as_too_large(
    small: Api, declared: bytes
) -> None:
    response = create_declaring(small, declared, b"x" * 10)
    assert_error(response, 413, "payload_too_large")
    assert nothing_created(small)


# -- attachments -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["main", "appendix"])
def test_an_attachment_larger_than_allowed_is_refused(small: Api, role: str) -> None:
    files = [("main", pdf(10)), (role, pdf(LIMITS["max_attachment_bytes"] + 1))]
    response = small.create(metadata=SHORT, files=files[1:] if role == "main" else files)
    details = assert_error(response, 413, "attachment_too_large")
    assert details == {"filename": "2001.pdf", "max_bytes": LIMITS["max_attachment_bytes"]}
    assert nothing_created(small)


def test_an_attachment_of_exactly_the_limit_is_taken(small: Api) -> None:
    name, data, media_type = pdf(LIMITS["max_attachment_bytes"])
    response = small.create(metadata=SHORT, files=[("main", (name, data, media_type))])
    assert response.status_code == 201, response.text
    assert response.json()["attachments"][0]["size"] == len(data)


@pytest.mark.parametrize(
    ("roles", "created"),
    [
        (["main", "appendix", "appendix"], True),
        (["appendix", "appendix", "appendix"], True),
        (["main", "appendix", "appendix", "appendix"], False),
        (["appendix"] * 4, False),
    ],
)
def test_at_most_max_attachments_files(small: Api, roles: list[str], created: bool) -> None:
    files = [
        (role, (f"{i}.pdf", f"file {i}".encode(), "application/pdf"))
        for i, role in enumerate(roles)
    ]
    response = small.create(metadata=SHORT, files=files)
    if created:
        assert response.status_code == 201, response.text
        assert [a["role"] for a in response.json()["attachments"]] == roles
        return
    details = assert_error(response, 422, "too_many_attachments")
    assert details == {"max_items": LIMITS["max_attachments"], "count": len(roles)}
    assert nothing_created(small)


def test_a_file_name_longer_than_255_characters_is_too_long(small: Api) -> None:
    name = "tệp-" * 64 + ".pdf"
    response = small.create(metadata=SHORT, files=[("main", (name, b"x", "application/pdf"))])
    details = assert_error(response, 422, "field_too_long")
    assert details == {"field": "filename", "max_length": 255, "length": len(name)}
    fits = small.create(metadata=SHORT, files=[("main", (name[-255:], b"x", "a/b"))])
    assert fits.status_code == 201, fits.text


# -- text fields -------------------------------------------------------------------------

FIELD_LIMITS = {
    "subject": LIMITS["max_subject_length"],
    "content": LIMITS["max_content_length"],
    "place": LIMITS["max_text_length"],
    "symbol": LIMITS["max_text_length"],
    "doc_type": LIMITS["max_text_length"],
    "signer_name": LIMITS["max_text_length"],
    "signer_position": LIMITS["max_text_length"],
    "signer_competence": LIMITS["max_text_length"],
}


@pytest.mark.parametrize(("field", "limit"), FIELD_LIMITS.items())
def test_a_text_field_longer_than_its_limit_is_too_long(small: Api, field: str, limit: int) -> None:
    # At the limit it is taken
    fits = small.create(metadata={**SHORT, field: "ắ" * limit})
    assert fits.status_code == 201, fits.text
    # One character more is refused, naming the field and the limit
    response = small.create(metadata={**SHORT, field: "ắ" * (limit + 1)})
    details = assert_error(response, 422, "field_too_long")
    assert details == {"field": field, "max_length": limit, "length": limit + 1}
    # And so is an edit that would make it too long
    doc_id = fits.json()["id"]
    edit = small.fire(doc_id, "edit", body={"fields": {field: "a" * (limit + 1)}})
    assert assert_error(edit, 422, "field_too_long")["field"] == field
    assert small.version(doc_id) == 1


def test_the_column_caps_a_larger_setting(make_api: MakeApi) -> None:
    # symbol is a 50-character column: a generous max_text_length does not stretch it
    api = make_api(max_text_length=400)
    details = assert_error(api.create(symbol="S" * 51), 422, "field_too_long")
    assert details == {"field": "symbol", "max_length": 50, "length": 51}
    # and a recipient's name column holds 300
    long_name = [{"organ_id": B, "name": "n" * 301}]
    details = assert_error(api.create(recipients=long_name), 422, "field_too_long")
    assert details == {"field": "recipients.name", "max_length": 300, "length": 301}


def test_a_reason_longer_than_the_limit_is_too_long(small: Api) -> None:
    doc_id = small.draft(metadata=SHORT)["id"]
    response = small.fire(doc_id, "reject", role="reviewer", body={"reason": "r" * 21})
    details = assert_error(response, 422, "field_too_long")
    assert details == {"field": "reason", "max_length": 20, "length": 21}
    assert small.version(doc_id) == 1


def test_a_recipient_name_longer_than_the_limit_is_too_long(small: Api) -> None:
    recipients = [{"organ_id": B, "name": "n" * 21}]
    details = assert_error(
        small.create(metadata={**SHORT, "recipients": recipients}), 422, "field_too_long"
    )
    assert details == {"field": "recipients.name", "max_length": 20, "length": 21}


# -- recipients --------------------------------------------------------------------------


def _recipients(n: int) -> list[dict[str, str]]:
    return [{"organ_id": f"000.00.{i:02d}.H57", "name": f"Sở {i}"} for i in range(1, n + 1)]


def test_at_most_max_recipients(small: Api) -> None:
    fits = small.create(metadata={**SHORT, "recipients": _recipients(3)})
    assert fits.status_code == 201, fits.text
    assert fits.json()["recipients"] == _recipients(3)

    response = small.create(metadata={**SHORT, "recipients": _recipients(4)})
    details = assert_error(response, 422, "invalid_input")
    assert details == {"field": "recipients", "max_items": 3}

    edit = small.fire(fits.json()["id"], "edit", body={"recipients": _recipients(4)})
    assert assert_error(edit, 422, "invalid_input")["field"] == "recipients"


def _too_many_values(answer: httpx.Response, where: str) -> None:
    details = assert_error(answer, 413, "payload_too_large")
    assert details == {"field": where, "max_values": MAX_JSON_VALUES}


def test_a_body_of_more_json_values_than_a_request_carries_is_refused(api: Api) -> None:
    # Given bodies of tens of thousands of tiny values: recipients (each an object of
    # two), and a rule of working minutes as long as a list can be
    many = [{"organ_id": B, "name": "x"}] * (MAX_JSON_VALUES // 3 + 1)
    numbers = b'{"rules": {"deliver": [' + b"1," * (4 * MAX_JSON_VALUES) + b"1]}}"
    doc_id = api.draft()["id"]

    # When they are posted: an event, the create form's metadata, the time rules
    edit = api.fire(doc_id, "edit", body={"recipients": many})
    created = api.create(metadata={**LETTER, "recipients": many})
    rules = api.client.put(
        "/v1/time-rules",
        headers={**api.auth("supervisor"), "Content-Type": "application/json"},
        content=numbers,
    )

    # Then each is refused for its size before anything is built from it, and nothing
    # changed
    _too_many_values(edit, "body")
    _too_many_values(created, "metadata")
    _too_many_values(rules, "body")
    assert api.version(doc_id) == 1
    assert len(api.get("/v1/documents").json()["items"]) == 1  # the draft alone
    assert api.get("/v1/time-rules").json()["agency"] == {}


def test_a_body_of_many_unknown_keys_is_refused_naming_the_first_few(api: Api) -> None:
    # Given an event body and a status message of thousands of keys their schemas refuse,
    # the status message with no token
    keys = ",".join(f'"k{i:05d}": 1' for i in range(5_000))
    doc_id = api.draft()["id"]
    headers = {"Content-Type": "application/json"}
    edit = api.client.post(
        f"/v1/documents/{doc_id}/events/edit",
        headers={**api.auth(), **headers},
        content=f"{{{keys}}}".encode(),
    )
    status = api.client.post("/v1/status", headers=headers, content=f"{{{keys}}}".encode())

    # Then each answer names the first 20 and counts the rest, not one line a key (the
    # status message's as a peer's message refused for good, with its reason)
    for answer, code in ((edit, "invalid_input"), (status, "message_malformed")):
        details = assert_error(answer, 422, code)
        assert details.get("reason") == ("wrapper" if answer is status else None)
        assert len(details["errors"]) == 20
        assert details["more_errors"] >= 5_000 - 20
        assert len(answer.content) < 10_000
    assert api.version(doc_id) == 1


def test_a_recipient_listed_twice_is_refused(small: Api) -> None:
    twice = [{"organ_id": B, "name": "Sở Nội vụ"}, {"organ_id": B, "name": "SNV"}]
    response = small.create(metadata={**SHORT, "recipients": twice})
    assert assert_error(response, 422, "invalid_input") == {"field": "recipients"}
    doc_id = small.draft(metadata=SHORT)["id"]
    edit = small.fire(doc_id, "edit", body={"recipients": twice})
    assert assert_error(edit, 422, "invalid_input") == {"field": "recipients"}


@pytest.mark.parametrize(
    "organ_id",
    ["", "abc", "000.00.00.h57", "000..00.H57", ".000", "000.", "000 00", "A" * 36, "Ủ.H57", 57],
)
def test_a_bad_organ_id_is_invalid_input(api: Api, organ_id: Any) -> None:
    recipients = [{"organ_id": organ_id, "name": "X"}]
    response = api.create(recipients=recipients)
    details = assert_error(response, 422, "invalid_input")
    assert [e["field"] for e in details["errors"]] == ["recipients.0.organ_id"]
    edit = api.fire(api.draft()["id"], "edit", body={"recipients": recipients})
    assert_error(edit, 422, "invalid_input")


# -- metadata ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        "{",
        "",
        "   ",
        "null",
        "[]",
        '"CV"',
        "42",
        "{'doc_type': 'CV'}",
        "NaN",
        '{"doc_type": "CV", "subject": "x"} trailing',
        '{"doc_type": "CV", "subject": "x", "number": 1' + "0" * 5000 + "}",
        "[" * 50_000,
    ],
    ids=lambda m: m[:20] if len(m) < 30 else f"{m[:12]}...({len(m)} chars)",
)
def test_metadata_that_is_not_a_json_object_is_invalid_input(api: Api, metadata: str) -> None:
    response = api.create(metadata=metadata)
    assert_error(response, 422, "invalid_input")
    assert nothing_created(api)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "đỏ"}, "colour"),
        ({"recipients": [{"organ_id": B, "fax": "1"}]}, "recipients.0.fax"),
        ({"urgency": 5}, "urgency"),
        ({"urgency": -1}, "urgency"),
        ({"urgency": "khẩn"}, "urgency"),
        ({"secrecy": "secret"}, "secrecy"),
        ({"secrecy": "MAT"}, "secrecy"),
        ({"number": 0}, "number"),
        ({"number": 1_000_000}, "number"),
        ({"number": "1227a"}, "number"),
        ({"issued_on": "2021-02-30"}, "issued_on"),
        ({"due_date": "mai"}, "due_date"),
        ({"subject": None}, "subject"),
        ({"subject": 42}, "subject"),
        ({"doc_type": ["CV"]}, "doc_type"),
        ({"recipients": {"organ_id": B}}, "recipients"),
        ({"recipients": [B]}, "recipients.0"),
    ],
)
def test_metadata_outside_its_schema_is_invalid_input_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    response = api.create(metadata={**LETTER, **change})
    details = assert_error(response, 422, "invalid_input")
    assert field in [e["field"] for e in details["errors"]]
    assert nothing_created(api)


@pytest.mark.parametrize("missing", ["doc_type", "subject"])
def test_metadata_without_a_required_field_is_invalid_input(api: Api, missing: str) -> None:
    metadata = {k: v for k, v in LETTER.items() if k != missing}
    details = assert_error(api.create(metadata=metadata), 422, "invalid_input")
    assert [e["field"] for e in details["errors"]] == [missing]


@pytest.mark.parametrize(
    ("urgency", "label"), [(0, "thường"), (3, "hỏa tốc"), (4, "hỏa tốc hẹn giờ")]
)
def test_urgency_and_secrecy_within_range_are_taken(api: Api, urgency: int, label: str) -> None:
    doc = api.draft(urgency=urgency, secrecy="mat")
    assert (doc["urgency"], doc["urgency_label"]) == (urgency, label)
    assert (doc["secrecy"], doc["secrecy_label"]) == ("mat", "Mật")


def test_a_page_larger_than_max_page_size_is_refused(small: Api) -> None:
    details = assert_error(small.get("/v1/documents", params={"limit": 6}), 422, "invalid_input")
    assert details == {"field": "limit", "max": 5}
    assert small.get("/v1/documents", params={"limit": 5}).status_code == 200


# -- malformed input never answers 500 ---------------------------------------------------

Send = Callable[[Api, str], httpx.Response]


def _multipart(part_headers: bytes, metadata: bytes | None = None) -> bytes:
    meta = metadata if metadata is not None else json.dumps(SHORT).encode()
    return (
        b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
        + meta
        + b'\r\n--b\r\nContent-Disposition: form-data; name="main"; '
        + part_headers
        + b"\r\n\r\n%PDF-1.4 x\r\n--b--\r\n"
    )


def _post_multipart(body: bytes, content_type: bytes = b"multipart/form-data; boundary=b") -> Send:
    def send(api: Api, _doc_id: str) -> httpx.Response:
        token = api.tokens[A]["clerk"].encode()
        headers = [(b"authorization", b"Bearer " + token), (b"content-type", content_type)]
        return api.raw("POST", "/v1/documents", headers, body)

    return send


def test_a_file_named_with_filename_star_is_told_how_a_form_names_it(api: Api) -> None:
    body = _multipart(b"filename*=UTF-8''th%C6%B0.pdf\r\nContent-Type: application/pdf")
    response = _post_multipart(body)(api, "")
    details = assert_error(response, 422, "invalid_input")
    assert details["field"] == "main"
    assert "filename*" in response.json()["message"] and "UTF-8" in response.json()["message"]


@pytest.mark.parametrize(
    ("headers", "repeated"),
    [
        # a second disposition: Starlette keeps the last one, a filter reading the first
        # sees a text part where the app stores a file
        (
            b'filename="a.pdf"\r\nContent-Disposition: form-data; name="x"; filename="x.pdf"',
            "Content-Disposition",
        ),
        # two media types: the first is kept, a filter reading the last sees another
        (
            b'filename="a.pdf"\r\nContent-Type: text/html\r\nContent-Type: application/pdf',
            "Content-Type",
        ),
        (
            b'filename="a.pdf"\r\ncontent-type: text/html\r\nCONTENT-TYPE: application/pdf',
            "Content-Type",
        ),
        # a parameter twice: which name or file name counts differs from parser to parser
        (b'filename="a.pdf"; name="other"', "Content-Disposition: name"),
        (b'filename="a.pdf"; FILENAME="a.exe"', "Content-Disposition: filename"),
        (b'filename="a.pdf";filename=a.exe', "Content-Disposition: filename"),
        (
            b'filename="a.pdf"\r\nContent-Type: text/plain; charset=utf-8; charset=latin-1',
            "Content-Type: charset",
        ),
    ],
)
def test_a_form_part_giving_a_header_or_parameter_twice_is_refused(
    api: Api, headers: bytes, repeated: str
) -> None:
    response = _post_multipart(_multipart(headers))(api, "")
    details = assert_error(response, 422, "repeated_field")
    assert (details["field"], details["location"]) == (repeated, "form part header")
    assert api.get("/v1/documents").json()["items"] == []


def test_a_semicolon_inside_a_quoted_file_name_is_no_second_parameter(api: Api) -> None:
    response = _post_multipart(_multipart(b'filename="a;name=b.pdf"'))(api, "")
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("encoding", [b"base64", b"quoted-printable", b"x-gzip"])
def test_a_form_part_in_a_transfer_encoding_is_refused(api: Api, encoding: bytes) -> None:
    # Its bytes would be kept as their encoded text: refused, not stored as something else
    body = _multipart(b'filename="a.pdf"\r\nContent-Transfer-Encoding: ' + encoding)
    response = _post_multipart(body)(api, "")
    details = assert_error(response, 422, "invalid_input")
    assert (details["field"], details["location"]) == (
        "Content-Transfer-Encoding",
        "form part header",
    )
    assert api.get("/v1/documents").json()["items"] == []


@pytest.mark.parametrize("encoding", [b"binary", b"8bit", b"7BIT"])
def test_a_form_part_sent_as_it_is_may_say_so(api: Api, encoding: bytes) -> None:
    body = _multipart(b'filename="a.pdf"\r\nContent-Transfer-Encoding: ' + encoding)
    response = _post_multipart(body)(api, "")
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("named", [b'filename=""', b"filename=", b'filename = ""'])
def test_a_file_with_an_empty_name_is_told_to_name_it(api: Api, named: bytes) -> None:
    # A PDF's bytes sent as a file part with no name: not "not UTF-8 text", but what it lacks
    body = _multipart(named + b"\r\nContent-Type: application/pdf")
    body = body.replace(b"%PDF-1.4 x", b"%PDF-1.4 \xe2\x28\xa1")  # bytes no text decodes
    response = _post_multipart(body)(api, "")
    details = assert_error(response, 422, "invalid_input")
    assert details["field"] == "main"
    assert "empty name" in response.json()["message"]


@pytest.mark.parametrize(
    ("metadata", "said"),
    [
        (b"[" * 5000 + b"]" * 5000, "too deeply nested"),
        (b'{"number": ' + b"9" * 5000 + b"}", "number too long"),
        (b'{"subject": "x"} trailing', "is not JSON: Extra data at line 1"),
        (b'{"subject": ', "is not JSON: Expecting value at line 1"),
    ],
)
def test_metadata_that_cannot_be_read_says_why(api: Api, metadata: bytes, said: str) -> None:
    response = _post_multipart(_multipart(b'filename="a.pdf"', metadata))(api, "")
    details = assert_error(response, 422, "invalid_input")
    assert details["field"] == "metadata"
    assert said in response.json()["message"]


def _get(path: str) -> Send:
    return lambda api, doc_id: api.get(path.format(doc=doc_id))


def _event(event: str, body: bytes, *extra: tuple[bytes, bytes], doc: str = "{doc}") -> Send:
    def send(api: Api, doc_id: str) -> httpx.Response:
        token = api.tokens[A]["clerk" if event != "reject" else "reviewer"].encode()
        headers = [
            (b"authorization", b"Bearer " + token),
            (b"content-type", b"application/json"),
            *extra,
        ]
        path = f"/v1/documents/{doc.format(doc=doc_id)}/events/{event}"
        return api.raw("POST", path, headers, body)

    return send


def _create(metadata: str) -> Send:
    return lambda api, _doc_id: api.create(metadata=metadata)


HOSTILE: dict[str, tuple[Send, int | None, str | None]] = {
    # ids and query strings that no document has, including NUL (PostgreSQL refuses it)
    "NUL document id": (_get("/v1/documents/%00"), 404, "not_found"),
    "NUL document id, history": (_get("/v1/documents/%00/history"), 404, "not_found"),
    "NUL document id, attachment": (_get("/v1/documents/%00/attachments/%00"), 404, "not_found"),
    "NUL attachment digest": (_get("/v1/documents/{doc}/attachments/%00"), 404, "not_found"),
    "huge document id": (_get("/v1/documents/" + "9" * 5000), 404, "not_found"),
    "non-UTF-8 document id": (_get("/v1/documents/%FF%FE"), 422, "invalid_encoding"),
    "NUL cursor": (_get("/v1/documents?cursor=AA"), 422, "invalid_input"),
    "NUL in doc_type": (_get("/v1/documents?doc_type=%00"), 422, "invalid_input"),
    "NUL in state": (_get("/v1/documents?state=%00"), 422, "invalid_input"),
    "non-UTF-8 doc_type": (_get("/v1/documents?doc_type=%FF"), 422, "invalid_encoding"),
    "NUL event on NUL id": (_event("edit", b"{}", doc="%00"), 404, "not_found"),
    "NUL event name": (_event("%00", b"{}"), 422, "unknown_event"),
    # JSON text the databases cannot store
    "NUL in subject": (_create('{"doc_type": "CV", "subject": "a\\u0000b"}'), 422, "invalid_input"),
    "lone surrogate in subject": (
        _create('{"doc_type": "CV", "subject": "a\\ud800b"}'),
        422,
        "invalid_input",
    ),
    "NUL in recipient name": (
        _create(json.dumps({**SHORT, "recipients": [{"organ_id": B, "name": "a\x00"}]})),
        422,
        "invalid_input",
    ),
    "NUL in reason": (_event("reject", b'{"reason": "a\\u0000"}'), 422, "invalid_input"),
    "lone surrogate in reason": (_event("reject", b'{"reason": "\\udc00"}'), 422, "invalid_input"),
    "NUL in an edited field": (
        _event("edit", b'{"fields": {"place": "\\u0000"}}'),
        422,
        "invalid_input",
    ),
    "surrogate in an edited field": (
        _event("edit", b'{"fields": {"place": "\\ud83d"}}'),
        422,
        "invalid_input",
    ),
    # bodies that do not parse
    "invalid UTF-8 in a JSON body": (
        _event("edit", b'{"fields": {"place": "\xff"}}'),
        422,
        "invalid_encoding",
    ),
    "deeply nested JSON body": (_event("edit", b"[" * 50_000), 422, "invalid_input"),
    "huge integer in JSON body": (
        _event("edit", b'{"fields": {"number": 1' + b"0" * 5000 + b"}}"),
        422,
        "invalid_input",
    ),
    "truncated JSON body": (_event("edit", b'{"fields": '), 422, "invalid_input"),
    "JSON body that is a string": (_event("edit", b'"edit"'), 422, "invalid_input"),
    # null is no object, and not "no body" either: an event's body may be left out, not null
    "JSON body that is null": (_event("submit", b"null"), 422, "invalid_input"),
    "JSON body that is null, spaced": (_event("edit", b" null \n"), 422, "invalid_input"),
    # headers that are not ASCII (a real server passes them on as Latin-1)
    "superscript If-Match": (
        _event("edit", b'{"fields": {"place": "x"}}', (b"if-match", b"\xb2")),
        422,
        "invalid_encoding",
    ),
    "Arabic-Indic If-Match": (
        _event("edit", b'{"fields": {"place": "x"}}', (b"if-match", "١".encode())),
        422,
        "invalid_encoding",
    ),
    "Latin-1 Idempotency-Key": (
        _event("edit", b'{"fields": {"place": "x"}}', (b"idempotency-key", b"kh\xf3a")),
        422,
        "invalid_encoding",
    ),
    # multipart bodies
    "NUL in a file name": (
        _post_multipart(_multipart(b'filename="a\x00b.pdf"\r\nContent-Type: application/pdf')),
        201,
        None,
    ),
    "CR and controls in a file name": (
        _post_multipart(
            _multipart(b'filename="a\x01\x7f\tb.pdf"\r\nContent-Type: application/pdf')
        ),
        201,
        None,
    ),
    "NUL in a part's media type": (
        _post_multipart(_multipart(b'filename="a.pdf"\r\nContent-Type: appli\x00cation/pdf')),
        422,
        "invalid_input",
    ),
    "non-UTF-8 file name": (
        _post_multipart(
            _multipart(b'filename="\xff\xfe\xc3(.pdf"\r\nContent-Type: application/pdf')
        ),
        422,
        "invalid_encoding",
    ),
    "empty file name": (  # a file is named: refused, not stored under a name made up
        _post_multipart(_multipart(b'filename=""\r\nContent-Type: application/pdf')),
        422,
        "invalid_input",
    ),
    "RFC 2231 file name": (
        _post_multipart(_multipart(b"filename*=UTF-8''a%0D%0Ab.pdf\r\nContent-Type: a/b")),
        422,
        "invalid_input",
    ),
    "non-UTF-8 metadata": (
        _post_multipart(_multipart(b'filename="a.pdf"', b"\xff\xfe{")),
        422,
        "invalid_encoding",
    ),
    "unterminated multipart": (
        _post_multipart(b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{'),
        422,
        "invalid_input",
    ),
    "multipart without a boundary": (
        _post_multipart(_multipart(b'filename="a.pdf"'), b"multipart/form-data"),
        400,
        "bad_request",
    ),
    "multipart declared, JSON sent": (
        _post_multipart(json.dumps(SHORT).encode(), b"application/json"),
        415,
        "unsupported_media_type",
    ),
    "metadata sent as a file": (
        _post_multipart(
            b'--b\r\nContent-Disposition: form-data; name="metadata"; filename="m.json"\r\n\r\n'
            + json.dumps(SHORT).encode()
            + b"\r\n--b--\r\n"
        ),
        422,
        "invalid_input",
    ),
    "main sent as a text field": (
        _post_multipart(
            b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
            + json.dumps(SHORT).encode()
            + b'\r\n--b\r\nContent-Disposition: form-data; name="main"\r\n\r\nhello\r\n--b--\r\n'
        ),
        422,
        "invalid_input",
    ),
}


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE)
def test_malformed_input_is_answered_without_a_500(
    api_any_db: Api, case: tuple[Send, int | None, str | None]
) -> None:
    send, status, code = case
    api = api_any_db
    doc_id = api.draft(metadata=SHORT)["id"]

    response = send(api, doc_id)

    assert response.status_code < 500, response.text
    if status is not None:
        assert response.status_code == status, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"code", "message", "details"}
        if code is not None:
            assert body["code"] == code, body
    # And the service is still whole: the draft reads and the listing answers
    assert api.version(doc_id) == 1 or response.status_code == 200
    assert api.get("/v1/documents").status_code == 200


def test_names_are_stored_without_control_characters(api_any_db: Api) -> None:
    send = _post_multipart(
        # (a media type holding one is no media type: refused, see above)
        _multipart(b'filename="a\x00\x01 b\x7f.pdf"\r\nContent-Type: text/plain')
    )
    response = send(api_any_db, "")
    assert response.status_code == 201, response.text
    (attachment,) = response.json()["attachments"]
    assert (attachment["filename"], attachment["media_type"]) == ("a b.pdf", "text/plain")
    download = api_any_db.get(
        f"/v1/documents/{response.json()['id']}/attachments/{sha256(b'%PDF-1.4 x')}"
    )
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"a b.pdf\"; filename*=UTF-8''a%20b.pdf"
    )


def test_a_long_username_still_creates_documents(api_any_db: Api) -> None:
    # documents.created_by holds "username@agency"; PostgreSQL enforces its length.
    api = api_any_db
    with api.runtime.uow() as uow:
        user_id = directory.ensure_user(
            uow, A, "nguyen.thi.thu.trang.vanthu", ["clerk"], api.clock()
        )
        token = directory.create_token(uow, user_id, api.clock()).token
        uow.commit()
    response = api.client.post(
        "/v1/documents",
        headers={"Authorization": f"Bearer {token}"},
        data={"metadata": json.dumps(SHORT)},
    )
    assert response.status_code == 201, response.text
    assert response.json()["created_by"] == f"nguyen.thi.thu.trang.vanthu@{A}"


@pytest.mark.parametrize(
    ("field", "cleared"),
    [("symbol", ""), ("place", ""), ("signer_name", ""), ("signer_user", ""), ("urgency", 0)],
)
def test_null_clears_an_optional_field_instead_of_failing(
    api: Api, field: str, cleared: object
) -> None:
    response = api.create(**{field: None})
    assert response.status_code == 201, response.text
    view = response.json()
    value = view["signer"]["name"] if field == "signer_name" else view[field]
    assert cleared == value


@pytest.mark.parametrize("field", ["doc_type", "subject"])
def test_null_for_a_required_field_is_invalid_input(api: Api, field: str) -> None:
    doc_id = api.draft()["id"]
    response = api.fire(doc_id, "edit", body={"fields": {field: None}})
    assert field == assert_error(response, 422, "invalid_input")["field"]


def test_more_files_than_the_form_parser_takes_is_still_too_many_attachments(
    make_api: MakeApi,
) -> None:
    # Starlette's parser stops at 1,000 files and answered 400; it is the same mistake
    api = make_api()
    files = [("appendix", (f"{i}.pdf", b"%", "application/pdf")) for i in range(1001)]
    response = api.create(metadata=SHORT, files=files)
    details = assert_error(response, 422, "too_many_attachments")
    assert details["max_items"] == api.runtime.settings.max_attachments
    assert nothing_created(api)


def test_a_metadata_part_over_one_mib_within_every_text_limit_is_taken(make_api: MakeApi) -> None:
    # Content within its 200,000-letter limit, but JSON-escaped (\uXXXX: 6 bytes a letter)
    api = make_api()
    content = "Đ" * 190_000
    metadata = json.dumps({**SHORT, "content": content}, ensure_ascii=True)
    assert len(metadata) > 1024 * 1024
    response = api.create(metadata=metadata)
    assert response.status_code == 201, response.text
    assert api.get(f"/v1/documents/{response.json()['id']}").json()["content"] == content


@pytest.mark.parametrize("declared", [True, False])
def test_a_package_larger_than_the_inbox_takes_is_refused_as_a_package_with_a_reason(
    small: Api, declared: bool
) -> None:
    # Given a package over the request limit, its length declared or streamed in chunks
    body = b"PK" + b"\0" * 70_000
    content = body if declared else _chunks(len(body))

    # When it is posted to the inbox
    response = small.client.post(
        "/v1/inbox", headers={"Content-Type": "application/zip"}, content=content
    )

    # Then the inbox refuses the package for good, with the reason its sender records (02)
    details = assert_error(response, 413, "package_too_large")
    assert details == {"max_bytes": LIMITS["max_request_bytes"], "reason": "total_too_large"}
