#!/usr/bin/env bash
# Usage: scripts-ci/alerts/notify-oncall.sh [--reason TEXT] [--env ENV] [--severity LEVEL] [--format FORMAT] [--dry-run]
#
# Tells the on-call team that something went wrong: posts an incident message to the
# webhook in ONCALL_WEBHOOK_URL with the service, environment, severity, reason, and the
# links to the pipeline and the job (GitLab's CI_PIPELINE_URL and CI_JOB_URL). Transient
# failures (connection refused, timeouts, HTTP 408/429/5xx) are retried with exponential
# backoff (1 s, 2 s, 4 s, ...); a 4xx answer such as a wrong URL is not.
#
# Options:
#   --reason TEXT     what happened (default ONCALL_REASON, else a sentence naming the job)
#   --env ENV         environment (default CI_ENVIRONMENT_NAME, else production)
#   --severity LEVEL  critical (default), error, warning or info
#   --format FORMAT   message shape (default ONCALL_WEBHOOK_FORMAT or json):
#                     json        generic JSON (fields below), for alert managers / custom receivers
#                     slack       Slack incoming webhook (text + blocks)
#                     mattermost  Mattermost incoming webhook (markdown text)
#                     teams       Microsoft Teams workflow webhook (Adaptive Card)
#                     pagerduty   PagerDuty Events API v2 (needs PAGERDUTY_ROUTING_KEY)
#   --dry-run         print the message instead of sending it
#   -h, --help        show this help
#
# Environment (defaults in brackets):
#   ONCALL_WEBHOOK_URL   where to post (required; a secret: keep it a masked CI/CD variable)
#   ONCALL_RETRIES [5]   retries of a transient failure   ONCALL_TIMEOUT [10] seconds per attempt
#   RUNBOOK_URL          link added to the message
#   CI_PIPELINE_URL, CI_JOB_URL, CI_JOB_NAME, CI_COMMIT_SHORT_SHA, CI_COMMIT_REF_NAME,
#   CI_PROJECT_PATH, GITLAB_USER_LOGIN   filled in by GitLab CI
# Generic JSON fields: event, service, environment, severity, reason, summary,
# pipeline_url, job_url, job, commit, ref, project, triggered_by, runbook_url, timestamp.
#
# Exit codes: 0 delivered; 1 not delivered (rejected, or still failing after the
# retries); 2 usage or configuration error; 3 curl or jq missing.
#
# Example: ONCALL_WEBHOOK_URL=https://hooks.example.com/T0/B0/x scripts-ci/alerts/notify-oncall.sh --reason "golden signals failed after deploy"
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

reason=${ONCALL_REASON:-}
env_name=${CI_ENVIRONMENT_NAME:-production}
severity=critical
format=${ONCALL_WEBHOOK_FORMAT:-json}
while (($# > 0)); do
  case "$1" in
    --reason) require_value "$1" "${2:-}"; reason=$2; shift 2 ;;
    --env) require_value "$1" "${2:-}"; env_name=$2; shift 2 ;;
    --severity) require_value "$1" "${2:-}"; severity=$2; shift 2 ;;
    --format) require_value "$1" "${2:-}"; format=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
