"""Notifications end to end: queued in a transaction, sent after it by the job machinery to
a real SMTP server and a real webhook receiver on 127.0.0.1, retried on database timers,
dead after the last attempt, and sent again when an operator asks."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text

from congvan.actions.messengers import Outcome, post_webhook
from congvan.actions.notifications import queue_notifications, retry
from congvan.states.errors import Conflict, InvalidInput
from congvan.states.networks import SETTING, Network, parse_networks
from congvan.states.vocabulary import ATTEMPT_DELIVERED, ATTEMPT_PERMANENT
from congvan.storage.clock import FrozenClock
from congvan.storage.notifications import CANCELLED, DEAD, PENDING, SENT, NoticeRow
from congvan.storage.outbox import DONE, WAITING
from congvan.workflow import notifications as managing
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.serving import free_port
from tests.conftest import MakeRuntime
from tests.factories import add_agency
from tests.receivers import Mailbox, Proxy, Webhook, self_signed, smtp_server
from tests.servers import wait_until

A, B = "000.00.00.H57", "000.00.11.H57"
SECRET = "hook-secret-0123456789abcdefghijklmnopqrstuvwxyz"
DOCUMENT = "0192f000-0000-7000-8000-0000000000d0"


def event(runtime: Runtime, **overrides: Any) -> dict[str, Any]:
    return {
        "escalation_id": "0192f000-0000-7000-8000-0000000000e1",
        "level": 1,
        "severity": "thượng khẩn",
        "document_id": DOCUMENT,
        "number_symbol": "1227/UBND-TĐKT",
        "subject": "Về việc thực hiện gửi, nhận văn bản điện tử",
        "recipient_id": B,
        "recipient_name": "Sở Nội vụ",
        "what_to_do": "Gọi văn thư Sở Nội vụ để tiếp nhận văn bản trong ngày.",
        "link": f"/v1/documents/{DOCUMENT}",
        "at": runtime.clock(),
        **overrides,
    }


def agencies(runtime: Runtime) -> None:
    add_agency(runtime, A, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND")
    add_agency(runtime, B, "Sở Nội vụ", "SNV")


def route(runtime: Runtime, agency: str = A, **fields: Any) -> str:
    values: dict[str, Any] = {"kind": "*", "channel": "webhook", **fields}
    values.setdefault("secret", SECRET if values["channel"] == "webhook" else None)
    values.setdefault("networks", runtime.settings.private_networks())
    with runtime.uow() as uow:
        made = managing.add_route(uow, agency, by="test", now=runtime.clock(), **values)
        uow.commit()
    return made.id


def notify(runtime: Runtime, kind: str = "not_acknowledged", agency: str = A, **ev: Any) -> int:
    with runtime.uow() as uow:
        queued = queue_notifications(uow, agency_id=agency, kind=kind, event=event(runtime, **ev))
        uow.commit()
    return queued


def notices(runtime: Runtime, agency: str | None = A) -> list[NoticeRow]:
    with runtime.uow(readonly=True) as uow:
        return list(reversed(uow.notifications.page(agency, None, limit=100)))


def attempts(runtime: Runtime, notice_id: str) -> list[tuple[str, int | None]]:
    with runtime.uow(readonly=True) as uow:
        return [(a.outcome, a.status) for a in uow.notifications.attempts_of(notice_id)]


def run(runtime: Runtime, notice: NoticeRow) -> str:
    """Run the notification's job once, as a worker would."""
    with runtime.uow(readonly=True) as uow:
        current = uow.notifications.get(notice.id)
        assert current is not None
    return runtime.runner.run(current.job_id)


def wait_out_backoff(runtime: Runtime, clock: FrozenClock) -> None:
    """Move time past any backoff and let the scheduler put due jobs back in the queue."""
    clock.advance(hours=2)
    runtime.scheduler.tick()


def one(runtime: Runtime) -> NoticeRow:
    [notice] = notices(runtime)
    return notice


def state(runtime: Runtime, notice_id: str) -> NoticeRow:
    with runtime.uow(readonly=True) as uow:
        found = uow.notifications.get(notice_id)
    assert found is not None
    return found


# -- e-mail ---------------------------------------------------------------------------------


