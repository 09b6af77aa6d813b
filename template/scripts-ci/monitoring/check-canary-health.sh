#!/usr/bin/env bash
# Usage: scripts-ci/monitoring/check-canary-health.sh [--window W] [--max-wait D] [--report FILE]
#
# Canary verdict between two traffic steps: asks Prometheus for the golden signals of the
# canary and of stable over the last window. The canary fails when a signal is above its
# absolute limit, or clearly worse than stable (latency above stable x ratio + slack, an
# error share above stable's + an allowed increase). Prints a table stable | canary | limit.
# A service that serves a model is then judged on its prediction health too
# (monitoring/prediction_health.py: model errors, model p99, prediction shift vs stable).
# Run it after each canary-deploy.sh step; on failure, run rollback-deployment.sh.
#
# Too little traffic (under GS_MIN_REQUESTS in the window) is inconclusive, not a failure:
# the check keeps watching, every POLL up to --max-wait, over a window that grows with the
# wait so the requests add up, and when CANARY_URL is set it drives synthetic traffic at the
# canary with the smoke and sanity tests (scripts-ci/test/) between looks. It fails only on
# evidence of harm: a failing smoke/sanity test at CANARY_URL, or bad requests (5xx, 4xx,
# slower than the p95 limit) significant for the sample (golden_signals.py). A canary still
# inconclusive at --max-wait is promoted, with the log line
#   inconclusive: N requests, promoting on no evidence of harm (...)
# unless CANARY_INCONCLUSIVE=fail.
#
# Options:
#   --window W      how far back to look: 30s, 5m, 1h (default GS_WINDOW or 5m)
#   --max-wait D    how long to keep watching an inconclusive canary (default CANARY_MAX_WAIT or 15m)
#   --report FILE   also write the measurements and verdict of the last look as JSON
#   -h, --help      show this help
#
# Environment (defaults in brackets; "off" disables a limit):
#   PROMETHEUS_URL (required)    PROMETHEUS_TOKEN (bearer token)    PROMETHEUS_ORG_ID (tenant)
#   PROM_SELECTOR_STABLE [app="<service>",namespace="<namespace>",track="stable"]
#   PROM_SELECTOR_CANARY [app="<service>",namespace="<namespace>",track="canary"]
#   CANARY_MAX_LATENCY_RATIO [1.5]  CANARY_LATENCY_SLACK_SECONDS [0.05]
#   CANARY_MAX_5XX_INCREASE [0.005]  CANARY_MAX_4XX_INCREASE [0.02]  (shares: 0.005 = 0.5 points)
#   CANARY_MAX_LLM_ERROR_INCREASE [0.01]  CANARY_MAX_LLM_COST_RATIO [1.25]
#   CANARY_MAX_LLM_TOKEN_LATENCY_RATIO [1.5] (+ 5 ms)  (a service calling a model)
#   CANARY_POLL [60s]            time between two looks at an inconclusive canary
#   CANARY_URL                   a URL that reaches only the canary (e.g. its Service, or a
#                                header-matched route); unset: no synthetic traffic
#   CANARY_SMOKE_TIMEOUT [30]    seconds the smoke test at CANARY_URL may take
#   CANARY_INCONCLUSIVE [promote]  promote | fail: what an inconclusive canary gets at --max-wait
#   GS_MIN_REQUESTS [100]  GS_MIN_BAD_REQUESTS [3]  GS_SIGNIFICANCE [0.01]  (golden_signals.py)
#   GS_MAX_*, GS_EXCLUDE_ROUTES   as for check-golden-signals.sh
#   K8S_NAMESPACE [<service>-production]   PYTHON [python3]
#
# Exit codes: 0 the canary is healthy, or inconclusive at --max-wait and promoted; 1 a
# limit was exceeded, or evidence of harm with little traffic; 2 usage or configuration
# error (also a selector Prometheus cannot parse); 3 python3 missing; 4 no data (no
# scrape target up, a metric missing); 5 Prometheus unreachable or failing;
# 6 inconclusive at --max-wait with CANARY_INCONCLUSIVE=fail.
#
# Example: PROMETHEUS_URL=https://prometheus.example.com scripts-ci/monitoring/check-canary-health.sh
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

window=${GS_WINDOW:-5m}
max_wait=${CANARY_MAX_WAIT:-15m}
report=""
while (($# > 0)); do
  case "$1" in
    --window) require_value "$1" "${2:-}"; window=$2; shift 2 ;;
    --max-wait) require_value "$1" "${2:-}"; max_wait=$2; shift 2 ;;
    --report) require_value "$1" "${2:-}"; report=$2; shift 2 ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
require_env PROMETHEUS_URL "set it to the base URL of the Prometheus (or Thanos/Mimir) that scrapes production"
python=${PYTHON:-python3}
require_cmd "$python" "install Python 3.10+ (stdlib only) or set PYTHON"
window_seconds=$(duration_seconds "$window")
max_wait_seconds=$(duration_seconds "$max_wait")
poll_seconds=$(duration_seconds "${CANARY_POLL:-60s}")
((poll_seconds > 0)) || usage_error "CANARY_POLL must be at least 1s"
on_inconclusive=${CANARY_INCONCLUSIVE:-promote}
[[ "$on_inconclusive" == promote || "$on_inconclusive" == fail ]] ||
  usage_error "CANARY_INCONCLUSIVE must be promote or fail, got '$on_inconclusive'"
