"""Prediction health in Prometheus, every series labelled with the model version.

    model_info{model_name, model_version}                   1 for the served version
    model_prediction_duration_seconds{model_version, endpoint}   latency of the model call
    model_predictions_total{model_version, endpoint}        rows predicted
    model_prediction_errors_total{model_version, reason}    invalid_input | model_error
    model_prediction_value{model_version}                   histogram of the predictions,
                                                            in the training profile's bins
    model_input_bin_total{model_version, feature, bin}      key features, counted per
                                                            training-profile bin
    model_drift_psi{model_version, column}                  PSI of the last MODEL_DRIFT_WINDOW
                                                            rows against the training profile
    model_drift_zscore{model_version, column}               the window's mean, in standard
                                                            errors from the training mean

Labels stay bounded: one version per process, the key features (MODEL_MONITORED_FEATURES,
at most 20) and at most 10 bins each. Drift series are NaN until MODEL_DRIFT_MIN_ROWS rows
have been seen, so alerts do not fire on a handful of requests.
"""

import collections
import math
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..drift import PREDICTION, DriftWindow
from ..settings import Settings
from .model import ServedModel

MAX_MONITORED = 20
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PredictionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.info = Gauge(
            "model_info", "The served model", ("model_name", "model_version"), registry=registry
        )
        self.latency = Histogram(
            "model_prediction_duration_seconds",
            "Time the model takes to predict one request",
            ("model_version", "endpoint"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rows = Counter(
            "model_predictions_total",
            "Rows predicted",
            ("model_version", "endpoint"),
            registry=registry,
        )
        self.errors = Counter(
            "model_prediction_errors_total",
            "Prediction requests that failed: invalid_input (422) or model_error (500)",
            ("model_version", "reason"),
            registry=registry,
        )
        self.inputs = Counter(
            "model_input_bin_total",
            "Values of the key input features, per bin of the training profile",
            ("model_version", "feature", "bin"),
            registry=registry,
        )
        self.psi = Gauge(
            "model_drift_psi",
            "Population stability index of the recent rows against the training profile",
            ("model_version", "column"),
            registry=registry,
        )
        self.zscore = Gauge(
            "model_drift_zscore",
            "Mean of the recent rows, in standard errors from the training mean",
            ("model_version", "column"),
            registry=registry,
        )
        self.values: Histogram | None = None
        self.windows: dict[str, DriftWindow] = {}
        self._bins: dict[tuple[str, int], Counter] = {}
        self.version = "none"

    def start(self, model: ServedModel, settings: Settings) -> None:
        """Label everything with the loaded version; watch the key features' drift."""
        self.version = model.version
        self.info.labels(model.name, model.version).set(1)
        for reason in ("invalid_input", "model_error"):
            self.errors.labels(model.version, reason)  # zero from the start: rates exist
        profile = model.profile or {}
        numeric = [c.name for c in model.columns if c.type not in ("string", "boolean")]
        wanted = settings.model_monitored_features or numeric[:MAX_MONITORED]
        monitored = [name for name in wanted[:MAX_MONITORED] if name in profile]
        for column in [*monitored, PREDICTION] if PREDICTION in profile else monitored:
            window = DriftWindow(
                profile[column], settings.model_drift_window, settings.model_drift_min_rows
            )
            self.windows[column] = window
            self.psi.labels(model.version, column).set_function(window.psi)
            self.zscore.labels(model.version, column).set_function(window.zscore)
        edges = [edge for edge in profile[PREDICTION].edges] if PREDICTION in profile else []
        if edges:  # a histogram needs two buckets: an edge and +Inf
            self.values = Histogram(
                "model_prediction_value",
                "The predictions, in the bins of the training profile",
                ("model_version",),
                buckets=[*edges, math.inf],
                registry=self.registry,
            )

    def observe(
        self, endpoint: str, seconds: float, rows: Sequence[dict[str, Any]], predictions: Any
    ) -> None:
        self.latency.labels(self.version, endpoint).observe(seconds)
        self.rows.labels(self.version, endpoint).inc(len(rows))
        for column, window in self.windows.items():
            if column == PREDICTION:
                continue
            values = [float(row[column]) for row in rows if row.get(column) is not None]
            # One increment per bin, not per value: a batch of 100 rows is 100 values a feature.
            for index, count in collections.Counter(window.add(values)).items():
                self._bin_counter(column, index).inc(count)
        numbers = _numbers(predictions)
        if numbers is None:
            return
        if PREDICTION in self.windows:
            self.windows[PREDICTION].add(numbers)
        if self.values is not None:
            histogram = self.values.labels(self.version)
            for value in numbers:
                histogram.observe(value)

    def _bin_counter(self, column: str, index: int) -> Counter:
        """The series of one bin of one feature, looked up once (labels() takes a lock)."""
        counter = self._bins.get((column, index))
        if counter is None:
            counter = self._bins[(column, index)] = self.inputs.labels(
                self.version, column, str(index)
            )
        return counter

    def failed(self, reason: str) -> None:
        self.errors.labels(self.version, reason).inc()


def _numbers(predictions: Any) -> list[float] | None:
    """One number per row when the model predicts one (a label or a score), else None."""
    try:
        values = [float(value) for value in predictions]
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(value) for value in values) else None
