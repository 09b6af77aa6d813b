"""What a generated service's observability costs: its app against bare FastAPI, under load.

    uv run python -m benchmarks.observability [--service-type TYPE] [--rounds 5 --duration 10]

Renders a project from the working tree's committed template (HEAD, as `copier copy` does),
installs it with uv (runtime dependencies only), then runs the generated project's own
benchmark, `make bench` there (benchmarks/observability.py of the generated project): four
servers with the same uvicorn settings (bare FastAPI with the same routes; the service with
metrics, request ids and JSON access logs; the same with spans exported over OTLP/HTTP to a
local receiver, every request traced; the same at the trace ratio production deploys, 0.1),
loaded in interleaved rounds by wrk (`make deps` installs it; without it an asyncio client in
the script), and a table of medians: req/s, p99, ratios to bare, goals.

Goals: at least 0.8 of bare's req/s with metrics and logs, 0.7 with OTLP tracing, p99 within
1.3x bare's. A benchmark, not a test: nothing fails on the numbers. The machine's other load
moves the figures: compare ratios taken in one run, not runs with each other.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dev import service_types
from dev.template_repo import ROOT, render
from tests.support.procs import run


def http_types() -> list[str]:
    return [name for name in service_types.names() if name in service_types.having("serves_http")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--service-type", default="microservice", choices=http_types())
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds [5]")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per run [10]")
    parser.add_argument("--connections", type=int, default=32, help="open connections [32]")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads [2]")
    parser.add_argument("--python-client", action="store_true", help="the asyncio client, not wrk")
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="playbook-bench-") as tmp:
        started = time.monotonic()
        print(f"rendering a {options.service_type} and installing it with uv...", file=sys.stderr)
        project = render(
            ROOT,
            Path(tmp) / "project",
            {"project_name": "Bench Service", "service_type": options.service_type},
        )
        run(["uv", "sync", "--quiet", "--no-dev"], cwd=project, timeout=900)
        print(f"ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
        args = [
            f"--rounds={options.rounds}",
            f"--duration={options.duration:g}",
            f"--connections={options.connections}",
            f"--threads={options.threads}",
            *(["--python-client"] if options.python_client else []),
        ]
        print(f"{options.service_type} rendered from the template at {ROOT} (HEAD)", flush=True)
        # The project's benchmark prints its progress and table as it goes.
        env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
        code = subprocess.run(
            ["uv", "run", "--no-sync", "python", "-m", "benchmarks.observability", *args],
            cwd=project,
            env=env,
            check=False,
        ).returncode
        if code != 0:
            raise SystemExit(f"the generated project's benchmark exited {code} (output above)")


if __name__ == "__main__":
    main()