base="app=\"$SERVICE_NAME\",namespace=\"$(k8s_namespace production)\""
stable=${PROM_SELECTOR_STABLE:-$base,track=\"stable\"}
canary=${PROM_SELECTOR_CANARY:-$base,track=\"canary\"}
last=$(mktemp)
cleanup_later "$last"

# look SECONDS: one verdict over the last SECONDS; its exit code (the report in $last).
look() {
  local status=0
  "$python" "$SCRIPTS_CI_DIR/monitoring/golden_signals.py" --prometheus-url "$PROMETHEUS_URL" \
    --window "${1}s" --stable-selector "$stable" --canary-selector "$canary" --report "$last" || status=$?
  [[ -z "$report" || ! -s "$last" ]] || cp "$last" "$report"
  return "$status"
}

# report_field KEY: a field of the last report (for log lines).
report_field() {
  "$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$last" "$1" 2>/dev/null || true
}

# synthetic_traffic: smoke and sanity tests at CANARY_URL; fails when the canary does.
synthetic_traffic() {
  info "driving synthetic traffic at the canary ($CANARY_URL): smoke and sanity tests"
  if ! "$SCRIPTS_CI_DIR/test/smoke-test.sh" --env production --url "$CANARY_URL" --timeout "${CANARY_SMOKE_TIMEOUT:-30}"; then
    error "the canary fails its smoke test at $CANARY_URL: evidence of harm"
    return 1
  fi
  if ! "$SCRIPTS_CI_DIR/test/sanity-test.sh" --env production --url "$CANARY_URL"; then
    error "the canary fails its sanity test at $CANARY_URL: evidence of harm"
    return 1
  fi
}

info "canary health of $SERVICE_NAME over the last $window (inconclusive: watching up to $max_wait)"
started=$SECONDS
status=0
while true; do
  waited=$((SECONDS - started))
  status=0
  look $((window_seconds + waited)) || status=$?
  [[ "$status" == "$EXIT_INCONCLUSIVE" ]] || break
  if ((waited >= max_wait_seconds)); then
    break
  fi
  requests=$(report_field requests)
  info "inconclusive after ${waited}s: ${requests%.*} canary requests, no evidence of harm yet; looking again in ${poll_seconds}s (up to $max_wait)"
  if [[ -n "${CANARY_URL:-}" ]]; then
    synthetic_traffic || exit "$EXIT_FAILED"
  fi
  sleep "$poll_seconds"
done

case "$status" in
  0) info "canary healthy" ;;
  "$EXIT_INCONCLUSIVE")
    requests=$(report_field requests)
    reason="no evidence of harm within $max_wait ($(report_field evidence)${CANARY_URL:+; smoke and sanity passed at $CANARY_URL})"
    if [[ "$on_inconclusive" == fail ]]; then
      error "inconclusive: ${requests%.*} requests, not promoting (CANARY_INCONCLUSIVE=fail): keep the step longer or lower GS_MIN_REQUESTS"
      exit "$EXIT_INCONCLUSIVE"
    fi
    warn "inconclusive: ${requests%.*} requests, promoting on $reason"
    status=0
    ;;
  4) error "no data to judge the canary (see above): is it scraped with app/track/namespace labels?" ;;
  5) error "Prometheus could not be queried (see above)" ;;
  2) error "configuration error (see above)" ;;
  *) error "canary unhealthy (see the table above): roll back with scripts-ci/deploy/rollback-deployment.sh --immediate" ;;
esac

# A service that serves a model also compares the canary's model with stable's:
# monitoring/prediction_health.py (model errors, model latency, prediction shift).
if [[ "$status" == 0 && -f "$SCRIPTS_CI_DIR/monitoring/prediction_health.py" ]]; then
  health=0
  "$python" "$SCRIPTS_CI_DIR/monitoring/prediction_health.py" --prometheus-url "$PROMETHEUS_URL" \
    --window "$((window_seconds + SECONDS - started))s" --stable-selector "$stable" --canary-selector "$canary" || health=$?
  case "$health" in
    0) info "prediction health: the canary's model is healthy" ;;
    "$EXIT_INCONCLUSIVE")
      if [[ "$on_inconclusive" == fail ]]; then
        error "prediction health inconclusive: too few canary predictions, not promoting (CANARY_INCONCLUSIVE=fail)"
        exit "$EXIT_INCONCLUSIVE"
      fi
      warn "prediction health inconclusive: too few canary predictions, promoting on no evidence of harm"
      ;;
    1) error "the canary's model is unhealthy (see the table above): roll back with scripts-ci/deploy/rollback-deployment.sh --immediate" ;;
    *) error "the canary's prediction health could not be judged (see above)" ;;
  esac
  [[ "$health" == "$EXIT_INCONCLUSIVE" ]] || status=$health
fi
exit "$status"
