"""What a sender takes from a recipient's status messages: only what is about its own
document, text both databases keep, and never one status contradicting an earlier one.

Two installations (A sends, B receives) over real HTTP, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import rfc8785
from fastapi.testclient import TestClient

from congvan.actions.exchange.envelope import seal
from congvan.actions.exchange.status import FORMAT
from congvan.states.errors import (
    FormatUnsupported,
    MessageMalformed,
    MessageMismatch,
    StatusContradicted,
)
from congvan.storage.audit_checks import verify_chains
from congvan.workflow.api.app import create_app
from tests.installations import A, B, Pair, serving_inbox

C = "000.00.31.H57"  # an agency neither installation sends for


@pytest.fixture
def delivered(pair: Pair, make_document: Callable[..., str]) -> Iterator[str]:
    """A's letter, delivered to B: the document's id."""
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "done"
        yield doc


def _content(pair: Pair, doc: str, code: str, **changes: Any) -> dict[str, Any]:
    dispatch, _ = pair.dispatch(doc)
    return {
        "format": FORMAT,
        "message_id": dispatch.message_id,
        "document_id": doc,
        "from": B,
        "to": A,
        "code": code,
        "description": "registered",
        "reason": "Gửi nhầm cơ quan" if code == "02" else None,
        "staff": None,
        "at": pair.receiver.clock().replace(microsecond=0).isoformat(),
        **changes,
    }


def _signed_by_b(pair: Pair, content: dict[str, Any]) -> tuple[bytes, bytes]:
    """``content`` as B's system would sign it, whatever it holds."""
    with pair.receiver.uow(readonly=True) as uow:
        b_key = pair.receiver.inbox.keys.require(uow, B, pair.receiver.clock())
    sealed = seal(content, b_key, pair.receiver.clock())
    return sealed.body, sealed.cms


def _status(pair: Pair, doc: str, code: str) -> tuple[bytes, bytes]:
    reason = "Gửi nhầm cơ quan" if code == "02" else None
    return pair.status_from_b(doc, code, description=f"status {code}", reason=reason)


def _kept(pair: Pair, doc: str) -> list[str]:
    dispatch, _ = pair.dispatch(doc)
    with pair.sender.uow(readonly=True) as uow:
        return sorted(uow.dispatches.status_codes(dispatch.id))


def test_a_status_about_another_document_moves_nothing(pair: Pair, delivered: str) -> None:
    body, cms = _signed_by_b(pair, _content(pair, delivered, "03", document_id="another-doc"))

    with pytest.raises(MessageMismatch) as refused:
        pair.sender.statuses.accept(body, cms)

    assert refused.value.details["reason"] == "document_id"
    assert pair.dispatch(delivered)[0].state == "delivered"
    assert _kept(pair, delivered) == []


@pytest.mark.parametrize(("first", "then"), [("03", "02"), ("02", "05")])
def test_a_status_contradicting_an_earlier_one_is_refused_and_kept_nowhere(
    pair: Pair, delivered: str, first: str, then: str
) -> None:
    taken = pair.sender.statuses.accept(*_status(pair, delivered, first))
    state = taken.state

    with pytest.raises(StatusContradicted) as refused:
        pair.sender.statuses.accept(*_status(pair, delivered, then))

    assert refused.value.http_status == 409
    assert refused.value.details["earlier"] == first
    assert pair.dispatch(delivered)[0].state == state
    assert _kept(pair, delivered) == [first]
    # The earlier one, sent again, is still answered as before.
    assert pair.sender.statuses.accept(*_status(pair, delivered, first)).new is False
    with pair.sender.uow(readonly=True) as uow:
        assert [p for _, p in verify_chains(uow.conn) if p is not None] == []


def test_progress_after_registering_is_taken(pair: Pair, delivered: str) -> None:
    for code in ("03", "04", "05", "06"):
        assert pair.sender.statuses.accept(*_status(pair, delivered, code)).new
    assert _kept(pair, delivered) == ["03", "04", "05", "06"]
    assert pair.dispatch(delivered)[0].state == "acknowledged"
    # Each report is in the document's audit chain, once, the dispatch where it was
    pair.sender.statuses.accept(*_status(pair, delivered, "05"))  # again: nothing new
    with pair.sender.uow(readonly=True) as uow:
        events = [e.event for e in uow.audit.chain(delivered)]
        assert [p for _, p in verify_chains(uow.conn) if p is not None] == []
    assert [e for e in events if e.startswith("dispatch.") and e != "dispatch.start"][-4:] == [
        "dispatch.acknowledge",
        "dispatch.report_assigned",
        "dispatch.report_processing",
        "dispatch.report_completed",
    ]
    assert events[-3:] == ["dispatch.report_assigned", "dispatch.report_processing",
                           "dispatch.report_completed"]  # fmt: skip


