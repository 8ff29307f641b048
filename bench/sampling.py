"""Where the CPU of a timed section goes: py-spy attached to processes of ours, summarised.

``Sampler(pids)`` starts one ``py-spy record --gil`` per process (only the thread holding
the GIL is sampled, so a sample is CPU spent in Python or in C called from it, never a
thread waiting) and ``stop()`` ends them and reads their stacks. ``top`` prints the
functions by cumulative share of the samples (the share of the CPU spent in that function
and what it called), and by own share.

py-spy is a separate program (``pip install py-spy``) that needs ptrace rights over the
processes (root, or ``kernel.yama.ptrace_scope`` 0); without it, ``available()`` is false
and the bench says so.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

RATE = 200  # samples per second per process


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def available() -> bool:
    return py_spy() is not None


@dataclass
class Stacks:
    """Collapsed stacks (outermost frame first) and how many samples each got."""

    counts: Counter[tuple[str, ...]] = field(default_factory=Counter)

    def add_file(self, path: Path) -> None:
        line_number = re.compile(r":\d+\)$")
        for line in path.read_text(errors="replace").splitlines():
            stack, _, n = line.rpartition(" ")
            if not stack or not n.isdigit():
                continue
            frames = tuple(line_number.sub(")", f) for f in stack.split(";") if f)
            self.counts[frames] += int(n)

    def top(self, count: int = 25) -> list[str]:
        """The functions by cumulative then by own share of the samples, as lines."""
        total = sum(self.counts.values())
        if not total:
            return ["    no samples"]
        cumulative: Counter[str] = Counter()
        own: Counter[str] = Counter()
        for frames, n in self.counts.items():
            own[frames[-1]] += n
            for frame in set(frames):
                cumulative[frame] += n
        lines = [f"    {total} samples; cumulative (the function and what it called):"]
        lines += [f"    {n / total:6.1%}  {f}" for f, n in cumulative.most_common(count)]
        lines += ["    own (in the function itself):"]
        lines += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(count)]
        return lines


class Sampler:
    """py-spy recording each of ``pids`` until ``stop``."""

    def __init__(self, pids: list[int]) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy is not installed: pip install py-spy")
        self.folder = Path(tempfile.mkdtemp(prefix="congvan-bench-spy-"))
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        for pid in pids:
            out = self.folder / f"{pid}.txt"
            command = [binary, "record", "--pid", str(pid), "--gil", "--nonblocking"]
            command += ["-r", str(RATE), "-f", "raw", "-o", str(out)]
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.procs.append((proc, out))

    def stop(self) -> list[Stacks]:
        """End the recordings; each process's stacks, in the order of ``pids``."""
        found = []
        for proc, _out in self.procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        for proc, out in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            stacks = Stacks()
            if out.exists():
                stacks.add_file(out)
            found.append(stacks)
        if keep := os.environ.get("CONGVAN_BENCH_SPY_KEEP"):
            shutil.copytree(self.folder, keep, dirs_exist_ok=True)
        shutil.rmtree(self.folder, ignore_errors=True)
        return found
