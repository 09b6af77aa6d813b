"""What observability costs: this service against a bare FastAPI app, under the same load.

    make bench                                           # 5 rounds of 10 s
    uv run python -m benchmarks.observability --rounds 1 --duration 2

Starts four servers, one process each and new processes each round, with the service's own
uvicorn settings (`serve()` of src/<package>/__main__.py):

- bare: FastAPI with the same probe routes, nothing else (no middleware, no logs);
- metrics+logs: the service's app (`create_app()`): Prometheus metrics, request ids, JSON
  access logs (to a file, as a container's stdout goes to one);
- +otlp tracing: the same with OTEL_TRACES_EXPORTER=otlp, spans exported over OTLP/HTTP to
  a receiver this script starts (it counts the spans that arrive), at the environment's
  OTEL_TRACES_SAMPLER_ARG (default 1: every request traced, as staging does);
- +otlp sampled: the same at the ratio production deploys (OTEL_TRACES_SAMPLER_ARG of
  deploy/components/production/config.env), with a receiver of its own.

A service that serves a registered model loads the sample model (serving/sample.py) from a
registry the script makes for the run.

Both apps get one more route, /bench/ping (the liveness handler under another path): probes
are not traced, so that is where tracing costs. The settings come from the environment as
the service reads them: `ACCESS_LOG_SAMPLE_RATE=0.1 make bench` measures that setting.
After each traced run the script waits for the batch span processor's exports (5 s apart,
OTEL_BSP_SCHEDULE_DELAY in ms), so that spans weigh on the run that made them.
Rounds interleave the servers (the order rotates each round), the table shows medians.
Load comes from wrk when installed (apt-get install wrk), else from a small asyncio
keep-alive client in this process (lower, noisier figures: it shares the CPUs).
A benchmark, not a test: nothing fails on the numbers; the goals are printed next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ("bare", "metrics+logs", "+otlp tracing", "+otlp sampled")
TRACED = ("+otlp tracing", "+otlp sampled")
PATHS = ("/healthz", "/bench/ping")
# /healthz is not traced: the sampled server would only repeat +otlp tracing's figure there.
RUNS = {"/healthz": SERVERS[:3], "/bench/ping": SERVERS}
# Goals: the share of bare's req/s each server keeps, and p99 at most this many times bare's.
GOALS = {"metrics+logs": 0.8, "+otlp tracing": 0.7, "+otlp sampled": 0.7}
PRODUCTION_CONFIG = "deploy/components/production/config.env"
P99_GOAL = 1.3
# Requests each server gets on each path before a round is measured.
WARM_UP_REQUESTS = 50


def export_delay() -> float:
    """Seconds until the batch span processor has exported what it holds: its schedule delay
    (OTEL_BSP_SCHEDULE_DELAY, in ms, read as the SDK reads it: 5000 unless an integer) and
    one second more."""
    try:
        delay = int(os.environ.get("OTEL_BSP_SCHEDULE_DELAY", "5000"))
    except ValueError:
        delay = 5000
    return max(delay, 0) / 1000 + 1


def production_sampler_arg() -> float:
    """The trace ratio production deploys: the last OTEL_TRACES_SAMPLER_ARG line of its
    config.env, 1 (every trace, the service's default) when there is none."""
    config = ROOT / PRODUCTION_CONFIG
    text = config.read_text(errors="replace") if config.exists() else ""
    found = re.findall(r"^OTEL_TRACES_SAMPLER_ARG=(.*)$", text, re.M)
    if not found:
        return 1.0
    try:
        ratio = float(found[-1].strip())
    except ValueError:
        ratio = -1.0
    if not 0 <= ratio <= 1:
        raise SystemExit(
            f"{PRODUCTION_CONFIG}: OTEL_TRACES_SAMPLER_ARG={found[-1].strip()!r} is not a "
            "ratio from 0 to 1 (e.g. 0.1: one new trace in ten)"
        )
    return ratio


def package_name() -> str:
    """The service's package: the one directory of src/ with an app factory."""
    found = [path.parent.name for path in (ROOT / "src").glob("*/app.py")]
    if len(found) != 1:
        raise SystemExit(f"expected one src/<package>/app.py under {ROOT}, found {found}")
    return found[0]


def served_model(package: str, settings: Any, directory: Path) -> dict[str, str]:
    """A service that serves a registered model starts only with one: the sample model
    (serving/sample.py) in a registry of its own under `directory`. The environment that
    points the servers at it; nothing for other services."""
    if not (ROOT / "src" / package / "serving" / "sample.py").exists():
        return {}
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    sample = importlib.import_module(f"{package}.serving.sample")
    sample.register(uri, settings.model_name, settings.model_alias)
    return {"MLFLOW_TRACKING_URI": uri}


# ---------------------------------------------------------------- the servers


def serve(server: str, port: int) -> None:
    """Run one of the servers (in its own process) until terminated."""
    from fastapi import FastAPI

    package = package_name()
    health = importlib.import_module(f"{package}.health")
    settings = importlib.import_module(f"{package}.settings").Settings(port=port)
    if server == "bare":
        app = FastAPI()
        app.include_router(health.router)
    else:
        app = importlib.import_module(f"{package}.app").create_app(settings)
    app.add_api_route("/bench/ping", health.healthz, methods=["GET"])
    importlib.import_module(f"{package}.__main__").serve(app, settings)


class _Receiver(BaseHTTPRequestHandler):
    """OTLP/HTTP trace receiver: counts the exports and the spans in them."""

    exports = 0
    spans = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        count = sum(
            len(scope.spans)
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )
        with _Receiver.lock:
            _Receiver.exports += 1
            _Receiver.spans += count
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        body = json.dumps({"exports": _Receiver.exports, "spans": _Receiver.spans}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def receive(port: int) -> None:
    """Run the OTLP receiver (in its own process, off the load generator's CPU time)."""
    ThreadingHTTPServer(("127.0.0.1", port), _Receiver).serve_forever()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (127.0.0.1 only)
        body: bytes = response.read()
        return body


@contextmanager
def _processes(
    children: dict[str, tuple[list[str], dict[str, str], str]], logs: Path
) -> Iterator[None]:
    """Child processes of this script (name: arguments, environment, URL that answers once it
    is up), started together, up once each URL answers; all stopped on exit."""
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, (args, env, _) in children.items():
            with (logs / f"{name}.log").open("ab") as out:
                started[name] = subprocess.Popen(  # noqa: S603
                    [sys.executable, "-m", "benchmarks.observability", *args],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        deadline = time.monotonic() + 60
        for name, (args, _, ready_url) in children.items():
            while True:
                try:
                    _get(ready_url)
                    break
                except OSError:
                    pass
                if started[name].poll() is not None or time.monotonic() > deadline:
                    log = logs / f"{name}.log"
                    tail = log.read_text(errors="replace")[-2000:]
                    raise SystemExit(f"{' '.join(args)} did not start (see {log}):\n{tail}")
                time.sleep(0.2)
        yield
    finally:
        for process in started.values():
            process.terminate()
        for process in started.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ---------------------------------------------------------------- the load


@dataclass
class Run:
    requests: int
    requests_per_second: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_run(wrk: str, url: str, threads: int, connections: int, duration: float) -> Run:
    output = subprocess.run(  # noqa: S603
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    requests = re.search(r"^\s+(\d+) requests in ", output, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\b", output, re.M)
    if requests is None or rps is None or p99 is None:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(count) for count in socket_errors.groups()) if socket_errors else 0
    p99_ms = float(p99.group(1)) * _UNITS[p99.group(2)]
    return Run(int(requests.group(1)), float(rps.group(1)), p99_ms, errors)


async def _connection(port: int, path: str, stop_at: float, latencies: list[float]) -> int:
    """One keep-alive connection sending GET `path` until `stop_at`; returns its errors."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    errors = 0
    try:
        while (start := time.perf_counter()) < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if length is None:
                raise SystemExit(f"GET {path} answered without Content-Length:\n{head!r}")
            await reader.readexactly(int(length.group(1)))
            latencies.append(time.perf_counter() - start)
            errors += not head.startswith(b"HTTP/1.1 2")
    finally:
        writer.close()
    return errors


def _python_run(port: int, path: str, connections: int, duration: float) -> Run:
    async def drive() -> tuple[list[float], int]:
        latencies: list[float] = []
        stop_at = time.perf_counter() + duration
        errors = await asyncio.gather(
            *(_connection(port, path, stop_at, latencies) for _ in range(connections))
        )
        return latencies, sum(errors)

    started = time.perf_counter()
    latencies, errors = asyncio.run(drive())
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return Run(len(latencies), len(latencies) / elapsed, p99 * 1000, errors)


# ---------------------------------------------------------------- the report


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def report(
    results: dict[tuple[str, str], list[Run]], header: str, evidence: list[str]
) -> list[str]:
    lines = [header, ""]
    lines.append(
        f"{'path':<13} {'server':<15} {'req/s':>9} {'p99 ms':>8} {'req/s vs bare':>14} {'p99 vs bare':>12} {'errors':>7}"
    )
    verdicts = []
    for path in PATHS:
        bare = results[(path, "bare")]
        bare_rps = statistics.median(run.requests_per_second for run in bare)
        bare_p99 = statistics.median(run.p99_ms for run in bare)
        for server in RUNS[path]:
            runs = results[(path, server)]
            rps = statistics.median(run.requests_per_second for run in runs)
            p99 = statistics.median(run.p99_ms for run in runs)
            errors = sum(run.errors for run in runs)
            ratios = (
                ("", "")
                if server == "bare"
                else (f"{_ratio(rps, bare_rps):.2f}", f"{_ratio(p99, bare_p99):.2f}x")
            )
            lines.append(
                f"{path if server == 'bare' else '':<13} {server:<15} {rps:>9,.0f} {p99:>8.1f} {ratios[0]:>14} {ratios[1]:>12} {errors:>7}"
            )
            if server in GOALS:
                kept, slower = _ratio(rps, bare_rps), _ratio(p99, bare_p99)
                met = kept >= GOALS[server] and slower <= P99_GOAL
                verdicts.append(
                    f"  {path} {server}: {kept:.3f} of bare req/s (goal >= {GOALS[server]}), "
                    f"p99 {slower:.2f}x bare (goal <= {P99_GOAL}x): {'met' if met else 'MISSED'}"
                )
    lines += ["", "goals:", *verdicts, "", *evidence]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds [5]")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per run [10]")
    parser.add_argument("--connections", type=int, default=32, help="open connections [32]")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads [2]")
    parser.add_argument(
        "--python-client",
        action="store_true",
        help="use the asyncio client even if wrk is installed",
    )
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--receive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve:
        serve(options.serve, options.port)
        return
    if options.receive:
        receive(options.port)
        return

    wrk = None if options.python_client else shutil.which("wrk")
    package = package_name()
    settings = importlib.import_module(f"{package}.settings").Settings()
    production_ratio = production_sampler_arg()
    receiver_ports = {server: _free_port() for server in TRACED}
    ports = {server: _free_port() for server in SERVERS}

    def load(server: str, path: str, duration: float) -> Run:
        if wrk:
            url = f"http://127.0.0.1:{ports[server]}{path}"
            return _wrk_run(wrk, url, options.threads, options.connections, duration)
        return _python_run(ports[server], path, options.connections, duration)

    export_wait = export_delay()  # the environment is read once, like the SDK reads it
    results = {(path, server): list[Run]() for path in PATHS for server in RUNS[path]}
    with tempfile.TemporaryDirectory(prefix="bench-observability-") as tmp:
        logs = Path(tmp)
        base_env = os.environ | {
            "ENVIRONMENT": "local",  # no OIDC issuer needed; /healthz is open anyway
            "DATABASE_URL": "sqlite+pysqlite:///:memory:",  # no route measured touches it
            "RAG_VECTOR_STORE": "memory",
            "OTEL_TRACES_EXPORTER": "none",
            **served_model(package, settings, logs),
        }
        sampler = {
            "+otlp tracing": {},  # the environment's ratio, every request by default
            "+otlp sampled": {"OTEL_TRACES_SAMPLER_ARG": f"{production_ratio:g}"},
        }
        envs = {"bare": base_env, "metrics+logs": base_env} | {
            server: base_env
            | {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_ports[server]}",
                **sampler[server],
            }
            for server in TRACED
        }
        receivers = {
            f"receiver {server}": (
                ["--receive", "--port", str(port)],
                base_env,
                f"http://127.0.0.1:{port}/",
            )
            for server, port in receiver_ports.items()
        }
        servers = {
            server: (
                ["--serve", server, "--port", str(port)],
                envs[server],
                f"http://127.0.0.1:{port}/healthz",
            )
            for server, port in ports.items()
        }
        with _processes(receivers, logs):
            for number in range(options.rounds):
                turn = number % len(SERVERS)
                order = SERVERS[turn:] + SERVERS[:turn]
                print(f"round {number + 1}/{options.rounds}: {', '.join(order)}", file=sys.stderr)
                # New processes each round: two processes of one server can differ by a tenth
                # in req/s for as long as they live (where their memory and threads landed),
                # so one process per server for the whole run would weigh on every round.
                with _processes(servers, logs):
                    for port in ports.values():  # the first requests import lazily
                        for path in PATHS:
                            for _ in range(WARM_UP_REQUESTS):
                                _get(f"http://127.0.0.1:{port}{path}")
                    for path in PATHS:
                        for server in (server for server in order if server in RUNS[path]):
                            results[(path, server)].append(load(server, path, options.duration))
                            if server in TRACED and path != "/healthz":
                                # The batch span processor exports the last spans a delay
                                # later: let it finish before the next run, so they weigh on
                                # this one only.
                                time.sleep(export_wait)
            received = {
                server: json.loads(_get(f"http://127.0.0.1:{port}/"))
                for server, port in receiver_ports.items()
            }
        access_lines = sum(
            '"logger": "access"' in line
            for line in (logs / "metrics+logs.log").read_text(errors="replace").splitlines()
        )

    driver = (
        f"wrk -t{options.threads} -c{options.connections} -d{options.duration:g}s"
        if wrk
        else f"asyncio client, {options.connections} connections, {options.duration:g} s"
    )
    header = (
        f"observability overhead, {driver}, {options.rounds} interleaved round(s), medians "
        f"(ACCESS_LOG_SAMPLE_RATE={settings.access_log_sample_rate:g}, "
        f"OTEL_TRACES_SAMPLER_ARG={settings.otel_traces_sampler_arg:g}, +otlp sampled at "
        f"production's {production_ratio:g}, {os.cpu_count()} CPUs)"
    )
    evidence = [f"metrics+logs wrote {access_lines:,} access-log lines"]
    for server in TRACED:
        # /healthz is not traced; /bench/ping is, warm-up requests included.
        traced = WARM_UP_REQUESTS * options.rounds
        traced += sum(run.requests for run in results[("/bench/ping", server)])
        spans = received[server]["spans"]
        evidence.append(
            f"{server}: the OTLP receiver got {spans:,} spans in "
            f"{received[server]['exports']:,} exports for {traced:,} traced requests "
            f"({_ratio(spans, traced):.2f} of them)"
        )
    print("\n".join(report(results, header, evidence)))


if __name__ == "__main__":
    main()
