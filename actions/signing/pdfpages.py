"""A PDF's page tree as readers walk it: its pages in order, and what a page inherits.

Review, signing and verification read pages through these, walked once and guarded
against trees that lie, loop or nest without end.
"""

from __future__ import annotations

import numbers
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader


def page_leaves(reader: PdfFileReader, most: int | None = None) -> list[generic.DictionaryObject]:
    """The pages of ``reader``'s page tree, in order, walked once (ISO 32000 7.7.3.2).

    Not by index (``find_page_for_modification(i)`` walks from the root each time: a
    letter of thousands of pages took minutes), nor as many as a ``/Count`` claims:
    ValueError for a node whose ``/Count`` is not the pages under it (readers that skip
    by it and readers that walk would show other pages: a page turned under a node
    counting none), a tree that loops, is not made of dictionaries, nests deeper than
    ``_MAX_TREE_DEPTH``, or holds more than ``most``."""
    leaves: list[generic.DictionaryObject] = []
    seen: set[tuple[int, int]] = set()
    # each inner node: (what its /Count says, the pages found under it, its parent's index)
    inner: list[list[Any]] = []
    pending: list[tuple[Any, int, int]] = [(reader.root.raw_get("/Pages"), 0, -1)]
    while pending:
        node, depth, parent = pending.pop()
        if isinstance(node, generic.IndirectObject):
            ref = (node.idnum, node.generation)
            if ref in seen:
                raise ValueError("the page tree holds a node twice (a loop)")
            seen.add(ref)
            node = node.get_object()  # type: ignore[no-untyped-call]
        if not isinstance(node, generic.DictionaryObject) or depth > _MAX_TREE_DEPTH:
            raise ValueError("the page tree is not a tree of dictionaries")
        page = str(node.get("/Type", "")) == "/Page"
        if page and "/Kids" in node:
            # a page to some readers, the pages under it to others: not one letter
            raise ValueError("a page of the page tree has pages under it (/Kids)")
        kids = None if page else node.get("/Kids")
        if kids is None:
            leaves.append(node)
            if most is not None and len(leaves) > most:
                raise ValueError(f"the page tree holds more than {most} pages")
            while parent >= 0:
                inner[parent][1] += 1
                parent = inner[parent][2]
        elif isinstance(kids, generic.ArrayObject):
            counted = node["/Count"] if "/Count" in node else None  # noqa: SIM401 (resolved)
            inner.append([counted, 0, parent])
            index = len(inner) - 1
            pending += [(kids.raw_get(i), depth + 1, index) for i in reversed(range(len(kids)))]
        else:
            raise ValueError("the page tree's /Kids is not an array")
    for index, (counted, held, _parent) in enumerate(inner):
        number = isinstance(counted, numbers.Number) and not isinstance(counted, bool)
        if not number or counted != held:
            said = counted if number else "no number of"
            whose = "its page tree" if index == 0 else "a node of its page tree"
            raise ValueError(f"{whose} counts {said} pages but holds {held}")
    return leaves


_MAX_TREE_DEPTH = 64  # levels of a page tree; writers balance theirs to a few


def inherited(page: Any, *names: str) -> Any:
    """The first of ``names`` the page has, else the nearest of its parents has (ISO 32000
    7.7.3.4), or None; ValueError for a /Parent chain longer than any tree nests (a loop:
    it would be followed for ever) or not made of dictionaries."""
    node: Any = page
    for _ in range(_MAX_TREE_DEPTH + 2):
        if isinstance(node, generic.IndirectObject):
            node = node.get_object()  # type: ignore[no-untyped-call]
        if node is None:
            return None
        if not isinstance(node, generic.DictionaryObject):
            raise ValueError("the page tree is not a tree of dictionaries")
        for name in names:
            if name in node:
                return node[name]
        node = node.raw_get("/Parent") if "/Parent" in node else None
    raise ValueError("a page's /Parent chain loops")
