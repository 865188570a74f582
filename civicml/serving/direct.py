"""The hottest routes straight to their endpoints: FastAPI's routing and dependency solving skipped, nothing else.

Under load (8 connections, single rows) a py-spy profile of `civicml serve` spent about a fifth of
the event loop's CPU between the middlewares and `/predict`'s endpoint: route matching over the
table, FastAPI's exception and exit-stack layers, and its dependency solving (which parses the
query string and builds and edits a sub-response on every request), for an endpoint whose only
parameter besides the request is `explain`.

`DirectRoutes` is the innermost of the server's own middlewares (inside request context and
body limits, so request ids, metrics, headers and body limits are exactly as before). It answers
only a request it can answer the way the router would: `POST` to a listed route, with no query
string and no root path, by calling the endpoint with its query parameters' defaults. A path
with parameters (the v2 infer routes) is matched by the route's own `matches`, which converts
them too; no earlier route can take such a request first (the router's rule: the first full
match), because civicml's `POST` routes differ in their fixed segments. Everything else, a query
string included, takes FastAPI's way. For what it answers it does what the router does that is
visible: the scope names the route (the metrics label), endpoint and path parameters, and
exceptions reach the app's own handlers through Starlette's `ExceptionMiddleware`, so status
codes, bodies and headers are the ones FastAPI gives. The routes stay registered with FastAPI,
so `/openapi.json` documents them as before. `tests/integration/test_server_direct.py` compares
the two ways byte for byte.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.responses import Response
from starlette.routing import Match

Handler = Callable[[Request], Awaitable[Response]]


def _endpoint_app(handler: Handler) -> Callable[..., Awaitable[None]]:
    """An ASGI app calling `handler` and sending its response (what FastAPI's `request_response` does)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


class DirectRoutes:
    """Pure ASGI middleware answering `POST <path>` (no query string) with the route's endpoint directly.

    Args:
        app: The ASGI app to wrap (FastAPI's exception middleware and router).
        owner: The FastAPI app: its routes and exception handlers are read when the middleware
            stack is built (at the first request, once every route and handler is registered).
        handlers: Route path (as registered, e.g. `/v2/models/{name}/infer`) -> the endpoint called
            with its query parameters' defaults (what the route gives a request without a query
            string); path parameters are in `request.path_params`.
    """

    def __init__(self, app: Any, owner: FastAPI, handlers: Mapping[str, Handler]):
        self.app = app
        self.router = owner.router
        # FastAPI hands these to its ExceptionMiddleware the same way (`build_middleware_stack`).
        errors = {k: v for k, v in owner.exception_handlers.items() if k not in (500, Exception)}
        routes = {r.path: r for r in owner.routes if isinstance(r, APIRoute) and r.methods == {"POST"}}
        self.routes: dict[str, tuple[APIRoute, Any]] = {}
        self.patterns: list[tuple[APIRoute, Any]] = []
        for path, handler in handlers.items():
            entry = (routes[path], ExceptionMiddleware(_endpoint_app(handler), handlers=errors, debug=owner.debug))
            if routes[path].param_convertors:
                self.patterns.append(entry)
            else:
                self.routes[path] = entry

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("query_string"):
            app = None if scope.get("root_path") else self._match(scope)
            if app is not None:
                scope.setdefault("router", self.router)
                return app(scope, receive, send)
        return self.app(scope, receive, send)

    def _match(self, scope: dict[str, Any]) -> Any:
        """The app for a direct route, with the scope updated as the router would; None for FastAPI's way."""
        hit = self.routes.get(scope["path"])
        if hit is not None:
            route, app = hit
            # What Router and APIRoute.matches put in the scope (RequestContext labels metrics by route).
            scope.update(endpoint=route.endpoint, path_params={}, route=route)
            return app
        for route, app in self.patterns:
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                return app
        return None
