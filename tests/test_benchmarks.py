"""The benchmarks run end to end in a tiny mode and print what they measure (figures are not
checked: a loaded machine moves them; `python -m benchmarks.<name>` is the measurement)."""

from __future__ import annotations

import re
import shutil
import sys

import pytest

from .support.procs import run
from .support.project import ROOT, first_type_with

pytestmark = pytest.mark.slow

SERVERS = ("bare", "metrics+logs", "+otlp tracing")


@pytest.mark.parametrize("client", ["wrk", "python"])
def test_observability_benchmark_prints_its_table(client: str) -> None:
    if client == "wrk" and shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: run `make deps` (dev/install-test-deps.sh installs it)")
    service_type = first_type_with(serves_http=True)
    if service_type is None:
        pytest.skip("PLAYBOOK_SERVICE_TYPES selects no HTTP service type")
    args = [
        "--rounds",
        "1",
        "--duration",
        "1",
        "--connections",
        "4",
        "--service-type",
        service_type,
    ]
    if client == "python":
        args.append("--python-client")
    # Spans exported every 0.5 s, not 5: the benchmark waits for each export that long.
    fast_export = {"OTEL_BSP_SCHEDULE_DELAY": "500"}
    result = run(
        [sys.executable, "-m", "benchmarks.observability", *args], cwd=ROOT, env=fast_export, timeout=600
    )
    out = result.stdout
    assert ("wrk -t2 -c4 -d1s" if client == "wrk" else "asyncio client, 4 connections") in out
    for path in ("/healthz", "/bench/ping"):
        assert re.search(rf"^{re.escape(path)} +bare +[\d,]+ +[\d.]+ +0$", out, re.M), out
        for server in SERVERS[1:]:
            assert f"  {path} {server}: " in out
    # One row per server and path, each with req/s, p99 and, for the services, both ratios.
    rows = re.findall(
        r"^\S* +(metrics\+logs|\+otlp tracing) +[\d,]+ +[\d.]+ +[\d.]+ +[\d.]+x +0$", out, re.M
    )
    assert len(rows) == 4, out
    # The service really logged and the spans really reached the OTLP receiver.
    evidence = re.search(
        r"wrote ([\d,]+) access-log lines; the OTLP receiver got ([\d,]+) spans", out
    )
    assert evidence, out
    assert int(evidence[1].replace(",", "")) > 0
    assert int(evidence[2].replace(",", "")) > 0
