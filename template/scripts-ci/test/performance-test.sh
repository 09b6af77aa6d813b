#!/usr/bin/env bash
# Usage: scripts-ci/test/performance-test.sh [--duration D] [--env ENV] [--url URL] [--report FILE]
#
# Load test with pass/fail thresholds. Runs wrk against the environment for the given
# duration, spreading requests over PERF_PATHS, then checks the p95 latency and the error
# rate. The results go to a JSON report (kept as a CI artifact; its "metrics" block has
# the shape of GitLab's load-performance report, so the MR widget can show it).
#
# Options:
#   --duration D    how long to load the service: 30s, 5m, 1h (default 1m)
#   --env ENV       staging (default), production (or prod), local (http://127.0.0.1:$PORT)
#   --url URL       base URL to load (overrides SERVICE_URL and the environment's URL)
#   --report FILE   where to write the report (default PERF_REPORT or performance-report.json)
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   PERF_PATHS            comma-separated paths to call [scripts-ci/lib/project.sh]
#   PERF_CONNECTIONS      open connections [10]          PERF_THREADS   wrk threads [2]
#   PERF_REQUEST_TIMEOUT  a request slower than this counts as an error [5s]
#   PERF_MAX_P95_MS       highest acceptable p95 latency in milliseconds [500]
#   PERF_MAX_ERROR_RATE   highest acceptable share of failed requests, 0-1 [0.01]
#   SERVICE_URL, STAGING_URL, PRODUCTION_URL   as for smoke-test.sh
#   API_TOKEN             bearer token sent with every request, for protected PERF_PATHS
#                         (or OIDC_CLIENT_ID + OIDC_CLIENT_SECRET: see sanity-test.sh)
# A failed request is a non-2xx/3xx answer, a timeout or a connection/read/write error.
#
# Exit codes: 0 thresholds met; 1 a threshold was missed or no request completed;
# 2 usage or configuration error; 3 wrk or jq missing.
#
# Example: scripts-ci/test/performance-test.sh --duration 5m
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/http.sh
source "$SCRIPTS_CI_DIR/lib/http.sh"

duration=1m
env_name=staging
url_override=""
report=${PERF_REPORT:-performance-report.json}
while (($# > 0)); do
  case "$1" in
    --duration) require_value "$1" "${2:-}"; duration=$2; shift 2 ;;
    --env) require_value "$1" "${2:-}"; env_name=$2; shift 2 ;;
    --url) require_value "$1" "${2:-}"; url_override=$2; shift 2 ;;
    --report) require_value "$1" "${2:-}"; report=$2; shift 2 ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
seconds=$(duration_seconds "$duration")
((seconds > 0)) || usage_error "--duration must be longer than 0"
connections=${PERF_CONNECTIONS:-10}
threads=${PERF_THREADS:-2}
max_p95_ms=${PERF_MAX_P95_MS:-500}
max_error_rate=${PERF_MAX_ERROR_RATE:-0.01}
request_timeout=${PERF_REQUEST_TIMEOUT:-5s}
for setting in connections threads; do
  [[ "${!setting}" =~ ^[1-9][0-9]*$ ]] || die "$EXIT_USAGE" "PERF_${setting^^} must be a whole number > 0, got '${!setting}'"
