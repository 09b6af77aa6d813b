"""A small model in a local MLflow registry, so that the service has something to serve.

    make sample-model        # python -m <package>.serving.sample

Until the data pipeline has registered a model, `make run` and `make bench` have none to
load (and the service refuses to start without one). This registers a scikit-learn model
shaped as the data pipeline registers its models (a column-based signature, the training
profile the drift monitor compares with) as the next version of MODEL_NAME in the registry
at MLFLOW_TRACKING_URI, and points MODEL_ALIAS (`production`) at it. Local registries only
(`sqlite:///...` or a `file:` store): a shared registry's models come from the pipeline.
"""

import sys
from pathlib import Path
from urllib.parse import urlsplit

from ..drift import ARTIFACT, build_profile
from ..settings import Settings
from .model import redact

EXPERIMENT = "sample-model"


def is_local(tracking_uri: str) -> bool:
    """Whether the registry is a file on this machine: `sqlite:` or `file:`. A URI without a
    scheme is not taken for a path: MLflow reads `databricks` alone as a workspace."""
    return urlsplit(tracking_uri).scheme in {"sqlite", "file"}


def _artifacts_beside(tracking_uri: str) -> str | None:
    """Where a SQLite registry's artifacts go: beside its database file (MLflow's default
    is ./mlruns under the working directory, wherever that is)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return (database.resolve().parent / "mlartifacts").as_uri()


def register(tracking_uri: str, name: str, alias: str) -> str:
    """Register the sample model as the next version of `name`, move `alias` to it; its
    version. MLflow's tracking URI and active experiment stay set to the registry's."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        client.create_experiment(EXPERIMENT, _artifacts_beside(tracking_uri))
    mlflow.set_experiment(EXPERIMENT)
    frame = pd.DataFrame(
        {"width": [float(i % 10) for i in range(40)], "height": [float(i % 7) for i in range(40)]}
    )
    labels = (frame["width"] + frame["height"] > 7).astype(int)
    model = LogisticRegression().fit(frame, labels)
    predictions = model.predict(frame)
    with mlflow.start_run():
        mlflow.log_dict(
            build_profile(
                {column: frame[column].tolist() for column in frame.columns},
                predictions.tolist(),
            ),
            ARTIFACT,
        )
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            signature=infer_signature(frame, predictions),
            pip_requirements=["scikit-learn"],  # no environment inference in a subprocess
        )
    version = str(info.registered_model_version)
    client.set_registered_model_alias(name, alias, version)
    return version


def main() -> None:
    settings = Settings()
    uri = settings.mlflow_tracking_uri
    if not is_local(uri):
        sys.exit(
            f"MLFLOW_TRACKING_URI is {redact(uri)}: the sample model goes to a local registry "
            "only (the default sqlite:///mlflow.db); unset MLFLOW_TRACKING_URI, or set it to "
            "sqlite:///<file>"
        )
    version = register(uri, settings.model_name, settings.model_alias)
    print(
        f"registered the sample model as {settings.model_name} version {version}, "
        f"alias {settings.model_alias}, in {uri}"
    )


if __name__ == "__main__":
    main()
