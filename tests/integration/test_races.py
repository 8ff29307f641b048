"""Changes judged on what they read, made by several callers at the same moment: each
comes out as if they had come one after another (on PostgreSQL too, whose transactions
read what was committed when each statement began)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from congvan.actions.jobs import RetryLater
from congvan.actions.signing import keystore, pki
from congvan.states.errors import CongvanError
from congvan.storage.unit_of_work import UnitOfWork
from congvan.workflow import directory, peers
from congvan.workflow import notifications as managing
from congvan.workflow.bootstrap import Runtime
from tests.conftest import MakeRuntime
from tests.factories import add_agency, create_document, peer_certificate

A = "000.00.00.H57"


def at_once(runtime: Runtime, changes: list[Callable[[UnitOfWork], object]]) -> Counter[str]:
    """Run each change in a transaction of its own, all released at the same moment; how
    many committed (``done``) and how many were refused (by error code)."""
    barrier = threading.Barrier(len(changes))
    outcomes: Counter[str] = Counter()

    def run(change: Callable[[UnitOfWork], object]) -> None:
        barrier.wait()
        try:
            with runtime.uow() as uow:
                change(uow)
                uow.commit()
            outcomes["done"] += 1
        except CongvanError as exc:
            outcomes[exc.code] += 1

    threads = [threading.Thread(target=run, args=(c,)) for c in changes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_one_mailbox_added_at_once_written_two_ways_is_one_route(
    make_runtime: MakeRuntime,
) -> None:
    runtime = make_runtime()
    add_agency(runtime, A, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND")

    def adding(target: str) -> Callable[[UnitOfWork], object]:
        return lambda uow: managing.add_route(
            uow,
            A,
            kind="*",
            channel="email",
            target=target,
            secret=None,
            by="op",
            now=runtime.clock(),
        )

    targets = ["vanthu@hue.gov.vn", "VANTHU@hue.gov.vn"] * 3
    assert {"done": 1, "already_exists": 5} == at_once(runtime, [adding(t) for t in targets])
    with runtime.uow(readonly=True) as uow:
        assert 1 == len(uow.notifications.routes(A))


def test_a_route_removed_by_several_at_once_is_removed_by_one(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    add_agency(runtime, A, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND")
    with runtime.uow() as uow:
        route = managing.add_route(
            uow,
            A,
            kind="*",
            channel="email",
            target="vanthu@hue.gov.vn",
            secret=None,
            by="op",
            now=runtime.clock(),
        )
        uow.commit()

    # When one removal has deleted it, not yet committed, as another reads it and waits
    second: list[str] = []

    def removing_too() -> None:
        try:
            with runtime.uow() as uow:
                managing.remove_route(uow, route.id, A, runtime.clock())
                uow.commit()
            second.append("done")
        except CongvanError as exc:
            second.append(exc.code)

    with runtime.uow() as uow:
        managing.remove_route(uow, route.id, A, runtime.clock())
        other = threading.Thread(target=removing_too)
        other.start()
        time.sleep(0.3)  # (on PostgreSQL it has read the route and waits on its row)
        uow.commit()
    other.join()

    # Then the second is told there is no such route: only one removed it
    assert ["not_found"] == second


def test_roles_given_to_one_user_at_once_are_all_kept(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    add_agency(runtime, A, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND")
    roles = ["clerk", "reviewer", "signer", "supervisor"]

    def granting(role: str) -> Callable[[UnitOfWork], object]:
        return lambda uow: directory.ensure_user(uow, A, "nguyen.van.a", [role], runtime.clock())

    # A user made at once by four (each with a role), then given each role again at once
    for _ in range(2):
        assert {"done": 4} == at_once(runtime, [granting(r) for r in roles])
        with runtime.uow(readonly=True) as uow:
            user = uow.agencies.user(A, "nguyen.van.a")
        assert user is not None and sorted(roles) == sorted(user.roles.split(","))


def test_a_change_of_number_series_waits_for_a_verdict_on_a_number(
    make_runtime: MakeRuntime,
) -> None:
    # Given a review verdict on one of A's numbers under way (it holds the agency's numbers)
    runtime = make_runtime()
    add_agency(runtime, A, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND")
    order: list[str] = []

    def changing() -> None:
        with runtime.uow() as uow:
            directory.set_numbering(uow, A, "symbol", runtime.clock())
            uow.commit()
        order.append("series changed")

    with runtime.uow() as uow:
        uow.duplicates.hold_issuing(A)
        other = threading.Thread(target=changing)
        other.start()
        time.sleep(0.3)
        order.append("verdict kept")
        uow.commit()
    other.join()

    # Then the change of series is judged after it, on what it wrote
    assert ["verdict kept", "series changed"] == order


def test_an_agency_added_by_several_at_once_is_added_once(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()

    def adding(uow: UnitOfWork) -> object:
        return directory.add_agency(uow, A, "Ủy ban nhân dân tỉnh", "UBND", runtime.clock())

    assert {"done": 1, "already_exists": 3} == at_once(runtime, [adding] * 4)


def peer_entry(runtime: Runtime, agency_id: str = A) -> Callable[[UnitOfWork], object]:
    certificate = peer_certificate(runtime, agency_id)
    return lambda uow: peers.add_peer(
        uow,
        agency_id,
        name="Ủy ban nhân dân tỉnh",
        abbreviation="UBND",
        inbox_url="https://congvan.hue.gov.vn/v1/inbox",
        certificates=certificate,
        trust=runtime.trust,
        now=runtime.clock(),
    )


def test_a_new_peer_added_by_several_at_once_is_one_agency_and_one_entry(
    make_runtime: MakeRuntime,
) -> None:
    runtime = make_runtime()

    # The first adds the agency and its entry, the others find them and update the entry
    assert {"done": 4} == at_once(runtime, [peer_entry(runtime)] * 4)
    with runtime.uow(readonly=True) as uow:
        assert [A] == [p.agency_id for p in uow.peers.list()]
        assert [A] == [a.id for a in uow.agencies.agencies()]


def test_an_agency_given_a_peer_entry_and_a_user_at_once_is_served_in_one_place(
    make_runtime: MakeRuntime,
) -> None:
    runtime = make_runtime()
    for n in range(1, 6):
        # Given an agency with neither users nor a peer entry
        agency_id = f"000.00.00.H{n:02}"
        add_agency(runtime, agency_id, "Ủy ban nhân dân tỉnh", "UBND")

        def user(uow: UnitOfWork, agency_id: str = agency_id) -> object:
            return directory.ensure_user(uow, agency_id, "nguyen.van.a", ["clerk"], runtime.clock())

        # When one gives it a peer entry (served elsewhere) and another a user (served here)
        outcomes = at_once(runtime, [peer_entry(runtime, agency_id), user])

        # Then one is kept, the other refused
        assert {"done": 1, "invalid_input": 1} == outcomes
        with runtime.uow(readonly=True) as uow:
            assert uow.agencies.has_users(agency_id) != (uow.peers.get(agency_id) is not None)


PASSPHRASE = "passphrase-123456"


def test_our_certification_authority_made_by_several_at_once_is_one(
    make_runtime: MakeRuntime,
) -> None:
    runtime = make_runtime()

    def making(uow: UnitOfWork) -> object:
        return keystore.init_ca(
            uow, "CA", "UBND", passphrase=PASSPHRASE, now=runtime.clock(), store=runtime.trust
        )

    assert {"done": 1, "already_exists": 3} == at_once(runtime, [making] * 4)
    with runtime.uow(readonly=True) as uow:
        assert 1 == len([r for r in uow.signatures.roots() if r.key_pem])

    # and its CRLs, published by several at once, are numbered one after another
    def publishing(uow: UnitOfWork) -> object:
        return keystore.publish_crl(uow, passphrase=PASSPHRASE, now=runtime.clock())

    assert {"done": 4} == at_once(runtime, [publishing] * 4)


def test_a_root_imported_or_trusted_by_several_at_once_is_kept_once(
    make_runtime: MakeRuntime,
) -> None:
    runtime = make_runtime()
    now = runtime.clock()
    first, second = (
        pki.create_ca(name, "UBND", passphrase=PASSPHRASE, valid_from=now, valid_days=365).cert_pem
        for name in ("CA 1", "CA 2")
    )

    def importing(uow: UnitOfWork) -> object:
        return keystore.import_certificate(uow, first, kind="root", now=now)

    def trusting(uow: UnitOfWork) -> object:
        return keystore.trust(uow, runtime.trust, second, now=now)

    # An import is refused once it is kept; a trust (pinning what is kept) is done again
    assert {"done": 1, "already_exists": 3} == at_once(runtime, [importing] * 4)
    assert {"done": 4} == at_once(runtime, [trusting] * 4)


def test_anchors_made_by_several_at_once_chain_one_after_another(
    make_runtime: MakeRuntime,
) -> None:
    runtime = make_runtime(key_passphrase=PASSPHRASE)
    add_agency(runtime, A, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND")
    with runtime.uow() as uow:
        keystore.init_ca(
            uow, "CA", "UBND", passphrase=PASSPHRASE, now=runtime.clock(), store=runtime.trust
        )
        keystore.issue_agency(
            uow, A, passphrase=PASSPHRASE, crl_url="http://x/crl", now=runtime.clock()
        )
        uow.commit()
    create_document(runtime)  # of A: a chain head to anchor
    outcomes: Counter[str] = Counter()
    barrier = threading.Barrier(3)

    def anchoring() -> None:
        barrier.wait()
        try:
            runtime.anchoring.anchor(runtime.uow, runtime.clock())
            outcomes["done"] += 1
        except RetryLater:
            outcomes["retry_later"] += 1

    threads = [threading.Thread(target=anchoring) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # One anchors; the others are told to run again (their bodies chain to an old head)
    assert 3 == sum(outcomes.values()) and outcomes["done"] >= 1
    with runtime.uow(readonly=True) as uow:
        latest = uow.anchors.latest(A)
    assert latest is not None and latest.seq >= 1
