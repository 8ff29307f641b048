"""A post to a peer, a webhook, an SMTP server or a timestamp authority is over within its
time, however slowly the other side goes: httpx and smtplib bound each read and write, and
a receiver keeping every one just inside that would otherwise hold a worker for as long as
it liked."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from congvan.actions.messengers import Smtp, compose, post_webhook, send_mail
from congvan.actions.posting import post
from congvan.actions.signing.timestamps import TimestampUnavailable, request_token
from congvan.states.networks import parse_networks

TIMEOUT = 0.5  # the post's; each byte below comes well within it
DRIP = 0.02  # seconds between the bytes a slow side sends or takes
BODY = 16 << 20  # a package of 16 MiB, taken 64 KiB at a time: five seconds, at best


def _answer_head() -> bytes:
    return b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200 + b"\r\nContent-Length: 2\r\n\r\nok"


def _read_request(conn: socket.socket, *, slowly: bool = False) -> int:
    """Read a request (``slowly``: 64 KiB at a time), and answer it when it came whole;
    the bytes of its body read."""
    seen = b""
    while b"\r\n\r\n" not in seen:
        chunk = conn.recv(65536)
        if not chunk:
            return 0
        seen += chunk
    head, _, body = seen.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    read = len(body)
    while read < length:
        chunk = conn.recv(65536)
        if not chunk:
            return read
        read += len(chunk)
        if slowly:
            time.sleep(DRIP)
    return read


@contextlib.contextmanager
def _serving(handle: Callable[[socket.socket], object]) -> Iterator[list[object]]:
    """A server on a free port for one connection; what ``handle`` returned, after."""
    listener = socket.create_server(("127.0.0.1", 0))
    result: list[object] = [listener.getsockname()[1]]

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                result.append(handle(conn))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        listener.close()
        thread.join(timeout=30)


def _a_byte_at_a_time(conn: socket.socket, data: bytes) -> int:
    """Send ``data`` a byte at a time; how many went before the other side hung up."""
    for sent in range(len(data)):
        try:
            conn.sendall(data[sent : sent + 1])
        except OSError:
            return sent
        time.sleep(DRIP)
    return len(data)


def _head_a_byte_at_a_time(conn: socket.socket) -> int:
    """Answer a byte at a time; how many of the answer's bytes went before the poster hung up."""
    _read_request(conn)
    return _a_byte_at_a_time(conn, _answer_head())


def _taking_the_request_slowly(conn: socket.socket) -> int:
    """Read the request 64 KiB at a time; how many of its bytes came before the poster hung
    up (its answer sent when all came)."""
    read = _read_request(conn, slowly=True)
    if read == BODY:
        conn.sendall(_answer_head())
    return read


@pytest.mark.parametrize(
    ("receiver", "whole"),
    [(_head_a_byte_at_a_time, len(_answer_head())), (_taking_the_request_slowly, BODY)],
    ids=["answer's head a byte at a time", "taking the request slowly"],
)
def test_a_post_to_a_peer_is_over_within_its_time(
    receiver: Callable[[socket.socket], int], whole: int
) -> None:
    url = "http://127.0.0.1:{}/v1/inbox"
    with (
        _serving(receiver) as served,
        # Without a bound on the whole exchange, the receiver's 200 would come, in the end
        # (on a machine too loaded to run the receiver's thread for half a second, one
        # write's own bound may come first: over in time as well)
        pytest.raises((httpx.ReadTimeout, httpx.WriteTimeout)) as over,
    ):
        post(None, url.format(served[0]), timeout=TIMEOUT, content=b"p" * BODY)
    if isinstance(over.value, httpx.ReadTimeout):
        assert str(over.value) == "no whole answer within 0.5 s"
    # The poster hung up with the exchange half done
    assert 0 < served[1] < whole  # type: ignore[operator]
    # and the connection it shut is not handed to the next post
    with _serving(lambda conn: (_read_request(conn), conn.sendall(_answer_head()))) as again:
        answer = post(None, url.format(again[0]), timeout=5, content=b"p")
        assert (answer.status_code, answer.content) == (200, b"ok")


def test_a_webhook_receiver_answering_a_byte_at_a_time_is_of_unknown_outcome() -> None:
    with _serving(_head_a_byte_at_a_time) as served:
        outcome = post_webhook(
            f"http://127.0.0.1:{served[0]}/hook",
            b"{}",
            secret="s" * 32,
            notice_id="n1",
            kind="delivery_failed",
            timestamp=0,
            timeout=TIMEOUT,
            networks=parse_networks(["127.0.0.0/8"]),
        )
    assert (outcome.outcome, outcome.error) == (
        "unknown",
        "no answer: ReadTimeout: no whole answer within 0.5 s",
    )
    assert served[1] < len(_answer_head())  # type: ignore[operator]


def test_an_smtp_server_answering_a_byte_at_a_time_is_left_within_the_time() -> None:
    # A server whose greeting comes a byte at a time, each well within the timeout
    greeting = b"220 " + b"s" * 300 + b" ESMTP\r\n"

    with _serving(lambda conn: _a_byte_at_a_time(conn, greeting)) as served:
        smtp = Smtp("127.0.0.1", served[0], "a@hue.gov.vn", timeout=TIMEOUT)
        message = compose(smtp, "van.thu@hue.gov.vn", "Thử", "Nội dung", notice_id="n1")
        outcome = send_mail(smtp, message)

    # Then it was left at three times the timeout, nothing sent: tried again later
    assert "transient" == outcome.outcome
    assert outcome.error.endswith("(the exchange took longer than 1.5 s)"), outcome.error
    assert served[1] < len(greeting)  # type: ignore[operator]


