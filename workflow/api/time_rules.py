"""Routes for the agency's own time rules: the province's, tightened (never loosened) by a
supervisor; a PUT replaces the whole set, under If-Match of what its GET gave."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from congvan.states.deadlines import RULES
from congvan.states.errors import InvalidInput, PreconditionFailed, PreconditionRequired
from congvan.states.policy import ESCALATION_HANDLERS, READ_ROLES
from congvan.storage.agencies import Principal

from .auth import requires
from .bodies import JsonRoute
from .deps import ClockDep, ReadUowDep, SettingsDep, WatchDep, WriteUowDep
from .documents import IfMatch
from .methods import entity_tags, failed_precondition
from .outputs import AUTHENTICATED, errors, sends
from .schemas import TextModel

log = logging.getLogger("congvan.api")

router = APIRouter(
    prefix="/v1/time-rules",
    tags=["escalations"],
    responses=errors(*AUTHENTICATED),
    route_class=JsonRoute,
)


class TimeRulesOut(BaseModel):
    """The rules in force for the agency: the province's, tightened by the agency's own."""

    rules: dict[str, str] = Field(description="What each rule means")
    send_cutoff: str
    working_hours: str
    province: dict[str, list[int]] = Field(description="Working minutes per urgency 0–4")
    agency: dict[str, list[int]] = Field(description="What the agency tightened")
    in_force: dict[str, list[int]]


class TimeRulesIn(TextModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: JSON's true, "100" and 100.0 are not working minutes.
    rules: dict[str, list[StrictInt] | dict[str, StrictInt]] = Field(
        description="Rule → five values (urgency 0–4) or {level: value}; {} clears them"
    )


def _rules_view(
    watch: WatchDep, settings: SettingsDep, overrides: dict[str, Any]
) -> dict[str, Any]:
    in_force = watch.rules.in_force(overrides)
    return {
        "rules": dict(RULES),
        "send_cutoff": in_force.send_cutoff.strftime("%H:%M"),
        "working_hours": str(watch.hours),
        "province": {k: list(v) for k, v in watch.rules.minutes.items()},
        "agency": {k: list(v) for k, v in in_force.minutes.items() if k in overrides},
        "in_force": {k: list(v) for k, v in in_force.minutes.items()},
    }


@router.get("", summary="The time rules in force for the caller's agency",
                  response_model=TimeRulesOut, responses=sends(200, "ETag"))  # fmt: skip
def get_time_rules(
    uow: ReadUowDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading time rules")],
    watch: WatchDep,
    settings: SettingsDep,
    response: Response,
) -> dict[str, Any]:
    with uow:
        overrides = uow.escalations.time_rules(principal.agency_id)
    response.headers["ETag"] = _rules_tag(overrides)
    return _rules_view(watch, settings, overrides)


def _rules_tag(overrides: dict[str, Any]) -> str:
    """The entity tag of an agency's rules: a digest of what it set."""
    body = json.dumps(overrides, sort_keys=True, separators=(",", ":")).encode()
    return f'"{hashlib.sha256(body).hexdigest()[:16]}"'


def _check_rules_tag(if_match: str | None, current: str) -> None:
    """``If-Match`` against the rules' tag (RFC 9110 13.1.1): ``*`` holds, absent is refused.

    A ``PUT`` sets the whole set: without the tag of what it read, a supervisor would
    erase what another set meanwhile (a lost update) without a word.
    """
    if if_match is None:
        raise PreconditionRequired(
            "Setting time rules replaces the agency's whole set: send the ETag the GET "
            "gave as If-Match (or * to replace whatever is set now).",
            etag=current,
        )
    value = if_match.encode("latin-1", "replace")
    if value.strip() != b"*" and entity_tags(value) is None:
        raise InvalidInput(
            "If-Match takes the ETag as it was sent, quotes included (or *).", field="If-Match"
        )
    if failed_precondition(value, current.encode("latin-1")):
        raise PreconditionFailed(
            "The agency's time rules changed since they were read: read them again (their "
            "ETag) and retry.",
            etag=current,
        )


@router.put(
    "",
    summary="Tighten the province's time rules for the caller's agency (never loosen them)",
    response_model=TimeRulesOut,
    responses={**errors(400, 403, 412, 428), **sends(200, "ETag")},
)
def put_time_rules(
    body: TimeRulesIn,
    uow: WriteUowDep,
    principal: Annotated[Principal, requires(ESCALATION_HANDLERS, "Setting time rules")],
    watch: WatchDep,
    settings: SettingsDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    tightened = watch.check_rules(body.rules)
    overrides = {k: list(tightened.minutes[k]) for k in body.rules}
    with uow:
        current = uow.escalations.time_rules(principal.agency_id, holding=True)
        _check_rules_tag(if_match, _rules_tag(current))
        uow.escalations.set_time_rules(
            principal.agency_id, overrides, by=principal.username, at=clock()
        )
        uow.commit()
    response.headers["ETag"] = _rules_tag(overrides)
    log.info(
        "time rules set",
        extra={
            "action": "time_rules.set",
            "agency": principal.agency_id,
            "actor": principal.username,
            "rules": sorted(overrides),
        },
    )
    return _rules_view(watch, settings, overrides)
