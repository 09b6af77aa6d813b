"""Prometheus metrics: request count, error count and latency by method, route and status."""

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

LABELS = ("method", "route", "status")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Any other method (HTTP allows any token) is counted as "other": bounded label values.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """The golden-signal metrics of one app, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests_total", "HTTP requests handled", LABELS, registry=self.registry
        )
        self.errors = Counter(
            "http_request_errors_total",
            "HTTP requests answered with a 4xx or 5xx status",
            LABELS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # (method, route, status) -> its bound series, looked up once per label set.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter | None]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in METHODS else "other", route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._bind(*key)
        requests, latency, errors = series
        requests.inc()
        latency.observe(seconds)
        if errors is not None:
            errors.inc()

    def _bind(
        self, method: str, route: str, status: int
    ) -> tuple[Counter, Histogram, Counter | None]:
        labels = (method, route, str(status))
        errors = self.errors.labels(*labels) if status >= 400 else None
        return self.requests.labels(*labels), self.latency.labels(*labels), errors

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, metrics: HttpMetrics) -> None:
    """Serve the registry on GET /metrics (not counted itself)."""

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return metrics.exposition()
