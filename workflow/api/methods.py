"""HTTP methods as RFC 9110 has them: HEAD wherever GET is, and an honest ``Allow``.

FastAPI's routes answer only the methods they declare, so ``HEAD /v1/documents`` was 405
though ``GET`` is served there (RFC 9110 9.3.2: a server supporting GET supports HEAD);
and a 405 named in ``Allow`` only the methods of the first route whose path matched.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadMiddleware:
    """Answer ``HEAD`` as ``GET`` would, headers and status alike, with no body.

    Plain ASGI: the request runs as a GET (its token, its checks, its errors), and the
    body the app sends is dropped; ``Content-Length`` says what a GET would have sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)


# The methods the API declares routes for (HEAD comes with GET; OPTIONS is served nowhere).
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> str:
    """Every method the routes serve at the request's path, as ``Allow`` lists them.

    Each method is asked of the routes as the router would (``matches``), so included
    routers answer for their own routes whatever their structure.
    """
    methods = {
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    }
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
