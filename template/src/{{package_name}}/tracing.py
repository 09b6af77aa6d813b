"""OpenTelemetry tracing; off unless OTEL_TRACES_EXPORTER is "console" or "otlp".

This module sets up the tracer provider: sampled by trace id at OTEL_TRACES_SAMPLER_ARG
unless the caller's `traceparent` already decided, spans exported in batches by a background
thread. The request middleware (middleware.py) starts one server span per request with it;
probes and scrapes are not traced.
"""

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from .settings import Settings


class _HashedOnce(Resource):
    """A resource whose hash is computed once. The OTLP exporter groups every span it encodes
    by resource, and the SDK's `Resource.__hash__` dumps the attributes to JSON each time:
    a tenth of the export's CPU. The attributes are immutable, so the hash never changes."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def _exporter(kind: str) -> SpanExporter | None:
    if kind == "console":
        return ConsoleSpanExporter()
    if kind == "otlp":
        # Endpoint, headers and timeout come from the standard OTEL_EXPORTER_OTLP_* variables.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """The service's tracer provider (also made the global one) when an exporter is set."""
    exporter = _exporter(settings.otel_traces_exporter)
    if exporter is None:
        return None
    resource = _HashedOnce(
        Resource.create(
            {
                "service.name": settings.service_name,
                "deployment.environment": settings.environment,
            }
        )
    )
    sampler = ParentBased(TraceIdRatioBased(settings.otel_traces_sampler_arg))
    provider = TracerProvider(resource=resource, sampler=sampler)
    # Spans wait in a bounded queue; a background thread exports them, off the request path.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    # The global provider: what the app's own spans and the client instrumentations use.
    trace.set_tracer_provider(provider)
    return provider
