"""Routes for the running system: health, metrics, the agency directory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Response
from pydantic import ConfigDict, Field
from sqlalchemy import Engine, text

from congvan.states.errors import DatabaseNotReady, Forbidden, NotFound
from congvan.states.policy import DEFAULT_NUMBERING, NUMBERING, OPERATOR, SUPERVISOR, is_organ_id
from congvan.storage.agencies import AgencyRow, Principal
from congvan.storage.clock import as_utc
from congvan.storage.database import begin_readonly
from congvan.storage.schema import ensure_migrated

from ..directory import add_agency, set_numbering
from .auth import PrincipalDep, requires
from .bodies import JsonRoute
from .deps import ClockDep, ReadUowDep, RuntimeDep, WriteUowDep
from .outputs import (
    AUTHENTICATED,
    STORED,
    AgencyOut,
    AgencyPage,
    Health,
    Metrics,
    errors,
    sends,
)
from .paging import PagingDep, page, paging
from .schemas import TextModel

router = APIRouter(prefix="/v1", tags=["system"], route_class=JsonRoute)
Numbering = Literal["agency", "symbol"]  # states.policy.NUMBERING, as an enum in OpenAPI
if set(get_args(Numbering)) != set(NUMBERING) or DEFAULT_NUMBERING != "agency":
    raise RuntimeError("Numbering must list states.policy.NUMBERING")


@router.get(
    "/health",
    summary="Liveness and database readiness (no token needed)",
    response_model=Health,
    responses=errors(*STORED),
)
def health(runtime: RuntimeDep) -> dict[str, Any]:
    with runtime.db.connect() as conn, begin_readonly(conn):  # never queued behind writers
        conn.execute(text("SELECT 1"))
    try:
        ensure_migrated(runtime.db)
        schema = "current"
    except DatabaseNotReady:
        schema = "outdated"
    answers = runtime.broker_answers()
    free = _disk_free(runtime.db)
    # (a full disk leaves reads answering and every write refused: said here, for monitoring)
    roomy = free is None or free >= runtime.settings.max_request_bytes
    return {
        "status": "ok" if answers and roomy else "degraded",
        "database": "ok",
        "disk_free_bytes": free,
        "schema": schema,
        "broker": "embedded" if runtime.embedded else "redis",
        "broker_status": "ok" if answers else "unreachable",
    }


def _disk_free(engine: Engine) -> int | None:
    """Bytes free on the disk of an embedded (SQLite file) database; None otherwise."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    try:
        return shutil.disk_usage(Path(engine.url.database).parent).free
    except OSError:
        return None


@router.get(
    "/metrics",
    summary="Work waiting and documents by state",
    response_model=Metrics,
    responses=errors(*AUTHENTICATED),
)
def metrics(
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(frozenset({OPERATOR, SUPERVISOR}), "Metrics")],
) -> dict[str, Any]:
    # An operator sees the installation; a supervisor their own agency's documents, jobs and
    # timers only (installation-wide work such as anchors and CRLs is the operator's).
    agency = None if OPERATOR in principal.roles else principal.agency_id
    with uow:
        by_state = uow.documents.count_by_state(agency)
        jobs = uow.outbox.counts(agency)
        next_due = uow.timers.next_due(agency)
        parked = uow.timers.count_parked(agency)
    return {
        "documents_by_state": by_state,
        "jobs_by_status": jobs,
        "next_timer_due": as_utc(next_due).isoformat() if next_due else None,
        "timers_parked": parked,
    }


_NUMBERING = Field(
    description="agency: one number series for all administrative documents (Decree 30 Art. "
    "15); symbol: one per symbol. Legal normative documents are numbered by type either way."
)


class AgencyIn(TextModel):
    id: str = Field(description="Electronic identifier, e.g. 000.00.00.H57", max_length=35)
    name: str = Field(max_length=300)
    abbreviation: str = Field(max_length=30, description="e.g. UBND")
    numbering: Numbering = Field(default="agency", description=_NUMBERING.description)


class AgencyChange(TextModel):
    model_config = ConfigDict(extra="forbid")

    numbering: Numbering = _NUMBERING


def _agency_view(row: AgencyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "abbreviation": row.abbreviation,
        "numbering": row.numbering,
    }


@router.get(
    "/agencies",
    summary="The directory of agencies, by identifier",
    response_model=AgencyPage,
    responses=errors(*AUTHENTICATED),
)
def list_agencies(uow: ReadUowDep, principal: PrincipalDep, params: PagingDep) -> dict[str, Any]:
    at = paging(params, (str,))
    with uow:
        rows = page(
            lambda after, n: uow.agencies.agencies(after=str(after[0]) if after else None, limit=n),
            lambda a: (a.id,),
            at,
        )
    views = [_agency_view(a) for a in rows["items"]]
    return {**rows, "items": views}


@router.post(
    "/agencies",
    status_code=201,
    summary="Add an agency (operator)",
    response_model=AgencyOut,
    responses={**errors(*AUTHENTICATED, 400, 409), **sends(201, "Location")},
)
def create_agency(
    body: AgencyIn,
    response: Response,
    uow: WriteUowDep,
    clock: ClockDep,
    principal: Annotated[Principal, requires(frozenset({OPERATOR}), "Adding agencies")],
) -> dict[str, Any]:
    with uow:
        add_agency(
            uow, body.id, body.name, body.abbreviation, clock(), body.numbering, id_field="id"
        )
        row = uow.agencies.agency(body.id)
        uow.commit()
    assert row is not None
    response.headers["Location"] = f"{router.prefix}/agencies/{row.id}"
    return _agency_view(row)


@router.get(
    "/agencies/{agency_id}",
    summary="One agency of the directory",
    response_model=AgencyOut,
    responses=errors(*AUTHENTICATED, 404),
)
def get_agency(agency_id: str, uow: ReadUowDep, principal: PrincipalDep) -> dict[str, Any]:
    with uow:
        # (an id no agency can have is not looked up: PostgreSQL refuses a NUL)
        row = uow.agencies.agency(agency_id) if is_organ_id(agency_id) else None
    if row is None:
        raise NotFound("No such agency in the directory.", agency_id=agency_id[:40])
    return _agency_view(row)


@router.patch(
    "/agencies/{agency_id}",
    summary="Change an agency's number series (operator)",
    response_model=AgencyOut,
    responses=errors(*AUTHENTICATED, 400, 404, 409),
)
def change_agency(
    agency_id: str,
    body: AgencyChange,
    uow: WriteUowDep,
    clock: ClockDep,
    principal: Annotated[Principal, requires(frozenset({OPERATOR}), "Changing agencies")],
) -> dict[str, Any]:
    """From now on; refused (409 numbering_conflict) while this year's numbers would repeat
    in the new series."""
    if agency_id != principal.agency_id:  # an operator keeps their own agency's series only
        raise Forbidden(
            "An operator changes their own agency's number series only.",
            agency_id=principal.agency_id,
        )
    with uow:
        set_numbering(uow, agency_id, body.numbering, clock())
        row = uow.agencies.agency(agency_id)
        uow.commit()
    assert row is not None
    return _agency_view(row)
