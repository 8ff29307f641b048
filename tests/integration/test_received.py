"""Received documents: stored once per package, moved by the receiving agency's people."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text, update

from congvan.actions.context import SYSTEM
from congvan.states.errors import (
    DocumentReceivedBefore,
    Forbidden,
    InvalidInput,
    NotFound,
    OriginalUnknown,
    TransitionNotAllowed,
)
from congvan.storage.clock import FrozenClock
from congvan.storage.tables import ReceivedDocument
from congvan.workflow.bootstrap import Runtime
from tests.factories import (
    AGENCY_ID,
    OTHER_AGENCY_ID,
    SENDER_ID,
    actor,
    add_agency,
    arrival,
    job_done,
)

CLERK = actor("clerk")
SUPERVISOR = actor("supervisor")
OTHER_CLERK = actor("clerk", OTHER_AGENCY_ID)


@pytest.fixture
def receiving(make_runtime: Callable[..., Runtime]) -> Runtime:
    runtime = make_runtime(jobs={"send_status": job_done})
    add_agency(runtime, AGENCY_ID)
    add_agency(runtime, OTHER_AGENCY_ID, "UBND tỉnh Quảng Trị", "UBND")
    return runtime


def test_a_package_is_stored_once_and_its_first_receipt_answers_again(
    receiving: Runtime,
) -> None:
    # Given a package stored on arrival
    first, stored = receiving.engine.receive(arrival())
    assert stored and first.state == "received" and first.version == 1

    # When the same package (same sender, same message id) arrives again, with a new receipt
    again, stored_again = receiving.engine.receive(arrival(receipt=b"another"))

    # Then it finds the first document, whose receipt is the answer
    assert (again.id, stored_again) == (first.id, False)
    with receiving.uow(readonly=True) as uow:
        assert uow.received.evidence(first.id).receipt == b'{"status":"01"}'
        assert len(uow.received.page(AGENCY_ID).items) == 1
        assert [(first.id, None)] == list(uow.audit.verify(first.id))
        assert [1] == [e.version for e in uow.audit.entries(first.id, "receive")]


def test_two_deliveries_of_one_package_racing_store_it_once(receiving: Runtime) -> None:
    # Given four deliveries of one package released at once
    barrier = threading.Barrier(4)

    def deliver(_i: int) -> Any:
        barrier.wait(timeout=10)
        return receiving.engine.receive(arrival("raced"))

    with ThreadPoolExecutor(4) as pool:
        stored = list(pool.map(deliver, range(4)))

    # Then every one answers the same document, stored by exactly one of them
    assert len({doc.id for doc, _new in stored}) == 1
    assert sum(new for _doc, new in stored) == 1


LETTER = {"number": 61, "symbol": "UBND-TĐKT", "doc_type": "CV", "issued_on": "2026-11-30"}


def test_a_document_sent_again_under_another_message_id_is_refused_saying_which(
    receiving: Runtime,
) -> None:
    # Given letter 61 of 30 Nov stored from its package
    first, _ = receiving.engine.receive(
        arrival("msg-1", sender_document_id="doc-61", metadata=LETTER)
    )

    # When the same document comes in another package, or another document of the sender
    # with the same number, symbol and date (domain.md §8)
    with pytest.raises(DocumentReceivedBefore) as same_id:
        receiving.engine.receive(arrival("msg-2", sender_document_id="doc-61", metadata=LETTER))
    with pytest.raises(DocumentReceivedBefore) as same_number:
        receiving.engine.receive(arrival("msg-3", sender_document_id="doc-62", metadata=LETTER))

    # Then each is refused (409), naming the package that brought it first; nothing is kept
    assert (same_id.value.http_status, same_id.value.details) == (
        409,
        {"reason": "document_id", "message_id": "msg-1"},
    )
    assert same_number.value.details == {"reason": "number", "message_id": "msg-1"}
    assert "61/UBND-TĐKT of 2026-11-30" in same_number.value.message
    # But the same number of another date, symbol or sender's agency is another document
    for message_id, changes in (
        ("msg-4", {"issued_on": "2026-12-01"}),
        ("msg-5", {"symbol": "UBND-VP"}),
    ):
        receiving.engine.receive(
            arrival(message_id, sender_document_id=message_id, metadata={**LETTER, **changes})
        )
    with receiving.uow(readonly=True) as uow:
        assert len(uow.received.page(AGENCY_ID).items) == 3
        assert uow.received.get(first.id) is not None


def test_a_legal_normative_document_numbered_as_an_administrative_one_is_another(
    receiving: Runtime,
) -> None:
    # Given administrative decision 05/QĐ-UBND of a day stored (its manifest, as signed,
    # names no legal_normative)
    decision = {**LETTER, "number": 5, "symbol": "QĐ-UBND", "doc_type": "QĐ"}
    receiving.engine.receive(arrival("msg-1", sender_document_id="doc-1", metadata=decision))
    normative = b'{"format":"congvan-manifest/1","legal_normative":true}'

    # When legal normative decision 05/2026/QĐ-UBND of the same day comes (Decree 30 Art.
    # 15: a series of its own), then it is stored: it repeats nothing
    receiving.engine.receive(
        arrival(
            "msg-2",
            sender_document_id="doc-2",
            manifest=normative,
            metadata={**decision, "legal_normative": True},
        )
    )
    # But a second of either series under that number is refused, naming the first of it
    with pytest.raises(DocumentReceivedBefore) as again:
        receiving.engine.receive(
            arrival(
                "msg-3",
                sender_document_id="doc-3",
                manifest=normative,
                metadata={**decision, "legal_normative": True},
            )
        )
    assert again.value.details == {"reason": "number", "message_id": "msg-2"}
    with pytest.raises(DocumentReceivedBefore) as administrative:
        receiving.engine.receive(arrival("msg-4", sender_document_id="doc-4", metadata=decision))
    assert administrative.value.details == {"reason": "number", "message_id": "msg-1"}


def test_the_same_document_under_two_message_ids_racing_is_stored_once(
    receiving: Runtime,
) -> None:
    barrier = threading.Barrier(4)

    def deliver(i: int) -> Any:
        barrier.wait(timeout=10)
        try:
            return receiving.engine.receive(
                arrival(f"race-{i}", sender_document_id="doc-61", metadata=LETTER)
            )[1]
        except DocumentReceivedBefore:
            return "refused"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(deliver, range(4)))

    # Then one stored it and the others were refused as repeats (never a database error)
    assert sorted(map(str, outcomes)) == ["True", "refused", "refused", "refused"]


def test_one_number_under_several_document_ids_racing_is_stored_once(receiving: Runtime) -> None:
    # Given, five times over, six packages of one number, symbol and date under six
    # document ids (the same letter, or a sender reusing its number), released at once
    def deliver(barrier: threading.Barrier, letter: dict[str, Any], name: str) -> str:
        barrier.wait(timeout=10)
        try:
            return str(receiving.engine.receive(arrival(name, metadata=letter))[1])
        except DocumentReceivedBefore as refused:
            return str(refused.details["reason"])

    outcomes = []
    with ThreadPoolExecutor(6) as pool:
        for round_ in range(5):
            letter, barrier = {**LETTER, "number": 70 + round_}, threading.Barrier(6)
            names = [f"round-{round_}-{i}" for i in range(6)]
            outcomes.append(sorted(pool.map(deliver, [barrier] * 6, [letter] * 6, names)))

    # Then each time one was stored and the others refused as repeats of its number, on
    # PostgreSQL as on SQLite (whose writers take turns)
    assert [["True", "number", "number", "number", "number", "number"]] * 5 == outcomes
    with receiving.uow(readonly=True) as uow:
        assert 5 == len(uow.received.page(AGENCY_ID).items)


def test_registering_numbers_the_incoming_register_per_year(receiving: Runtime) -> None:
    # Given two documents arrived in 2026, and one in the first minutes of 2027 in Vietnam
    engine, clock = receiving.engine, receiving.clock
    assert isinstance(clock, FrozenClock)
    clock.now = datetime(2026, 12, 31, 10, 0, tzinfo=UTC)
    first = engine.receive(arrival("a"))[0]
    second = engine.receive(arrival("b"))[0]
    third = engine.receive(arrival("c"))[0]

    # When a clerk registers them, the last one at 00:30 on 1 January in Vietnam
    engine.fire_on("received", second.id, "register", CLERK)
    engine.fire_on("received", first.id, "register", CLERK)
    clock.now = datetime(2026, 12, 31, 17, 30, tzinfo=UTC)
    result = engine.fire_on("received", third.id, "register", CLERK)

    # Then each has the next number of its year's register, and a status job is queued
    with receiving.uow(readonly=True) as uow:
        numbers = {
            d.id: (d.register_year, d.register_number) for d in uow.received.page(AGENCY_ID).items
        }
    assert numbers == {second.id: (2026, 1), first.id: (2026, 2), third.id: (2027, 1)}
    assert (result.to_state, len(result.jobs)) == ("registered", 1)


def test_a_refusal_needs_a_reason_and_keeps_it(receiving: Runtime) -> None:
    doc = receiving.engine.receive(arrival())[0]
    with pytest.raises(InvalidInput, match="reason"):
        receiving.engine.fire_on("received", doc.id, "refuse", CLERK, data={"reason": " "})
    receiving.engine.fire_on(
        "received", doc.id, "refuse", CLERK, data={"reason": "Gửi nhầm cơ quan"}
    )
    with receiving.uow(readonly=True) as uow:
        refused = uow.received.get(doc.id)
    assert refused is not None and (refused.state, refused.reason) == (
        "refused",
        "Gửi nhầm cơ quan",
    )
    with pytest.raises(TransitionNotAllowed):
        receiving.engine.fire_on("received", doc.id, "register", CLERK)


def test_handling_goes_by_role_and_only_within_the_receiving_agency(receiving: Runtime) -> None:
    engine = receiving.engine
    doc = engine.receive(arrival())[0]
    with pytest.raises(NotFound):
        engine.fire_on("received", doc.id, "register", OTHER_CLERK)
    with pytest.raises(Forbidden):
        engine.fire_on("received", doc.id, "register", SUPERVISOR)
    engine.fire_on("received", doc.id, "register", CLERK)
    with pytest.raises(Forbidden):
        engine.fire_on("received", doc.id, "assign", CLERK)
    engine.fire_on("received", doc.id, "assign", SUPERVISOR)
    engine.fire_on("received", doc.id, "process", CLERK)
    done = engine.fire_on("received", doc.id, "complete", CLERK)
    assert (done.to_state, done.version) == ("completed", 5)
    with receiving.uow(readonly=True) as uow:
        assert [(doc.id, None)] == list(uow.audit.verify(doc.id))
        assert len(uow.received.page(OTHER_AGENCY_ID).items) == 0


def test_the_system_cannot_be_refused_by_role_but_the_machine_still_decides(
    receiving: Runtime,
) -> None:
    doc = receiving.engine.receive(arrival())[0]
    with pytest.raises(TransitionNotAllowed):
        receiving.engine.fire_on("received", doc.id, "complete", SYSTEM)


def test_a_replacement_naming_a_document_no_longer_in_force_is_not_kept(
    receiving: Runtime,
) -> None:
    engine = receiving.engine
    original = engine.receive(arrival("original"))[0]
    first = engine.receive(arrival("first-replacement", replaces_id=original.id))[0]
    assert engine_state(receiving, original.id) == "replaced"

    # A second replacement of the same, now replaced, document
    with pytest.raises(OriginalUnknown) as refused:
        engine.receive(arrival("second-replacement", replaces_id=original.id))

    assert refused.value.details["reason"] == "not_in_force"
    with receiving.uow(readonly=True) as uow:
        assert uow.received.find(AGENCY_ID, SENDER_ID, "second-replacement") is None
        assert uow.received.get(first.id) is not None
    assert engine_state(receiving, original.id) == "replaced"


def engine_state(runtime: Runtime, received_id: str) -> str:
    with runtime.uow(readonly=True) as uow:
        found = uow.received.get(received_id)
        assert found is not None
        return found.state


def test_a_received_documents_row_moved_by_sql_is_named_by_the_audit_check(
    receiving: Runtime,
) -> None:
    # Given a received document registered (03), then put back to "received" by SQL
    doc, _stored = receiving.engine.receive(arrival())
    receiving.engine.fire_on("received", doc.id, "register", CLERK)
    table = ReceivedDocument.__table__  # type: ignore[attr-defined]
    with receiving.uow() as uow:
        uow.conn.execute(update(table).where(table.c.id == doc.id).values(state="received"))
        uow.commit()

    # Then its chain is reported altered at its head: the trail never put it there
    with receiving.uow(readonly=True) as uow:
        [(chain, problem)] = list(uow.audit.verify(doc.id))
    assert problem is not None and (chain, problem.problem) == (doc.id, "altered")
    assert "its row says received at version 2, its trail ends at registered" in problem.detail


@pytest.mark.parametrize(
    ("values", "detail"),
    [
        ({"subject": "V/v giả mạo"}, "its subject says 'V/v giả mạo'"),
        ({"number": 1228}, "its number says 1228"),
        ({"urgency": 3}, "its urgency says 3"),
        ({"sender_id": "000.00.99.H57"}, "its sender_id says '000.00.99.H57'"),
        ({"corrections": '{"subject": "V/v khác"}'}, "its corrections says"),
        ({"manifest": b'{"format":"congvan-manifest/1"}'}, "its manifest is not the one"),
        ({"agency_id": OTHER_AGENCY_ID}, "its agency_id says"),
        ({"register_number": 7}, "its incoming register entry says"),
        ({"register_number": None, "register_year": None}, "its incoming register entry"),
        ({"reason": "Lý do giả"}, "its reason says 'Lý do giả'"),
    ],
    ids=[
        "subject",
        "number",
        "urgency",
        "sender",
        "corrections",
        "manifest",
        "agency",
        "register-number",
        "register-cleared",
        "reason",
    ],
)
def test_a_received_documents_metadata_changed_by_sql_is_named_by_the_audit_check(
    receiving: Runtime, values: dict[str, Any], detail: str
) -> None:
    # Given a received document registered, its chain verifying
    doc, _stored = receiving.engine.receive(arrival(metadata={**LETTER, "subject": "V/v họp"}))
    receiving.engine.fire_on("received", doc.id, "register", CLERK)
    with receiving.uow(readonly=True) as uow:
        assert [problem for _, problem in uow.audit.verify(doc.id)] == [None]

    # When SQL changes what its row says the sender sent
    table = ReceivedDocument.__table__  # type: ignore[attr-defined]
    with receiving.uow() as uow:
        uow.conn.execute(update(table).where(table.c.id == doc.id).values(**values))
        uow.commit()

    # Then its chain is altered at its head, naming what changed
    with receiving.uow(readonly=True) as uow:
        [(chain, problem)] = list(uow.audit.verify(doc.id))
    assert problem is not None and (chain, problem.problem) == (doc.id, "altered")
    assert detail in problem.detail, problem.detail


@pytest.mark.parametrize(
    ("sql", "detail"),
    [
        ("UPDATE blobs SET data = :other WHERE sha256 = :package", "is not the"),
        (
            "DELETE FROM blobs WHERE sha256 = :package",
            "its package (the files as they arrived) is gone",
        ),
    ],
    ids=["changed", "deleted"],
)
def test_a_received_package_changed_or_removed_by_sql_is_named_by_the_audit_check(
    receiving: Runtime, sql: str, detail: str
) -> None:
    # Given a received document, the package it arrived in stored with it
    doc, _stored = receiving.engine.receive(arrival())

    # When SQL changes or removes the package's bytes
    with receiving.uow() as uow:
        uow.conn.execute(text(sql), {"package": doc.package_sha256, "other": b"PK other"})
        uow.commit()

    # Then its chain is altered at its head: the files it holds are not those that came
    with receiving.uow(readonly=True) as uow:
        [(_chain, problem)] = list(uow.audit.verify(doc.id))
    assert problem is not None and problem.problem == "altered"
    assert detail in problem.detail, problem.detail


@pytest.mark.parametrize("db_kind", ["sqlite"])  # PostgreSQL keeps a bytea column's type
def test_text_written_where_a_received_manifest_belongs_is_named_not_a_traceback(
    receiving: Runtime,
) -> None:
    doc, _stored = receiving.engine.receive(arrival())
    with receiving.uow() as uow:
        sql = "UPDATE received_documents SET manifest = CAST(manifest AS TEXT) WHERE id = :id"
        uow.conn.execute(text(sql), {"id": doc.id})
        uow.commit()
    with receiving.uow(readonly=True) as uow:
        [(_chain, problem)] = list(uow.audit.verify(doc.id))
    assert problem is not None and "its manifest holds text" in problem.detail
