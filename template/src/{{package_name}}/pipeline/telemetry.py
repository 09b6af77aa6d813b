"""Observability of the batch: a span per stage, and metrics pushed to a Pushgateway.

A Job lives too briefly to be scraped, so its metrics go to the Prometheus Pushgateway at
PUSHGATEWAY_URL when the run ends (success or failure), grouped by job, `environment` and
`track` (TRACK: the canary's runs never overwrite stable's). A run adds to its group (POST)
rather than replacing it, and pushes only its own outcome's timestamp: the last success
survives a failed run, which deploy/monitoring/alerts.yaml relies on. Traces follow
OTEL_TRACES_EXPORTER like the services' ("none", "console" or "otlp").
"""

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span
from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from ..settings import Settings

log = logging.getLogger(__name__)


def _exporter(kind: str) -> SpanExporter | None:
    if kind == "console":
        return ConsoleSpanExporter()
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


class BatchTelemetry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.stage_duration = Gauge(
            "pipeline_stage_duration_seconds",
            "Duration of each stage in the last run",
            ("stage", "status"),
            registry=self.registry,
        )
        self.rows = Gauge(
            "pipeline_rows", "Rows handled by the last run", ("split",), registry=self.registry
        )
        self.model_metric = Gauge(
            "pipeline_model_metric",
            "Evaluation metrics of the last run's model",
            ("metric",),
            registry=self.registry,
        )
        self.provider: TracerProvider | None = None
        exporter = _exporter(settings.otel_traces_exporter)
        if exporter is not None:
            resource = Resource.create(
                {
                    "service.name": settings.service_name,
                    "deployment.environment": settings.environment,
                }
            )
            self.provider = TracerProvider(resource=resource)
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = (self.provider or trace.get_tracer_provider()).get_tracer(__name__)

    @contextmanager
    def stage(self, name: str) -> Iterator[Span]:
        """Trace and time one stage: `with telemetry.stage("train"): ...`."""
        with self.tracer.start_as_current_span(f"stage {name}") as span:
            span.set_attribute("pipeline.stage", name)
            start = time.perf_counter()
            status = "ok"
            try:
                yield span
            except BaseException:
                status = "error"
                raise
            finally:
                self.stage_duration.labels(name, status).set(time.perf_counter() - start)

    def record(self, counts: Mapping[str, int], metrics: Mapping[str, float]) -> None:
        for split, rows in counts.items():
            self.rows.labels(split).set(rows)
        for name, value in metrics.items():
            self.model_metric.labels(name).set(value)

    def grouping_key(self) -> dict[str, str]:
        """The Pushgateway group of this run: one per environment and track."""
        return {"environment": self.settings.environment, "track": self.settings.track}

    def finish(self, succeeded: bool) -> None:
        """Mark the run's outcome, push the metrics and flush the spans."""
        # Registered here, and only the outcome's: an unset gauge would push 0 over the other.
        if succeeded:
            outcome = Gauge(
                "pipeline_last_success_timestamp_seconds",
                "When a run last succeeded (alert when it is too old)",
                registry=self.registry,
            )
        else:
            outcome = Gauge(
                "pipeline_last_failure_timestamp_seconds",
                "When a run last failed",
                registry=self.registry,
            )
        outcome.set_to_current_time()
        if self.settings.pushgateway_url:
            try:
                pushadd_to_gateway(
                    self.settings.pushgateway_url,
                    job=self.settings.service_name,
                    registry=self.registry,
                    grouping_key=self.grouping_key(),
                )
            except OSError as error:
                log.warning("metrics not pushed", extra={"error": str(error)})
        self.close()

    def close(self) -> None:
        """Flush the spans; push nothing (a command that is not the batch run)."""
        if self.provider is not None:
            self.provider.shutdown()
