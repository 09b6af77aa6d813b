"""A real MLflow tracking server and model registry for the tests (SQLite, local artifacts).

`mlflow` is a dev dependency of the template repository: its `mlflow server` runs here on a
free port with a SQLite backend store and a local artifact destination that the server
proxies (clients upload and download artifacts over HTTP, as against a shared server).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .procs import free_port, stop, wait_until_answers


@contextmanager
def mlflow_server(workdir: Path) -> Iterator[str]:
    """Start `mlflow server` under workdir; yield its URL."""
    mlflow = Path(sys.executable).parent / "mlflow"
    if not mlflow.exists():
        raise RuntimeError(f"{mlflow} not found: `uv sync` installs mlflow (a dev dependency)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (workdir / "mlflow-server.log").open("wb")
    process = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination",
            str(workdir / "artifacts"),
        ],
        cwd=workdir,
        # No job runner (a dozen worker processes for MLflow's GenAI jobs): the registry only.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(
            f"{url}/health",
            process,
            timeout=400,
            failure=lambda: (
                "mlflow server did not start:\n"
                + (workdir / "mlflow-server.log").read_text()[-4000:]
            ),
        )
        yield url
    finally:
        stop(process)
        log.close()


REGISTER_SAMPLE = """
import sys
import mlflow, mlflow.sklearn, pandas as pd
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from {package}.drift import ARTIFACT, build_profile
from {package}.settings import Settings

name = Settings().model_name
data = load_breast_cancer()
frame = pd.DataFrame(data.data, columns=[n.replace(" ", "_") for n in data.feature_names])
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(frame, data.target)
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment(experiment_id=mlflow.create_experiment("sample", sys.argv[2]))
with mlflow.start_run():
    mlflow.log_dict(build_profile({{c: frame[c].tolist() for c in frame.columns}},
                                  model.predict(frame).tolist()), ARTIFACT)
    mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                             signature=infer_signature(frame, model.predict(frame)),
                             pip_requirements=["scikit-learn"])
mlflow.MlflowClient().set_registered_model_alias(name, "production", "1")
print(frame.head(200).to_json(orient="records"))
"""


def register_sample_model(project: Path, package: str, directory: Path) -> tuple[str, str]:
    """A model shaped like the data pipeline's (the breast cancer sample's 30 features, a
    column signature, the training profile) registered as version 1, alias production, of
    the project's MODEL_NAME in a SQLite registry under directory (the project's own
    environment does it). The tracking URI, and 200 rows of inputs as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    result = subprocess.run(
        [
            str(project / ".venv" / "bin" / "python"),
            "-c",
            REGISTER_SAMPLE.format(package=package),
            uri,
            (directory / "artifacts").as_uri(),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"registering the sample model failed:\n{result.stdout}{result.stderr}")
    return uri, result.stdout.strip().splitlines()[-1]
