#!/usr/bin/env bash
# Usage: scripts-ci/monitoring/check-golden-signals.sh [--env ENV] [--window W] [--selector M] [--report FILE]
#
# Post-deploy SLO check: asks Prometheus for the four golden signals of the service over
# the last window and fails when one is outside its limit. With too little traffic to judge
# (under GS_MIN_REQUESTS) it fails only on bad requests significant for the sample, and is
# otherwise inconclusive (exit 6). Prints a table: latency p50/p95/p99, errors 5xx/4xx, traffic,
# saturation (CPU and memory of the busiest pod). The PromQL and the limits live in
# scripts-ci/monitoring/golden_signals.py.
#
# Options:
#   --env ENV       production (default) or staging: picks the namespace in the selector
#   --window W      how far back to look: 30s, 5m, 1h (default GS_WINDOW or 5m)
#   --selector M    Prometheus label matchers (default PROM_SELECTOR or
#                   app="<service>",namespace="<namespace>")
#   --report FILE   also write the measurements and verdict as JSON
#   -h, --help      show this help
#
# Environment (defaults in brackets; "off" disables a limit):
#   PROMETHEUS_URL (required)    PROMETHEUS_TOKEN (bearer token)    PROMETHEUS_ORG_ID (tenant)
#   GS_MIN_REQUESTS [100]        fewer requests in the window: inconclusive unless harm is significant
#   GS_MIN_BAD_REQUESTS [3]      GS_SIGNIFICANCE [0.01]  (what is significant: golden_signals.py)
#   GS_MAX_P50_SECONDS [0.25]    GS_MAX_P95_SECONDS [0.5]    GS_MAX_P99_SECONDS [1.0]
#   GS_MAX_5XX_RATIO [0.01]      GS_MAX_4XX_RATIO [0.05]     (shares of all requests)
#   GS_MAX_CPU_CORES [0.9]       GS_MAX_MEMORY_MB [512]      (busiest pod)
#   GS_MAX_LLM_ERROR_RATIO [0.05]  GS_MAX_LLM_COST_PER_REQUEST_USD [off]
#   GS_MAX_LLM_SECONDS_PER_TOKEN [off]  (a service calling a model: its llm_* metrics)
#   GS_EXCLUDE_ROUTES ["/healthz|/readyz|/metrics"]          routes left out of HTTP signals
#   K8S_NAMESPACE [<service>-<env>]   PYTHON [python3]
#
# Exit codes: 0 every signal within its limit; 1 a limit was exceeded; 2 usage or
# configuration error (also a selector Prometheus cannot parse); 3 python3 missing;
# 4 no data (no scrape target up, a metric missing); 5 Prometheus unreachable or failing;
# 6 inconclusive: too little traffic for a verdict, and no evidence of harm.
#
# Example: PROMETHEUS_URL=https://prometheus.example.com scripts-ci/monitoring/check-golden-signals.sh
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

env_name=production
window=${GS_WINDOW:-5m}
selector=${PROM_SELECTOR:-}
report=""
while (($# > 0)); do
  case "$1" in
    --env) require_value "$1" "${2:-}"; env_name=$2; shift 2 ;;
    --window) require_value "$1" "${2:-}"; window=$2; shift 2 ;;
    --selector) require_value "$1" "${2:-}"; selector=$2; shift 2 ;;
    --report) require_value "$1" "${2:-}"; report=$2; shift 2 ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
env_name=$(normalize_env "$env_name")
require_env PROMETHEUS_URL "set it to the base URL of the Prometheus (or Thanos/Mimir) that scrapes $env_name"
python=${PYTHON:-python3}
require_cmd "$python" "install Python 3.10+ (stdlib only) or set PYTHON"
selector=${selector:-app=\"$SERVICE_NAME\",namespace=\"$(k8s_namespace "$env_name")\"}

info "golden signals of $SERVICE_NAME in $env_name over the last $window"
args=(--prometheus-url "$PROMETHEUS_URL" --window "$window" --selector "$selector")
[[ -z "$report" ]] || args+=(--report "$report")
status=0
"$python" "$SCRIPTS_CI_DIR/monitoring/golden_signals.py" "${args[@]}" || status=$?
case "$status" in
  0) info "golden signals within their limits" ;;
  4) error "no data to judge the golden signals (see above)" ;;
  6) warn "inconclusive: too little traffic for a verdict, and no evidence of harm (see above)" ;;
  5) error "Prometheus could not be queried (see above)" ;;
  2) error "configuration error (see above)" ;;
  *) error "golden signals outside their limits (see the table above)" ;;
esac
exit "$status"
