"""The four golden signals from Prometheus, checked against thresholds (standard library only).

Used by check-golden-signals.sh (one deployment against absolute limits) and by
check-canary-health.sh (the canary against the same limits and against stable). It asks
Prometheus's HTTP API (/api/v1/query) for, over the last WINDOW:

    traffic       sum(rate(http_requests_total[W]))                       requests per second
    latency       histogram_quantile(0.50/0.95/0.99, http_request_duration_seconds_bucket)
    errors        share of requests answered 5xx, and 4xx
    saturation    busiest pod's CPU (rate(process_cpu_seconds_total)) and memory
                  (process_resident_memory_bytes)

and, for a service that calls a language model (it exports llm_* metrics; the rows are left
out for one that does not):

    llm errors        share of model calls that failed (llm_request_errors_total / llm_requests_total)
    llm cost          model cost per HTTP request (llm_cost_usd_total / http_requests_total)
    llm token latency mean seconds per generated token (llm_time_per_output_token_seconds)

Health-probe and metrics routes are left out of the HTTP signals (GS_EXCLUDE_ROUTES), so
kubelet probes do not count as traffic. A full verdict needs at least GS_MIN_REQUESTS
requests in the window. With fewer, too little traffic is *inconclusive*, not a failure:
only evidence of harm that is significant for the sample fails the check - at least
GS_MIN_BAD_REQUESTS requests answered 5xx (4xx), or slower than the p95 limit, and so many
that a one-sided binomial test rejects "the share is within its limit" at GS_SIGNIFICANCE
(the limit: the absolute one, or in canary mode stable's share + the allowed increase; for
latency, 5 % of the requests above the p95 limit). Without such evidence the result is
inconclusive (exit 6), and the caller decides: check-canary-health.sh watches longer and
drives smoke traffic at the canary, then promotes on no evidence of harm.

Every limit has a default and an environment variable (SIGNALS and DEFAULTS below, and
scripts-ci/README.md); the value "off" disables that check. In canary mode the canary must
also stay close to stable: latency within stable x CANARY_MAX_LATENCY_RATIO +
CANARY_LATENCY_SLACK_SECONDS, error shares within stable + CANARY_MAX_5XX/4XX_INCREASE.

Exit codes: 0 every signal within its limit; 1 a limit was exceeded (with little traffic:
significantly); 2 usage error (or a selector Prometheus cannot parse); 4 no data (no scrape
target up, a metric missing); 5 Prometheus unreachable or failing; 6 inconclusive: too
little traffic for a full verdict and no evidence of harm. Needs Python 3.10+.
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
EXIT_INCONCLUSIVE = 6  # too little traffic for a verdict, and no evidence of harm
# A healthy service answers at most this share of its requests above the p95 limit.
SLOW_SHARE = 0.05


@dataclass(frozen=True)
class Signal:
    """One golden signal: how to query it, show it and judge it."""

    key: str
    label: str
    unit: str  # seconds | ratio | rps | count | cores | bytes
    limit_env: str | None = None  # absolute upper limit, from the environment
    default_limit: float | None = None
    # "ratio" (latency), "ratio:VARIABLE" (stable x VARIABLE + canary_slack), or the variable
    # of an allowed increase
    canary_rule: str | None = None
    canary_slack: float = 0.0
    optional: bool = False  # a model signal: not shown when no scope exports it


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
    # The model provider, as deploy/monitoring/alerts.yaml judges it (LLMProviderErrors and
    # the CanaryLLM* alerts): same limits, over the canary check's window.
    Signal(
        "llm_errors",
        "llm errors",
        "ratio",
        "GS_MAX_LLM_ERROR_RATIO",
        0.05,
        "CANARY_MAX_LLM_ERROR_INCREASE",
        optional=True,
    ),
    Signal(
        "llm_cost",
        "llm cost per request",
        "usd",
        "GS_MAX_LLM_COST_PER_REQUEST_USD",
        None,
        "ratio:CANARY_MAX_LLM_COST_RATIO",
        optional=True,
    ),
    Signal(
        "llm_token_latency",
        "llm time per token",
        "seconds",
        "GS_MAX_LLM_SECONDS_PER_TOKEN",
        None,
        "ratio:CANARY_MAX_LLM_TOKEN_LATENCY_RATIO",
        canary_slack=0.005,
        optional=True,
    ),
]

DEFAULTS = {
    "GS_MIN_REQUESTS": 100.0,
    "GS_MIN_BAD_REQUESTS": 3.0,
    "GS_SIGNIFICANCE": 0.01,
    "CANARY_MAX_LATENCY_RATIO": 1.5,
    "CANARY_LATENCY_SLACK_SECONDS": 0.05,
    "CANARY_MAX_5XX_INCREASE": 0.005,
    "CANARY_MAX_4XX_INCREASE": 0.02,
    "CANARY_MAX_LLM_ERROR_INCREASE": 0.01,
    "CANARY_MAX_LLM_COST_RATIO": 1.25,
    "CANARY_MAX_LLM_TOKEN_LATENCY_RATIO": 1.5,
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


def check_source(prometheus_url: str, window: str) -> None:
    """Refuse a missing Prometheus URL or a window PromQL would not take (30s, 5m, 1h, 1d)."""
    if not prometheus_url:
        raise UsageError("PROMETHEUS_URL is not set: give the Prometheus base URL")
    if not window or not window[:-1].isdigit() or window[-1] not in "smhd":
        raise UsageError(f"the window must look like 30s, 5m, 1h (got {window!r})")


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

    def labels_of(self, query: str, label: str) -> list[str]:
        """The values of one label over the series an instant query returns."""
        body = urllib.parse.urlencode({"query": query}).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            f"{self.url}/api/v1/query", data=body, headers=self.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer = json.load(response)
        except (urllib.error.URLError, TimeoutError, OSError, json.JSONDecodeError) as error:
            raise PrometheusError(f"Prometheus failed on `{query}`: {error}") from None
        return [series["metric"].get(label, "") for series in answer["data"]["result"]]


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

    def count(status: str) -> str:
        matched = f"sum(increase(http_requests_total{selector(labels, route, status)}[{window}]))"
        return f"({matched} or vector(0))"

    process = selector(labels)
    calls = f"sum(rate(llm_requests_total{process}[{window}]))"
    failed = f"sum(rate(llm_request_errors_total{process}[{window}]))"
    speed = "llm_time_per_output_token_seconds"
    return {
        "up": f"sum(up{process})",
        "requests": f"sum(increase(http_requests_total{http}[{window}]))",
        "count_5xx": count('status=~"5.."'),
        "count_4xx": count('status=~"4.."'),
        "rps": rate,
        "p50": quantile(0.5),
        "p95": quantile(0.95),
        "p99": quantile(0.99),
        "errors_5xx": share('status=~"5.."'),
        "errors_4xx": share('status=~"4.."'),
        "cpu": f"max(rate(process_cpu_seconds_total{process}[{window}]))",
        "memory": f"max(max_over_time(process_resident_memory_bytes{process}[{window}]))",
        "llm_errors": f"({failed} or vector(0)) / {calls}",
        "llm_cost": f"sum(rate(llm_cost_usd_total{process}[{window}])) / {rate}",
        "llm_token_latency": f"sum(rate({speed}_sum{process}[{window}]))"
        f" / sum(rate({speed}_count{process}[{window}]))",
    }


def measure(
    prometheus: Prometheus, labels: str, window: str, excluded: str
) -> dict[str, float | None]:
    values = {key: prometheus.value(q) for key, q in queries(labels, window, excluded).items()}
    values["count_slow"] = slow_requests(prometheus, labels, window, excluded)
    return values


def slow_requests(prometheus: Prometheus, labels: str, window: str, excluded: str) -> float | None:
    """Requests slower than the p95 limit in the window, counted from the histogram at the
    first bucket boundary at or above the limit (so never more than really were slower)."""
    limit = absolute_limit(next(s for s in SIGNALS if s.key == "p95"))
    if limit is None:
        return None
    route = f'route!~"{excluded}"' if excluded else ""

    def buckets(*extra: str) -> str:
        return f"http_request_duration_seconds_bucket{selector(labels, route, *extra)}"

    bounds = [
        le
        for le in set(prometheus.labels_of(f"count by (le) ({buckets()})", "le"))
        if le not in ("", "+Inf") and float(le) >= limit
    ]
    if not bounds:
        return None
    all_requests, fast_requests = buckets('le="+Inf"'), buckets(f'le="{min(bounds, key=float)}"')
    total = prometheus.value(f"sum(increase({all_requests}[{window}]))")
    fast = prometheus.value(f"sum(increase({fast_requests}[{window}]))")
    if total is None or fast is None:
        return None
    return max(total - fast, 0.0)


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
    if unit == "usd":
        return f"{value:.5f} USD"
    return f"{value / 1024 / 1024:.1f} MiB"


@dataclass(frozen=True)
class Tolerances:
    """How many requests a verdict needs, and how much slower than stable a canary may be."""

    min_requests: float
    latency_ratio: float | None
    latency_slack: float
    min_bad: float = DEFAULTS["GS_MIN_BAD_REQUESTS"]
    significance: float = DEFAULTS["GS_SIGNIFICANCE"]

    @classmethod
    def from_env(cls) -> Tolerances:
        significance = env_number("GS_SIGNIFICANCE", DEFAULTS["GS_SIGNIFICANCE"])
        if significance is None or not 0 < significance < 1:
            raise UsageError("GS_SIGNIFICANCE must be a probability between 0 and 1, e.g. 0.01")
        return cls(
            min_bad=env_number("GS_MIN_BAD_REQUESTS", DEFAULTS["GS_MIN_BAD_REQUESTS"]) or 0.0,
            significance=significance,
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
    elif signal.canary_rule.startswith("ratio:"):
        variable = signal.canary_rule.removeprefix("ratio:")
        ratio = env_number(variable, DEFAULTS[variable])
        if ratio is not None:
            relative = stable * ratio + signal.canary_slack
            slack = f" + {show(signal.canary_slack, signal.unit)}" if signal.canary_slack else ""
            why = f"stable x {variable}{slack}"
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
    inconclusive: list[str] = field(default_factory=list)  # too little traffic, no harm seen
    evidence: str = ""  # with too little traffic: the bad requests counted, e.g. "0 answered 5xx"

    @property
    def exit_code(self) -> int:
        if self.breaches:
            return EXIT_FAILED
        if self.missing:
            return EXIT_NO_DATA
        return EXIT_INCONCLUSIVE if self.inconclusive else EXIT_OK

    @property
    def name(self) -> str:
        names = {EXIT_OK: "pass", EXIT_FAILED: "fail", EXIT_NO_DATA: "no data"}
        return names.get(self.exit_code, "inconclusive")


def binomial_tail(bad: int, requests: int, share: float) -> float:
    """P(X >= bad) for X ~ Binomial(requests, share): how likely so many bad requests are
    when the true share of bad requests is `share`."""
    if bad <= 0:
        return 1.0
    if bad > requests or share <= 0:
        return 0.0
    if share >= 1:
        return 1.0
    logs = [
        math.lgamma(requests + 1)
        - math.lgamma(i + 1)
        - math.lgamma(requests - i + 1)
        + i * math.log(share)
        + (requests - i) * math.log1p(-share)
        for i in range(bad, requests + 1)
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(value - top) for value in logs))


# Low traffic: the signals whose bad requests can be counted, and the counter of each.
EVIDENCE = {"errors_5xx": "count_5xx", "errors_4xx": "count_4xx", "p95": "count_slow"}


def judge(
    scopes: dict[str, dict[str, float | None]], subject: str, baseline: str | None
) -> Verdict:
    """Judge the subject (the service, or the canary) signal by signal; one row per signal.

    With enough traffic every signal is compared with its limit. With too little, only
    significant evidence of harm counts (EVIDENCE); otherwise the verdict is inconclusive.
    """
    verdict = Verdict()
    tolerances = Tolerances.from_env()
    low = {
        name: values["requests"] or 0.0
        for name, values in scopes.items()
        if (values["requests"] or 0.0) < tolerances.min_requests
    }
    enough = not low
    requests = round(scopes[subject]["requests"] or 0.0)
    seen: list[str] = []

    for signal in SIGNALS:
        if signal.optional and all(values[signal.key] is None for values in scopes.values()):
            continue  # the service calls no model
        value = scopes[subject][signal.key]
        shown = [show(values[signal.key], signal.unit) for values in scopes.values()]
        stable = scopes[baseline][signal.key] if baseline else None
        if signal.key == "requests":
            limit_text = f">= {tolerances.min_requests:.0f}"
            result = "ok" if enough else "too few"
        elif signal.limit_env is None:
            limit_text, result = "", ""  # shown for context, not judged
        elif not enough:
            limit_text, result = low_traffic_check(
                signal, scopes[subject], stable, requests, tolerances, subject, verdict, seen
            )
        else:
            limit, source = limit_for(signal, tolerances, stable)
            limit_text = "off" if limit is None else f"<= {show(limit, signal.unit)}"
            if limit is None:
                result = "off"
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

    if not enough and not verdict.breaches:
        counts = verdict.evidence = ", ".join(seen) or "nothing to count"
        for name, count in low.items():
            verdict.inconclusive.append(
                f"traffic: {name} had {count:.0f} requests in the window, "
                f"{tolerances.min_requests:.0f} are needed for a full verdict (GS_MIN_REQUESTS); "
                f"no significant evidence of harm on {subject} ({counts})"
            )
        verdict.failed.append("too little traffic")
    return verdict


def low_traffic_check(
    signal: Signal,
    values: dict[str, float | None],
    stable: float | None,
    requests: int,
    tolerances: Tolerances,
    subject: str,
    verdict: Verdict,
    seen: list[str],
) -> tuple[str, str]:
    """(limit text, result) of one signal when there is too little traffic: it fails only on
    enough bad requests, and significantly more than its limit allows for the sample."""
    counter = EVIDENCE.get(signal.key)
    if counter is None:
        return "", "n/a"
    allowed: float | None
    if signal.key == "p95":
        limit = absolute_limit(signal)
        allowed, source = SLOW_SHARE, f"slower than {signal.limit_env}"
        what = f"slower than {show(limit, 'seconds')}" if limit is not None else ""
    else:
        limit, source = limit_for(signal, tolerances, stable)
        allowed, what = limit, f"answered {signal.label.split()[-1]}"
    count = values[counter]
    if limit is None or allowed is None or count is None:
        return "off" if limit is None else "", "n/a"
    bad = min(round(count), requests)
    share = bad / requests if requests else 0.0
    p_value = binomial_tail(bad, requests, allowed)
    seen.append(f"{bad} {what}")
    limit_text = f"<= {show(allowed, 'ratio')} {what}"
    if bad >= tolerances.min_bad and p_value < tolerances.significance:
        verdict.failed.append(signal.label)
        verdict.breaches.append(
            f"{signal.label}: {subject} had {bad} of {requests} requests {what} "
            f"({show(share, 'ratio')}), significantly above {show(allowed, 'ratio')} ({source}; "
            f"p = {p_value:.2g} < GS_SIGNIFICANCE {tolerances.significance:g})"
        )
        return limit_text, "FAIL"
    return limit_text, f"n/a ({bad}/{requests})"


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
        check_source(args.prometheus_url, args.window)
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
    for doubt in verdict.inconclusive:
        print(f"INCONCLUSIVE {doubt}")
    passed = verdict.exit_code == EXIT_OK
    if passed:
        print("RESULT: PASS")
    elif verdict.exit_code == EXIT_INCONCLUSIVE:
        print(f"RESULT: INCONCLUSIVE ({subject}: {scopes[subject]['requests'] or 0:.0f} requests)")
    else:
        print(f"RESULT: FAIL ({', '.join(verdict.failed)})")

    if args.report:
        report = {
            "window": args.window,
            "selectors": {name: selector(labels) for name, labels in selectors.items()},
            "measurements": scopes,
            "table": [dict(zip(header, row, strict=True)) for row in verdict.rows],
            "failures": verdict.breaches + verdict.missing,
            "inconclusive": verdict.inconclusive,
            "evidence": verdict.evidence,
            "verdict": verdict.name,
            "requests": round(scopes[subject]["requests"] or 0.0),
            "passed": passed,
        }
        with open(args.report, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
