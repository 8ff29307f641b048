"""What a command runs with: its settings, the runtime it opens and always stops, a bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from ..settings import Settings

if TYPE_CHECKING:
    from tqdm import tqdm

    from ..bootstrap import Runtime

Command = Callable[[argparse.Namespace, Settings], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings, with the global options' overrides."""
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return Settings(**overrides)


@contextmanager
def runtime_for(settings: Settings) -> Iterator[Runtime]:
    """The runtime bootstrapped from ``settings``, stopped when the block ends."""
    from ..bootstrap import bootstrap

    runtime = bootstrap(settings)
    try:
        yield runtime
    finally:
        runtime.stop()


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )


def progress_bar(total: int, unit: str, progress: bool | None) -> tqdm[Any]:
    """A bar on stderr, never in the printed report; ``None`` shows it on a terminal only."""
    from tqdm import tqdm

    disable = None if progress is None else not progress
    return tqdm(total=total, unit=unit, disable=disable, file=sys.stderr)