def test_a_timestamp_authority_answering_a_byte_at_a_time_is_given_up_within_the_time() -> None:
    with (
        _serving(_head_a_byte_at_a_time) as served,
        pytest.raises(TimestampUnavailable, match=r"no whole answer within 0\.5 s"),
    ):
        request_token(f"http://127.0.0.1:{served[0]}/tsa", b"signature", timeout=TIMEOUT)
    assert served[1] < len(_answer_head())  # type: ignore[operator]


def test_a_timestamp_authority_answering_without_end_is_read_no_further_than_the_bound() -> None:
    whole = 64 << 20

    def answering_64_mib(conn: socket.socket) -> int:
        _read_request(conn)
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {whole}\r\n\r\n".encode()
        sent, chunk = 0, b"0" * 65536
        try:
            conn.sendall(head)
            while sent < whole:
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        return sent

    with (
        _serving(answering_64_mib) as served,
        pytest.raises(TimestampUnavailable, match="answer is too large"),
    ):
        request_token(f"http://127.0.0.1:{served[0]}/tsa", b"signature", timeout=30)
    # It hung up with most of the answer unsent: none of it was held
    assert served[1] < whole // 2  # type: ignore[operator]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str] | None]]:
    """Names looked up as the test says: its addresses, or (None) a resolver that does not
    answer for 30 s and then knows no such name; any other name as the system does."""
    names: dict[str, list[str] | None] = {}
    answered = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in names:
            return real(host, port, *args, **kwargs)
        found = names[host]
        if found is None:
            answered.wait(30)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [a for ip in found for a in real(ip, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield names
    answered.set()


def test_a_peer_whose_name_is_not_looked_up_in_time_is_not_connected(
    resolver: dict[str, list[str] | None],
) -> None:
    resolver["inbox.slow-dns.test"] = None
    # Without a bound on the lookup, the resolver's "no such name" would come, in the end
    with pytest.raises(
        httpx.ConnectTimeout, match=r"looking up inbox\.slow-dns\.test took longer than 0\.5 s"
    ):
        post(None, "http://inbox.slow-dns.test:8080/v1/inbox", timeout=TIMEOUT, content=b"p")


def test_a_webhook_and_an_smtp_server_whose_names_are_not_looked_up_in_time_are_tried_later(
    resolver: dict[str, list[str] | None],
) -> None:
    resolver["hooks.slow-dns.test"] = resolver["mail.slow-dns.test"] = None
    outcome = post_webhook(
        "http://hooks.slow-dns.test/hook",
        b"{}",
        secret="s" * 32,
        notice_id="n1",
        kind="delivery_failed",
        timestamp=0,
        timeout=TIMEOUT,
        networks=parse_networks(["127.0.0.0/8"]),
    )
    assert "transient" == outcome.outcome
    assert "looking up hooks.slow-dns.test took longer than 0.5 s" in outcome.error

    smtp = Smtp("mail.slow-dns.test", 25, "a@hue.gov.vn", timeout=TIMEOUT)
    message = compose(smtp, "van.thu@hue.gov.vn", "Thử", "Nội dung", notice_id="n1")
    outcome = send_mail(smtp, message)
    assert "transient" == outcome.outcome
    assert "looking up mail.slow-dns.test took longer than" in outcome.error, outcome.error


def test_a_name_of_several_addresses_is_reached_at_the_one_that_answers(
    resolver: dict[str, list[str] | None],
) -> None:
    # The first address refuses the connection (nothing listens on 127.0.0.2)
    resolver["inbox.two.test"] = ["127.0.0.2", "127.0.0.1"]
    with _serving(lambda conn: (_read_request(conn), conn.sendall(_answer_head()))) as served:
        answer = post(None, f"http://inbox.two.test:{served[0]}/v1/inbox", timeout=5, content=b"p")
    assert (answer.status_code, answer.content) == (200, b"ok")

    resolver["mail.two.test"] = ["127.0.0.2", "127.0.0.1"]
    with _serving(lambda conn: conn.sendall(b"554 no service\r\n")) as served:
        smtp = Smtp("mail.two.test", served[0], "a@hue.gov.vn", timeout=5)
        message = compose(smtp, "van.thu@hue.gov.vn", "Thử", "Nội dung", notice_id="n1")
        outcome = send_mail(smtp, message)
    # Its greeting came: it was reached (and refused the session, for good)
    assert ("permanent", 554) == (outcome.outcome, outcome.status)


@pytest.mark.parametrize(
    "greeting",
    [b"hello, this is no SMTP\r\n", b"220 " + b"x" * 9000 + b"\r\n"],
    ids=["not a number", "a line past smtplib's limit"],
)
def test_an_smtp_reply_smtplib_cannot_read_is_no_code_of_the_servers(greeting: bytes) -> None:
    with _serving(lambda conn: conn.sendall(greeting)) as served:
        smtp = Smtp("127.0.0.1", served[0], "a@hue.gov.vn", timeout=5)
        message = compose(smtp, "van.thu@hue.gov.vn", "Thử", "Nội dung", notice_id="n1")
        outcome = send_mail(smtp, message)

    # Then it is tried again later, with no status the server never sent
    assert ("transient", None) == (outcome.outcome, outcome.status)
    assert outcome.error.startswith("the server's reply is not SMTP")
