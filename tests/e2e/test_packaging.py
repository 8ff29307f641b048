"""The distribution installs into a fresh environment and claims no generic import names."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_installs_into_a_fresh_virtual_environment(tmp_path: Path) -> None:
    # Given a new virtual environment that sees the dependencies of the running one (a
    # plain interpreter, a virtual environment or a system site alike) but not its
    # congvan: the running site directories are put on its path without their .pth files
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    site_dir = Path(
        run(
            python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
        ).strip()
    )
    running = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    (site_dir / "running_site.pth").write_text("\n".join(running) + "\n")

    # When README's setup step runs, and the project is installed (regular, not editable)
    assert "system packages:" in run("bash", ROOT / "tests" / "system-packages.sh", cwd=tmp_path)
    run(python, "-m", "pip", "install", "-q", "--no-deps", ROOT, cwd=tmp_path)

    # Then its console script runs from anywhere
    assert "demo" in run(env / "bin" / "congvan", "--help", cwd=tmp_path)
    # and the layers live under congvan., inside that environment
    where = run(python, "-c", "import congvan.workflow as w; print(w.__file__)", cwd=tmp_path)
    assert str(env) in where
    # and no generic top-level names are claimed
    probe = (
        "import importlib.util as u; "
        "print([n for n in ('states', 'storage', 'actions', 'workflow') if u.find_spec(n)])"
    )
    assert run(python, "-c", probe, cwd=tmp_path).strip() == "[]"


def test_graph_command_prints_both_machines_from_their_data(tmp_path: Path) -> None:
    out = run(sys.executable, "-m", "congvan.workflow.cli", "graph", cwd=tmp_path)
    assert "stateDiagram-v2" in out
    assert "document_signed --> document_sent: send" in out
    assert "dispatch_sending --> dispatch_delivered: deliver" in out
    dot = run(
        sys.executable,
        "-m",
        "congvan.workflow.cli",
        "graph",
        "--format",
        "dot",
        "--machine",
        "document",
        cwd=tmp_path,
    )
    assert dot.startswith('digraph "document"')
    assert '"failed" -> "sent" [label="resend' in dot


def test_every_package_of_the_four_layers_is_listed_for_installation() -> None:
    # A package missing from pyproject's list works in the editable checkout and is
    # silently absent from a wheel: every folder with an __init__.py must be listed.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    folders = config["tool"]["setuptools"]["package-dir"]
    found = {
        ".".join([name, *init.parent.relative_to(ROOT / folder).parts])
        for name, folder in folders.items()
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert found - listed == set()
