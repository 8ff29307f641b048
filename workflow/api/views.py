"""Which documents a caller may see through the API."""

from __future__ import annotations

from congvan.states.errors import NotFound
from congvan.storage.documents import DocumentRow
from congvan.storage.unit_of_work import UnitOfWork


def check_document_id(document_id: str, what: str = "document", key: str = "document_id") -> None:
    """An id no ``what`` can have is "not found" without asking the database, said as for
    any other id of that kind (the message, and its id under ``key``).

    PostgreSQL refuses text holding NUL, so such an id would otherwise fail the query.
    """
    if "\x00" in document_id:
        raise NotFound(f"No such {what}.", **{key: document_id})


def load_visible(uow: UnitOfWork, document_id: str, agency_id: str) -> DocumentRow:
    """The document if the caller's agency owns it; another agency's is "not found"."""
    check_document_id(document_id)
    row = uow.documents.get(document_id)
    if row is None or row.agency_id != agency_id:
        raise NotFound("No such document.", document_id=document_id)
    return row
