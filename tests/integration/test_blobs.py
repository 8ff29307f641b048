"""File bytes are stored once, however many transactions store them at the same time."""

from __future__ import annotations

import hashlib
import threading

from congvan.storage.database import make_engine
from congvan.storage.unit_of_work import UnitOfWork


def test_two_transactions_storing_the_same_new_bytes_at_once_both_commit(db_url: str) -> None:
    engine = make_engine(db_url)
    data = b"%PDF-1.4 the same letter, uploaded twice at once"
    sha256 = hashlib.sha256(data).hexdigest()
    errors: list[BaseException] = []
    try:
        with UnitOfWork(engine) as first:
            # The first has stored them, not yet committed, when the second stores them too
            first.documents.put_blob(sha256, data)

            def second() -> None:
                try:
                    with UnitOfWork(engine) as uow:
                        uow.documents.put_blob(sha256, data)
                        uow.commit()
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    errors.append(exc)

            racing = threading.Thread(target=second)
            racing.start()
            racing.join(timeout=0.5)  # it waits on the first (the row, or SQLite's lock)
            first.commit()
        racing.join(timeout=30)

        assert not racing.is_alive() and errors == []
        with UnitOfWork(engine, readonly=True) as uow:
            assert uow.documents.blob(sha256) == data
            count = uow.conn.exec_driver_sql("SELECT count(*) FROM blobs").scalar_one()
            assert count == 1
    finally:
        engine.dispose()
