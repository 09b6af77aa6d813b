#!/usr/bin/env bash
# Usage: scripts-ci/deploy/stop-staging.sh [--dry-run]
#
# Stops the staging environment: the on_stop action of GitLab's environment staging (the
# manual job stop-staging, or "Stop" on the environment's page). The service stops using
# the cluster until the next deploy-staging, which starts it again as it was:
#   HTTP services  every Deployment of the service in the staging namespace is scaled to 0
#                  replicas; the Services, the HTTPRoute and the configuration stay.
#   batch          the staging CronJobs are suspended and their Jobs deleted (the CronJob's
#                  manifest says suspend: false, so the next deploy resumes it).
# Nothing else is deleted: the namespace and its data stay.
#
# Options:
#   --dry-run     show the kubectl commands, change nothing
#   -h, --help    show this help
#
# Environment: KUBE_CONTEXT (kubectl context), K8S_NAMESPACE (default <service>-staging).
#
# Exit codes: 0 stopped (or nothing was running); 1 kubectl failed; 2 usage; 3 kubectl or
# jq missing.
#
# Example:
#   scripts-ci/deploy/stop-staging.sh --dry-run
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/k8s.sh
source "$SCRIPTS_CI_DIR/lib/k8s.sh"

while (($# > 0)); do
  case "$1" in
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
require_k8s_tools
namespace=$(k8s_namespace staging)
info "stopping $SERVICE_NAME in staging (namespace $namespace)$(dry_run_note)"

names_of() { # names_of KIND: the service's objects of KIND in the namespace
  kube get "$1" --namespace "$namespace" -o json | jq -r --arg app "$SERVICE_NAME" \
    '.items[] | select(.metadata.name == $app or (.metadata.name | startswith($app + "-"))) | .metadata.name'
}

stopped=0
if [[ "$WORKLOAD" == http ]]; then
  for deployment in $(names_of deployment); do
    kube_change scale deployment "$deployment" --namespace "$namespace" --replicas 0
    stopped=$((stopped + 1))
  done
else
  for cronjob in $(names_of cronjob); do
    kube_change patch cronjob "$cronjob" --namespace "$namespace" --type merge -p '{"spec":{"suspend":true}}'
    stopped=$((stopped + 1))
  done
  for job in $(names_of job); do
    kube_change delete job "$job" --namespace "$namespace" --ignore-not-found
  done
fi
if ((stopped == 0)); then
  info "nothing of $SERVICE_NAME runs in $namespace: staging is already stopped (or was never deployed)"
else
  info "staging stopped: $stopped $([[ "$WORKLOAD" == http ]] && echo "Deployment(s) at 0 replicas" || echo "CronJob(s) suspended"); the next deploy-staging starts it again"
fi
