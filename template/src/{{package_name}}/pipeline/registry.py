"""The MLflow model registry: a full run registers a candidate, promotion moves aliases.

- `register`: log the run (parameters, metrics, DVC lock, model with a column-based
  signature, the training data's reference profile `reference_profile.json` that serving
  compares live inputs with) and give the new model version the alias `staging`;
- `promote`: after the metric checks, move `production` to the `staging` version (the
  version it replaces keeps the alias `previous-production`);
- `rollback`: move `production` back to `previous-production`;
- `smoke`: load `models:/<name>@production` and check it on the test set.

Consumers load the model by alias (`models:/<name>@production`), never by version number.
"""

from pathlib import Path
from typing import Any

from ..drift import ARTIFACT, build_profile
from ..settings import Settings
from ..tracking import configure, run_tags
from . import gate
from .dataset import read_csv
from .params import Params, Workspace
from .stages import load_model, read_metrics, score

STAGING = "staging"
PRODUCTION = "production"
PREVIOUS = "previous-production"


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


def _version_at(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _flat(params: Params) -> dict[str, Any]:
    return {
        f"{section}.{key}": value
        for section, values in params.model_dump().items()
        for key, value in values.items()
    }


def register(settings: Settings, params: Params, workspace: Workspace, share: float) -> str:
    """Log the evaluated model as a new version of `model.name`, alias `staging`."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    import skops
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    configure(settings)
    model = load_model(workspace)
    test = read_csv(workspace.test_csv)
    sample = test.features[:5]
    # Column-based: the inputs by name and type, which serving validates requests against.
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in test.feature_names]),
        outputs=infer_signature(sample, model.predict(sample)).outputs,
    )
    train = read_csv(workspace.train_csv)
    profile = build_profile(
        {name: train.features[:, i].tolist() for i, name in enumerate(train.feature_names)},
        model.predict(train.features).tolist(),
    )
    with mlflow.start_run(run_name="batch", tags=run_tags()):
        mlflow.log_params({**_flat(params), "data.effective_share": share})
        mlflow.log_metrics(read_metrics(workspace))
        lock = Path("dvc.lock")
        if lock.exists():  # names the exact data and code hashes this model came from
            mlflow.log_text(lock.read_text(encoding="utf-8"), "dvc.lock")
        mlflow.log_dict(profile, ARTIFACT)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"skops=={skops.__version__}",
            ],
            registered_model_name=params.model.name,
        )
    version = str(info.registered_model_version)
    _client(settings).set_registered_model_alias(params.model.name, STAGING, version)
    return version


def production_metrics(settings: Settings, params: Params) -> dict[str, float] | None:
    client = _client(settings)
    current = _version_at(client, params.model.name, PRODUCTION)
    if current is None:
        return None
    metrics: dict[str, float] = client.get_run(current.run_id).data.metrics
    return metrics


def promote(settings: Settings, params: Params) -> str:
    """Move `production` to the `staging` version when its metrics pass; the version."""
    client = _client(settings)
    name = params.model.name
    candidate = _version_at(client, name, STAGING)
    if candidate is None:
        raise SystemExit(f"no version of {name} has the alias {STAGING}: run the batch first")
    current = _version_at(client, name, PRODUCTION)
    if current is not None and current.version == candidate.version:
        return str(candidate.version)
    baseline = client.get_run(current.run_id).data.metrics if current is not None else None
    found = gate.problems(client.get_run(candidate.run_id).data.metrics, params.evaluate, baseline)
    if found:
        raise SystemExit(f"version {candidate.version} not promoted: " + "; ".join(found))
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current.version)
    client.set_registered_model_alias(name, PRODUCTION, candidate.version)
    return str(candidate.version)


def rollback(settings: Settings, params: Params) -> str:
    """Move `production` back to the version it replaced."""
    client = _client(settings)
    previous = _version_at(client, params.model.name, PREVIOUS)
    if previous is None:
        raise SystemExit(f"no version of {params.model.name} has the alias {PREVIOUS}")
    client.set_registered_model_alias(params.model.name, PRODUCTION, previous.version)
    client.delete_registered_model_alias(params.model.name, PREVIOUS)
    return str(previous.version)


def smoke(settings: Settings, params: Params, workspace: Workspace) -> dict[str, float]:
    """Load the production model as consumers do and check it on the test set."""
    import mlflow.sklearn

    configure(settings)
    model = mlflow.sklearn.load_model(f"models:/{params.model.name}@{PRODUCTION}")
    metrics = score(model, read_csv(workspace.test_csv))
    found = gate.problems(metrics, params.evaluate)
    if found:
        raise SystemExit("the production model fails its checks: " + "; ".join(found))
    return metrics
