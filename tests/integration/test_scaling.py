"""A letter's way -- send, delivery, arrival, registration, status -- and a check of its
anchors cost the same however many letters came before it: every statement finds its
rows by an index.

SQLite counts the steps of its virtual machine each statement takes (a progress handler
called at every step, the rows fetched included); a statement that reads a row per
earlier letter takes many times the steps after many times the letters. Counted, never
timed: the same on any machine. SQLite only: PostgreSQL plans by its statistics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from congvan.actions.anchoring import verify_anchors
from congvan.workflow.bootstrap import Runtime
from tests.databases import Databases
from tests.factories import FAKE_GUARDS, actor, sample_file
from tests.installations import A, B, Pair, one_installation

EARLY, LATE = 4, 64  # letters sent before each measured one


class Steps:
    """The most virtual-machine steps each statement took while ``counting``."""

    def __init__(self, engine: Engine) -> None:
        self.most: dict[str, int] = defaultdict(int)
        self.statement: str | None = None
        self.steps = 0
        self.on = False
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "checkout", self._checkout)

    def _checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.set_progress_handler(self._step, 1)

    def _step(self) -> int:
        self.steps += 1
        return 0  # go on

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        self._settle()
        self.statement = statement

    def _settle(self) -> None:
        if self.on and self.statement is not None:
            self.most[self.statement] = max(self.most[self.statement], self.steps)
        self.steps = 0

    @contextmanager
    def counting(self) -> Iterator[dict[str, int]]:
        self.most = defaultdict(int)
        self.statement, self.on = None, True
        try:
            yield self.most
        finally:
            self._settle()
            self.on = False


def letter(pair: Pair, make_document: Callable[..., str], n: int) -> None:
    """A's letter ``n`` to B, with its own number and main file: sent, delivered, received,
    listed for B's clerk, registered, and acknowledged by B's signed 03."""
    runtime = pair.sender
    pdf = b"%PDF-1.4\n% letter " + str(n).encode() + b"\n" + bytes(2048)
    doc = pair.signed(make_document, files=[sample_file(pdf, filename=f"{n}.pdf")], number=n)
    with runtime.uow(readonly=True) as uow:  # A's clerk's list of letters to send
        assert [d.id for d in uow.documents.page(A, states=["signed"], limit=3).items] == [doc]
    runtime.engine.fire(doc, "send", actor("clerk"))
    [job] = pair.jobs(doc)
    assert runtime.runner.run(job) == "done"
    dispatch, _attempts = pair.dispatch(doc)
    with runtime.uow(readonly=True) as uow:
        received = uow.received.find(B, A, dispatch.message_id)
        # B's clerk's lists, the first page: all, and the letters waiting to be registered
        assert received in uow.received.page(B, limit=3).items
        assert uow.received.page(B, states=["received"], limit=3).items == [received]
    assert received is not None
    runtime.engine.fire_on("received", received.id, "register", actor("clerk", B))
    [status_job] = pair.status_jobs(received.id)
    assert runtime.runner.run(status_job) == "done"


def test_a_letters_statements_take_as_many_steps_after_many_letters_as_after_few(
    boot: Any, databases: Databases, make_document: Callable[..., str]
) -> None:
    # Given one installation serving A and B, the send's repeat check real
    def make_runtime(**settings: Any) -> Runtime:
        return boot(databases.new("sqlite").url, **settings)

    guards = {k: v for k, v in FAKE_GUARDS.items() if k != "not_duplicate"}
    pair = one_installation(make_runtime, guards=guards)
    steps = Steps(pair.sender.db)
    numbers = iter(range(1, 10_000))

    # When a letter goes its way after a few letters, and again after many
    for _ in range(EARLY):
        letter(pair, make_document, next(numbers))
    with steps.counting() as early:
        letter(pair, make_document, next(numbers))
    for _ in range(LATE - EARLY - 1):
        letter(pair, make_document, next(numbers))
    with steps.counting() as late:
        letter(pair, make_document, next(numbers))

    # Then no statement took many more steps the second time
    assert early.keys() == late.keys()
    grown = {
        " ".join(sql.split())[-260:]: (early[sql], late[sql])
        for sql in early
        if late[sql] > 2 * early[sql] + 100
    }
    assert grown == {}, "\n".join(f"{v}: {k}" for k, v in grown.items())


def test_checking_an_anchor_takes_as_many_steps_however_many_chains_came_after(
    boot: Any, databases: Databases, make_document: Callable[..., str]
) -> None:
    # Given one installation, a few letters of A's and an anchor over their chains
    def make_runtime(**settings: Any) -> Runtime:
        return boot(databases.new("sqlite").url, **settings)

    runtime = one_installation(make_runtime).sender
    steps = Steps(runtime.db)
    for _ in range(EARLY):
        make_document(runtime)
    runtime.anchoring.anchor(runtime.uow, runtime.clock())

    def check() -> None:
        with runtime.uow(readonly=True) as uow:
            verdicts = list(verify_anchors(uow, runtime.trust, A))
        assert [problem for _seq, problem in verdicts] == [None]

    # When the anchor is checked with few chains kept, then with many more (after a first
    # check: the one that reads the CRL in force, kept from then on)
    check()
    with steps.counting() as early:
        check()
    for _ in range(LATE - EARLY):
        make_document(runtime)
    with steps.counting() as late:
        check()

    # Then no statement took many more steps the second time
    assert early.keys() == late.keys()
    grown = {sql: (early[sql], late[sql]) for sql in early if late[sql] > 2 * early[sql] + 100}
    assert grown == {}, grown
