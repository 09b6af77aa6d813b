"""Prediction health of a canary against stable, from Prometheus (standard library only).

Run by check-canary-health.sh after the golden signals pass, for a service that serves a
model (src/<package>/serving/monitor.py exports the series). Over the last WINDOW, for the
canary and for stable (each labelled with the model_version it serves):

    predictions   sum(increase(model_prediction_duration_seconds_count[W]))   requests
    model errors  model_error / (model_error + predictions)                   ratio
    model p99     histogram_quantile(0.99, model_prediction_duration_seconds)  seconds
    prediction    PSI between the canary's and stable's prediction histograms
      shift       (model_prediction_value, on the bucket bounds both share)
    input drift   max model_drift_psi over the key features (shown, not judged:
                  both tracks see the same traffic)

The canary fails when its model error ratio is above PH_MAX_MODEL_ERROR_RATIO [0.02] or
above stable's + CANARY_MAX_MODEL_ERROR_INCREASE [0.01]; its model p99 above stable's x
CANARY_MAX_LATENCY_RATIO [1.5] + CANARY_LATENCY_SLACK_SECONDS [0.05]; or its predictions
shifted from stable's by a PSI above CANARY_MAX_PREDICTION_PSI [0.25] ("off" disables a
check). With fewer than PH_MIN_PREDICTIONS [100] canary predictions in the window the
result is inconclusive (exit 6), never a pass by default.

Exit codes: 0 healthy; 1 a limit exceeded; 2 usage error; 4 no prediction series (not a
model-serving service, or not scraped); 5 Prometheus unreachable; 6 inconclusive.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from golden_signals import (
    EXIT_FAILED,
    EXIT_INCONCLUSIVE,
    EXIT_NO_DATA,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Prometheus,
    PrometheusError,
    UsageError,
    check_source,
    env_number,
    print_table,
    selector,
)

EPSILON = 1e-4


def buckets(prometheus: Prometheus, labels: str, window: str) -> dict[float, float]:
    """Cumulative counts of the prediction histogram in the window, by upper bound."""
    query = f"sum by (le) (increase(model_prediction_value_bucket{selector(labels)}[{window}]))"
    counts: dict[float, float] = {}
    for bound in prometheus.labels_of(query, "le"):
        one = selector(labels, 'le="' + bound + '"')
        value = prometheus.value(f"sum(increase(model_prediction_value_bucket{one}[{window}]))")
        counts[float(bound)] = value or 0.0
    return counts


def shares(cumulative: dict[float, float], bounds: list[float]) -> list[float] | None:
    """Per-bin shares of a cumulative histogram over the given bounds (None when empty)."""
    total = cumulative.get(math.inf, 0.0)
    if total <= 0:
        return None
    previous, result = 0.0, []
    for bound in bounds:
        result.append(max(cumulative[bound] - previous, 0.0) / total)
        previous = cumulative[bound]
    return result


def psi(expected: list[float], actual: list[float]) -> float:
    total = 0.0
    for reference, live in zip(expected, actual, strict=True):
        reference, live = max(reference, EPSILON), max(live, EPSILON)
        total += (live - reference) * math.log(live / reference)
    return total


def measure(prometheus: Prometheus, labels: str, window: str) -> dict[str, float | None]:
    s = selector(labels)
    errors_s = selector(labels, 'reason="model_error"')
    features = selector(labels, 'column!="prediction"')
    predictions = prometheus.value(
        f"sum(increase(model_prediction_duration_seconds_count{s}[{window}]))"
    )
    errors = prometheus.value(f"sum(increase(model_prediction_errors_total{errors_s}[{window}]))")
    done = (predictions or 0.0) + (errors or 0.0)
    return {
        "predictions": predictions,
        "error_ratio": (errors or 0.0) / done if done else None,
        "p99": prometheus.value(
            "histogram_quantile(0.99, sum by (le) "
            f"(rate(model_prediction_duration_seconds_bucket{s}[{window}])))"
        ),
        "input_psi": prometheus.value(f"max(model_drift_psi{features})"),
    }


def versions(prometheus: Prometheus, labels: str) -> str:
    return ",".join(
        sorted(set(prometheus.labels_of(f"model_info{selector(labels)}", "model_version")))
    )


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.2f}%" if unit == "ratio" else f"{value:.4g}{'s' if unit == 's' else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus-url", default=os.environ.get("PROMETHEUS_URL", ""))
    parser.add_argument("--window", default=os.environ.get("GS_WINDOW", "5m"))
    parser.add_argument("--stable-selector", required=True)
    parser.add_argument("--canary-selector", required=True)
    args = parser.parse_args(argv)
    try:
        check_source(args.prometheus_url, args.window)
        max_error = env_number("PH_MAX_MODEL_ERROR_RATIO", 0.02)
        error_increase = env_number("CANARY_MAX_MODEL_ERROR_INCREASE", 0.01)
        latency_ratio = env_number("CANARY_MAX_LATENCY_RATIO", 1.5)
        latency_slack = env_number("CANARY_LATENCY_SLACK_SECONDS", 0.05) or 0.0
        max_shift = env_number("CANARY_MAX_PREDICTION_PSI", 0.25)
        minimum = env_number("PH_MIN_PREDICTIONS", 100.0) or 0.0
        prometheus = Prometheus(args.prometheus_url)
        tracks = {"stable": args.stable_selector, "canary": args.canary_selector}
        found = {name: versions(prometheus, labels) for name, labels in tracks.items()}
        if not all(found.values()):
            missing = [name for name, version in found.items() if not version]
            print(
                f"no data: no model_info series for {', '.join(missing)}: is the model "
                "served and scraped with app/track/namespace labels?",
                file=sys.stderr,
            )
            return EXIT_NO_DATA
        scopes = {name: measure(prometheus, labels, args.window) for name, labels in tracks.items()}
        histograms = {
            name: buckets(prometheus, labels, args.window) for name, labels in tracks.items()
        }
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except PrometheusError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE

    stable, canary = scopes["stable"], scopes["canary"]
    bounds = sorted(set(histograms["stable"]) & set(histograms["canary"]))
    stable_shares = shares(histograms["stable"], bounds) if math.inf in bounds else None
    canary_shares = shares(histograms["canary"], bounds) if math.inf in bounds else None
    shift = psi(stable_shares, canary_shares) if stable_shares and canary_shares else None

    failures: list[str] = []
    error_limit = None
    if max_error is not None or error_increase is not None:
        limits = [max_error] if max_error is not None else []
        if error_increase is not None and stable["error_ratio"] is not None:
            limits.append(stable["error_ratio"] + error_increase)
        error_limit = min(limits) if limits else None
    if error_limit is not None and (canary["error_ratio"] or 0.0) > error_limit:
        failures.append(
            f"model errors: canary {show(canary['error_ratio'], 'ratio')} above {show(error_limit, 'ratio')}"
        )
    p99_limit = None
    if latency_ratio is not None and stable["p99"] is not None:
        p99_limit = stable["p99"] * latency_ratio + latency_slack
        if canary["p99"] is not None and canary["p99"] > p99_limit:
            failures.append(
                f"model p99: canary {show(canary['p99'], 's')} above {show(p99_limit, 's')} (stable x CANARY_MAX_LATENCY_RATIO + slack)"
            )
    if max_shift is not None and shift is not None and shift > max_shift:
        failures.append(
            f"prediction shift: PSI {shift:.3f} between canary and stable predictions above {max_shift} (CANARY_MAX_PREDICTION_PSI)"
        )

    print(f"prediction health over the last {args.window} from {prometheus.url}")
    for name, labels in tracks.items():
        print(f"  {name}: {selector(labels)} model version {found[name]}")
    print()
    print_table(
        ["SIGNAL", "STABLE", "CANARY", "LIMIT"],
        [
            [
                "predictions",
                show(stable["predictions"], "n"),
                show(canary["predictions"], "n"),
                f">= {minimum:g}",
            ],
            [
                "model errors",
                show(stable["error_ratio"], "ratio"),
                show(canary["error_ratio"], "ratio"),
                show(error_limit, "ratio"),
            ],
            ["model p99", show(stable["p99"], "s"), show(canary["p99"], "s"), show(p99_limit, "s")],
            ["prediction shift (PSI)", "-", show(shift, "n"), show(max_shift, "n")],
            [
                "input drift (max PSI)",
                show(stable["input_psi"], "n"),
                show(canary["input_psi"], "n"),
                "alerts: 0.2",
            ],
        ],
    )
    print()
    for problem in failures:
        print(f"FAIL {problem}")
    if failures:
        print("RESULT: FAIL")
        return EXIT_FAILED
    if (canary["predictions"] or 0.0) < minimum:
        print(
            f"RESULT: INCONCLUSIVE (canary: {canary['predictions'] or 0:.0f} predictions, PH_MIN_PREDICTIONS {minimum:g})"
        )
        return EXIT_INCONCLUSIVE
    print("RESULT: PASS")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
