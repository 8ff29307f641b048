"""Routes for signing authorities: who may sign what for the agency, and when."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from congvan.states.errors import NotFound
from congvan.states.policy import OPERATOR, SUPERVISOR
from congvan.storage.agencies import Principal
from congvan.storage.authorities import AuthorityRow

from ..directory import add_authority
from .auth import requires
from .bodies import JsonRoute
from .deps import ClockDep, ReadUowDep, WriteUowDep
from .outputs import AUTHENTICATED, AuthorityOut, AuthorityPage, Revoked, errors, sends
from .paging import PagingDep, page, paging
from .schemas import TextModel

router = APIRouter(
    prefix="/v1/authorities",
    tags=["authorities"],
    responses=errors(*AUTHENTICATED),
    route_class=JsonRoute,
)
MANAGERS = frozenset({SUPERVISOR, OPERATOR})
# Who may read the agency's authorities.
_READERS = MANAGERS | frozenset({"reviewer", "signer", "clerk"})


class AuthorityIn(TextModel):
    model_config = ConfigDict(extra="forbid")

    signer: str = Field(max_length=100, description="User name of the signer in the agency")
    doc_types: list[str] = Field(
        default_factory=lambda: ["*"], max_length=50, description="Document types, or ['*'] for all"
    )
    competence: str = Field(default="", max_length=200, description="e.g. KT. CHỦ TỊCH")
    valid_from: date
    valid_until: date | None = None

    @field_validator("valid_until")
    @classmethod
    def _after_from(cls, value: date | None, info: ValidationInfo) -> date | None:
        # On the field (its error names valid_until), valid_from read before it.
        start = info.data.get("valid_from")
        if value is not None and start is not None and value < start:
            raise ValueError("valid_until is before valid_from")
        return value


def _view(row: AuthorityRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "signer": row.signer,
        "doc_types": row.doc_types.split(","),
        "competence": row.competence,
        "valid_from": row.valid_from,
        "valid_until": row.valid_until,
        "revoked": row.revoked_at is not None,
    }


def _key(row: AuthorityRow) -> tuple[str, str, str]:
    return (row.signer, row.valid_from, row.id)


@router.get("", summary="The agency's signing authorities, by signer", response_model=AuthorityPage)
def list_authorities(
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(_READERS, "Authorities")],
    params: PagingDep,
) -> dict[str, Any]:
    at = paging(params, (str, str, str))
    with uow:
        rows = page(
            lambda after, n: uow.authorities.page(
                principal.agency_id,
                after=(str(after[0]), str(after[1]), str(after[2])) if after else None,
                limit=n,
            ),
            _key,
            at,
        )
    return {**rows, "items": [_view(r) for r in rows["items"]]}


@router.post(
    "",
    status_code=201,
    summary="Grant a signing authority (supervisor, operator)",
    response_model=AuthorityOut,
    responses={**errors(400, 404, 409), **sends(201, "Location")},
)
def create_authority(
    body: AuthorityIn,
    response: Response,
    uow: WriteUowDep,
    clock: ClockDep,
    principal: Annotated[Principal, requires(MANAGERS, "Granting signing authority")],
) -> dict[str, Any]:
    with uow:
        row = add_authority(
            uow,
            principal.agency_id,
            body.signer,
            body.doc_types,
            body.competence,
            body.valid_from,
            body.valid_until,
            by=principal.actor,
            now=clock(),
        )
        uow.commit()
    response.headers["Location"] = f"{router.prefix}/{row.id}"
    return _view(row)


@router.get(
    "/{authority_id}",
    summary="One of the agency's signing authorities, revoked or not",
    response_model=AuthorityOut,
    responses=errors(404),
)
def get_authority(
    authority_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(_READERS, "Authorities")],
) -> dict[str, Any]:
    with uow:
        row = _known(authority_id) and uow.authorities.get(authority_id, principal.agency_id)
    if not row:
        raise NotFound("No such authority.", authority_id=authority_id[:36])
    return _view(row)


def _known(authority_id: str) -> bool:
    """Whether an authority could have this id: never cut one down to an id that exists,
    nor send PostgreSQL a NUL it refuses."""
    return len(authority_id) <= 36 and "\x00" not in authority_id


@router.delete(
    "/{authority_id}",
    summary="Revoke a signing authority",
    response_model=Revoked,
    responses=errors(404),
)
def revoke_authority(
    authority_id: str,
    uow: WriteUowDep,
    clock: ClockDep,
    principal: Annotated[Principal, requires(MANAGERS, "Revoking signing authority")],
) -> dict[str, Any]:
    with uow:
        if not _known(authority_id) or not uow.authorities.revoke(
            authority_id, principal.agency_id, clock()
        ):
            raise NotFound("No such active authority.", authority_id=authority_id[:36])
        uow.commit()
    return {"id": authority_id, "revoked": True}
