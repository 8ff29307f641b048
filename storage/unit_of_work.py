"""One database transaction over every repository: leave without commit() and it rolls back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from sqlalchemy import Connection, Engine, RootTransaction

from .agencies import AgencyRepository
from .anchors import AnchorRepository
from .audit import AuditRepository
from .authorities import AuthorityRepository
from .checks import CheckRepository
from .database import begin_readonly
from .dispatches import DispatchRepository
from .documents import DocumentRepository
from .duplicates import DuplicateRepository
from .escalations import EscalationRepository
from .idempotency import IdempotencyRepository
from .notifications import NotificationRepository
from .outbox import OutboxRepository, Outlet
from .peers import PeerRepository
from .prepared import run_on_cursor, unobserved
from .received import ReceivedRepository
from .signatures import SignatureRepository
from .timers import TimerRepository
from .timestamps import TimestampRepository

# Savepoints nest by name (the innermost of a name is the one rolled back to or released).
_SAVEPOINT = "congvan_step"


class UnitOfWork:
    """``with uow:`` opens one transaction; ``uow.commit()`` ends it for good."""

    documents: DocumentRepository
    dispatches: DispatchRepository
    received: ReceivedRepository
    audit: AuditRepository
    outbox: OutboxRepository
    timers: TimerRepository
    idempotency: IdempotencyRepository
    agencies: AgencyRepository
    peers: PeerRepository
    checks: CheckRepository
    authorities: AuthorityRepository
    duplicates: DuplicateRepository
    escalations: EscalationRepository
    signatures: SignatureRepository
    timestamps: TimestampRepository
    notifications: NotificationRepository

    def __init__(
        self, engine: Engine, *, readonly: bool = False, outlet: Outlet | None = None
    ) -> None:
        self.engine = engine
        self.readonly = readonly
        # Told of the jobs this transaction wrote once it commits (the relay); without
        # one, they wait as pending for a relay to poll (a command-line process).
        self.outlet = outlet
        self.is_postgres = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._tx: RootTransaction | None = None
        self._unobserved: bool | None = None

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not open")
        return self._conn

    def __enter__(self) -> UnitOfWork:
        conn = self.engine.connect()
        self._conn = conn
        self._unobserved = None
        self._tx = begin_readonly(conn) if self.readonly else conn.begin()
        skip = self.is_postgres
        self.documents = DocumentRepository(conn)
        self.dispatches = DispatchRepository(conn, self.documents.holds)
        self.received = ReceivedRepository(conn)
        self.audit = AuditRepository(conn)
        hand_off = self.outlet is not None and not self.readonly and self.outlet.handing_off()
        self.outbox = OutboxRepository(conn, skip_locked=skip, hand_off=hand_off)
        self.timers = TimerRepository(conn, skip_locked=skip)
        self.idempotency = IdempotencyRepository(conn)
        self.agencies = AgencyRepository(conn)
        self.peers = PeerRepository(conn)
        self.checks = CheckRepository(conn)
        self.authorities = AuthorityRepository(conn)
        self.duplicates = DuplicateRepository(conn)
        self.escalations = EscalationRepository(conn)
        self.signatures = SignatureRepository(conn)
        self.anchors = AnchorRepository(conn)
        self.timestamps = TimestampRepository(conn)
        self.notifications = NotificationRepository(conn)
        return self

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Leave by an exception and only what was done inside is undone; the rest stays.

        The SAVEPOINT statements go straight to the driver's cursor when nobody observes
        the connection (see prepared.py): after a failed timer a scheduler tick takes one
        per timer, and ``begin_nested`` costs about half a millisecond of Python each, more
        than a timer's own work.
        """
        conn = self.conn
        jobs = self.outbox.so_far()
        if self._unobserved is None:  # asked once per transaction
            self._unobserved = unobserved(conn)
        if not self._unobserved:
            try:
                with conn.begin_nested():
                    yield
            except BaseException:
                self._forget(jobs)
                raise
            return

        cursor = conn.connection.cursor()

        def run(statement: str) -> None:
            run_on_cursor(conn, cursor, f"{statement} {_SAVEPOINT}")

        run("SAVEPOINT")
        try:
            yield
        except BaseException:
            run("ROLLBACK TO SAVEPOINT")
            run("RELEASE SAVEPOINT")
            self._forget(jobs)
            raise
        else:
            run("RELEASE SAVEPOINT")
        finally:
            cursor.close()

    def _forget(self, jobs: tuple[int, int, int]) -> None:
        """What the repositories kept of rows this transaction held: read it all again (a
        rollback to a savepoint undid writes and released the locks taken since); and
        the jobs written since ``jobs`` (as the outbox counted them then) are gone."""
        for chain in (self.documents, self.received, self.escalations):
            chain.forget()
        self.dispatches.forget()
        self.outbox.undo_since(jobs)

    def commit(self) -> None:
        """Commit; then the outlet takes the jobs written (never before: a job must not
        run on rows that may still roll back)."""
        if self._tx is None:
            raise RuntimeError("the unit of work is not open")
        self._tx.commit()
        outbox, outlet = self.outbox, self.outlet
        if outlet is None:
            return
        handed, outbox.handed = outbox.handed, []
        added, outbox.added = outbox.added, 0
        if handed:
            outlet.hand_off(handed)
        if added:
            outlet.kick()

    def rollback(self) -> None:
        if self._tx is not None and self._tx.is_active:
            self._tx.rollback()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.rollback()
        finally:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._tx = None
