"""README's API walk-through, run as written: two installations, a letter over HTTP alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from congvan.workflow.serving import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> str:
    """The first bash block of README's section "The API in one example"."""
    section = README.read_text(encoding="utf-8").split("## The API in one example", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README's API section has no bash block"
    return block.group(1)


def test_the_readme_api_walkthrough_takes_a_letter_to_acknowledged(tmp_path: Path) -> None:
    # Given README's script, on two free ports of this machine (8101 and 8102 as written)
    script = walkthrough()
    assert "8101" in script and "8102" in script
    for written in ("8101", "8102"):
        script = script.replace(written, str(free_port()))
    # (a machine's own CONGVAN_* settings are not the script's; its folders under tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONGVAN_")}
    env |= {"TMPDIR": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}

    # When it runs in bash as a reader would run it
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )

    # Then every step answered, and the letter ends acknowledged with status 03
    assert done.returncode == 0, done.stdout + done.stderr
    steps = done.stdout.strip().splitlines()
    assert steps[-6:-1] == [
        "submit draft",
        "approve reviewed",
        "sign signed",
        "send sent",
        "register registered",
    ], done.stdout
    acknowledged = "1227/UBND-TĐKT acknowledged [('000.00.11.H57', 'acknowledged', '03'"
    assert steps[-1].startswith(acknowledged), done.stdout
