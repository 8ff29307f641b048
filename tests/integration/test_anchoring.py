"""Audit anchors: signed heads catch a chain rewritten consistently, which hashes alone miss.

The attacker here can write SQL but does not hold the key passphrase: they rewrite an
entry, recompute every hash after it and the document's head, so the hash chain verifies
again. The agency's signed anchor still names the old hash, and ``verify_anchors`` says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import rfc8785
from sqlalchemy import select, text

from congvan.actions.anchoring import AUDIT_ANCHOR, JOB, AnchorDraft, verify_anchors
from congvan.actions.jobs import RetryLater, enqueue, new_job
from congvan.actions.signing import keystore
from congvan.states.errors import Conflict
from congvan.storage.audit import entry_hash
from congvan.storage.audit_checks import verify_chains
from congvan.storage.clock import FrozenClock, as_utc
from congvan.storage.tables import AuditEntry
from congvan.workflow.bootstrap import Runtime
from tests.conftest import MakeRuntime
from tests.factories import AGENCY_ID, actor, add_agency, create_document

PASS = "anchor test passphrase"
OTHER = "000.00.01.H57"


@pytest.fixture
def keyed(make_runtime: MakeRuntime) -> Iterator[Runtime]:
    """congvan with a CA and an organisational certificate for the sample agency."""
    runtime = make_runtime(key_passphrase=PASS)
    add_agency(runtime)
    with runtime.uow() as uow:
        keystore.init_ca(
            uow, "Anchor CA", "UBND tỉnh", passphrase=PASS, now=runtime.clock(), store=runtime.trust
        )
        keystore.issue_agency(
            uow, AGENCY_ID, passphrase=PASS, crl_url="http://x/crl", now=runtime.clock()
        )
        uow.commit()
    yield runtime


def anchor(runtime: Runtime) -> dict[str, int]:
    return runtime.anchoring.anchor(runtime.uow, runtime.clock())


def problems(runtime: Runtime, agency: str = AGENCY_ID) -> list[Any]:
    with runtime.uow(readonly=True) as uow:
        return [p for _seq, p in verify_anchors(uow, runtime.trust, agency) if p is not None]


def edit(runtime: Runtime, doc_id: str, place: str) -> None:
    runtime.engine.fire(doc_id, "edit", actor("clerk"), data={"fields": {"place": place}})


def anchored_twice(runtime: Runtime, clock: FrozenClock) -> str:
    """A document anchored, then edited and anchored again an hour later: its id."""
    doc_id = create_document(runtime)
    anchor(runtime)
    edit(runtime, doc_id, "Huế")
    clock.advance(hours=1)
    anchor(runtime)
    return doc_id


def rewrite_chain(runtime: Runtime, doc_id: str, version: int, actor_name: str) -> None:
    """Change one entry's actor and recompute every hash after it, and the head: as an
    attacker with SQL access but no key would."""
    with runtime.uow() as uow:
        conn = uow.conn
        entries = AuditEntry.__table__  # type: ignore[attr-defined]
        rows = (
            conn.execute(
                select(entries).where(entries.c.document_id == doc_id).order_by(entries.c.version)
            )
            .mappings()
            .all()
        )
        prev = rows[0]["prev_hash"]
        for row in rows:
            who = actor_name if row["version"] == version else row["actor"]
            new_hash = entry_hash(
                prev_hash=prev,
                document_id=doc_id,
                version=row["version"],
                actor=who,
                event=row["event"],
                from_state=row["from_state"],
                to_state=row["to_state"],
                at=row["at"],
                payload_digest=row["payload_digest"],
            )
            conn.execute(
                text(
                    "UPDATE audit_entries SET actor = :a, prev_hash = :p, hash = :h WHERE id = :i"
                ),
                {"a": who, "p": prev, "h": new_hash, "i": row["id"]},
            )
            prev = new_hash
        conn.execute(
            text("UPDATE documents SET audit_head = :h WHERE id = :d"), {"h": prev, "d": doc_id}
        )
        uow.commit()


def test_an_anchor_signs_the_heads_and_verifies(keyed: Runtime) -> None:
    # Given two documents with some history
    first = create_document(keyed)
    second = create_document(keyed)
    edit(keyed, first, "Huế")

    # When the agency anchors
    assert anchor(keyed) == {AGENCY_ID: 2}

    # Then one anchor lists both heads, signed, and everything verifies
    with keyed.uow(readonly=True) as uow:
        (row,) = list(uow.anchors.of_agency(AGENCY_ID))
        heads = {(d, v): h for d, v, h in json.loads(row.body)["heads"]}
        assert heads == {
            (first, 2): uow.anchors.entry_hash(first, 2),
            (second, 1): uow.anchors.entry_hash(second, 1),
        }
    assert problems(keyed) == []


def test_an_anchor_body_is_the_canonical_json_of_its_members(
    keyed: Runtime, clock: FrozenClock
) -> None:
    # Given an anchor, then a document edited and anchored again an hour later
    doc_id = anchored_twice(keyed, clock)

    # Then the second body is RFC 8785 JSON of exactly these members, chained to the first
    with keyed.uow(readonly=True) as uow:
        first, second = uow.anchors.of_agency(AGENCY_ID)
        head = uow.anchors.entry_hash(doc_id, 2)
    expected = rfc8785.dumps(
        {
            "format": "congvan-audit-anchor/1",
            "agency_id": AGENCY_ID,
            "seq": 2,
            "at": as_utc(keyed.clock()).isoformat(),
            "previous": hashlib.sha256(first.body).hexdigest(),
            "heads": [[doc_id, 2, head]],
        }
    )
    assert expected == bytes(second.body)
    assert (hashlib.sha256(expected).hexdigest(), 1) == (second.body_sha256, second.heads)


def test_only_changed_heads_are_anchored_again(keyed: Runtime, clock: FrozenClock) -> None:
    first = create_document(keyed)
    second = create_document(keyed)
    assert anchor(keyed) == {AGENCY_ID: 2}

    # Nothing changed: no new anchor
    clock.advance(hours=1)
    assert anchor(keyed) == {AGENCY_ID: 0}

    # One document changed: the next anchor lists it alone
    edit(keyed, second, "Huế")
    clock.advance(hours=1)
    assert anchor(keyed) == {AGENCY_ID: 1}
    with keyed.uow(readonly=True) as uow:
        last = uow.anchors.latest(AGENCY_ID)
        assert last is not None and last.seq == 2
        assert [h[0] for h in json.loads(last.body)["heads"]] == [second]
    assert first != second
    assert problems(keyed) == []


def test_a_chain_rewritten_with_fresh_hashes_passes_the_chain_check_but_not_the_anchor(
    keyed: Runtime,
) -> None:
    # Given a document whose head was anchored
    doc_id = create_document(keyed)
    edit(keyed, doc_id, "Huế")
    anchor(keyed)

    # When someone with SQL access rewrites who made the first entry, hashes and all
    rewrite_chain(keyed, doc_id, 1, "someone-else@000.00.00.H57")

    # Then the hash chain alone verifies again...
    with keyed.uow(readonly=True) as uow:
        assert dict(verify_chains(uow.conn, doc_id)) == {doc_id: None}
    # ...but the anchor names the document and version whose entry was rewritten
    (found,) = problems(keyed)
    assert (found.problem, found.document_id, found.version) == ("head", doc_id, 2)
    assert found.detail == "the entry was rewritten"


def test_a_changed_anchor_body_fails_its_signature(keyed: Runtime) -> None:
    create_document(keyed)
    anchor(keyed)
    with keyed.uow() as uow:
        body = uow.conn.execute(text("SELECT body FROM audit_anchors")).scalar_one()
        forged = bytes(body).replace(b'"seq":1', b'"seq":1 ')
        uow.conn.execute(text("UPDATE audit_anchors SET body = :b"), {"b": forged})
        uow.commit()

    (found,) = problems(keyed)
    assert found.problem == "signature"
    assert found.detail.startswith("manifest_mismatch")


def test_a_removed_anchor_breaks_the_anchor_chain(keyed: Runtime, clock: FrozenClock) -> None:
    doc_id = create_document(keyed)
    for place in ("Huế", "Đà Nẵng", "Hà Nội"):
        anchor(keyed)
        edit(keyed, doc_id, place)
        clock.advance(hours=1)
    anchor(keyed)
    with keyed.uow() as uow:
        uow.conn.execute(text("DELETE FROM audit_anchors WHERE seq = 2"))
        uow.commit()

    (found,) = problems(keyed)
    assert (found.seq, found.problem) == (3, "sequence")


def test_an_anchor_replaced_by_another_signed_one_breaks_the_link(
    keyed: Runtime, clock: FrozenClock
) -> None:
    # Given two anchors; the first is deleted and a new first one made over other heads
    # (as someone holding the key but rewriting history would): the second no longer
    # follows it
    anchored_twice(keyed, clock)
    with keyed.uow() as uow:
        uow.conn.execute(text("DELETE FROM audit_anchors WHERE seq = 1"))
        uow.commit()
    with keyed.uow() as uow:
        second = uow.anchors.latest(AGENCY_ID)
        assert second is not None
        uow.conn.execute(text("DELETE FROM audit_anchors WHERE seq = 2"))
        uow.commit()
    keyed.anchoring.anchor(keyed.uow, keyed.clock(), AGENCY_ID)  # a new seq 1
    with keyed.uow() as uow:
        uow.anchors.add(dataclasses.replace(second, id="replayed-second"))
        uow.commit()

    assert [(p.seq, p.problem) for p in problems(keyed)] == [(2, "previous")]


def test_agencies_without_a_key_are_skipped_and_their_anchors_isolated(keyed: Runtime) -> None:
    other = actor("clerk", agency=OTHER)
    add_agency(keyed, OTHER, "Sở Nội vụ", "SNV")
    theirs = create_document(keyed, by=other)
    ours = create_document(keyed)

    assert anchor(keyed) == {AGENCY_ID: 1}
    with keyed.uow(readonly=True) as uow:
        assert [] == list(uow.anchors.of_agency(OTHER))
        (only,) = list(uow.anchors.of_agency(AGENCY_ID))
    assert [ours] == [h[0] for h in json.loads(only.body)["heads"]]
    assert theirs != ours


def test_the_timer_queues_the_job_and_sets_exactly_one_next_timer(
    keyed: Runtime, clock: FrozenClock
) -> None:
    # Given the anchor timer set (as the scheduler's start does), twice
    create_document(keyed)
    with keyed.uow() as uow:
        keyed.anchoring.ensure_timer(uow, clock())
        keyed.anchoring.ensure_timer(uow, clock())
        uow.commit()
    with keyed.uow(readonly=True) as uow:
        assert len(uow.timers.of_kind(AUDIT_ANCHOR)) == 1

    # When it falls due and the scheduler fires it, and the job runs
    clock.advance(minutes=61)
    keyed.scheduler.run_due()
    with keyed.uow(readonly=True) as uow:
        (timer,) = uow.timers.of_kind(AUDIT_ANCHOR)
        jobs = uow.conn.execute(text("SELECT id FROM outbox WHERE action = :a"), {"a": JOB}).all()
    assert timer.due_at == clock() + keyed.anchoring.every
    (job_id,) = [j[0] for j in jobs]
    with keyed.uow(readonly=True) as uow:
        deadlines = [t for t in uow.timers.of_kind("job_deadline") if t.ref_id == job_id]
    assert [clock() + keyed.anchoring.job_deadline] == [t.due_at for t in deadlines]
    assert keyed.runner.run(job_id) == "done"

    # Then the agency's heads are anchored
    with keyed.uow(readonly=True) as uow:
        assert uow.anchors.latest(AGENCY_ID) is not None
    assert problems(keyed) == []


def test_the_job_signs_with_no_transaction_open(
    keyed: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a changed head and the anchor job queued
    create_document(keyed)
    held: list[int] = []
    sign = keyed.anchoring.sign

    def watched(drafts: list[AnchorDraft]) -> list[tuple[bytes, ...]]:
        held.append(keyed.db.pool.checkedout())
        return sign(drafts)

    monkeypatch.setattr(keyed.anchoring, "sign", watched)
    job = new_job(JOB, clock(), agency_id=None)
    with keyed.uow() as uow:
        enqueue(uow, [job], clock() + keyed.anchoring.job_deadline)
        uow.commit()

    # When it runs
    assert keyed.runner.run(str(job["id"])) == "done"

    # Then it signed once, holding no connection of the pool, and the anchor verifies
    assert [0] == held
    assert problems(keyed) == []


def test_signed_anchors_are_kept_only_after_the_anchor_they_follow(keyed: Runtime) -> None:
    # Given the agency's next anchor read in one transaction and signed after it
    create_document(keyed)
    with keyed.uow(readonly=True) as uow:
        drafts = keyed.anchoring.drafts(uow, keyed.clock())
    signed = keyed.anchoring.sign(drafts)

    # When another run anchors the agency before it is kept
    assert anchor(keyed) == {AGENCY_ID: 1}

    # Then keeping it is refused and writes nothing: the agency's anchors still verify
    with keyed.uow() as uow, pytest.raises(RetryLater, match="anchored meanwhile"):
        keyed.anchoring.keep(uow, drafts, signed, keyed.clock())
    with keyed.uow(readonly=True) as uow:
        assert [1] == [a.seq for a in uow.anchors.of_agency(AGENCY_ID)]
    assert problems(keyed) == []


def test_without_the_passphrase_anchoring_refuses_naming_the_setting(
    make_runtime: MakeRuntime, keyed: Runtime
) -> None:
    # A runtime configured without the passphrase cannot unlock the agency key
    bare = make_runtime()
    create_document(bare)
    with pytest.raises(Exception, match="CONGVAN_KEY_PASSPHRASE"):
        bare.anchoring.anchor(bare.uow, bare.clock())


def test_many_heads_make_several_anchors_in_a_row(
    keyed: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("congvan.actions.anchoring.MAX_HEADS", 2)
    for _ in range(5):
        create_document(keyed)

    assert anchor(keyed) == {AGENCY_ID: 5}

    with keyed.uow(readonly=True) as uow:
        sizes = [a.heads for a in uow.anchors.of_agency(AGENCY_ID)]
    assert [2, 2, 1] == sizes
    assert problems(keyed) == []


def test_checking_one_document_looks_only_at_its_heads(keyed: Runtime) -> None:
    # Given two anchored documents, one of them rewritten with fresh hashes
    rewritten = create_document(keyed)
    untouched = create_document(keyed)
    anchor(keyed)
    rewrite_chain(keyed, rewritten, 1, "someone-else@000.00.00.H57")

    # Then checking the untouched one finds nothing; the rewritten one is named
    with keyed.uow(readonly=True) as uow:
        alone = [p for _s, p in verify_anchors(uow, keyed.trust, AGENCY_ID, untouched) if p]
        named = [p for _s, p in verify_anchors(uow, keyed.trust, AGENCY_ID, rewritten) if p]
    assert [] == alone
    assert [(rewritten, 1)] == [(p.document_id, p.version) for p in named]


def test_an_anchored_entry_deleted_is_named_and_hashes_are_read_in_batches(
    keyed: Runtime,
) -> None:
    docs = [create_document(keyed) for _ in range(5)]
    anchor(keyed)
    with keyed.uow(readonly=True) as uow:
        wanted = [(d, 1) for d in docs] + [("no-such-document", 1)]
        assert {(d, 1) for d in docs} == set(uow.anchors.entry_hashes(wanted, batch=2))
    with keyed.uow() as uow:
        uow.conn.execute(text("DELETE FROM audit_entries WHERE document_id = :d"), {"d": docs[3]})
        uow.commit()

    (found,) = problems(keyed)
    assert (found.problem, found.document_id, found.detail) == (
        "head",
        docs[3],
        "the entry is gone",
    )


@pytest.mark.parametrize("db_kind", ["sqlite"])  # PostgreSQL checks each value's type
@pytest.mark.parametrize(
    ("change", "column"),
    [
        ("at = 'garbage'", "at"),
        ("at = 12345", "at"),
        ("payload = x'fffe00'", "payload"),
        ("actor = x'41'", "actor"),  # a number SQLite would keep as text in a text column
    ],
)
def test_an_entry_holding_what_its_column_cannot_is_altered_and_the_rest_still_checked(
    keyed: Runtime, change: str, column: str
) -> None:
    # Given two documents, one of whose second entry SQL made something its column cannot
    # hold (SQLite keeps whatever it is given)
    doc_id, other = create_document(keyed), create_document(keyed)
    edit(keyed, doc_id, "Huế")
    edit(keyed, doc_id, "Đà Nẵng")
    with keyed.uow() as uow:
        uow.conn.execute(
            text(f"UPDATE audit_entries SET {change} WHERE document_id = :d AND version = 2"),
            {"d": doc_id},
        )
        uow.commit()

    # Then the verifier says where, and checks every other chain
    with keyed.uow(readonly=True) as uow:
        found = dict(verify_chains(uow.conn))
        assert found[other] is None
        problem = found[doc_id]
        assert problem is not None
        assert (problem.problem, problem.version) == ("altered", 2)
        assert problem.detail == f"entry holds a value its column cannot: {column}"
        # and what needs the chain whole (an export) says so, in one clear error
        with pytest.raises(Conflict, match=r"audit entry 2 of document .* altered by SQL"):
            uow.audit.chain(doc_id)


@pytest.mark.parametrize("db_kind", ["sqlite"])
def test_an_entry_altered_before_the_one_of_the_wrong_kind_is_the_one_named(
    keyed: Runtime,
) -> None:
    doc_id = create_document(keyed)
    edit(keyed, doc_id, "Huế")
    edit(keyed, doc_id, "Đà Nẵng")
    with keyed.uow() as uow:
        uow.conn.execute(text("UPDATE audit_entries SET actor = 'x' WHERE version = 2"))
        uow.conn.execute(text("UPDATE audit_entries SET at = 'garbage' WHERE version = 3"))
        uow.commit()
    with keyed.uow(readonly=True) as uow:
        problem = dict(verify_chains(uow.conn, doc_id))[doc_id]
    assert problem is not None
    assert (problem.problem, problem.version) == ("altered", 2)


@pytest.mark.parametrize("db_kind", ["sqlite"])
@pytest.mark.parametrize(
    ("change", "column"), [("created_at = 'x'", "created_at"), ("heads = 'many'", "heads")]
)
def test_an_anchor_holding_what_its_column_cannot_is_altered_and_the_next_still_checked(
    keyed: Runtime, clock: FrozenClock, change: str, column: str
) -> None:
    anchored_twice(keyed, clock)
    with keyed.uow() as uow:
        uow.conn.execute(text(f"UPDATE audit_anchors SET {change} WHERE seq = 1"))
        uow.commit()

    found = problems(keyed)

    assert [(p.seq, p.problem) for p in found] == [(1, "altered")]
    assert found[0].detail == f"the anchor's row holds a value its column cannot: {column}"


def test_entries_whose_document_row_was_deleted_are_a_chain_with_no_head(
    keyed: Runtime,
) -> None:
    # Given two documents, one of whose rows SQL deleted, its entries left
    kept, gone = create_document(keyed), create_document(keyed)
    with keyed.uow() as uow:
        for table in ("recipients", "attachments", "check_results", "signatures", "documents"):
            column = "id" if table == "documents" else "document_id"
            uow.conn.execute(text(f"DELETE FROM {table} WHERE {column} = :d"), {"d": gone})
        uow.commit()

    # Then the verifier names it, as it does when asked about that document alone
    with keyed.uow(readonly=True) as uow:
        found = dict(verify_chains(uow.conn))
        alone = dict(verify_chains(uow.conn, gone))
    assert found[kept] is None
    assert found[gone] is not None and found[gone].problem == "headless"
    assert alone == {gone: found[gone]}
