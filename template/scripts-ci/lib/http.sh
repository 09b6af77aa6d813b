# shellcheck shell=bash
# HTTP helpers of the smoke and sanity tests (curl + jq). Sourced after common.sh.
#
# http_call METHOD URL [JSON_BODY]: one request; sets HTTP_STATUS (000 when nothing
# answered), HTTP_BODY and HTTP_TIME (seconds). Never fails the script by itself.
# HTTP_MAX_TIME bounds each request (seconds, default 10). With API_TOKEN set (see
# setup_api_token), every request carries `Authorization: Bearer $API_TOKEN`; the header goes
# to curl through a file descriptor, never on its command line.

# shellcheck disable=SC2034 # the results are read by the sourcing script
HTTP_STATUS="" HTTP_BODY="" HTTP_TIME=""

# shellcheck disable=SC2034
http_call() {
  local method=$1 url=$2 body=${3:-} out meta
  local -a args=(--silent --show-error --location --max-time "${HTTP_MAX_TIME:-10}"
    --request "$method" --header "Accept: application/json"
    --header "X-Request-ID: ${SCRIPT_NAME}-${CI_JOB_ID:-local}-$RANDOM"
    --write-out '%{http_code} %{time_total}')
  if [[ -n "$body" ]]; then
    args+=(--header "Content-Type: application/json" --data "$body")
  fi
  out=$(mktemp)
  if [[ -n "${API_TOKEN:-}" ]]; then
    meta=$(curl "${args[@]}" --header @<(printf 'Authorization: Bearer %s\n' "$API_TOKEN") \
      --output "$out" "$url" 2>&1) || true
  else
    meta=$(curl "${args[@]}" --output "$out" "$url" 2>&1) || true
  fi
  HTTP_BODY=$(cat "$out")
  rm -f "$out"
  HTTP_STATUS=000
  HTTP_TIME=0
  if [[ "$meta" =~ ([0-9]{3})\ ([0-9.]+)$ ]]; then
    HTTP_STATUS=${BASH_REMATCH[1]}
    HTTP_TIME=${BASH_REMATCH[2]}
  fi
  if [[ "$HTTP_STATUS" == 000 ]]; then
    # Nothing answered: keep curl's own explanation (refused, timeout, DNS, TLS).
    HTTP_BODY=$(printf '%s' "$meta" | grep '^curl:' | head -n 1)
    HTTP_BODY=${HTTP_BODY:-no answer}
  fi
}

# setup_api_token: the bearer token of the service's write and model endpoints, in API_TOKEN.
# Given as API_TOKEN (a masked CI/CD variable), or fetched here when API_TOKEN is empty and
# OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are set: the client-credentials grant at the token
# endpoint of OIDC_ISSUER's discovery document (or OIDC_TOKEN_URL), for OIDC_AUDIENCE (and
# OIDC_TOKEN_SCOPE if set). The secret goes to curl on its standard input, never on a command
# line. Exits 2 on an API_TOKEN that is not one token (a pasted newline or space), 1 when
# the issuer refuses the client.
setup_api_token() {
  if [[ -z "${API_TOKEN:-}" && -n "${OIDC_CLIENT_ID:-}" ]]; then
    [[ -n "${OIDC_CLIENT_SECRET:-}" ]] || die "$EXIT_USAGE" "OIDC_CLIENT_ID is set but OIDC_CLIENT_SECRET is not: give both, or API_TOKEN"
    local token_url=${OIDC_TOKEN_URL:-} form
    if [[ -z "$token_url" ]]; then
      http_call GET "${OIDC_ISSUER%/}/.well-known/openid-configuration"
      token_url=$(jq -r '.token_endpoint // empty' <<<"$HTTP_BODY" 2>/dev/null || true)
      [[ "$HTTP_STATUS" == 200 && -n "$token_url" ]] || die "$EXIT_FAILED" "no token endpoint in the discovery document of OIDC_ISSUER $OIDC_ISSUER: HTTP $HTTP_STATUS $(body_excerpt)"
    fi
    form=$(jq -rn '"grant_type=client_credentials&client_id=\(env.OIDC_CLIENT_ID | @uri)"
      + "&client_secret=\(env.OIDC_CLIENT_SECRET | @uri)&audience=\(env.OIDC_AUDIENCE // "" | @uri)"
      + (if (env.OIDC_TOKEN_SCOPE // "") != "" then "&scope=\(env.OIDC_TOKEN_SCOPE | @uri)" else "" end)')
    HTTP_BODY=$(printf '%s' "$form" | curl --silent --show-error --max-time "${HTTP_MAX_TIME:-10}" \
      --header "Accept: application/json" --data @- "$token_url" 2>&1) || true
    API_TOKEN=$(jq -r 'if type == "object" then .access_token // empty else empty end' <<<"$HTTP_BODY" 2>/dev/null || true)
    [[ -n "$API_TOKEN" ]] || die "$EXIT_FAILED" "the issuer gave no access token to client $OIDC_CLIENT_ID at $token_url: $(body_excerpt)"
    info "bearer token of client $OIDC_CLIENT_ID from $token_url"
  fi
  if [[ -n "${API_TOKEN:-}" && ! "$API_TOKEN" =~ ^[A-Za-z0-9._~+/=-]+$ ]]; then
    die "$EXIT_USAGE" "API_TOKEN is not a bearer token (one line of letters, digits and -._~+/=); check the CI/CD variable"
  fi
  export API_TOKEN
}

# A short, single-line excerpt of the last body for error messages.
body_excerpt() {
  printf '%s' "$HTTP_BODY" | tr '\n' ' ' | cut -c1-300
}

# jq_body FILTER [ARGS...]: run jq on the last body (exit status of jq -e).
jq_body() {
  local filter=$1
  shift
  printf '%s' "$HTTP_BODY" | jq -e "$@" "$filter" >/dev/null 2>&1
}
