"""Metric checks: between canary steps, and before a model is registered or promoted."""

from collections.abc import Mapping

from .params import EvaluateParams

GATED = ("accuracy", "roc_auc", "f1")  # compared with production's; higher is better


def problems(
    metrics: Mapping[str, float],
    limits: EvaluateParams,
    baseline: Mapping[str, float] | None = None,
) -> list[str]:
    """What keeps `metrics` from passing; empty when they pass.

    `baseline` is the production model's metrics: a candidate may not be worse by more than
    `max_regression` on any of them.
    """
    found = []
    for name, minimum in (("accuracy", limits.min_accuracy), ("roc_auc", limits.min_roc_auc)):
        value = metrics.get(name)
        if value is None:
            found.append(f"{name} is missing")
        elif value < minimum:
            found.append(f"{name} {value:.4f} is below the minimum {minimum}")
    for name, before in (baseline or {}).items():
        value = metrics.get(name)
        if name in GATED and value is not None and value < before - limits.max_regression:
            found.append(
                f"{name} {value:.4f} regresses from production's {before:.4f} "
                f"by more than {limits.max_regression}"
            )
    return found