def test_an_email_arrives_in_vietnamese_through_the_workers(make_runtime: MakeRuntime) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        # Given an agency that sends not-acknowledged warnings to its clerk's address
        runtime = make_runtime(
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_from="congvan@ubnd.hue.gov.vn",
            public_url="https://congvan.hue.gov.vn",
        )
        agencies(runtime)
        route(runtime, kind="not_acknowledged", channel="email", target="van.thu@hue.gov.vn")

        # When a warning is queued and the embedded workers run
        assert 1 == notify(runtime)
        runtime.start(scheduler=False)
        runtime.join()

    # Then one message arrived, addressed and worded as the warning says
    [(sender, recipients, message, raw)] = mailbox.messages
    assert ("congvan@ubnd.hue.gov.vn", ["van.thu@hue.gov.vn"]) == (sender, recipients)
    assert "[congvan] Đơn vị nhận chưa tiếp nhận văn bản: 1227/UBND-TĐKT" == message["Subject"]
    assert b"=?utf-8?" in raw and raw.isascii()  # headers encoded, nothing 8-bit on the wire
    text = message.get_content().replace("\r\n", "\n")
    for line in (
        "Đơn vị nhận chưa tiếp nhận văn bản (mức 1, thượng khẩn).",
        "Số, ký hiệu văn bản: 1227/UBND-TĐKT",
        "Trích yếu: Về việc thực hiện gửi, nhận văn bản điện tử",
        "Đơn vị nhận: Sở Nội vụ (000.00.11.H57)",
        "Việc cần làm: Gọi văn thư Sở Nội vụ để tiếp nhận văn bản trong ngày.",
        f"Xem chi tiết: https://congvan.hue.gov.vn/v1/documents/{DOCUMENT}",
    ):
        assert line in text.splitlines()
    assert message.get_content_charset() == "utf-8"
    notice = one(runtime)
    assert (SENT, 1) == (notice.state, notice.attempts)
    assert [("delivered", 250)] == attempts(runtime, notice.id)
    assert f"<{notice.id}@ubnd.hue.gov.vn>" == message["Message-ID"]


