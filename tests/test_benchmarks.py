"""The benchmarks run end to end in a tiny mode and print what they measure (figures are not
checked: a loaded machine moves them; `python -m benchmarks.<name>` is the measurement)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import Render
from .support.procs import run
from .support.project import ROOT, first_type_with

pytestmark = pytest.mark.slow

SERVERS = ("bare", "metrics+logs", "+otlp tracing", "+otlp sampled")


# The model-serving run: that service starts only with a model, the benchmark registers the
# sample model (serving/sample.py) for it.
@pytest.mark.parametrize(
    ("client", "capability"),
    [("wrk", "serves_http"), ("python", "serves_http"), ("wrk", "serves_model")],
    ids=["wrk", "python", "wrk-model-serving"],
)
def test_observability_benchmark_prints_its_table(client: str, capability: str) -> None:
    if client == "wrk" and shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: run `make deps` (dev/install-test-deps.sh installs it)")
    service_type = first_type_with(**{capability: True})
    if service_type is None:
        pytest.skip(f"PLAYBOOK_SERVICE_TYPES selects no service type that {capability}")
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
    # The sampled server runs on the traced path only (/healthz is not traced).
    runs = {"/healthz": SERVERS[:3], "/bench/ping": SERVERS}
    for path, servers in runs.items():
        assert re.search(rf"^{re.escape(path)} +bare +[\d,]+ +[\d.]+ +0$", out, re.M), out
        for server in SERVERS[1:]:
            assert (f"  {path} {server}: " in out) == (server in servers), out
    # One row per server and path, each with req/s, p99 and, for the services, both ratios.
    rows = re.findall(
        r"^\S* +(metrics\+logs|\+otlp tracing|\+otlp sampled) +[\d,]+ +[\d.]+ +[\d.]+ +[\d.]+x +0$",
        out,
        re.M,
    )
    assert len(rows) == 5, out
    assert "+otlp sampled at production's 0.1" in out
    # The service really logged, and each traced server's spans reached its OTLP receiver:
    # one for every traced request, and about one in ten at production's ratio.
    access = re.search(r"metrics\+logs wrote ([\d,]+) access-log lines", out)
    assert access and int(access[1].replace(",", "")) > 0, out
    spans = {
        server: (int(got.replace(",", "")), int(traced.replace(",", "")))
        for server, got, traced in re.findall(
            r"^(\+otlp \w+): the OTLP receiver got ([\d,]+) spans in [\d,]+ exports "
            r"for ([\d,]+) traced requests",
            out,
            re.M,
        )
    }
    assert spans.keys() == {"+otlp tracing", "+otlp sampled"}, out
    got, traced = spans["+otlp tracing"]
    assert got >= traced > 0, out
    got, traced = spans["+otlp sampled"]
    assert 0 < got < traced / 3, out


def _generated_benchmark(project: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generated_observability", project / "benchmarks/observability.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_the_sampled_server_runs_at_the_ratio_production_deploys(render_project: Render) -> None:
    service_type = first_type_with(serves_http=True)
    if service_type is None:
        pytest.skip("PLAYBOOK_SERVICE_TYPES selects no HTTP service type")
    project = render_project(service_type=service_type)
    benchmark = _generated_benchmark(project)
    config = project / "deploy/components/production/config.env"
    assert benchmark.production_sampler_arg() == 0.1  # the line the template writes

    text = config.read_text()
    config.write_text(text + "OTEL_TRACES_SAMPLER_ARG= 0.25\n")  # the last line wins
    assert benchmark.production_sampler_arg() == 0.25
    # A team that removed the line keeps every trace, as the service does without it.
    config.write_text(re.sub(r"(?m)^OTEL_TRACES_SAMPLER_ARG=.*\n", "", text))
    assert benchmark.production_sampler_arg() == 1.0
    for bad in ("ten percent", "1.5", "-0.1", "nan", ""):
        config.write_text(f"{text}OTEL_TRACES_SAMPLER_ARG={bad}\n")
        with pytest.raises(SystemExit, match=r"is not a ratio from 0 to 1 \(e\.g\. 0\.1"):
            benchmark.production_sampler_arg()
    config.write_bytes(text.encode() + b"OTEL_TRACES_SAMPLER_ARG=0.\xff\n")  # not UTF-8
    with pytest.raises(SystemExit, match="is not a ratio from 0 to 1"):
        benchmark.production_sampler_arg()
