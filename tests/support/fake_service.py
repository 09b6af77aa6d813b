"""Stand-in services with injected faults, exporting the generated service's metrics.

The golden-signal and canary checks must see 5xx errors and slow answers; the generated
service has no route that produces them, so this process serves real HTTP on several
ports, one behaviour per port, and exports the same metric names as the service
(http_requests_total, http_request_errors_total, http_request_duration_seconds, process_*):

    python fake_service.py --listen 9001:ok --listen 9002:errors --listen 9003:slow

ok answers 200 at once; errors answers 500 to every third request; slow sleeps
SLOW_SECONDS before answering 200. GET /metrics on each port is its exposition.

The llm-* modes answer 200 like ok and also export what a service calling a language model
does (llm_requests_total, llm_request_errors_total, llm_cost_usd_total,
llm_time_per_output_token_seconds), one model call per request: llm is a healthy one
(LLM_COST_USD per call, LLM_SECONDS_PER_TOKEN); llm-costly costs three times as much;
llm-failing fails every third model call (the service still answers 200, degraded).
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)

LABELS = ("method", "route", "status")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SLOW_SECONDS = 0.6
LLM_COST_USD = 0.001
LLM_SECONDS_PER_TOKEN = 0.02
MODEL = ("openai", "gpt-4o-mini", "chat")
MODES = {"ok", "errors", "slow", "llm", "llm-costly", "llm-failing"}


def serve(port: int, mode: str) -> ThreadingHTTPServer:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    requests = Counter("http_requests_total", "requests", LABELS, registry=registry)
    errors = Counter("http_request_errors_total", "errors", LABELS, registry=registry)
    latency = Histogram(
        "http_request_duration_seconds", "latency", LABELS, buckets=BUCKETS, registry=registry
    )
    model = ("provider", "model", "operation")
    calls = Counter("llm_requests_total", "model calls", (*model, "status"), registry=registry)
    failures = Counter(
        "llm_request_errors_total", "failed calls", (*model, "error"), registry=registry
    )
    cost = Counter("llm_cost_usd_total", "cost", model, registry=registry)
    per_token = Histogram(
        "llm_time_per_output_token_seconds",
        "per token",
        model,
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1),
    )
    if mode == "errors":
        # Both statuses' series exist, at 0, from the first scrape: a series that appears
        # later loses its first increments to rate() (Prometheus takes no start at 0), which
        # would skew the 5xx ratio away from one in three by when the first 500 came.
        for status in ("200", "500"):
            requests.labels("GET", "/work", status)
        errors.labels("GET", "/work", "500")
    counter = itertools.count(1)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/metrics":
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                return
            start = time.perf_counter()
            with lock:
                number = next(counter)
            status = 200
            if mode == "slow":
                time.sleep(SLOW_SECONDS)
            elif mode == "errors" and number % 3 == 0:
                status = 500
            self._answer(status, b'{"ok": true}', "application/json")
            labels = ("GET", "/work", str(status))
            requests.labels(*labels).inc()
            latency.labels(*labels).observe(time.perf_counter() - start)
            if status >= 400:
                errors.labels(*labels).inc()
            if mode.startswith("llm"):
                failed = mode == "llm-failing" and number % 3 == 0
                calls.labels(*MODEL, "error" if failed else "ok").inc()
                if failed:
                    failures.labels(*MODEL, "server_error").inc()
                    return
                cost.labels(*MODEL).inc(LLM_COST_USD * (3 if mode == "llm-costly" else 1))
                per_token.labels(*MODEL).observe(LLM_SECONDS_PER_TOKEN)

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    # shutdown() returns within one poll of the serving loop (0.5 s by default)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", action="append", required=True, help="PORT:MODE")
    args = parser.parse_args()
    for spec in args.listen:
        port, mode = spec.split(":")
        assert mode in MODES, mode
        serve(int(port), mode)
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
