#!/usr/bin/env bash
# Usage: scripts-ci/monitoring/check-pipeline-freshness.sh --env ENV [--max-age 26h] [--report FILE]
#
# Is the batch alive? Asks Prometheus for the timestamps the pipeline pushes at the end of
# every run (Pushgateway, grouping key job, environment, track):
#   pipeline_last_success_timestamp_seconds{job="<service>",environment="ENV",track="stable"}
#   pipeline_last_failure_timestamp_seconds{...the same labels}
# and fails when the last success is older than the maximum age (the schedule missed a run,
# or every run since failed), or when a failure is newer than the last success. Canary runs
# (track="canary") never count. Prints a table, and the verdict.
#
# Options:
#   --env ENV       production or staging (required): the environment label of the series
#   --max-age D     oldest acceptable last success: 90m, 26h, 3600s [FRESHNESS_MAX_AGE or 26h]
#   --report FILE   also write the timestamps and the verdict as JSON
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   PROMETHEUS_URL (required)    PROMETHEUS_TOKEN (bearer token)    PROMETHEUS_ORG_ID (tenant)
#   FRESHNESS_MAX_AGE [26h]      PROM_SELECTOR [job="<service>",environment="ENV",track="stable"]
#   PROM_TIMEOUT [15]            seconds per query
#
# Exit codes: 0 the last run succeeded recently enough; 1 the last success is too old, or a
# failure is newer than it (or the pipeline never succeeded); 2 usage or configuration error
# (also a selector Prometheus cannot parse); 3 curl or jq missing; 4 no series at all (the
# pipeline never pushed, or the selector matches nothing); 5 Prometheus unreachable or failing.
#
# Example: PROMETHEUS_URL=https://prometheus.example.com scripts-ci/monitoring/check-pipeline-freshness.sh --env production
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

env_name=""
max_age=${FRESHNESS_MAX_AGE:-26h}
report=""
while (($# > 0)); do
  case "$1" in
    --env) require_value "$1" "${2:-}"; env_name=$2; shift 2 ;;
    --max-age) require_value "$1" "${2:-}"; max_age=$2; shift 2 ;;
    --report) require_value "$1" "${2:-}"; report=$2; shift 2 ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
[[ -n "$env_name" ]] || usage_error "--env is required: production or staging"
env_name=$(normalize_env "$env_name")
[[ "$env_name" != local ]] || usage_error "a local run pushes no metrics: use --env production or staging"
max_age_seconds=$(duration_seconds "$max_age")
require_env PROMETHEUS_URL "set it to the base URL of the Prometheus (or Thanos/Mimir) that scrapes the Pushgateway of $env_name"
if [[ ! "$PROMETHEUS_URL" =~ ^https?://[^/]+ ]]; then
  die "$EXIT_USAGE" "PROMETHEUS_URL must be an http(s) URL, got '$(redact_url "$PROMETHEUS_URL")'"
fi
require_cmd curl "install curl (apt-get install curl)"
require_cmd jq "install jq (apt-get install jq)"
selector=${PROM_SELECTOR:-job=\"$SERVICE_NAME\",environment=\"$env_name\",track=\"stable\"}
selector=${selector#\{}
selector=${selector%\}}

# prom_query PROMQL: prints "<evaluation time> <value>" of the query's single result, or
# "<evaluation time>" when it has none; exits 5 (unreachable) or 2 (query refused).
prom_query() {
  local body status output
  local -a args=(--silent --show-error --get --max-time "${PROM_TIMEOUT:-15}"
    --data-urlencode "query=$1" --write-out '\n%{http_code}')
  [[ -z "${PROMETHEUS_TOKEN:-}" ]] || args+=(--header "Authorization: Bearer $PROMETHEUS_TOKEN")
  [[ -z "${PROMETHEUS_ORG_ID:-}" ]] || args+=(--header "X-Scope-OrgID: $PROMETHEUS_ORG_ID")
  if ! output=$(curl "${args[@]}" "${PROMETHEUS_URL%/}/api/v1/query" 2>&1); then
    die "$EXIT_UNREACHABLE" "cannot reach Prometheus at $(redact_url "$PROMETHEUS_URL"): ${output%$'\n'*}; check PROMETHEUS_URL and the network"
  fi
  status=${output##*$'\n'}
  body=${output%$'\n'*}
  case "$status" in
    200) ;;
    400 | 422)
      die "$EXIT_USAGE" "Prometheus refused the query $1: $(jq -r '.error // .' <<<"$body" 2>/dev/null || printf '%s' "$body"); check PROM_SELECTOR" ;;
    401 | 403)
      die "$EXIT_UNREACHABLE" "Prometheus answered HTTP $status: set PROMETHEUS_TOKEN (and PROMETHEUS_ORG_ID for a multi-tenant Mimir/Thanos)" ;;
    *)
      die "$EXIT_UNREACHABLE" "Prometheus answered HTTP $status to $1: ${body:0:300}" ;;
  esac
  jq -r 'if .status != "success" then error("status \(.status)") else . end
    | .data.result | if length == 0 then "\(now | floor)" else "\(.[0].value[0]) \(.[0].value[1])" end' \
    <<<"$body" || die "$EXIT_UNREACHABLE" "Prometheus gave an answer that is not a query result: ${body:0:300}"
}

