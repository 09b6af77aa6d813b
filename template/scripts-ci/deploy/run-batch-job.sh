#!/usr/bin/env bash
# Usage: scripts-ci/deploy/run-batch-job.sh --env staging|production [--from CRONJOB] [--share S] [--timeout 3600s] [--dry-run] [-- COMMAND ARGS...]
#
# Runs the pipeline once, now: creates a Job from the live CronJob (kubectl create job
# --from=cronjob/CRONJOB), with COMMAND as the container's arguments (`python -m <package>
# COMMAND ARGS...`; without it the CronJob's own) and PIPELINE_SHARE=S when --share is given,
# waits until it is Complete or Failed, and prints its logs (and, when it failed, its pods and
# the recent events). The Job is named <cronjob>-<command>[-p<percent>]-<image tag>: running
# the same step again (a retried CI job) deletes the finished Job of that name first.
# The pipeline uses it in production for `-- promote`, `-- smoke` and `-- rollback`.
#
# Options:
#   --env ENV        staging or production (or prod): the namespace (required)
#   --from CRONJOB   CronJob to copy [<service>]; <service>-canary for the canary template
#   --share S        share of the data for this run, above 0 and at most 1 (PIPELINE_SHARE)
#   --timeout T      how long to wait for the Job: 90s, 30m, 2h [JOB_TIMEOUT or 3600s]
#   --dry-run        show the Job it would create without creating it; reads the cluster
#   -h, --help       show this help
#   -- COMMAND ...   the pipeline command and its arguments (run, promote, smoke, rollback, ...)
#
# Environment (defaults in brackets):
#   K8S_NAMESPACE      [<service>-<env>]   KUBE_CONTEXT   kubectl context [the current one]
#   JOB_TIMEOUT        [3600s]             JOB_POLL_SECONDS  seconds between two looks [10]
#   JOB_CONTAINER      the pipeline's container in the CronJob [app]
#
# Exit codes: 0 the Job completed; 1 it failed or did not finish in time (logs, pods and
# events are printed), or kubectl failed; 2 usage or configuration error; 3 kubectl or jq
# missing.
#
# Example: scripts-ci/deploy/run-batch-job.sh --env production -- promote
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/k8s.sh
source "$SCRIPTS_CI_DIR/lib/k8s.sh"
# shellcheck source=../lib/batch.sh
source "$SCRIPTS_CI_DIR/lib/batch.sh"

env_name=""
cron=""
share=""
timeout=$JOB_TIMEOUT
command=()
while (($# > 0)); do
  case "$1" in
    --env) require_value "$1" "${2:-}"; env_name=$2; shift 2 ;;
    --from) require_value "$1" "${2:-}"; cron=$2; shift 2 ;;
    --share) require_value "$1" "${2:-}"; share=$2; shift 2 ;;
    --timeout) require_value "$1" "${2:-}"; timeout=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_help; exit 0 ;;
    --) shift; command=("$@"); break ;;
    *) usage_error "unknown argument '$1' (the pipeline command goes after --, e.g. -- promote)" ;;
  esac
done
[[ -n "$env_name" ]] || usage_error "--env is required: staging or production"
env_name=$(normalize_env "$env_name")
[[ "$env_name" != local ]] || usage_error "a Job runs in a cluster: use --env staging or production (locally: python -m <package> COMMAND)"
[[ -z "$share" ]] || validate_share "$share"
timeout_seconds=$(duration_seconds "$timeout")
[[ "$JOB_POLL_SECONDS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$EXIT_USAGE" "JOB_POLL_SECONDS must be a number of seconds, got '$JOB_POLL_SECONDS'"
cron=${cron:-$STABLE_CRONJOB}
purpose=${command[0]:-run}
[[ "$purpose" =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || usage_error "the command must start with a pipeline command such as run, promote or smoke, got '$purpose'"
require_k8s_tools
namespace=$(k8s_namespace "$env_name")

described="the CronJob's own command"
[[ -z "${command[*]}" ]] || described=$(quote "${command[@]}")
info "running $described from cronjob/$cron in $env_name (namespace $namespace)$(dry_run_note)"
if ! run_job "$cron" "$namespace" "$purpose" "$share" "$timeout_seconds" "" "${command[@]}"; then
  die "$EXIT_FAILED" "the batch Job failed (its logs, pods and events are above)"
fi
info "the batch Job succeeded"
