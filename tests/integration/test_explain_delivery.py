"""A real delivery to a peer that is down, explained over HTTP and on the command line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pytest import CaptureFixture

from congvan.states.timeliness import VIETNAM
from congvan.storage.clock import as_utc
from congvan.storage.timers import JOB_DEADLINE
from congvan.workflow import directory
from congvan.workflow.api.app import create_app
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.cli import main
from congvan.workflow.serving import serve_in_thread
from tests.factories import actor
from tests.installations import A, B, Pair, serving_inbox
from tests.integration.test_delivery import LosesTheAnswer

DOWN = "http://127.0.0.1:9/v1/inbox"  # the discard port: nothing listens there


def _clerk_token(runtime: Runtime) -> str:
    now = runtime.clock()
    with runtime.uow() as uow:
        clerk = directory.ensure_user(uow, A, "vanthu", ["clerk"], now)
        token = directory.create_token(uow, clerk, now).token
        uow.commit()
    return token


def _explain(pair: Pair, doc: str) -> dict[str, Any]:
    token = _clerk_token(pair.sender)
    with serve_in_thread(create_app(pair.sender)) as base:
        answer = httpx.get(
            f"{base}/v1/documents/{doc}/explain", headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_peer_that_is_down_shows_the_retry_and_the_refused_connection(
    pair: Pair, make_document: Callable[..., str], tmp_path: Path, capsys: CaptureFixture[str]
) -> None:
    # Given a letter sent to B while nothing listens at B's inbox
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    # When its first attempt fails
    assert pair.sender.runner.run(job) == "failed"
    with pair.sender.uow(readonly=True) as uow:
        [timer] = [t for t in uow.timers.for_document(doc) if t.kind == JOB_DEADLINE]
    assert timer.payload == {"reason": "backoff"}

    # Then the explanation says B waits for its retry at the backoff timer's moment, and why
    view = _explain(pair, doc)
    assert ("sent", "awaiting_delivery") == (view["state"], view["document"][0]["code"])
    [recipient] = view["recipients"]
    assert (B, "pending", None) == (
        recipient["organ_id"],
        recipient["state"],
        recipient["status_code"],
    )
    wait, due_by, last = recipient["findings"]
    assert ("waiting_for_retry", "due_by", "last_attempt") == (
        wait["code"],
        due_by["code"],
        last["code"],
    )
    assert due_by["en"].startswith("The time rules want it to arrive (01) by")
    due = timer.due_at.astimezone(VIETNAM)
    assert due.isoformat() == wait["facts"]["due_at"]
    assert wait["en"].startswith(f"Waiting for retry at {due:%Y-%m-%d %H:%M} ICT")
    assert "last attempt: not sent: ConnectError" in wait["en"]
    assert "connection refused" in wait["en"].lower()
    assert wait["vi"].startswith(f"Đang chờ gửi lại lúc {due:%H:%M ngày %d/%m/%Y}")
    assert "connection refused" in wait["vi"].lower()
    assert ("transient", None, 1) == (
        last["facts"]["outcome"],
        last["facts"]["http_status"],
        last["facts"]["attempt"],
    )
    assert view["headline"] == wait

    # And the command line says the same
    cli = ["--data-dir", str(tmp_path), "--database-url", pair.sender.settings.db_url]
    assert main([*cli, "explain", doc, "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert f"→ {B}  [pending]" in out
    assert "Waiting for retry at" in out and "connection refused" in out.lower()
    # And, idle since then, it is on the stuck list of A (the command's clock is real time)
    assert main([*cli, "stuck", "--agency", A, "--older-than", "PT1M", "--lang", "vi"]) == 0
    out = capsys.readouterr().out
    assert doc in out and "Đang chờ gửi lại lúc" in out
    assert main([*cli, "stuck", "--agency", B, "--older-than", "PT1M"]) == 0
    assert "no documents idle that long" in capsys.readouterr().out


def test_the_command_refuses_what_it_cannot_explain(
    pair: Pair, tmp_path: Path, capsys: CaptureFixture[str]
) -> None:
    cli = ["--data-dir", str(tmp_path), "--database-url", pair.sender.settings.db_url]
    assert main([*cli, "explain", "no-such-document"]) == 2
    assert "error [not_found]" in capsys.readouterr().err
    assert main([*cli, "stuck", "--older-than", "soon"]) == 2
    assert "error [invalid_input]" in capsys.readouterr().err
    assert main([*cli, "stuck", "--limit", "0"]) == 2
    assert "error [invalid_input]" in capsys.readouterr().err


def test_the_last_attempt_after_a_resend_is_numbered_in_this_sending_too(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given a letter whose attempts ran out while B was down, resent by a supervisor once
    # B is up, and delivered at its first attempt since
    pair.point_b_at(DOWN)
    doc, job = pair.sent(make_document)
    while pair.sender.runner.run(job) == "failed":
        pair.sender.clock.advance(minutes=30)
        pair.sender.scheduler.tick()
    assert pair.dispatch(doc)[0].state == "failed"
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        pair.sender.engine.fire(doc, "resend", actor("supervisor"), data={"reason": "B is up"})
        [again] = pair.jobs(doc)
        assert pair.sender.runner.run(again) == "done"

    # Then its last attempt is told by both numbers: the log's and this sending's
    [recipient] = _explain(pair, doc)["recipients"]
    [last] = [f for f in recipient["findings"] if f["code"] == "last_attempt"]
    attempts = pair.dispatch(doc)[1]
    assert (last["facts"]["attempt"], last["facts"]["since_resend"]) == (len(attempts), 1)
    assert "(1st since the resend)" in last["en"]


def _registration_due(runtime: Runtime) -> str:
    with runtime.uow(readonly=True) as uow:
        [due] = [
            t.due_at
            for t in uow.timers.of_kind("rule_deadline")
            if t.payload["escalation"] == "not_acknowledged"
        ]
    return due.astimezone(VIETNAM).strftime("%a %H:%M")


def test_a_receipt_fetched_after_a_lost_answer_counts_from_when_the_package_arrived(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter taken by B on Monday at 15:05, its answer lost on the way back: B
    # registers it the working day it arrived, by Monday 17:00
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        doc, job = pair.sent(make_document)
        pair.deliver_through(LosesTheAnswer)
        assert pair.sender.runner.run(job) == "failed"
        [received] = pair.received()
        assert _registration_due(pair.receiver) == "Mon 17:00"

        # When A's retry fetches B's first receipt at 16:30, in the day's last hour
        pair.sender.clock.advance(minutes=85)
        pair.deliver_through(lambda: None)
        assert pair.sender.runner.run(job) == "done"

    # Then A watches the same registration deadline as B, counted from the arrival its
    # receipt says, and its explanation says it was delivered then
    assert _registration_due(pair.sender) == "Mon 17:00"
    [recipient] = _explain(pair, doc)["recipients"]
    [waiting] = [f for f in recipient["findings"] if f["code"] == "awaiting_acknowledgement"]
    arrived = datetime.fromisoformat(waiting["facts"]["since"])
    assert arrived == as_utc(received.received_at), waiting
