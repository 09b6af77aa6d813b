"""Request ids, request metrics, access logs and server spans: one pure ASGI middleware.

Pure ASGI (no BaseHTTPMiddleware, no `@app.middleware("http")`): no extra task nor body
stream per request; the response passes through untouched but for one header. Labels are
bounded: the route template (`/items/{item_id}`, "unmatched" for no route), the method (the
standard ones, else "other") and the status code.

With tracing on (tracing.py), each request but the probes gets one server span, started
here rather than by an instrumentation library's middleware: the caller's W3C `traceparent`
is extracted, the sampler decides, and a span that is not sampled costs a context switch and
nothing more (a non-recording span drops its attributes). The span is current while the app
runs, so the app's own spans and the client instrumentations nest under it.
"""

import logging
import os
import random
import re
import time

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import request_id_var
from .metrics import METHODS, HttpMetrics

access_log = logging.getLogger("access")

# A caller's X-Request-ID is kept when it looks like an id: 1 to 128 visible ASCII characters
# (no spaces, no control characters); anything else is replaced by a fresh id.
_CALLER_ID = re.compile(rb"[\x21-\x7e]{1,128}")
_HEADER = b"x-request-id"
# Liveness, readiness and the Prometheus scrape: frequent, uninteresting, never traced.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
Headers = list[tuple[bytes, bytes]]


class _AsgiHeaders(Getter[Headers]):
    """Reads the propagators' headers (`traceparent`, `tracestate`, `baggage`) from a scope's
    raw headers, whose names ASGI servers give in lower case."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        name = key.encode("latin-1")
        values = [str(value, "latin-1") for header, value in carrier if header == name]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [str(header, "latin-1") for header, _ in carrier]


_asgi_headers = _AsgiHeaders()


def request_id_of(scope: Scope) -> str:
    """The caller's request id when it is a sane one, else a new one (32 hex digits)."""
    for name, value in scope["headers"]:
        if name == _HEADER:
            if _CALLER_ID.fullmatch(value):
                return str(value, "ascii")
            break
    return os.urandom(16).hex()


def route_of(scope: Scope) -> str:
    """The matched route template, never the raw path (which would make labels unbounded)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestTelemetry:
    """Tag each HTTP request with an id, measure it, write its access-log line, trace it.

    `access_log_sample_rate`: the share of requests answered below 400 that get a line;
    4xx and 5xx answers always get one. `tracer_provider`: None when tracing is off.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: HttpMetrics,
        access_log_sample_rate: float,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.sample_rate = access_log_sample_rate
        self.tracer = tracer_provider.get_tracer(__name__) if tracer_provider else None

    def sampled(self, status: int) -> bool:
        """Whether the answer gets an access-log line."""
        if status >= 400 or self.sample_rate >= 1:
            return True
        # sampling, not a secret: the standard generator is right here
        return random.random() < self.sample_rate  # noqa: S311  # nosec B311

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
        span = None
        failure: str | None = None  # the exception's class, when the app raised one
        if self.tracer is not None and scope["path"] not in UNTRACED_PATHS:
            span = self.start_span(self.tracer, scope)
            # Current while the app runs: its spans and the client instrumentations' nest.
            span_token = context.attach(trace.set_span_in_context(span))
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            failure = type(error).__qualname__
            if span is not None and span.is_recording():
                span.record_exception(error)
            raise
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
            if span is not None:
                context.detach(span_token)
                self.end_span(span, scope["method"], route, status, failure)
            request_id_var.reset(token)

    @staticmethod
    def start_span(tracer: trace.Tracer, scope: Scope) -> Span:
        """The request's server span, child of the caller's `traceparent` if it sent one.

        Attribute names are OpenTelemetry's HTTP semantic conventions (stable since 1.23): the
        required ones and `http.route`. `network.protocol.version`, only recommended and all but
        always "1.1" behind an ingress, is left out: each attribute costs about 5 µs a span.
        """
        parent = propagate.extract(scope["headers"], getter=_asgi_headers)
        method = scope["method"]
        known = method in METHODS
        attributes = {
            "http.request.method": method if known else "_OTHER",
            "url.path": scope["path"],
            "url.scheme": scope["scheme"],
        }
        if not known:
            attributes["http.request.method_original"] = method
        # Named once the router has matched the route (end_span); the sampler needs no name.
        # A span the sampler drops keeps no attributes.
        return tracer.start_span(
            "HTTP", context=parent, kind=SpanKind.SERVER, attributes=attributes
        )

    @staticmethod
    def end_span(span: Span, method: str, route: str, status: int, failure: str | None) -> None:
        """Name the span after the route template (`GET /items/{item_id}`), record the answer.

        A 5xx or an exception marks the span as an error; a 4xx is the caller's error (unset).
        """
        if span.is_recording():
            name = method if method in METHODS else "HTTP"
            attributes: dict[str, str | int] = {"http.response.status_code": status}
            if route != "unmatched":
                attributes["http.route"] = route
                name = f"{name} {route}"
            if failure is not None or status >= 500:
                attributes["error.type"] = failure or str(status)
                span.set_status(StatusCode.ERROR, failure)
            span.set_attributes(attributes)
            span.update_name(name)
        span.end()
