"""Sending seals one package header per recipient with the agency's key, once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from congvan.actions.context import Guard, TransitionContext
from congvan.actions.exchange.envelope import verify_body
from congvan.actions.signing import keystore
from congvan.actions.signing.stored import manifest_of
from congvan.states.errors import GuardFailed, UnknownPeer
from congvan.storage.dispatches import SealedDispatch
from congvan.workflow import peers
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.views import sending_timeliness
from tests.factories import (
    AGENCY_ID,
    FAKE_EFFECTS,
    FAKE_GUARDS,
    actor,
    add_agency,
    add_signature_row,
    document_row,
    job_done,
    peer_certificate,
    sample_file,
)

PASS = "sending test passphrase"
RECIPIENTS = ("000.00.01.H57", "000.00.02.H57")


def sealing_runtime(
    make_runtime: Callable[..., Runtime], guards: Mapping[str, Guard] = FAKE_GUARDS
) -> Runtime:
    """Checks and signing faked (``guards``: the send's, faked unless told); sealing real:
    a CA and the agency's key."""
    effects = {k: v for k, v in FAKE_EFFECTS.items() if k != "seal_packages"}
    runtime = make_runtime(
        guards=guards,
        effects=effects,
        jobs={"run_review_checks": job_done, "deliver_dispatches": job_done},
        key_passphrase=PASS,
    )
    add_agency(runtime)
    now = runtime.clock()
    with runtime.uow() as uow:
        keystore.init_ca(uow, "Send CA", "UBND tỉnh", passphrase=PASS, now=now, store=runtime.trust)
        keystore.issue_agency(uow, AGENCY_ID, passphrase=PASS, crl_url="http://x/crl", now=now)
        uow.commit()
    return runtime


@pytest.fixture
def sealing(make_runtime: Callable[..., Runtime]) -> Runtime:
    return sealing_runtime(make_runtime)


def _add_peers(runtime: Runtime, *organ_ids: str) -> None:
    with runtime.uow() as uow:
        for organ_id in organ_ids:
            peers.add_peer(
                uow,
                organ_id,
                name=f"Sở {organ_id}",
                abbreviation="SO",
                inbox_url="https://congvan.example.vn/v1/inbox",
                certificates=peer_certificate(runtime, organ_id),
                trust=runtime.trust,
                now=runtime.clock(),
            )
        uow.commit()


def _signed(runtime: Runtime, make_document: Callable[..., str], **document: Any) -> str:
    """A document (``make_document``'s ``document`` arguments) signed (faked), with the
    signature row sending reads."""
    doc = make_document(runtime, **document)
    runtime.engine.fire(doc, "approve", actor("reviewer"))
    runtime.engine.fire(doc, "sign", actor("signer"))
    with runtime.uow() as uow:
        manifest = manifest_of(uow, doc)
        add_signature_row(uow, doc, manifest, b"the signer's CMS", runtime.clock())
        uow.commit()
    return doc


def test_each_dispatch_keeps_a_header_sealed_by_the_agency(
    sealing: Runtime, make_document: Callable[..., str]
) -> None:
    # Given a signed document for two recipients we know the inboxes of
    _add_peers(sealing, *RECIPIENTS)
    doc = _signed(sealing, make_document)

    # When it is sent
    result = sealing.engine.fire(doc, "send", actor("clerk"))

    # Then each dispatch has its own message id and a package.json naming it and its
    # recipient, signed by the agency's organisational certificate
    assert result.to_state == "sent" and len(result.jobs) == 2
    with sealing.uow(readonly=True) as uow:
        trust = keystore.trust_material(uow, sealing.trust, [AGENCY_ID])
        dispatches = uow.dispatches.for_document(doc)
        sealed = {d.organ_id: uow.dispatches.sealed(d.id) for d in dispatches}
        manifest_sha256 = uow.signatures.latest_signature(doc).manifest_sha256
    assert set(sealed) == set(RECIPIENTS)
    ids = set()
    for organ_id, seal in sealed.items():
        assert isinstance(seal, SealedDispatch)
        header = json.loads(seal.header)
        assert (header["recipient"], header["sender"], header["message_id"]) == (
            organ_id,
            AGENCY_ID,
            seal.message_id,
        )
        assert header["manifest_sha256"] == manifest_sha256
        verdict = verify_body(
            seal.header, seal.header_cms, trust, agency_id=AGENCY_ID, at=sealing.clock()
        )
        assert verdict.signer.organizational_unit == AGENCY_ID
        ids.add(seal.message_id)
    assert len(ids) == 2
    assert [d.message_id for d in dispatches] == [sealed[d.organ_id].message_id for d in dispatches]


def test_a_recipient_without_a_known_inbox_stops_the_send(
    sealing: Runtime, make_document: Callable[..., str]
) -> None:
    # Given a signed document for two recipients, one of them unknown to the directory
    _add_peers(sealing, RECIPIENTS[0])
    doc = _signed(sealing, make_document)

    # When it is sent, then it is refused naming the unknown one, and nothing changed
    with pytest.raises(UnknownPeer) as refused:
        sealing.engine.fire(doc, "send", actor("clerk"))
    assert refused.value.details["organ_ids"] == [RECIPIENTS[1]]
    assert document_row(sealing, doc).state == "signed"
    with sealing.uow(readonly=True) as uow:
        assert uow.dispatches.for_document(doc) == []


@pytest.mark.parametrize(("hours_after_signing", "late"), [(1, False), (30, True)])
def test_the_send_is_entered_in_the_outgoing_register_and_judged_against_send_by(
    make_runtime: Callable[..., Runtime],
    make_document: Callable[..., str],
    hours_after_signing: int,
    late: bool,
) -> None:
    # Given a document whose signing set it to go out within 2 hours (the judgment is
    # the signing's, faked here; the register's is real)
    def signed_with_a_deadline(ctx: TransitionContext) -> None:
        ctx.audit["timeliness"] = {"send_by": (ctx.now + timedelta(hours=2)).isoformat()}

    runtime = make_runtime(
        guards=FAKE_GUARDS,
        effects={**FAKE_EFFECTS, "attach_signature": signed_with_a_deadline},
        jobs={"run_review_checks": job_done, "deliver_dispatches": job_done},
    )
    add_agency(runtime)
    _add_peers(runtime, *RECIPIENTS)
    doc = make_document(runtime)
    runtime.engine.fire(doc, "approve", actor("reviewer"))
    runtime.engine.fire(doc, "sign", actor("signer"))
    send_by = runtime.clock() + timedelta(hours=2)

    # When it is sent that many hours after signing
    runtime.clock.advance(hours=hours_after_signing)  # type: ignore[attr-defined]
    runtime.engine.fire(doc, "send", actor("clerk"))

    # Then the send's audit entry registers its number and times, judged
    with runtime.uow(readonly=True) as uow:
        [entry] = uow.audit.entries(doc, "send")
    row = document_row(runtime, doc)
    assert entry.payload["register"]["number"] == row.number
    assert entry.payload["register"]["symbol"] == row.symbol
    judged = entry.payload["sending"]
    assert datetime.fromisoformat(judged["send_by"]) == send_by
    assert datetime.fromisoformat(judged["sent_at"]) == runtime.clock()
    assert judged["late"] is late
    assert judged["late_by_hours"] == (hours_after_signing - 2 if late else None)
    with runtime.uow(readonly=True) as uow:
        assert sending_timeliness(uow, doc) == judged


def test_a_send_asks_each_guard_once_and_a_refused_one_keeps_nothing(
    make_runtime: Callable[..., Runtime], make_document: Callable[..., str]
) -> None:
    # Given a sending installation whose guards are counted, one refusing the second send
    asked: list[str] = []
    refuse = {"now": False}

    def counted(name: str) -> Guard:
        def guard(ctx: TransitionContext) -> tuple[bool, str]:
            asked.append(name)
            if name == "not_duplicate" and refuse["now"]:
                return False, "document X was sent with this number"
            return True, ""

        return guard

    runtime = sealing_runtime(make_runtime, {name: counted(name) for name in FAKE_GUARDS})
    _add_peers(runtime, *RECIPIENTS)
    first, second = _signed(runtime, make_document), _signed(runtime, make_document)

    # When the first is sent: the packages are sealed before the write transaction, and
    # the send's guards are asked once, in it
    asked.clear()
    runtime.engine.fire(first, "send", actor("clerk"))
    assert sorted(asked) == ["not_duplicate", "signature_valid"]

    # When the second is sent and its guard refuses it under the lock
    refuse["now"] = True
    with pytest.raises(GuardFailed) as refused:
        runtime.engine.fire(second, "send", actor("clerk"))

    # Then it is refused with the guard's reason, and nothing of the send was kept
    assert "not_duplicate" in str(refused.value.details)
    with runtime.uow(readonly=True) as uow:
        assert uow.documents.get(second).state == "signed"
        assert uow.dispatches.for_document(second) == []


@pytest.mark.parametrize("ended", ["recalled", "replaced"])
def test_a_number_sent_then_recalled_or_replaced_is_not_sent_again(
    make_runtime: Callable[..., Runtime], make_document: Callable[..., str], ended: str
) -> None:
    # Given letter 121 sent, then recalled (or replaced) at every recipient, and another
    # letter 121 of the same year signed meanwhile (its review raced the first one's)
    guards = {k: v for k, v in FAKE_GUARDS.items() if k != "not_duplicate"}
    runtime = sealing_runtime(make_runtime, guards)
    _add_peers(runtime, RECIPIENTS[0])
    to = [{"organ_id": RECIPIENTS[0], "name": "Sở Nội vụ"}]
    first, second = (
        _signed(runtime, make_document, number=121, recipients=to, files=[sample_file(data)])
        for data in (b"%PDF-1.4 first", b"%PDF-1.4 second")
    )
    runtime.engine.fire(first, "send", actor("clerk"))
    with runtime.uow() as uow:  # as a recall agreed by all, or a replacement sent, leaves it
        uow.conn.execute(
            text("UPDATE documents SET state = :state WHERE id = :id"),
            {"state": ended, "id": first},
        )
        uow.commit()

    # When the other letter 121 is sent, it is refused: its number was issued already
    with pytest.raises(GuardFailed) as refused:
        runtime.engine.fire(second, "send", actor("clerk"))
    assert refused.value.details["failed"] == ["not_duplicate"]
    assert first in refused.value.details["reasons"]["not_duplicate"]


@pytest.mark.parametrize("repeat", ["number", "file"])
def test_two_sends_racing_with_one_number_or_file_let_one_go(
    make_runtime: Callable[..., Runtime], make_document: Callable[..., str], repeat: str
) -> None:
    # Given, three times over, two signed letters of the agency to the same recipient
    # with one number (their files differ) or one main file (their numbers differ)
    guards = {k: v for k, v in FAKE_GUARDS.items() if k != "not_duplicate"}
    runtime = sealing_runtime(make_runtime, guards)
    _add_peers(runtime, RECIPIENTS[0])
    to = [{"organ_id": RECIPIENTS[0], "name": "Sở Nội vụ"}]

    def letter(round_: int, i: int) -> str:
        number, data = 100 + round_, f"%PDF-1.4 round {round_}".encode()
        if repeat == "number":
            data += f" letter {i}".encode()
        else:
            number += 10 * i
        files = [sample_file(data)]
        return _signed(runtime, make_document, number=number, recipients=to, files=files)

    def send(barrier: threading.Barrier, doc: str) -> str:
        barrier.wait(timeout=10)
        try:
            return runtime.engine.fire(doc, "send", actor("clerk")).to_state
        except GuardFailed as refused:
            return ",".join(refused.details["failed"])

    # When each pair is sent at once, by two clerks
    outcomes = []
    with ThreadPoolExecutor(2) as pool:
        for round_ in range(3):
            pair, barrier = [letter(round_, 0), letter(round_, 1)], threading.Barrier(2)
            outcomes.append(sorted(pool.map(send, [barrier] * 2, pair)))

    # Then each time one was sent and the other refused as its repeat, on PostgreSQL as
    # on SQLite (whose writers take turns)
    assert outcomes == [["not_duplicate", "sent"]] * 3