done
((threads <= connections)) || die "$EXIT_USAGE" "PERF_THREADS ($threads) cannot exceed PERF_CONNECTIONS ($connections)"
[[ "$max_p95_ms" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$EXIT_USAGE" "PERF_MAX_P95_MS must be a number of milliseconds, got '$max_p95_ms'"
[[ "$max_error_rate" =~ ^(0([.][0-9]+)?|1([.]0+)?)$ ]] || die "$EXIT_USAGE" "PERF_MAX_ERROR_RATE must be a share between 0 and 1 (0.01 = 1%), got '$max_error_rate'"
[[ -n "$PERF_PATHS" ]] || die "$EXIT_USAGE" "PERF_PATHS is empty: give comma-separated paths, e.g. /healthz,/items"
require_cmd wrk "install wrk (apt-get install wrk)"
require_cmd jq "install jq (apt-get install jq)"
require_cmd curl "install curl (apt-get install curl)"
setup_api_token

env_name=$(normalize_env "$env_name")
SERVICE_URL=${url_override:-${SERVICE_URL:-}}
base_url=$(service_url "$env_name")

raw=$(mktemp)
cleanup_later "$raw"
info "load test of $env_name at $base_url: ${duration}, $connections connections, $threads threads, paths $PERF_PATHS"
PERF_RAW=$raw PERF_PATHS=$PERF_PATHS wrk --threads "$threads" --connections "$connections" \
  --duration "${seconds}s" --timeout "$request_timeout" \
  --script "$SCRIPTS_CI_DIR/test/wrk-report.lua" "$base_url" >&2 \
  || die "$EXIT_FAILED" "wrk failed (see its output above)"
[[ -s "$raw" ]] || die "$EXIT_FAILED" "wrk wrote no results"

mkdir -p "$(dirname "$report")"
jq --arg url "$base_url" --arg env "$env_name" --arg duration "$duration" \
  --arg paths "$PERF_PATHS" --argjson connections "$connections" --argjson threads "$threads" \
  --argjson max_p95_ms "$max_p95_ms" --argjson max_error_rate "$max_error_rate" '
  (.errors | .status + .timeout + .connect + .read + .write) as $failed
  | (.requests + .errors.timeout + .errors.connect + .errors.read + .errors.write) as $attempts
  | (if $attempts > 0 then $failed / $attempts else 0 end) as $error_rate
  | (.duration_us / 1e6) as $seconds
  | (.latency_us | map_values(. / 1000)) as $ms
  | {
      tool: "wrk", environment: $env, url: $url, paths: ($paths | split(",")),
      duration: $duration, connections: $connections, threads: $threads,
      results: {
        requests: .requests, failed: $failed, error_rate: $error_rate,
        rps: (if $seconds > 0 then .requests / $seconds else 0 end),
        latency_ms: $ms, errors: .errors
      },
      thresholds: {p95_ms: $max_p95_ms, error_rate: $max_error_rate},
      checks: [
        {name: "completed requests", value: .requests, limit: "> 0", passed: (.requests > 0)},
        {name: "p95 latency ms", value: $ms.p95, limit: "<= \($max_p95_ms)", passed: ($ms.p95 <= $max_p95_ms)},
        {name: "error rate", value: $error_rate, limit: "<= \($max_error_rate)", passed: ($error_rate <= $max_error_rate)}
      ],
      metrics: {
        http_reqs: {count: .requests, rate: (if $seconds > 0 then .requests / $seconds else 0 end)},
        http_req_waiting: {avg: $ms.mean, min: $ms.min, med: $ms.p50, max: $ms.max, "p(90)": $ms.p90, "p(95)": $ms.p95},
        checks: {passes: (.requests - .errors.status), fails: $failed}
      }
    }
  | .passed = (.checks | all(.passed))' "$raw" >"$report"
info "report written to $report"

printf '%-20s %14s %12s  %s\n' CHECK VALUE LIMIT RESULT
jq -r '.checks[] | [.name, (.value * 1000 | round / 1000 | tostring), .limit, (if .passed then "ok" else "FAIL" end)] | @tsv' "$report" |
  while IFS=$'\t' read -r name value limit result; do
    printf '%-20s %14s %12s  %s\n' "$name" "$value" "$limit" "$result"
  done
printf 'throughput: %s req/s, p50 %s ms, p99 %s ms\n' \
  "$(jq -r '.results.rps | . * 10 | round / 10' "$report")" \
  "$(jq -r '.results.latency_ms.p50' "$report")" "$(jq -r '.results.latency_ms.p99' "$report")"

if [[ "$(jq -r '.passed' "$report")" != true ]]; then
  die "$EXIT_FAILED" "FAILED: $(jq -r '[.checks[] | select(.passed | not) | "\(.name) \(.value) (limit \(.limit))"] | join("; ")' "$report")"
fi
info "performance test passed"
