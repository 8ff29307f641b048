"""Whether an outgoing document's row still says what its signature covers.

Once signed, a document's metadata and recipients change only by an ``update`` (a
correction sent to its recipients), whose audit entry keeps each field's value before and
after. The manifest its last accepted signature covers (held to that ``sign`` entry by its
digest), with the corrections recorded after it applied in order, is what the row must
say; a value elsewhere was written by SQL, outside any transition. Drafts and reviewed
documents change by edits, whose entries name the fields changed and not their values:
their rows are held to their trail by state and version only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select

from congvan.states.document import DRAFT, REVIEWED
from congvan.states.fields import SIGNED, SIGNED_WHEN_SET, SIGNED_WHEN_TRUE

from .audit import AuditRow
from .tables import Document, Recipient

_documents = Document.__table__  # type: ignore[attr-defined]
_recipients = Recipient.__table__  # type: ignore[attr-defined]
# The row's columns a manifest names: the issuing agency and the signed metadata.
_COLUMNS = ("agency_id", *SIGNED, *SIGNED_WHEN_TRUE, *SIGNED_WHEN_SET)
_SHOWN = 80  # characters of a value a report quotes


@dataclass(frozen=True)
class AsStored:
    """What an outgoing document's row says of what a signature covers."""

    fields: Mapping[str, Any]  # the issuing agency and the signed metadata, by column
    recipients: tuple[str, ...]  # organ ids, in their order


def as_stored(conn: Connection, document_ids: Sequence[str]) -> dict[str, AsStored]:
    """The signed values of those of ``document_ids`` past review, as their rows stand."""
    c = _documents.c
    query = select(c.id, *(c[name] for name in _COLUMNS)).where(
        c.id.in_(document_ids), c.state.not_in((DRAFT, REVIEWED))
    )
    fields = {row[0]: dict(zip(_COLUMNS, row[1:], strict=True)) for row in conn.execute(query)}
    r = _recipients.c
    listed: dict[str, list[str]] = {doc: [] for doc in fields}
    order = select(r.document_id, r.organ_id).where(r.document_id.in_(list(fields)))
    for doc, organ_id in conn.execute(order.order_by(r.document_id, r.position, r.id)):
        listed[doc].append(organ_id)
    return {doc: AsStored(values, tuple(listed[doc])) for doc, values in fields.items()}


def fields_moved(
    rows: Sequence[AuditRow], stored: AsStored, manifests: Mapping[str, bytes]
) -> str | None:
    """How the row departs from what its last accepted signature covers, corrected by the
    updates after it (``manifests``: each signature's manifest by id); ``None`` when it
    does not, or when no entry names the signature it accepted."""
    signs = [i for i, row in enumerate(rows) if row.event == "sign"]
    if not signs:
        return None
    accepted = json.loads(rows[signs[-1]].payload)
    signature_id = accepted.get("signature_id")
    manifest = manifests.get(signature_id) if isinstance(signature_id, str) else None
    if manifest is None:
        return None  # an entry of before signatures were named, or a row gone (said apart)
    if hashlib.sha256(manifest).hexdigest() != accepted.get("manifest_sha256", ""):
        return (
            f"its signature {signature_id} covers another manifest than its trail accepted: "
            "the row was changed outside a transition"
        )
    try:
        signed = json.loads(manifest)
    except ValueError:
        signed = None
    if not isinstance(signed, dict):
        return f"its signature {signature_id} has a manifest that is not a JSON object"
    expected: dict[str, Any] = {name: signed.get(name) for name in _COLUMNS}
    expected.update({name: bool(signed.get(name)) for name in SIGNED_WHEN_TRUE})
    for row in rows[signs[-1] + 1 :]:
        if row.event != "update":
            continue
        changed = json.loads(row.payload).get("changed")
        for name, change in changed.items() if isinstance(changed, dict) else ():
            if name in expected and isinstance(change, dict):
                expected[name] = change.get("to")
    for name in _COLUMNS:
        if _plain(stored.fields.get(name)) != _plain(expected[name]):
            return (
                f"its {name} says {_shown(stored.fields.get(name))}, what was signed (with "
                f"the corrections its trail records) says {_shown(expected[name])}: the row "
                "was changed outside a transition"
            )
    named = signed.get("recipients")
    if isinstance(named, list) and tuple(named) != stored.recipients:
        return (
            f"its recipients are {', '.join(stored.recipients) or 'none'}, what was signed "
            f"names {', '.join(map(str, named)) or 'none'}: they were changed outside a "
            "transition"
        )
    return None


def _plain(value: Any) -> Any:
    """A value as a manifest writes it: dates in ISO form; a text left empty and a value
    not set alike (an update clearing a field stores the one or the other by column)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return None if value == "" else value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
