"""The FastAPI application, built around a :class:`Runtime`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ..bootstrap import Runtime
from . import authorities, documents, review, system
from .errors import install_error_handlers
from .limits import BodyLimitMiddleware


def create_app(runtime: Runtime, *, background: bool = False) -> FastAPI:
    """The API for ``runtime``; with ``background`` the lifespan runs workers too."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background:
            runtime.start()
        try:
            yield
        finally:
            if background:
                runtime.stop()

    app = FastAPI(
        title="congvan",
        version="1",
        summary="Official electronic documents between state agencies: review, sign, send, track.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(BodyLimitMiddleware, max_bytes=runtime.settings.max_request_bytes)
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(documents.router)
    app.include_router(review.router)
    app.include_router(authorities.router)
    return app
