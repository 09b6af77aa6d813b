#!/usr/bin/env bash
# Usage: scripts-ci/test/smoke-test.sh [--env ENV] [--timeout SECONDS] [--url URL]
#
# Post-deploy smoke test. Within the timeout, the service must answer 200 on
#   1. /healthz    liveness, body {"status": "ok"}
#   2. /readyz     readiness (its dependencies, e.g. the database, answer), {"status": "ok"}
#   3. SMOKE_PATH  one real endpoint of the service (scripts-ci/lib/project.sh)
# Each check is retried until the deadline, so the test can run right after a rollout.
#
# Options:
#   --env ENV       staging (default), production (or prod), local (http://127.0.0.1:$PORT)
#   --timeout S     overall deadline in seconds (default 60)
#   --url URL       base URL to test (overrides SERVICE_URL and the environment's URL)
#   -h, --help      show this help
#
# Environment:
#   SERVICE_URL              base URL; else STAGING_URL / PRODUCTION_URL (defaults from the answers)
#   SMOKE_PATH               the real endpoint to call (default in scripts-ci/lib/project.sh)
#   API_TOKEN                bearer token sent with every request (the service's OIDC issuer
#                            and audience), or OIDC_CLIENT_ID + OIDC_CLIENT_SECRET to get one
#                            (see sanity-test.sh); needed when SMOKE_PATH is protected
#   SMOKE_INTERVAL           seconds between retries (default 2)
#   HTTP_MAX_TIME            seconds per request (default 10)
#
# Exit codes: 0 healthy; 1 a check did not pass before the deadline; 2 usage or
# configuration error; 3 curl or jq missing.
#
# Example: scripts-ci/test/smoke-test.sh --env staging --timeout 60
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/http.sh
source "$SCRIPTS_CI_DIR/lib/http.sh"

env_name=staging
timeout=60
url_override=""
while (($# > 0)); do
  case "$1" in
    --env) require_value "$1" "${2:-}"; env_name=$2; shift 2 ;;
    --timeout) require_value "$1" "${2:-}"; timeout=$2; shift 2 ;;
    --url) require_value "$1" "${2:-}"; url_override=$2; shift 2 ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
[[ "$timeout" =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout must be a whole number of seconds > 0, got '$timeout'"
require_cmd curl "install curl (apt-get install curl)"
require_cmd jq "install jq (apt-get install jq)"
setup_api_token

env_name=$(normalize_env "$env_name")
SERVICE_URL=${url_override:-${SERVICE_URL:-}}
base_url=$(service_url "$env_name")
interval=${SMOKE_INTERVAL:-2}
max_time=${HTTP_MAX_TIME:-10}
[[ "$interval" =~ ^[1-9][0-9]*$ ]] || die "$EXIT_USAGE" "SMOKE_INTERVAL must be a whole number of seconds > 0, got '$interval'"
[[ "$max_time" =~ ^[1-9][0-9]*$ ]] || die "$EXIT_USAGE" "HTTP_MAX_TIME must be a whole number of seconds > 0, got '$max_time'"
deadline=$((SECONDS + timeout))

status_ok() { jq_body '.status == "ok"'; }
not_empty() { [[ -n "$HTTP_BODY" ]]; }

# check NAME PATH VALIDATOR: retry GET PATH until it answers 200 and VALIDATOR (a function
# looking at HTTP_BODY) agrees, or the deadline passes.
check() {
  local name=$1 path=$2 validator=$3 attempt=0 remaining
  while true; do
    attempt=$((attempt + 1))
    remaining=$((deadline - SECONDS))
    HTTP_MAX_TIME=$((remaining < max_time ? (remaining > 0 ? remaining : 1) : max_time))
    http_call GET "$base_url$path"
    if [[ "$HTTP_STATUS" == 200 ]] && "$validator"; then
      info "ok   $name: GET $path -> 200 in ${HTTP_TIME}s (attempt $attempt)"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      error "FAIL $name: GET $path did not pass within ${timeout}s ($attempt attempts); last answer: HTTP $HTTP_STATUS $(body_excerpt)"
      return 1
    fi
    remaining=$((deadline - SECONDS))
    info "wait $name: GET $path -> HTTP $HTTP_STATUS, retrying in ${interval}s"
    sleep "$((remaining < interval ? remaining : interval))"
  done
}

info "smoke test of $env_name at $base_url (deadline ${timeout}s)"
check liveness /healthz status_ok || exit "$EXIT_FAILED"
check readiness /readyz status_ok || exit "$EXIT_FAILED"
check endpoint "$SMOKE_PATH" not_empty || exit "$EXIT_FAILED"
info "smoke test passed: $env_name is live, ready and serving"
