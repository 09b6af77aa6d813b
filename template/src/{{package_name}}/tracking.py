"""MLflow tracking: runs with their parameters, metrics and artifacts.

The tracking server comes from MLFLOW_TRACKING_URI (a server in CI and Kubernetes, the local
SQLite file `mlflow.db` by default). MLflow is imported only when a run is logged: it is slow
to import.
"""

import os
from collections.abc import Mapping
from typing import Any

from .settings import Settings


def configure(settings: Settings) -> None:
    """Point MLflow at the tracking server and experiment of the settings."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(settings.mlflow_experiment)


def run_tags() -> dict[str, str]:
    """Where a run comes from: the commit and pipeline when it runs in GitLab CI."""
    tags = {"environment": os.environ.get("ENVIRONMENT", "local")}
    for variable, tag in (
        ("CI_COMMIT_SHA", "mlflow.source.git.commit"),
        ("CI_PIPELINE_URL", "ci.pipeline_url"),
        ("CI_COMMIT_REF_NAME", "ci.ref"),
    ):
        if os.environ.get(variable):
            tags[tag] = os.environ[variable]
    return tags


def log_run(
    settings: Settings,
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    texts: Mapping[str, str] | None = None,
) -> str:
    """Log one run (texts become artifacts, e.g. the prompt); return its run id."""
    import mlflow

    configure(settings)
    with mlflow.start_run(run_name=run_name, tags=run_tags()) as run:
        mlflow.log_params(dict(params))
        mlflow.log_metrics(dict(metrics))
        for name, content in (texts or {}).items():
            mlflow.log_text(content, name)
        return str(run.info.run_id)
