"""Request limits as a pure ASGI middleware: body size while reading, body-read timeout, safe ids.

A pure ASGI middleware (not Starlette's BaseHTTPMiddleware) sees each body chunk as it
arrives, so a 300 MB body is refused after `max_body_bytes`, not after it was buffered, and a
client that trickles its body is cut off after `body_timeout_seconds`. It also passes the
`http.disconnect` message straight through, so endpoints can notice a client that left.

`parse_json` bounds the parser: nesting deeper than Python's recursion limit and integers with
more digits than `sys.get_int_max_str_digits()` are a 4xx, not a 500.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from civicml.serving.asgi import HttpMiddleware
from civicml.serving.auth import valid_client_id
from civicml.serving.oip import error_text

REQUEST_ID_HEADER = b"x-request-id"


class BodyTooLarge(Exception):
    """The request body exceeds the limit (raised while reading)."""

    def __init__(self, limit: int):
        super().__init__(f"request body larger than {limit} bytes; send smaller batches")
        self.limit = limit


class BodyTimeout(Exception):
    """The request body did not arrive within the time limit."""

    def __init__(self, seconds: float):
        super().__init__(f"request body not received within {seconds:g} s; send the whole body at once")
        self.seconds = seconds


class BodyError(ValueError):
    """A body that is not acceptable JSON; `kind` and `msg` go into the 422 detail."""

    def __init__(self, kind: str, msg: str, pos: int = 0):
        super().__init__(msg)
        self.kind, self.msg, self.pos = kind, msg, pos


def parse_json(raw: bytes) -> Any:
    """Parse a request body, turning every parser limit into a `BodyError`."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise BodyError("json_invalid", f"JSON decode error: {err}", err.pos) from None
    except UnicodeDecodeError:
        raise BodyError("json_invalid", "the body is not UTF-8 text") from None
    except RecursionError:
        raise BodyError("json_too_deep", "JSON nested too deeply; records are flat objects of feature: value") from None
    except ValueError as err:  # e.g. an integer with more than 4300 digits
        raise BodyError("json_invalid", f"JSON value out of range: {err}") from None


async def _send_json(send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


class BodyLimits(HttpMiddleware):
    """Pure ASGI middleware bounding request bodies and refusing unsafe request-id headers.

    Args:
        app: The ASGI app to wrap.
        max_body_bytes: Larger bodies get 413, from Content-Length before reading or while streaming.
        body_timeout_seconds: A body not fully received by then gets 408.
    """

    def __init__(self, app, max_body_bytes: int, body_timeout_seconds: float):
        super().__init__(app)
        self.max = max_body_bytes
        self.timeout = body_timeout_seconds

    async def http(self, scope, receive, send):
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID_HEADER)
        if given is not None and not valid_client_id(given.decode("latin-1")):
            # Refused before anything is logged or echoed: CR/LF/NUL/U+2028 would forge log lines or headers.
            await _send_json(send, 422, _detail("header_invalid", ["header", "X-Request-ID"], _ID_RULE))
            return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max):
            status = 413 if length.isdigit() else 400
            await _send_json(send, status, _detail("too_long", ["body"], str(BodyTooLarge(self.max))))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        state = {"received": 0, "done": scope.get("method") in ("GET", "HEAD", "OPTIONS")}

        async def limited_receive():
            if state["done"]:
                return await receive()  # after the body: disconnect detection passes straight through
            remaining = deadline - loop.time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.0))
            except asyncio.TimeoutError:
                raise BodyTimeout(self.timeout) from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max:
                    raise BodyTooLarge(self.max)
                if not message.get("more_body", False):
                    state["done"] = True
            return message

        started = {"yes": False}

        async def watched_send(message):
            if message["type"] == "http.response.start":
                started["yes"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except (BodyTooLarge, BodyTimeout) as err:
            # Raised while reading inside an endpoint that let it through: answer here if nothing was sent.
            if not started["yes"]:
                status = 413 if isinstance(err, BodyTooLarge) else 408
                await _send_json(send, status, _detail("too_long" if status == 413 else "timeout", ["body"], str(err)))


_ID_RULE = "X-Request-ID must be 1-128 printable ASCII characters (no spaces or control characters), e.g. case-1234"


def _detail(kind: str, loc: list[Any], msg: str) -> dict[str, Any]:
    problems = [{"type": kind, "loc": loc, "msg": msg, "input": None}]
    return {"error": error_text(problems), "detail": problems}