@pytest.mark.parametrize("first", ["04", "05", "06"])
def test_a_progress_report_ahead_of_the_registration_acknowledges_the_dispatch(
    pair: Pair, delivered: str, first: str
) -> None:
    # Given A's letter delivered to B, whose 03 has not come (on its way, or never sent by
    # B's system)
    # When B's report of its handling comes first
    taken = pair.sender.statuses.accept(*_status(pair, delivered, first))

    # Then the letter counts as registered (QCVN 102 registers before it assigns): the
    # dispatch and the document are acknowledged, the report kept, and the rule that B
    # registers it is kept (its timer gone: no escalation will open)
    assert (taken.state, taken.new) == ("acknowledged", True)
    assert _kept(pair, delivered) == [first]
    dispatch, _ = pair.dispatch(delivered)
    with pair.sender.uow(readonly=True) as uow:
        assert uow.documents.head(delivered).state == "acknowledged"  # type: ignore[union-attr]
        assert [t for t in uow.timers.for_document(delivered) if t.ref_id == dispatch.id] == []

    # And the 03 that follows is kept too, and moves nothing
    late = pair.sender.statuses.accept(*_status(pair, delivered, "03"))
    assert (late.state, late.new) == ("acknowledged", True)
    assert _kept(pair, delivered) == sorted(["03", first])


UNSTORABLE = [
    ("reason", "Gửi nhầm\x00 cơ quan"),
    ("reason", "Gửi nhầm\x1b[31m"),
    ("staff", "Nguyễn Thị Lan\nvăn thư"),
    ("description", "vào sổ\x07"),
    ("at", "9999-12-31T23:59:59-05:00"),
    ("at", "0001-01-01T00:00:00+05:00"),
]


def test_a_member_the_databases_cannot_keep_is_malformed(pair: Pair, delivered: str) -> None:
    for member, value in UNSTORABLE:
        code = "02" if member == "reason" else "03"
        body, cms = _signed_by_b(pair, _content(pair, delivered, code, **{member: value}))

        with pytest.raises(MessageMalformed) as refused:
            pair.sender.statuses.accept(body, cms)

        assert refused.value.details["member"] == member, (member, value)
    assert pair.dispatch(delivered)[0].state == "delivered"
    assert _kept(pair, delivered) == []


def test_a_reason_keeps_its_lines(pair: Pair, delivered: str) -> None:
    reason = "Gửi nhầm cơ quan.\nĐề nghị gửi lại Sở Nội vụ."
    body, cms = _signed_by_b(pair, _content(pair, delivered, "02", reason=reason))
    assert pair.sender.statuses.accept(body, cms).state == "rejected"


def test_the_longest_members_a_status_carries_are_judged_never_failed_by_the_database(
    pair: Pair, delivered: str
) -> None:
    # Given B's refusal (02) with the longest reason the format allows, and its 03 about a
    # package under the longest message id the format allows (none of ours)
    reason = "Gửi nhầm cơ quan; " * 110 + "đề nghị gửi lại ngay"
    assert len(reason) == 2000
    refusal = _signed_by_b(pair, _content(pair, delivered, "02", reason=reason))
    unknown = _signed_by_b(pair, _content(pair, delivered, "03", message_id="m" * 200))

    # When A takes them, then the refusal is kept whole, and the other is about no package
    # of ours (on PostgreSQL as on SQLite)
    assert pair.sender.statuses.accept(*refusal).state == "rejected"
    with pytest.raises(MessageMismatch) as refused:
        pair.sender.statuses.accept(*unknown)
    assert refused.value.details["reason"] == "message_id"
    dispatch, _ = pair.dispatch(delivered)
    with pair.sender.uow(readonly=True) as uow:
        assert [("02", reason)] == [
            (s.code, s.reason) for s in uow.dispatches.statuses_of(dispatch.id)
        ]


NOT_TO_ANYONE = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"to": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"to": "000.00.00\\u0000H57"}',
    b'{"to": 1}',
    b'{"to": null}',
]


def test_whom_a_status_is_to_is_read_safely_before_its_signature(pair: Pair) -> None:
    for body in NOT_TO_ANYONE:
        with pytest.raises(MessageMalformed):
            pair.sender.statuses.accept(body, b"not a signature")


def test_whom_we_send_for_is_told_only_to_a_sender_whose_signature_holds(
    pair: Pair, delivered: str
) -> None:
    # Given status messages under a junk signature, from B, from an agency nobody lists
    # and from what names no agency, each to A (sending from here) and to C (not)
    answers: dict[str, list[tuple[int, str, Any]]] = {}
    for sender in (B, "000.00.00.H98", "000.00.00\x00H98"):
        for to in (A, C):
            content = {**_content(pair, delivered, "03"), "from": sender, "to": to}
            status, cms = _wire(rfc8785.dumps(content), b"\x30\x03\x02\x01\x00")

            # When each is posted to A's status route
            answer = _posted(pair, json.dumps({"status": status, "status_cms": cms}).encode())

            said = answer.json()
            answers.setdefault(sender, []).append(
                (answer.status_code, said["code"], said["details"].get("reason"))
            )

    # Then whom it is to changes nothing in the answer until the signature holds
    assert [(401, "agency_signature_invalid")] * 2 == [a[:2] for a in answers[B]]
    assert {sender: [said[0]] * 2 for sender, said in answers.items()} == answers
    assert ("delivered", []) == _state_and_codes(pair, delivered)


