"""File names in a package: what every reader and every recipient's system keeps as itself.

A part's name is a relative path of plain steps that no extraction can misplace, and
each step a name Windows writes under that very name (recipients' systems are mostly
Windows): the archive refuses a package carrying another, the writer will not write one,
and an upload is refused one at once (it could never be sent).
"""

from __future__ import annotations

import unicodedata

from confusable_homoglyphs import confusables


def safe_path(name: str) -> bool:
    """Whether ``name`` is a relative path of plain steps that no extraction can misplace."""
    if not name or len(name) > 400 or name.startswith("/") or name.endswith("/"):
        return False
    if "\\" in name or name != unicodedata.normalize("NFC", name):
        return False
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return False
    return all(safe_step(step) for step in name.split("/"))


def safe_step(step: str) -> bool:
    """Whether ``step`` is one plain file name that every recipient's system can write as
    itself: no separator, not ``.``/``..``, trimmed, and a name Windows keeps (no
    ``<>:"|?*``, no trailing dot, not a device such as ``CON`` or ``com1.txt``): a name
    Windows changes could fall on another one (``Phụ lục.pdf.`` is ``Phụ lục.pdf``) or
    name no file (``a.pdf:Zone.Identifier``, a stream of ``a.pdf``)."""
    return (
        0 < len(step) <= 255
        and step not in (".", "..")
        and step == step.strip()
        and "/" not in step
        and "\\" not in step
        and not any(unicodedata.category(ch) == "Cc" for ch in step)
        and step == unicodedata.normalize("NFC", step)
        and portable_name(step)
        and not _SEPARATOR_LOOKALIKES.intersection(step)
        and _compatible(step)
    )


# Characters that look like a separator, which NFKC keeps but a code page's best fit
# writes as one: Windows hands a program that reads names in its ANSI code page ``/`` for
# U+2215 or U+2044, ``\`` for U+2216 (and for ¥ in Japanese, ₩ in Korean).
_SEPARATOR_LOOKALIKES = frozenset("\u2044\u2215\u2216\u2571\u2572\u29f5\u29f8\u29f9\u00a5\u20a9")


def _compatible(step: str) -> bool:
    """Whether ``step`` in its compatibility form (NFKC: what a system that folds
    fullwidth and other look-alike characters keeps, ``..／a`` being ``../a``) is a plain
    file name too."""
    plain = unicodedata.normalize("NFKC", step)
    return plain == step or safe_step(plain)


def folded_name(name: str) -> str:
    """``name`` as two names are compared to tell them apart: the same once case,
    compatibility forms and look-alike letters are folded (``A.pdf``, ``a.pdf``, ``ａ.pdf``
    and ``а.pdf``, its ``а`` Cyrillic, are one name; so are ``Quyết định.pdf`` and
    ``Quуết định.pdf``). A letter of another script that Unicode's confusables (UTS 39)
    give as looking like a Latin one is read as that one; Vietnamese letters are Latin."""
    folded = unicodedata.normalize("NFKC", name.casefold())
    if folded.isascii():
        return folded
    found = confusables.is_confusable(folded, greedy=True, preferred_aliases=["latin"]) or ()
    latin = {
        each["character"]: next(
            (g["c"] for g in each["homoglyphs"] if g["n"].startswith("LATIN ")), None
        )
        for each in found
    }
    return "".join(latin.get(ch) or ch for ch in folded)


# What Windows refuses in a file name (besides separators and control characters), and the
# devices it opens instead of a file, whatever the extension (``NUL.pdf`` is NUL).
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"{port}{n}" for port in ("com", "lpt") for n in (*"0123456789", "¹", "²", "³")}
)


def portable_name(step: str) -> bool:
    """Whether Windows writes a file of the name ``step`` under that very name."""
    if _WINDOWS_FORBIDDEN.intersection(step) or step.endswith((".", " ")):
        return False
    return step.split(".", 1)[0].rstrip(" ").casefold() not in _WINDOWS_DEVICES
