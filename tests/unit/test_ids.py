"""Identifiers sort by creation, even within one millisecond."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from congvan.storage.ids import new_id


def test_ids_are_uuid7_and_strictly_increasing() -> None:
    ids = [new_id() for _ in range(10_000)]

    assert sorted(ids) == ids
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[-1])
    assert (7, uuid.RFC_4122) == (parsed.version, parsed.variant)


def test_ids_made_by_many_threads_never_collide() -> None:
    with ThreadPoolExecutor(8) as pool:
        batches = list(pool.map(lambda _: [new_id() for _ in range(2_000)], range(8)))

    every = [i for batch in batches for i in batch]
    assert len(set(every)) == len(every)
    for batch in batches:
        assert sorted(batch) == batch
