"""The ``congvan`` command's entry point: loading the program is interruptible too.

Ctrl-C (or SIGTERM) while the command's modules still load ends it as a running command
ends ("interrupted", exit 130), not with a traceback of whatever module was loading.
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from congvan.workflow.cli import main as run
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return run()
