"""What a peer answers is read within a bound, and a refusal is only the peer's own."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Iterator

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


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate"])
def test_a_compressed_answer_is_inflated_no_further_than_the_bound(coding: str) -> None:
    # 64 MiB of zeros in some 64 KiB: never inflated past 1 MiB
    squeezed = zlib.compressobj(9, zlib.DEFLATED, 31 if "gzip" in coding else 15)
    bomb = squeezed.compress(bytes(64 << 20)) + squeezed.flush()
    assert len(bomb) < 100_000
    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        # streamed, as from the network (a whole Response(content=) is read at once)
        return httpx.Response(
            503, stream=_Stream(iter([bomb])), headers={"Content-Encoding": coding}
        )

    transport = httpx.MockTransport(answer)
    got = post(transport, "https://congvan.example.vn/v1/inbox", timeout=5, content=b"p")

    assert (got.status_code, len(got.content)) == (503, MAX_ANSWER_BYTES)
    assert asked[0].headers["Accept-Encoding"] == "identity"  # and none was asked for


@pytest.mark.parametrize("coding", ["gzip, gzip", "br", "compress"])
def test_an_answer_in_a_coding_not_read_has_no_body(coding: str) -> None:
    squeezed = zlib.compressobj(9, zlib.DEFLATED, 31)
    twice = squeezed.compress(gzip.compress(bytes(1 << 20))) + squeezed.flush()
    got = _answer(
        httpx.Response(503, stream=_Stream(iter([twice])), headers={"Content-Encoding": coding})
    )
    assert (got.status_code, got.content) == (503, b"")


def test_a_small_gzipped_answer_is_read_as_it_was_meant() -> None:
    body = json.dumps({"receipt": "cg==", "receipt_cms": "Y21z"}).encode()
    got = _answer(
        httpx.Response(
            201, stream=_Stream(iter([gzip.compress(body)])), headers={"Content-Encoding": "gzip"}
        )
    )
    assert got.content == body


def test_an_answer_still_coming_when_the_time_is_up_is_no_answer() -> None:
    # A byte at a time, each well within the read timeout: the whole answer is bounded
    def trickle() -> Iterator[bytes]:
        for _ in range(200):
            time.sleep(0.02)
            yield b"x"

    transport = httpx.MockTransport(lambda _request: httpx.Response(200, stream=_Stream(trickle())))
    with pytest.raises(httpx.ReadTimeout):
        post(transport, "https://congvan.example.vn/v1/inbox", timeout=0.5, content=b"p")


class _Stream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks


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
