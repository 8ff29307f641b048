"""Routes for notifications: the agency's routes (operators), and what was sent or died.

A route's secret is written, never read back: answers say ``has_secret`` only. Another
agency's route or notification answers 404, as if it did not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from congvan.actions import notifications as notifying
from congvan.states.policy import OPERATOR, SUPERVISOR
from congvan.states.vocabulary import (
    ATTEMPT_OUTCOMES,
    NOTIFICATION_CHANNELS,
    NOTIFICATION_STATES,
)
from congvan.storage.agencies import Principal
from congvan.storage.notifications import AttemptRow, NoticeRow, RouteRow

from .. import notifications as managing
from .auth import requires
from .bodies import JsonRoute
from .deps import ClockDep, ReadUowDep, RuntimeDep, SettingsDep, WriteUowDep
from .outputs import AUTHENTICATED, Moment, Page, errors, sends
from .paging import PagingDep, page, paging
from .schemas import TextModel
from .vocabulary import enum

ADMINS = frozenset({OPERATOR})  # the agency's administrators of the installation
WATCHERS = frozenset({OPERATOR, SUPERVISOR})

routes_router = APIRouter(
    prefix="/v1/notification-routes",
    tags=["notifications"],
    responses=errors(*AUTHENTICATED),
    route_class=JsonRoute,
)
notices_router = APIRouter(
    prefix="/v1/notifications",
    tags=["notifications"],
    responses=errors(*AUTHENTICATED),
    route_class=JsonRoute,
)

if TYPE_CHECKING:
    RouteKind: TypeAlias = str
    Channel: TypeAlias = str
    NoticeState: TypeAlias = str
    AttemptOutcome: TypeAlias = str
else:
    RouteKind = enum(
        "RouteKind",
        managing.ROUTE_KINDS,
        "An escalation's kind, * (a route for every kind) or risen (every escalation risen "
        "to the second level: the leadership's).",
    )
    Channel = enum("Channel", NOTIFICATION_CHANNELS, "How a notification is sent.")
    NoticeState = enum(
        "NoticeState",
        NOTIFICATION_STATES,
        "A notification's state: pending (queued or retrying), sent, dead (given up), "
        "cancelled (its route was disabled or removed first; it may be retried).",
    )
    AttemptOutcome = enum("AttemptOutcome", ATTEMPT_OUTCOMES, "How one attempt to send ended.")


class RouteIn(TextModel):
    model_config = ConfigDict(extra="forbid")

    kind: RouteKind = Field(description="An escalation kind, or * for every kind")
    channel: Channel
    target: str = Field(
        min_length=1, max_length=2000, description="The webhook's https URL or an e-mail address"
    )
    secret: SecretStr | None = Field(
        default=None,
        max_length=256,
        description="A webhook's signing secret (32 to 256 characters); never answered back",
    )
    enabled: bool = True


class RoutePatch(TextModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool


class RouteOut(BaseModel):
    id: str
    agency_id: str
    kind: RouteKind
    channel: Channel
    target: str
    has_secret: bool
    enabled: bool
    created_by: str
    created_at: Moment


class RoutePage(Page):
    items: list[RouteOut]


class Removed(BaseModel):
    id: str
    removed: bool


class NoticeContent(BaseModel):
    """What the notification says, as rendered when it was queued."""

    kind: RouteKind
    kind_words: str
    level: int
    severity: str
    escalation_id: str
    what_to_do: str
    at: Moment
    document_id: str | None = None
    number_symbol: str | None = None
    subject: str | None = None
    recipient_id: str | None = None
    recipient_name: str | None = None
    link: str | None = None


class AttemptOut(BaseModel):
    attempt: int
    started_at: Moment
    finished_at: Moment
    outcome: AttemptOutcome
    status: int | None = Field(description="The HTTP status or the SMTP reply code")
    error: str


class NoticeOut(BaseModel):
    id: str
    agency_id: str
    route_id: str
    kind: RouteKind
    channel: Channel
    target: str
    escalation_id: str
    document_id: str | None
    state: NoticeState
    attempts: int
    last_error: str
    created_at: Moment
    updated_at: Moment
    sent_at: Moment | None
    content: NoticeContent
    attempt_log: list[AttemptOut] | None = Field(
        default=None, description="Every attempt, oldest first (one notification's answer)"
    )


class NoticePage(Page):
    items: list[NoticeOut]


def _route_key(row: RouteRow) -> tuple[str, str]:
    return (row.kind, row.id)


# -- routes ---------------------------------------------------------------------------------


@routes_router.get(
    "", summary="The agency's notification routes (operator)", response_model=RoutePage
)
def list_routes(
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(ADMINS, "Notification routes")],
    params: PagingDep,
) -> dict[str, Any]:
    at = paging(params, (str, str))
    agency = principal.agency_id
    with uow:
        rows = page(
            lambda after, n: uow.notifications.routes(
                agency,
                after=(agency, str(after[0]), str(after[1])) if after else None,
                limit=n,
            ),
            _route_key,
            at,
        )
    return {**rows, "items": [managing.route_view(r) for r in rows["items"]]}


@routes_router.post(
    "",
    status_code=201,
    summary="Add a notification route (operator)",
    response_model=RouteOut,
    responses={**errors(404, 409), **sends(201, "Location")},
)
def create_route(
    body: RouteIn,
    response: Response,
    uow: WriteUowDep,
    clock: ClockDep,
    principal: Annotated[Principal, requires(ADMINS, "Adding a notification route")],
    settings: SettingsDep,
) -> dict[str, Any]:
    with uow:
        route = managing.add_route(
            uow,
            principal.agency_id,
            kind=str(body.kind),
            channel=str(body.channel),
            target=body.target,
            secret=body.secret.get_secret_value() if body.secret is not None else None,
            enabled=body.enabled,
            by=principal.actor,
            now=clock(),
            networks=settings.private_networks(),
        )
        uow.commit()
    view = managing.route_view(route)
    response.headers["Location"] = f"{routes_router.prefix}/{view['id']}"
    return view


@routes_router.get(
    "/{route_id}",
    summary="One notification route (operator)",
    response_model=RouteOut,
    responses=errors(404),
)
def get_route(
    route_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(ADMINS, "Notification routes")],
) -> dict[str, Any]:
    with uow:
        return managing.route_view(managing.route_of(uow, route_id, principal.agency_id))


@routes_router.patch(
    "/{route_id}",
    summary="Enable or disable a notification route (operator)",
    response_model=RouteOut,
    responses=errors(404),
)
def patch_route(
    route_id: str,
    body: RoutePatch,
    uow: WriteUowDep,
    principal: Annotated[Principal, requires(ADMINS, "Changing a notification route")],
    clock: ClockDep,
) -> dict[str, Any]:
    with uow:
        route = managing.set_enabled(uow, route_id, principal.agency_id, body.enabled, clock())
        uow.commit()
    return managing.route_view(route)


@routes_router.delete(
    "/{route_id}",
    summary="Remove a notification route (operator); what it queued and not sent is cancelled",
    response_model=Removed,
    responses=errors(404),
)
def delete_route(
    route_id: str,
    uow: WriteUowDep,
    principal: Annotated[Principal, requires(ADMINS, "Removing a notification route")],
    clock: ClockDep,
) -> dict[str, Any]:
    with uow:
        managing.remove_route(uow, route_id, principal.agency_id, clock())
        uow.commit()
    return {"id": route_id, "removed": True}


# -- notifications ----------------------------------------------------------------------------


def _notice(
    notice: NoticeRow, principal: Principal, attempts: list[AttemptRow] | None = None
) -> dict[str, Any]:
    """A notification as ``principal`` may see it: a webhook's whole address is for those
    who may read the routes (a supervisor sees its origin)."""
    return managing.notice_view(notice, attempts, whole_target=bool(principal.roles & ADMINS))


@notices_router.get(
    "",
    summary="The agency's notifications, newest first; ?state=dead is the dead-letter list",
    response_model=NoticePage,
)
def list_notices(
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(WATCHERS, "Notifications")],
    params: PagingDep,
    state: Annotated[NoticeState | None, Query(description="Only those in this state")] = None,
) -> dict[str, Any]:
    at = paging(params, (str,))
    with uow:
        rows = page(
            lambda after, n: uow.notifications.page(
                principal.agency_id,
                None if state is None else str(state),
                after=str(after[0]) if after else None,
                limit=n,
            ),
            lambda row: (row.id,),
            at,
        )
    return {**rows, "items": [_notice(r, principal) for r in rows["items"]]}


@notices_router.get(
    "/{notification_id}",
    summary="One notification with every attempt (operator, supervisor)",
    response_model=NoticeOut,
    responses=errors(404),
)
def get_notice(
    notification_id: str,
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(WATCHERS, "Notifications")],
) -> dict[str, Any]:
    with uow:
        notice = managing.notice_of(uow, notification_id, principal.agency_id)
        return _notice(notice, principal, uow.notifications.attempts_of(notice.id))


@notices_router.post(
    "/{notification_id}/retry",
    summary="Send a dead or cancelled notification again (operator, supervisor)",
    response_model=NoticeOut,
    responses=errors(404, 409),
)
def retry_notice(
    notification_id: str,
    uow: WriteUowDep,
    clock: ClockDep,
    principal: Annotated[Principal, requires(WATCHERS, "Retrying a notification")],
    runtime: RuntimeDep,
) -> dict[str, Any]:
    with uow:
        managing.notice_of(uow, notification_id, principal.agency_id)
        notice = notifying.retry(uow, notification_id, principal.agency_id, clock())
        uow.commit()
    runtime.relay.kick()
    return _notice(notice, principal)
