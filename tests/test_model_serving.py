"""The model-serving type end to end, against a real MLflow server.

A data-pipeline project and a model-serving project are rendered with the same MLflow
settings (both register / serve the model named after the project, `my-service`). A real
`mlflow server` (SQLite backend, local artifacts it serves) holds the registry. The pipeline
trains and registers a model (`python -m <package> run`: prepare, train, evaluate, check,
register) and promotes it; the serving project starts against the same server and answers
real requests with exactly the model's own predictions (computed by MLflow's pyfunc in the
pipeline's environment). A second version is promoted: the release step
(scripts-ci/release/pin-model-version.sh) pins it, a canary instance pinned to it answers
with version 2 beside the stable one (version 1, whatever the alias says since), and a
rollback pins version 1 again. A model that cannot be loaded stops the start, naming it.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from .support.mlflow_server import mlflow_server
from .support.oidc import shared_issuer
from .support.procs import free_port, run, stop
from .support.project import project_env
from .support.prometheus import Prometheus

pytestmark = pytest.mark.slow

Bootstrapped = Callable[..., Path]
PIPELINE = {"service_type": "data-pipeline"}
SERVING = {"service_type": "model-serving"}
OWN_PREDICTIONS = """
import json, sys
import mlflow.pyfunc, pandas as pd
rows = json.load(sys.stdin)
model = mlflow.pyfunc.load_model(sys.argv[1])
print(json.dumps(model.predict(pd.DataFrame(rows)).tolist()))
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@contextmanager
def serving(project: Path, registry: str, **env: str) -> Iterator[str]:
    """The model-serving project started as its container starts it; its URL once ready."""
    port = free_port()
    variables = {
        **os.environ,
        **project_env(project, HOST="127.0.0.1", PORT=str(port)),
        **shared_issuer().service_env(),
        "MLFLOW_TRACKING_URI": registry,
        **env,
    }
    variables.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(
        [str(project / ".venv" / "bin" / "python"), "-m", "my_service"],
        cwd=project,
        env=variables,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # the model loads before the service is ready
        while True:
            if process.poll() is not None:
                pytest.fail(f"the service exited {process.returncode}:\n{process.stdout.read()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.2)
        yield url
    finally:
        stop(process)


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {shared_issuer().token()}"}


def _canary_prediction_health(
    project: Path, stable: str, canary: str, rows: list[dict[str, float]]
) -> None:
    """scripts-ci's canary check of prediction health, against a real Prometheus scraping
    the stable (version 1) and canary (version 2) instances with the pods' labels."""
    labels = {"app": "my-service", "namespace": "my-service-production"}
    prometheus = Prometheus.start(
        [
            (stable.removeprefix("http://"), {**labels, "track": "stable"}),
            (canary.removeprefix("http://"), {**labels, "track": "canary"}),
        ]
    )
    try:
        # increase() needs a sample of each series before the traffic it measures, and a
        # prediction series exists from its first prediction on: one prediction each, scraped,
        # then the traffic.
        query = 'sum(model_prediction_duration_seconds_count{app="my-service"}) by (track)'
        for url in (stable, canary):
            httpx.post(f"{url}/predict/batch", json={"inputs": rows[:1]}, headers=_headers())
        deadline = time.monotonic() + 60
        while len(prometheus.query(query)) < 2:
            assert time.monotonic() < deadline, prometheus.log()
            time.sleep(1)
        time.sleep(2)
        for url in (stable, canary):
            for start in range(0, 40, 10):
                batch = {"inputs": rows[start : start + 10]}
                httpx.post(f"{url}/predict/batch", json=batch, headers=_headers())
        deadline = time.monotonic() + 60
        while (
            len(prometheus.query(query)) < 2
            or min(
                float(s["value"][1])
                for s in prometheus.query(query)  # type: ignore[index]
            )
            < 4
        ):
            assert time.monotonic() < deadline, prometheus.log()
            time.sleep(1)
        time.sleep(2)  # a second scrape after the last request: increase() needs two

        def check(**env: str) -> subprocess.CompletedProcess[str]:
            script = project / "scripts-ci" / "monitoring" / "prediction_health.py"
            selector = 'app="my-service",namespace="my-service-production",track="{}"'
            return run(
                [
                    "python3",
                    str(script),
                    "--prometheus-url",
                    prometheus.url,
                    "--window",
                    "5m",
                    "--stable-selector",
                    selector.format("stable"),
                    "--canary-selector",
                    selector.format("canary"),
                ],
                env={"PH_MIN_PREDICTIONS": "4", **env},
                check=False,
            )

        healthy = check()
        assert healthy.returncode == 0, healthy.stdout
        assert "stable: {" in healthy.stdout and "model version 1" in healthy.stdout
        assert "model version 2" in healthy.stdout
        assert "RESULT: PASS" in healthy.stdout
        slower = check(CANARY_MAX_LATENCY_RATIO="0", CANARY_LATENCY_SLACK_SECONDS="0")
        assert slower.returncode == 1, slower.stdout
        assert "FAIL model p99: canary" in slower.stdout
        few = check(PH_MIN_PREDICTIONS="100000")
        assert few.returncode == 6, few.stdout
        assert "RESULT: INCONCLUSIVE" in few.stdout
    finally:
        prometheus.stop()


def _last(result: subprocess.CompletedProcess[str]) -> str:
    """The last output line (the scripts log to stderr, which run() merges into stdout)."""
    return result.stdout.strip().splitlines()[-1]


def _rows(workdir: Path) -> list[dict[str, float]]:
    with (workdir / "data" / "prepared" / "test.csv").open() as handle:
        records = list(csv.DictReader(handle))
    return [{k: float(v) for k, v in r.items() if k not in ("id", "target")} for r in records]


def test_a_registered_model_is_served_and_rolled_out_by_version(
    bootstrapped: Bootstrapped, registry: str, tmp_path: Path
) -> None:
    pipeline, server = bootstrapped(**PIPELINE), bootstrapped(**SERVING)
    python = str(pipeline / ".venv" / "bin" / "python")
    batch_env = project_env(
        pipeline,
        MLFLOW_TRACKING_URI=registry,
        ENVIRONMENT="e2e",
        PIPELINE_WORKDIR=str(tmp_path / "work"),
    )

    def batch(*args: str, **extra: str) -> str:
        return run(
            [python, "-m", "my_service", *args], cwd=pipeline, env={**batch_env, **extra}
        ).stdout

    def pin(**extra: str) -> subprocess.CompletedProcess[str]:
        script = server / "scripts-ci" / "release" / "pin-model-version.sh"
        env = {**project_env(server), "MLFLOW_TRACKING_URI": registry, **extra}
        return run(
            [str(script), "--env-file", str(tmp_path / "model.env")],
            cwd=server,
            env=env,
            check=False,
        )

    # The pipeline trains, registers (with its reference profile) and promotes version 1.
    assert "version 1 with the alias staging" in batch()
    assert "version 1 is production" in batch("promote")
    assert _last(pin()) == "1"
    assert (tmp_path / "model.env").read_text() == "MODEL_VERSION=1\n"
    rows = _rows(tmp_path / "work")

    def own(version: str) -> list[int]:
        result = run(
            [python, "-c", OWN_PREDICTIONS, f"models:/my-service/{version}"],
            cwd=pipeline,
            env=batch_env,
            input=json.dumps(rows),
        )
        return json.loads(result.stdout.strip().splitlines()[-1])

    with serving(server, registry) as stable:  # MODEL_ALIAS production, resolved at start
        model = httpx.get(f"{stable}/model").json()
        assert model["model_version"] == "1"
        assert model["drift_reference"] is True  # the pipeline's profile came with it
        assert [column["name"] for column in model["inputs"]][:2] == ["mean_radius", "mean_texture"]
        single = [
            httpx.post(f"{stable}/predict", json={"inputs": row}, headers=_headers())
            for row in rows[:10]
        ]
        assert {answer.headers["X-Model-Version"] for answer in single} == {"1"}
        whole = httpx.post(f"{stable}/predict/batch", json={"inputs": rows}, headers=_headers())
        assert whole.status_code == 200, whole.text
        expected = own("1")
        assert [answer.json()["prediction"] for answer in single] == expected[:10]
        assert whole.json()["predictions"] == expected
        bad = httpx.post(
            f"{stable}/predict",
            json={"inputs": {**rows[0], "mean_radius": "x"}},
            headers=_headers(),
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "inputs", "mean_radius"]
        metrics = httpx.get(f"{stable}/metrics").text
        assert (
            'model_prediction_duration_seconds_count{endpoint="single",model_version="1"} 10.0'
            in metrics
        )
        assert 'model_drift_psi{column="mean_radius",model_version="1"}' in metrics

        # A second version: registered and promoted; the release pins it.
        assert "version 2 with the alias staging" in batch()
        assert "version 2 is production" in batch("promote")
        pinned = pin()
        assert _last(pinned) == "2", pinned.stdout
        version = (tmp_path / "model.env").read_text().strip().split("=")[1]
        # The canary runs the new release (its image's MODEL_VERSION) beside stable.
        with serving(server, registry, MODEL_VERSION=version, MODEL_ALIAS="none") as canary:
            answers = {
                url: httpx.post(f"{url}/predict", json={"inputs": rows[0]}, headers=_headers())
                for url in (stable, canary)
            }
            assert answers[stable].headers["X-Model-Version"] == "1"  # stable keeps its pin
            assert answers[canary].headers["X-Model-Version"] == "2"
            assert answers[canary].json()["prediction"] == own("2")[0]
            assert (
                'model_info{model_name="my-service",model_version="2"} 1.0'
                in httpx.get(f"{canary}/metrics").text
            )
            _canary_prediction_health(server, stable, canary, rows)

    # Rollback: the registry's production goes back to 1, and so does the next release pin.
    assert "version 1 is production again" in batch("rollback")
    assert _last(pin()) == "1"
    assert _last(pin(MODEL_VERSION="2")) == "2"  # a pin by hand is checked to exist
    missing = pin(MODEL_VERSION="99")
    assert missing.returncode == 1
    assert "models:/my-service/99 is not in the registry" in missing.stdout


def test_a_model_that_cannot_be_loaded_stops_the_start(
    bootstrapped: Bootstrapped, registry: str
) -> None:
    server = bootstrapped(**SERVING)
    env = {
        **os.environ,
        **project_env(server, PORT=str(free_port())),
        **shared_issuer().service_env(),
        "MLFLOW_TRACKING_URI": registry,
        "MODEL_NAME": "never-registered",
    }
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [str(server / ".venv" / "bin" / "python"), "-m", "my_service"],
        cwd=server,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "refusing to start: cannot load the model models:/never-registered@production" in output
    assert f"from the MLflow registry at {registry}" in output
