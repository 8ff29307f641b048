"""What a route may ask for, each taken from the app's runtime here and nowhere else.

A route declares only the parts it uses; a test swaps one through
``app.dependency_overrides[get_clock] = ...``. Nothing here opens a transaction: a unit of
work arrives closed, the route opens it with ``with uow:`` and commits when it decides to,
so one request costs one transaction at most, as long as the route holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request

from congvan.actions.checks import Check
from congvan.actions.escalations import Watch
from congvan.actions.signing.truststore import TrustStore
from congvan.storage.clock import Clock
from congvan.storage.unit_of_work import UnitOfWork

from ..bootstrap import Runtime
from ..engine import Engine
from ..inbox import Inbox
from ..settings import Settings
from ..statuses import Statuses


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# The dependencies below only hand over a part of the runtime: ``async def`` runs them on
# the event loop, where a plain ``def`` would cost a trip through the thread pool each.
async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_engine(runtime: RuntimeDep) -> Engine:
    return runtime.engine


async def get_clock(runtime: RuntimeDep) -> Clock:
    return runtime.clock


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


async def get_trust(runtime: RuntimeDep) -> TrustStore:
    return runtime.trust


async def get_inbox(runtime: RuntimeDep) -> Inbox:
    return runtime.inbox


async def get_statuses(runtime: RuntimeDep) -> Statuses:
    return runtime.statuses


async def get_watch(runtime: RuntimeDep) -> Watch:
    return runtime.watch


async def get_checks(runtime: RuntimeDep) -> Sequence[Check]:
    return runtime.review.checks


async def reading_uow(runtime: RuntimeDep) -> UnitOfWork:
    """A read-only unit of work, not yet open."""
    return runtime.uow(readonly=True)


async def writing_uow(runtime: RuntimeDep) -> UnitOfWork:
    """A unit of work that may write, not yet open; nothing is kept unless the route commits."""
    return runtime.uow()


EngineDep = Annotated[Engine, Depends(get_engine)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TrustDep = Annotated[TrustStore, Depends(get_trust)]
ChecksDep = Annotated[Sequence[Check], Depends(get_checks)]
InboxDep = Annotated[Inbox, Depends(get_inbox)]
StatusesDep = Annotated[Statuses, Depends(get_statuses)]
WatchDep = Annotated[Watch, Depends(get_watch)]
# Not cached per request: the caller's token is looked up in a unit of work of its own.
ReadUowDep = Annotated[UnitOfWork, Depends(reading_uow, use_cache=False)]
WriteUowDep = Annotated[UnitOfWork, Depends(writing_uow, use_cache=False)]
