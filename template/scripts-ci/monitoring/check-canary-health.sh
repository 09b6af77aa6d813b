#!/usr/bin/env bash
# Usage: scripts-ci/monitoring/check-canary-health.sh [--window W] [--report FILE]
#
# Canary verdict between two traffic steps: asks Prometheus for the golden signals of the
# canary and of stable over the last window. The canary fails when a signal is above its
# absolute limit, or clearly worse than stable (latency above stable x ratio + slack, an
# error share above stable's + an allowed increase), or when either track had too little
# traffic to judge. Prints a table stable | canary | limit. Run it after each
# canary-deploy.sh step; on failure, run rollback-deployment.sh.
#
# Options:
#   --window W      how far back to look: 30s, 5m, 1h (default GS_WINDOW or 5m)
#   --report FILE   also write the measurements and verdict as JSON
#   -h, --help      show this help
#
# Environment (defaults in brackets; "off" disables a limit):
#   PROMETHEUS_URL (required)    PROMETHEUS_TOKEN (bearer token)    PROMETHEUS_ORG_ID (tenant)
#   PROM_SELECTOR_STABLE [app="<service>",namespace="<namespace>",track="stable"]
#   PROM_SELECTOR_CANARY [app="<service>",namespace="<namespace>",track="canary"]
#   CANARY_MAX_LATENCY_RATIO [1.5]  CANARY_LATENCY_SLACK_SECONDS [0.05]
#   CANARY_MAX_5XX_INCREASE [0.005]  CANARY_MAX_4XX_INCREASE [0.02]  (shares: 0.005 = 0.5 points)
#   GS_MIN_REQUESTS, GS_MAX_*, GS_EXCLUDE_ROUTES   as for check-golden-signals.sh
#   K8S_NAMESPACE [<service>-production]   PYTHON [python3]
#
# Exit codes: 0 the canary is healthy; 1 a limit was exceeded; 2 usage or
# configuration error (also a selector Prometheus cannot parse); 3 python3 missing;
# 4 too little traffic or no data to judge; 5 Prometheus unreachable or failing.
#
# Example: PROMETHEUS_URL=https://prometheus.example.com scripts-ci/monitoring/check-canary-health.sh
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

window=${GS_WINDOW:-5m}
report=""
while (($# > 0)); do
  case "$1" in
    --window) require_value "$1" "${2:-}"; window=$2; shift 2 ;;
    --report) require_value "$1" "${2:-}"; report=$2; shift 2 ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
require_env PROMETHEUS_URL "set it to the base URL of the Prometheus (or Thanos/Mimir) that scrapes production"
python=${PYTHON:-python3}
require_cmd "$python" "install Python 3.10+ (stdlib only) or set PYTHON"
base="app=\"$SERVICE_NAME\",namespace=\"$(k8s_namespace production)\""
stable=${PROM_SELECTOR_STABLE:-$base,track=\"stable\"}
canary=${PROM_SELECTOR_CANARY:-$base,track=\"canary\"}

info "canary health of $SERVICE_NAME over the last $window"
args=(--prometheus-url "$PROMETHEUS_URL" --window "$window" --stable-selector "$stable" --canary-selector "$canary")
[[ -z "$report" ]] || args+=(--report "$report")
status=0
"$python" "$SCRIPTS_CI_DIR/monitoring/golden_signals.py" "${args[@]}" || status=$?
case "$status" in
  0) info "canary healthy" ;;
  4) error "not enough data to judge the canary (see above): keep the step longer or lower GS_MIN_REQUESTS" ;;
  5) error "Prometheus could not be queried (see above)" ;;
  2) error "configuration error (see above)" ;;
  *) error "canary unhealthy (see the table above): roll back with scripts-ci/deploy/rollback-deployment.sh --immediate" ;;
esac
exit "$status"
