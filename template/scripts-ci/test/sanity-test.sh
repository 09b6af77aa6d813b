#!/usr/bin/env bash
# Usage: scripts-ci/test/sanity-test.sh [--env ENV] [--url URL]
#
# Short functional check of the service's main use case, after the smoke test passed.
# What it exercises depends on the service type: scripts-ci/test/sanity/<type>.sh holds
# the steps (this repository: SERVICE_TYPE from scripts-ci/lib/project.sh). Each step
# logs what it called and what came back; the first wrong answer fails the test.
#
# Options:
#   --env ENV       staging (default), production (or prod), local (http://127.0.0.1:$PORT)
#   --url URL       base URL to test (overrides SERVICE_URL and the environment's URL)
#   -h, --help      show this help
#
# Environment:
#   SERVICE_URL, STAGING_URL, PRODUCTION_URL   as for smoke-test.sh
#   SERVICE_TYPE, USE_DATABASE                 defaults from the template's answers
#   API_TOKEN      bearer token for the write and model endpoints: an access token of the
#                  service's OIDC issuer for its audience (OIDC_ISSUER, OIDC_AUDIENCE)
#   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET   without API_TOKEN: get one with the client-credentials
#                  grant (the pipeline's secret comes from Vault); OIDC_TOKEN_URL overrides
#                  the discovered token endpoint, OIDC_TOKEN_SCOPE adds a scope
#   HTTP_MAX_TIME                              seconds per request (default 10)
#
# Exit codes: 0 the use case works; 1 a step failed; 2 usage or configuration error
# (including a service type without sanity steps); 3 curl or jq missing.
#
# Example: scripts-ci/test/sanity-test.sh --env staging
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/http.sh
source "$SCRIPTS_CI_DIR/lib/http.sh"

env_name=staging
url_override=""
while (($# > 0)); do
  case "$1" in
    --env) require_value "$1" "${2:-}"; env_name=$2; shift 2 ;;
    --url) require_value "$1" "${2:-}"; url_override=$2; shift 2 ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
require_cmd curl "install curl (apt-get install curl)"
require_cmd jq "install jq (apt-get install jq)"
setup_api_token

env_name=$(normalize_env "$env_name")
SERVICE_URL=${url_override:-${SERVICE_URL:-}}
BASE_URL=$(service_url "$env_name")
steps_file="$SCRIPTS_CI_DIR/test/sanity/$SERVICE_TYPE.sh"
[[ -f "$steps_file" ]] || die "$EXIT_USAGE" "no sanity steps for service type '$SERVICE_TYPE': expected $steps_file"

STEP_COUNT=0
# step NAME METHOD PATH EXPECTED_STATUS [JSON_BODY]: one call; fails the test on another status.
step() {
  local name=$1 method=$2 path=$3 expected=$4 body=${5:-}
  STEP_COUNT=$((STEP_COUNT + 1))
  http_call "$method" "$BASE_URL$path" "$body"
  if [[ "$HTTP_STATUS" != "$expected" ]]; then
    local hint=""
    if [[ "$HTTP_STATUS" == 401 && -z "${API_TOKEN:-}" ]]; then
      hint=" (API_TOKEN is not set: give a bearer token of the service's OIDC issuer)"
    elif [[ "$HTTP_STATUS" == 401 ]]; then
      hint=" (API_TOKEN was refused: expired, or for another issuer or audience?)"
    fi
    die "$EXIT_FAILED" "FAIL $name: $method $path -> HTTP $HTTP_STATUS, expected $expected; body: $(body_excerpt)$hint"
  fi
  info "ok   $name: $method $path -> $HTTP_STATUS in ${HTTP_TIME}s"
}

# expect DESCRIPTION JQ_FILTER [JQ_ARGS...]: the last body must satisfy the filter.
expect() {
  local description=$1 filter=$2
  shift 2
  if ! jq_body "$filter" "$@"; then
    die "$EXIT_FAILED" "FAIL $description: the answer does not match \`$filter\`; body: $(body_excerpt)"
  fi
  info "ok   $description"
}

# expect_text DESCRIPTION REGEX: the last (non-JSON) body must contain a match.
expect_text() {
  if ! grep -Eq -- "$2" <<<"$HTTP_BODY"; then
    die "$EXIT_FAILED" "FAIL $1: no line matches /$2/; body: $(body_excerpt)"
  fi
  info "ok   $1"
}

info "sanity test of the $SERVICE_TYPE use case on $env_name at $BASE_URL"
# shellcheck source=/dev/null  # one file per service type
source "$steps_file"
sanity_steps
info "sanity test passed: $STEP_COUNT calls answered as expected"
