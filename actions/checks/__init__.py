"""Review checks: small named units with a stable code, a severity and bilingual messages."""

from . import attachments, authority, duplicates, formatting, metadata, printed
from .registry import CHECKS, Check, CheckInput, Finding

__all__ = [
    "CHECKS",
    "Check",
    "CheckInput",
    "Finding",
    "attachments",
    "authority",
    "duplicates",
    "formatting",
    "metadata",
    "printed",
]
