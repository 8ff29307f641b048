"""Bearer tokens → the calling principal; role checks as dependencies."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from congvan.actions.context import Actor
from congvan.states.errors import Forbidden, Unauthenticated
from congvan.storage.agencies import Principal

from .deps import ClockDep, ReadUowDep

_bearer = HTTPBearer(auto_error=False, description="An API token from `congvan tokens create`.")


def get_principal(
    uow: ReadUowDep,
    clock: ClockDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("Send an API token as `Authorization: Bearer <token>`.")
    token = credentials.credentials
    if len(token) > 200:
        raise Unauthenticated("The API token is not valid.")
    with uow:
        principal = uow.agencies.principal_for_token(token, clock())
    if principal is None:
        raise Unauthenticated("The API token is not valid, has expired or was revoked.")
    structlog.contextvars.bind_contextvars(agency=principal.agency_id, user=principal.username)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def actor_of(principal: Principal) -> Actor:
    return Actor(name=principal.actor, agency_id=principal.agency_id, roles=principal.roles)


def require(principal: Principal, roles: frozenset[str], what: str) -> None:
    if not principal.roles & roles:
        raise Forbidden(f"{what} needs the role {' or '.join(sorted(roles))}.", needs=sorted(roles))
