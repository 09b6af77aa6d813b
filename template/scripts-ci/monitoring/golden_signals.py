"""The four golden signals from Prometheus, checked against thresholds (standard library only).

Used by check-golden-signals.sh (one deployment against absolute limits) and by
check-canary-health.sh (the canary against the same limits and against stable). It asks
Prometheus's HTTP API (/api/v1/query) for, over the last WINDOW:

    traffic       sum(rate(http_requests_total[W]))                       requests per second
    latency       histogram_quantile(0.50/0.95/0.99, http_request_duration_seconds_bucket)
    errors        share of requests answered 5xx, and 4xx
    saturation    busiest pod's CPU (rate(process_cpu_seconds_total)) and memory
                  (process_resident_memory_bytes)

Health-probe and metrics routes are left out of the HTTP signals (GS_EXCLUDE_ROUTES), so
kubelet probes do not count as traffic. A verdict needs at least GS_MIN_REQUESTS requests
in the window: with fewer, the check fails as "too little traffic to judge".

Every limit has a default and an environment variable (SIGNALS and DEFAULTS below, and
scripts-ci/README.md); the value "off" disables that check. In canary mode the canary must
also stay close to stable: latency within stable x CANARY_MAX_LATENCY_RATIO +
CANARY_LATENCY_SLACK_SECONDS, error shares within stable + CANARY_MAX_5XX/4XX_INCREASE.

Exit codes: 0 every signal within its limit; 1 a limit was exceeded; 2 usage error (or a
selector Prometheus cannot parse); 4 too little traffic or no data to judge; 5 Prometheus
unreachable or failing. Needs Python 3.10+.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_DATA, EXIT_UNREACHABLE = 0, 1, 2, 4, 5


@dataclass(frozen=True)
class Signal:
    """One golden signal: how to query it, show it and judge it."""

    key: str
    label: str
    unit: str  # seconds | ratio | rps | count | cores | bytes
    limit_env: str | None = None  # absolute upper limit, from the environment
    default_limit: float | None = None
    canary_rule: str | None = None  # "ratio" (latency) or the variable of an allowed increase


SIGNALS = [
    Signal("requests", "traffic (requests)", "count"),
    Signal("rps", "traffic (rate)", "rps"),
    Signal("p50", "latency p50", "seconds", "GS_MAX_P50_SECONDS", 0.25, "ratio"),
    Signal("p95", "latency p95", "seconds", "GS_MAX_P95_SECONDS", 0.5, "ratio"),
    Signal("p99", "latency p99", "seconds", "GS_MAX_P99_SECONDS", 1.0, "ratio"),
    Signal(
        "errors_5xx", "errors 5xx", "ratio", "GS_MAX_5XX_RATIO", 0.01, "CANARY_MAX_5XX_INCREASE"
    ),
    Signal(
        "errors_4xx", "errors 4xx", "ratio", "GS_MAX_4XX_RATIO", 0.05, "CANARY_MAX_4XX_INCREASE"
    ),
    Signal("cpu", "saturation cpu", "cores", "GS_MAX_CPU_CORES", 0.9),
    Signal("memory", "saturation memory", "bytes", "GS_MAX_MEMORY_MB", 512.0),
]

DEFAULTS = {
    "GS_MIN_REQUESTS": 100.0,
    "CANARY_MAX_LATENCY_RATIO": 1.5,
    "CANARY_LATENCY_SLACK_SECONDS": 0.05,
    "CANARY_MAX_5XX_INCREASE": 0.005,
    "CANARY_MAX_4XX_INCREASE": 0.02,
}
DEFAULT_EXCLUDED_ROUTES = "/healthz|/readyz|/metrics"


class PrometheusError(Exception):
    """Prometheus did not answer or refused the query."""


class UsageError(Exception):
    """A wrong option or environment variable."""


def env_number(name: str, default: float | None) -> float | None:
    """A threshold from the environment: a number, or "off" (None) to disable the check."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() == "off":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number or 'off', got {raw!r}") from None
    if value < 0 or math.isnan(value):
        raise UsageError(f"{name} must not be negative, got {raw!r}")
    return value


def absolute_limit(signal: Signal) -> float | None:
    if signal.limit_env is None:
        return None
    limit = env_number(signal.limit_env, signal.default_limit)
    if limit is not None and signal.unit == "bytes":
        return limit * 1024 * 1024  # the variable is in MiB
    return limit


