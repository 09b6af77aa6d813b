"""Benchmark model-serving: /predict over HTTP against the same model called in-process.

    uv run python -m benchmarks.serving                     # render, bootstrap, measure
    uv run python -m benchmarks.serving --project DIR       # reuse a bootstrapped project
    uv run python -m benchmarks.serving --duration 20 --batch 100 [--python-client]

A model-serving project is rendered and bootstrapped; a model shaped like the data
pipeline's (scaled logistic regression on the 30 features of scikit-learn's breast cancer
sample, column signature, training profile) is registered in a local MLflow registry
(SQLite) and served by the project's own entry point (`python -m <package>`, auth off,
warnings-only logs). One run, side by side:

- in-process: `mlflow.pyfunc` `predict` on a one-row DataFrame, in the project's
  environment, one call after the other on one core;
- HTTP single: POST /predict, one row per request;
- HTTP batch: POST /predict/batch with --batch rows per request.

HTTP load comes from wrk (apt-get install wrk; a Lua script posts the sample rows in turn
over --connections keep-alive connections), so the figures are the service's own: the load
generator's work runs on the other core, as a client's would on its own machine. Without
wrk (or with --python-client) one httpx client sends the requests one after the other and
its own per-request work, about as much as the service's on this machine, counts in the
figures. Every answer must be a 200: an error stops the benchmark.

It prints requests/s and p99 of each, the ratio HTTP single / in-process against the 0.8
target, and the rows/s gain of the batch endpoint over single requests. Not a test: nothing
is asserted; the figures depend on the machine and its load (printed with them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
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


@dataclass
class Figures:
    rate: float  # calls per second
    p99: float  # seconds


def p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98] if len(times) >= 100 else max(times)


def timed(times: list[float]) -> Figures:
    return Figures(len(times) / sum(times), p99(times))


# wrk's Lua script: POST the bodies in turn; at the end one JSON line with what was measured.
WRK_SCRIPT = """
local bodies = {{{bodies}}}
local next_body = 0
request = function()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "{path}", {{["Content-Type"] = "application/json"}}, bodies[next_body])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\n{{"requests": %d, "seconds": %.6f, "p99_us": %d, "errors": %d}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_figures(
    wrk: str,
    url: str,
    path: str,
    bodies: list[str],
    connections: int,
    duration: float,
    workdir: Path,
) -> Figures:
    script = workdir / f"wrk{path.replace('/', '-')}.lua"
    # The bodies are json.dumps output (printable ASCII): as JSON strings they are also valid
    # Lua string literals (only \" and \\ escapes).
    quoted = ", ".join(json.dumps(body) for body in bodies)
    script.write_text(WRK_SCRIPT.format(bodies=quoted, path=path))
    output = run(
        [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "-s", str(script), url],
        timeout=duration + 60,
    ).stdout
    try:
        result = json.loads(output.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(f"{path}: wrk printed no figures:\n{output}") from None
    if result["errors"]:
        raise SystemExit(f"{path}: {result['errors']} failed requests under wrk:\n{output}")
    return Figures(result["requests"] / result["seconds"], result["p99_us"] / 1e6)


def http_figures(
    url: str,
    rows: list[dict[str, float]],
    wrk: str | None,
    options: argparse.Namespace,
    workdir: Path,
) -> dict[str, Figures]:
    """/predict with one row a request, /predict/batch with --batch rows: wrk's figures, or
    those of one httpx client when wrk is None."""
    loads = {
        "single": ("/predict", [json.dumps({"inputs": row}) for row in rows]),
        "batch": ("/predict/batch", [json.dumps({"inputs": rows[: options.batch]})]),
    }
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=30) as client:
        for path, bodies in loads.values():  # warm-up: lazy imports, first series
            for body in bodies[:20]:
                client.post(path, content=body, headers=headers).raise_for_status()
        if wrk:
            return {
                key: wrk_figures(
                    wrk, url, path, bodies, options.connections, options.duration, workdir
                )
                for key, (path, bodies) in loads.items()
            }
        figures = {}
        for key, (path, bodies) in loads.items():
            times: list[float] = []
            stop_at = time.perf_counter() + options.duration
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                client.post(
                    path, content=bodies[len(times) % len(bodies)], headers=headers
                ).raise_for_status()
                times.append(time.perf_counter() - start)
            figures[key] = timed(times)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a bootstrapped model-serving project")
    parser.add_argument("--requests", type=int, default=1000, help="in-process calls [1000]")
    parser.add_argument("--batch", type=int, default=100, help="rows per batch [100]")
    parser.add_argument("--duration", type=float, default=10, help="seconds of HTTP load [10]")
    parser.add_argument("--connections", type=int, default=4, help="wrk's connections [4]")
    parser.add_argument("--python-client", action="store_true", help="httpx, not wrk")
    args = parser.parse_args()
    wrk = None if args.python_client else shutil.which("wrk")
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
        over_http = http_figures(url, rows, wrk, args, workdir)
    finally:
        stop(process)

    driver = (
        f"wrk -t1 -c{args.connections} -d{max(1, round(args.duration))}s"
        if wrk
        else "httpx, one request after the other"
    )
    print(
        f"model-serving benchmark: {args.requests} in-process calls, HTTP load from {driver}, "
        f"batches of {args.batch} rows, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'':24}{'requests/s':>12}{'p99 ms':>10}{'rows/s':>12}")
    lines = [
        ("in-process single", timed(in_process["single"]), 1),
        ("HTTP /predict", over_http["single"], 1),
        ("in-process batch", timed(in_process["batch"]), args.batch),
        ("HTTP /predict/batch", over_http["batch"], args.batch),
    ]
    for label, figures, rows_per_call in lines:
        print(
            f"{label:24}{figures.rate:12.1f}{figures.p99 * 1000:10.2f}"
            f"{figures.rate * rows_per_call:12.1f}"
        )
    ratio = over_http["single"].rate / timed(in_process["single"]).rate
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"HTTP single / in-process single: {ratio:.2f} (target >= {TARGET_RATIO}: {verdict})")
    gain = over_http["batch"].rate * args.batch / over_http["single"].rate
    print(f"batch endpoint gain: {gain:.1f}x the rows/s of single requests")


if __name__ == "__main__":
    main()
