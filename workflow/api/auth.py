"""Bearer tokens → the calling principal; role checks as dependencies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from congvan.actions.context import Actor
from congvan.states.errors import Forbidden, RepeatedField, Unauthenticated
from congvan.states.spec import MachineSpec
from congvan.storage.agencies import Principal, TokenHolder

from ..engine.bindings import refuse_role
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


class Requires:
    """The roles a route needs, as the dependency that gives it its caller.

    A route's roles are judged before anything the caller sent: a route that reads a body
    asks them before a byte of it is read (``JsonRoute``), and FastAPI resolves this
    dependency before it judges the query. A caller without the role is told so (403),
    not what is wrong with their request (422).
    """

    def __init__(self, roles: frozenset[str], what: str) -> None:
        self.roles = roles
        self.what = what

    def judge(self, principal: Principal, path_params: Mapping[str, Any]) -> None:
        require(principal, self.roles, self.what)

    def __call__(self, request: Request, principal: PrincipalDep) -> Principal:
        self.judge(principal, request.path_params)
        return principal


class Fires(Requires):
    """A route that fires ``event`` (or the event its path names) on a machine: the roles
    are the machine's for that event, judged as the engine judges them, before the body."""

    def __init__(
        self, spec: MachineSpec, roles: Mapping[str, frozenset[str]], event: str | None = None
    ) -> None:
        super().__init__(frozenset().union(*roles.values()), f"Events of {spec.name}")
        self.spec = spec
        self.by_event = roles
        self.event = event

    def judge(self, principal: Principal, path_params: Mapping[str, Any]) -> None:
        event = self.event or str(path_params.get("event", ""))
        refuse_role(self.spec, self.by_event, actor_of(principal), event)


def fires(spec: MachineSpec, roles: Mapping[str, frozenset[str]], event: str | None = None) -> Any:
    """``principal: Annotated[Principal, fires(DOCUMENT, EVENT_ROLES)]``."""
    return Depends(Fires(spec, roles, event))


def requires(roles: frozenset[str], what: str) -> Any:
    """``principal: Annotated[Principal, requires(ROLES, "Reading documents")]``."""
    return Depends(Requires(roles, what))


def _dependencies(dependant: Dependant) -> list[Dependant]:
    """Every dependency of a route, its dependencies' too."""
    found = []
    for d in dependant.dependencies:
        found += [d, *_dependencies(d)]
    return found


def needs_principal(dependant: Dependant) -> bool:
    """Whether a route (its dependency tree) authenticates its caller by token."""
    return any(d.call is get_principal for d in _dependencies(dependant))


def role_checks(dependant: Dependant) -> list[Requires]:
    """The roles a route (its dependency tree) needs of its caller."""
    return [d.call for d in _dependencies(dependant) if isinstance(d.call, Requires)]


async def refuse_unknown_token(request: Request) -> Principal:
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
    return found.principal
