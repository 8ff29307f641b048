"""The FastAPI application, built around a :class:`Runtime`."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel

from ..bootstrap import Runtime
from . import (
    authorities,
    documents,
    escalations,
    explain,
    inbox,
    notifications,
    recalls,
    received,
    review,
    signatures,
    system,
    time_rules,
)
from .encoding import EncodingMiddleware
from .errors import install_error_handlers
from .limits import BodyLimitMiddleware
from .methods import HeadMiddleware
from .outputs import declare_conditions, header_specs
from .parameters import check_parameters
from .requests import RequestIdMiddleware
from .schemas import DocumentIn


def create_app(runtime: Runtime, *, background: bool = False, hand_off: bool = False) -> FastAPI:
    """The API for ``runtime``; with ``background`` the lifespan runs workers, relay and
    scheduler too; with ``hand_off`` alone (an API process beside workers on Redis), the
    relay sends the jobs the API's transactions write, and leaves the table to the
    scheduler's relay."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background:
            runtime.start()
        elif hand_off:
            runtime.start(workers=False, relay=False, scheduler=False, hand_off=True)
        try:
            yield
        finally:
            if background or hand_off:
                runtime.stop()

    # Swagger UI's files come from the fastapi-offline package: /docs needs no internet.
    app = FastAPIOffline(
        title="congvan",
        version="1",
        summary="Official electronic documents between state agencies: review, sign, send, track.",
        lifespan=lifespan,
        # A form part's own cap is the whole request's: the metadata part of a letter
        # within every text limit can pass Starlette's 1 MiB once JSON escapes are
        # counted (\\uXXXX is 6 bytes a letter). The body limit still bounds everything.
        form_limits={"max_part_size": runtime.settings.max_request_bytes},
        dependencies=[Depends(check_parameters)],
        # A path with a trailing slash is not found: a redirect to it would be built from
        # the request's Host header, and answered before any token is asked for.
        redirect_slashes=False,
    )
    app.state.runtime = runtime
    app.state.inbox_reading = threading.BoundedSemaphore(runtime.settings.inbox_concurrency)
    # The size limit is outside the encoding check: it counts bytes before the check reads them.
    app.add_middleware(EncodingMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=runtime.settings.max_request_bytes,
        idle_seconds=runtime.settings.body_idle_seconds,
        min_bytes_per_second=runtime.settings.body_min_bytes_per_second,
    )
    app.add_middleware(HeadMiddleware)
    app.add_middleware(RequestIdMiddleware)  # outermost: the limit's own answers carry it
    install_error_handlers(app)

    # Routes are matched in order, one by one: what every peer's delivery and status
    # message hits comes first (their paths are no other router's).
    app.include_router(inbox.router)
    app.include_router(inbox.status_router)
    app.include_router(system.router)
    app.include_router(documents.router)
    app.include_router(explain.router)
    app.include_router(recalls.router)
    app.include_router(review.router)
    app.include_router(authorities.router)
    app.include_router(signatures.router)
    app.include_router(received.router)
    app.include_router(escalations.router)
    app.include_router(time_rules.router)
    app.include_router(notifications.routes_router)
    app.include_router(notifications.notices_router)
    _publish_schemas(app, runtime.settings.max_page_size, DocumentIn)
    return app


def _publish_schemas(app: FastAPI, max_page_size: int, *models: type[BaseModel]) -> None:
    """Put ``models`` in the OpenAPI components (bodies a route reads by hand refer to them),
    the header every answer carries in every answer, what the conditional requests of
    every route are answered (``declare_conditions``) and how long a page may be."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            for schema in schemas.values():  # a part marked {"x-schema": name} → its $ref
                for name, part in schema.get("properties", {}).items():
                    if "x-schema" in part:
                        ref = f"#/components/schemas/{part['x-schema']}"
                        schema["properties"][name] = {"$ref": ref}
            for method, operation in (
                (m, o) for path in spec["paths"].values() for m, o in path.items()
            ):
                declare_conditions(method, operation)
                for answer in operation["responses"].values():  # the middleware's headers
                    answer.setdefault("headers", {}).update(
                        header_specs("X-Request-ID", "X-Content-Type-Options")
                    )
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "limit" and parameter["in"] == "query":
                        parameter["schema"]["maximum"] = max_page_size
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