def test_another_kind_of_message_posted_as_a_status_is_named_by_its_format(pair: Pair) -> None:
    receipt = b'{"format":"congvan-receipt/1","to":"000.00.00.H57"}'
    with pytest.raises(FormatUnsupported) as caught:
        pair.sender.statuses.accept(receipt, b"not a signature")
    assert caught.value.details["format"] == "congvan-receipt/1"
    with pytest.raises(FormatUnsupported) as unnamed:
        pair.sender.statuses.accept(b'{"to":"000.00.00.H57"}', b"not a signature")
    assert unnamed.value.details["format"] is None


def _posted(pair: Pair, body: bytes) -> Any:
    """``body`` posted to A's ``POST /v1/status``, as a peer would."""
    with TestClient(create_app(pair.sender), raise_server_exceptions=False) as client:
        return client.post("/v1/status", content=body, headers={"Content-Type": "application/json"})


def _wire(body: bytes, cms: bytes) -> tuple[str, str]:
    return base64.b64encode(body).decode(), base64.b64encode(cms).decode()


def test_a_status_body_naming_a_member_twice_is_refused(pair: Pair, delivered: str) -> None:
    refused = _wire(*_signed_by_b(pair, _content(pair, delivered, "02")))
    registered = _wire(*_signed_by_b(pair, _content(pair, delivered, "03")))
    body = '{{"status": "{}", "status_cms": "{}", "status": "{}", "status_cms": "{}"}}'.format(
        *refused, *registered
    )

    answer = _posted(pair, body.encode())

    assert (422, "repeated_field") == (answer.status_code, answer.json()["code"])
    assert ("delivered", []) == _state_and_codes(pair, delivered)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_status_body_that_is_not_utf_8_is_refused(
    pair: Pair, delivered: str, encoding: str
) -> None:
    status, cms = _wire(*_signed_by_b(pair, _content(pair, delivered, "03")))

    answer = _posted(pair, json.dumps({"status": status, "status_cms": cms}).encode(encoding))

    assert (422, "invalid_encoding") == (answer.status_code, answer.json()["code"])
    assert ("delivered", []) == _state_and_codes(pair, delivered)


def _state_and_codes(pair: Pair, doc: str) -> tuple[str, list[str]]:
    dispatch, _ = pair.dispatch(doc)
    with pair.sender.uow(readonly=True) as uow:
        return dispatch.state, sorted(uow.dispatches.status_codes(dispatch.id))


@pytest.mark.parametrize("days", [-400, 2])
def test_a_status_claiming_a_moment_before_the_send_or_after_its_signing_is_refused(
    pair: Pair, delivered: str, days: int
) -> None:
    # B's real key, its signature made now; the moment it claims is before A sent the
    # package (a year back) or after it signed the message (two days on)
    at = pair.receiver.clock() + timedelta(days=days)
    body, cms = _signed_by_b(pair, _content(pair, delivered, "03", at=at.isoformat()))

    with pytest.raises(MessageMismatch) as refused:
        pair.sender.statuses.accept(body, cms)

    assert (refused.value.reason, refused.value.details["member"]) == ("moment", "at")
    assert pair.dispatch(delivered)[0].state == "delivered"
    assert _kept(pair, delivered) == []


@pytest.mark.parametrize("code", ["02", "03", "04"])
def test_no_status_is_taken_about_a_package_the_recipients_inbox_refused(
    pair: Pair, make_document: Callable[..., str], code: str
) -> None:
    # Given letter no. 5 delivered to B, and a second letter under the same number, which
    # B's inbox refuses (duplicate_document): its dispatch is rejected, no status kept
    with serving_inbox(pair) as inbox:
        pair.point_b_at(inbox)
        first, job = pair.sent(make_document, number=5)
        assert pair.sender.runner.run(job) == "done"
        again, job = pair.sent(make_document, number=5)
        assert pair.sender.runner.run(job) == "done"
    refused_at_inbox, _ = pair.dispatch(again)
    assert refused_at_inbox.state == "rejected"
    with pair.sender.uow(readonly=True) as uow:
        entries = len(uow.audit.chain(again))

    # When B's agency signs a status about that package all the same
    with pytest.raises(StatusContradicted) as refused:
        pair.sender.statuses.accept(*_status(pair, again, code))

    # Then it is refused (B holds nothing under that message id), and nothing is kept
    assert refused.value.http_status == 409
    assert refused.value.details == {
        "reason": "refused_at_inbox",
        "found": code,
        "earlier": "02",
    }
    assert _kept(pair, again) == [] and pair.dispatch(again)[0].state == "rejected"
    with pair.sender.uow(readonly=True) as uow:
        assert len(uow.audit.chain(again)) == entries
    # while the first letter's statuses are taken as ever
    assert pair.sender.statuses.accept(*_status(pair, first, "03")).state == "acknowledged"
