# shellcheck shell=bash
# HTTP helpers of the smoke and sanity tests (curl + jq). Sourced after common.sh.
#
# http_call METHOD URL [JSON_BODY]: one request; sets HTTP_STATUS (000 when nothing
# answered), HTTP_BODY and HTTP_TIME (seconds). Never fails the script by itself.
# HTTP_MAX_TIME bounds each request (seconds, default 10).

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
  meta=$(curl "${args[@]}" --output "$out" "$url" 2>&1) || true
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
