"""Benchmark model-serving: /predict over HTTP against the same model called in-process.

    uv run python -m benchmarks.serving                     # render, bootstrap, measure
    uv run python -m benchmarks.serving --project DIR       # reuse a bootstrapped project
    uv run python -m benchmarks.serving --requests 2000 --batch 100

A model-serving project is rendered and bootstrapped; a model shaped like the data
pipeline's (scaled logistic regression on the 30 features of scikit-learn's breast cancer
sample, column signature, training profile) is registered in a local MLflow registry
(SQLite) and served by the project's own entry point (`python -m <package>`, auth off,
warnings-only logs). One run, side by side:

- in-process: `mlflow.pyfunc` `predict` on a one-row DataFrame, in the project's environment;
- HTTP single: POST /predict, one row per request, one client with keep-alive;
- HTTP batch: POST /predict/batch with --batch rows per request.

It prints requests/s and p99 of each, the ratio HTTP single / in-process against the 0.8
target, and the rows/s gain of the batch endpoint over single requests. Not a test: nothing
is asserted; the figures depend on the machine and its load (printed with them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from dev.template_repo import render
from tests.support.mlflow_server import register_sample_model
from tests.support.procs import free_port, run, stop
from tests.support.project import GIT_ENV, bootstrap

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.8

IN_PROCESS = """
import json, sys, time
import mlflow, mlflow.pyfunc, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model("models:/{name}/1")
rows = json.loads(sys.stdin.read())
count, batch = int(sys.argv[2]), int(sys.argv[3])
for row in rows[:20]:
    model.predict(pd.DataFrame([row]))  # warm-up
times = []
for i in range(count):
    start = time.perf_counter()
    model.predict(pd.DataFrame([rows[i % len(rows)]]))
    times.append(time.perf_counter() - start)
batches = []
for i in range(max(count // batch, 5)):
    start = time.perf_counter()
    model.predict(pd.DataFrame(rows[:batch]))
    batches.append(time.perf_counter() - start)
print(json.dumps({{"single": times, "batch": batches}}))
"""


def p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98] if len(times) >= 100 else max(times)


def http_times(
    url: str, rows: list[dict[str, float]], count: int, batch: int
) -> dict[str, list[float]]:
    with httpx.Client(base_url=url, timeout=30) as client:
        for row in rows[:20]:
            client.post("/predict", json={"inputs": row}).raise_for_status()
        single = []
        for i in range(count):
            start = time.perf_counter()
            client.post("/predict", json={"inputs": rows[i % len(rows)]}).raise_for_status()
            single.append(time.perf_counter() - start)
        batches = []
        for _ in range(max(count // batch, 5)):
            start = time.perf_counter()
            client.post("/predict/batch", json={"inputs": rows[:batch]}).raise_for_status()
            batches.append(time.perf_counter() - start)
    return {"single": single, "batch": batches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a bootstrapped model-serving project")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    project = args.project
    if project is None:
        project = render(ROOT, workdir / "project", {"service_type": "model-serving"})
        bootstrap(project)
    package = next(p.name for p in (project / "src").iterdir() if (p / "serving").is_dir())
    name = (
        run(
            [
                str(project / ".venv" / "bin" / "python"),
                "-c",
                f"from {package}.settings import Settings; print(Settings().model_name)",
            ],
            cwd=project,
            env=GIT_ENV,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    python = str(project / ".venv" / "bin" / "python")
    registry, sample = register_sample_model(project, package, workdir / "registry")
    rows = json.loads(sample)

    local = run(
        [python, "-c", IN_PROCESS.format(name=name), registry, str(args.requests), str(args.batch)],
        cwd=project,
        env=GIT_ENV,
        input=json.dumps(rows),
    )
    in_process = json.loads(local.stdout.strip().splitlines()[-1])

    port = free_port()
    env = {
        **os.environ,
        **GIT_ENV,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "ENVIRONMENT": "local",
        "AUTH_DISABLED": "true",
        "LOG_LEVEL": "WARNING",
        "MLFLOW_TRACKING_URI": registry,
    }
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(
        [python, "-m", package],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the service did not start (exit {process.poll()})")
            time.sleep(0.5)
        over_http = http_times(url, rows, args.requests, args.batch)
    finally:
        stop(process)

    def rate(times: list[float]) -> float:
        return len(times) / sum(times)

    print(
        f"model-serving benchmark: {args.requests} single requests, batches of {args.batch} "
        f"rows, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'':24}{'requests/s':>12}{'p99 ms':>10}{'rows/s':>12}")
    lines = [
        ("in-process single", in_process["single"], 1),
        ("HTTP /predict", over_http["single"], 1),
        ("in-process batch", in_process["batch"], args.batch),
        ("HTTP /predict/batch", over_http["batch"], args.batch),
    ]
    for label, times, rows_per_call in lines:
        print(
            f"{label:24}{rate(times):12.1f}{p99(times) * 1000:10.2f}{rate(times) * rows_per_call:12.1f}"
        )
    ratio = rate(over_http["single"]) / rate(in_process["single"])
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"HTTP single / in-process single: {ratio:.2f} (target >= {TARGET_RATIO}: {verdict})")
    gain = rate(over_http["batch"]) * args.batch / rate(over_http["single"])
    print(f"batch endpoint gain: {gain:.1f}x the rows/s of single requests")


if __name__ == "__main__":
    main()
