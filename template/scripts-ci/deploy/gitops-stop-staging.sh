#!/usr/bin/env bash
# Stops the staging environment the GitOps way: the on_stop action of GitLab's environment
# staging (the manual job stop-staging, or "Stop" on the environment's page) in
# deploy_mode gitops. It commits to the GitOps repository a patch that sets every Deployment
# of the service in staging (<app> and <app>-*) to 0 replicas, then waits until Argo CD
# reports the staging Application Synced and Healthy at that commit. It never calls the
# cluster: Argo CD's self-heal would undo a kubectl scale. The Services, the HTTPRoute and
# the configuration stay. The next deploy-staging (gitops-promote.sh --env staging) writes
# the component without that patch and so starts staging again, with its image.
# The commit, the push and the wait are lib/gitops.sh's (the file written: see there).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts-ci/deploy/gitops-stop-staging.sh [--dry-run] [--no-wait]

  --dry-run   commit in a local clone and show the change, push nothing, wait for nothing
  --no-wait   push and return without asking Argo CD (Flux, or no Argo CD API access)

Stopping a stopped staging commits nothing (it only waits for Argo CD); the next
`gitops-promote.sh --env staging --image IMAGE` starts it again.

Environment: the same as gitops-promote.sh: GITOPS_REPO_URL (required), GITOPS_TOKEN,
GITOPS_BRANCH (main), GITOPS_PATH (apps/<service>), APP_NAME (<service>),
ARGOCD_APP (<service>-staging), ARGOCD_SERVER, ARGOCD_AUTH_TOKEN, ARGOCD_WAIT_TIMEOUT (10m),
ARGOCD_POLL_INTERVAL (10), ARGOCD_INSECURE: see scripts-ci/lib/argocd.sh.

Exit codes: 0 stopped and Synced + Healthy (or already stopped), 1 push failed or Argo CD
did not apply the stop (sync failed, timeout: the commit stays, nothing is reverted),
2 usage or configuration error (also: a token Argo CD refuses, no such Application),
5 Argo CD never answered.

Example:
  scripts-ci/deploy/gitops-stop-staging.sh --dry-run
EOF
}

# shellcheck source=../lib/gitops.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/gitops.sh"

env_name=staging dry_run=false wait=true
while (($#)); do
  case "$1" in
    --dry-run) dry_run=true; shift ;;
    --no-wait) wait=false; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
gitops_setup

# The stable image stays recorded: the stop changes the replicas only.
apply_change() {
  if [[ $(state last-action) == stop ]]; then
    log "staging is already stopped ($component)"
    return 0
  fi
  message="stop(staging): $app scaled to 0 replicas"
  write_component stop "$(state stable-image)" "$(state previous-stable-image)" "" 0
}

# A stop that Argo CD does not apply is not reverted (that would start staging again): the
# commit stays, and the next stop or deploy-staging finds it.
change_failed() {
  die "the stop ${1:0:12} is pushed but $argocd_app is NOT Synced and Healthy at it: $ARGOCD_REASON; staging may still run: look at Argo CD (argocd app get $argocd_app)" 1
}

gitops_commit
