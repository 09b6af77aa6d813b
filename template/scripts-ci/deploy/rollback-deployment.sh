#!/usr/bin/env bash
# scripts-ci/deploy/rollback-deployment.sh [--immediate] [--env ENV] [--image FAILED] [--dry-run]:
# puts the previous version back. This script checks the options and works out the failed
# image; the rollback itself depends on the workload: rollback_deployment in
# lib/$WORKLOAD.sh (WORKLOAD is set in lib/project.sh), lib/http.sh (traffic, canary
# Deployment, stable Deployment) or lib/batch.sh (running Jobs, stable CronJob). The --help
# text is there too.
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/k8s.sh
source "$SCRIPTS_CI_DIR/lib/k8s.sh"
# The workload's library: lib/http.sh or lib/batch.sh.
# shellcheck source=/dev/null
source "$SCRIPTS_CI_DIR/lib/$WORKLOAD.sh"

immediate=false
env_name=production
failed_option=""
while (($# > 0)); do
  case "$1" in
    --immediate) immediate=true; shift ;;
    --env) require_value "$1" "${2:-}"; env_name=$2; shift 2 ;;
    --image) require_value "$1" "${2:-}"; failed_option=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_workload_help "$SCRIPTS_CI_DIR/lib/$WORKLOAD.sh"; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
failed_image=$(failed_release_image "$failed_option")
# In a pipeline the deploys ran the digest: without it, stable cannot be told apart from the
# failed release, so stable is left alone and the job fails after the safe steps.
failed_unknown=false
if [[ -z "$failed_image" && "${GITLAB_CI:-}" == true ]]; then
  failed_unknown=true
  error "$(missing_digest_message)"
fi
env_name=$(normalize_env "$env_name")
[[ "$env_name" != local ]] || usage_error "there is nothing to roll back locally: use --env production or staging"
drain=${DRAIN_SECONDS:-30}
[[ "$drain" =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "DRAIN_SECONDS must be a whole number of seconds, got '$drain'"

rollback_deployment "$env_name" "$failed_image" "$failed_unknown" "$immediate" "$drain"
[[ "$failed_unknown" != true ]] || exit "$EXIT_USAGE"