case "$severity" in critical | error | warning | info) ;; *) usage_error "--severity must be critical, error, warning or info, got '$severity'" ;; esac
case "$format" in json | slack | mattermost | teams | pagerduty) ;; *) usage_error "unknown format '$format': use json, slack, mattermost, teams or pagerduty" ;; esac
retries=${ONCALL_RETRIES:-5}
timeout=${ONCALL_TIMEOUT:-10}
[[ "$retries" =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "ONCALL_RETRIES must be a whole number, got '$retries'"
[[ "$timeout" =~ ^[1-9][0-9]*$ ]] || die "$EXIT_USAGE" "ONCALL_TIMEOUT must be a whole number of seconds, got '$timeout'"
require_cmd jq "install jq (apt-get install jq)"
if [[ "$DRY_RUN" != true ]]; then
  require_env ONCALL_WEBHOOK_URL "set it (a masked CI/CD variable) to the incoming-webhook URL of the on-call channel or paging tool"
  require_cmd curl "install curl (apt-get install curl)"
fi
if [[ "$format" == pagerduty ]]; then
  require_env PAGERDUTY_ROUTING_KEY "the integration key of the PagerDuty service (Events API v2)"
fi
reason=${reason:-"job ${CI_JOB_NAME:-?} of pipeline ${CI_PIPELINE_ID:-?} failed"}

# The facts, once; each format below only shapes them.
facts=$(jq -n \
  --arg service "$SERVICE_NAME" --arg environment "$env_name" --arg severity "$severity" \
  --arg reason "$reason" --arg pipeline_url "${CI_PIPELINE_URL:-}" --arg job_url "${CI_JOB_URL:-}" \
  --arg job "${CI_JOB_NAME:-}" --arg commit "${CI_COMMIT_SHORT_SHA:-${CI_COMMIT_SHA:-}}" \
  --arg ref "${CI_COMMIT_REF_NAME:-}" --arg project "${CI_PROJECT_PATH:-}" \
  --arg triggered_by "${GITLAB_USER_LOGIN:-}" --arg runbook_url "${RUNBOOK_URL:-}" \
  --arg timestamp "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
  {event: "incident", service: $service, environment: $environment, severity: $severity,
   reason: $reason, summary: "[\($severity)] \($service) in \($environment): \($reason)",
   pipeline_url: $pipeline_url, job_url: $job_url, job: $job, commit: $commit, ref: $ref,
   project: $project, triggered_by: $triggered_by, runbook_url: $runbook_url,
   timestamp: $timestamp}')

# Each format is one jq program over the facts; `links` are the non-empty links.
prelude='def links: [{text: "Pipeline", url: .pipeline_url}, {text: "Job", url: .job_url},
  {text: "Runbook", url: .runbook_url}] | map(select(.url != ""));'
# shellcheck disable=SC2016 # $schema and $ENV belong to jq
case "$format" in
  json) program='.' ;;
  slack) program='{text: .summary, blocks: ([
      {type: "header", text: {type: "plain_text", text: "\(.severity | ascii_upcase): \(.service) in \(.environment)"}},
      {type: "section", text: {type: "mrkdwn", text: .reason}},
      {type: "section", fields: [
        {type: "mrkdwn", text: "*Service*\n\(.service)"}, {type: "mrkdwn", text: "*Environment*\n\(.environment)"},
        {type: "mrkdwn", text: "*Commit*\n\(.commit)"}, {type: "mrkdwn", text: "*Ref*\n\(.ref)"}]}]
      + [links | select(length > 0) | {type: "section", text: {type: "mrkdwn",
          text: (map("<\(.url)|\(.text)>") | join(" · "))}}])}' ;;
  mattermost) program='{text: ([
      "#### :rotating_light: \(.summary)",
      "| Service | Environment | Severity | Commit |", "|---|---|---|---|",
      "| \(.service) | \(.environment) | \(.severity) | \(.commit) |"]
      + [""] + (links | map("[\(.text)](\(.url))")) | join("\n"))}' ;;
  teams) program='{type: "message", attachments: [{
      contentType: "application/vnd.microsoft.card.adaptive",
      content: {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        type: "AdaptiveCard", version: "1.4",
        body: [{type: "TextBlock", size: "Large", weight: "Bolder", wrap: true, text: .summary},
          {type: "FactSet", facts: [{title: "Service", value: .service},
            {title: "Environment", value: .environment}, {title: "Severity", value: .severity},
            {title: "Commit", value: .commit}, {title: "Reason", value: .reason}]}],
        actions: (links | map({type: "Action.OpenUrl", title: .text, url: .url}))}}]}' ;;
  pagerduty) program='{routing_key: $ENV.PAGERDUTY_ROUTING_KEY, event_action: "trigger",
      dedup_key: "\(.service)-\(.environment)-\($ENV.CI_PIPELINE_ID // "manual")",
      payload: {summary: .summary, source: .service, severity: .severity,
        component: .environment, timestamp: .timestamp, custom_details: .},
      links: (links | map({href: .url, text: .text}))}' ;;
esac
payload=$(jq "$prelude $program" <<<"$facts")

if [[ "$DRY_RUN" == true ]]; then
  info "dry-run, would post this $format message:"
  printf '%s\n' "$payload"
  exit 0
fi
host=$(sed -E 's#^([a-z]+://[^/]+).*#\1#' <<<"$ONCALL_WEBHOOK_URL")
info "notifying on-call ($format webhook at $host/...): $(jq -r .summary <<<"$facts")"
response=$(mktemp)
cleanup_later "$response"
status=0
curl --no-progress-meter --fail-with-body --retry "$retries" --retry-connrefused \
  --max-time "$timeout" --header 'Content-Type: application/json' --data-binary @- \
  --output "$response" --write-out '%{http_code}' "$ONCALL_WEBHOOK_URL" <<<"$payload" >"$response.code" || status=$?
cleanup_later "$response.code"
code=$(cat "$response.code")
if ((status != 0)); then
  die "$EXIT_FAILED" "on-call NOT notified: the webhook answered HTTP $code (curl exit $status) after up to $retries retries: $(head -c 300 "$response")"
fi
info "on-call notified (HTTP $code)"