def test_smtp_4xx_is_tried_again_and_5xx_is_dead_at_once(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    mailbox = Mailbox(refuse_with="451 4.3.0 Mailbox busy, try later")
    with smtp_server(mailbox) as port:
        runtime = make_runtime(smtp_host="127.0.0.1", smtp_port=port, notify_max_attempts=5)
        agencies(runtime)
        route(runtime, channel="email", target="van.thu@hue.gov.vn")
        notify(runtime)
        notice = one(runtime)

        # A 4xx reply: the attempt is kept and the job waits on its backoff timer
        assert "failed" == run(runtime, notice)
        assert (PENDING, [("transient", 451)]) == (
            state(runtime, notice.id).state,
            attempts(runtime, notice.id),
        )
        with runtime.uow(readonly=True) as uow:
            job = uow.outbox.get(notice.job_id)
            assert job is not None and WAITING == job.status

        # A 5xx reply: the address will never take it, dead without waiting
        mailbox.refuse_with = "550 5.1.1 No such user"
        wait_out_backoff(runtime, clock)
        assert "done" == run(runtime, notice)

    dead = state(runtime, notice.id)
    assert (DEAD, 2) == (dead.state, dead.attempts)
    assert [("transient", 451), ("permanent", 550)] == attempts(runtime, notice.id)
    assert "550 5.1.1 No such user" == dead.last_error
    assert [] == mailbox.messages


@pytest.mark.parametrize(
    ("reply", "outcome", "state_after"),
    [
        ("554 5.7.1 Message rejected as spam", ("permanent", 554), DEAD),
        ("451 4.7.1 Greylisted, try later", ("transient", 451), PENDING),
    ],
)
def test_the_servers_answer_to_the_message_itself_is_its_outcome(
    make_runtime: MakeRuntime, reply: str, outcome: tuple[str, int], state_after: str
) -> None:
    # Given an SMTP server that takes the envelope, then answers the message's end so
    mailbox = Mailbox(refuse_message_with=reply)
    with smtp_server(mailbox) as port:
        runtime = make_runtime(smtp_host="127.0.0.1", smtp_port=port, notify_max_attempts=5)
        agencies(runtime)
        route(runtime, channel="email", target="van.thu@hue.gov.vn")
        notify(runtime)
        notice = one(runtime)

        run(runtime, notice)

    # Then its code is the attempt's: a refusal is no unknown outcome, to send again
    assert [outcome] == attempts(runtime, notice.id)
    assert (state_after, reply) == (
        state(runtime, notice.id).state,
        state(runtime, notice.id).last_error,
    )


def test_starttls_with_the_servers_certificate_pinned(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    certificate = self_signed(tmp_path)
    mailbox = Mailbox()
    with smtp_server(mailbox, starttls=certificate) as port:
        runtime = make_runtime(
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_starttls=True,
            smtp_ca_file=certificate.cert,
        )
        agencies(runtime)
        route(runtime, channel="email", target="van.thu@hue.gov.vn")
        notify(runtime)

        assert "done" == run(runtime, one(runtime))

    assert SENT == one(runtime).state
    [(_, _, message, _)] = mailbox.messages
    assert "Trích yếu: Về việc thực hiện gửi, nhận văn bản điện tử" in message.get_content()


def test_starttls_refuses_a_certificate_it_cannot_verify_and_plain_text_is_refused(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    certificate = self_signed(tmp_path)
    mailbox = Mailbox()
    with smtp_server(mailbox, starttls=certificate) as port:
        # Given a server whose self-signed certificate the system's roots do not know
        verifying = make_runtime(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=True)
        agencies(verifying)
        route(verifying, channel="email", target="van.thu@hue.gov.vn")
        notify(verifying)
        run(verifying, one(verifying))
        refused = one(verifying)
        # And an installation that does not ask for STARTTLS at a server that requires it
        plain = make_runtime(smtp_host="127.0.0.1", smtp_port=port)
        notify(plain, escalation_id="e2")
        [_, second] = notices(plain)
        run(plain, second)

    # Then neither sent anything; both are dead at once, each saying why
    assert [] == mailbox.messages
    assert (DEAD, "permanent") == (refused.state, attempts(verifying, refused.id)[0][0])
    assert refused.last_error.startswith("TLS: ")
    assert [("permanent", 530)] == attempts(plain, second.id)


def test_no_smtp_server_configured_is_a_failed_attempt_that_names_the_setting(
    make_runtime: MakeRuntime,
) -> None:
    runtime = make_runtime(notify_max_attempts=1)
    agencies(runtime)
    route(runtime, channel="email", target="van.thu@hue.gov.vn")
    notify(runtime)

    assert "failed" == run(runtime, one(runtime))

    notice = one(runtime)
    assert DEAD == notice.state
    assert "CONGVAN_SMTP_HOST" in notice.last_error


# -- webhooks -------------------------------------------------------------------------------


def test_a_webhook_post_is_signed_and_the_receiver_verifies_it(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    receiver = Webhook(SECRET, clock)
    with receiver.serving() as url:
        runtime = make_runtime(public_url="https://congvan.hue.gov.vn")
        agencies(runtime)
        route(runtime, target=url)
        notify(runtime, kind="delivery_failed")
        runtime.start(scheduler=False)
        runtime.join()

    notice = one(runtime)
    assert [] == receiver.refused
    [body] = receiver.taken
    assert (notice.id, A, "delivery_failed", "Gửi văn bản không thành công") == (
        body["id"],
        body["agency_id"],
        body["kind"],
        body["kind_words"],
    )
    assert f"https://congvan.hue.gov.vn/v1/documents/{DOCUMENT}" == body["url"]
    assert ("1227/UBND-TĐKT", "Sở Nội vụ") == (
        body["event"]["number_symbol"],
        body["event"]["recipient_name"],
    )
    assert [notice.id] == receiver.ids
    assert (SENT, [("delivered", 200)]) == (notice.state, attempts(runtime, notice.id))


LOOPBACK = parse_networks(["127.0.0.0/8"])


def _posted_at() -> datetime:
    """The moment ``_post`` signs its posts at (timestamp 0)."""
    return datetime.fromtimestamp(0, UTC)


def test_a_webhook_is_never_posted_to_an_address_the_installation_does_not_allow(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    receiver = Webhook(SECRET, clock)
    with receiver.serving() as url:
        # The route was made while the installation allowed loopback; it no longer does.
        runtime = make_runtime(notify_private_networks=[])
        agencies(runtime)
        route(runtime, target=url, networks=LOOPBACK)
        notify(runtime)
        assert "done" == run(runtime, one(runtime))

    notice = one(runtime)
    assert [] == receiver.ids  # nothing reached the receiver
    assert (DEAD, [("permanent", None)]) == (notice.state, attempts(runtime, notice.id))
    assert "127.0.0.1" in notice.last_error and SETTING in notice.last_error


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "127.1", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]", "0x7f000001"],
)
def test_every_spelling_of_this_machine_is_refused_before_a_connection(host: str) -> None:
    receiver = Webhook("s" * 32, _posted_at)
    with receiver.serving() as url:
        port = urlsplit(url).port
        outcome = _post(f"http://{host}:{port}/hook")
        allowed = _post(f"http://127.0.0.1:{port}/hook", networks=LOOPBACK)

    assert ATTEMPT_PERMANENT == outcome.outcome, outcome
    assert SETTING in outcome.error
    assert ATTEMPT_DELIVERED == allowed.outcome, allowed
    assert 1 == len(receiver.ids)  # the allowed post only


def test_a_name_is_connected_to_at_an_address_the_installation_allows() -> None:
    # localhost may resolve to ::1 first: that address is skipped, 127.0.0.1 is taken.
    receiver = Webhook("s" * 32, _posted_at)
    with receiver.serving() as url:
        port = urlsplit(url).port
        outcome = _post(f"http://localhost:{port}/hook", networks=LOOPBACK)

    assert ATTEMPT_DELIVERED == outcome.outcome, outcome


PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def _proxy_environment(monkeypatch: pytest.MonkeyPatch, **names: str) -> None:
    """Exactly these proxy variables set (e.g. ``HTTPS_PROXY=…``), in both spellings' stead."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in names.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("answer", "outcome"), [(403, "permanent"), (502, "transient")])
def test_a_webhook_goes_through_the_proxy_https_proxy_names_which_decides(
    monkeypatch: pytest.MonkeyPatch, answer: int, outcome: str
) -> None:
    # Given an egress proxy that answers every tunnel it is asked for with ``answer``,
    # named by HTTPS_PROXY, and a hook at a name this machine cannot resolve
    proxy = Proxy(connect_answer=answer)
    with proxy.serving() as url:
        _proxy_environment(monkeypatch, HTTPS_PROXY=url)

        # When a notification is posted there
        posted = _post("https://hooks.example.vn/hook")

    # Then the proxy was asked for the way (no name was resolved here), and its answer
    # stands: a refusal for good, a bad gateway for now
    assert ["CONNECT hooks.example.vn:443"] == proxy.seen
    assert outcome == posted.outcome, posted
    assert posted.error.startswith(f"not sent: the proxy answered {answer} "), posted


def test_a_proxy_url_httpx_cannot_read_is_nothing_sent_its_password_never_said(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxyuser:PROXYPW@[::1")
    runtime = make_runtime(notify_max_attempts=3)
    agencies(runtime)
    route(runtime, target="https://hooks.hue.gov.vn/h")
    notify(runtime)
    notice = one(runtime)

    run(runtime, notice)

    # Nothing left: an attempt that failed before anything was sent, tried again later
    [(outcome, status)] = attempts(runtime, notice.id)
    assert (outcome, status) == ("transient", None)
    assert "not sent: proxy" in state(runtime, notice.id).last_error
    assert "PROXYPW" not in state(runtime, notice.id).last_error


def test_a_post_through_the_proxy_reaches_what_a_direct_post_may_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a receiver on loopback, which the installation does not let webhooks reach,
    # and HTTP_PROXY naming a proxy that carries posts to it
    receiver = Webhook("s" * 32, _posted_at)
    with receiver.serving() as hook:
        proxy = Proxy(upstream=urlsplit(hook).netloc)
        with proxy.serving() as url:
            _proxy_environment(monkeypatch, HTTP_PROXY=url)

            # When a notification is posted to a name only the proxy knows
            posted = _post("http://hooks.example.vn/hook")

    # Then it went through the proxy, which decided to carry it, and it arrived
    assert (ATTEMPT_DELIVERED, 200) == (posted.outcome, posted.status), posted
    assert ["POST http://hooks.example.vn/hook"] == proxy.seen
    assert ["n1"] == receiver.ids


def test_a_host_no_proxy_names_is_posted_to_directly_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a proxy for every scheme, but NO_PROXY naming this machine
    receiver = Webhook("s" * 32, _posted_at)
    proxy = Proxy(upstream="127.0.0.1:9")
    with receiver.serving() as hook, proxy.serving() as url:
        _proxy_environment(monkeypatch, HTTPS_PROXY=url, HTTP_PROXY=url, NO_PROXY="127.0.0.1")

        # When notifications are posted to it, with and without loopback allowed
        refused = _post(hook)
        allowed = _post(hook, networks=LOOPBACK)

    # Then neither went through the proxy: the address check applies, as without one
    assert [] == proxy.seen
    assert (ATTEMPT_PERMANENT, True) == (refused.outcome, SETTING in refused.error), refused
    assert ATTEMPT_DELIVERED == allowed.outcome, allowed
    assert ["n1"] == receiver.ids


def test_a_receiver_with_another_secret_refuses_and_the_post_is_dead(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    receiver = Webhook("another-secret-0123456789abcdefghijklmnop", clock)
    with receiver.serving() as url:
        runtime = make_runtime()
        agencies(runtime)
        route(runtime, target=url)
        notify(runtime)
        assert "done" == run(runtime, one(runtime))

    assert ["the signature does not match"] == receiver.refused
    assert (DEAD, [("permanent", 401)]) == (one(runtime).state, attempts(runtime, one(runtime).id))


def test_a_receiver_that_is_down_is_retried_then_dead_then_retried_and_delivered(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given a route to a receiver that is not listening yet
    port = free_port()
    runtime = make_runtime(notify_max_attempts=3)
    agencies(runtime)
    route(runtime, target=f"http://127.0.0.1:{port}/hook")
    notify(runtime)
    notice = one(runtime)

    # When every attempt finds nobody there
    outcomes = [run(runtime, notice)]
    for _ in range(2):
        wait_out_backoff(runtime, clock)
        outcomes.append(run(runtime, notice))

    # Then each was recorded, and after the last one the notification is a dead letter
    assert ["failed"] * 3 == outcomes
    dead = state(runtime, notice.id)
    assert (DEAD, 3) == (dead.state, dead.attempts)
    assert [("transient", None)] * 3 == attempts(runtime, notice.id)
    assert dead.last_error.startswith("not sent: ConnectError")
    with runtime.uow(readonly=True) as uow:
        assert [notice.id] == [n.id for n in uow.notifications.page(A, DEAD)]
        assert [] == uow.notifications.page(A, PENDING)

    # When the receiver comes up and an operator retries it
    receiver = Webhook(SECRET, clock)
    with receiver.serving(port):
        with runtime.uow() as uow:
            retry(uow, notice.id, A, clock())
            uow.commit()
        runtime.start(scheduler=False)
        runtime.join()

    # Then it is delivered, with the same id, and its log holds every attempt
    sent = state(runtime, notice.id)
    assert (SENT, 4) == (sent.state, sent.attempts)
    assert [("transient", None)] * 3 + [("delivered", 200)] == attempts(runtime, notice.id)
    assert [notice.id] == receiver.ids
    assert notice.job_id != sent.job_id  # a new job, with its own attempts
    # And a notification that is not dead cannot be retried
    with runtime.uow() as uow, pytest.raises(Conflict):
        retry(uow, notice.id, A, clock())


def test_a_dead_notification_retried_at_once_by_several_goes_once(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given a dead notification
    runtime = make_runtime(notify_max_attempts=1)
    agencies(runtime)
    route(runtime, target=f"http://127.0.0.1:{free_port()}/hook")
    notify(runtime)
    notice = one(runtime)
    assert "failed" == run(runtime, notice)
    assert DEAD == state(runtime, notice.id).state

    # When four supervisors retry it at the same moment
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def retrying() -> None:
        barrier.wait()
        try:
            with runtime.uow() as uow:
                retry(uow, notice.id, A, clock())
                uow.commit()
            outcomes.append("retried")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=retrying) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then one retry wins, the others are told it is no longer dead, and one job goes
    assert ["conflict"] * 3 + ["retried"] == sorted(outcomes)
    with runtime.uow(readonly=True) as uow:
        queued = uow.conn.execute(
            text("SELECT id FROM outbox WHERE action = 'send_notification' AND status = 'pending'")
        ).scalars()
        assert [state(runtime, notice.id).job_id] == list(queued)


def test_a_receiver_that_asks_for_time_is_waited_for(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    receiver = Webhook(SECRET, clock, answer=503, headers={"Retry-After": "7200"})
    with receiver.serving() as url:
        runtime = make_runtime(notify_retry_seconds=1, notify_retry_cap_seconds=1)
        agencies(runtime)
        route(runtime, target=url)
        notify(runtime)
        notice = one(runtime)
        assert "failed" == run(runtime, notice)

        # Then the backoff timer waits the two hours it asked for, not the one second
        with runtime.uow(readonly=True) as uow:
            [timer] = [t for t in uow.timers.for_document(DOCUMENT) if t.ref_id == notice.job_id]
        assert timedelta(hours=2) == timer.due_at - clock()
        clock.advance(minutes=30)
        assert 0 == runtime.scheduler.tick()

        receiver.answer = 204
        clock.advance(hours=2)
        runtime.scheduler.tick()
        assert "done" == run(runtime, notice)

    assert [("transient", 503), ("delivered", 204)] == attempts(runtime, notice.id)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        *[(s, ("done", DEAD, "permanent", DONE)) for s in (400, 404, 410, 422)],
        *[(s, ("failed", PENDING, "transient", WAITING)) for s in (408, 429, 500, 502)],
    ],
)
def test_a_4xx_answer_is_dead_at_once_and_408_429_or_5xx_tried_again(
    make_runtime: MakeRuntime, clock: FrozenClock, status: int, expected: tuple[str, ...]
) -> None:
    receiver = Webhook(SECRET, clock, answer=status)
    with receiver.serving() as url:
        runtime = make_runtime()
        agencies(runtime)
        route(runtime, target=url)
        notify(runtime)
        notice = one(runtime)
        ran = run(runtime, notice)

    with runtime.uow(readonly=True) as uow:
        job = uow.outbox.get(notice.job_id)
        assert job is not None
    [(outcome, answered)] = attempts(runtime, notice.id)
    assert expected == (ran, state(runtime, notice.id).state, outcome, job.status)
    assert status == answered


def test_notifications_go_through_redis_too(
    make_runtime: MakeRuntime, redis_url: str, clock: FrozenClock
) -> None:
    receiver = Webhook(SECRET, clock)
    with receiver.serving() as url:
        runtime = make_runtime(broker_url=redis_url)
        agencies(runtime)
        route(runtime, target=url)
        notify(runtime)
        runtime.start(scheduler=False)
        wait_until(lambda: one(runtime).state == SENT, timeout=30, what="the notification")

    assert [one(runtime).id] == [b["id"] for b in receiver.taken]


# -- routes ---------------------------------------------------------------------------------


def test_only_the_agencys_enabled_routes_of_the_kind_or_every_kind_are_notified(
    make_runtime: MakeRuntime,
) -> None:
    runtime = make_runtime()
    agencies(runtime)
    route(runtime, kind="not_acknowledged", channel="email", target="a1@hue.gov.vn")
    route(runtime, kind="*", channel="email", target="a2@hue.gov.vn")
    route(runtime, kind="not_delivered", channel="email", target="a3@hue.gov.vn")
    off = route(runtime, kind="*", channel="email", target="a4@hue.gov.vn", enabled=False)
    route(runtime, B, kind="*", channel="email", target="b1@snv.hue.gov.vn")

    assert 2 == notify(runtime, "not_acknowledged")
    assert ["a1@hue.gov.vn", "a2@hue.gov.vn"] == sorted(n.target for n in notices(runtime))
    assert [] == notices(runtime, B)

    with runtime.uow() as uow:
        managing.set_enabled(uow, off, A, True, runtime.clock())
        uow.commit()
    assert 2 == notify(runtime, "crl_expiring", document_id=None)
    assert 0 == notify(runtime, "crl_expiring", agency="000.00.99.H57")


def test_a_receiver_routed_for_the_kind_and_for_every_kind_is_notified_once(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given one webhook routed twice (its kind, every kind) and one mailbox, written two ways
    receiver = Webhook(SECRET, clock)
    with receiver.serving() as url:
        runtime = make_runtime()
        agencies(runtime)
        first = route(runtime, kind="not_acknowledged", target=url)
        route(runtime, kind="*", target=url)
        route(runtime, kind="*", channel="email", target="van.thu@hue.gov.vn")
        route(runtime, kind="risen", channel="email", target="Van.Thu@hue.gov.vn")

        # When an escalation risen to the leadership is notified
        assert 2 == notify(runtime, "not_acknowledged", level=2)
        [hook] = [n for n in notices(runtime) if n.channel == "webhook"]
        assert "done" == run(runtime, hook)

    # Then each receiver has it once, through its oldest route
    assert ([first], 1) == ([hook.route_id], len(receiver.ids))
    assert ["van.thu@hue.gov.vn"] == [n.target for n in notices(runtime) if n.channel == "email"]


def test_nothing_is_queued_when_the_transaction_rolls_back(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    agencies(runtime)
    route(runtime, channel="email", target="a1@hue.gov.vn")

    with runtime.uow() as uow:
        assert 1 == queue_notifications(
            uow, agency_id=A, kind="not_delivered", event=event(runtime)
        )  # and the transition fails after: no commit

    assert [] == notices(runtime)
    with runtime.uow(readonly=True) as uow:
        assert {} == uow.outbox.counts()


def test_a_bad_event_fails_the_caller_even_with_no_route(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    agencies(runtime)
    with runtime.uow() as uow, pytest.raises(InvalidInput):
        queue_notifications(uow, agency_id=A, kind="late", event=event(runtime))


def test_a_removed_route_cancels_what_it_had_queued(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    agencies(runtime)
    made = route(runtime, channel="email", target="a1@hue.gov.vn")
    notify(runtime)
    with runtime.uow() as uow:
        managing.remove_route(uow, made, A, runtime.clock())
        uow.commit()

    assert "done" == run(runtime, one(runtime))

    assert (CANCELLED, "the route was removed", 0) == (
        one(runtime).state,
        one(runtime).last_error,
        one(runtime).attempts,
    )


def test_a_notification_its_route_cancelled_goes_once_the_route_is_enabled_again(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given a notification queued while its webhook's route was on, switched off before it went
    receiver = Webhook(SECRET, clock)
    with receiver.serving() as url:
        runtime = make_runtime()
        agencies(runtime)
        made = route(runtime, target=url)
        notify(runtime)
        notice = one(runtime)
        with runtime.uow() as uow:
            managing.set_enabled(uow, made, A, False, clock())
            uow.commit()
        assert "done" == run(runtime, notice)
        assert (CANCELLED, "the route is disabled") == (
            state(runtime, notice.id).state,
            state(runtime, notice.id).last_error,
        )
        # When it is retried with its route still off: refused, saying what to do
        with runtime.uow() as uow, pytest.raises(Conflict, match="route is disabled: enable it"):
            retry(uow, notice.id, A, clock())

        # And once the route is on again
        with runtime.uow() as uow:
            managing.set_enabled(uow, made, A, True, clock())
            retry(uow, notice.id, A, clock())
            uow.commit()
        assert "done" == run(runtime, notice)

    # Then the escalation's notification was not lost: it went, once, with its own id
    assert (SENT, [notice.id]) == (state(runtime, notice.id).state, receiver.ids)


def test_a_disabled_route_cancels_what_it_queued_at_once_enabled_again_it_sends_nothing(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    receiver = Webhook(SECRET, clock)
    with receiver.serving() as url:
        runtime = make_runtime()
        agencies(runtime)
        made = route(runtime, target=url)
        notify(runtime)
        notice = one(runtime)
        # When its route is switched off, and on again before its job ran
        with runtime.uow() as uow:
            managing.set_enabled(uow, made, A, False, clock())
            uow.commit()
        assert CANCELLED == state(runtime, notice.id).state  # at once, not when the job runs
        with runtime.uow() as uow:
            managing.set_enabled(uow, made, A, True, clock())
            uow.commit()
        assert "done" == run(runtime, notice)

    # Then it was not sent: a cancelled notification goes only when retried by hand
    assert (CANCELLED, []) == (state(runtime, notice.id).state, receiver.ids)


def test_a_route_disabled_while_its_attempt_is_out_keeps_what_the_attempt_did(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    receiver = Webhook(SECRET, clock)
    with receiver.serving() as url:
        runtime = make_runtime()
        agencies(runtime)
        made = route(runtime, target=url)
        notify(runtime)
        notice = one(runtime)

        def disable() -> None:
            with runtime.uow() as uow:
                managing.set_enabled(uow, made, A, False, clock())
                uow.commit()

        # When the route is switched off while the post is out, and the receiver takes it
        receiver.meanwhile = disable
        assert "done" == run(runtime, notice)

    # Then the notification is what happened to it: sent, its attempt kept
    assert (SENT, [("delivered", 200)]) == (
        state(runtime, notice.id).state,
        attempts(runtime, notice.id),
    )


def test_a_dead_notification_its_route_disabled_goes_through_every_kinds_route_to_it(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given a dead notification, its route then disabled, and the same receiver routed for
    # every kind (the kind itself cannot be routed twice to it)
    receiver = Webhook(SECRET, clock)
    with receiver.serving() as url:
        runtime = make_runtime(notify_max_attempts=1)
        agencies(runtime)
        made = route(runtime, kind="not_acknowledged", target=url)
        receiver.answer = 500
        notify(runtime)
        notice = one(runtime)
        assert "failed" == run(runtime, notice)  # its one attempt: given up
        assert DEAD == state(runtime, notice.id).state
        with runtime.uow() as uow:
            managing.set_enabled(uow, made, A, False, clock())
            uow.commit()
        every = route(runtime, kind="*", target=url)

        # When it is retried, as the refusal's message says to
        receiver.answer = 200
        with runtime.uow() as uow:
            retry(uow, notice.id, A, clock())
            uow.commit()
        assert "done" == run(runtime, notice)

    # Then it went through the route enabled
    assert (SENT, every) == (state(runtime, notice.id).state, state(runtime, notice.id).route_id)


@pytest.mark.parametrize("kind", ["not_acknowledged", "*"])
def test_a_dead_notification_its_route_removed_goes_through_the_receiver_routed_again(
    make_runtime: MakeRuntime, clock: FrozenClock, kind: str
) -> None:
    # Given a dead notification whose route was then removed
    runtime = make_runtime(notify_max_attempts=1)
    agencies(runtime)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    made = route(runtime, target=url)
    notify(runtime)
    notice = one(runtime)
    assert "failed" == run(runtime, notice)
    with runtime.uow() as uow:
        managing.remove_route(uow, made, A, runtime.clock())
        uow.commit()
    with runtime.uow() as uow, pytest.raises(Conflict, match="route its kind to the same webhook"):
        retry(uow, notice.id, A, clock())

    # When the receiver is routed again (the kind, or every kind), with a new secret
    receiver = Webhook("another-secret-0123456789abcdefghijk", clock)
    with receiver.serving(port):
        again = route(runtime, target=url, kind=kind, secret=receiver.secret)
        with runtime.uow() as uow:
            retried = retry(uow, notice.id, A, clock())
            uow.commit()
        assert "done" == run(runtime, notice)

    # Then it goes through that route, signed with its secret
    assert again == retried.route_id
    assert (SENT, [notice.id], []) == (
        state(runtime, notice.id).state,
        receiver.ids,
        receiver.refused,
    )


# -- secrets --------------------------------------------------------------------------------


def test_the_secret_is_never_logged(
    make_runtime: MakeRuntime, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = Webhook(SECRET, clock, answer=500)
    with receiver.serving() as url:
        runtime = make_runtime(notify_max_attempts=2)
        agencies(runtime)
        route(runtime, target=url)
        notify(runtime)
        notice = one(runtime)
        run(runtime, notice)
        wait_out_backoff(runtime, clock)
        run(runtime, notice)

    assert DEAD == state(runtime, notice.id).state
    logged = [r.getMessage() + repr(r.__dict__) for r in caplog.records]
    assert any("notification.attempt" in line for line in logged)
    assert [] == [line for line in logged if SECRET in line]
    with runtime.uow(readonly=True) as uow:
        shown = [repr(r) for r in uow.notifications.routes(A)]
    assert SECRET not in "".join(shown)


def test_a_worker_that_dies_mid_send_leaves_an_unknown_attempt_and_a_retry(
    make_runtime: MakeRuntime, clock: FrozenClock
) -> None:
    # Given a notification whose job a worker claimed and never finished (it died)
    runtime = make_runtime()
    agencies(runtime)
    route(runtime, channel="email", target="van.thu@hue.gov.vn")
    notify(runtime)
    notice = one(runtime)
    claimed = runtime.runner._claim(notice.job_id)
    assert not isinstance(claimed, str)

    # When its lease ends and the scheduler takes the job back
    clock.advance(hours=1)
    assert 1 == runtime.scheduler.tick()

    # Then the attempt is on record as one whose outcome is unknown, and it goes again
    assert [("unknown", None)] == attempts(runtime, notice.id)
    assert "lease ended" in state(runtime, notice.id).last_error
    assert PENDING == state(runtime, notice.id).state
    with runtime.uow(readonly=True) as uow:
        job = uow.outbox.get(notice.job_id)
        assert job is not None and "pending" == job.status


def test_a_webhook_whose_tls_certificate_does_not_verify_is_permanent(tmp_path: Path) -> None:
    # A receiver on 127.0.0.1 serving a certificate nobody trusts
    certificate = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate.cert), str(certificate.key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        connection, _ = listener.accept()
        with contextlib.suppress(OSError), context.wrap_socket(connection, server_side=True):
            pass

    serving = threading.Thread(target=serve_one, daemon=True)
    serving.start()
    try:
        outcome = _post(f"https://127.0.0.1:{port}/hook", networks=LOOPBACK)
    finally:
        serving.join(timeout=5)
        listener.close()

    # It will not heal by waiting: the notification is not retried
    assert outcome.outcome == "permanent", outcome
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.error


@pytest.mark.parametrize("status", [400, 500])
def test_what_a_receiver_answers_is_kept_as_a_line_any_database_stores(status: int) -> None:
    answer = httpx.MockTransport(
        lambda _request: httpx.Response(status, content=b"bad\x00th\x1bing")
    )
    outcome = _post("https://hooks.example.vn/hook", answer)
    assert outcome.outcome == ("permanent" if status == 400 else "transient")
    assert outcome.error == f"{status}: bad\\x00th\\x1bing"


def _post(
    url: str, transport: httpx.BaseTransport | None = None, networks: Iterable[Network] = ()
) -> Outcome:
    """One notice posted to ``url``, as a worker posts it."""
    return post_webhook(
        url,
        b"{}",
        secret="s" * 32,
        notice_id="n1",
        kind="delivery_failed",
        timestamp=0,
        timeout=5,
        networks=networks,
        transport=transport,
    )


def _smtp_that_hangs_up(after: bytes) -> tuple[int, threading.Thread]:
    """An SMTP server on a free port that answers each command, then closes the connection
    once it has read ``after`` (the message's end, or the DATA command)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener, listener.accept()[0] as conn:
            conn.sendall(b"220 sink ESMTP\r\n")
            seen, in_data = b"", False
            while after not in seen:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                seen += chunk
                if in_data or after in seen:
                    continue
                for line in chunk.split(b"\r\n")[:-1]:
                    word = line[:4].upper()
                    if word == b"DATA":
                        in_data = True
                        if after != b"DATA":
                            conn.sendall(b"354 go on\r\n")
                    elif word in (b"EHLO", b"HELO"):
                        conn.sendall(b"250 sink\r\n")
                    else:
                        conn.sendall(b"250 ok\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


@pytest.mark.parametrize(
    ("hangs_up_after", "outcome"),
    [(b"\r\n.\r\n", "unknown"), (b"DATA", "transient")],
    ids=["after the whole message", "before the message"],
)
def test_a_connection_lost_once_the_message_went_is_of_unknown_outcome(
    hangs_up_after: bytes, outcome: str
) -> None:
    # The server may have taken a message whose end it read: not a failure to send again
    # as if nothing left (RFC 5321 4.1.1.4); a connection lost before it is one
    from email.message import EmailMessage

    from congvan.actions.messengers import Smtp, send_mail

    port, thread = _smtp_that_hangs_up(hangs_up_after)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@hue.gov.vn", "b@hue.gov.vn", "s"
    message.set_content("x")
    sent = send_mail(Smtp("127.0.0.1", port, "a@hue.gov.vn", timeout=5), message)
    thread.join(5)
    assert outcome == sent.outcome, sent


def test_an_smtp_password_is_never_sent_in_clear_to_another_machine() -> None:
    from congvan.workflow.settings import Settings

    with pytest.raises(ValueError, match="smtp_username needs smtp_starttls"):
        Settings(smtp_host="mail.hue.gov.vn", smtp_username="relay", smtp_password="pw")
    # With STARTTLS, or to a server on this machine, it is taken
    Settings(smtp_host="mail.hue.gov.vn", smtp_username="relay", smtp_starttls=True)
    for here in ("127.0.0.1", "localhost", "::1"):
        Settings(smtp_host=here, smtp_username="relay", smtp_password="pw")
