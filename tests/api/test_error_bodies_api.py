"""An error answers whatever it repeats of the request.

A refusal names what it refused, often by repeating it: a peer's ``format``, a rule's
name, a field's path. JSON reads the escape ``\\ud800`` as a lone surrogate, which UTF-8
cannot carry: repeated raw, it made the answer itself fail (500, the connection dropped),
on the peer routes without a token. It is written as its escape instead.
"""

from __future__ import annotations

import base64
import io
import json
import math
import zipfile

import pytest

from tests.api.conftest import Api, assert_error

LONE = b'"\\ud800"'  # a JSON string holding one lone surrogate
SHOWN = "\\ud800"  # how the answer repeats it


def _package(package_json: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("package.json", package_json)
    return out.getvalue()


def test_a_peer_message_of_a_format_that_is_not_text_is_refused_naming_it(api: Api) -> None:
    # Given a status message and a package whose format is a lone surrogate, no token
    status = {
        "status": base64.b64encode(b'{"format":' + LONE + b"}").decode(),
        "status_cms": base64.b64encode(b"0\x00").decode(),
    }
    package = _package(b'{"format":' + LONE + b"}")

    # When they are posted to the peer routes
    answers = [
        api.client.post("/v1/status", json=status),
        api.client.post("/v1/inbox", content=package, headers={"Content-Type": "application/zip"}),
    ]

    # Then each is refused as of an unknown format, repeating it as its escape
    for answer in answers:
        details = assert_error(answer, 422, "format_unsupported")
        assert details["format"] == SHOWN
    assert api.client.get("/v1/health").status_code == 200


@pytest.mark.parametrize(
    "rules",
    [
        b'{"rules": {' + LONE + b": [1, 2, 3, 4, 5]}}",  # a rule's name: our own refusal
        b'{"rules": {"deliver": {' + LONE + b": 1}}}",  # a key the schema refuses
        b'{"rules": {' + LONE + b': "x"}}',  # a value of no type the schema takes
    ],
    ids=["rule", "urgency", "value"],
)
def test_a_key_that_is_not_text_is_refused_naming_it(api: Api, rules: bytes) -> None:
    answer = api.client.put(
        "/v1/time-rules",
        headers={**api.auth("supervisor"), "Content-Type": "application/json"},
        content=rules,
    )
    assert_error(answer, 422, "invalid_input")
    # Our own refusals repeat it as its escape (the schema's, as pydantic writes it)
    assert SHOWN in answer.text or "\ufffd" in answer.json()["details"]["errors"][0]["field"]
    assert api.get("/v1/time-rules").json()["agency"] == {}


def test_an_error_body_writes_what_json_cannot_carry_as_text() -> None:
    from congvan.workflow.api.errors import ErrorResponse

    body = ErrorResponse(
        {"code": "x", "message": "m", "details": {"\ud800": ["\udfff", math.nan], "n": 1.5}}
    ).body
    assert json.loads(body) == {
        "code": "x",
        "message": "m",
        "details": {"\\ud800": ["\\udfff", "nan"], "n": 1.5},
    }
    # What JSON carries as it is, is written as it is
    plain = {"code": "x", "message": "Sở Nội vụ", "details": {}}
    assert json.loads(ErrorResponse(plain).body) == plain


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"status": 1, "status_cms": null}', b'{"status": "", "status_cms": "", "x": 1}'],
    ids=["not-json", "types", "extra-key"],
)
def test_a_status_message_in_a_wrapper_its_format_never_has_is_refused_with_a_reason(
    api: Api, body: bytes
) -> None:
    # When a peer posts a status message whose JSON wrapper is broken
    answer = api.client.post(
        "/v1/status", content=body, headers={"Content-Type": "application/json"}
    )

    # Then it is refused for good, saying why, as every refusal of a peer's message is (a
    # 4xx naming no reason reads to its sender as another server's page, posted again)
    details = assert_error(answer, 422, "message_malformed")
    assert details["reason"] == "wrapper" and details["errors"]
