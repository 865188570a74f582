"""The base of the server's pure ASGI middlewares (`limits.BodyLimits`, `metrics.RequestContext`).

Pure ASGI rather than Starlette's BaseHTTPMiddleware: a middleware sees each body chunk as it
arrives and passes `http.disconnect` straight through (see `limits`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any


class HttpMiddleware:
    """Wraps `app` for HTTP requests; every other scope (lifespan, websocket) goes straight to `app`.

    Subclasses implement `http(scope, receive, send)`. `__call__` is a plain function that returns
    the awaitable it picks, so the dispatch adds no coroutine of its own to a request.
    """

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self.http(scope, receive, send)

    async def http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Handle one HTTP request."""
        raise NotImplementedError
