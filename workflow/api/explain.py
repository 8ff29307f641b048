"""Routes that say what documents wait for: one document's explanation, and the stuck list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from congvan.states import explanation as x
from congvan.states.policy import READ_ROLES
from congvan.storage.agencies import Principal
from congvan.storage.stalls import stalled

from ..explaining import (
    explain_row,
    explanation_view,
    parse_older_than,
    stalled_view,
    working_calendar,
)
from .auth import requires
from .bodies import JsonRoute
from .deps import ClockDep, ReadUowDep, SettingsDep
from .outputs import AUTHENTICATED, DocumentSummary, Moment, Page, errors
from .paging import Key, PagingDep, cursor_moment, page, paging
from .views import load_visible
from .vocabulary import DispatchState, DocumentState, StatusCode

# A finding's facts: text, numbers (spans in seconds), flags, moments, lists of names.
Fact = str | int | bool | list[str] | None


class FindingOut(BaseModel):
    """One thing a document waits for, said in Vietnamese and in English."""

    code: str = Field(
        json_schema_extra={"enum": list(x.CODES)},
        description="Stable: what kind of wait this is (e.g. waiting_for_retry)",
    )
    alarm: bool = Field(description="Something is wrong or late, not only pending")
    vi: str
    en: str
    facts: dict[str, Fact] = Field(
        description="What the sentence says, for programs: moments in Vietnam time, "
        "spans (remaining, remaining_working, waited, late_by) in seconds; working time "
        "is null for a rule that runs on the clock (an urgent document's send, deliver, register)"
    )


class RecipientWait(BaseModel):
    """What one recipient's dispatch waits for."""

    organ_id: str
    dispatch_id: str
    state: DispatchState
    status_code: StatusCode | None = Field(description="Where the recipient stands (QCVN 102)")
    status_label: str | None
    findings: list[FindingOut]


class ExplanationOut(BaseModel):
    """What the document waits for: its own step, then each recipient's."""

    document_id: str
    notation: str
    state: DocumentState
    version: int
    at: Moment = Field(description="The moment the explanation holds for")
    headline: FindingOut = Field(description="The finding to show first")
    document: list[FindingOut]
    recipients: list[RecipientWait]


class StalledDocument(DocumentSummary):
    idle_since: Moment = Field(description="When it last made progress")
    idle_seconds: int
    headline: FindingOut
    codes: list[str] = Field(description="Every finding's code, once each")


class StalledPage(Page):
    items: list[StalledDocument]


router = APIRouter(
    prefix="/v1", tags=["documents"], responses=errors(*AUTHENTICATED), route_class=JsonRoute
)


def _after(key: Key | None) -> tuple[datetime, str] | None:
    """Where a page of the stuck list starts: after (idle since, id) of the last seen."""
    if key is None:
        return None
    return cursor_moment(key[0]), str(key[1])


@router.get(
    "/documents/{document_id}/explain",
    summary="What the document waits for, per recipient, in Vietnamese and English",
    response_model=ExplanationOut,
    responses=errors(404),
)
def explain_document(
    document_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
    clock: ClockDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    now = clock()
    with uow:
        row = load_visible(uow, document_id, principal.agency_id)
        found = explain_row(uow, row, now, working_calendar(settings))
    return explanation_view(row, found, now)


@router.get(
    "/stuck",
    summary="The agency's unfinished documents idle for longer than older_than, idlest first",
    response_model=StalledPage,
)
def list_stuck(
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
    clock: ClockDep,
    settings: SettingsDep,
    params: PagingDep,
    older_than: Annotated[
        str | None,
        Query(
            max_length=40,
            description="How long without progress: ISO 8601 (PT2H, P1D) or seconds; "
            "default one hour",
        ),
    ] = None,
) -> dict[str, Any]:
    threshold = parse_older_than(older_than)
    at = paging(params, (str, str))
    now = clock()
    calendar = working_calendar(settings)
    with uow:
        rows = page(
            lambda after, n: stalled(
                uow.conn, principal.agency_id, now - threshold, after=_after(after), limit=n
            ),
            lambda r: (r.updated_at.isoformat(), r.id),
            at,
        )
        items = [
            stalled_view(row, explain_row(uow, row, now, calendar), now) for row in rows["items"]
        ]
    return {"items": items, "next_cursor": rows["next_cursor"]}
