"""Request ids, request metrics and access logs: one pure ASGI middleware around the app.

Pure ASGI (no BaseHTTPMiddleware, no `@app.middleware("http")`): no extra task nor body
stream per request; the response passes through untouched but for one header. Labels are
bounded: the route template (`/items/{item_id}`, "unmatched" for no route), the method (the
standard ones, else "other") and the status code.
"""

import logging
import random
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import request_id_var
from .metrics import HttpMetrics

access_log = logging.getLogger("access")

# A caller's X-Request-ID is kept when it looks like an id: 1 to 128 visible ASCII characters
# (no spaces, no control characters); anything else is replaced by a fresh id.
_CALLER_ID = re.compile(rb"[\x21-\x7e]{1,128}")
_HEADER = b"x-request-id"


def request_id_of(scope: Scope) -> str:
    """The caller's request id when it is a sane one, else a new one (32 hex digits)."""
    for name, value in scope["headers"]:
        if name == _HEADER:
            if _CALLER_ID.fullmatch(value):
                return str(value, "ascii")
            break
    return uuid.uuid4().hex


def route_of(scope: Scope) -> str:
    """The matched route template, never the raw path (which would make labels unbounded)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestTelemetry:
    """Tag each HTTP request with an id, measure it and write its access-log line.

    `access_log_sample_rate`: the share of requests answered below 400 that get a line;
    4xx and 5xx answers always get one.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, access_log_sample_rate: float) -> None:
        self.app = app
        self.metrics = metrics
        self.sample_rate = access_log_sample_rate

    def sampled(self, status: int) -> bool:
        """Whether the answer gets an access-log line."""
        if status >= 400 or self.sample_rate >= 1:
            return True
        return random.random() < self.sample_rate  # noqa: S311 (sampling, not a secret)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        id_header = (_HEADER, request_id.encode("ascii"))
        status = 500  # when the app fails before it answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        token = request_id_var.set(request_id)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = route_of(scope)
            if route != "/metrics":
                self.metrics.observe(scope["method"], route, status, elapsed)
            if self.sampled(status):
                access_log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)
