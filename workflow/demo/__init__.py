"""``congvan demo``: letter 1227/UBND-TĐKT and its siblings driven through review over HTTP."""

from .run import run_demo

__all__ = ["run_demo"]
