"""What in a PDF acts when it is opened: the markers review refuses in a file
(``attachments.active_content``) and the signing revision may not add (``pdfchanges``)."""

from __future__ import annotations

from typing import Any

from pyhanko.pdf_utils import generic

# What a PDF may carry that acts when it is opened: scripts (3D ones too), programs
# launched, files embedded or opened elsewhere (a /GoToR to \\host\share leaks the
# reader's network credentials), forms that post or import, multimedia and 3D that run
# (ISO 32000-2 §12.6, §7.11.4, §13.2, §13.6, §13.7). A letter carries none; a reader that
# honours them runs what the sender put in. A link to a web page stays (it acts when its
# reader clicks it), unless the file opens it by itself: what the catalog's /OpenAction
# does other than show a page of the letter is active.
_ACTIVE_KEYS = frozenset(
    {"/JavaScript", "/JS", "/AA", "/EmbeddedFiles", "/EF", "/RichMedia", "/XFA"}
    | {"/OnInstantiate", "/3DA"}
)
_ACTIVE_ACTIONS = frozenset(
    {"/JavaScript", "/Launch", "/ImportData", "/SubmitForm", "/GoToE", "/RichMediaExecute"}
    | {"/GoToR", "/Rendition", "/Sound", "/Movie", "/GoTo3DView"}
)
_ACTIVE_TYPES = frozenset({"/EmbeddedFile", "/RichMediaContent"})
_ACTIVE_SUBTYPES = frozenset({"/3D", "/RichMedia", "/Movie", "/Sound", "/Screen"})
_SHOWS_A_PAGE = "/GoTo"  # the one action an opening may take: to a page of the letter


def active_in(obj: dict[Any, Any]) -> set[str]:
    """Active markers of one dictionary and of the dictionaries written inside it."""
    found: set[str] = set()
    pending: list[Any] = [obj]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            found |= {str(k) for k in item if str(k) in _ACTIVE_KEYS}
            if str(item.get("/S", "")) in _ACTIVE_ACTIONS:
                found.add(str(item["/S"]))
            if str(item.get("/Type", "")) in _ACTIVE_TYPES:
                found.add(str(item["/Type"]))
            if str(item.get("/Subtype", "")) in _ACTIVE_SUBTYPES:
                found.add(str(item["/Subtype"]))
            if str(item.get("/Type", "")) == "/Catalog":
                found |= _on_opening(item.get("/OpenAction"))
            pending += [v for v in item.values() if isinstance(v, dict | list)]
        elif isinstance(item, list):
            pending += [v for v in item if isinstance(v, dict | list)]
    return found


def _on_opening(action: Any) -> set[str]:
    """What the catalog's /OpenAction does when the file opens, other than show a page
    of it (a destination, or /GoTo): ``/OpenAction`` and the action's type (``/URI``,
    ``/Named``…), for it and the actions chained after it (/Next)."""
    found: set[str] = set()
    pending, seen = [action], 0
    while pending and seen < _MAX_CHAINED:
        item, seen = _resolved(pending.pop()), seen + 1
        if not isinstance(item, dict):
            continue  # a destination (a page, a name): where the letter opens
        kind = str(item.get("/S", ""))
        if kind != _SHOWS_A_PAGE:
            found |= {"/OpenAction", kind or "/S?"}
        after = _resolved(item.get("/Next"))
        pending += list(after) if isinstance(after, list) else [after]
    return found


def _resolved(value: Any) -> Any:
    """``value``, or what it refers to when it is a reference to an object of its own."""
    if isinstance(value, generic.IndirectObject):
        return value.get_object()  # type: ignore[no-untyped-call]
    return value


_MAX_CHAINED = 64  # actions followed after an opening one: a loop of /Next ends here
