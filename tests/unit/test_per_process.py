"""One object per process: made once however many threads ask, made anew after a fork."""

from __future__ import annotations

import os
import threading

from congvan.actions.processes import PerProcess


def test_made_once_for_many_threads_at_once() -> None:
    made: list[object] = []
    started = threading.Barrier(8)

    def make() -> object:
        made.append(object())
        return made[-1]

    one = PerProcess(make)
    got: list[object] = []

    def ask() -> None:
        started.wait()
        got.append(one.get())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1
    assert all(g is made[0] for g in got) and len(got) == 8


def test_a_forked_child_makes_its_own() -> None:
    one = PerProcess(lambda: [os.getpid()])
    assert one.get() == [os.getpid()]
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its own object, holding its own pid
        try:
            os.write(write, b"ok" if one.get() == [os.getpid()] else b"no")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 2)
    os.close(read)
    os.waitpid(child, 0)
    assert answer == b"ok"
    assert one.get() == [os.getpid()]  # the parent's own, unchanged
