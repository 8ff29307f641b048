"""Bearer tokens → the calling principal; role checks as dependencies."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from congvan.actions.context import Actor
from congvan.states.errors import Forbidden, RepeatedField, Unauthenticated
from congvan.storage.agencies import Principal, TokenHolder

from .deps import ClockDep, ReadUowDep, runtime_of

_bearer = HTTPBearer(auto_error=False, description="An API token from `congvan tokens create`.")


_NO_TOKEN = "Send an API token as `Authorization: Bearer <token>`."
_NOT_VALID = "The API token is not valid, has expired or was revoked."
_LONGEST_TOKEN = 200


def _one_token(request: Request) -> None:
    """Two Authorization headers are refused whichever comes first, before either is
    looked up (the first alone was read: garbage then a token was 401, a token then
    garbage 422)."""
    count = sum(1 for name, _ in request.headers.raw if name.lower() == b"authorization")
    if count > 1:
        raise RepeatedField(
            f"The header 'Authorization' is given {count} times; it is taken once.",
            field="Authorization",
            location="header",
            count=count,
        )


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated(_NO_TOKEN)
    if len(credentials.credentials) > _LONGEST_TOKEN:
        raise Unauthenticated("The API token is not valid.")
    return credentials.credentials


# Where ``refuse_unknown_token`` leaves the token's holder for ``get_principal``.
_HOLDER = "congvan.token_holder"


def get_principal(
    request: Request,
    uow: ReadUowDep,
    clock: ClockDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    _one_token(request)
    token = _token(credentials)
    held: tuple[str, TokenHolder] | None = request.scope.get(_HOLDER)
    holder: TokenHolder | None
    if held is not None and held[0] == token:
        holder = held[1]  # looked up before the body was read: not again
    else:
        with uow:
            holder = uow.agencies.token_holder(token)
    if holder is None or not holder.valid_at(clock()):
        raise Unauthenticated(_NOT_VALID)
    principal = holder.principal
    structlog.contextvars.bind_contextvars(agency=principal.agency_id, user=principal.username)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def actor_of(principal: Principal) -> Actor:
    return Actor(name=principal.actor, agency_id=principal.agency_id, roles=principal.roles)


def require(principal: Principal, roles: frozenset[str], what: str) -> None:
    if not principal.roles & roles:
        raise Forbidden(f"{what} needs the role {' or '.join(sorted(roles))}.", needs=sorted(roles))


def needs_principal(dependant: Dependant) -> bool:
    """Whether a route (its dependency tree) authenticates its caller by token."""
    return any(d.call is get_principal or needs_principal(d) for d in dependant.dependencies)


async def refuse_unknown_token(request: Request) -> None:
    """Unauthenticated unless the request names a token of this installation, neither
    revoked nor expired (by the installation's clock): asked before the body of a route
    that authenticates is read, so that nobody without a valid token makes the server read
    and parse a body of up to the request limit. The route's own check (``get_principal``,
    by the clock its dependencies give) takes the holder found here instead of looking the
    token up again."""
    _one_token(request)
    token = _token(await _bearer(request))
    runtime = runtime_of(request)

    def holder() -> TokenHolder | None:
        with runtime.uow(readonly=True) as uow:
            return uow.agencies.token_holder(token)

    found = await run_in_threadpool(holder)
    if found is None or not found.valid_at(runtime.clock()):
        raise Unauthenticated(_NOT_VALID)
    request.scope[_HOLDER] = (token, found)
