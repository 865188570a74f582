"""Prometheus metrics of the model server and the request-context middleware that records them.

`RequestContext` is a pure ASGI middleware: it gives every request a server-issued id
(`scope["state"]["request_id"]`), echoes the caller's `X-Request-ID` (or the issued id) and the
serving arm/version in the response headers, counts requests, errors and latency per route, and
turns an unhandled exception into a JSON 500 that names the request id instead of a bare drop.
"""

from __future__ import annotations

import json
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from civicml.serving.asgi import HttpMiddleware
from civicml.serving.auth import IdIssuer, valid_client_id

log = logging.getLogger("civicml.serving")

REQUEST_ID_HEADER = "X-Request-ID"
VERSION_HEADER = "X-Model-Version"
ARM_HEADER = "X-Model-Arm"


class ServerMetrics:
    """The server's Prometheus collectors, in a registry of their own (several apps per process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "civicml_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.errors = Counter(
            "civicml_request_errors_total",
            "HTTP responses with status >= 400",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "civicml_request_latency_seconds",
            "request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.predictions = Counter(
            "civicml_predictions_total", "predicted rows per arm", ["arm", "version"], registry=self.registry
        )
        self.feedback = Counter(
            "civicml_feedback_total", "feedback records received, by outcome", ["result"], registry=self.registry
        )
        self.cancelled = Counter(
            "civicml_cancelled_total", "requests whose client left before the answer", registry=self.registry
        )
        self.served = Gauge(
            "civicml_served_version", "1 for each (arm, version) served now", ["arm", "version"], registry=self.registry
        )
        self.reloads = Counter(
            "civicml_model_reloads_total",
            "routing refreshes that changed what is served (switched) or could not (failed, routing_unreadable)",
            ["result"],
            registry=self.registry,
        )


class RequestContext(HttpMiddleware):
    """Pure ASGI middleware: request ids, response headers, metrics and a JSON 500 for the unexpected."""

    def __init__(self, app, metrics: ServerMetrics, issuer: IdIssuer):
        super().__init__(app)
        self.metrics = metrics
        self.issuer = issuer

    async def http(self, scope, receive, send):
        state = scope.setdefault("state", {})
        state["request_id"] = self.issuer.issue()
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        state["client_id"] = given if given and valid_client_id(given) else None
        t0 = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def stamped_send(message):
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                headers = list(message.get("headers", []))
                echo = state.get("client_id") or state["request_id"]
                headers.append((REQUEST_ID_HEADER.lower().encode(), echo.encode()))
                if state.get("version"):
                    headers.append((VERSION_HEADER.lower().encode(), state["version"].encode()))
                    headers.append((ARM_HEADER.lower().encode(), state["arm"].encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, stamped_send)
        except Exception:
            log.exception("unhandled error in request %s", state["request_id"])
            if not status["sent"]:
                body = json.dumps(
                    {"error": "internal error", "detail": "internal error", "request_id": state["request_id"]}
                ).encode()
                await stamped_send(
                    {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]}
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            code = str(status["code"])
            self.metrics.requests.labels(route, scope.get("method", ""), code).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t0)
            if status["code"] >= 400:
                self.metrics.errors.labels(route, code).inc()