class Prometheus:
    """A minimal client of the instant-query API."""

    def __init__(self, url: str, timeout: float = 15.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"PROMETHEUS_URL must be an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json"}
        if token := os.environ.get("PROMETHEUS_TOKEN"):
            self.headers["Authorization"] = f"Bearer {token}"
        if org := os.environ.get("PROMETHEUS_ORG_ID"):
            self.headers["X-Scope-OrgID"] = org  # Mimir, Cortex, Thanos tenants

    def value(self, query: str) -> float | None:
        """The single value of an instant query; None when there is no data (or NaN)."""
        body = urllib.parse.urlencode({"query": query}).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            f"{self.url}/api/v1/query", data=body, headers=self.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            if error.code == 400:  # Prometheus: bad_data, the query does not parse
                raise UsageError(
                    f"Prometheus cannot parse `{query}` (check the selectors): {detail}"
                ) from None
            raise PrometheusError(
                f"Prometheus answered HTTP {error.code} to `{query}`: {detail}"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {error}") from None
        except json.JSONDecodeError:
            raise PrometheusError(f"{self.url} did not answer JSON: is it Prometheus?") from None
        if answer.get("status") != "success":
            raise PrometheusError(f"Prometheus refused `{query}`: {answer.get('error')}")
        result = answer["data"]["result"]
        if not result:
            return None
        number = float(result[0]["value"][1])
        return None if math.isnan(number) else number


def selector(labels: str, *extra: str) -> str:
    """`{labels,extra...}` from matchers given with or without braces."""
    matchers = [part for part in (labels.strip().strip("{}").strip(), *extra) if part]
    return "{" + ",".join(matchers) + "}"


def queries(labels: str, window: str, excluded_routes: str) -> dict[str, str]:
    """The PromQL of every signal for one set of label matchers."""
    route = f'route!~"{excluded_routes}"' if excluded_routes else ""
    http = selector(labels, route)
    rate = f"sum(rate(http_requests_total{http}[{window}]))"

    def share(status: str) -> str:
        errors = f"sum(rate(http_requests_total{selector(labels, route, status)}[{window}]))"
        return f"({errors} or vector(0)) / {rate}"

    def quantile(q: float) -> str:
        buckets = f"rate(http_request_duration_seconds_bucket{http}[{window}])"
        return f"histogram_quantile({q}, sum by (le) ({buckets}))"

    process = selector(labels)
    return {
        "up": f"sum(up{process})",
        "requests": f"sum(increase(http_requests_total{http}[{window}]))",
        "rps": rate,
        "p50": quantile(0.5),
        "p95": quantile(0.95),
        "p99": quantile(0.99),
        "errors_5xx": share('status=~"5.."'),
        "errors_4xx": share('status=~"4.."'),
        "cpu": f"max(rate(process_cpu_seconds_total{process}[{window}]))",
        "memory": f"max(max_over_time(process_resident_memory_bytes{process}[{window}]))",
    }


def measure(
    prometheus: Prometheus, labels: str, window: str, excluded: str
) -> dict[str, float | None]:
    return {key: prometheus.value(q) for key, q in queries(labels, window, excluded).items()}


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "seconds":
        return f"{value * 1000:.1f} ms"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    if unit == "rps":
        return f"{value:.2f} req/s"
    if unit == "count":
        return f"{value:.0f}"
    if unit == "cores":
        return f"{value:.3f} cores"
    return f"{value / 1024 / 1024:.1f} MiB"


@dataclass(frozen=True)
class Tolerances:
    """How many requests a verdict needs, and how much slower than stable a canary may be."""

    min_requests: float
    latency_ratio: float | None
    latency_slack: float

    @classmethod
    def from_env(cls) -> Tolerances:
        return cls(
            min_requests=env_number("GS_MIN_REQUESTS", DEFAULTS["GS_MIN_REQUESTS"]) or 0.0,
            latency_ratio=env_number(
                "CANARY_MAX_LATENCY_RATIO", DEFAULTS["CANARY_MAX_LATENCY_RATIO"]
            ),
            latency_slack=env_number(
                "CANARY_LATENCY_SLACK_SECONDS", DEFAULTS["CANARY_LATENCY_SLACK_SECONDS"]
            )
            or 0.0,
        )


def limit_for(
    signal: Signal, tolerances: Tolerances, stable: float | None
) -> tuple[float | None, str]:
    """The upper limit of a signal and where it comes from.

    In canary mode (`stable` given) the canary must also stay close to stable: the lower
    of the absolute limit and the limit relative to stable applies.
    """
    limit, source = absolute_limit(signal), signal.limit_env or ""
    if stable is None or signal.canary_rule is None:
        return limit, source
    relative, why = None, ""
    if signal.canary_rule == "ratio":
        if tolerances.latency_ratio is not None:
            relative = stable * tolerances.latency_ratio + tolerances.latency_slack
            why = "stable x CANARY_MAX_LATENCY_RATIO + CANARY_LATENCY_SLACK_SECONDS"
    else:
        increase = env_number(signal.canary_rule, DEFAULTS[signal.canary_rule])
        if increase is not None:
            relative, why = stable + increase, f"stable + {signal.canary_rule}"
    if relative is not None and (limit is None or relative < limit):
        return relative, why
    return limit, source


@dataclass
class Verdict:
    rows: list[list[str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # labels of the failed signals
    breaches: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.breaches:
            return EXIT_FAILED
        return EXIT_NO_DATA if self.missing else EXIT_OK


def judge(
    scopes: dict[str, dict[str, float | None]], subject: str, baseline: str | None
) -> Verdict:
    """Judge the subject (the service, or the canary) signal by signal; one row per signal."""
    verdict = Verdict()
    tolerances = Tolerances.from_env()

    # Traffic first: without enough requests no other signal means anything.
    for name, values in scopes.items():
        requests = values["requests"] or 0.0
        if requests < tolerances.min_requests:
            verdict.missing.append(
                f"traffic: {name} had {requests:.0f} requests in the window, at least "
                f"{tolerances.min_requests:.0f} are needed to judge "
                "(too little traffic; GS_MIN_REQUESTS)"
            )
    enough = not verdict.missing
    if not enough:
        verdict.failed.append("traffic")

    for signal in SIGNALS:
        value = scopes[subject][signal.key]
        shown = [show(values[signal.key], signal.unit) for values in scopes.values()]
        if signal.key == "requests":
            limit_text, result = f">= {tolerances.min_requests:.0f}", "ok" if enough else "FAIL"
        elif signal.limit_env is None:
            limit_text, result = "", ""  # shown for context, not judged
        else:
            stable = scopes[baseline][signal.key] if baseline else None
            limit, source = limit_for(signal, tolerances, stable)
            limit_text = "off" if limit is None else f"<= {show(limit, signal.unit)}"
            if limit is None:
                result = "off"
            elif not enough:
                result = "n/a"
            elif value is None:
                result = "no data"
                verdict.failed.append(signal.label)
                verdict.missing.append(
                    f"{signal.label}: no data for {subject} (is the metric exported and scraped?)"
                )
            elif value > limit:
                result = "FAIL"
                verdict.failed.append(signal.label)
                verdict.breaches.append(
                    f"{signal.label}: {subject} {show(value, signal.unit)} is above the limit "
                    f"{show(limit, signal.unit)} ({source})"
                )
            else:
                result = "ok"
        verdict.rows.append([signal.label, *shown, limit_text, result])
    return verdict


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus-url", default=os.environ.get("PROMETHEUS_URL", ""))
    parser.add_argument("--window", default=os.environ.get("GS_WINDOW", "5m"))
    parser.add_argument("--selector", help="label matchers of the deployment to check")
    parser.add_argument("--stable-selector", help="canary mode: label matchers of stable")
    parser.add_argument("--canary-selector", help="canary mode: label matchers of the canary")
    parser.add_argument("--report", help="also write the measurements and verdict as JSON here")
    args = parser.parse_args(argv)

    try:
        if not args.prometheus_url:
            raise UsageError("PROMETHEUS_URL is not set: give the Prometheus base URL")
        if not args.window or not args.window[:-1].isdigit() or args.window[-1] not in "smhd":
            raise UsageError(f"the window must look like 30s, 5m, 1h (got {args.window!r})")
        if args.canary_selector or args.stable_selector:
            if not (args.canary_selector and args.stable_selector):
                raise UsageError("canary mode needs both --stable-selector and --canary-selector")
            selectors = {"stable": args.stable_selector, "canary": args.canary_selector}
            subject, baseline = "canary", "stable"
        elif args.selector:
            selectors, subject, baseline = {"service": args.selector}, "service", None
        else:
            raise UsageError("give --selector, or --stable-selector and --canary-selector")
        excluded = os.environ.get("GS_EXCLUDE_ROUTES", DEFAULT_EXCLUDED_ROUTES)
        prometheus = Prometheus(args.prometheus_url)

        scopes: dict[str, dict[str, float | None]] = {}
        for name, labels in selectors.items():
            scopes[name] = measure(prometheus, labels, args.window, excluded)
            if not scopes[name]["up"]:
                print(
                    f"no data: no scrape target is up for {selector(labels)} in Prometheus "
                    f"{prometheus.url}. Check the selector (PROM_SELECTOR*) and that the pods "
                    "are scraped with app/track/namespace labels (scripts-ci/README.md).",
                    file=sys.stderr,
                )
                return EXIT_NO_DATA
        verdict = judge(scopes, subject, baseline)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except PrometheusError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE

    print(f"golden signals over the last {args.window} from {prometheus.url}")
    for name, labels in selectors.items():
        print(f"  {name}: {selector(labels)}")
    print()
    header = ["SIGNAL", *[name.upper() for name in scopes], "LIMIT", "RESULT"]
    print_table(header, verdict.rows)
    print()
    for problem in verdict.breaches + verdict.missing:
        print(f"FAIL {problem}")
    passed = verdict.exit_code == EXIT_OK
    print("RESULT: PASS" if passed else f"RESULT: FAIL ({', '.join(verdict.failed)})")

    if args.report:
        report = {
            "window": args.window,
            "selectors": {name: selector(labels) for name, labels in selectors.items()},
            "measurements": scopes,
            "table": [dict(zip(header, row, strict=True)) for row in verdict.rows],
            "failures": verdict.breaches + verdict.missing,
            "passed": passed,
        }
        with open(args.report, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
