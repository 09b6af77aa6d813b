"""OpenTelemetry tracing; off unless OTEL_TRACES_EXPORTER is "console" or "otlp".

One server span per request (no extra spans per ASGI message), sampled by trace id at
OTEL_TRACES_SAMPLER_ARG unless the caller's `traceparent` already decided, exported in
batches by a background thread. Probes and scrapes are not traced.
"""

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from .settings import Settings

# Matched against scheme://host/path: liveness, readiness and the Prometheus scrape.
UNTRACED_URLS = r"^[a-z]+://[^/]*/(healthz|readyz|metrics)$"


def _exporter(kind: str) -> SpanExporter | None:
    if kind == "console":
        return ConsoleSpanExporter()
    if kind == "otlp":
        # Endpoint, headers and timeout come from the standard OTEL_EXPORTER_OTLP_* variables.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


def configure_tracing(app: FastAPI, settings: Settings) -> TracerProvider | None:
    """Trace the requests of `app` when an exporter is configured; return the provider."""
    exporter = _exporter(settings.otel_traces_exporter)
    if exporter is None:
        return None
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "deployment.environment": settings.environment,
        }
    )
    sampler = ParentBased(TraceIdRatioBased(settings.otel_traces_sampler_arg))
    provider = TracerProvider(resource=resource, sampler=sampler)
    # Spans wait in a bounded queue; a background thread exports them, off the request path.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=UNTRACED_URLS,
        exclude_spans=["receive", "send"],
    )
    return provider