# when EPOCH NOW: "2026-01-31T03:00:07Z (5h12m ago)".
when() {
  local epoch=${1%.*} now=${2%.*} ago
  ago=$((now - epoch))
  printf '%s (%dh%02dm ago)' "$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)" $((ago / 3600)) $((ago % 3600 / 60))
}

info "freshness of the $SERVICE_NAME pipeline in $env_name: {$selector}, last success at most $max_age old"
answer=$(prom_query "max(pipeline_last_success_timestamp_seconds{$selector})")
read -r now success <<<"$answer"
answer=$(prom_query "max(pipeline_last_failure_timestamp_seconds{$selector})")
read -r _ failure <<<"$answer"
success=${success:-}
failure=${failure:-}

verdict=pass
reasons=()
success_row=(none "no data")
failure_row=(none ok)
if [[ -n "$success" ]]; then
  age=$(awk -v n="$now" -v s="$success" 'BEGIN { printf "%d", n - s }')
  success_row=("$(when "$success" "$now")" ok)
  if ((age > max_age_seconds)); then
    verdict=fail
    success_row[1]=FAIL
    reasons+=("the last success is $((age / 3600))h$(printf '%02d' $((age % 3600 / 60)))m old, more than $max_age (FRESHNESS_MAX_AGE)")
  fi
fi
if [[ -n "$failure" ]]; then
  failure_row=("$(when "$failure" "$now")" ok)
  if [[ -z "$success" ]]; then
    verdict=fail
    success_row[1]=FAIL
    reasons+=("the pipeline failed at $(when "$failure" "$now") and never succeeded")
  elif awk -v f="$failure" -v s="$success" 'BEGIN { exit !(f > s) }'; then
    verdict=fail
    failure_row[1]=FAIL
    reasons+=("the last run failed at $(when "$failure" "$now"), after the last success")
  fi
elif [[ -z "$success" ]]; then
  verdict=no-data
  reasons+=("no series pipeline_last_success/failure_timestamp_seconds{$selector}: has the pipeline pushed its metrics (PUSHGATEWAY_URL), and does Prometheus scrape the Pushgateway with honor_labels: true?")
fi

printf '%-14s %-40s %-24s %s\n' CHECK VALUE LIMIT RESULT
printf '%-14s %-40s %-24s %s\n' "last success" "${success_row[0]}" "<= $max_age ago" "${success_row[1]}"
printf '%-14s %-40s %-24s %s\n' "last failure" "${failure_row[0]}" "before the last success" "${failure_row[1]}"

if [[ -n "$report" ]]; then
  mkdir -p "$(dirname "$report")"
  jq -n --arg selector "{$selector}" --arg env "$env_name" --argjson max_age "$max_age_seconds" \
    --arg now "$now" --arg success "$success" --arg failure "$failure" --arg verdict "$verdict" \
    '{environment: $env, selector: $selector, max_age_seconds: $max_age, evaluated_at: ($now | tonumber),
      last_success: (if $success == "" then null else ($success | tonumber) end),
      last_failure: (if $failure == "" then null else ($failure | tonumber) end),
      verdict: $verdict, passed: ($verdict == "pass"), reasons: $ARGS.positional}' \
    --args "${reasons[@]}" >"$report"
  info "report written to $report"
fi

for reason in "${reasons[@]}"; do
  printf 'FAIL %s\n' "$reason"
done
case "$verdict" in
  pass) printf 'RESULT: PASS\n'; info "the pipeline's last run succeeded $((age / 3600))h$(printf '%02d' $((age % 3600 / 60)))m ago" ;;
  no-data) printf 'RESULT: NO DATA\n'; exit "$EXIT_NO_DATA" ;;
  *) printf 'RESULT: FAIL\n'; exit "$EXIT_FAILED" ;;
esac
