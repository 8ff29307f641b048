"""What a peer answers is read within a bound, and a refusal is only the peer's own."""

from __future__ import annotations

import httpx
import pytest

from congvan.actions.posting import MAX_ANSWER_BYTES, post, refusal_of


def _answer(response: httpx.Response) -> httpx.Response:
    transport = httpx.MockTransport(lambda _request: response)
    return post(transport, "https://congvan.example.vn/v1/inbox", timeout=5, content=b"p")


@pytest.mark.parametrize("status", [201, 403, 500])
def test_an_answer_of_any_size_is_read_no_further_than_the_bound(status: int) -> None:
    # A peer, or whatever answers at its address, sending 8 MiB: no more than 1 MiB is held
    answer = _answer(httpx.Response(status, content=b"x" * (8 << 20)))
    assert (answer.status_code, len(answer.content)) == (status, MAX_ANSWER_BYTES)


def test_a_small_answer_is_read_as_it_came() -> None:
    answer = _answer(httpx.Response(201, json={"receipt": "cg==", "receipt_cms": "Y21z"}))
    assert answer.json() == {"receipt": "cg==", "receipt_cms": "Y21z"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"code": "message_malformed", "details": {"reason": "member"}}, "member"),
        ({"code": "message_malformed", "details": {}}, None),
        ({"code": "", "details": {"reason": "member"}}, None),
        ({"code": "x", "details": ["reason"]}, None),
        ({"code": "x", "details": {"reason": 7}}, None),
        (["reason"], None),
    ],
)
def test_a_4xx_is_a_refusal_only_when_it_names_its_reason(body: object, reason: str | None) -> None:
    assert refusal_of(_answer(httpx.Response(422, json=body))) == reason
