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
    """Active markers of one dictionary and of the dictionaries written inside it (a
    name kept as an object of its own read as the name it is)."""
    found: set[str] = set()
    pending: list[Any] = [obj]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            found |= {str(k) for k in item if str(k) in _ACTIVE_KEYS}
            action, kind, subtype = (str(_resolved(item.get(k, ""))) for k in _NAMED)
            found |= {action} & _ACTIVE_ACTIONS | {kind} & _ACTIVE_TYPES
            found |= {subtype} & _ACTIVE_SUBTYPES
            if action == "/URI" and not _web(item.get("/URI")):
                found.add("/URI")  # file://host/share as a GoToR, or a scheme run locally
            # the catalog, however it is marked (readers find it by the trailer's /Root)
            if kind == "/Catalog" or "/Pages" in item:
                found |= _on_opening(item.get("/OpenAction"))
            pending += [v for v in item.values() if isinstance(v, dict | list)]
        elif isinstance(item, list):
            pending += [v for v in item if isinstance(v, dict | list)]
    return found


_NAMED = ("/S", "/Type", "/Subtype")  # the names that say what a dictionary is
_WEB = ("http://", "https://", "mailto:")  # what a link may open: a web page, a mail


def _web(uri: Any) -> bool:
    value = _resolved(uri)
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return text.strip().lower().startswith(_WEB)


def _on_opening(action: Any) -> set[str]:
    """What the catalog's /OpenAction does when the file opens, other than show a page
    of it (a destination, or /GoTo): ``/OpenAction`` and the action's type (``/URI``,
    ``/Named``…), for it and the actions chained after it (/Next); a chain longer than
    ``_MAX_CHAINED`` (or looping) is ``/Next`` itself: what it ends with is not known."""
    found: set[str] = set()
    pending, seen = [action], 0
    while pending:
        if seen == _MAX_CHAINED:
            return found | {"/OpenAction", "/Next"}
        item, seen = _resolved(pending.pop()), seen + 1
        if not isinstance(item, dict):
            continue  # a destination (a page, a name): where the letter opens
        kind = str(_resolved(item.get("/S", "")))
        if kind != _SHOWS_A_PAGE:
            found |= {"/OpenAction", kind or "/S?"}
        after = _resolved(item.get("/Next"))
        pending += [a for a in after if a is not None] if isinstance(after, list) else [after]
        pending = [a for a in pending if a is not None]
    return found


def _resolved(value: Any) -> Any:
    """``value``, or what it refers to when it is a reference to an object of its own."""
    if isinstance(value, generic.IndirectObject):
        return value.get_object()  # type: ignore[no-untyped-call]
    return value


_MAX_CHAINED = 64  # actions followed after an opening one: a loop of /Next ends here
