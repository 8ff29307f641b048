"""The system programs the tests run, found on PATH or failing with how to install them,
and the openssl command line the tests judge our signatures with.

A missing program is a failure, never a skip: README's test command installs them all
(``tests/system-packages.sh``), so a missing one means the setup step was not run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SETUP = "bash tests/system-packages.sh"
PACKAGES = {
    "openssl": "openssl",
    "pdfsig": "poppler-utils",
    "certutil": "libnss3-tools",
    "crlutil": "libnss3-tools",
    "dot": "graphviz",
    "redis-server": "redis-server",
}


def require(program: str) -> str:
    """The program's path; fails the test, naming the setup command, when it is missing."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(
            f"{program} is not installed (Debian package {PACKAGES.get(program, program)}): "
            f"run `{SETUP}` (README's test command runs it first)",
            pytrace=False,
        )
    return path


def verify_with_openssl(
    folder: Path, *options: str, content: str = "manifest.json"
) -> subprocess.CompletedProcess[bytes]:
    """``openssl cms -verify`` of ``folder``'s detached ``sig.p7s`` (DER) over ``content``.

    ``folder``'s ``ca.pem`` holds the only trusted CAs (and any CRLs); ``options`` are added
    to the command line, e.g. ``-crl_check``.
    """
    return subprocess.run(
        [
            require("openssl"),
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            "sig.p7s",
            "-content",
            content,
            "-CAfile",
            "ca.pem",
            *options,
            "-out",
            "/dev/null",
        ],
        cwd=folder,
        capture_output=True,
        check=False,
    )
