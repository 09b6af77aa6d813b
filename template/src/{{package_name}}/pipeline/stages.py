"""The stages. Each reads its inputs from files and writes its outputs to files, so DVC can
cache them and re-run only what changed (see dvc.yaml)."""

import json
import logging
import pickle  # nosec B403 - the model file is our own output, versioned by DVC
from typing import Any

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .dataset import Dataset, read_csv, take_share, write_csv
from .params import Params, Workspace

log = logging.getLogger(__name__)


def prepare(source: Dataset, params: Params, workspace: Workspace, share: float) -> dict[str, int]:
    """Take `share` of the partitions and split them into train and test sets."""
    selected = take_share(source, params.data.partitions, share)
    if len(set(selected.labels.tolist())) < 2 or len(selected) < 8:
        raise SystemExit(
            f"a share of {share} gives {len(selected)} rows: too few to train and test; "
            "raise the share or lower data.partitions in params.yaml"
        )
    train_rows, test_rows = train_test_split(
        list(range(len(selected))),
        test_size=params.data.test_size,
        random_state=params.data.seed,
        stratify=selected.labels,
    )
    write_csv(selected.select(sorted(train_rows)), workspace.train_csv)
    write_csv(selected.select(sorted(test_rows)), workspace.test_csv)
    counts = {"rows": len(selected), "train_rows": len(train_rows), "test_rows": len(test_rows)}
    log.info("prepared", extra={**counts, "share": share})
    return counts


def train(params: Params, workspace: Workspace) -> Pipeline:
    """Fit the model on the training set and save it."""
    data = read_csv(workspace.train_csv)
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=params.train.C, max_iter=params.train.max_iter),
    )
    model.fit(data.features, data.labels)
    workspace.model.parent.mkdir(parents=True, exist_ok=True)
    workspace.model.write_bytes(pickle.dumps(model))
    log.info("trained", extra={"rows": len(data), "model": str(workspace.model)})
    return model


def load_model(workspace: Workspace) -> Pipeline:
    model: Pipeline = pickle.loads(workspace.model.read_bytes())  # noqa: S301  # nosec B301
    return model


def score(model: Any, data: Dataset) -> dict[str, float]:
    """Accuracy, ROC AUC and F1 of a fitted model (or an MLflow pyfunc) on a dataset."""
    predicted = model.predict(data.features)
    metrics = {
        "accuracy": float(accuracy_score(data.labels, predicted)),
        "f1": float(f1_score(data.labels, predicted)),
    }
    if hasattr(model, "predict_proba"):
        metrics["roc_auc"] = float(
            roc_auc_score(data.labels, model.predict_proba(data.features)[:, 1])
        )
    return metrics


def evaluate(params: Params, workspace: Workspace) -> dict[str, float]:
    """Score the model on the test set; write the metrics DVC and MLflow record."""
    data = read_csv(workspace.test_csv)
    metrics = {**score(load_model(workspace), data), "test_rows": float(len(data))}
    workspace.metrics.parent.mkdir(parents=True, exist_ok=True)
    workspace.metrics.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    log.info("evaluated", extra=metrics)
    return metrics


def read_metrics(workspace: Workspace) -> dict[str, float]:
    try:
        metrics: dict[str, float] = json.loads(workspace.metrics.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"{workspace.metrics} not found: run the evaluate stage first") from None
    return metrics
